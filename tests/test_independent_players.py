"""Every player plays, and follows content steering where it can: ten players on /live/master.m3u8
(tests/support/independent_players.py) while the bucket's gate closes for the service alone until it
steers players to the VM, then opens until it steers them back. Each player: every segment it got is
byte for byte Owncast's; a page with steering follows the moves; one without plays on through them.
`-s` prints the figures. A Shaka page caught by SHAKA_LOAD_RACE is opened anew before the move."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.demo.ledger import Finished
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.browser import shared_chromium, needs_chromium
from tests.support.counting_proxy import CountingProxy
from tests.support.gates import BucketGates
from tests.support.independent_players import (BY_NAME, HLSDEMUX, HLSDEMUX2, NATIVE, PLAYERS, SHAKA_52, SHAKA_416,
                                               SHAKA_LOAD_RACE, STREAMLINK, VIEWER_PAGE, VLC, Browser, Carried,
                                               Native, Wire, concatenated, missing_programs,
                                               native_player, served_pages)
from tests.support.loop_thread import LoopThread
from tests.support.nginx import Nginx, needs_nginx, tunnel_locations
from tests.support.page_open import Opened
from tests.support.player_pages import page_state
from tests.support.s3 import bucket_of_its_own
from tests.support.service_process import ServiceProcess, service_env
from tests.support.steered_players import TimedLedger, on_the_rig
from tests.support.steering_watch import until_pathway
from tests.support.tunnel import SERVICE, tunnel_rules
from tests.support.waiting import TimedOut, until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    needs_chromium,
    needs_nginx,
    pytest.mark.skipif(bool(missing_programs()), reason=f"not installed (scripts/test installs them): {missing_programs()}"),
    pytest.mark.xdist_group("independent_players"),
    pytest.mark.asyncio(loop_scope="module"),
]

TARGET = 2  # seconds: the emulator's segments (the steering manifest's TTL is 1 s)
# Bounds of the waits on a condition (each ends as soon as it holds), generous for a loaded machine.
START = 60.0
MOVE = 60.0
STEERED = 60.0
STEERING = tuple(p.name for p in PLAYERS if p.steering)
WITHOUT = tuple(p.name for p in PLAYERS if not p.steering)


@dataclass
class Run:
    wire: Wire
    ledger: TimedLedger
    hls_dir: Path
    natives: dict[str, Native]
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # each page's, at the end
    at: dict[str, float] = field(default_factory=dict)  # started, closed, steered, opened, back, ended
    waits: list[str] = field(default_factory=list)  # the waits that ran out, and what each saw
    outputs: dict[str, bytes] = field(default_factory=dict)
    service_lines: list[str] = field(default_factory=list)
    sessions: collections.Counter[str] = field(default_factory=collections.Counter)  # pages opened again
    raced: list[str] = field(default_factory=list)  # why (Shaka's start-up race)


async def waited(run: Run, condition: Any, what: str, timeout: float, seen: Any) -> None:
    """Until `condition`; past `timeout`, note what was seen and go on (each player's test judges it)."""
    try:
        await until(condition, what, timeout, every=0.25, detail=seen)
    except TimedOut as err:
        run.waits.append(str(err))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory, seaweed_server: SeaweedS3,
              recordings: Recordings) -> AsyncIterator[Run]:
    tmp = tmp_path_factory.mktemp("independent")
    ledger = TimedLedger()
    async with (bucket_of_its_own(seaweed_server) as s3, LoopThread("independent-rig") as rig,
                on_the_rig(rig, BucketGates(s3)) as gates,
                OwncastEmulator(tmp / "hls", resolve_settings(segment_seconds=TARGET),
                                ledger=ledger, recordings=recordings) as owncast):
        env = service_env(tmp / "hls", s3, tmp / "state", S3_ENDPOINT_URL=gates.service_url,
                          R2_PUBLIC_URL=gates.public_url, WINDOW_SECONDS="20", PATHWAYS="bucket,vm",
                          HOST="127.0.0.1", TRUST_CF_CONNECTING_IP="true")
        async with ServiceProcess(env, tmp / "service") as service:
            wire = Wire(PLAYERS, time.monotonic, keep=(STREAMLINK, HLSDEMUX))
            gates.viewers.observe = wire.observer("bucket")
            # Between the stand-in and the service: what the service answered each player.
            proxy = CountingProxy(service.url, keep_host=True, observe=wire.observer("service"))
            await rig.run(proxy.start())
            stand_in = Nginx(tmp / "tunnel", tunnel_locations(tunnel_rules(), "live.example.com", {SERVICE: proxy.url}))
            natives: dict[str, Native] = {}
            result = Run(wire, ledger, owncast.hls_dir, natives)
            try:
                await stand_in.start()
                src = f"{stand_in.url}/live/master.m3u8"
                natives.update((name, native_player(name, src, tmp)) for name in NATIVE)
                async with shared_chromium() as chromium, served_pages() as pages:
                    await owncast.wait_for_segments(0, 3, timeout=30)
                    result.at["started"] = time.monotonic()
                    await asyncio.gather(*(n.start() for n in natives.values()))
                    browser = Browser(chromium, {p.name: f"{pages.url}/page/{p.name}?src={src}" for p in PLAYERS},
                                      time.monotonic)
                    browser.urls[VIEWER_PAGE] = f"{stand_in.url}/"
                    opened = {p.name: await browser.open(p) for p in PLAYERS if p.name not in natives}
                    await steering_under_way(result, browser, opened)
                    await play_through_the_move(result, service, rig, gates)
                    for name, one in opened.items():
                        try:
                            result.states[name] = {**await page_state(one.page), "thrown": one.thrown}
                        except Exception as err:  # noqa: BLE001 (a page that died: its test says so)
                            result.states[name] = {"played": 0, "fatal": [f"the page: {err}"], "said": []}
            finally:
                result.at["ended"] = time.monotonic()
                for native in natives.values():
                    await native.stop()
                await stand_in.stop()
                await rig.run(proxy.close())
                for name, native in natives.items():  # VLC's folder in the system's temp goes here
                    result.outputs[name] = await asyncio.to_thread(native.finish, tmp)
            result.service_lines = [line for line in service.lines if "pathway" in line or "ERROR" in line]
            print(summary(result))
            yield result


ATTEMPTS = 8  # sessions of a Shaka page at most, its steering lost each time to Shaka's own start-up race


async def steering_under_way(run: Run, browser: Browser, opened: dict[str, Opened]) -> None:
    """Every steering page reloading its manifest; one caught by SHAKA_LOAD_RACE opened again."""

    async def under_way() -> bool:
        going = True
        for name, one in list(opened.items()):
            if any(SHAKA_LOAD_RACE in thrown for thrown in one.thrown) and run.sessions[name] < ATTEMPTS:
                run.raced.append(f"{name}: {one.thrown[-1][:160]}")
                run.sessions[name] += 1
                opened[name] = await browser.again(BY_NAME[name], one)
                going = False
            elif len(run.wire.asked(name, "steering", since=opened[name].at)) < 2:
                going = False
        return going

    await waited(run, under_way, "every page reloading its steering manifest", START,
                 lambda: {n: (len(run.wire.asked(n, "steering", since=o.at)), o.thrown[-2:]) for n, o in opened.items()})


async def play_through_the_move(run: Run, service: ServiceProcess, rig: LoopThread, gates: BucketGates) -> None:
    """Every player playing; uploads refused until players are steered to the VM, then back."""
    wire, at = run.wire, run.at

    def playing() -> bool:
        return all(len(wire.segments(p.name)) >= 3 for p in PLAYERS)

    await waited(run, playing, "every player playing", START,
                 lambda: {p.name: len(wire.segments(p.name)) for p in PLAYERS})
    at["closed"] = time.monotonic()
    await rig.run(gates.close(service=True, viewers=False))
    try:
        at["steered"] = await until_pathway(service, "vm", MOVE)

        def moved() -> bool:
            return all(moved_on(run, name, "steered") for name in PLAYERS_NAMES)

        await waited(run, moved, "the players with steering on the VM's pathway, the others playing on", STEERED,
                     lambda: [name for name in PLAYERS_NAMES if not moved_on(run, name, "steered")])
    finally:
        at["opened"] = time.monotonic()
        await rig.run(gates.open())
    at["back"] = await until_pathway(service, "bucket", MOVE + 30)

    def back() -> bool:
        return all(moved_on(run, name, "back") for name in PLAYERS_NAMES)

    await waited(run, back, "the players with steering back on the bucket's pathway, the others playing on",
                 STEERED, lambda: [name for name in PLAYERS_NAMES if not moved_on(run, name, "back")])


PLAYERS_NAMES = tuple(p.name for p in PLAYERS)


def followed(run: Run, name: str, since: str) -> bool:
    """Since the service steered (`since`): the manifest reloaded, that pathway's playlist and segment."""
    pathway, side = ("vm", "service") if since == "steered" else ("bucket", "bucket")
    reloads = run.wire.asked(name, "steering", since=run.at[since])
    if not reloads:
        return False
    asked = run.wire.asked(name, pathway, since=reloads[0].at)
    return bool(asked) and bool(run.wire.segments(name, since=asked[0].at, side=side))


def moved_on(run: Run, name: str, since: str) -> bool:
    """Since the service steered (`since`): followed (with steering) or played on (without)."""
    if name in STEERING:
        return followed(run, name, since)
    return len(run.wire.segments(name, since=run.at[since])) >= 2


def summary(run: Run) -> str:
    """What each player did (-s, or a failure's output): segments from each side, and when it moved."""
    at, wire = run.at, run.wire
    lines = [f"times (s after the gate closed): " + str({k: round(v - at.get("closed", at["started"]), 1)
                                                        for k, v in at.items()})]
    for name in PLAYERS_NAMES:
        phases = []
        for since, before in ((at["started"], at.get("closed", at["ended"])),
                              (at.get("steered", at["ended"]), at.get("opened", at["ended"])),
                              (at.get("back", at["ended"]), at["ended"])):
            got = wire.segments(name, since, before)
            phases.append(f"{sum(c.side == 'bucket' for c in got)}b/{sum(c.side == 'service' for c in got)}v")
        took = back = "-"
        if "steered" in at and name in STEERING:
            vm = wire.asked(name, "vm", since=at["steered"])
            took = f"{vm[0].at - at['steered']:.1f}" if vm else "never"
        if "back" in at and name in STEERING:
            bucket = wire.asked(name, "bucket", since=at["back"])
            back = f"{bucket[0].at - at['back']:.1f}" if bucket else "never"
        played = run.states.get(name, {}).get("played")
        lines.append(f"{name:24} segments before/steered/after {' '.join(phases)}; took the VM {took}; back {back}; "
                     f"played {played if played is None else round(played, 1)}")
    lines.append(f"pages opened again (Shaka's start-up race, SHAKA_LOAD_RACE): {dict(run.sessions)} {run.raced}")
    return "\n".join(lines)


def source_pause(run: Run) -> float:
    """Owncast's longest pause between two finished segments while the players played."""
    times = sorted(t for path, t in run.ledger.finished_at.items()
                   if path.endswith(".ts") and t >= run.at["started"])
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def story(run: Run, name: str) -> str:
    """For a failure's message: the times of the move, what the player asked around it, what the waits saw."""
    t0 = run.at.get("closed", run.at["started"])
    times = {k: round(v - t0, 1) for k, v in run.at.items()}
    state = run.states.get(name, {})
    said = run.natives[name].said() if name in run.natives else {
        "errors": state.get("said", [])[-12:], "thrown": state.get("thrown"), "sessions": 1 + run.sessions[name]}
    manifests = [(round(c.at - t0, 1), c.status) for c in run.wire.of(name)
                 if c.side == "service" and c.path.split("?")[0].endswith("/steering.json")]
    return (f"times (s after the gate closed) {times}; steering manifests answered {manifests[-30:]}; "
            f"asked {run.wire.timeline(name, t0)}; it said {said}; "
            f"waits that ran out {[wait[:300] for wait in run.waits]}; "
            f"Owncast's longest pause between finished segments {source_pause(run):.1f} s; "
            f"the service's steering {[line[-160:] for line in run.service_lines if 'pathway' in line][-4:]}")


# -- the players' tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PLAYERS_NAMES)
async def test_every_player_plays_owncasts_bytes(run: Run, name: str) -> None:
    segments = run.wire.segments(name)
    before = run.wire.segments(name, before=run.at.get("closed", run.at["ended"]))
    assert len(before) >= 3, f"{name} did not play: {len(before)} segments before the move; {story(run, name)}"
    wrong = []
    for got in segments:
        variant, file = got.variant_and_name
        assert got.body is not None
        reason = run.ledger.mismatch(run.hls_dir / str(variant) / file, got.body)
        if reason is not None:
            wrong.append(f"{got.side} {got.path}: {reason}")
    assert wrong == [], f"{name} got bytes Owncast did not write: {wrong}"
    if name in run.states:
        state = run.states[name]
        assert state["fatal"] == [], f"{name}: fatal errors {state['fatal']}; {story(run, name)}"
        assert state["played"] >= 3 * TARGET, f"{name} played {state['played']:.1f} s; {story(run, name)}"
        return
    native = run.natives[name]
    assert native.exited is None, f"{name} ended by itself (exit {native.exited}); {story(run, name)}"
    if name in (STREAMLINK, HLSDEMUX):  # the segments' bytes as they came, one after another
        whole, wrong_at = concatenated(run.outputs.get(name, b""), segments)
        assert wrong_at is None and whole >= 3, f"{name}'s output holds {whole} segments: {wrong_at}"
    if name in (STREAMLINK, HLSDEMUX, VLC):
        seconds = native.media
        assert seconds >= 3 * TARGET, f"{name}'s output holds {seconds} s of media; {story(run, name)}"
    if name == HLSDEMUX2:
        errors = [line for line in native.said(200) if "ERROR" in line]
        assert errors == [], f"{name}: {errors}"


@pytest.mark.parametrize("name", WITHOUT)
async def test_a_player_without_steering_plays_on_through_the_move(run: Run, name: str) -> None:
    """streamlink, GStreamer and VLC read no steering manifest: they play on through the move and after."""
    assert "steered" in run.at and "back" in run.at, f"the service never steered: {run.service_lines}"
    during = run.wire.segments(name, since=run.at["steered"], before=run.at["opened"])
    after = run.wire.segments(name, since=run.at["back"])
    assert len(during) >= 2 and len(after) >= 2, (
        f"{name}: {len(during)} segments while steered to the VM, {len(after)} after; {story(run, name)}")


@pytest.mark.parametrize("name", STEERING)
async def test_a_player_with_steering_follows_it_to_the_vm_and_back(run: Run, name: str) -> None:
    assert "steered" in run.at and "back" in run.at, f"the service never steered: {run.service_lines}"
    assert len(run.wire.asked(name, "steering", before=run.at["steered"])) >= 1, (
        f"{name} never read the steering manifest before the move; {story(run, name)}")
    assert followed(run, name, "steered"), f"{name} did not take the VM's pathway; {story(run, name)}"
    assert followed(run, name, "back"), f"{name} did not come back to the bucket's pathway; {story(run, name)}"


async def test_the_shaka_builds_are_the_vendored_ones(run: Run) -> None:
    """The versions the pages reported: Shaka 5 vendored beside 4.16."""
    assert run.states[SHAKA_52].get("version") == "v5.2.12", run.states[SHAKA_52]
    assert run.states[SHAKA_416].get("version") == "v4.16.50", run.states[SHAKA_416]
    assert set(BY_NAME) == set(PLAYERS_NAMES)


# -- the checks themselves ---------------------------------------------------------------------------------


async def test_an_output_is_judged_segment_by_segment() -> None:
    """An output is the segments fetched, whole, in order (the last may be cut short)."""
    bodies = [bytes([n]) * (1000 + n) for n in range(4)]
    fetched = [Carried(float(n), "bucket", STREAMLINK, "GET", f"/b/live/0/s-{n}.ts", 200, Finished.of(b), b)
               for n, b in enumerate(bodies)]
    assert concatenated(b"".join(bodies), fetched) == (4, None)
    assert concatenated(bodies[0] + bodies[2] + bodies[3][:10], fetched) == (2, None)
    damaged = bytearray(b"".join(bodies))
    damaged[1500] ^= 0xFF
    assert concatenated(bytes(damaged), fetched)[1] is not None
    assert concatenated(b"#EXTM3U\n" + b"".join(bodies), fetched)[1] is not None
    assert concatenated(bodies[1] + bodies[0], fetched)[1] is not None  # out of the order fetched
    assert concatenated(bodies[0] + bodies[1][:500] + b"z", fetched)[1] is not None  # not cut short: wrong


async def test_the_wire_tells_the_players_apart() -> None:
    """Each request is its player's by User-Agent (the probe's is none); a 200 keeps its hash."""

    class Asked:
        def __init__(self, agent: str, path: str) -> None:
            self.headers = {"User-Agent": agent}
            self.path_qs, self.method = path, "GET"

    wire = Wire(PLAYERS, iter(range(100)).__next__)
    observe = wire.observer("bucket")
    chrome = "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/156.0.0.0 Safari/537.36"
    observe(Asked(f"{chrome} {BY_NAME[SHAKA_52].marker}", "/b/live/0/s-1.ts"), 200, b"x" * 10)
    observe(Asked(f"{chrome} {BY_NAME[SHAKA_416].marker}", "/b/live/0/s-1.ts"), 404, b"")
    observe(Asked("GStreamer souphttpsrc 1.22.0 libsoup/3.2.3", "/b/live/1/s-2.ts"), 200, b"y")
    observe(Asked(f"GStreamer {BY_NAME[HLSDEMUX2].marker}", "/live/steering.json?_HLS_pathway=vm"), 200, b"{}")
    observe(Asked("VLC/3.0.24 LibVLC/3.0.24", "/live/vm/0/playlist.m3u8"), 200, b"#EXTM3U")
    observe(Asked("hls-broadcaster/0.1.0 (steering probe)", "/b/live/0/s-1.ts"), 200, b"x" * 10)
    assert [(c.player, c.status, c.body) for c in wire.carried] == [
        (SHAKA_52, 200, Finished.of(b"x" * 10)), (SHAKA_416, 404, None), (HLSDEMUX, 200, Finished.of(b"y")),
        (HLSDEMUX2, 200, None), (VLC, 200, None)]
    assert wire.strangers == {"hls-broadcaster/0.1.0 (steering probe)"}
    assert [c.variant_and_name for c in wire.segments(HLSDEMUX)] == [(1, "s-2.ts")]
