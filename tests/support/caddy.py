"""Debian's Caddy as a test part, with deploy/Caddyfile as shipped: a foreground process of our own on a
reserved 127.0.0.1 port, everything it writes in one folder, stopped by its PID."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from broadcaster.demo.ports import kept_port
from tests.support.nginx import shipped_with
from tests.support.processes import until_listening

CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "Caddyfile"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
needs_caddy = pytest.mark.skipif(not Path(CADDY).exists(), reason="needs Debian's caddy (apt-get install caddy)")


class CaddyProxy:
    """Caddy in the foreground with the shipped Caddyfile: the site name made a plain-HTTP address on a
    free port (no certificate to get here), the upstream the service's, its admin endpoint off (tests run
    side by side) and nothing else changed."""

    def __init__(self, folder: Path, upstream: str) -> None:
        self.folder, self.upstream = folder, upstream
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None

    def write(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = kept_port()
        conf = self.folder / "Caddyfile"
        # Its admin endpoint off (tests run side by side), and 2 s of grace at the test's end: the streams
        # the test left would hold its teardown the shipped 10 s.
        conf.write_text(shipped_with(CADDYFILE, {
            "\tgrace_period 10s\n": "\tadmin off\n\tgrace_period 2s\n",
            "live.example.com {": f"http://127.0.0.1:{self.port} {{",
            "reverse_proxy 127.0.0.1:3000 {": f"reverse_proxy {self.upstream} {{"}))
        return conf

    async def __aenter__(self) -> CaddyProxy:
        for _ in range(3):  # a free port may be taken between our probe and Caddy's bind
            conf = self.write()
            self.proc = await asyncio.create_subprocess_exec(
                CADDY, "run", "--config", str(conf), "--adapter", "caddyfile", stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, "HOME": str(self.folder), "XDG_DATA_HOME": str(self.folder),
                     "XDG_CONFIG_HOME": str(self.folder)})
            if await until_listening(self.proc, self.port, "Caddy's start", every=0.05):
                return self
            await self.__aexit__()
        raise RuntimeError("caddy did not start")

    async def __aexit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await self.proc.wait()
