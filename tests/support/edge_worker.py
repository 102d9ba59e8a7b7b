"""The Free plan's Worker (deploy/cloudflare-worker/worker.js) in Cloudflare's own runtime: workerd
through miniflare, the version deploy/cloudflare-worker/package-lock.json pins (installed once per lock
file: npm_cache.py), with its local R2 bucket seeded from a folder and its Cache API on. One process
serves a test module (`EdgeWorker` as a context manager); tests reach it over HTTP like a viewer."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

from .npm_cache import installed

ROOT = Path(__file__).resolve().parent.parent.parent
WORKER = ROOT / "deploy" / "cloudflare-worker"
SERVE = Path(__file__).resolve().parent / "miniflare" / "serve.mjs"
START_TIMEOUT = 60.0  # seconds for workerd to start and the bucket to be seeded (about 2 on a quiet machine)


def miniflare() -> Path:
    """The folder whose node_modules holds the pinned miniflare and workerd."""
    return installed(WORKER, "miniflare", "miniflare/package.json")


class EdgeWorker:
    """`with EdgeWorker(seed, key=..., prefix=..., ttl=...) as worker:` worker.js serving on
    `worker.url`, its bucket holding `seed`'s files under their paths below it."""

    def __init__(self, seed: Path, *, key: str, prefix: str, ttl: int, log: Path) -> None:
        self._seed = seed
        self._bindings = {"EDGE_KEY": key, "PREFIX": prefix, "TTL": str(ttl), "PUBLIC_PATH": ""}
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> EdgeWorker:
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is not installed (scripts/test installs nodejs and npm)")
        with open(self._log, "wb") as errors:
            self._process = subprocess.Popen(
                [node, str(SERVE), str(miniflare()), str(WORKER / "worker.js"), str(self._seed),
                 json.dumps(self._bindings)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
        try:
            self.url = json.loads(self._first_line())["url"].rstrip("/")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _first_line(self) -> str:
        """The harness's line saying it serves, or a failure naming its log, within START_TIMEOUT."""
        assert self._process is not None and self._process.stdout is not None
        line = b""
        deadline = time.monotonic() + START_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    pytest.fail(f"miniflare did not start within {START_TIMEOUT:g} s: see {self._log}")
                chunk = os.read(self._process.stdout.fileno(), 4096)
                if not chunk:
                    pytest.fail(f"miniflare ended before serving: {self._log.read_text()[-2000:]}")
                line += chunk
        return line.decode()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # the harness disposes of miniflare (and its workerd) and ends
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
