"""Whatever a client sends in a query string or a header, the real app (every route, over real HTTP, a real
Publisher behind it) never answers 5xx but the documented 503s. Hypothesis generates the requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from aiohttp import ClientResponseError, web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from broadcaster.status.hub import EventHub
from broadcaster.source.owncast import SourceVariant
from broadcaster.http import LiveEvents, ViewerOptions
from broadcaster.service import default_viewer_dir
from tests.support.served import ServeWorld
from tests.support.world import World

Client = TestClient[web.Request, web.Application]

ROUTES = ["/live/master.m3u8", "/live/playlist.m3u8", "/live/0/playlist.m3u8", "/live/1/playlist.m3u8",
          "/live/playlist.m3u8", "/live/0/playlist.m3u8", "/live/1/playlist.m3u8",
          "/live/7/playlist.m3u8", "/live/events", "/health", "/metrics", "/", "/config.json", "/viewer.min.js",
          "/nothing-here"]
# The 503s the README documents, told apart by their body.
DOCUMENTED_503 = ("stream not ready yet", "the stream is not advancing", "too many event streams",
                  "shutting down")
KEYS = ["_HLS_msn", "_HLS_part", "_HLS_skip", "lastEventId", "x", ""]
HEADERS = ["If-None-Match", "Accept-Encoding", "Last-Event-ID", "Access-Control-Request-Headers", "Range",
           "If-Modified-Since", "Origin", "Cache-Control"]


@pytest.fixture
async def served(serve_world: ServeWorld,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[World, Client]]:
    monkeypatch.setattr("broadcaster.playlist.hls.BLOCK_TIMEOUT_TARGET_DURATIONS", 0.01)  # held requests end at once
    viewer = default_viewer_dir()
    assert viewer is not None
    hub = EventHub()
    world, client = await serve_world(can_block_reload=True,
                                      app=dict(events=LiveEvents(hub), viewer_options=ViewerOptions(viewer)))
    world.pub.on_master([SourceVariant(0, 1_000_000), SourceVariant(1, 500_000)])
    world.owncast_lists((0, 1), "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    yield world, client
    hub.close()  # as the service does: streams end before the server shuts down


# -- ASCII digits only -----------------------------------------------------------------------------


@pytest.mark.parametrize("msn", ["%C2%B2", "%EF%BC%91", "%D9%A1", "1%C2%B2", "1" * 20])
async def test_non_ascii_digits_are_400(served: tuple[World, Client], msn: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """"²" passed str.isdigit() and int() then raised: a 500 and an ERROR line per request."""
    _, client = served
    with caplog.at_level(logging.ERROR):
        for query in (f"_HLS_msn={msn}", f"_HLS_msn=1&_HLS_part={msn}"):
            assert (await client.get(URL(f"/live/0/playlist.m3u8?{query}", encoded=True))).status == 400
    assert not caplog.records


async def test_a_non_ascii_variant_number_is_unknown(served: tuple[World, Client]) -> None:
    _, client = served
    assert (await client.get(URL("/live/%EF%BC%90/playlist.m3u8", encoded=True))).status == 404  # fullwidth 0
    assert (await client.get(URL("/live/%D9%A1/playlist.m3u8", encoded=True))).status == 404  # Arabic-Indic 1


# -- the fuzzer ------------------------------------------------------------------------------------

_text = st.text(max_size=40)
# Numbers and near misses: Unicode digits that str.isdigit() or int() take, signs, exponents, overlong.
_number = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(alphabet="0123456789²³¹١１٠۴߁", min_size=1, max_size=6).map(lambda t: quote(t, safe="")),
    st.text(alphabet="0123456789-+.eE _", min_size=1, max_size=8).map(lambda t: quote(t, safe="")),
)
_value = st.one_of(
    _number,
    _number,
    _number,
    _text.map(lambda t: quote(t, safe="")),  # anything, percent-encoded as UTF-8
    st.sampled_from(["", "%", "%ZZ", "%FF", "%C2", "%00", "YES", "v2", "1e9", "NaN", "1" * 4000]),
)
_pair = st.tuples(st.one_of(st.sampled_from(KEYS), _text.map(lambda t: quote(t, safe=""))), _value)
# The parameters the app reads, each there or not (repeated keys come from the extra pairs), in any order.
_query = st.tuples(
    *(st.one_of(st.none(), st.tuples(st.just(k), _value)) for k in ("_HLS_msn", "_HLS_part", "lastEventId")),
    st.one_of(st.none(), st.tuples(st.just("_HLS_skip"), st.one_of(st.sampled_from(["YES", "v2"]), _value))),
    st.lists(_pair, max_size=3),
).flatmap(lambda t: st.permutations([p for p in t[:-1] if p is not None] + t[-1])).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
# Header values as a client can send them: visible ASCII and tabs/spaces, long ones too.
_header_value = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200),
    st.sampled_from(['"x"', "W/\"", "*", ",,,", "gzip;q=nan", "gzip;q=1e999", "bytes=0-", "bytes=-1,5-2",
                     "99999999999999999999999", "\u00b2".encode().decode("latin-1"), "a" * 4000]),
)
_headers = st.dictionaries(st.sampled_from(HEADERS), _header_value, max_size=4)


async def test_no_query_or_header_makes_a_5xx(served: tuple[World, Client],
                                              caplog: pytest.LogCaptureFixture) -> None:
    _, client = served
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    async def request(path: str, query: str, headers: dict[str, str], method: str) -> None:
        url = URL(path + ("?" + query if query else ""), encoded=True)
        try:
            r = await client.request(method, url, headers=headers)
        except ClientResponseError as err:  # aiohttp's own parser refused it (raw bytes in the URL...)
            assert err.status < 500, (err, path, query, headers)
            seen.append(err.status)
            return
        async with r:
            seen.append(r.status)
            if r.status >= 500:
                body = (await r.content.read(200)).decode(errors="replace")
                assert r.status == 503, (r.status, path, query, headers, body)
                if path == "/health":
                    return  # its 503 is its verdict ("status" says why), not a failure to answer
                # Every other 503 is one the README documents, and says when to retry.
                assert "Retry-After" in r.headers, (path, query, body)
                assert r.method == "HEAD" or body.startswith(DOCUMENTED_503), (path, query, body)

    # Hypothesis drives from a thread; every request runs on the test's loop, where the app lives.
    @settings(max_examples=300, deadline=None, database=None, derandomize=True,  # the same run every time
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(path=st.sampled_from(ROUTES), query=_query, headers=_headers,
           method=st.sampled_from(["GET", "GET", "GET", "HEAD", "OPTIONS"]))
    def fuzz(path: str, query: str, headers: dict[str, str], method: str) -> None:
        asyncio.run_coroutine_threadsafe(request(path, query, headers, method), loop).result(timeout=10)

    with caplog.at_level(logging.ERROR, logger="broadcaster"):
        await asyncio.to_thread(fuzz)
    assert len(seen) >= 300 and 200 in seen and 400 in seen
    assert not [r for r in caplog.records if r.name.startswith("broadcaster")]
