"""Owncast's playlist paths (/hls/stream.m3u8, /hls/<n>/stream.m3u8) through the real app and Publisher:
the same versions as under /live/, with every property /live/ has."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urljoin

import m3u8
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import MultiDict

from broadcaster.playlist import hls, master
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.segments import ListedSegment
from broadcaster.metrics import Metrics
from broadcaster.source.owncast import SourceVariant
from broadcaster.http import create_app, late
from broadcaster.http.clients import Clients, Proxies
from broadcaster.http.playlists import PlaylistRoutes, RouteOptions
from broadcaster.http.playlists import answered_as_sent, canonical_query
from tests.support.served import ServeWorld
from tests.support.world import World
from tests.support.client import PLAIN, Client, get, playlist_counts
from tests.support.raw_http import responses
from tests.support.fakes import Clock, CountingGenerator, FakeHealth, FakePlaylists
from tests.support.waiting import until

MASTER = "/hls/stream.m3u8"
LIVE_MASTER = "/live/master.m3u8"
VARIANTS = [SourceVariant(0, 1_200_000, None, (1280, 720), "avc1.64001f,mp4a.40.2", 30.0),
            SourceVariant(1, 400_000, None, (640, 360), None, None)]
# What two answers of the same version share, whichever path or method asked for it.
SAME_HEADERS = ("Content-Type", "Content-Encoding", "Content-Length", "ETag", "Cache-Control", "Vary",
                "Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Server")


def hls_media(n: int | str) -> str:
    return f"/hls/{n}/stream.m3u8"


def live_media(n: int | str) -> str:
    return f"/live/{n}/playlist.m3u8"


@pytest.fixture
async def served(serve_world: ServeWorld) -> tuple[World, Client]:
    """Two variants live with 1 s segments; a 12 s window that slides, so delta updates are offered too."""
    world, client = await serve_world(window=12.0, stepped=True, can_block_reload=True, decompress=False)
    await _live(world)
    return world, client


@pytest.fixture
def world(served: tuple[World, Client]) -> World:
    return served[0]


@pytest.fixture
def client(served: tuple[World, Client]) -> Client:
    return served[1]


async def _live(world: World) -> None:
    """Two variants, 14 segments of 1 s each listed."""
    world.pub.on_master(VARIANTS)
    for i in range(14):
        world.now += 1
        for v in (0, 1):
            world.owncast_lists(v, f"stream-a-{i}.ts")
        await world.settle()


def last(world: World, variant: int = 0) -> int:
    rendered = world.playlists.media_playlist(variant)
    assert rendered is not None
    return rendered.last_sequence


# -- the multivariant playlist -------------------------------------------------------------------


async def test_master_names_owncasts_variant_files_which_resolve_under_hls(
        world: World, client: Client) -> None:
    status, headers, body = await get(client, MASTER)
    assert status == 200
    assert headers["Content-Type"] == hls.PLAYLIST_CONTENT_TYPE
    assert headers["Cache-Control"] == hls.playlist_cache_control(1)
    parsed = m3u8.loads(body.decode())
    assert [p.uri for p in parsed.playlists] == ["0/stream.m3u8", "1/stream.m3u8"]
    # A player resolves them against the master's URL: Owncast's variant paths, answered here.
    base = "https://owncast.example.com" + MASTER
    for n, p in enumerate(parsed.playlists):
        path = urljoin(base, p.uri).removeprefix("https://owncast.example.com")
        assert path == hls_media(n)
        got = await get(client, path)
        expected = world.playlists.media_playlist(n)
        assert expected is not None and got[:1] == (200,) and got[2] == expected.body


async def test_master_differs_from_lives_only_in_the_variant_file_names(client: Client) -> None:
    owncast = (await get(client, MASTER))[2].decode()
    live = (await get(client, LIVE_MASTER))[2].decode()
    assert owncast.replace("/stream.m3u8", "/playlist.m3u8") == live
    assert "BANDWIDTH=1200000,RESOLUTION=1280x720,FRAME-RATE=30.000" in owncast


async def test_master_is_rendered_once_per_version_not_per_request(
        world: World, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    names: list[str] = []
    real = master.render_master

    def counting(variants: list[SourceVariant], media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered:
        names.append(media_name)
        return real(variants, media_name)

    monkeypatch.setattr("broadcaster.publish.visible.render_master", counting)
    world.pub.on_master(VARIANTS[:1] + [SourceVariant(1, 500_000)])  # a new version of Owncast's master
    etags = set()
    for _ in range(5):
        for path in (MASTER, LIVE_MASTER):
            for encoding in (PLAIN, {"Accept-Encoding": "gzip"}):
                status, headers, _ = await get(client, path, encoding)
                assert status == 200
                etags.add(headers["ETag"])
    assert sorted(names) == sorted([hls.MEDIA_PLAYLIST_NAME, hls.OWNCAST_PLAYLIST_NAME])
    assert len(etags) == 4  # two renderings, each plain and gzipped, stable across requests
    assert world.playlists.master_playlist(hls.OWNCAST_PLAYLIST_NAME) is world.playlists.master_playlist(
        hls.OWNCAST_PLAYLIST_NAME)
    world.pub.on_master(VARIANTS)  # Owncast changes its variants again: both are rendered afresh
    assert b"BANDWIDTH=1200000" in (await get(client, MASTER))[2]
    assert names.count(hls.OWNCAST_PLAYLIST_NAME) == 2


# -- media playlists: the same versions as /live/ ------------------------------------------------


@pytest.mark.parametrize("variant", [0, 1])
@pytest.mark.parametrize("encoding", [PLAIN, {"Accept-Encoding": "gzip"}])
async def test_media_playlist_is_lives_byte_for_byte(client: Client, variant: int,
                                                     encoding: dict[str, str]) -> None:
    live = await get(client, live_media(variant), encoding)
    owncast = await get(client, hls_media(variant), encoding)
    assert owncast[0] == live[0] == 200 and owncast[2] == live[2]
    assert {h: owncast[1].get(h) for h in SAME_HEADERS} == {h: live[1].get(h) for h in SAME_HEADERS}
    if encoding != PLAIN:
        assert owncast[1]["Content-Encoding"] == "gzip" and gzip.decompress(owncast[2]).startswith(b"#EXTM3U")


@pytest.mark.parametrize("path", [MASTER, hls_media(0), hls_media(1)])
async def test_etag_revalidation_is_a_304(client: Client, path: str) -> None:
    for encoding in (PLAIN, {"Accept-Encoding": "gzip"}):
        _, headers, _ = await get(client, path, encoding)
        for method in ("GET", "HEAD"):
            status, again, body = await get(client, path, {**encoding, "If-None-Match": headers["ETag"]}, method)
            assert (status, body, again["ETag"]) == (304, b"", headers["ETag"])
            assert again["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", [MASTER, hls_media(0), hls_media(1)])
async def test_head_has_get_headers_and_no_body(client: Client, path: str) -> None:
    _, got, body = await get(client, path)
    status, head, head_body = await get(client, path, method="HEAD")
    assert (status, head_body) == (200, b"") and int(head["Content-Length"]) == len(body)
    assert {h: head.get(h) for h in SAME_HEADERS} == {h: got.get(h) for h in SAME_HEADERS}


@pytest.mark.parametrize("path", [MASTER, hls_media(0), hls_media(1)])
async def test_cors_and_preflight(client: Client, path: str) -> None:
    _, headers, _ = await get(client, path, {**PLAIN, "Origin": "https://owncast.example.com"})
    assert headers["Access-Control-Allow-Origin"] == "*" and "ETag" in headers["Access-Control-Expose-Headers"]
    status, headers, _ = await get(client, path, {"Origin": "https://elsewhere.example",
                                                  "Access-Control-Request-Method": "GET"}, method="OPTIONS")
    assert status == 204 and headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"


def test_the_canonical_query_keeps_only_the_directives_in_order_one_spelling_each() -> None:
    def canonical(raw: str, blocking: bool = True) -> str | None:
        return canonical_query(MultiDict(parse_qsl(raw, keep_blank_values=True)), blocking)

    assert canonical("_HLS_msn=12") == "_HLS_msn=12" and canonical("_HLS_skip=YES") == "_HLS_skip=YES"
    assert canonical("_HLS_msn=12&_HLS_skip=YES") == "_HLS_msn=12&_HLS_skip=YES"
    assert canonical("_HLS_msn=%312") == "_HLS_msn=12"  # a percent-encoded spelling of the same number
    assert canonical("_HLS_msn=012") == canonical("_HLS_msn=00000000000000012") == "_HLS_msn=12"
    assert canonical("_HLS_skip=YES&cachebust=1&_HLS_msn=12") == "_HLS_msn=12&_HLS_skip=YES"  # one order
    assert canonical("_HLS_skip=YES&_HLS_msn=12&_HLS_part=0") == "_HLS_msn=12&_HLS_skip=YES"
    assert canonical("_HLS_msn=12&_HLS_part=0&_HLS_skip=v2") == "_HLS_msn=12&_HLS_skip=YES"
    assert canonical("_HLS_msn=12&_HLS_part=99") == canonical("_HLS_part=1&_HLS_msn=12") == "_HLS_msn=12"
    assert canonical("cachebust=1") == "" and canonical("_HLS_msn=12", blocking=False) == ""
    for bad in ("_HLS_msn=x&v=1", "_HLS_skip=NO&v=1", "_HLS_msn=1&_HLS_part=-1", "_HLS_part=1&v=1",
                "_HLS_msn=" + "1" * 20):
        assert canonical(bad) is None  # answered 400 as it is, not redirected with its bad value


def test_a_valid_set_of_directives_is_answered_as_sent_in_either_order_and_only_as_spelt() -> None:
    """The order of a valid set needs no redirect; any other spelling does."""
    for sent in ("_HLS_msn=12", "_HLS_skip=YES", "_HLS_msn=0", "_HLS_msn=12&_HLS_skip=YES",
                 "_HLS_skip=YES&_HLS_msn=12"):
        assert answered_as_sent(sent, True), sent
        assert not answered_as_sent(sent, False), sent  # blocking reload off: the query is not ours
    for sent in ("", "_HLS_msn=012", "_HLS_msn=%312", "_HLS_%6dsn=12", "_HLS_msn=12&_HLS_msn=12",
                 "_HLS_skip=YES&_HLS_skip=YES", "_HLS_skip=v2", "_HLS_skip=yes", "_HLS_skip=Y%45S",
                 "_hls_msn=12", "_HLS_MSN=12", "_HLS_msn=12&_HLS_part=0", "_HLS_msn=12&", "&_HLS_msn=12",
                 "_HLS_msn", "_HLS_msn=", "_HLS_msn=12?cachebust=1", "_HLS_msn=12&cachebust=1",
                 "_HLS_msn=+12", "_HLS_msn=１２", "_HLS_msn=" + "1" * 20, "_HLS_msn=12#x"):
        assert not answered_as_sent(sent, True), sent


# A cache buster must not buy the whole playlist from the VM (a CDN passes each unseen URL on).
BUSTED = [  # (path, query, the canonical URL relative to it)
    (MASTER, "cachebust=ab12cd", "stream.m3u8"),  # Owncast's page busts every playlist request
    (LIVE_MASTER, "x=1", "master.m3u8"),
    (hls_media(0), "cachebust=ab12cd", "stream.m3u8"),
    (live_media(1), "v=1&w=2", "playlist.m3u8"),
    ("/live/playlist.m3u8", "_=1", "playlist.m3u8"),
    # Owncast's page on a blocking reload: its buster after a second "?".
    (hls_media(0), "_HLS_msn={n}&_HLS_skip=YES?cachebust=ab12cd", "stream.m3u8?_HLS_msn={n}&_HLS_skip=YES"),
    (hls_media(1), "v=7&_HLS_msn={n}", "stream.m3u8?_HLS_msn={n}"),
    (live_media(0), "_HLS_skip=YES&v=1&_HLS_msn={n}", "playlist.m3u8?_HLS_msn={n}&_HLS_skip=YES"),
    (live_media(0), "_HLS_msn={n}&_HLS_msn={n}", "playlist.m3u8?_HLS_msn={n}"),
    # What the service does not use, or spells another way, is a second URL for one answer.
    (live_media(0), "_HLS_msn={n}&_HLS_part=3", "playlist.m3u8?_HLS_msn={n}"),  # no partial segments
    (live_media(0), "_HLS_msn={n}&_HLS_part=0&_HLS_skip=YES", "playlist.m3u8?_HLS_msn={n}&_HLS_skip=YES"),
    (hls_media(1), "_HLS_msn=000{n}", "stream.m3u8?_HLS_msn={n}"),  # leading zeros
    (live_media(1), "_HLS_msn={n}&_HLS_skip=v2", "playlist.m3u8?_HLS_msn={n}&_HLS_skip=YES"),  # the same delta
    (live_media(0), "_HLS_skip=YES&_HLS_msn={n}&_HLS_skip=YES", "playlist.m3u8?_HLS_msn={n}&_HLS_skip=YES"),
    # Other players' forms (_HLS_part=0, v2), at either path.
    (hls_media(0), "_HLS_msn={n}&_HLS_part=0", "stream.m3u8?_HLS_msn={n}"),
    (hls_media(0), "_HLS_msn={n}&_HLS_skip=v2", "stream.m3u8?_HLS_msn={n}&_HLS_skip=YES"),
    (live_media(1), "_HLS_skip=YES&_HLS_msn={n}&_HLS_part=0", "playlist.m3u8?_HLS_msn={n}&_HLS_skip=YES"),
    # Other query strings players add, an empty one and one that decodes to nothing printable.
    *((path, query, path.rsplit("/", 1)[1]) for path in (MASTER, hls_media(0), hls_media(1))
      for query in ("v=123", "v=1700000000000&foo=bar", "_=1", "", "%ff=%00")),
]
# Percent-encoding anywhere is another cache key for the same whole playlist.
SPELLINGS: list[tuple[str, str | None]] = [  # (target, the canonical URL relative to it)
    ("/live/0/playlist.m3u8?_HLS_%6dsn={n}", "playlist.m3u8?_HLS_msn={n}"),
    ("/live/0/playlist.m3u8?_HLS_%6Dsn={n}&_HLS_skip=YES", "playlist.m3u8?_HLS_msn={n}&_HLS_skip=YES"),
    ("/live/0/playlist.m3u8?_HLS_msn=%3{n}", None),  # (filled in below: the number's first digit encoded)
    ("/live/0/playlist.m3u8?_HLS_msn={n}&_HLS_skip=Y%45S", "playlist.m3u8?_HLS_msn={n}&_HLS_skip=YES"),
    ("/live/0/pl%61ylist.m3u8", "playlist.m3u8"),
    ("/live/0/pl%61ylist.m3u8?_HLS_msn={n}", "playlist.m3u8?_HLS_msn={n}"),
    ("/live/pl%61ylist.m3u8", "playlist.m3u8"),
    ("/live/%30/playlist.m3u8", "../../live/0/playlist.m3u8"),
    ("/l%69ve/1/playlist.m3u8?_HLS_skip=YES", "../../live/1/playlist.m3u8?_HLS_skip=YES"),
    ("/live/m%61ster.m3u8", "master.m3u8"),
    ("/live/master.m3u8?", "master.m3u8"),  # an empty query is another key too
    ("/live/0/playlist.m3u8?", "playlist.m3u8"),
    ("/%68ls/stream.m3u8", "../hls/stream.m3u8"),
    ("/hls/0/stre%61m.m3u8?_HLS_skip=YES&_HLS_msn={n}", "stream.m3u8?_HLS_msn={n}&_HLS_skip=YES"),
    # Case: a name the service does not use (it is not a directive), so it goes.
    ("/hls/0/stream.m3u8?_hls_msn={n}", "stream.m3u8"),
    ("/hls/0/stream.m3u8?_HLS_MSN={n}&_HLS_skip=YES", "stream.m3u8?_HLS_skip=YES"),
]


@pytest.mark.parametrize(("target", "location"), SPELLINGS + [(f"{p}?{q}", loc) for p, q, loc in BUSTED])
async def test_a_query_the_service_does_not_use_or_another_spelling_is_a_small_redirect_to_the_canonical_url(
        world: World, client: Client, target: str, location: str | None) -> None:
    """Another spelling gets a small relative 302 to the canonical URL, with no second redirect."""
    n = last(world)
    if location is None:
        target = target.replace("%3{n}", f"%3{str(n)[0]}{str(n)[1:]}")
        location = "playlist.m3u8?_HLS_msn={n}"
    target, location = target.replace("{n}", str(n)), location.replace("{n}", str(n))
    status, headers, body = await raw_get(client, target)
    assert (status, headers.get("location"), body) == (302, location, b""), target
    assert headers["cache-control"] == "public, max-age=60" and headers["access-control-allow-origin"] == "*"
    assert sum(len(k) + len(v) + 4 for k, v in headers.items()) < 400
    for prefix in ("", "/tv"):  # the same under a path prefix a proxy strips
        canonical = urljoin(f"http://h{prefix}{target}", location).removeprefix(f"http://h{prefix}")
        assert "%" not in canonical and not canonical.endswith("?"), canonical
        async with client.get(canonical, headers=PLAIN, allow_redirects=False) as r:
            assert r.status == 200 and b"#EXTM3U" in await r.read(), (target, canonical)  # no second redirect
    followed = await get(client, target)
    assert followed[0] == 200 and followed[2] == (await get(client, canonical))[2]


@pytest.mark.parametrize("target", ["/live%2Fplaylist.m3u8", "/live%2F0/playlist.m3u8", "/live/0%2Fplaylist.m3u8",
                                    "/hls%2Fstream.m3u8", "/live/./playlist.m3u8", "/live/x/../playlist.m3u8",
                                    "//live/playlist.m3u8", "/live/playlist.m3u8;x", "/Live/playlist.m3u8",
                                    "/live/Playlist.m3u8", "/live/0/playlist.M3U8", "/HLS/stream.m3u8"])
async def test_other_paths_that_a_server_might_take_for_a_playlist_are_not_one(
        client: Client, target: str) -> None:
    """Encoded slash, dot segments, a parameter, another case: a 404 (`no-cache`), no playlist."""
    status, headers, _ = await raw_get(client, target)
    assert (status, headers["cache-control"]) == (404, hls.UNREADY_CACHE_CONTROL), target


async def test_an_absolute_form_target_counts_from_its_path(client: Client) -> None:
    """An absolute-form target is the same URL, not a spelling to redirect (that would loop)."""
    host = f"{client.server.host}:{client.server.port}"
    for path in (LIVE_MASTER, MASTER, live_media(0), hls_media(1)):
        status, _, body = await raw_get(client, f"http://{host}{path}")
        assert status == 200 and body.startswith(b"#EXTM3U"), path
    status, headers, _ = await raw_get(client, f"http://{host}{live_media(0)}?x=1")
    assert (status, headers["location"]) == (302, "playlist.m3u8")


async def raw_get(client: TestClient[Any, Any], target: str) -> tuple[int, dict[str, str], bytes]:
    """One GET of `target` exactly as written (no client in between that requotes it)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: h\r\nAccept-Encoding: identity\r\n"
                     "Connection: close\r\n\r\n".encode())
        async with asyncio.timeout(5):
            data = await reader.read()
    finally:
        writer.close()
    [response] = responses(data)
    return response.status, response.headers, response.body


@pytest.mark.parametrize("query", ["_HLS_msn={n}", "_HLS_msn={n}&_HLS_skip=YES", "_HLS_skip=YES"])
@pytest.mark.parametrize("path", [hls_media(0), live_media(1)])
async def test_ll_hls_queries_as_hlsjs_sends_them_are_answered_at_once(
        world: World, client: Client, path: str, query: str) -> None:
    """hls.js's _HLS_msn and _HLS_skip, in its order, are canonical: answered without a redirect."""
    query = query.replace("{n}", str(last(world)))
    async with asyncio.timeout(2), client.get(f"{path}?{query}", headers=PLAIN, allow_redirects=False) as r:
        body = await r.read()
    assert r.status == 200, (r.status, r.headers.get("Location"))
    assert (b"#EXT-X-SKIP:SKIPPED-SEGMENTS=" in body) == ("_HLS_skip" in query)


@pytest.mark.parametrize("encoding", [PLAIN, {"Accept-Encoding": "gzip"}])
@pytest.mark.parametrize("path", [hls_media(0), live_media(1), "/live/playlist.m3u8"])
async def test_videojs_order_of_the_directives_is_answered_as_the_canonical_one_without_a_redirect(
        world: World, client: Client, path: str, encoding: dict[str, str]) -> None:
    """video.js's order of directives gets what the canonical form gets, listed or held."""
    n = last(world)

    async def get(client: TestClient[Any, Any], url: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        async with client.get(url, headers=headers, allow_redirects=False) as r:  # one round trip
            return r.status, r.headers, await r.read()

    for msn in (n - 1, n):  # listed: answered at once
        ours = await get(client, f"{path}?_HLS_skip=YES&_HLS_msn={msn}", encoding)
        canonical = await get(client, f"{path}?_HLS_msn={msn}&_HLS_skip=YES", encoding)
        assert ours[0] == canonical[0] == 200 and ours[2] == canonical[2]
        assert b"#EXT-X-SKIP:SKIPPED-SEGMENTS=" in (gzip.decompress(ours[2]) if encoding != PLAIN else ours[2])
        assert {h: ours[1].get(h) for h in SAME_HEADERS} == {h: canonical[1].get(h) for h in SAME_HEADERS}
    # The next number is held until it is listed, in either order, and both get the same answer.
    held = [asyncio.ensure_future(get(client, f"{path}?{q}", encoding))
            for q in (f"_HLS_skip=YES&_HLS_msn={n + 1}", f"_HLS_msn={n + 1}&_HLS_skip=YES")]
    await until(lambda: world.playlists.held_requests == 2, "both held")
    world.now += 1
    for v in (0, 1):
        world.owncast_lists(v, "stream-a-14.ts")
    async with asyncio.timeout(5):
        ours, canonical = await asyncio.gather(*held)
    assert ours[0] == canonical[0] == 200 and ours[2] == canonical[2]
    assert {h: ours[1].get(h) for h in SAME_HEADERS} == {h: canonical[1].get(h) for h in SAME_HEADERS}
    assert ours[1]["Cache-Control"] == hls.blocking_cache_control(1)


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("path", [hls_media(0), live_media(1)])
async def test_a_number_listed_long_before_is_answered_with_the_newest_version(
        world: World, client: Client, path: str, skip: bool) -> None:
    """6.2.5.2: any listed `_HLS_msn` at once; past MSN_BEHIND_LIMIT behind, whole (never a delta)."""
    n = last(world)
    tail = "&_HLS_skip=YES" if skip else ""
    whole = await get(client, path)
    canonical = await get(client, f"{path}?_HLS_msn={n}{tail}")
    assert whole[0] == canonical[0] == 200
    for asked in (0, 1, n - 3):
        async with client.get(f"{path}?_HLS_msn={asked}{tail}", headers=PLAIN, allow_redirects=False) as r:
            assert (r.status, await r.read()) == (200, whole[2])
            assert r.headers["Cache-Control"] == hls.blocking_cache_control(1) == canonical[1]["Cache-Control"]
            assert r.headers["Access-Control-Allow-Origin"] == "*"
    for asked in (n - 2, n - 1):
        async with client.get(f"{path}?_HLS_msn={asked}{tail}", headers=PLAIN, allow_redirects=False) as r:
            body = await r.read()
            assert r.status == 200 and r.headers["Cache-Control"] == canonical[1]["Cache-Control"]
        assert f"stream-a-{n - 1}.ts".encode() in body or body == canonical[2]  # the newest version
        if not skip:  # a delta depends on the version the player holds (_HLS_msn - 1); the full one not
            assert body == canonical[2]


@pytest.mark.parametrize("skip", [False, True])
async def test_late_numbers_past_a_clients_budget_are_a_small_redirect(
        tmp_path: Path, aiohttp_client: Any, skip: bool) -> None:
    """Each late number is a cache key of its own: a client gets late.BURST such answers and
    late.PER_TARGET_DURATION more per target duration, then an uncached redirect to the URL without a
    number. Another client has its own budget."""
    world = World(tmp_path, window=12.0, stepped=True, can_block_reload=True)
    clock = Clock()
    # The playlist route as create_app adds it, with a budget on a clock of the test's.
    routes = PlaylistRoutes(world.playlists, world.metrics, 0, True, RouteOptions(clients=Clients(
        Proxies((ipaddress.ip_network("127.0.0.0/8"),)), late.LateAnswers(clock=clock))))
    app = web.Application()
    app.router.add_get(r"/live/{n:[0-9]+}/playlist.m3u8", routes.media)
    client: TestClient[Any, Any] = await aiohttp_client(app, auto_decompress=False)
    await _live(world)
    path = live_media(0)
    tail = "&_HLS_skip=YES" if skip else ""

    async def ask(number: int, who: str | None) -> tuple[int, str | None]:
        headers = dict(PLAIN, **({"X-Forwarded-For": who} if who else {}))
        async with client.get(f"{path}?_HLS_msn={number}{tail}", headers=headers, allow_redirects=False) as r:
            await r.read()
            if r.status == 302:
                assert r.headers["Cache-Control"] == "no-cache" and r.headers["Access-Control-Allow-Origin"] == "*"
            return r.status, r.headers.get("Location")

    try:
        plain = "playlist.m3u8" + ("?_HLS_skip=YES" if skip else "")
        answers = [await ask(i, "203.0.113.7") for i in range(late.BURST + 1)]
        assert answers == [(200, None)] * late.BURST + [(302, plain)]
        assert await ask(0, "203.0.113.8") == (200, None)  # another client: a budget of its own
        assert await ask(last(world), "203.0.113.7") == (200, None)  # keeping up is never budgeted
        clock.t += 1.0 / late.PER_TARGET_DURATION  # a target duration of 1 s: one more comes back
        assert [await ask(2, "203.0.113.7") for _ in range(2)] == [(200, None), (302, plain)]
    finally:
        await world.pub.close()


def test_late_answers_remember_a_bounded_number_of_clients() -> None:
    """Clients not told apart share a budget UNKNOWN_SHARE times larger; a forgotten one is refilled."""
    clock = Clock()
    budget = late.LateAnswers(clock=clock, max_clients=3)
    shared = late.BURST * late.UNKNOWN_SHARE
    assert [budget.take(None, 1) for _ in range(shared + 1)] == [True] * shared + [False]
    for _ in range(late.BURST):
        assert budget.take("a", 1)
    assert not budget.take("a", 1)
    for who in ("b", "c", "d"):  # "a" is forgotten: the bound is per remembered client
        assert budget.take(who, 1)
    assert budget.take("a", 1)
    while budget.take("e", 4):
        pass
    clock.t += 1.0  # a longer target duration refills more slowly: 2 per 4 s here
    assert not budget.take("e", 4)
    clock.t += 1.0
    assert budget.take("e", 4) and not budget.take("e", 4)


# -- blocking reload and delta updates at /hls/ --------------------------------------------------


async def test_blocking_reload_holds_until_the_segment_is_listed(world: World, client: Client) -> None:
    n = last(world) + 1
    request = asyncio.ensure_future(client.get(f"{hls_media(0)}?v=7&_HLS_msn={n}", headers=PLAIN))
    await until(lambda: world.playlists.held_requests == 1, "the request is held by the server")
    assert not request.done()
    world.now += 1
    world.owncast_lists(0, "stream-a-14.ts")
    world.owncast_lists(1, "stream-a-14.ts")
    async with asyncio.timeout(5):
        resp = await request
    assert resp.status == 200 and "stream-a-14.ts" in await resp.text()
    assert resp.headers["Cache-Control"] == hls.blocking_cache_control(1)
    async with asyncio.timeout(1):  # listed: answered at once, exactly as /live/ answers it
        live = await get(client, f"{live_media(0)}?_HLS_msn={n}")
        owncast = await get(client, f"{hls_media(0)}?_HLS_msn={n}")
    assert owncast[0] == live[0] == 200 and owncast[2] == live[2]


@pytest.mark.parametrize("query",
                         ["_HLS_part=1", "_HLS_msn=abc", "_HLS_msn=-1", "_HLS_skip=NO", "_HLS_msn=999999"])
async def test_bad_blocking_requests_are_400_as_under_live(client: Client, query: str) -> None:
    assert (await get(client, f"{hls_media(0)}?{query}"))[0] == 400
    assert (await get(client, f"{live_media(0)}?{query}"))[0] == 400


async def test_delta_update_is_lives(world: World, client: Client) -> None:
    full = world.playlists.media_playlist(0)
    assert full is not None and full.delta is not None  # the window offers delta updates
    status, headers, body = await get(client, f"{hls_media(0)}?_HLS_skip=YES")
    assert (status, body, headers["ETag"]) == (200, full.delta.body, full.delta.etag)
    assert b"#EXT-X-SKIP:SKIPPED-SEGMENTS=" in body
    query = f"_HLS_msn={last(world)}&_HLS_skip=YES"
    assert (await get(client, f"{hls_media(0)}?{query}&v=3"))[2] == (await get(client, f"{live_media(0)}?{query}"))[2]


# -- unknown, not ready, and what is not ours ----------------------------------------------------


@pytest.mark.parametrize("n", ["2", "00", "01", "007", "9" * 5000])
async def test_leading_zero_and_huge_variants_are_404(client: Client, n: str) -> None:
    for query in ("", "?_HLS_msn=1"):
        status, headers, body = await get(client, hls_media(n) + query)
        assert (status, body) == (404, b"unknown variant\n")
        assert headers["Cache-Control"] == hls.UNREADY_CACHE_CONTROL
        assert headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "path", ["/hls/", "/hls/0/", "/hls/0/stream-a-1.ts", "/hls/0/playlist.m3u8", "/hls/master.m3u8",
             "/hls/x/stream.m3u8", "/hls/0/1/stream.m3u8", "/hls/stream.m3u8/", "/hls/-1/stream.m3u8"])
async def test_nothing_else_under_hls_is_ours(client: Client, path: str) -> None:
    status, headers, _ = await get(client, path)
    assert status == 404 and headers["Access-Control-Allow-Origin"] == "*"


async def test_a_long_window_without_gzip_is_its_newest_segments_bounded(aiohttp_client: Any) -> None:
    """Without gzip, the newest whole segments in MAX_IDENTITY_BYTES, an ETag of their own."""
    playlists = FakePlaylists(target_duration=1, variants=1)
    gen = playlists.generators[0] = CountingGenerator(1, WindowOptions(3600.0, can_block_reload=True))
    for n in range(3600):
        gen.append(ListedSegment(f"https://r2.example/live/0/stream-a-{n}.ts", 1.0, 1e9 + n), float(n))
    full = gen.render()
    assert len(full.body) > 4 * hls.MAX_IDENTITY_BYTES
    client = await aiohttp_client(create_app(playlists, FakeHealth(), Metrics()), auto_decompress=False)
    for path in (hls_media(0), live_media(0)):
        for no_gzip in (PLAIN, {"Accept-Encoding": "br"}, {"Accept-Encoding": "gzip;q=0"}):
            status, headers, body = await get(client, path, no_gzip)
            assert status == 200 and len(body) <= hls.MAX_IDENTITY_BYTES and "Content-Encoding" not in headers
            assert body.endswith(b"stream-a-3599.ts\n") and headers["ETag"] not in (full.etag, full.gzip_etag)
            again = await get(client, path, {**no_gzip, "If-None-Match": headers["ETag"]})
            assert again[0] == 304
        status, headers, body = await get(client, path, {"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == full.body


async def test_metrics_reuse_the_bounded_labels(client: Client) -> None:
    before = await playlist_counts(client)
    await get(client, MASTER)
    await get(client, f"{MASTER}?v=1")
    await get(client, hls_media(0))
    _, headers, _ = await get(client, hls_media(1))
    await get(client, hls_media(1), {**PLAIN, "If-None-Match": headers["ETag"]})
    for n in ("2", "99", "007", "123456"):
        await get(client, hls_media(n))
    await get(client, f"{hls_media(0)}?_HLS_msn=abc")
    after = await playlist_counts(client)
    added = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    # ?v=1 is a redirect to the canonical URL (counted under the master's label), then that URL.
    assert added == {("master", "200"): 2, ("master", "302"): 1, ("0", "200"): 1, ("1", "200"): 1,
                     ("1", "304"): 1, ("unknown", "404"): 4, ("0", "400"): 1}


@pytest.mark.parametrize("name", ["seg5.ts", "0/stream-abc-12.m4s", "x/init.MP4", ".ts", "seg.", "seg", "",
                                  "a..ts", "dir.d/file", "seg.ts/", "/abs/p.mp4", "..", ".", "a.b.c.ts"])
def test_a_names_suffix_is_the_one_pathlib_gives(name: str) -> None:
    """hls.suffix reads a name as PurePosixPath does, without making a path several times a segment."""
    assert hls.suffix(name) == PurePosixPath(name).suffix
    assert hls.segment_content_type(name) == {".ts": "video/mp2t", ".m4s": "video/iso.segment", ".mp4": "video/mp4",
                                              ".aac": "audio/aac"}.get(PurePosixPath(name).suffix.lower())
