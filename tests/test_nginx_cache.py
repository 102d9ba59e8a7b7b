"""deploy/nginx-cache.conf, as shipped, in front of the real service: identical blocking requests reach
the service as ONE; reloads within max-age come from the cache; a 503 or a `private` answer is never
kept; only the tunnel names a client. The service's own /metrics witnesses what reached it."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.support.cache_edge import Edge, cache_edge, last_sequence
from tests.support.nginx import CACHE_CONF, needs_nginx, shipped_cache
from tests.support.owncast_writer import real_ts_segment
from tests.support.raw_http import Response, responses

# One worker runs the module, its module fixtures (moto's server, the segment) once (--dist loadgroup).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("nginx_cache"), needs_nginx]

TARGET = 4  # Owncast's 4 s latency level: the service holds a blocking request for up to 12 s
CONCURRENT = 40  # identical blocking requests


@pytest.fixture(scope="module")
def ts_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return real_ts_segment(tmp_path_factory.mktemp("ts"), TARGET)


@pytest.fixture
async def edge(request: pytest.FixtureRequest, tmp_path: Path, moto_url: str,
               ts_bytes: bytes) -> AsyncIterator[Edge]:
    """The cache in front of the service: parametrize it (indirect) with the service's own settings."""
    over = getattr(request, "param", {})
    async with cache_edge(tmp_path, moto_url, ts_bytes, seconds=TARGET, **over) as rig:
        yield rig


# Behind cloudflared: the service trusts the Cloudflare headers nginx passes on.
behind_the_tunnel = pytest.mark.parametrize("edge", [{"TRUST_CF_CONNECTING_IP": "true"}], indirect=True)


class Answer(Response):
    """Its body unzipped."""

    @property
    def cache(self) -> str:
        return self.headers.get("x-cache-status", "")


class Viewer:
    """One raw HTTP/1.1 request on its own connection, sent (in the kernel's hands) before `answer()`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def send(cls, port: int, path: str, host: str = "live.example.com", extra: str = "",
                   source: str = "127.0.0.1") -> Viewer:
        """`extra`: header lines ending in CRLF; `source`: the loopback address it comes from."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: gzip\r\n{extra}"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        return cls(reader, writer)

    async def answer(self) -> Answer:
        (got,) = responses(await self.reader.read())
        self.writer.close()
        zipped = got.headers.get("content-encoding") == "gzip"
        return Answer(got.status, got.headers, gzip.decompress(got.body) if zipped else got.body)


async def get(port: int, path: str, host: str = "live.example.com", extra: str = "",
              source: str = "127.0.0.1") -> Answer:
    return await (await Viewer.send(port, path, host, extra, source)).answer()


# -- the tests ---------------------------------------------------------------------------------------


def test_nginx_accepts_the_shipped_config(tmp_path: Path) -> None:
    done = shipped_cache(tmp_path, "127.0.0.1:3000").check()
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


async def test_identical_blocking_requests_reach_the_service_once(edge: Edge) -> None:
    for _ in range(3):
        name = edge.owncast.slot()
    last = await edge.listed_at_origin(name)
    before = await edge.origin_requests()
    path = f"/live/0/playlist.m3u8?_HLS_msn={last + 1}"
    # Every request is in nginx's socket before the segment exists: they all wait for the same answer.
    viewers = await asyncio.gather(*(Viewer.send(edge.nginx.port, path) for _ in range(CONCURRENT)))
    new_name = edge.owncast.slot()
    async with asyncio.timeout(30):
        answers = await asyncio.gather(*(v.answer() for v in viewers))
    after = await edge.origin_requests()
    assert [a.status for a in answers] == [200] * CONCURRENT, [(a.status, a.body[:80]) for a in answers]
    assert [last_sequence(a.body) for a in answers] == [last + 1] * CONCURRENT, answers[0].body.decode()
    assert all(a.body.rstrip().endswith(f"/{new_name}".encode()) for a in answers)
    assert all(a.headers["cache-control"] == f"public, max-age={6 * TARGET}" for a in answers)
    assert sorted(a.cache for a in answers) == ["HIT"] * (CONCURRENT - 1) + ["MISS"]
    assert sum(after.values()) - sum(before.values()) == 1, (before, after)
    # Later viewers asking for it get it from the cache as well.
    late = await get(edge.nginx.port, path)
    assert (late.status, late.cache, late.body) == (200, "HIT", answers[0].body)
    assert sum((await edge.origin_requests()).values()) == sum(after.values())


async def test_a_plain_reload_within_its_max_age_comes_from_the_cache(edge: Edge) -> None:
    """Of identical plain reloads, all sent before any answer is read, one reaches the service."""
    last = await edge.listed_at_origin(edge.owncast.slot())
    max_age = TARGET // 2
    before = await edge.origin_requests()
    viewers = await asyncio.gather(*(Viewer.send(edge.nginx.port, "/live/0/playlist.m3u8")
                                     for _ in range(CONCURRENT)))
    async with asyncio.timeout(30):
        answers = await asyncio.gather(*(v.answer() for v in viewers))
    after = await edge.origin_requests()
    assert [a.status for a in answers] == [200] * CONCURRENT, [(a.status, a.body[:80]) for a in answers]
    assert all(a.headers["cache-control"] == f"public, max-age={max_age}" for a in answers)
    assert all(a.body == answers[0].body for a in answers) and last_sequence(answers[0].body) == last
    assert sorted(a.cache for a in answers) == ["HIT"] * (CONCURRENT - 1) + ["MISS"]
    assert sum(after.values()) - sum(before.values()) == 1, (before, after)
    # gunzip: a client that does not take gzip gets the same playlist from the same cached copy.
    async with edge.http.get(f"http://127.0.0.1:{edge.nginx.port}/live/0/playlist.m3u8",
                             headers={"Accept-Encoding": "identity"}) as r:
        assert r.headers.get("Content-Encoding") is None
        assert last_sequence(await r.read()) == last


async def test_not_ready_is_never_cached(edge: Edge) -> None:
    before = await edge.origin_requests()
    for _ in range(2):
        answer = await get(edge.nginx.port, "/live/0/playlist.m3u8")
        assert answer.status == 503 and answer.cache == "MISS"
        assert answer.headers["cache-control"] == "no-cache"
    assert (await edge.origin_requests()).get("503", 0) - before.get("503", 0) == 2  # both reached it
    first = await edge.listed_at_origin(edge.owncast.slot())
    answer = await get(edge.nginx.port, "/live/0/playlist.m3u8")
    assert answer.status == 200 and last_sequence(answer.body) == first


async def test_only_playlists_go_through(edge: Edge) -> None:
    for path in ("/metrics", "/health", "/", "/embed", "/config.json", "/live/events"):
        answer = await get(edge.nginx.port, path)
        assert answer.status == 404, path
    async with edge.http.post(f"http://127.0.0.1:{edge.nginx.port}/live/watching",
                              headers={"Hb-Watching": "a" * 22}) as r:
        assert r.status == 404  # the heartbeat too: it must not be routed here
    # So the set-up at the top routes the playlists alone here.
    header = "\n".join(line for line in CACHE_CONF.read_text().splitlines() if line.startswith("#"))
    assert "PLAYLIST rules only" in header and "keep every other path on the service" in header
    assert "instead of the service's" not in header


@behind_the_tunnel
async def test_behind_the_tunnel_each_scheme_is_its_own_entry(edge: Edge) -> None:
    """https answers cached for https viewers; http ones never kept nor handed to https."""
    await edge.listed_at_origin(edge.owncast.slot())
    port = edge.nginx.port
    https = 'CF-Visitor: {"scheme":"https"}\r\nX-Forwarded-Proto: https\r\nCF-Connecting-IP: 203.0.113.9\r\n'
    http = 'CF-Visitor: {"scheme":"http"}\r\nX-Forwarded-Proto: http\r\nCF-Connecting-IP: 203.0.113.8\r\n'
    for path, named in (("/live/master.m3u8", "\nhttps://live.example.com/live/vm/0/playlist.m3u8\n"),
                        ("/live/steering.json", '"RELOAD-URI":"https://live.example.com/live/steering.json"')):
        # Asked on the VM itself (http): cached for such requests alone.
        direct = await get(port, path)
        assert named.replace("https:", "http:").encode() in direct.body, direct.body.decode()
        plain = [await get(port, path, extra=http) for _ in range(2)]
        assert all(a.status == 200 and a.cache != "HIT" for a in plain), [(a.status, a.cache) for a in plain]
        assert all(named.replace("https:", "http:").encode() in a.body for a in plain), plain[0].body.decode()
        secure = [await get(port, path, extra=https) for _ in range(2)]
        assert [a.cache for a in secure] == ["MISS", "HIT"], [(a.status, a.cache) for a in secure]
        assert all(named.encode() in a.body for a in secure), secure[0].body.decode()
        again = await get(port, path, extra=http)  # the https entry is not the http viewer's
        assert named.replace("https:", "http:").encode() in again.body, again.body.decode()


async def test_content_steering_through_the_cache(edge: Edge) -> None:
    """Playlist and manifest cached per Host; a VM segment's redirect never kept."""
    name = edge.owncast.slot()
    await edge.listed_at_origin(name)
    port = edge.nginx.port
    for host in ("live.example.com:8443", "other.example.net"):
        master = await get(port, "/live/master.m3u8", host)
        assert master.status == 200, master.body
        assert f"\nhttp://{host}/live/vm/0/playlist.m3u8\n".encode() in master.body, master.body.decode()
        assert f"\nhttp://{host}/live/0/playlist.m3u8\n".encode() in master.body
    before = await edge.origin_counts("hls_broadcaster_steering_requests_total")
    first = await get(port, "/live/steering.json?_HLS_pathway=bucket", "live.example.com:8443")
    again = await get(port, "/live/steering.json?_HLS_pathway=vm&_HLS_throughput=800000", "live.example.com:8443")
    assert (first.status, again.status, again.cache, again.body) == (200, 200, "HIT", first.body)
    assert json.loads(first.body)["PATHWAY-PRIORITY"][0] == "bucket"
    assert json.loads(first.body)["RELOAD-URI"] == "http://live.example.com:8443/live/steering.json"
    assert await edge.origin_counts("hls_broadcaster_steering_requests_total") == before + 1
    # Another host is another entry, naming itself (never the first host's answer).
    other = await get(port, "/live/steering.json", "other.example.net")
    assert other.status == 200 and other.cache != "HIT", (other.status, other.cache)
    assert json.loads(other.body)["RELOAD-URI"] == "http://other.example.net/live/steering.json"
    assert await edge.origin_counts("hls_broadcaster_steering_requests_total") == before + 2
    vm = await get(port, "/live/vm/0/playlist.m3u8")
    assert vm.status == 200, vm.body
    uri = vm.body.decode().rstrip().rsplit("\n", 1)[-1]
    assert uri.startswith("/live/vm/0/") and uri.endswith(name), uri
    before = await edge.origin_counts("hls_broadcaster_vm_segment_requests_total")
    answers = [await get(port, uri) for _ in range(3)]
    assert [a.status for a in answers] == [302] * 3, [(a.status, a.cache, a.body[:80]) for a in answers]
    assert all(a.cache != "HIT" and a.headers["cache-control"] == "no-store" for a in answers)
    bucket = answers[0].headers["location"]
    assert bucket.endswith("/0/" + name) and bucket.startswith("http") and "/vm/" not in bucket, bucket
    assert await edge.origin_counts("hls_broadcaster_vm_segment_requests_total") == before + 3


async def test_other_spellings_through_the_cache_cost_the_service_a_redirect_each(edge: Edge) -> None:
    for _ in range(3):
        name = edge.owncast.slot()
    last = await edge.listed_at_origin(name)
    spellings = [f"/live/0/playlist.m3u8?_HLS_{''.join(f'%{ord(c):02{x}}' for c in 'msn')}={last}"
                 for x in ("x", "X")]
    spellings += ["/live/0/pl%61ylist.m3u8", f"/live/0/pl%61ylist.m3u8?_HLS_msn=%3{str(last)[0]}{str(last)[1:]}"]
    spellings += [f"/live/%30/playlist.m3u8?_HLS_msn={last}", f"/l%69ve/0/playlist.m3u8?_HLS_msn={last}",
                  f"/live/0/playlist.m3u8?_HLS_msn={last}&_HLS_%73kip=YES", "/live/0/playlist.m3u8?"]
    before = await edge.origin_requests()
    answers = [await get(edge.nginx.port, target) for target in spellings]
    after = await edge.origin_requests()
    assert [a.status for a in answers] == [302] * len(spellings), [(a.status, len(a.body)) for a in answers]
    assert all(len(a.body) == 0 for a in answers)
    reached = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert {k: n for k, n in reached.items() if n} == {"302": len(spellings)}, reached
    for target, answer in zip(spellings, answers):  # where each points is the one canonical URL
        location = urljoin(f"http://h{target}", answer.headers["location"]).removeprefix("http://h")
        assert location in ("/live/0/playlist.m3u8", f"/live/0/playlist.m3u8?_HLS_msn={last}",
                            f"/live/0/playlist.m3u8?_HLS_msn={last}&_HLS_skip=YES"), (target, location)


@behind_the_tunnel
async def test_one_clients_vm_bytes_are_never_anyone_elses(edge: Edge) -> None:
    """A client's `private` VM bytes are never kept; only the tunnel names a client."""
    name = edge.owncast.slot()
    await edge.listed_at_origin(name)
    port = edge.nginx.port
    vm = await get(port, "/live/vm/0/playlist.m3u8")
    uri = vm.body.decode().rstrip().rsplit("\n", 1)[-1]
    assert vm.status == 200 and uri.endswith(name), vm.body.decode()
    # A page at 203.0.113.7 says the bucket fails for it (its heartbeat straight to the service).
    async with edge.http.post(f"{edge.service.url}/live/watching", headers={
            "Hb-Watching": "page-a-0123456789abcdef", "CF-Connecting-IP": "203.0.113.7",
            "Hb-Pathway": "- bucket=255"}) as r:
        assert r.status in (200, 204)
    own = await get(port, uri, extra="CF-Connecting-IP: 203.0.113.7\r\n")
    assert (own.status, own.headers["cache-control"]) == (200, "private, max-age=31536000, immutable"), own
    assert own.cache == "MISS" and len(own.body) == len(edge.owncast.ts)
    before = await edge.origin_counts("hls_broadcaster_vm_segment_requests_total")
    others = [await get(port, uri, extra=f"CF-Connecting-IP: 203.0.113.{n}\r\n") for n in (8, 9)]
    others.append(await get(port, uri))  # nobody named
    # A client of its own (not the tunnel's address) naming the reporter's address: not believed.
    others.append(await get(port, uri, extra="CF-Connecting-IP: 203.0.113.7\r\n", source="127.0.0.2"))
    others.append(await get(port, uri, extra="X-Forwarded-For: 203.0.113.7\r\n", source="127.0.0.3"))
    assert [(a.status, a.headers["cache-control"], a.body) for a in others] == [(302, "no-store", b"")] * 5, [
        (a.status, a.cache, a.headers.get("cache-control")) for a in others]
    assert all(a.cache != "HIT" for a in others)
    # Each reached the service (its own count), none was answered from nginx's cache.
    assert await edge.origin_counts("hls_broadcaster_vm_segment_requests_total") == before + len(others)
    again = await get(port, uri, extra="CF-Connecting-IP: 203.0.113.7\r\n")
    assert again.cache != "HIT" and again.status in (200, 503), (again.status, again.cache)


@pytest.mark.parametrize("edge", [{"PRIVATE": "true", "PRIVATE_SECRET": "s" * 40,
                                   "PRIVATE_PASSPHRASE": "let me in"}], indirect=True)
async def test_a_private_streams_playlist_is_kept_for_no_stranger(edge: Edge) -> None:
    """A private playlist asked with a Bearer header: `private`, kept for no stranger."""
    async with edge.http.post(f"{edge.service.url}/live/access", json={"passphrase": "let me in"}) as r:
        assert r.status == 200, await r.text()
        token = (await r.json())["token"]
    await edge.listed_at_origin(edge.owncast.slot(), headers={"Authorization": f"Bearer {token}"})
    port = edge.nginx.port
    for asked in ("/live/0/playlist.m3u8", f"/live/0/playlist.m3u8?access={token}"):
        extra = f"Authorization: Bearer {token}\r\n" if "?" not in asked else ""
        invited = await get(port, asked, extra=extra)
        assert invited.status == 200 and invited.headers["cache-control"].startswith("private"), invited
    stranger = await get(port, "/live/0/playlist.m3u8")
    assert stranger.status == 401 and b"#EXT" not in stranger.body, stranger
