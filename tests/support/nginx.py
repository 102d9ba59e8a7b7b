"""Debian's nginx as a test part: a foreground process of our own on a free 127.0.0.1 port, everything in
one folder, stopped by its PID. `Nginx` takes the inside of one `server {}` block (a proxy, a cache, the
tunnel stand-in of `tunnel_locations`); `shipped_cache` and `ShippedProxy` run deploy/'s configs as they
are, with only the names their headers give replaced."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from broadcaster.demo.ports import Reserved, kept_port, reserve_port
from tests.support.processes import until_listening

NGINX = "/usr/sbin/nginx"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

needs_nginx = pytest.mark.skipif(
    not Path(NGINX).exists(), reason="Debian's nginx is not installed (scripts/test installs it)"
)

# Each request: where it went ($upstream_addr, "-" when nginx answered itself) and the cache's verdict.
ACCESS_LOG_FORMAT = "'$request_method $request_uri $status $upstream_addr $upstream_cache_status'"


class Nginx:
    """`async with Nginx(folder, server_block) as proxy:` then `proxy.url`; `access_log()` lists the requests
    it answered. `conf`: a whole configuration instead (a shipped file, its listen address replaced)."""

    def __init__(self, folder: Path, server: str = "", *, http: str = "",
                 conf: Callable[[int], str] | None = None) -> None:
        self.folder = folder
        self._server = server
        self._whole = conf
        self._http = http
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._reserved: Reserved | None = None  # its port, reserved while it runs

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def conf(self) -> Path:
        return self.folder / "nginx.conf"

    def _args(self) -> list[str]:
        main = f"daemon off; pid {self.folder / 'nginx.pid'};"
        if self._whole is not None:
            main += f" error_log {self.folder / 'error.log'} info;"
            if os.geteuid() == 0:  # as in _config
                main += " user root;"
        return [NGINX, "-p", str(self.folder), "-c", str(self.conf), "-e", str(self.folder / "error.log"),
                "-g", main]

    def check(self) -> subprocess.CompletedProcess[str]:
        """`nginx -t` on its configuration (on a port reserved for the check)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with reserve_port() as held:
            self.port = held.ports[0]
            self.conf.write_text(self._config())
            return subprocess.run([*self._args(), "-t"], capture_output=True, text=True, timeout=60)

    def _config(self) -> str:
        if self._whole is not None:
            return self._whole(self.port)
        d = self.folder
        # As root, workers would switch to "nobody", who cannot enter pytest's private tmp folders (the
        # temp and cache paths live there); as anyone else nginx cannot switch users at all.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        return f"""{user}worker_processes 1;
error_log {d / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
{self.temps()}
    log_format routed {ACCESS_LOG_FORMAT};
    access_log {d / "access.log"} routed;
    default_type application/octet-stream;
{self._http}
    server {{
        listen 127.0.0.1:{self.port};
        merge_slashes off;  # the path goes on as the client sent it
{self._server}
    }}
}}
"""

    def temps(self) -> str:
        return "\n".join(f"    {kind}_temp_path {self.folder / ('temp_' + kind)};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))

    async def start(self, timeout: float = 30.0, attempts: int = 5) -> Nginx:
        """Starts it on a port reserved for it (another if a stranger took that one first), waited for with
        StartClock, not a fixed time a loaded machine may not give it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            self._release()
            self._reserved = reserve_port()
            self.port = self._reserved.ports[0]
            self.conf.write_text(self._config())
            self.proc = await asyncio.create_subprocess_exec(
                *self._args(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            if await self._listening(timeout):
                return self
            await self.stop()
            if attempt == attempts - 1 or "Address already in use" not in self.error_log():
                break
        raise RuntimeError(f"nginx did not start:\n{self.error_log()[-2000:]}")

    async def _listening(self, timeout: float) -> bool:
        """Until nginx takes connections (True), or it exits or stops getting on (False; StartClock)."""
        assert self.proc is not None
        return await until_listening(self.proc, self.port, "nginx's start", busy=timeout, still=timeout)

    def _release(self) -> None:
        if self._reserved is not None:
            self._reserved.release()
            self._reserved = None

    async def stop(self, timeout: float = 10.0) -> None:
        try:
            if self.proc is None or self.proc.returncode is not None:
                return
            self.proc.send_signal(signal.SIGTERM)  # nginx's fast shutdown; the master stops its workers
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        finally:
            self._release()

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[str]:
        path = self.folder / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    async def __aenter__(self) -> Nginx:
        return await self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


def tunnel_locations(rules: Sequence[Mapping[str, Any]], hostname: str, services: Mapping[str, str]) -> str:
    """The server block that routes one hostname's requests as cloudflared's ingress `rules` do.

    cloudflared takes the first rule whose hostname and `path` regex (Go's, searched in the path) match,
    a rule without a path everything left; nginx's regex locations in order, then `location /`, do the
    same (Go's $ is PCRE's \\z). `services` maps each rule's service URL to where it runs here;
    http_status:N answers N. nginx resolves dot segments where cloudflared does not: the same for the
    paths a browser sends."""
    blocks: list[str] = []
    for rule in rules:
        if rule.get("hostname", hostname) != hostname:
            continue
        service = str(rule["service"])
        status = re.fullmatch(r"http_status:(\d{3})", service)
        action = f"return {status.group(1)};" if status else f"proxy_pass {services[service]};"
        path = rule.get("path")
        if path is None:
            blocks.append(f"        location / {{ {action} }}")
            break  # cloudflared never looks past it
        pattern = re.sub(r"\$$", r"\\z", str(path))
        if '"' in pattern:
            raise ValueError(f"cannot quote {pattern!r} for nginx")
        blocks.append(f'        location ~ "{pattern}" {{ {action} }}')
    else:
        raise ValueError(f"no rule takes everything else for {hostname}")
    # HTTP/1.1, as cloudflared speaks it (a held blocking reload is well within nginx's 60 s read timeout);
    # the viewer's own Host, which cloudflared passes on and the service names its variants with; and the
    # headers Cloudflare's edge adds, which cloudflared passes on as they came.
    return "\n".join(["        proxy_http_version 1.1;", "        proxy_set_header Host $http_host;",
                      *(f"        proxy_set_header {name} {value};" for name, value in CLOUDFLARE_HEADERS),
                      *blocks])


# What Cloudflare's edge adds to a viewer's request (developers.cloudflare.com, "Cloudflare HTTP headers";
# a tunnel's origin gets them through cloudflared), as nginx writes them.
CLOUDFLARE_HEADERS = (("CF-Connecting-IP", "$remote_addr"), ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
                      ("X-Forwarded-Proto", "$scheme"), ("CF-Visitor", "'{\"scheme\":\"$scheme\"}'"),
                      ("CDN-Loop", "cloudflare"))


# -- the shipped configs ---------------------------------------------------------------------------

CACHE_CONF = DEPLOY / "nginx-cache.conf"


def shipped_cache(work: Path, upstream: str) -> Nginx:
    """nginx running deploy/nginx-cache.conf in the foreground as this user, everything it writes under
    `work`, in front of `upstream` (HOST:PORT): the three strings its header says to change, replaced."""
    return Nginx(work, conf=lambda port: shipped_with(CACHE_CONF, {
        "listen 127.0.0.1:8081 ": f"listen 127.0.0.1:{port} ",
        "server 127.0.0.1:3000;": f"server {upstream};", "/var/cache/nginx/hls-broadcaster": str(work)}))


def shipped_with(path: Path, swaps: Mapping[str, str]) -> str:
    """The shipped file `path` with each string its header names replaced (each still there), only those."""
    text = path.read_text()
    for old, new in swaps.items():
        assert old in text, f"deploy/{path.name} no longer contains {old!r}"
        text = text.replace(old, new)
    return text


class ShippedProxy(Nginx):
    """nginx in the foreground with deploy/nginx-proxy.conf in its http block, everything under `folder`:
    Nginx's start (a reserved port, waited for while it gets on), its whole configuration this one, with
    a self-signed certificate for live.example.com made on the first start."""

    def __init__(self, folder: Path, upstream: str) -> None:
        super().__init__(folder, conf=self._site)
        self.upstream = upstream
        self.cert, self.key = folder / "cert.pem", folder / "key.pem"
        self.http_port = kept_port()  # the shipped site's plain-HTTP listener (a redirect to TLS)

    async def __aenter__(self) -> ShippedProxy:
        await self.start()
        return self

    def _site(self, port: int) -> str:
        if not self.cert.exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=live.example.com", "-keyout", str(self.key), "-out", str(self.cert)],
                           check=True, capture_output=True, timeout=60)
        # The strings deploy/nginx-proxy.conf's header names (the listen lines, the certificate paths, the
        # upstream), replaced.
        site = shipped_with(DEPLOY / "nginx-proxy.conf", {
            "listen 80;": f"listen 127.0.0.1:{self.http_port};", "listen [::]:80;": "",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{port} ssl http2;", "listen [::]:443 ssl http2;": "",
            "/etc/letsencrypt/live/live.example.com/fullchain.pem": str(self.cert),
            "/etc/letsencrypt/live/live.example.com/privkey.pem": str(self.key),
            "server 127.0.0.1:3000;": f"server {self.upstream};",
        })
        return (f"worker_processes 1;\nevents {{ worker_connections 1024; }}\nhttp {{\n{self.temps()}\n"
                f"    access_log off;\n{site}\n}}\n")
