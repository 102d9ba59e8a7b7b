"""deploy/nginx-proxy.conf and deploy/Caddyfile, as shipped, in front of the real service (issue 47 item
4): `nginx -t` and `caddy validate` accept them, and with FORWARDED_ALLOW_IPS naming the proxy the
per-client caps and the viewer count count each real client behind it, whatever a client writes in its
own X-Forwarded-For.

The config is used as it is, with exactly the strings its header names replaced (the listen lines, the
certificate paths: a self-signed certificate made here, the upstream) and put in an http block of
Debian's nginx. Clients come from different loopback addresses (127.0.0.2, 127.0.0.3: each its own
address to nginx, as viewers on the internet are); the service, its own process with the file-handle
limit systemd gives (1024: 181 event streams, 22 per client), counts what reaches it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.demo.children import StartClock
from tests.support.nginx import Nginx, free_port, needs_nginx
from tests.support.service_process import ServiceProcess, moto_env

pytestmark = [pytest.mark.integration]

CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx-proxy.conf"
CADDYFILE = CONF.with_name("Caddyfile")
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
needs_caddy = pytest.mark.skipif(not Path(CADDY).exists(), reason="needs Debian's caddy (apt-get install caddy)")
PER_CLIENT = 181 // 8  # event streams one client may hold at a file-handle limit of 1024


def render(port: int, http_port: int, upstream: str, cert: Path, key: Path) -> str:
    """The shipped file with the strings its header names replaced, and nothing else."""
    text = CONF.read_text()
    swaps = {
        "listen 80;": f"listen 127.0.0.1:{http_port};", "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{port} ssl http2;", "listen [::]:443 ssl http2;": "",
        "/etc/letsencrypt/live/live.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/live.example.com/privkey.pem": str(key),
        "server 127.0.0.1:3000;": f"server {upstream};",
    }
    for old, new in swaps.items():
        assert old in text, f"deploy/nginx-proxy.conf no longer contains {old!r}"
        text = text.replace(old, new)
    return text


class Proxy(Nginx):
    """nginx in the foreground with the shipped site in its http block, everything under `folder`: the
    rig's Nginx (a reserved port, waited for while it gets on), its whole configuration this one."""

    def __init__(self, folder: Path, upstream: str) -> None:
        super().__init__(folder, conf=self._site)
        self.upstream = upstream
        self.cert, self.key = folder / "cert.pem", folder / "key.pem"
        self.http_port = free_port()  # the shipped site's plain-HTTP listener (a redirect to TLS)

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    def _site(self, port: int) -> str:
        if not self.cert.exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=live.example.com", "-keyout", str(self.key), "-out", str(self.cert)],
                           check=True, capture_output=True, timeout=60)
        temps = "\n".join(f"    {kind}_temp_path {self.folder / ('temp_' + kind)};"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return (f"worker_processes 1;\nevents {{ worker_connections 1024; }}\nhttp {{\n{temps}\n"
                f"    access_log off;\n{render(port, self.http_port, self.upstream, self.cert, self.key)}\n}}\n")


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
        self.port = free_port()
        text = CADDYFILE.read_text()
        for old in ("live.example.com {", "reverse_proxy 127.0.0.1:3000 {", "\tgrace_period 10s\n"):
            assert old in text, f"deploy/Caddyfile no longer contains {old!r}"
        conf = self.folder / "Caddyfile"
        # Its admin endpoint off (tests run side by side), and 2 s of grace at the test's end: the streams
        # the test left would hold its teardown the shipped 10 s.
        conf.write_text(text.replace("\tgrace_period 10s\n", "\tadmin off\n\tgrace_period 2s\n")
                        .replace("live.example.com {", f"http://127.0.0.1:{self.port} {{")
                        .replace("reverse_proxy 127.0.0.1:3000 {", f"reverse_proxy {self.upstream} {{"))
        return conf

    async def __aenter__(self) -> CaddyProxy:
        for _ in range(3):  # a free port may be taken between our probe and Caddy's bind
            conf = self.write()
            self.proc = await asyncio.create_subprocess_exec(
                CADDY, "run", "--config", str(conf), "--adapter", "caddyfile", stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, "HOME": str(self.folder), "XDG_DATA_HOME": str(self.folder),
                     "XDG_CONFIG_HOME": str(self.folder)})
            clock = StartClock(self.proc.pid)  # waited for while it gets on, not a fixed wall time
            while self.proc.returncode is None and clock.expired() is None:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)  # polling a condition: Caddy has not bound yet
                    continue
                writer.close()
                return self
            await self.__aexit__()
        raise RuntimeError("caddy did not start")

    async def __aexit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await self.proc.wait()


@needs_nginx
def test_nginx_accepts_the_shipped_proxy_config(tmp_path: Path) -> None:
    done = Proxy(tmp_path, "127.0.0.1:3000").check()
    assert done.returncode == 0 and "test is successful" in done.stderr, done.stderr


@needs_caddy
def test_caddy_accepts_the_shipped_caddyfile() -> None:
    done = subprocess.run([CADDY, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Valid configuration" in done.stdout + done.stderr, done.stderr[-2000:]
    formatted = subprocess.run([CADDY, "fmt", str(CADDYFILE)], capture_output=True, text=True, timeout=60)
    assert formatted.stdout == CADDYFILE.read_text()  # as `caddy fmt` writes it: no warning at start-up


Front = Proxy | CaddyProxy


async def request(front: Front, source: str, path: str, headers: str = "") -> tuple[asyncio.StreamReader,
                                                                                    asyncio.StreamWriter, int]:
    """A GET (a POST for the heartbeat) over TLS from the loopback address `source`; the connection stays
    open (an event stream)."""
    context: ssl.SSLContext | None = None
    if isinstance(front, Proxy):  # nginx as shipped: TLS (Caddy's plain-HTTP address here: none)
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", front.port, ssl=context, local_addr=(source, 0),
                                                   server_hostname="live.example.com" if context else None)
    method = "POST" if path == "/live/watching" else "GET"
    host = "live.example.com" if context else f"127.0.0.1:{front.port}"  # the site's name: Caddy's address here
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())
    async with asyncio.timeout(10):
        status = int((await reader.readline()).split()[1])
    return reader, writer, status


@pytest.fixture(params=[pytest.param("nginx", marks=needs_nginx), pytest.param("caddy", marks=needs_caddy)])
async def behind_a_proxy(tmp_path: Path, moto_url: str, request: pytest.FixtureRequest,
                       ) -> AsyncIterator[tuple[ServiceProcess, Front]]:
    """The service behind deploy/nginx-proxy.conf, or deploy/Caddyfile, as their headers say to run it."""
    env = moto_env(moto_url, tmp_path, HOST="127.0.0.1", FORWARDED_ALLOW_IPS="127.0.0.1",
                   TRUST_CF_CONNECTING_IP="false")
    kind = Proxy if request.param == "nginx" else CaddyProxy
    async with ServiceProcess(env, tmp_path / "service", nofile=1024) as service:
        async with kind(tmp_path / request.param, service.url.removeprefix("http://")) as proxy:
            yield service, proxy


async def test_behind_a_proxy_each_real_client_has_its_own_share_of_the_event_streams(
        behind_a_proxy: tuple[ServiceProcess, Front]) -> None:
    """One client behind the proxy fills its share (22 of 181 streams) and is refused past it, whatever
    X-Forwarded-For it writes itself (nginx appends the address it came from, and the service takes the
    right-most one that is not the proxy); another client behind the same proxy still gets streams.
    Before, every request came from nginx's 127.0.0.1, one loopback client that no per-client cap counts,
    so one client could take every slot."""
    service, proxy = behind_a_proxy
    held: list[asyncio.StreamWriter] = []
    try:
        for n in range(PER_CLIENT):
            spoof = f"X-Forwarded-For: 203.0.113.{n}\r\n" if n % 2 else ""
            _, writer, status = await request(proxy, "127.0.0.2", "/live/events", spoof)
            held.append(writer)
            assert status == 200, n
        for spoof in ("", "X-Forwarded-For: 198.51.100.1\r\n", "X-Forwarded-For: 127.0.0.3, 198.51.100.1\r\n",
                      "Forwarded: for=198.51.100.2\r\n", "CF-Connecting-IP: 198.51.100.3\r\n"):
            _, writer, status = await request(proxy, "127.0.0.2", "/live/events", spoof)
            writer.close()
            assert status == 503, spoof  # the same client, whatever it says
        _, writer, status = await request(proxy, "127.0.0.3", "/live/events")
        held.append(writer)
        assert status == 200  # another client behind the same proxy
    finally:
        for writer in held:
            writer.close()
    assert service.problems() == []


async def test_behind_a_proxy_the_viewer_count_counts_each_real_client(behind_a_proxy: tuple[ServiceProcess, Front]) -> None:
    """The viewer count keeps at most 20 pages per address (status/audience.py): behind the proxy, per
    real client, not per proxy (before: nginx's loopback address, which no per-address bound counts)."""
    _, proxy = behind_a_proxy

    async def beat(source: str, page: int, headers: str = "") -> int:
        _, writer, status = await request(proxy, source, "/live/watching",
                                          f"Hb-Watching: page{page:018d}xx\r\nContent-Length: 0\r\n{headers}")
        writer.close()
        return status

    statuses = [await beat("127.0.0.2", n, f"X-Forwarded-For: 203.0.113.{n}\r\n") for n in range(PAGES + 1)]
    assert statuses[:PAGES] == [200] * PAGES and statuses[PAGES] == 429, statuses
    assert await beat("127.0.0.3", 99) == 200


PAGES = 20  # status/audience.PER_CLIENT
