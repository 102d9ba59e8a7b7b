"""Plain playlist GETs answered before aiohttp parses them (broadcaster/http/quick.py): what is taken and
what is left to aiohttp (at the seam), and on a real listener as the service runs it (the connection gate,
aiohttp's runner, the public app over the service's own PlaylistSource): the same bytes as aiohttp's
answer, counted alike, never ahead of a request aiohttp holds, and kept alive as aiohttp keeps its own."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from broadcaster.access.grants import Gatekeeper, Keys
from broadcaster.access.invites import InvitesFile
from broadcaster.access.tokens import PASSPHRASE, ViewerTokens
from broadcaster.http import PlaylistOptions, create_app
from broadcaster.http.connections import GatedSite, GateOptions
from broadcaster.http.gate import Gate
from broadcaster.http.keys import QUICK
from broadcaster.http.quick import QuickAnswers, idle, whole_heads
from broadcaster.http.serving import serving
from broadcaster.metrics import Metrics
from broadcaster.playlist.manifest import ManifestGenerator
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish.visible import VisiblePlaylists
from broadcaster.source.owncast import SourceVariant
from tests.support.fakes import FakeHealth
from tests.support.raw_http import answer, exchange, undated
from tests.support.waiting import until

PLAIN = b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"


def answers() -> tuple[QuickAnswers, list[tuple[object, ...]]]:
    asked: list[tuple[object, ...]] = []
    quick = QuickAnswers()

    def exact(accept_encoding: str) -> tuple[bytes, bytes]:
        asked.append(("exact", accept_encoding))
        return b"HTTP/1.1 200 OK\r\nX: 1\r\n", b"body"

    def numbered(n: int, accept_encoding: str) -> tuple[bytes, bytes] | None:
        asked.append(("numbered", n, accept_encoding))
        return None if n == 9 else (b"HTTP/1.1 200 OK\r\n", b"n")

    quick.exact("/live/playlist.m3u8", exact)
    quick.numbered("live", "playlist.m3u8", numbered)
    return quick, asked


def test_a_plain_get_is_answered_with_the_date_aiohttp_adds() -> None:
    quick, asked = answers()
    answer = quick.answer(b"GET /live/playlist.m3u8 HTTP/1.1\r\nHost: x\r\nAccept-Encoding:  gzip, br \r\n"
                          b"Connection: Keep-Alive\r\n\r\n")
    assert answer is not None
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\nX: 1\r\nDate: ") and head.endswith(b" GMT") and body == b"body"
    assert asked == [("exact", "gzip, br")]  # the value as aiohttp reads it (lowercased: compared so anyway)
    assert quick.answer(PLAIN) == b"HTTP/1.1 200 OK\r\n" + answer[answer.index(b"Date: "):-len(b"body")] + b"n"
    assert asked[-1] == ("numbered", 0, "") and quick.answered == 2


def test_a_private_streams_media_playlist_is_answered_here_only_with_a_token_its_gate_admits() -> None:
    """PRIVATE=true: `?access=<token>` as the whole query and a token the gatekeeper admits (the same
    bytes for every viewer); a request without one, or with anything else in its query, is the gate's to
    refuse (aiohttp's), as is a public stream's with any query."""
    quick = QuickAnswers(admit=lambda token: token == b"v1.9.-.good")
    quick.numbered("live", "playlist.m3u8", lambda n, encoding: (b"HTTP/1.1 200 OK\r\n", b"n"))
    assert quick.answer(b"GET /live/0/playlist.m3u8?access=v1.9.-.good HTTP/1.1\r\n\r\n") is not None
    for target in (b"/live/0/playlist.m3u8", b"/live/0/playlist.m3u8?access=v1.9.-.bad",
                   b"/live/0/playlist.m3u8?access=v1.9.-.good&x=1", b"/live/0/playlist.m3u8?x=1&access=v1.9.-.good",
                   b"/live/0/playlist.m3u8?access=v1.9.-.go%6Fd", b"/live/0/playlist.m3u8?access=",
                   b"/live/0/playlist.m3u8?Access=v1.9.-.good"):
        assert quick.answer(b"GET " + target + b" HTTP/1.1\r\n\r\n") is None, target
    public, _ = answers()
    assert public.answer(b"GET /live/0/playlist.m3u8?access=v1.9.-.good HTTP/1.1\r\n\r\n") is None
    assert quick.answered == 1


@pytest.mark.parametrize(("fields", "taken"), [
    (b"Authorization: Bearer v1.9.-.good\r\n", True),
    (b"Host: x\r\nauthorization:  bearer  v1.9.-.good\r\nAccept: */*\r\n", True),  # names in any case
    (b"Authorization: Bearer v1.9.-.bad\r\nAuthorization: Bearer v1.9.-.good\r\n", False),  # the first, as the gate
    (b"Authorization: Bearer v1.9.-.good \r\n", False),  # the gate strips it: the gate's to answer
    (b"Authorization: Basic v1.9.-.good\r\n", False),
    (b"Authorization: Bearerv1.9.-.good\r\n", False),
    (b"Authorization: Bearer\tv1.9.-.good\r\n", False),
    (b"X-Authorization: Bearer v1.9.-.good\r\n", False),
    (b"", False),
])
def test_a_private_streams_media_playlist_is_answered_here_with_a_bearer_token_its_gate_admits(
        fields: bytes, taken: bool) -> None:
    """The first Authorization field's Bearer token, as the gate reads it (a query's token first)."""
    quick = QuickAnswers(admit=lambda token: token == b"v1.9.-.good")
    quick.numbered("live", "playlist.m3u8", lambda n, encoding: (b"HTTP/1.1 200 OK\r\n", b"n"))
    answer = quick.answer(b"GET /live/0/playlist.m3u8 HTTP/1.1\r\n" + fields + b"\r\n")
    assert (answer is not None) is taken
    with_query = b"GET /live/0/playlist.m3u8?access=v1.9.-.bad HTTP/1.1\r\n" + fields + b"\r\n"
    assert quick.answer(with_query) is None


def test_another_pathways_playlists_are_answered_under_its_folder() -> None:
    """/live/vm/<n>/...: a VM playlist request costs what a bucket one does."""
    quick, asked = answers()

    def vm(n: int, accept_encoding: str) -> tuple[bytes, bytes]:
        asked.append(("vm", n))
        return b"HTTP/1.1 200 OK\r\n", b"v"

    quick.numbered("live/vm", "playlist.m3u8", vm)
    assert quick.answer(b"GET /live/vm/3/playlist.m3u8 HTTP/1.1\r\n\r\n") is not None and asked == [("vm", 3)]
    for path in (b"/live/vm/03/playlist.m3u8", b"/vm/3/playlist.m3u8", b"/live/vm/playlist.m3u8",
                 b"/live/vm//3/playlist.m3u8", b"/x/live/vm/3/playlist.m3u8"):
        assert quick.answer(b"GET " + path + b" HTTP/1.1\r\n\r\n") is None, path
    assert asked == [("vm", 3)]


@pytest.mark.parametrize("data", [
    b"HEAD /live/0/playlist.m3u8 HTTP/1.1\r\n\r\n",
    b"POST /live/0/playlist.m3u8 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.0\r\n\r\n",
    b"GET /live/0/playlist.m3u8?_HLS_msn=5 HTTP/1.1\r\n\r\n",
    b"GET /live/0/playlist.m3u8? HTTP/1.1\r\n\r\n",
    b"GET /live/0/pl%61ylist.m3u8 HTTP/1.1\r\n\r\n",
    b"GET //live/0/playlist.m3u8 HTTP/1.1\r\n\r\n",
    b"GET http://x/live/0/playlist.m3u8 HTTP/1.1\r\n\r\n",
    b"GET /live/00/playlist.m3u8 HTTP/1.1\r\n\r\n",
    b"GET /live/01/playlist.m3u8 HTTP/1.1\r\n\r\n",
    b"GET /live/12345/playlist.m3u8 HTTP/1.1\r\n\r\n",
    b"GET /live/\xd9\xa3/playlist.m3u8 HTTP/1.1\r\n\r\n",  # a digit to str.isdigit, not to HTTP
    b"GET /live/0/stream.m3u8 HTTP/1.1\r\n\r\n",
    b"GET /live/9/playlist.m3u8 HTTP/1.1\r\n\r\n",  # the route's answer is not a 200
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nHost: x\r\n",  # not whole yet
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\n\r\nGET /live/0/playlist.m3u8 HTTP/1.1\r\n\r\n",  # two
    b"GET /live/0/playlist.m3u8 HTTP/1.1\nHost: x\n\n",  # bare LFs
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\n" + b"X: y\r\n" * 65 + b"\r\n",
    b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nX: " + b"y" * 5000 + b"\r\n\r\n",
])
def test_anything_else_is_left_to_aiohttp(data: bytes) -> None:
    quick, asked = answers()
    assert quick.answer(data) is None
    assert all(call[0] != "exact" for call in asked) and quick.answered == 0
    assert asked in ([], [("numbered", 9, "")])


def test_a_failing_route_leaves_the_request_to_aiohttp() -> None:
    quick = QuickAnswers()

    def failing(accept_encoding: str) -> tuple[bytes, bytes]:
        raise ZeroDivisionError

    quick.exact("/live/playlist.m3u8", failing)
    assert quick.answer(b"GET /live/playlist.m3u8 HTTP/1.1\r\n\r\n") is None


@pytest.mark.parametrize(("data", "whole"), [
    (PLAIN, True),
    (PLAIN + PLAIN, True),
    (b"GET / HTTP/1.1\r\nHost: x\r\n", False),  # a head split over reads: never again
    (b"POST /live/watching HTTP/1.1\r\nContent-Length: 2\r\n\r\n", False),
    (b"POST /live/watching HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", False),
    (b"GET /live/events HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", False),
    (b"GET / HTTP/1.1\n\n", False),
])
def test_whole_heads(data: bytes, whole: bool) -> None:
    assert whole_heads(data) is whole


def test_an_aiohttp_without_the_handler_state_read_answers_nothing_here() -> None:
    assert idle(object()) is False


@dataclass
class Served:
    port: int
    quick: QuickAnswers
    metrics: Metrics
    visible: VisiblePlaylists
    add: Any


@contextlib.asynccontextmanager
async def served(keepalive_timeout: float = 75.0, gate: Gate | None = None) -> AsyncIterator[Served]:
    """The public app over VisiblePlaylists (variant 0, one segment), as the service listens."""
    visible = VisiblePlaylists()
    visible.under(2)
    gen = ManifestGenerator(2, WindowOptions(0))

    def add() -> None:
        n = gen.next_sequence
        gen.append(ListedSegment(f"https://media.example/0/seg{n}.ts", 2.0), 1_000_000.0 + n)
        visible.show({0: gen.render()})

    add()
    metrics = Metrics()
    app = create_app(visible, FakeHealth(), metrics, playlist_options=PlaylistOptions(gate=gate))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=keepalive_timeout,
                           handler_cancellation=True)
    async with serving(runner, lambda r: GatedSite(r, "127.0.0.1", 0, GateOptions(limit=64, quick=app[QUICK]))):
        yield Served(runner.addresses[0][1], app[QUICK], metrics, visible, add)


@pytest.mark.parametrize("path", ["/live/playlist.m3u8", "/live/0/playlist.m3u8", "/hls/0/stream.m3u8",
                                  "/live/master.m3u8", "/hls/stream.m3u8"])
@pytest.mark.parametrize("encoding", ["", "Accept-Encoding: gzip, deflate\r\n"])
async def test_the_answer_is_aiohttps_byte_for_byte(path: str, encoding: str) -> None:
    async with served() as s:
        s.visible.announce([])  # no master yet: both answer 503, and aiohttp gives it
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n{encoding}".encode()
        if "master" in path or path == "/hls/stream.m3u8":
            assert (await exchange(reader, writer, request + b"\r\n")).startswith(b"HTTP/1.1 503 ")
            s.visible.announce([SourceVariant(0, 1_000_000)])
        assert s.quick.answered == 0
        quick = await exchange(reader, writer, request + b"\r\n")
        assert s.quick.answered == 1
        # A tag matching nothing: aiohttp's route gives the same 200.
        slow = await exchange(reader, writer, request + b'If-None-Match: "other"\r\n\r\n')
        assert s.quick.answered == 1
        assert quick.startswith(b"HTTP/1.1 200 OK\r\n") and undated(quick) == undated(slow)
        assert (b"Content-Encoding: gzip\r\n" in quick) is bool(encoding)
        label = "master" if "master" in path or path == "/hls/stream.m3u8" else "0"
        assert s.metrics.playlist_requests._counts[(label, 200)] == 2
        writer.close()


async def test_a_private_streams_reload_is_answered_here_as_its_gate_answers_it(tmp_path: Path) -> None:
    """A token in the query or a Bearer header: the same bytes; a forged one is the gate's to refuse."""
    tokens = ViewerTokens("s" * 40)
    gate = Gate(Gatekeeper(Keys("s" * 40, "pw"), InvitesFile(tmp_path / "invites.json")))
    token = tokens.mint(PASSPHRASE, int(time.time()) + 600)
    async with served(gate=gate) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        bearer = f"GET /live/0/playlist.m3u8 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n".encode()
        quick = await exchange(reader, writer, bearer + b"\r\n")
        slow = await exchange(reader, writer, bearer + b'If-None-Match: "other"\r\n\r\n')  # through aiohttp
        assert s.quick.answered == 1 and quick.startswith(b"HTTP/1.1 200 OK\r\n") and undated(quick) == undated(slow)
        assert b"\r\nCache-Control: private, max-age=" in quick  # no cache in front keeps what a token opened
        query = await exchange(reader, writer, f"GET /live/0/playlist.m3u8?access={token} HTTP/1.1\r\n\r\n".encode())
        assert s.quick.answered == 2 and undated(query) == undated(quick)
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        refused = await exchange(reader, writer, bearer.replace(token.encode(), forged.encode()) + b"\r\n")
        assert refused.startswith(b"HTTP/1.1 403 ") and s.quick.answered == 2
        writer.close()


async def test_a_request_behind_a_held_one_is_answered_after_it() -> None:
    async with served() as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"GET /live/0/playlist.m3u8?_HLS_msn=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: s.visible.held_requests == 1, "the blocking request held")
        writer.write(PLAIN)  # aiohttp has the held one in hand: this one queues behind it
        # Another connection's answer: by then the server has read the first one's second request.
        other_reader, other_writer = await asyncio.open_connection("127.0.0.1", s.port)
        assert b"seg0.ts" in await exchange(other_reader, other_writer, PLAIN) and s.quick.answered == 1
        s.add()
        held, behind = await answer(reader), await answer(reader)
        assert b"seg1.ts" in held and b"seg1.ts" in behind and s.quick.answered == 1
        assert b"seg1.ts" in await exchange(reader, writer, PLAIN) and s.quick.answered == 2  # idle again
        writer.close()
        other_writer.close()


async def test_a_connection_answered_here_is_kept_alive_as_aiohttp_keeps_it() -> None:
    async with served(keepalive_timeout=1.0) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        for _ in range(25):  # a player's reloads, 0.1 s apart, past two keep-alive timeouts
            assert (await exchange(reader, writer, PLAIN)).startswith(b"HTTP/1.1 200 ")
            await asyncio.sleep(0.1)
        assert s.quick.answered == 25
        async with asyncio.timeout(30):  # aiohttp closes it once idle a keep-alive timeout
            assert await reader.read() == b""
        writer.close()

