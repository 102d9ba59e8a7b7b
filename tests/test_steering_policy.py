"""The steering policy (broadcaster/steering/policy.py) on a fake clock: which pathway players are sent
to, for which reason, when they come back, and what a hostile page can move; the steering manifest it
renders (playlist/steering.py) and what a page's Hb-Pathway says (steering/reports.py)."""

from __future__ import annotations

import functools
import json
import logging
import time

import pytest
from aiohttp import web

from broadcaster.playlist import hls
from broadcaster.playlist.steering import Clone, reloaded_from, render_steering
from broadcaster.steering import reports
from broadcaster.steering.probe import Newest, Probe, SteeringLoop
from broadcaster.steering.policy import (DOWN, HOLD_MAX, PUBLIC_URL, SLOW_TARGETS, UPLOADS, VIEWERS, BucketSignals,
                                         SteeringPolicy, refusal)
from tests.support.fakes import Clock
from tests.support.waiting import until

TARGET = 2
INTERVAL = 1.0  # the pages' report interval


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.behind = 0.0
        self.failing = True  # the uploads' last attempt failed
        self.refused: str | None = None  # why the bucket refused the last attempt
        self.policy = SteeringPolicy(("bucket", "vm"), {"bucket": BucketSignals(behind=lambda: self.behind,
                                                                               failing=lambda: self.failing,
                                                                               refused=lambda: self.refused)},
                                     lambda: TARGET, interval=INTERVAL, clock=self.clock)

    def run(self, seconds: float, step: float = 0.5) -> None:
        """Evaluate every `step` for `seconds`, as the service's loop does."""
        end = self.clock.t + seconds
        while self.clock.t < end:
            self.clock.t += step
            self.policy.evaluate()


@pytest.fixture
def world() -> World:
    return World()


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
    world.behind = 0.0  # caught up: back after a target duration of it
    world.run(TARGET - 0.5)
    assert policy.first == "vm"
    world.run(1.0)
    assert policy.priority == ("bucket", "vm") and policy.reason == "normal"
    assert policy.switches == {("vm", UPLOADS): 1, ("bucket", "normal"): 1}
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0][0] == "WARNING" and "steering players to the vm pathway" in lines[0][1]
    assert "uploads to it have waited" in lines[0][1]
    assert lines[1][0] == "INFO" and lines[1][1].startswith("steering players back to the bucket pathway after")


def test_health_names_every_signal_that_holds_the_strongest_as_the_reason(world: World) -> None:
    """Uploads waiting moved players first; the public URL failing meanwhile is named too, not hidden."""
    policy = world.policy
    world.behind = TARGET + 1
    world.run(0.5)
    assert policy.first == "vm" and policy.reason == UPLOADS
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
    # Read as a sentence (it said "the bucket's its public URL" before issue 68).
    assert (policy.health_reason() or "").endswith(
        "the bucket pathway: its public URL does not answer the service (HTTP 503)"), policy.health_reason()
    policy.probed("bucket", True)
    world.run(TARGET + 0.5)
    assert policy.first == "bucket"


def test_viewers_failing_on_the_bucket_send_everyone_away_when_half_of_those_reporting_fail(world: World) -> None:
    policy = world.policy
    for page in ("a", "b", "c"):
        policy.report(page, "bucket", {})
    policy.report("d", "bucket", {"bucket": 2})
    world.run(0.5)
    assert policy.first == "bucket"  # one of four
    policy.report("b", "bucket", {"bucket": 1})
    world.run(0.5)
    assert policy.first == "vm" and policy.reason == VIEWERS
    assert "2 of 4 viewer pages" in (policy.health_reason() or "")
    assert policy.pages() == {"bucket": 4}


def test_a_lone_viewer_failing_counts_when_it_is_the_only_one_reporting(world: World) -> None:
    world.policy.report("a", "bucket", {"bucket": 1})
    world.run(0.5)
    assert world.policy.first == "vm"


def test_after_viewer_failures_the_bucket_comes_back_after_a_hold_that_doubles_on_relapse(world: World) -> None:
    policy = world.policy
    hold = 4 * TARGET
    policy.report("a", "bucket", {"bucket": 1})
    world.run(0.5)
    assert policy.first == "vm"
    policy.report("a", "vm", {})  # the page moved: no failure since
    world.run(hold - 1)
    assert policy.first == "vm"
    world.run(1.5)
    assert policy.first == "bucket"
    # It fails again soon after: away again, and the hold is twice as long.
    world.run(5)
    policy.report("a", "bucket", {"bucket": 1})
    world.run(0.5)
    assert policy.first == "vm"
    policy.report("a", "vm", {})
    world.run(2 * hold - 1)
    assert policy.first == "vm"
    world.run(1.5)
    assert policy.first == "bucket"
    assert policy.switches[("vm", VIEWERS)] == 2


def test_the_hold_is_bounded(world: World) -> None:
    policy = world.policy
    for _ in range(12):  # relapse after relapse
        policy.report("a", "bucket", {"bucket": 1})
        world.run(0.5)
        assert policy.first == "vm"
        policy.report("a", "vm", {})
        world.run(HOLD_MAX + 1)
        assert policy.first == "bucket"


def test_a_hostile_page_among_many_honest_ones_moves_nobody(world: World) -> None:
    policy = world.policy
    for tick in range(50):  # the same page saying it again and again is still one page
        if tick % 10 == 0:  # the honest pages beat once an interval
            for page in range(10):
                policy.report(f"honest{page}", "bucket", {})
        policy.report("hostile", "bucket", {"bucket": 255})
        world.run(0.1, step=0.1)
        assert policy.first == "bucket"


def test_reports_older_than_two_intervals_are_forgotten(world: World) -> None:
    policy = world.policy
    for page in ("a", "b", "c"):
        policy.report(page, "bucket", {})
    world.run(2 * INTERVAL + 0.5)  # they stopped beating (closed)
    policy.report("d", "bucket", {"bucket": 1})
    world.run(0.5)
    assert policy.first == "vm"  # d is the only page reporting now
    assert policy.pages() == {"bucket": 1}


def test_a_second_bucket_is_offered_before_the_vm_when_configured_so() -> None:
    clock = Clock()
    behind = {"bucket": 0.0, "backup": 0.0}
    policy = SteeringPolicy(("bucket", "backup", "vm"),
                            {p: BucketSignals(behind=functools.partial(behind.__getitem__, p))
                             for p in ("bucket", "backup")},
                            lambda: TARGET, interval=INTERVAL, clock=clock)
    behind["bucket"] = 10
    clock.t += 0.5
    policy.evaluate()
    assert policy.priority == ("backup", "vm", "bucket")
    behind["backup"] = 10
    clock.t += 0.5
    policy.evaluate()
    assert policy.priority == ("vm", "bucket", "backup")


def test_the_steering_manifest_is_rendered_as_the_spec_orders_it() -> None:
    body = render_steering(["vm", "bucket"], 3, "steering.json", [Clone("bucket.2", "bucket")])
    assert body == (b'{"VERSION":1,"TTL":3,"RELOAD-URI":"steering.json","PATHWAY-PRIORITY":["vm","bucket"],'
                    b'"PATHWAY-CLONES":[{"BASE-ID":"bucket","ID":"bucket.2","URI-REPLACEMENT":{}}]}')
    for bad in ([], ["vm", "vm"], ["a b"], ['x"']):
        with pytest.raises(ValueError):
            render_steering(bad, 3)
    with pytest.raises(ValueError):
        render_steering(["vm"], 0)


def test_the_manifest_served_at_a_place_reloads_from_there() -> None:
    """RELOAD-URI absolute where the manifest was asked (Shaka 5 reloads with `new URL(uri)` and no base,
    which throws on a relative one), every other member and their order as rendered; without an absolute
    place (a network-path one, or none), no RELOAD-URI: players reload the URI they had."""
    body = render_steering(["vm", "bucket"], 3, "steering.json", [Clone("bucket.2", "bucket")])
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
    ("vm 0 0 0", ("vm", {})),
    ("bucket 3 0 0", ("bucket", {"bucket": 3})),
    ("- 1 2 0", (None, {"bucket": 1, "vm": 2})),
    ("backup 0 0 900", ("backup", {"backup": 255})),
])
def test_a_pages_word_on_its_pathway_is_read(text: str, said: tuple[str | None, dict[str, int]]) -> None:
    assert reports.parse(text) == said


@pytest.mark.parametrize("text", ["", "vm", "vm 0 0", "vm 0 0 0 0", "evil 0 0 0", "vm -1 0 0", "vm 1e3 0 0",
                                  "vm ٣ 0 0", "vm 0  0 0", "vm 9999999 0 0"])
def test_anything_else_is_ignored_and_counted(text: str) -> None:
    told: list[object] = []
    hook = reports.PathwayReports(lambda *args: told.append(args))
    hook("page", text)
    assert told == [] and hook.malformed == 1 and reports.parse(text) is None


def test_with_one_second_segments_an_upload_waits_two_seconds_before_it_counts() -> None:
    clock = Clock()
    behind = [1.5]
    policy = SteeringPolicy(("bucket", "vm"), {"bucket": BucketSignals(behind=lambda: behind[0])}, lambda: 1,
                            interval=INTERVAL, clock=clock)
    clock.t += 0.5
    policy.evaluate()
    assert policy.first == "bucket"  # a busy machine's upload
    behind[0] = 2.5
    clock.t += 0.5
    policy.evaluate()
    assert policy.first == "vm"


def test_nothing_is_decided_before_a_target_duration_is_known() -> None:
    policy = SteeringPolicy(("bucket", "vm"), {"bucket": BucketSignals(behind=lambda: 100.0)}, lambda: None,
                            interval=INTERVAL, clock=Clock())
    assert not policy.evaluate() and policy.first == "bucket"  # a start's first uploads are no outage


def test_uploads_only_slow_on_a_busy_machine_are_no_outage(world: World) -> None:
    """Uploads that take longer than a target duration but succeed (a busy machine: bench.p2p at load, with
    nothing failing, sent its players to the VM): players stay on the bucket until an upload has waited
    SLOW_TARGETS target durations (the bucket's playlists that stale are a player's whole buffer)."""
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
    """The bucket down for everyone (R2 on 6 February 2025): its first refused upload and the probe's first
    failure, together, steer at the next evaluation, where either waited for a target duration of
    uploads or a second probe (Shaka, which does not leave a failing pathway on its own, stalled)."""
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
    """A timeout is no refusal (refusal()): a busy machine times out its uploads and its probe alike."""
    assert refusal(False, "Timeout") is None and refusal(False, "ReadTimeoutError") is None
    assert refusal(True, None) is None and refusal(None, None) is None
    assert refusal(False, "SlowDown") == "SlowDown" and refusal(False, "ConnectionRefusedError") == "ConnectionRefusedError"
    policy = world.policy
    world.behind, world.refused = 1.5, refusal(False, "Timeout")
    policy.probed("bucket", False, "no answer in 2s")
    world.run(0.5)
    assert policy.first == "bucket" and not policy.probe_wanted("bucket")


async def test_a_failed_probe_asks_the_buckets_api_at_once_and_its_refusal_steers() -> None:
    """The loop that runs the policy (steering/probe.py), on the real clock and a real HTTP server for the
    bucket's public URL, answering 503 as R2 did: the probe's first failure asks the bucket's API
    (check_writes), whose refusal steers players away for `down`, not after a second probe."""
    asked: list[float] = []
    refused: dict[str, str | None] = {"bucket": None}

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text="SlowDown")

    async def check_writes() -> None:
        asked.append(time.monotonic())
        refused["bucket"] = "SlowDown"

    runner = web.AppRunner(web.Application(), access_log=None, handle_signals=False)
    runner.app.router.add_get("/{key:.*}", down)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/bucket/0/stream-0.ts"
    policy = SteeringPolicy(("bucket", "vm"), {"bucket": BucketSignals(behind=lambda: 0.0, failing=lambda: False,
                                                                       refused=lambda: refused["bucket"])},
                            lambda: TARGET, interval=INTERVAL)
    newest = Newest()
    loop = SteeringLoop(policy, {"bucket": Probe(newest, check_writes)})
    await loop.start()
    try:
        def steered_away() -> bool:
            newest.listed(0, 0, None, url)  # live: the newest segment is fresh
            return policy.first != "bucket"

        # The first probe goes after PROBE_EVERY; the rest at once.
        await until(steered_away, "players steered away from the bucket", 30, every=0.05)
    finally:
        await loop.stop()
        await runner.cleanup()
    assert policy.reason == DOWN and len(asked) == 1
    assert "HTTP 503" in (policy.health_reason() or "")
