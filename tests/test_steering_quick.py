"""The steering manifest answered before aiohttp parses the request (QuickSteering): at the seam,
what it takes and leaves, counted as aiohttp's route counts; on a real listener, the same bytes as the
route's answer, and a private stream's left to its gate."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from broadcaster.access.grants import Gatekeeper, Keys
from broadcaster.access.invites import InvitesFile
from broadcaster.http import Pathways, PlaylistOptions, create_app
from broadcaster.http.clients import Proxies, here_at
from broadcaster.http.connections import GatedSite, GateOptions
from broadcaster.http.gate import Gate
from broadcaster.http.keys import QUICK
from broadcaster.http.quick import QuickAnswers
from broadcaster.http.serving import serving
from broadcaster.http.steering_route import QuickSteering, SteeringRoute
from broadcaster.metrics import Metrics
from broadcaster.playlist import hls
from broadcaster.playlist.steering import render_steering
from broadcaster.steering.masters import MAX_HOSTS
from tests.support.fakes import FakeHealth, FakePlaylists
from tests.support.raw_http import exchange, undated

MANIFEST = "/live/steering.json"


@dataclass
class Source:
    """The policy's manifest (the bucket first, unless a test sets `priority`) and the pathways counted."""

    priority: tuple[str, ...] = ("bucket", "vm")
    counted: list[str] = field(default_factory=list)

    def manifest(self) -> bytes:
        return render_steering(self.priority, 1, hls.STEERING_MANIFEST_NAME)

    def ttl(self) -> int:
        return 1

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME, here: str | None = None) -> None:
        return None  # not asked here: only the manifest is


def quick_at_seam(proxies: Proxies = Proxies()) -> tuple[QuickAnswers, Source, QuickSteering]:
    source = Source()
    route = SteeringRoute(source, source.counted.append, proxies=proxies)
    quick = QuickAnswers()
    steering = QuickSteering(route, proxies, "live")
    quick.whole(MANIFEST, steering)
    return quick, source, steering


def request(target: str = MANIFEST, *fields: str) -> bytes:
    return (f"GET {target} HTTP/1.1\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n").encode()


def body_of(answer: bytes | None) -> dict[str, object]:
    assert answer is not None and answer.startswith(b"HTTP/1.1 200 OK\r\n")
    parsed: dict[str, object] = json.loads(answer.partition(b"\r\n\r\n")[2])
    return parsed


def test_a_players_reload_is_answered_and_counted_by_the_pathway_it_names() -> None:
    quick, source, _ = quick_at_seam()
    for query, label in (("?_HLS_pathway=bucket&_HLS_throughput=4200000", "bucket"), ("", "none"),
                         ("?_HLS_pathway=evil", "evil"), ("?_HLS_throughput=1&_HLS_pathway=vm", "vm")):
        answer = quick.answer(request(MANIFEST + query, "Host: live.example.com", "User-Agent: x"))
        assert body_of(answer) == {"VERSION": 1, "TTL": 1, "RELOAD-URI": "http://live.example.com/live/steering.json",
                                   "PATHWAY-PRIORITY": ["bucket", "vm"]}
        assert source.counted[-1] == label, query
    assert quick.answered == 4


@pytest.mark.parametrize("query", ["_HLS_pathway", "_HLS_pathway=", "_HLS_pathway=a=b", "&&_HLS_pathway=vm",
                                   "x_HLS_pathway=vm&_HLS_pathway=bucket", "_HLS_pathway=vm&_HLS_pathway=bucket",
                                   "_HLS_pathwayx=vm", "=vm&_HLS_pathway=~.-_", ""])
def test_the_pathway_counted_is_the_one_aiohttp_reads(query: str) -> None:
    """The route counts yarl's query.get("_HLS_pathway"): read from the raw query, the same value."""
    quick, source, _ = quick_at_seam()
    assert quick.answer(request(f"{MANIFEST}?{query}", "Host: h")) is not None
    pathway = URL(f"{MANIFEST}?{query}").query.get("_HLS_pathway", "")
    assert source.counted == [pathway or "none"]  # bounded by the counter (test_pathway_http)


@pytest.mark.parametrize("data", [
    request(MANIFEST),  # no Host: aiohttp's 400
    request(MANIFEST, "Host: a", "Host: b"),
    request(MANIFEST, "Host: a", "User-Agent: x", "user-agent: y"),
    request(MANIFEST, "Host: a b"),
    request(MANIFEST + "?_HLS_pathway=v%6D", "Host: a"),
    request(MANIFEST + "?_HLS_pathway=v+m", "Host: a"),
    request(MANIFEST + "?a=1;_HLS_pathway=vm", "Host: a"),
    request(MANIFEST, "Host: a", "If-None-Match: *"),
    request(MANIFEST, "Host: a", 'If-None-Match: "x", "y"'),
    request(MANIFEST, "Host: a", 'If-None-Match: "x"', 'If-None-Match: "y"'),
    request(MANIFEST, "Host: a", 'If-None-Match: w/"x"'),
    request(MANIFEST, "Host: a", "Connection: close"),
    request(MANIFEST, "Host: a", "Content-Length: 0"),
    request(MANIFEST, "Host: a", "Transfer-Encoding: chunked"),
    request(MANIFEST, "Host: a", "X: caf\u00e9"),  # UTF-8: not printable ASCII
    request(MANIFEST, "Host: a")[:-2],  # not whole yet
    request(MANIFEST, "Host: a") * 2,  # two
    request(MANIFEST, "Host: a").replace(b"\r\n", b"\n"),
    request(MANIFEST, "Host: a").replace(b"HTTP/1.1", b"HTTP/1.0"),
    request(MANIFEST, "Host: a").replace(b"GET", b"HEAD"),
    request("/live/steering.json/", "Host: a"),
    request("/live/Steering.json", "Host: a"),
])
def test_anything_else_is_left_to_aiohttp_and_not_counted(data: bytes) -> None:
    quick, source, _ = quick_at_seam()
    for _ in range(2):  # what a head says is kept: a second sight decides alike
        assert quick.answer(data) is None
    assert source.counted == [] and quick.answered == 0


def test_if_none_match_the_answers_own_tag_is_a_304_and_another_version_gets_the_manifest() -> None:
    quick, source, _ = quick_at_seam()
    first = quick.answer(request(MANIFEST, "Host: a"))
    assert first is not None
    etag = next(line.partition(": ")[2] for line in first.decode().split("\r\n") if line.lower().startswith("etag:"))
    for tag in (etag, f"W/{etag}", f"  {etag}  "):
        answer = quick.answer(request(MANIFEST, "Host: a", f"If-None-Match:{tag}"))
        assert answer is not None and answer.startswith(b"HTTP/1.1 304 Not Modified\r\n")
        assert answer.endswith(b"\r\n\r\n") and b"Content-Length" not in answer
        assert f"Etag: {etag}" in answer.decode()
    source.priority = ("vm", "bucket")  # a new version: the old tag matches nothing
    changed = quick.answer(request(MANIFEST, "Host: a", f"If-None-Match: {etag}"))
    assert body_of(changed)["PATHWAY-PRIORITY"] == ["vm", "bucket"]
    assert source.counted == ["none"] * 5


TUNNEL = ("Host: live.example.com", 'CF-Visitor: {"scheme":"https"}', "X-Forwarded-Proto: https",
          "CF-Connecting-IP: 203.0.113.9")


def test_a_proxys_word_for_the_scheme_is_believed_only_from_the_proxy() -> None:
    """The tunnel (a loopback peer) says https; the same bytes from anyone else: no absolute RELOAD-URI."""
    quick, _, _ = quick_at_seam(Proxies(cloudflare=True))
    tunnel, stranger = (lambda: "127.0.0.1"), (lambda: "198.51.100.7")
    data = request(MANIFEST + "?_HLS_pathway=bucket", *TUNNEL)
    for peer, reload_uri in ((stranger, None), (tunnel, "https://live.example.com/live/steering.json"),
                             (stranger, None), (tunnel, "https://live.example.com/live/steering.json")):
        assert body_of(quick.answer(data, peer)).get("RELOAD-URI") == reload_uri
    untrusted, _, _ = quick_at_seam(Proxies())
    assert "RELOAD-URI" not in body_of(untrusted.answer(data, tunnel))


def test_the_heads_kept_are_bounded() -> None:
    quick, source, steering = quick_at_seam(Proxies(cloudflare=True))
    for n in range(3 * QuickSteering.KEPT):
        peer = f"10.0.{n // 256}.{n % 256}"
        assert quick.answer(request(MANIFEST, *TUNNEL, f"X-Forwarded-For: {peer}"), lambda: peer) is not None
        assert len(steering._decided) <= QuickSteering.KEPT + 1
    assert len(source.counted) == 3 * QuickSteering.KEPT


def test_the_places_rendered_for_are_bounded() -> None:
    """Any client may name any Host: past MAX_HOSTS places the manifest comes without RELOAD-URI, the
    one answer for all of them, rendered once per change, not once per place."""
    rendered = render_steering(("bucket", "vm"), 1, hls.STEERING_MANIFEST_NAME)
    quick, source, steering = quick_at_seam()
    source.manifest = lambda: rendered  # type: ignore[method-assign]  # one version, as the policy keeps it
    route = steering._route
    answers = []
    for n in range(3 * MAX_HOSTS):
        answer = quick.answer(request(MANIFEST, f"Host: h{n}.example.com"))
        assert ("RELOAD-URI" in body_of(answer)) == (n < MAX_HOSTS), n
        answers.append(route.answer_at(here_at(f"h{n}.example.com", lambda: ("http", False), "/live"), ""))
    assert len({id(a) for a in answers[MAX_HOSTS:]}) == 1 and len(route._cached) == MAX_HOSTS + 1


@contextlib.asynccontextmanager
async def listening(gate: Gate | None = None) -> AsyncIterator[tuple[int, QuickAnswers, Source]]:
    """The public app with content steering, listening as the service does (the connection gate)."""
    source = Source()
    pathways = Pathways(masters=source, steering=source, newest=lambda variant: None,
                        count_steering=source.counted.append)
    app = create_app(FakePlaylists(2), FakeHealth(), Metrics(),
                     playlist_options=PlaylistOptions(pathways=pathways, gate=gate))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
    async with serving(runner, lambda r: GatedSite(r, "127.0.0.1", 0, GateOptions(limit=16, quick=app[QUICK]))):
        yield runner.addresses[0][1], app[QUICK], source


async def test_the_answers_are_the_routes_byte_for_byte() -> None:
    """Each asked quick, then with a query item left to aiohttp (`x=%41`): the same answer, counted alike."""
    async with listening() as (port, quick, source):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        player = ("Host: live.example.com:8443", "User-Agent: Mozilla/5.0", "Accept: */*",
                  "Origin: https://watch.example", "Accept-Encoding: gzip, deflate, br")
        taken = await exchange(reader, writer, request(MANIFEST + "?_HLS_pathway=bucket&_HLS_throughput=1", *player))
        etag = next(line.partition(b": ")[2] for line in taken.split(b"\r\n") if line.lower().startswith(b"etag:"))
        asked = [(MANIFEST + "?_HLS_pathway=bucket&_HLS_throughput=1", player),
                 ("/hls/steering.json?_HLS_pathway=vm", player),
                 (MANIFEST, (*player, f"If-None-Match: {etag.decode()}")),
                 (MANIFEST, (*player, f"If-None-Match: W/{etag.decode()}")),
                 (MANIFEST, (*player, 'If-None-Match: "other"')),
                 (MANIFEST, ("Host: [::1]:8080",)), (MANIFEST, ("Host: a_b",))]
        for target, fields in asked:
            answered = quick.answered
            fast = await exchange(reader, writer, request(target, *fields))
            assert quick.answered == answered + 1, target
            slow = await exchange(reader, writer, request(target + ("&" if "?" in target else "?") + "x=%41", *fields))
            assert quick.answered == answered + 1
            assert undated(fast) == undated(slow), (target, fields)
            assert fast.startswith((b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 304 Not Modified\r\n"))
        assert source.counted == ["bucket"] * 3 + ["vm"] * 2 + ["none"] * 10
        writer.close()


async def test_a_reload_naming_its_pathway_again_gets_the_relative_reload_uri() -> None:
    """Without an absolute RELOAD-URI Shaka 4.16 adds its query again at each reload: a query naming
    _HLS_pathway twice gets the relative RELOAD-URI from aiohttp; named once, none, from the gate."""
    async with listening() as (port, quick, source):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        once = MANIFEST + "?_HLS_pathway=bucket&_HLS_throughput=1"
        twice = MANIFEST + "?_HLS_pathway=bucket&_HLS_pathway=bucket&_HLS_throughput=1&_HLS_throughput=1"
        for host, target, reload_uri, cache_control, quickly in (
                ("a_b", once, None, "public, max-age=1", 1), ("a_b", twice, "steering.json", "private, no-store", 0),
                ("live.example.com", twice, "http://live.example.com/live/steering.json", "public, max-age=1", 1)):
            answered = quick.answered
            head, _, body = (await exchange(reader, writer, request(target, f"Host: {host}"))).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and quick.answered == answered + quickly, (host, target)
            assert json.loads(body).get("RELOAD-URI") == reload_uri, (host, target)
            assert f"\r\nCache-Control: {cache_control}\r\n".encode() in head, head
        assert source.counted == ["bucket"] * 3
        writer.close()


async def test_a_private_streams_manifest_is_its_gates(tmp_path: Path) -> None:
    """It carries each viewer's token: 401 without one, and nothing answered here."""
    gate = Gate(Gatekeeper(Keys("p" * 40, "let me in", 600), InvitesFile(tmp_path / "invites.json")))
    async with listening(gate) as (port, quick, source):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        refused = await exchange(reader, writer, request(MANIFEST + "?_HLS_pathway=bucket", "Host: a"))
        assert refused.startswith(b"HTTP/1.1 401 ") and quick.answered == 0 and source.counted == []
        writer.close()
