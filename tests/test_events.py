"""broadcaster.status.hub and broadcaster.http.events over real HTTP, read by a real SSE parser; the hub's
ping interval and the watcher's period are injected, so nothing waits on the production timers."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from broadcaster.http import LiveEvents, PlaylistOptions, Running, create_app
from broadcaster.http.events import parse_last_event_id
from broadcaster.metrics import ConnectionMetrics, Metrics
from broadcaster.service import Service
from broadcaster.settings import load_settings
from broadcaster.source.watcher import HlsWatcher
from broadcaster.status.assessment import Assessment, HealthReport
from broadcaster.status.hub import RING_SIZE, EventHub, StalledClient, StatusWatcher
from broadcaster.status.stream import StreamState
from tests.support.client import Client, Uncancelling
from tests.support.fakes import FakeHealth, FakePlaylists
from tests.support.sse import Event, SseReader
from tests.support.waiting import WAIT, until
from tests.support.service_process import moto_env, running_service

PATH = "/live/events"


# -- an SSE client: the WHATWG event-stream parsing rules ---------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("size", [1, 2, 7, 1000])
async def test_the_reader_follows_the_spec_whatever_the_line_ends_and_chunks(newline: str, size: int) -> None:
    text = ("\ufeffretry: 500|: hi|id: 7|event: a|data: x|data:y|data||"
            " |event: not sent without data||data: plain||"
            "id: 8|data: {\"k\": 1}||data: tail without its blank line|").replace("|", newline)
    raw = text.encode()
    chunks = [raw[i:i + size] for i in range(0, len(raw), size)]

    async def readany() -> bytes:  # a response body that arrives in those chunks
        return chunks.pop(0) if chunks else b""

    reader = SseReader(SimpleNamespace(content=SimpleNamespace(readany=readany)))  # type: ignore[arg-type]
    items = []
    while (item := await reader.next()) is not None:
        items.append(item)
    assert reader.retry == 500
    assert items == [
        "hi",
        Event("a", "x\ny\n", "7", True),
        Event("message", "plain", "7", False),  # the type did not carry over; " " is an unknown field
        Event("message", '{"k": 1}', "8", True),
    ]


# -- the app --------------------------------------------------------------------------------------


MakeClient = Callable[..., Awaitable[tuple[EventHub, Client]]]


@pytest.fixture
async def make_client(aiohttp_client: AiohttpClient) -> AsyncIterator[MakeClient]:
    """The service's real app (its middlewares too) with the events route, and the hub behind it;
    `cancelling=False`: its handlers not cancelled when their client goes, so they find out by writing."""
    hubs: list[EventHub] = []

    async def make(app: dict[str, Any] | None = None, cancelling: bool = True,
                   **hub_options: Any) -> tuple[EventHub, Client]:
        hub = EventHub(**hub_options)
        hubs.append(hub)
        made = create_app(FakePlaylists(None, variants=0), FakeHealth(), Metrics(), events=LiveEvents(hub),
                          **(app or {}))
        server: Any = made if cancelling else Uncancelling(made)
        return hub, await aiohttp_client(server)

    yield make
    for hub in hubs:  # as the service does: streams end before the server shuts down
        hub.close()


async def open_stream(client: Client, *, headers: Mapping[str, str] | None = None,
                      query: str = "") -> SseReader:
    response = await client.get(PATH + query, headers=headers)
    assert response.status == 200, await response.text()
    reader = SseReader(response)
    await reader.started()
    return reader


def segments(hub: EventHub, first: int, n: int) -> list[int]:
    return [hub.segment_listed(first % 2, first + i, 2.0 + i / 10, f"https://r2.example/live/{first % 2}/s{first + i}.ts")
            for i in range(n)]


async def gets_the_next(hub: EventHub, reader: SseReader, first: int) -> None:
    """Nothing else is on its way to `reader`: the next event it gets is the segment published now."""
    new = segments(hub, first, 1)
    event = await reader.event()
    assert event.type == "segment" and int(event.last_id) == new[0]


# -- the stream -----------------------------------------------------------------------------------


async def test_segment_events_arrive_in_order_with_their_json(make_client: MakeClient) -> None:
    hub, client = await make_client()
    reader = await open_stream(client)
    headers = reader.response.headers
    assert headers["Content-Type"] == "text/event-stream"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert reader.retry == 1000

    ids = [hub.segment_listed(v, 100 + n, 1.5, f"https://r2.example/live/{v}/stream-{n}.ts")
           for n in range(3) for v in (0, 1)]
    got = await reader.events(6)
    assert [e.type for e in got] == ["segment"] * 6
    assert [int(e.last_id) for e in got] == ids
    assert ids == list(range(ids[0], ids[0] + 6))
    assert [e.json() for e in got] == [
        {"variant": v, "media_sequence": 100 + n, "duration": 1.5, "url": f"https://r2.example/live/{v}/stream-{n}.ts"}
        for n in range(3) for v in (0, 1)
    ]


async def test_state_events_and_a_new_dashboard_gets_the_current_state_without_an_id(
        make_client: MakeClient) -> None:
    hub, client = await make_client()
    first = await open_stream(client)
    hub.state_changed("online", "ok")
    hub.state_changed("degraded", "storage unreachable (Timeout)")
    got = await first.events(2)
    assert [e.json() for e in got] == [{"state": "online", "detail": "ok"},
                                       {"state": "degraded", "detail": "storage unreachable (Timeout)"}]
    assert all(e.type == "state" and e.id_field for e in got)

    reader = SseReader(await client.get(PATH))  # a late dashboard
    current = await reader.event()
    assert current.type == "state" and current.json()["state"] == "degraded"
    assert not current.id_field and reader.last_id == ""  # it does not move the resume position
    await gets_the_next(hub, reader, 7)


async def test_ids_start_at_the_wall_clock_in_milliseconds() -> None:
    hub = EventHub(clock=lambda: 1_700_000_000.5)
    assert hub.emit("segment", {}) == 1_700_000_000_500
    assert hub.emit("segment", {}) == 1_700_000_000_501
    restarted = EventHub(clock=lambda: 1_700_000_001.0)  # a second later, after a restart
    assert restarted.emit("segment", {}) > 1_700_000_000_501


async def test_resume_gets_exactly_the_missed_events(make_client: MakeClient) -> None:
    hub, client = await make_client()
    reader = await open_stream(client)
    seen = segments(hub, 10, 3)
    got = await reader.events(3)
    assert reader.last_id == str(seen[-1])
    reader.response.close()  # the dashboard's connection drops...

    missed = segments(hub, 13, 4)  # ...while the stream goes on
    again = await open_stream(client, headers={"Last-Event-ID": reader.last_id})
    resumed = await again.events(4)
    assert [int(e.last_id) for e in resumed] == missed
    assert [e.json()["media_sequence"] for e in resumed] == [13, 14, 15, 16]
    assert all(e.type == "segment" for e in got + resumed)
    await gets_the_next(hub, again, 17)  # nothing else came first or in between


async def test_resume_by_query_parameter_for_polyfills(make_client: MakeClient) -> None:
    hub, client = await make_client()
    ids = segments(hub, 0, 5)
    reader = await open_stream(client, query=f"?lastEventId={ids[1]}")
    assert [int(e.last_id) for e in await reader.events(3)] == ids[2:]
    # The header (EventSource's own reconnect) wins over the query.
    both = await open_stream(client, headers={"Last-Event-ID": str(ids[3])}, query=f"?lastEventId={ids[0]}")
    assert [int(e.last_id) for e in await both.events(1)] == ids[4:]


async def test_an_id_older_than_the_ring_gets_a_reset_then_the_ring(make_client: MakeClient) -> None:
    hub, client = await make_client(ring_size=4)
    hub.state_changed("online", "ok")  # falls out of the ring below: the reset brings it back
    ids = segments(hub, 0, 10)
    reader = await open_stream(client, headers={"Last-Event-ID": str(ids[2])})
    reset = await reader.event()
    assert reset.type == "reset"
    assert reset.json() == {"last_event_id": ids[2], "first_id": ids[6]}
    assert int(reset.last_id) == ids[5]  # resumes after it: a reconnect now would not reset again
    state = await reader.event()
    assert state.type == "state" and state.json()["state"] == "online" and not state.id_field
    ring = await reader.events(4)
    assert [int(e.last_id) for e in ring] == ids[6:]
    assert [e.json()["media_sequence"] for e in ring] == [6, 7, 8, 9]

    # Reconnecting from the reset's id is a plain resume.
    reader.response.close()
    again = await open_stream(client, headers={"Last-Event-ID": reset.last_id})
    assert [int(e.last_id) for e in await again.events(4)] == ids[6:]


@pytest.mark.parametrize("when", ["before this process", "from the future", "with an empty ring"])
async def test_an_id_from_another_process_gets_a_reset_then_the_ring(make_client: MakeClient, when: str) -> None:
    hub, client = await make_client()
    ids = segments(hub, 0, 0 if when == "with an empty ring" else 3)
    foreign = 12 if not ids else ids[0] - 60_000 if when == "before this process" else ids[-1] + 5
    reader = await open_stream(client, headers={"Last-Event-ID": str(foreign)})
    reset = await reader.event()
    first = ids[0] if ids else hub.last_id + 1
    assert reset.type == "reset" and reset.json() == {"last_event_id": foreign, "first_id": first}
    assert [int(e.last_id) for e in await reader.events(len(ids))] == ids
    await gets_the_next(hub, reader, 3)  # and then what is published


@pytest.mark.parametrize("behind", ["from id 1", "200 behind", "65 behind"])
async def test_a_resume_too_far_behind_gets_a_reset_and_the_recent_events_only(
        make_client: MakeClient, behind: str) -> None:
    """`?lastEventId=1` must not send the whole ring of 1024 events (58-88 KB of VM egress)."""
    hub, client = await make_client()  # the default ring
    ids = segments(hub, 0, 1100)
    last_id = {"from id 1": 1, "200 behind": ids[-201], "65 behind": ids[-66]}[behind]
    reader = await open_stream(client, query=f"?lastEventId={last_id}")
    reset = await reader.event()
    assert reset.type == "reset" and reset.json() == {"last_event_id": last_id, "first_id": ids[-RING_SIZE]}
    assert [int(e.last_id) for e in await reader.events(RING_SIZE)] == ids[-RING_SIZE:]
    await gets_the_next(hub, reader, 1100)  # nothing else was sent


async def test_a_resume_that_missed_the_recent_events_exactly_gets_them_without_a_reset(
        make_client: MakeClient) -> None:
    hub, client = await make_client()
    ids = segments(hub, 0, 200)
    reader = await open_stream(client, headers={"Last-Event-ID": str(ids[-RING_SIZE - 1])})
    got = await reader.events(RING_SIZE)
    assert [e.type for e in got] == ["segment"] * RING_SIZE and [int(e.last_id) for e in got] == ids[-RING_SIZE:]


@pytest.mark.parametrize("given", ["up to date", "abc", "-5", "1e3", "12.0", "", "  ", "\u0663", "9" * 40, "0x10"])
async def test_an_up_to_date_id_or_one_that_is_not_a_number_gets_no_backlog_and_no_reset(
        make_client: MakeClient, given: str) -> None:
    hub, client = await make_client()
    ids = segments(hub, 0, 3)  # would be sent if junk were taken for an old id
    reader = await open_stream(client, headers={"Last-Event-ID": str(ids[-1]) if given == "up to date" else given})
    await gets_the_next(hub, reader, 3)


def test_parse_last_event_id() -> None:
    assert parse_last_event_id(None) is None
    assert parse_last_event_id("1700000000123") == 1700000000123
    assert parse_last_event_id(" 42 ") == 42
    assert parse_last_event_id("4 2") is None
    assert parse_last_event_id("\u0663") is None  # a digit, but not one of ours


async def test_close_ends_every_stream_refuses_new_ones_and_lets_the_server_shut_down_at_once(
        make_client: MakeClient) -> None:
    """What Service.stop() does before the runner's cleanup, its handlers not cancelled (as it runs them)."""
    hub, client = await make_client(cancelling=False, ping_interval=3600)  # idle: only close() ends them
    readers = [await open_stream(client) for _ in range(3)]
    assert hub.streams == 3
    hub.close()
    response = await client.get(PATH)
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    async with asyncio.timeout(5):  # aiohttp would wait up to 60 s for a handler still streaming
        await client.server.close()
    for reader in readers:
        assert await reader.ended(timeout=5) == []
    await until(lambda: hub.streams == 0, "the handlers to return")


async def test_many_subscribers_get_each_event_once_without_a_task_each(make_client: MakeClient) -> None:
    n = 500
    hub, client = await make_client(ping_interval=3600)
    # The test client's pool holds 100 connections; these need one each.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        responses = await asyncio.gather(*(session.get(client.make_url(PATH)) for _ in range(n)))
        readers = [SseReader(r) for r in responses]
        await asyncio.gather(*(r.started() for r in readers))
        await until(lambda: hub.streams == n, f"{n} open streams")

        def ours() -> list[asyncio.Task[Any]]:
            return [t for t in asyncio.all_tasks()
                    if "broadcaster/status/hub.py" in t.get_coro().cr_code.co_filename]  # type: ignore[union-attr]

        before = asyncio.all_tasks()
        assert ours() == []
        ids = segments(hub, 0, 5)
        received = await asyncio.gather(*(r.events(5) for r in readers))
        assert all([int(e.last_id) for e in got] == ids for got in received)
        # Delivery started no task: the handlers woke on the one shared event and wrote.
        assert ours() == [] and not [t for t in asyncio.all_tasks() - before if not t.done()]
        # Once each: the next event anyone gets is the next one published.
        sentinel = segments(hub, 5, 1)
        nxt = await asyncio.gather(*(r.event() for r in readers))
        assert all(int(e.last_id) == sentinel[0] for e in nxt)
        for r in responses:
            r.close()


async def test_idle_streams_get_a_ping_comment(make_client: MakeClient) -> None:
    hub, client = await make_client(ping_interval=0.05)
    reader = await open_stream(client)
    async with asyncio.timeout(WAIT):
        while (item := await reader.next()) != "ping":
            assert item is not None
    await gets_the_next(hub, reader, 0)  # events still come after pings


async def test_streams_beyond_the_cap_get_503_with_retry_after(make_client: MakeClient) -> None:
    hub, client = await make_client(max_streams=2, ping_interval=0.05)
    first = await open_stream(client)
    await open_stream(client)
    refused = await client.get(PATH)
    assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
    first.response.close()
    await until(lambda: hub.streams == 1, "the server to notice the closed stream (at its next ping)")
    await open_stream(client)


async def test_one_client_holds_at_most_an_eighth_of_the_streams(make_client: MakeClient) -> None:
    """One client address (here CF-Connecting-IP) holds at most an eighth of the 1,000 /live/events slots,
    counted as connections_rejected_total{reason="events_per_client"}; other clients still get theirs, and a
    closed stream gives its slot back."""
    registry = CollectorRegistry()
    hub, client = await make_client(dict(playlist_options=PlaylistOptions(trust_cf_connecting_ip=True),
                                         running=Running(connection_metrics=ConnectionMetrics(registry))),
                                    max_streams=32, ping_interval=0.05)
    one = {"CF-Connecting-IP": "203.0.113.7"}
    mine = [await open_stream(client, headers=one) for _ in range(4)]
    refused = await client.get(PATH, headers=one)
    assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
    assert registry.get_sample_value("hls_broadcaster_connections_rejected_total",
                                     {"reason": "events_per_client"}) == 1
    # Another address, and an IPv6 client (its /64 counted once), still get streams.
    others = [await open_stream(client, headers={"CF-Connecting-IP": address})
              for address in ("198.51.100.1", "2001:db8:1:2::1", "2001:db8:1:2::2")]
    assert hub.streams == 7
    mine[0].response.close()
    await until(lambda: hub.streams == 6, "the server to notice the closed stream (at its next ping)")
    await open_stream(client, headers=one)
    for reader in mine + others:
        reader.response.close()


async def test_head_answers_the_headers_without_holding_a_stream(make_client: MakeClient) -> None:
    hub, client = await make_client()
    async with client.head(PATH) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
        assert await response.read() == b""
    assert hub.streams == 0


async def test_a_client_that_goes_away_is_one_debug_line(
        make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hub, client = await make_client(cancelling=False, ping_interval=3600)
    reader = await open_stream(client)
    reader.response.close()
    # Without handler cancellation the server notices on its next write; publish until it has.
    def gone() -> bool:
        if hub.streams:
            segments(hub, 0, 1)
        return not hub.streams

    await until(gone, "the server noticing the closed stream", WAIT, every=0.001)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]
    assert any(r.name == "broadcaster.http.events" and "went away" in r.getMessage() for r in caplog.records)


async def test_a_client_that_stops_reading_is_dropped_after_the_write_timeout() -> None:
    hub = EventHub(write_timeout=0.05)
    stuck = asyncio.Event()
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(data)
        if data.startswith(b"id:"):
            await stuck.wait()  # the socket's buffer is full and the client reads nothing

    stream = asyncio.ensure_future(hub.stream(write, None))
    await until(lambda: len(written) == 1, "the stream's first frame")
    segments(hub, 0, 1)
    with pytest.raises(StalledClient):
        async with asyncio.timeout(WAIT):
            await stream


async def test_a_slow_stream_that_the_ring_left_behind_gets_a_reset() -> None:
    hub = EventHub(ring_size=3)
    written: list[bytes] = []
    gate = asyncio.Event()

    async def write(data: bytes) -> None:
        written.append(data)
        if len(written) == 2:
            await gate.wait()  # the second write blocks while five more events are published

    stream = asyncio.ensure_future(hub.stream(write, None))
    await until(lambda: len(written) == 1, "the stream's first frame")
    first = segments(hub, 0, 1)
    await until(lambda: len(written) == 2, "the first event's write")
    later = segments(hub, 1, 5)
    gate.set()
    await until(lambda: len(written) == 3, "the catch-up write")
    hub.close()
    await asyncio.wait_for(stream, WAIT)
    text = written[2].decode()
    assert f"id: {first[0]}" in written[1].decode()
    assert text.startswith(f"id: {later[1]}\nevent: reset\n")
    assert [line for line in text.splitlines() if line.startswith("id: ")] == [
        f"id: {i}" for i in [later[1], *later[2:]]]


def test_segment_with_a_non_finite_duration_is_valid_json() -> None:
    hub = EventHub()
    hub.segment_listed(0, 1, math.nan, "https://r2.example/x.ts")
    data = next(line for line in hub._ring[-1][1].decode().splitlines() if line.startswith("data: "))
    assert json.loads(data.removeprefix("data: "), parse_constant=lambda c: pytest.fail(c))["duration"] is None


def test_bad_event_names_are_refused() -> None:
    with pytest.raises(ValueError):
        EventHub().emit("seg\nment", {})


# -- the status watcher ---------------------------------------------------------------------------


@pytest.mark.parametrize(("ok", "stream", "status", "expected"), [
    (True, "idle", "ok", ("offline", "idle")),
    (False, "ended", "storage unreachable (Timeout)", ("offline", "ended")),
    (True, "live", "ok", ("online", "ok")),
    (False, "live", "uploads behind by 9s", ("degraded", "uploads behind by 9s")),
])
def test_an_assessment_reads_as_a_dashboard_state(ok: bool, stream: str, status: str,
                                                 expected: tuple[str, str]) -> None:
    reading = Assessment(ok, StreamState.of(stream, ok), status, {})
    assert (reading.state.event, reading.detail) == expected


async def test_watcher_publishes_each_state_change_once(
        make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    hub, client = await make_client()
    reader = await open_stream(client)
    health = FakeHealth()
    watcher = StatusWatcher(hub, health.assess, interval=0.001)
    await watcher.start()
    try:
        steps: list[tuple[bool, dict[str, object], dict[str, str]]] = [
            (True, {"status": "ok", "stream": "idle"}, {"state": "offline", "detail": "idle"}),
            (True, {"status": "ok", "stream": "live"}, {"state": "online", "detail": "ok"}),
            (False, {"status": "storage unreachable (Timeout)", "stream": "live"},
             {"state": "degraded", "detail": "storage unreachable (Timeout)"}),
            # Another reason while degraded is not a new state.
            (False, {"status": "uploads behind by 9s", "stream": "live"}, {}),
            (True, {"status": "ok", "stream": "live"}, {"state": "online", "detail": "ok"}),
            (True, {"status": "ok", "stream": "ended"}, {"state": "offline", "detail": "ended"}),
        ]
        for ok, body, expected in steps:
            health.answer = (ok, body)
            calls = health.calls
            # Several readings of the same answer: a repeated event would show up as the next one.
            await until(lambda: health.calls >= calls + 3, "three more readings")
            if expected:
                event = await reader.event()
                assert event.type == "state" and event.json() == expected
        assert watcher.state == "offline"

        # A health() that raises is said once and does not stop the watcher.
        caplog.set_level(logging.WARNING, logger="broadcaster.status.hub")
        health.error = RuntimeError("boom")
        calls = health.calls
        await until(lambda: health.calls >= calls + 5, "readings through the error")
        assert len([r for r in caplog.records if "boom" in r.getMessage()]) == 1
        health.error = None
        health.answer = (True, {"status": "ok", "stream": "live"})
        assert (await reader.event()).json() == {"state": "online", "detail": "ok"}
        await gets_the_next(hub, reader, 0)  # and nothing in between
    finally:
        await watcher.stop()


async def test_watcher_starts_and_stops_cleanly() -> None:
    hub = EventHub()
    health = FakeHealth()
    watcher = StatusWatcher(hub, health.assess, interval=0.001)
    await watcher.stop()  # before start: nothing to do
    await watcher.start()
    await watcher.start()  # idempotent: still one task
    assert len([t for t in asyncio.all_tasks() if t.get_name() == "status-events"]) == 1
    await until(lambda: health.calls >= 2, "two readings")
    await watcher.stop()
    await watcher.stop()
    assert [t for t in asyncio.all_tasks() if t.get_name() == "status-events"] == []
    assert hub.last_id + 1 - hub._oldest() == 1  # the first reading's state event, once


# -- the service's state events ---------------------------------------------------------------------


async def test_the_service_runs_state_events_from_its_first_scan_until_it_stops(
        tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Service.start starts the StatusWatcher once the pipeline runs: its first reading comes after the
    first scan of Owncast's folder (a reading before it would say offline); Service.stop stops it first,
    so no state is read or published once the hub closes, and nothing of it is left running."""
    steps: list[str] = []

    def noting(step: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def noted(*args: Any, **kwargs: Any) -> Any:
            steps.append(step)
            return real(*args, **kwargs)
        return noted

    monkeypatch.setattr(HealthReport, "assess", noting("reading", HealthReport.assess))
    monkeypatch.setattr(HlsWatcher, "scan", noting("scan", HlsWatcher.scan))
    monkeypatch.setattr(EventHub, "close", noting("close", EventHub.close))

    def running() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "status-events" and not t.done()]

    service = Service(load_settings(environ=moto_env(moto_url, tmp_path)))
    assert running() == []
    async with running_service(service):
        await until(lambda: service.status.state == "offline", "the first reading: no stream yet")
        assert "scan" in steps and steps.index("scan") < steps.index("reading"), steps
        assert len(running()) == 1
    assert running() == []
    assert "reading" not in steps[steps.index("close"):], steps
