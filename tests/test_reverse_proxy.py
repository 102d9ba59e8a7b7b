"""deploy/nginx-proxy.conf and deploy/Caddyfile, as shipped, in front of the real service: they validate, and
with FORWARDED_ALLOW_IPS naming the proxy the per-client caps and the viewer count count each real client
behind it (127.0.0.2, 127.0.0.3), whatever it writes in its own X-Forwarded-For or CF-Connecting-IP. The
service runs with systemd's file-handle limit (1024: 181 event streams, 22 per client)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.caddy import CADDY, CADDYFILE, CaddyProxy, needs_caddy
from tests.support.nginx import ShippedProxy, needs_nginx
from tests.support.service_process import ServiceProcess, moto_env

pytestmark = [pytest.mark.integration]

PER_CLIENT = 181 // 8  # event streams one client may hold at a file-handle limit of 1024


@needs_nginx
def test_nginx_accepts_the_shipped_proxy_config(tmp_path: Path) -> None:
    done = ShippedProxy(tmp_path, "127.0.0.1:3000").check()
    assert done.returncode == 0 and "test is successful" in done.stderr, done.stderr


@needs_caddy
def test_caddy_accepts_the_shipped_caddyfile() -> None:
    done = subprocess.run([CADDY, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Valid configuration" in done.stdout + done.stderr, done.stderr[-2000:]
    formatted = subprocess.run([CADDY, "fmt", str(CADDYFILE)], capture_output=True, text=True, timeout=60)
    assert formatted.stdout == CADDYFILE.read_text()  # as `caddy fmt` writes it: no warning at start-up


Front = ShippedProxy | CaddyProxy


async def request(front: Front, source: str, path: str, headers: str = "") -> tuple[asyncio.StreamReader,
                                                                                    asyncio.StreamWriter, int]:
    """A GET (a POST for the heartbeat) from the loopback address `source`; the connection stays open."""
    context: ssl.SSLContext | None = None
    if isinstance(front, ShippedProxy):  # nginx as shipped: TLS (Caddy's plain-HTTP address here: none)
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


async def beat(front: Front, source: str, page: int, headers: str = "") -> int:
    """A heartbeat of page number `page` from the loopback address `source`: its status."""
    _, writer, status = await request(front, source, "/live/watching",
                                      f"Hb-Watching: page{page:018d}xx\r\nContent-Length: 0\r\n{headers}")
    writer.close()
    return status


@pytest.fixture
def tunnel() -> bool:
    """Whether the service also trusts the tunnel's CF-Connecting-IP from a loopback peer (cloudflared's)."""
    return False


@pytest.fixture(params=[pytest.param("nginx", marks=needs_nginx), pytest.param("caddy", marks=needs_caddy)])
async def behind_a_proxy(tmp_path: Path, moto_url: str, request: pytest.FixtureRequest,
                         tunnel: bool) -> AsyncIterator[Front]:
    """The service behind either proxy as its header says to run it; nothing alarming in its log after."""
    env = moto_env(moto_url, tmp_path, HOST="127.0.0.1", FORWARDED_ALLOW_IPS="127.0.0.1",
                   TRUST_CF_CONNECTING_IP=str(tunnel).lower(), PATHWAYS="bucket,vm")
    kind = ShippedProxy if request.param == "nginx" else CaddyProxy
    async with ServiceProcess(env, tmp_path / "service", nofile=1024) as service:
        async with kind(tmp_path / request.param, service.url.removeprefix("http://")) as proxy:
            yield proxy
        assert service.problems() == []


async def test_behind_a_proxy_each_real_client_has_its_own_share_of_the_event_streams(behind_a_proxy: Front,
                                                                                     ) -> None:
    """22 of 181 streams, whatever X-Forwarded-For the client writes itself."""
    proxy = behind_a_proxy
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


PAGES = 20  # status/audience.PER_CLIENT


@pytest.mark.parametrize(("tunnel", "named"), [(False, "X-Forwarded-For"), (True, "CF-Connecting-IP")],
                         ids=["behind-a-proxy", "beside-the-tunnel"])
async def test_the_viewer_count_counts_each_real_client_whatever_it_names(behind_a_proxy: Front,
                                                                          named: str) -> None:
    """At most 20 pages per real client, whatever address it names itself. Beside the tunnel the proxy is a
    loopback peer as cloudflared is: it must set CF-Connecting-IP to the viewer's address."""
    statuses = [await beat(behind_a_proxy, "127.0.0.2", n, f"{named}: 203.0.113.{n}\r\n")
                for n in range(PAGES + 1)]
    assert statuses[:PAGES] == [200] * PAGES and statuses[PAGES] == 429, statuses
    assert await beat(behind_a_proxy, "127.0.0.3", 99) == 200  # another client behind the same proxy


async def test_behind_a_proxy_the_steering_manifest_names_the_scheme_the_proxy_says(behind_a_proxy: Front,
                                                                                    ) -> None:
    """RELOAD-URI is absolute with the scheme the proxy's own X-Forwarded-Proto says, whatever the client
    writes; an http answer is the viewer's alone (no cache keeps it for another scheme)."""
    proxy = behind_a_proxy
    tls = isinstance(proxy, ShippedProxy)
    expected = ("https://live.example.com/live/steering.json" if tls
                else f"http://127.0.0.1:{proxy.port}/live/steering.json")
    for spoof in ("", "X-Forwarded-Proto: http\r\n", "X-Forwarded-Proto: https\r\n",
                  'CF-Visitor: {"scheme":"https"}\r\n'):
        reader, writer, status = await request(proxy, "127.0.0.2", "/live/steering.json?_HLS_pathway=bucket",
                                               "Connection: close\r\n" + spoof)
        try:
            async with asyncio.timeout(10):
                head, _, body = (await reader.read()).partition(b"\r\n\r\n")
        finally:
            writer.close()
        assert status == 200, (spoof, head)
        assert json.loads(body)["RELOAD-URI"] == expected, (spoof, body)
        cache_control = [line for line in head.decode().lower().split("\r\n") if line.startswith("cache-control:")]
        assert cache_control == (["cache-control: public, max-age=1"] if tls
                                 else ["cache-control: private, no-store"]), (spoof, cache_control)
