"""End to end: R2 taken away for real while players play. SeaweedFS behind two gates (tests/support/gates.py)
closed for everyone, for the viewers only, then for the service's writes only, each until every player has
played past its buffer and a target duration more from the VM. Five players in headless Chromium (the viewer
page, hls.js, Owncast's video.js, Shaka, and hls.js without content steering, which plays the VM's
pathway and is redirected to the bucket while it serves); STEERING_PLAYERS=viewer,shaka picks some.

Each keeps playing (no stall longer than a target duration, no fatal error), every segment byte for byte
what Owncast wrote, and is back on the bucket within a steering reload and a segment of being told (its own
first reload after the service steered back); the VM sends segment bytes only while players are away, but
to a page whose own bucket fetches failed since, within policy.REPORTED_FOR. Each page has an address of
its own (the VM's bytes are bounded per address); beside them, forged reporters and a drain
(tests/support/hostile.py). In the writes-only outage video.js (VHS changes pathway only on an error) plays
on from the VM's URIs the bucket's playlists list (steering/bucket_pathway.py).

A stall is charged to the service from when Owncast finished the segment (TimedLedger) until it left the
server (steering_watch.charged). What the VM sent is counted on the wire by a proxy; the gates and proxy
answer from a loop of their own (tests/support/loop_thread.py), not behind Playwright's events.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.vm import budget as vm_budget
from broadcaster.playlist import hls
from broadcaster.steering import policy
from tests.support.browser import needs_chromium, shared_chromium
from tests.support.counting_proxy import Answer, CountingProxy
from tests.support.gates import VIEWERS_HOST, BucketGates
from tests.support.hostile import Fetcher, forge_reports
from tests.support.independent_players import SHAKA_LOAD_RACE
from tests.support.loop_thread import LoopThread
from tests.support.s3 import bucket_of_its_own
from tests.support.service_process import ServiceProcess, service_env
from tests.support.steered_players import Players, TimedLedger, Watched, on_the_rig
from tests.support.steering_watch import (asked, charged, from_the_vm, health, highest_bandwidth, last_back, metric,
                                          playing, refused, reloads, report_words, reported_on, served_at, source_late,
                                          steering_manifests, tell_the_outage, timeline, told_back, until_pathway,
                                          until_played, uploads)
from tests.support.waiting import until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser(slots=2),  # its players are judged on seconds: one browser neighbour at most
    needs_chromium,
    pytest.mark.xdist_group("steering_browser"),
    pytest.mark.asyncio(loop_scope="module"),
]

TARGET = 2  # seconds: the emulator's segments, and so the target duration (the steering TTL is half)
OUTAGE = float(os.environ.get("STEERING_OUTAGE_SECONDS", "0"))  # at least; players decide the rest
# Bounds of waits for a condition (never how long anything takes): the service steers within a few seconds,
# players reload within a TTL; a machine with ten processes per core is slower.
WAIT = 60.0
RACE_ATTEMPTS = 8  # sessions of a Shaka page at most, each lost to its own start-up race (past_shakas_race)
PLAYERS = tuple(os.environ.get("STEERING_PLAYERS", "viewer,hlsjs,videojs,shaka,hlsjs_no_steering").split(","))
# Each page at an address of its own, as viewers are (the proxy in front of the service names it in
# CF-Connecting-IP, as cloudflared does): the VM's bytes are shared out per address.
PAGE_ADDRESSES = {name: f"203.0.113.{i + 1}" for i, name in enumerate(PLAYERS)}
# VM_SEGMENT_MBPS: the pages play about 1 Mbit/s each; with a drain, each of six addresses has 2 Mbit/s.
VM_MBPS = 12
FORGED_ADDRESSES = [f"198.51.100.{n}" for n in range(1, 11)]
FORGED_SECONDS = 12.0  # at least 6 steering reloads (TTL 1 s) and 12 of the pages' beats (2 s)
DRAIN_ADDRESS = "198.51.100.200"
DRAIN_SECONDS = 15.0  # longer than its burst (ten seconds of its share)
MAX_SEGMENT_BYTES = 1_000_000  # more than any one of the emulator's 2 s segments (bounds' slack: one in flight)


@dataclass
class Demo:
    s3: SeaweedS3
    gates: BucketGates
    owncast: OwncastEmulator
    service: ServiceProcess
    players: Players
    pages: dict[str, Watched]
    wire: CountingProxy  # between the pages and the service: every answer the VM put on the wire
    rig: LoopThread  # where the gates and the wire run: their coroutines go through rig.run()
    hostile: LoopThread  # where the forged reporters and the drain run (tests/support/hostile.py)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory, seaweed_server: SeaweedS3, recordings: Recordings,
               ) -> AsyncIterator[Demo]:
    tmp = tmp_path_factory.mktemp("steering")
    ledger = TimedLedger()
    # A bucket of its own on the run's SeaweedFS behind the gates (an outage is this module's alone); the
    # gates and the wire answer from a loop of their own (tests/support/loop_thread.py).
    async with (bucket_of_its_own(seaweed_server) as s3, LoopThread("steering-rig") as rig,
                LoopThread("hostile") as hostile, on_the_rig(rig, BucketGates(s3)) as gates,
                OwncastEmulator(tmp / "hls", resolve_settings(segment_seconds=TARGET),
                                ledger=ledger, recordings=recordings) as owncast):
        env = service_env(tmp / "hls", s3, tmp / "state", S3_ENDPOINT_URL=gates.service_url,
                          R2_PUBLIC_URL=gates.public_url, WINDOW_SECONDS="20",
                          VIEWER_TIMEOUT="6",  # the pages beat every 2 s
                          PATHWAYS="bucket,vm", VM_SEGMENT_MBPS=str(VM_MBPS), TRUST_CF_CONNECTING_IP="true")
        # UPLOAD_TIMEOUT stays at its default (5 s): with 2 s, a PUT a loaded machine made slow timed out
        # after the gate opened and steered players to the VM again.
        async with ServiceProcess(env, tmp / "service") as service, shared_chromium() as browser:
            wire = CountingProxy(service.url, keep_host=True, address_from_agent=True)
            await rig.run(wire.start())
            try:
                await owncast.wait_for_segments(0, 3, timeout=30)
                async with Players(browser, wire.url, gates.public_url, owncast.hls_dir, ledger,
                                   PAGE_ADDRESSES) as players:
                    pages = {name: await players.open(name) for name in PLAYERS}
                    await asyncio.gather(*(until_played(watched, 4) for watched in pages.values()))
                    await past_shakas_race(players, pages)
                    yield Demo(s3, gates, owncast, service, players, pages, wire, rig, hostile)
            finally:
                await rig.run(wire.close())


async def past_shakas_race(players: Players, pages: dict[str, Watched]) -> None:
    """A Shaka page whose first steering reload fell inside its own load() never reloads the manifest again
    (SHAKA_LOAD_RACE, Shaka's own start-up race: 2 to 3 of 6 pages on a loaded machine), and stays on the
    bucket through every outage (one seen: 1 manifest in 52 s, 503s from the bucket for 20 s). It is opened
    again (a new session, as tests/test_independent_players.py does), at most RACE_ATTEMPTS times, until
    every Shaka page reloads its manifest."""
    shakas = [name for name in pages if name.startswith("shaka")]

    for _ in range(RACE_ATTEMPTS):
        raced = [n for n in shakas if any(SHAKA_LOAD_RACE in thrown for thrown in pages[n].thrown)]
        if not raced:
            break
        for name in raced:
            pages[name] = await players.again(pages[name])
        await asyncio.gather(*(until_played(pages[name], 4) for name in raced))
    await until(lambda: all(len(steering_manifests(pages[n])) >= 2 for n in shakas),
                "every Shaka page reloading its steering manifest",
                WAIT, every=0.2, detail=lambda: {n: pages[n].thrown[-2:] for n in shakas})


async def outage(demo: Demo, *, service: bool, viewers: bool, drain: bool = False) -> None:
    """Close the gates until every player played from the VM past its buffer, open them, and judge every
    player through this outage alone; on a failure, the service's own account of it follows."""
    first_line = len(demo.service.lines)
    try:
        await judged_outage(demo, service=service, viewers=viewers, drain=drain)
    except BaseException:
        await tell_the_outage(demo.service, demo.gates, first_line)
        raise


async def until_on_the_bucket(demo: Demo, what: str) -> None:
    """Every player fetching from the bucket, none from the VM, for two target durations."""
    pages = demo.pages
    since_bucket: dict[str, list[tuple[float, str, int, str]]] = {}

    async def on_the_bucket() -> bool:
        recent = time.monotonic() - 2 * TARGET
        since_bucket.update({n: timeline(w, recent + 4) for n, w in pages.items()})
        return all(w.segments(since=recent) and not w.segments(since=recent, pathway="vm") for w in pages.values())

    await until(on_the_bucket, f"every player on the bucket {what}", WAIT, every=0.1, detail=lambda: since_bucket)


async def judged_outage(demo: Demo, *, service: bool, viewers: bool, drain: bool = False) -> None:
    """`drain`: a client drains the VM's pathway beside the steered players (hostile.Fetcher)."""
    pages = demo.pages
    await until_on_the_bucket(demo, "before the outage")
    stalls_before = {name: len(await w.stalls()) for name, w in pages.items()}
    fatal_before = {name: len(await w.fatal()) for name, w in pages.items()}
    sent_before = await metric(demo.service, "hls_broadcaster_vm_segment_bytes_total")
    answered_before = await metric(demo.service, "hls_broadcaster_vm_segment_requests_total")
    words_before = await report_words(demo.service)
    wire_from = len(demo.wire.answers)
    ahead = {name: await w.buffered() for name, w in pages.items()}  # what each plays with no fetch at all
    played_before = {name: await w.played() for name, w in pages.items()}
    closed_at = time.monotonic()
    await demo.rig.run(demo.gates.close(service=service, viewers=viewers))
    drainer: Fetcher | None = None
    draining: asyncio.Future[None] | None = None
    try:
        steered_at = await until_pathway(demo.service, "vm", timeout=WAIT)
        played: dict[str, float] = {}
        if drain:
            # Once every page has asked the VM for a segment (each a client with a share), the drain begins.
            await until(lambda: all(w.segments(since=steered_at, pathway="vm") for w in pages.values()),
                        "every player fetching from the VM", WAIT, every=0.1)
            drainer = Fetcher(demo.service.url, DRAIN_ADDRESS)
            draining = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(drainer.run(), demo.hostile.loop))
        drained_enough = time.monotonic() + (DRAIN_SECONDS if drain else 0.0)

        async def past_their_buffers() -> bool:
            # Each played what it had buffered, and a target duration more, with the bucket gone: the
            # VM's segments kept it playing. STEERING_OUTAGE_SECONDS makes it last longer.
            for name, w in pages.items():
                played[name] = round(await w.played() - played_before[name], 1)
            return time.monotonic() >= max(closed_at + OUTAGE, drained_enough) and all(
                played[n] >= ahead[n] + TARGET and w.segments(since=steered_at, pathway="vm") for n, w in pages.items()
            ) and await reported_on(demo.service, "vm", "viewer" in pages)

        await until(past_their_buffers, "every player playing from the VM past its buffer", WAIT + DRAIN_SECONDS,
                    every=0.1, detail=lambda: {n: (played.get(n), round(ahead[n], 1), timeline(w, closed_at),
                                                   refused(w, closed_at)) for n, w in pages.items()})
    finally:  # a failure here leaves the next test a bucket that works
        if drainer is not None and draining is not None:
            drainer.stop()
            await asyncio.wait_for(draining, 30)
        opened_at = time.monotonic()
        await demo.rig.run(demo.gates.open())
    # The service steers back once its own evidence clears (the probe answers, uploads current): no hold,
    # whatever the pages reported.
    back_at = await until_pathway(demo.service, "bucket", timeout=WAIT)
    steered_by_then = (await metric(demo.service, "hls_broadcaster_vm_segment_bytes_total")).get("yes", 0.0)
    steering_lines = len(demo.service.lines)
    # Back on the bucket within a steering reload (the TTL) and a segment after each page was told (its
    # own first steering reload after the service steered back, told_back: a starved browser reloads late).
    away: dict[str, object] = {}

    async def all_back() -> bool:
        # For a failure's message, each page not back yet: what it fetched since, and how far it played
        # and has buffered now (a player far behind, its buffer full, fetches nothing for a while).
        away.clear()
        for name, w in pages.items():
            if not w.segments(since=back_at, pathway="bucket"):
                away[name] = {"played": round(await w.played(), 1), "buffered": round(await w.buffered(), 1),
                              "fetched": timeline(w, back_at), "playlists": reloads(w, back_at, 2)}
        return not away

    await until(all_back, "every player fetching from the bucket after the service steered back", WAIT,
                every=0.25, detail=lambda: away)
    late = {name: round(w.segments(since=back_at, pathway="bucket")[0].at - back_at, 1) for name, w in pages.items()
            if w.segments(since=back_at, pathway="bucket")[0].at > told_back(w, back_at) + 2 * TARGET + 3}
    # The viewer page's playback reports say which pathway it plays (hls_broadcaster_viewers_pathway).
    await until(lambda: reported_on(demo.service, "bucket", "viewer" in pages), "the viewer page's reports saying it plays the bucket", WAIT,
                every=0.1, detail=lambda: demo.service.lines[-3:])
    await asyncio.gather(*(until_played(w, 2 * TARGET) for w in pages.values()))  # and play on from it
    back_at, problems = last_back(demo.service, steering_lines, back_at), []
    for name, watched in pages.items():
        stalls = (await watched.stalls())[stalls_before[name]:]
        print(f"{name}: {len(watched.segments(since=closed_at, pathway='vm'))} segments from the VM, "
              f"{len(watched.segments(since=closed_at, pathway='bucket'))} from the bucket, "
              f"{len(watched.cached)} from its cache "
              f"({sum(at >= closed_at for at, _u in watched.redirected)} by the VM's redirect), longest stall "
              f"{max((s['ms'] for s in stalls), default=0):.0f} ms")
        served = functools.partial(served_at, demo.wire, demo.gates, PAGE_ADDRESSES.get(name))
        long = [s for s in stalls if charged(demo.players, served, watched, s) > TARGET]
        for s in stalls:
            if s["ms"] > 1000 * TARGET:
                print(f"{name} stall at {s['start'] - closed_at:.1f}s for {s['ms']} ms: {source_late(demo.players, served, watched, s)}")
        if long:
            problems.append(f"{name} stalled longer than a target duration: {long}; "
                            f"{asked(demo.wire, watched, long, closed_at)}; {playing(watched, closed_at)}; "
                            f"errors {await watched.errors()}")
        fatal = (await watched.fatal())[fatal_before[name]:]
        if fatal:
            problems.append(f"{name} fatal errors: {fatal}; refused {refused(watched, closed_at)}; redirected "
                            f"{[(round(at - closed_at, 1), u.rsplit('/', 1)[-1]) for at, u in watched.redirected if at > closed_at]}")
        back = told_back(watched, back_at)
        vm_after = [f.name for f in watched.segments(since=back + 2 * TARGET + 3, pathway="vm")]
        if vm_after:
            print(f"{name} from the VM after it was told: {uploads(demo.gates, watched, back_at)}; the service's "
                  f"steering lines: {[line for line in demo.service.lines if 'pathway' in line][-6:]}")
            problems.append(f"{name} still fetched from the VM {round(back - back_at, 1)} s after steering back "
                            f"and {2 * TARGET + 3} s after it was told: {vm_after}")
    await demo.players.settle()
    problems += demo.players.mismatches()
    # What the VM counted is what it put on the wire, and the players got no more than that. A page may be
    # fetching from the VM as this is read, so the two are read until they agree.
    answers: list[Answer] = []
    counted: dict[str, float] = {}

    async def agreed() -> bool:
        nonlocal answers, counted
        counted = await metric(demo.service, "hls_broadcaster_vm_segment_bytes_total")
        answers = [a for a in demo.wire.answers[wire_from:] if a.status in (200, 206)]
        before = sent_before.get("yes", 0.0) + sent_before.get("no", 0.0)
        return counted.get("yes", 0.0) + counted.get("no", 0.0) - before == sum(a.size for a in answers) + drained

    drained = drainer.bytes if drainer is not None else 0  # what the drain got went straight to the service

    try:
        await until(agreed, "the VM's count and the wire's agreeing", 15, every=0.1)
    except AssertionError:
        pass  # said below, with the figures
    steered = counted.get("yes", 0.0) - sent_before.get("yes", 0.0)
    unsteered = counted.get("no", 0.0) - sent_before.get("no", 0.0)
    on_wire = sum(a.size for a in answers)
    got = sum(f.sent for w in pages.values() for f in from_the_vm(w, closed_at))
    print(f"VM segment bytes: {steered:.0f} while steered, {unsteered:.0f} not; {on_wire} on the wire in "
          f"{len(answers)} answers, {drained} to the drain; the players were seen to get {got}")
    if steered + unsteered != on_wire + drained or got > on_wire:
        problems.append(f"the VM counted {steered + unsteered:.0f} segment bytes sent, {on_wire} went on the wire, "
                        f"the players were seen to get {got}: wire {[(round(a.at - closed_at, 1), a.path, a.size) for a in answers]}; "
                        + "; ".join(f"{n}: {[(round(f.at - closed_at, 1), f.name, f.sent) for f in from_the_vm(w, closed_at)]}"
                                    f" (cached {w.cached})" for n, w in pages.items()))
    # and none of it as steered once the service steered back (the label is the pathway when the answer
    # was sent: steering/metrics.py's PathwayCounts), unless the service sent players away again.
    if counted.get("yes", 0.0) != steered_by_then:
        problems.append(f"the VM counted {counted.get('yes', 0.0) - steered_by_then:.0f} segment bytes as steered "
                        "after the service steered back to the bucket; its steering lines since: "
                        f"{[line for line in demo.service.lines[steering_lines:] if 'pathway' in line]}")
    # Once the bucket serves, a player still on the VM's pathway gets redirects, not bytes: none on the wire
    # a steering reload and a target duration after the service steered back, but to a page whose own
    # bucket fetches failed after that, within REPORTED_FOR (and a beat) of the answer.
    failed_bucket = {PAGE_ADDRESSES[n]: [at for at, _status, url in w.refused if VIEWERS_HOST in url and at >= back_at]
                     for n, w in pages.items()}
    paid_after = [(round(a.at - back_at, 1), a.address, a.path.rsplit("/", 1)[-1], a.size) for a in answers
                  if a.at > back_at + hls.steering_ttl(TARGET) + TARGET
                  and not any(0 <= a.at - at <= policy.REPORTED_FOR + TARGET for at in failed_bucket.get(a.address, []))]
    if paid_after:
        problems.append(f"the VM sent segment bytes after the service steered back: {paid_after} "
                        "(seconds after, address, segment, bytes)")
    if drainer is not None:
        answered = await metric(demo.service, "hls_broadcaster_vm_segment_requests_total")
        problems += drain_problems(demo, drainer, steered_at,
                                   {k: n - answered_before.get(k, 0) for k, n in answered.items()})
    # The viewer page's Hb-Pathway is understood word for word, and its failed fetches on the bucket heard.
    words = await report_words(demo.service)
    failed_there = [at for at, _status, url in pages["viewer"].refused
                    if VIEWERS_HOST in url and at >= closed_at] if "viewer" in pages else []
    if words[1] != words_before[1] or (failed_there and words[0] == words_before[0]):
        problems.append(f"the viewer page's words: {words[0] - words_before[0]:.0f} heard with failures (it "
                        f"failed on the bucket {len(failed_there)} times), {words[1] - words_before[1]:.0f} "
                        "words ignored")
    # What the bucket itself answered in error once the gates were open (a loaded SeaweedFS's own 503s
    # send the service's probe, and so its players, away again): (seconds after opening, side, status, path).
    print("bucket errors after the gates opened:", [
        (round(r.started - opened_at, 1), side, r.status, r.outcome, r.path.split("?")[0][-40:])
        for side, gate in (("service", demo.gates.service), ("viewers", demo.gates.viewers))
        for r in gate.requests if r.started >= opened_at and (r.status or 0) >= 500])
    print(f"closed {closed_at:.1f}, steered to vm after {steered_at - closed_at:.1f}s, opened after "
          f"{opened_at - closed_at:.1f}s (buffers {ahead}), back on the bucket {back_at - opened_at:.1f}s after "
          f"that; late: {late}")
    for name, seconds in late.items():
        watched = pages[name]
        problems.append(f"{name} not back on the bucket within a reload and a segment: {seconds} s after the "
                        f"service steered back; {playing(watched, closed_at)}; "
                        f"errors {await watched.errors()}")
    assert problems == [], "\n".join(problems)


def drain_problems(demo: Demo, drainer: Fetcher, steered_at: float, answered: dict[str, float]) -> list[str]:
    """What is wrong with what a drain got: more than its share of VM_SEGMENT_MBPS (the rate divided among
    the pages and it), or a page refused by the VM meanwhile. `answered`: the VM's answers by status."""
    rate = VM_MBPS * 125_000
    share = rate / (len(demo.pages) + 1)
    most = share * (drainer.seconds + vm_budget.BURST_SECONDS) + MAX_SEGMENT_BYTES
    refused_pages = {n: [(round(at - steered_at, 1), status, url.rsplit("/", 1)[-1]) for at, status, url in w.refused
                         if at >= drainer.started and status == 503 and VIEWERS_HOST not in url]
                     for n, w in demo.pages.items()}
    print(f"the drain, {drainer.seconds:.1f} s beside {len(demo.pages)} steered pages: {drainer.bytes} bytes "
          f"({8 * drainer.bytes / drainer.seconds / 1e6:.2f} Mbit/s; its share {8 * share / 1e6:.2f} Mbit/s of "
          f"{VM_MBPS}), answers {dict(drainer.statuses)}")
    problems = []
    if drainer.bytes > most:
        problems.append(f"the drain got {drainer.bytes} bytes in {drainer.seconds:.1f} s, more than its share "
                        f"({most:.0f}): {dict(drainer.statuses)}")
    if not drainer.statuses.get("200"):
        problems.append(f"the drain got nothing: {dict(drainer.statuses)} (is it draining?)")
    if any(refused_pages.values()):
        problems.append(f"pages refused by the VM beside the drain: {refused_pages}; the VM's answers in the "
                        f"outage, the drain's among them: {answered}")
    return problems


async def test_forged_reports_move_nobody_and_open_the_vm_to_nobody_else(demo: Demo) -> None:
    """50 made-up pages from 10 addresses say the bucket fails, every second for FORGED_SECONDS, while those
    addresses and one that never reported fetch the VM's newest segments as fast as they can. The bucket
    stays first, the pages take no bytes from the VM, each forged address gets at most one stream's
    bitrate, and the one that never reported only redirects."""
    await until_on_the_bucket(demo, "before the forged reports")
    first_line = len(demo.service.lines)
    bitrate = await highest_bandwidth(demo.service)
    wire_from = len(demo.wire.answers)
    sent_before = await metric(demo.service, "hls_broadcaster_vm_segment_bytes_total")
    heard_before = (await metric(demo.service, "hls_broadcaster_pathway_reports_total")).get("some", 0.0)
    started = time.monotonic()
    fetchers = [Fetcher(demo.service.url, address) for address in [*FORGED_ADDRESSES, "198.51.100.99"]]
    fetching = [asyncio.wrap_future(asyncio.run_coroutine_threadsafe(f.run(), demo.hostile.loop)) for f in fetchers]
    forging = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
        forge_reports(demo.service.url, FORGED_ADDRESSES, 5, FORGED_SECONDS), demo.hostile.loop))
    manifests: list[tuple[float, list[str], str | None]] = []
    try:
        async def watched_until_forged() -> bool:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{demo.service.url}/live/steering.json") as response:
                    priority = json.loads(await response.text())["PATHWAY-PRIORITY"]
            manifests.append((round(time.monotonic() - started, 1), priority, (await health(demo.service)).get("pathway")))
            return forging.done()

        await until(watched_until_forged, "the forged reports' end", FORGED_SECONDS + WAIT, every=0.25)
        said = await forging
    finally:
        for f in fetchers:
            f.stop()
        await asyncio.wait_for(asyncio.gather(*fetching, return_exceptions=True), 30)
    sent = await metric(demo.service, "hls_broadcaster_vm_segment_bytes_total")
    heard = (await metric(demo.service, "hls_broadcaster_pathway_reports_total")).get("some", 0.0) - heard_before
    forged, bystander = fetchers[:-1], fetchers[-1]
    print(f"forged beats answered {dict(said)}, heard with failures {heard:.0f}; manifests {len(manifests)}; "
          f"fetchers: " + "; ".join(f"{f.address} {f.bytes} bytes in {f.seconds:.1f} s {dict(f.statuses)}"
                                     for f in fetchers))
    problems = []
    moved = [(at, priority, pathway) for at, priority, pathway in manifests
             if priority[0] != "bucket" or pathway != "bucket"]
    if moved or not manifests:
        problems.append(f"players were steered away from the bucket: {moved or manifests}")
    if not heard:
        problems.append(f"no forged report was heard: {dict(said)}")
    to_pages = [(round(a.at - started, 1), a.address, a.path, a.size) for a in demo.wire.answers[wire_from:]
                if a.status in (200, 206)]
    if to_pages:
        problems.append(f"the pages took segment bytes from the VM: {to_pages}")
    for name, w in demo.pages.items():
        if not w.segments(since=started + FORGED_SECONDS - 2 * TARGET, pathway="bucket"):
            problems.append(f"{name} stopped fetching from the bucket: {timeline(w, started)}")
    most = bitrate / 8 * (FORGED_SECONDS + WAIT + vm_budget.BURST_SECONDS) + MAX_SEGMENT_BYTES
    greedy = [(f.address, f.bytes) for f in forged if f.bytes > bitrate / 8 * (f.seconds + vm_budget.BURST_SECONDS)
              + MAX_SEGMENT_BYTES or f.bytes > most]
    if greedy:
        problems.append(f"forged addresses got more than one stream's bitrate ({bitrate} bit/s): {greedy}")
    if bystander.bytes or not bystander.redirected_to_bucket:
        problems.append(f"an address that never reported got {bystander.bytes} bytes, "
                        f"{bystander.redirected_to_bucket} redirects: {dict(bystander.statuses)}")
    counted = sum(sent.values()) - sum(sent_before.values())
    if counted != sum(f.bytes for f in fetchers):
        problems.append(f"the VM counted {counted:.0f} segment bytes, the forged fetchers got "
                        f"{sum(f.bytes for f in fetchers)}")
    if problems:  # seen once in a full run: whether the service's own probe of the bucket failed then
        await tell_the_outage(demo.service, demo.gates, first_line)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(("service", "viewers", "drain"), [(True, True, True), (False, True, False),
                                                       (True, False, False)],
                         ids=["for_everyone_beside_a_drain", "for_its_viewers_only", "for_its_writes"])
async def test_players_keep_playing_when_the_bucket_fails(demo: Demo, service: bool, viewers: bool,
                                                          drain: bool) -> None:
    await outage(demo, service=service, viewers=viewers, drain=drain)


async def test_steering_reloads_stay_short_where_no_absolute_reload_uri_is_given(demo: Demo) -> None:
    """Through a proxy that does not name the scheme, no absolute RELOAD-URI: Shaka 4.16 then adds its query
    again at each reload; told the relative one (SteeringRoute), it names _HLS_pathway at most twice."""
    if "shaka" not in PLAYERS:
        pytest.skip("STEERING_PLAYERS leaves Shaka out")
    # Each page reloads once a TTL (a second): by this, the module's last test, hundreds.
    await until(lambda: len([p for _c, _d, p, _s in demo.wire.trace if "steering.json?" in p]) >= 20,
                "twenty steering reloads", WAIT, every=0.2)
    reloads = [path for _came, _done, path, _status in demo.wire.trace if "steering.json?" in path]
    named = max(path.count("_HLS_pathway=") for path in reloads)
    assert named <= 2, max(reloads, key=len)
