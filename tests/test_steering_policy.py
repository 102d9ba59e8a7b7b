"""The steering policy (broadcaster/steering/policy.py) on a fake clock: which pathway players are sent
to, for which reason, when they come back, and what a hostile page can move; the steering manifest it
renders (playlist/steering.py) and what a page's Hb-Pathway says (steering/reports.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
import json
import logging
import math
import time
from pathlib import Path

import pytest
from aiohttp import web

from broadcaster.bucket.uploader import Uploader
from broadcaster.metrics import Metrics
from broadcaster.playlist.steering import reloaded_from, render_steering
from broadcaster.steering import probe, reports
from broadcaster.steering.policy import (DOWN, MAX_FAILING_CLIENTS, MIN_UPLOAD_WAIT, PUBLIC_URL, REPORTED_FOR,
                                         SLOW_TARGETS, UPLOADS, BucketSignals, SteeringPolicy, refusal)
from broadcaster.steering.probe import (PROBE_AGAIN, QUIET_EVERY, WATCHED_LEAST, WATCHED_TARGETS, Newest,
                                        Probe, SteeringLoop, Wake, Watched)
from tests.support.fakes import Clock, FakeStore
from tests.support.local_http import Served
from tests.support.policy_world import PolicyWorld as World
from tests.support.waiting import until

TARGET = 2
INTERVAL = 1.0  # the pages' report interval


def counting(policy: SteeringPolicy) -> list[float]:
    """When each of the policy's evaluations from now on ran (the loop's calls, counted)."""
    evaluated: list[float] = []
    evaluate = policy.evaluate

    def counted() -> bool:
        evaluated.append(time.monotonic())
        return evaluate()

    policy.evaluate = counted  # type: ignore[method-assign]
    return evaluated


@pytest.fixture
def world() -> World:
    return World(target=TARGET, interval=INTERVAL)


def uploads_late(world: World, seconds: float = 0.5) -> None:
    """Uploads failing, their oldest waiting past a target duration: players steered to the VM for them."""
    world.behind = TARGET + 1
    world.run(seconds)
    assert world.policy.first == "vm" and world.policy.reason == UPLOADS


def test_normally_the_bucket_is_first_and_the_manifest_says_so(world: World) -> None:
    world.run(10)
    policy = world.policy
    assert policy.priority == ("bucket", "vm") and policy.reason == "normal" and policy.health_reason() is None
    assert json.loads(policy.manifest()) == {"VERSION": 1, "TTL": TARGET // 2, "RELOAD-URI": "steering.json",
                                             "PATHWAY-PRIORITY": ["bucket", "vm"]}
    assert policy.switches == {}


def test_uploads_waiting_longer_than_a_target_duration_send_players_to_the_vm_and_back(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "broadcaster.steering.policy")
    policy = world.policy
    world.behind = TARGET  # a target duration: not yet
    world.run(2)
    assert policy.first == "bucket"
    world.behind = TARGET + 0.5
    world.run(0.5)
    assert policy.priority == ("vm", "bucket") and policy.reason == UPLOADS
    assert json.loads(policy.manifest())["PATHWAY-PRIORITY"] == ["vm", "bucket"]
    health = policy.health_reason()
    assert health is not None and "steered to the vm pathway" in health and "uploads" in health
    world.run(30)  # the outage goes on: one switch, one line
    world.behind = 0.0  # caught up: back at the next evaluation
    world.run(0.5)
    assert policy.priority == ("bucket", "vm") and policy.reason == "normal"
    assert policy.switches == {("vm", UPLOADS): 1, ("bucket", "normal"): 1}
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0][0] == "WARNING" and "steering players to the vm pathway" in lines[0][1]
    assert "uploads to it have waited" in lines[0][1]
    assert lines[1][0] == "INFO" and lines[1][1].startswith("steering players back to the bucket pathway after")


def test_health_names_every_signal_that_holds_the_strongest_as_the_reason(world: World) -> None:
    policy = world.policy
    uploads_late(world)
    assert "public URL" not in (policy.health_reason() or "")
    policy.probed("bucket", False, "HTTP 503")
    policy.probed("bucket", False, "HTTP 503")
    world.run(0.5)
    health = policy.health_reason() or ""
    assert policy.reason == UPLOADS and policy.switches == {("vm", UPLOADS): 1}
    assert health.endswith(f"uploads to it have waited {TARGET + 1}s, more than a target duration ({TARGET}s), "
                           "and its public URL does not answer the service (HTTP 503)"), health


def test_the_public_url_failing_twice_in_a_row_sends_players_away(world: World) -> None:
    policy = world.policy
    policy.probed("bucket", False, "HTTP 503")
    world.run(1)
    assert policy.first == "bucket"  # one lost request is not an outage
    policy.probed("bucket", False, "HTTP 503")
    world.run(0.5)
    assert policy.first == "vm" and policy.reason == PUBLIC_URL
    assert (policy.health_reason() or "").endswith(
        "the bucket pathway: its public URL does not answer the service (HTTP 503)"), policy.health_reason()
    policy.probed("bucket", True)
    world.run(TARGET + 0.5)
    assert policy.first == "bucket"


def forged(policy: SteeringPolicy, pages: int, tick: int) -> None:
    """Pages that each say they play the bucket and failed on it: made-up ids, as many as a client likes."""
    for page in range(pages):
        policy.report(f"forged{tick}-{page}", "bucket", {"bucket": 255, "backup": 255})


def test_no_report_moves_anyone_however_many_pages_say_it(world: World) -> None:
    """Reports are claims: a made-up page id must not move every viewer to the VM."""
    policy = world.policy
    for tick in range(40):
        forged(policy, 1000 if tick == 0 else 50, tick)
        world.run(0.5)
        assert policy.priority == ("bucket", "vm") and policy.reason == "normal"
        assert json.loads(policy.manifest())["PATHWAY-PRIORITY"] == ["bucket", "vm"]
        assert policy.health_reason() is None and policy.bucket_serves()
    assert policy.switches == {}
    assert policy.pages() == {"bucket": 4 * 50}  # still heard, for a metric: the last two intervals' pages


def test_the_bucket_comes_back_when_the_evidence_clears_whatever_pages_say(world: World) -> None:
    policy = world.policy
    for outage in range(3):  # relapse after relapse: each time back at once
        policy.probed("bucket", False, "HTTP 503")
        policy.probed("bucket", False, "HTTP 503")
        world.run(0.5)
        assert policy.first == "vm" and policy.reason == PUBLIC_URL, outage
        forged(policy, 20, outage)
        world.run(5)
        policy.probed("bucket", True)
        forged(policy, 20, outage)
        world.run(0.5)  # the next evaluation
        assert policy.priority == ("bucket", "vm") and policy.bucket_serves(), outage
        world.run(5)
    assert policy.switches == {("vm", PUBLIC_URL): 3, ("bucket", "normal"): 3}


def test_after_uploads_fail_the_bucket_is_back_once_the_backlog_has_landed(world: World) -> None:
    policy = world.policy
    uploads_late(world)
    world.failing = False  # the backlog uploads: its oldest still waits longer than a target duration
    world.behind = TARGET + 0.5
    world.run(3)
    assert policy.first == "vm"
    world.behind = TARGET - 0.5  # landed but the newest
    world.run(0.5)
    assert policy.first == "bucket"


def test_a_report_asks_for_a_probe_at_most_once_per_probe_again(world: World) -> None:
    policy = world.policy
    policy.probed("bucket", True)
    assert not policy.probe_wanted("bucket")
    world.clock.t += PROBE_AGAIN
    policy.report("a", "vm", {"vm": 3})  # failures on the VM's pathway: nothing to probe
    assert not policy.probe_wanted("bucket")
    policy.report("a", "bucket", {})
    assert not policy.probe_wanted("bucket")
    probes = 0
    for _ in range(80):  # ten seconds of reports, 10 every 1/8 s, each saying the bucket fails
        forged(policy, 10, 0)
        if policy.probe_wanted("bucket"):
            probes += 1
            policy.probed("bucket", True)  # the probe answers: the bucket serves
        world.clock.t += 0.125
    assert probes == 10 / PROBE_AGAIN
    assert policy.first == "bucket" and policy.switches == {}


def test_a_report_opens_bytes_to_its_own_address_only_for_a_while(world: World) -> None:
    policy = world.policy
    policy.report("a", "bucket", {"bucket": 1}, client="203.0.113.7")
    policy.report("b", "bucket", {"bucket": 1})  # no address known: nothing to open
    policy.report("c", "bucket", {}, client="203.0.113.8")  # no failure
    assert policy.client_failing("203.0.113.7")
    assert not policy.client_failing("203.0.113.8") and not policy.client_failing(None)
    world.run(REPORTED_FOR - 0.5)
    assert policy.client_failing("203.0.113.7")
    world.run(0.5)
    assert not policy.client_failing("203.0.113.7")
    assert policy.first == "bucket" and policy.bucket_serves()


def test_the_addresses_remembered_are_bounded(world: World) -> None:
    policy = world.policy
    for n in range(MAX_FAILING_CLIENTS + 10):
        policy.report("a", "bucket", {"bucket": 1}, client=f"c{n}")
    assert not policy.client_failing("c0") and policy.client_failing(f"c{MAX_FAILING_CLIENTS + 9}")
    assert len(policy._failing_clients) == MAX_FAILING_CLIENTS


def test_the_steering_manifest_is_rendered_as_the_spec_orders_it() -> None:
    body = render_steering(["vm", "bucket"], 3, "steering.json")
    assert body == b'{"VERSION":1,"TTL":3,"RELOAD-URI":"steering.json","PATHWAY-PRIORITY":["vm","bucket"]}'
    for bad in ([], ["vm", "vm"], ["a b"], ['x"']):
        with pytest.raises(ValueError):
            render_steering(bad, 3)
    with pytest.raises(ValueError):
        render_steering(["vm"], 0)


def test_the_manifest_served_at_a_place_reloads_from_there() -> None:
    """RELOAD-URI absolute (Shaka 5 reloads with `new URL(uri)` and no base); without an absolute place,
    no RELOAD-URI: players reload the URI they had."""
    body = render_steering(["vm", "bucket"], 3, "steering.json")
    there = reloaded_from(body, "https://live.example.com/hls/")
    assert there == body.replace(b'"steering.json"', b'"https://live.example.com/hls/steering.json"')
    assert json.loads(reloaded_from(body, "http://127.0.0.1:3000/live/"))["RELOAD-URI"] == (
        "http://127.0.0.1:3000/live/steering.json")
    for nowhere in ("//live.example.com/live/", None, ""):
        gone = json.loads(reloaded_from(body, nowhere))
        assert "RELOAD-URI" not in gone and gone == {k: v for k, v in json.loads(body).items() if k != "RELOAD-URI"}
    plain = render_steering(["bucket"], 1)
    assert reloaded_from(plain, "https://live.example.com/live/") == plain


@pytest.mark.parametrize(("text", "said"), [
    ("vm", ("vm", {}, 0)),
    ("bucket bucket=3", ("bucket", {"bucket": 3}, 0)),
    ("- vm=2 bucket=1", (None, {"bucket": 1, "vm": 2}, 0)),  # any order
    ("backup backup=900", ("backup", {"backup": 255}, 0)),  # one page weighs one page
    ("bucket bucket=0", ("bucket", {}, 0)),
    # What is not understood is ignored, each word counted, and the rest heard.
    ("", (None, {}, 1)),
    ("evil bucket=1", (None, {"bucket": 1}, 1)),
    ("vm bucket=1 evil=4", ("vm", {"bucket": 1}, 1)),
    ("vm bucket=1 bucket=7", ("vm", {"bucket": 1}, 1)),
    ("bucket 1 0 0", ("bucket", {}, 3)),
    ("vm bucket=-1 vm=1e3 bucket=\u0663 vm= =1 vm", ("vm", {}, 6)),
    ("vm  bucket=1", ("vm", {"bucket": 1}, 1)),
    ("vm bucket=9999999", ("vm", {}, 1)),
    ("vm " + "x " * 20, ("vm", {}, 8)),  # at most MAX_WORDS words looked at
])
def test_a_pages_word_on_its_pathway_is_read(text: str, said: tuple[str | None, dict[str, int], int]) -> None:
    assert reports.parse(text) == said
    told: list[object] = []
    hook = reports.PathwayReports(lambda *args: told.append(args))
    hook("page", "203.0.113.7", text)
    assert told == [("page", said[0], said[1], "203.0.113.7")]
    assert (hook.heard, hook.failing, hook.ignored) == (1, int(bool(said[1])), said[2])


def test_only_the_configured_pathways_are_known() -> None:
    assert reports.parse("backup backup=2 vm=1", ("bucket", "vm")) == (None, {"vm": 1}, 2)


def test_with_one_second_segments_an_upload_waits_two_seconds_before_it_counts() -> None:
    world = World(target=1, interval=INTERVAL)
    world.behind = 1.5
    world.run(0.5)
    assert world.policy.first == "bucket"  # a busy machine's upload
    world.behind = 2.5
    world.run(0.5)
    assert world.policy.first == "vm"


def test_nothing_is_decided_before_a_target_duration_is_known() -> None:
    policy = SteeringPolicy(("bucket", "vm"), {"bucket": BucketSignals(behind=lambda: 100.0)}, lambda: None,
                            interval=INTERVAL, clock=Clock())
    assert not policy.evaluate() and policy.first == "bucket"  # a start's first uploads are no outage


def test_uploads_only_slow_on_a_busy_machine_are_no_outage(world: World) -> None:
    """Uploads slow but succeeding: players stay until one has waited SLOW_TARGETS target durations."""
    policy = world.policy
    world.failing = False
    world.behind = 2 * TARGET
    world.run(5)
    assert policy.first == "bucket" and policy.switches == {}
    world.behind = SLOW_TARGETS * TARGET + 0.5
    world.run(0.5)
    assert policy.priority == ("vm", "bucket") and policy.reason == UPLOADS


def test_an_upload_refused_and_a_probe_failed_together_send_players_away_at_once(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """At the next evaluation (Shaka does not leave a failing pathway on its own)."""
    caplog.set_level(logging.INFO, "broadcaster.steering.policy")
    policy = world.policy
    world.run(2)
    world.behind, world.refused = 0.1, "SlowDown"  # the first attempt of the first upload since
    world.run(0.5)
    assert policy.first == "bucket" and policy.probe_wanted("bucket")  # its probe goes now
    policy.probed("bucket", False, "HTTP 503")
    assert not policy.probe_wanted("bucket")
    world.behind = 0.6
    world.run(0.5)
    assert policy.priority == ("vm", "bucket") and policy.reason == DOWN
    health = policy.health_reason() or ""
    assert "uploads to it are refused (SlowDown)" in health and "HTTP 503" in health
    assert policy.switches == {("vm", DOWN): 1}
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 1 and lines[0][0] == "WARNING" and "refused (SlowDown)" in lines[0][1], lines
    world.refused, world.behind = None, 0.0  # back: uploads land, the probe answers
    policy.probed("bucket", True)
    world.run(TARGET + 0.5)
    assert policy.first == "bucket" and policy.reason == "normal"


def test_a_refused_upload_or_a_failed_probe_alone_moves_nobody(world: World) -> None:
    policy = world.policy
    world.behind, world.refused = 1.0, "SlowDown"  # a 503 now and then: retried, under a target duration
    world.run(5)
    assert policy.first == "bucket"
    policy.probed("bucket", True)  # the probe answers: the reads work
    world.run(5)
    assert policy.first == "bucket" and not policy.probe_wanted("bucket")
    world.behind, world.refused = 0.0, None
    policy.probed("bucket", False, "no answer in 2s")  # one probe lost, the uploads fine
    world.run(5)
    assert policy.first == "bucket" and policy.switches == {}


def test_uploads_timing_out_with_a_probe_failing_are_a_busy_machine_not_a_refusal(world: World) -> None:
    """A timeout is no refusal: a busy machine times out its uploads and its probe alike."""
    assert refusal(False, "Timeout") is None and refusal(False, "ReadTimeoutError") is None
    assert refusal(True, None) is None and refusal(None, None) is None
    assert refusal(False, "SlowDown") == "SlowDown" and refusal(False, "ConnectionRefusedError") == "ConnectionRefusedError"
    policy = world.policy
    world.behind, world.refused = 1.5, refusal(False, "Timeout")
    policy.probed("bucket", False, "no answer in 2s")
    world.run(0.5)
    assert policy.first == "bucket" and not policy.probe_wanted("bucket")


async def test_a_failed_probe_asks_the_buckets_api_at_once_and_its_refusal_steers() -> None:
    """On the real clock, the public URL answering 503: the probe's first failure asks the bucket's API
    (check_writes), whose refusal steers players away for `down`, not after a second probe."""
    asked: list[float] = []
    refused: dict[str, str | None] = {"bucket": None}

    async def check_writes() -> None:
        asked.append(time.monotonic())
        refused["bucket"] = "SlowDown"

    policy = calm_policy(refused=lambda: refused["bucket"])
    async with answering_bucket(503) as (url, _gets), running(policy, check_writes=check_writes) as (_, newest):
        def steered_away() -> bool:
            newest.listed(0, 0, None, url)  # live: the newest segment is fresh
            return policy.first != "bucket"

        # The first probe goes after PROBE_EVERY; the rest at once.
        await until(steered_away, "players steered away from the bucket", 30, every=0.05)
    assert policy.reason == DOWN and len(asked) == 1
    assert "HTTP 503" in (policy.health_reason() or "")


def calm_policy(behind: Callable[[], float] = lambda: 0.0, refused: Callable[[], str | None] = lambda: None,
                target: int = TARGET) -> SteeringPolicy:
    """The policy on the real clock, its bucket's uploads never failing (by default landing at once)."""
    signals = BucketSignals(behind=behind, failing=lambda: False, refused=refused)
    return SteeringPolicy(("bucket", "vm"), {"bucket": signals}, lambda: target, interval=INTERVAL)


@contextlib.asynccontextmanager
async def answering_bucket(status: int = 206, held: asyncio.Event | None = None,
                           ) -> AsyncIterator[tuple[str, list[float]]]:
    """The bucket's public URL: (a segment's URL, when each GET came), each `status`; the first held."""
    gets: list[float] = []

    async def segment(request: web.Request) -> web.Response:
        gets.append(time.monotonic())
        if held is not None and len(gets) == 1:
            await held.wait()
        return web.Response(status=status, body=b"x")

    app = web.Application()
    app.router.add_get("/{key:.*}", segment)
    async with Served(app) as bucket:
        yield f"{bucket.url}/bucket/0/stream-0.ts", gets


@contextlib.asynccontextmanager
async def running(policy: SteeringPolicy, watched: Callable[[], bool] = lambda: True,
                  check_writes: Callable[[], Awaitable[None]] | None = None, probe: bool = True,
                  told_late: bool = False) -> AsyncIterator[tuple[SteeringLoop, Newest]]:
    """The loop that runs `policy`, probing the bucket's newest listing, for the block."""
    newest = Newest()
    loop = SteeringLoop(policy, {"bucket": Probe(newest, check_writes)}, probe=probe, watched=watched,
                        told_late=told_late)
    newest.woken = loop.wake
    await loop.start()
    try:
        yield loop, newest
    finally:
        await loop.stop()


async def test_one_failed_probe_is_a_doubt_the_next_probe_settles() -> None:
    """Doubted but still serving after one; two failures in a row, the VM serves, nothing doubted."""
    gets: list[int] = []
    second = asyncio.Event()

    async def segment(request: web.Request) -> web.Response:  # fails, answers (once let go), then fails
        gets.append(1)
        if len(gets) == 2:
            await second.wait()
        return web.Response(status=206 if len(gets) == 2 else 503, body=b"x")

    app = web.Application()
    app.router.add_get("/{key:.*}", segment)
    policy = calm_policy(target=10)  # a probe waits 10 s for its answer
    async with Served(app) as bucket, running(policy) as (loop, newest):
        newest.listed(0, 0, None, f"{bucket.url}/bucket/0/stream-0.ts")
        await until(lambda: len(gets) == 2, "the second probe on its way", 30, every=0.01)
        assert loop.doubted() and policy.bucket_serves()
        waiting = asyncio.ensure_future(loop.next_probe(60))
        await asyncio.sleep(0)
        assert not waiting.done()
        second.set()
        await asyncio.wait_for(waiting, 30)  # ended by the answer, not its 60 s
        assert not loop.doubted() and policy.bucket_serves()
        await until(lambda: not policy.bucket_serves(), "two failed probes", 30, every=0.01)
        assert not loop.doubted()
        await asyncio.wait_for(loop.next_probe(0.01), 5)  # no answer: the wait ends at its bound


async def test_a_doubt_ends_once_nothing_is_live() -> None:
    """A failed probe's doubt does not outlive the stream: the next turn finds nothing live and ends it."""
    held = asyncio.Event()
    policy = calm_policy()
    async with answering_bucket(503, held) as (url, gets), running(policy) as (loop, newest):
        newest.listed(0, 0, None, url)
        await until(lambda: len(gets) == 1, "the first probe on its way", 30, every=0.01)
        newest.newest = (url, time.monotonic() - 3600)  # listed an hour ago: nothing live from now on
        answered = asyncio.ensure_future(loop.next_probe(60))
        held.set()
        await asyncio.wait_for(answered, 30)
        assert loop.doubted()
        await asyncio.wait_for(loop.next_probe(60), 30)  # the next turn: nothing live
        assert not loop.doubted() and policy.bucket_serves() and len(gets) == 1


async def test_reports_make_the_loop_probe_at_once_at_most_once_per_probe_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of reports makes the loop probe at once, never sooner than PROBE_AGAIN after the last."""
    monkeypatch.setattr(probe, "PROBE_EVERY", 60.0)
    policy = calm_policy()
    async with answering_bucket() as (url, probes), running(policy) as (loop, newest):
        def flooded() -> bool:
            newest.listed(0, 0, None, url)  # live: the newest segment is fresh
            for page in range(20):
                loop.report(f"forged{page}", "bucket", {"bucket": 255})  # PathwayReports' hook, as wired
            return len(probes) >= 4

        await until(flooded, "probes asked for by reports", 30, every=0.01)
    gaps = [later - earlier for earlier, later in zip(probes, probes[1:])]
    assert min(gaps) >= PROBE_AGAIN, gaps
    assert policy.first == "bucket" and policy.switches == {}


async def test_reports_while_a_probe_is_on_its_way_are_answered_by_it_not_by_another_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "PROBE_EVERY", 60.0)
    release = asyncio.Event()
    policy = calm_policy()
    async with answering_bucket(held=release) as (url, gets), running(policy) as (loop, newest):
        newest.listed(0, 0, None, url)
        loop.report("page", "bucket", {"bucket": 1})  # the first probe, at once
        await until(lambda: len(gets) == 1, "the first probe on its way", 10)
        for page in range(5):
            loop.report(f"page{page}", "bucket", {"bucket": 1})  # while it is on its way
        release.set()
        await until(lambda: policy.probe_wanted("bucket") is False and loop._probe_now["bucket"]._waiter
                    is not None, "the probe answered and waiting again", 10)
        assert len(gets) == 1  # no second probe for the reports its answer covers
        await until(lambda: time.monotonic() - gets[0] > PROBE_AGAIN, "PROBE_AGAIN after it", 10)

        def reported() -> bool:
            newest.listed(0, 0, None, url)
            loop.report("late", "bucket", {"bucket": 1})
            return len(gets) == 2

        await until(reported, "a report after it probes again", 10, every=0.05)
        assert gets[1] - gets[0] >= PROBE_AGAIN


def test_players_count_as_watching_while_their_requests_move_within_four_target_durations() -> None:
    clock, requests, target = Clock(), [0], [5]
    watched = Watched(lambda: requests[0], lambda: target[0], clock=clock)
    assert watched()  # the first look counts as a request: players may be there from the start
    clock.t += WATCHED_TARGETS * 5
    assert watched()
    clock.t += 0.01
    assert not watched()
    requests[0] += 1
    assert watched()
    target[0] = 1  # a short target: WATCHED_LEAST at least
    clock.t += WATCHED_LEAST + 0.01
    assert not watched()


async def test_while_nobody_plays_the_probe_sends_no_get_unless_the_policy_wants_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With nobody playing, no GET and no turn every PROBE_EVERY; a report still makes it probe, and a
    player's request (SteeringLoop.seen) wakes it, a GET at each turn from then on."""
    monkeypatch.setattr(probe, "PROBE_EVERY", 0.02)
    monkeypatch.setattr(probe, "QUIET_EVERY", 600.0)
    policy = calm_policy()
    playing, looks = [False], [0]

    def watched() -> bool:
        looks[0] += 1
        return playing[0]

    async with answering_bucket() as (url, gets), running(policy, watched) as (loop, newest):
        def fresh(enough: Callable[[], bool]) -> Callable[[], bool]:
            def check() -> bool:
                newest.listed(0, 0, None, url)  # live: the newest segment is fresh
                return enough()
            return check

        await until(fresh(lambda: loop._unwatched), "the probe asleep: nobody plays", 30, every=0.01)
        assert gets == [] and looks[0] == 1  # not one GET
        # What a turn each PROBE_EVERY would have made 25 of: none (an absence, so a span of time).
        await asyncio.sleep(25 * probe.PROBE_EVERY)
        assert looks[0] == 1 and gets == []
        loop.report("page", "bucket", {"bucket": 1})  # a page says its fetches failed: checked
        await until(fresh(lambda: len(gets) >= 1), "the probe a report asks for", 30, every=0.01)
        asked = len(gets)
        playing[0] = True
        loop.seen()  # a player's request
        await until(fresh(lambda: len(gets) >= asked + 5), "a GET at each turn once players play", 30, every=0.01)
    assert policy.first == "bucket"


def test_failures_reported_during_an_outage_open_no_bytes_once_players_are_back(world: World) -> None:
    """Failures reported in the outage, or within an interval after it, open nothing; later ones do."""
    policy = world.policy
    uploads_late(world, 1)
    policy.report("a", "vm", {"bucket": 3}, client="203.0.113.7")  # in the outage: the VM serves it anyway
    assert not policy.client_failing("203.0.113.7")
    world.behind = 0.0
    world.run(0.5)
    assert policy.first == "bucket" and policy.bucket_serves()
    policy.report("b", "vm", {"bucket": 2}, client="203.0.113.8")  # failures from before the switch back
    assert not policy.client_failing("203.0.113.8")
    world.run(INTERVAL)
    policy.report("b", "bucket", {"bucket": 1}, client="203.0.113.8")  # the bucket failing for it alone
    assert policy.client_failing("203.0.113.8")


def test_a_client_failing_when_the_bucket_fails_is_forgotten_when_players_are_back(world: World) -> None:
    policy = world.policy
    world.run(INTERVAL)
    policy.report("a", "bucket", {"bucket": 1}, client="203.0.113.7")  # its own failure, the bucket serving
    assert policy.client_failing("203.0.113.7")
    uploads_late(world, 1)
    world.behind = 0.0
    world.run(0.5)
    assert policy.first == "bucket" and not policy.client_failing("203.0.113.7")


async def test_the_loops_go_quiet_while_nothing_is_live_and_a_listing_wakes_them() -> None:
    """Nothing listed lately, no upload waiting, no bucket failing: every QUIET_EVERY."""
    behind = [0.0]
    policy = calm_policy(behind=lambda: behind[0])
    evaluated = counting(policy)
    async with running(policy, probe=False) as (loop, newest):
        await until(lambda: loop._quiet, "quiet with nothing listed", 10)
        quiet_since = len(evaluated)
        newest.listed(0, 0, None, "http://127.0.0.1:9/x.ts")  # a listing: evaluated at once, not quiet
        await until(lambda: len(evaluated) > quiet_since, "evaluated on the listing", QUIET_EVERY / 2)
        assert not loop._quiet
        behind[0] = 0.2  # an upload waits: never quiet, whatever is listed
        newest.newest = None
        await until(lambda: len(evaluated) > quiet_since + 2, "evaluated again", 10)
        assert not loop._quiet


def test_a_calm_policy_says_when_the_clock_alone_could_decide(world: World) -> None:
    """Calm: evaluated when an upload waiting would pass a target duration; amiss: None (every 0.5 s)."""
    policy = world.policy
    world.run(1)
    assert policy.calm_for() == max(TARGET, MIN_UPLOAD_WAIT)  # nothing waits: a target duration from now
    world.behind = 1.5
    assert policy.calm_for() == pytest.approx(max(TARGET, MIN_UPLOAD_WAIT) - 1.5)
    assert policy.calm_for(told_late=True) == math.inf  # the uploads tell when it passes: no turn for it
    world.behind = TARGET + 0.1  # past a target duration: read every half second until it lands
    assert policy.calm_for() is None
    world.behind = 0.0
    world.refused = "SlowDown"  # refused, before an evaluation saw it
    assert policy.calm_for() is None
    world.refused = None
    policy.probed("bucket", False, "HTTP 503")  # one failed probe
    assert policy.calm_for() is None
    policy.probed("bucket", True)
    assert policy.calm_for() is not None
    uploads_late(world, 1)
    assert policy.calm_for() is None  # steered away: read every half second
    world.behind = 0.0
    world.run(0.5)
    assert policy.first == "bucket" and policy.calm_for() is not None


async def test_with_uploads_that_tell_when_one_is_late_a_calm_loop_takes_no_turn_on_a_timer(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Wired as the service wires it; a late upload is evaluated at once, then every half second."""
    monkeypatch.setattr(probe, "QUIET_EVERY", 60.0)
    monkeypatch.setattr("broadcaster.steering.policy.MIN_UPLOAD_WAIT", 0.3)
    monkeypatch.setattr("broadcaster.bucket.lateness.ARM_AFTER", 0.05)
    store = FakeStore()
    uploader = Uploader(store, Metrics(), concurrency=2, attempt_timeout=60)
    policy = SteeringPolicy(("bucket", "vm"),
                            {"bucket": BucketSignals.of_uploads(lambda: uploader.waiting()[1] or 0.0,
                                                                lambda: (uploader.storage_ok, uploader.last_error))},
                            lambda: 1, interval=INTERVAL)  # late after a target duration: 1 s
    assert policy.calm_for() == 1 and policy.calm_for(told_late=True) == math.inf
    evaluated = counting(policy)
    async with running(policy, probe=False, told_late=True) as (loop, newest):
        uploader.on_failure = loop.look
        uploader.waits.on_late, uploader.waits.late_after = loop.look, policy.late_after
        newest.listed(0, 0, None, "http://127.0.0.1:9/x.ts")  # live: not quiet
        await until(lambda: len(evaluated) >= 1 and not loop._quiet, "an evaluation while live", 10)
        assert loop._next_look() == 60.0  # calm, nothing waiting: only an event (or QUIET_EVERY) is due
        for name in ("a.ts", "b.ts"):
            (tmp_path / name).write_bytes(b"\x47" * 188)
            store.hold(f"k/{name}")
        before = len(evaluated)
        clock = asyncio.get_running_loop().time
        began = clock()
        upload = asyncio.ensure_future(uploader.upload_file(tmp_path / "a.ts", "k/a.ts", "0"))
        # The next segment's upload starts while it waits (its lateness timer is armed then: ARM_AFTER).
        await until(lambda: clock() - began > 0.1, "the first waited ARM_AFTER", 10)
        upload_next = asyncio.ensure_future(uploader.upload_file(tmp_path / "b.ts", "k/b.ts", "0"))
        await until(lambda: policy.calm_for(told_late=True) is None and len(evaluated) > before,
                    "the late upload evaluated at once (no timer of the loop's for a minute)", 10)
        assert loop._next_look() == probe.EVALUATE_EVERY  # amiss: read twice a second
        store.release("k/a.ts")
        store.release("k/b.ts")
        await asyncio.gather(upload, upload_next)
        await until(lambda: loop._next_look() == 60.0, "calm again once it landed", 10)


async def test_the_loop_evaluates_on_a_failed_upload_and_a_failed_probe_not_only_on_its_timer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "QUIET_EVERY", 60.0)
    long_target = 30
    refused: list[str | None] = [None]
    policy = calm_policy(refused=lambda: refused[0], target=long_target)
    evaluated = counting(policy)
    async with running(policy, probe=False) as (loop, newest):
        newest.listed(0, 0, None, "http://127.0.0.1:9/x.ts")  # live: not quiet
        await until(lambda: len(evaluated) >= 1 and not loop._quiet, "an evaluation while live", 10)
        assert loop._next_look() == long_target  # calm: the clock alone decides nothing sooner
        before = len(evaluated)
        refused[0] = "SlowDown"
        loop.look()  # Uploader.on_failure
        await until(lambda: len(evaluated) > before, "evaluated on the refusal", 10)
        assert policy.probe_wanted("bucket")  # the refusal sends the probe at once
        assert loop._next_look() == probe.EVALUATE_EVERY  # amiss: read twice a second
        refused[0] = None
        policy.probed("bucket", True)
        await until(lambda: loop._next_look() == long_target, "calm again", 10)
        before = len(evaluated)
        loop._after_probe("bucket", False, policy.probed("bucket", False, "HTTP 503"))  # as the probe's task does
        await until(lambda: len(evaluated) > before, "evaluated on the failed probe", 10)


async def test_a_wake_ends_on_set_or_after_its_seconds_and_a_cancel_leaves_nothing_behind() -> None:
    wake = Wake()
    waiting = asyncio.create_task(wake.wait(60))
    await until(lambda: wake._waiter is not None, "waiting", 10)
    wake.set()
    await asyncio.wait_for(waiting, 10)  # set: over at once, not after 60 s
    await asyncio.wait_for(wake.wait(60), 10)  # still set: no wait
    wake.clear()
    started = time.monotonic()
    await wake.wait(0.05)  # unset: over after its seconds
    assert time.monotonic() - started >= 0.04
    cancelled = asyncio.create_task(wake.wait(60))
    await until(lambda: wake._waiter is not None, "waiting again", 10)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert wake._waiter is None and not wake._set
