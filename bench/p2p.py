"""Viewer-to-viewer segments (issue 22, point 4): what P2P Media Loader in the viewer page changes for
the bucket and for the viewers, against the same page with P2P off, in one run.

    python -m bench.p2p [--viewers 4] [--seconds 40] [--warmup 6] [--event-at 15] [--rewind 300] [--modes http,p2p,...]
                        [--hostile flip,withhold,larger,half] [--recordings DIR]

Real parts: SeaweedFS on 127.0.0.1 (the bucket) behind a pass-through proxy that counts segment GETs
(tests/support/counting_proxy.py: what the bucket sees, whatever the browsers cache), the Owncast
emulator (broadcaster.demo.emulator: real ffmpeg, 2 s segments, one variant so that every viewer is
in the same swarm), the service in this process (broadcaster.service.Service, R2_PUBLIC_URL at the
proxy), the package's WebTorrent tracker (broadcaster/tracker/, run with Node on a free loopback port
by broadcaster.demo.tracker.LocalTracker), and N viewers: the service's viewer page (viewer/, hls.js
+ viewer/p2p.js) in N separate browser contexts of Debian's headless Chromium (/usr/bin/chromium,
WEBRTC_ARGS: host candidates as 127.0.0.1 instead of mDNS names; `playwright install` is never
needed). Each mode has a fresh emulator, service, proxy and tracker; the viewers open together, and
once all play, --warmup seconds pass, then --seconds are measured.

Modes:
  http                 P2P_TRACKERS unset: the baseline every ratio is against.
  p2p                  P2P_TRACKERS = the local tracker.
  tracker-unreachable  P2P_TRACKERS = a loopback port nothing listens on, from the start.
  tracker-down         the local tracker, stopped --event-at seconds into the measured run (phases
                       "tracker up" and "tracker stopped"; peers already connected may stay connected:
                       WebRTC needs the tracker only to meet).
  peer-vanishes        the local tracker; at half the run the viewer that has sent peers the most
                       bytes has its browser context closed (phases "all N" and "after close", the
                       latter over the N-1 left).
  hostile              the local tracker; the N viewers are honest, and one more viewer per kind in
                       --hostile attacks them: flip (a byte flipped in every segment chunk it sends,
                       tests.support.browser.ALTER_P2P_UPLOADS, issue 31), and issue 40's withhold (the
                       segment altered, "completed" never sent), larger (the real segment announced
                       larger, the end never sent) and half (half the segment altered, then nothing):
                       tests.support.browser.hostile_peer; and, only when named, issue 50's end (the
                       real segment but its last 1 KiB at once, then a byte a second). Figures over the N honest viewers (phase
                       "honest"), against p2p's room without them; GETs/seg/viewer counts only the
                       honest viewers' own GETs (each browser context names itself in its user agent).
                       The notes say, per honest viewer, how many segments it rejected, whom it banned
                       (hostile or honest), the bytes from peers it dropped, the sizes it refused, and
                       how many segments hls.js was handed that the bucket never served (altered: must
                       be 0).

Figures per phase:
  GETs/seg/viewer  segment GETs the bucket saw / (segments x viewers playing): 1.0 is every viewer
                   fetching every segment itself. Segments are assigned to a phase by their first GET;
                   the first and last of each phase are left out (viewers straddle the boundary).
  startup          page open (navigation start) to the video's first `playing` event (the moment the
                   viewer sets viewerStats.state = 'playing'), median and max over the viewers; per
                   mode, not per phase.
  stalls           `waiting` events of the video after its first `playing` (each lasting until the next
                   `playing`, or the phase's end), summed over the viewers: count and seconds. Seeks
                   (hls.js moving to the live edge) are counted apart; a stall caused by a seek is
                   still a stall.
  behind live      viewerStats.latency (hls.js's latency: seconds behind the live edge), sampled each
                   second on every viewer, median.
  from peers       bytes from peers kept / (kept + from HTTP) of window.viewerStats.p2p over the phase
                   (kept: not rejected, nor thrown away with an attempt that failed or was aborted).
  peers            window.viewerStats.p2p.peers, median of the samples, and the most seen.
  verification     per mode with P2P: the time viewer/p2p.js spent hashing peers' segments
                   (crypto.subtle.digest, viewerStats.p2p.verifyMs over the segments hashed: peers' and, from
                   issue 40 on, the bucket's, verifiedSegments + verifiedBucketSegments) against what a
                   segment costs the same page otherwise: its HTTP fetch (Resource Timing, median) and
                   its appends to the SourceBuffer (appendBuffer to updateend, summed per segment).

Reading it: with P2P on, GETs/seg/viewer below 1.0 is the bucket's saving (the ideal for N viewers is
1/N); startup, stalls and "behind live" should stay as with http (ratio ~1.0, no added stall). With the
tracker unreachable the page must play as with http (GETs ~1.0). A mode's figures come from one run of
one machine with two cores running N browsers, ffmpeg and the service: stalls here may be the machine,
which is why the baseline runs in the same bench run on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.rig import add_recordings_option, recordings_of, workspace
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.demo.tracker import LocalTracker, TrackerUnavailable, install
from broadcaster.service import Service
from broadcaster.settings import DEFAULT_REWIND_SECONDS
from tests.support.browser import (ALTER_P2P_UPLOADS, CHROMIUM, HANDED, HOSTILE_MODES, PLAYERS, POLL_MS,
                                   WEBRTC_ARGS, WITHHOLDING, hostile_peer, launch_chromium)
from tests.support.counting_proxy import CountingProxy, closed_port, proxied_stream, sequence

MODES = ("http", "p2p", "tracker-unreachable", "tracker-down", "peer-vanishes", "hostile")
HOSTILE = ("flip", *HOSTILE_MODES, WITHHOLDING)  # the kinds of hostile viewer (--hostile)
HOSTILE_DEFAULT = ("flip", *HOSTILE_MODES)  # issue 40's; WITHHOLDING (issue 50, V5) when named
SEGMENT_SECONDS = 2  # what tests/test_p2p_browser.py found workable (viewer/p2p.js: a segment's turn for peers)
SAMPLE_EVERY = 1.0
MAX_VIEWERS = 6  # two cores: more Chromium renderers than this and the machine, not P2P, is measured
MAX_PAGES = 8  # honest and hostile viewers together (hostile mode)

# Before any of the page's scripts: the video's playing/waiting/seeking events, on the epoch clock.
RECORDER = """
(() => {
  const rec = { firstPlaying: null, playing: [], waiting: [], seeking: [] };
  window.__bench = rec;
  performance.setResourceTimingBufferSize(5000); // every segment fetch of the run (the default keeps 250)
  const at = () => performance.timeOrigin + performance.now();
  const on = (type, fn) => document.addEventListener(type, (e) => {
    if (e.target && e.target.tagName === 'VIDEO') fn();
  }, true);
  on('playing', () => {
    if (rec.firstPlaying === null) rec.firstPlaying = performance.now();
    rec.playing.push(at());
  });
  on('waiting', () => { if (rec.firstPlaying !== null) rec.waiting.push(at()); });
  on('seeking', () => rec.seeking.push(at()));
  // Each appendBuffer to its updateend, ms (hls.js appends a segment's video and audio apart).
  rec.appends = [];
  const append = SourceBuffer.prototype.appendBuffer;
  SourceBuffer.prototype.appendBuffer = function (data) {
    const started = performance.now();
    this.addEventListener('updateend', () => rec.appends.push(performance.now() - started), { once: true });
    return append.call(this, data);
  };
})();
"""

SAMPLE = """() => {
  const s = window.viewerStats || {};
  const p = s.p2p || null;
  return {
    t: performance.timeOrigin + performance.now(), state: s.state || null, latency: s.latency ?? null,
    errors: (s.errors || []).length,
    p2p: p && { fromPeers: p.bytesFromPeers - (p.discardedBytes ?? p.rejectedBytes ?? 0), fromHttp: p.bytesFromHttp,
                toPeers: p.bytesToPeers, peers: p.peers, peersSeen: p.peersSeen,
                rejected: p.rejectedSegments, banned: p.bannedPeers, refused: p.refusedConnections,
                verified: p.verifiedSegments, verifiedBucket: p.verifiedBucketSegments || 0,
                verifyMs: p.verifyMs, verifiedBytes: p.verifiedBytes,
                bannedIds: p.bannedPeerIds || [], discarded: p.discardedBytes || 0,
                droppedIds: p.droppedPeerIds || [], unfinished: p.unfinishedAttempts || 0,
                oversized: p.oversizedAnnouncements || 0, peersOff: p.peersOff || null },
  };
}"""

# HTTP segment fetches of the page, ms (Resource Timing; the bucket allows Timing-Allow-Origin or not:
# duration is there either way).
FETCHES = """() => performance.getEntriesByType('resource')
  .filter((e) => /\\.(ts|m4s)(\\?|$)/.test(e.name)).map((e) => e.duration)"""

EVENTS = "() => JSON.parse(JSON.stringify(window.__bench))"


# -- one mode's rig ------------------------------------------------------------------------------


@dataclass
class Stream:
    service: Service
    proxy: CountingProxy


@contextlib.asynccontextmanager
async def live_stream(folder: Path, s3: SeaweedS3, trackers: str, rewind: int,
                      recordings: Recordings | None) -> AsyncIterator[Stream]:
    """Emulator -> service -> SeaweedFS, segments served through a CountingProxy; P2P_TRACKERS=trackers."""
    async with proxied_stream(folder, s3, trackers, segment_seconds=SEGMENT_SECONDS, recordings=recordings,
                              LOG_LEVEL="warning", REWIND_SECONDS=str(rewind)) as (service, proxy):
        yield Stream(service, proxy)


# -- viewers -------------------------------------------------------------------------------------


@dataclass
class Viewer:
    context: Any
    page: Any
    agent: str = ""  # its user agent (the proxy counts GETs by it)
    hostile: str | None = None  # its kind (HOSTILE), or None: honest
    samples: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, Any] = field(default_factory=dict)  # window.__bench, read last (or before closing)
    problems: list[str] = field(default_factory=list)
    closed_at: float | None = None


async def open_viewers(browser: Any, url: str, count: int, hostile: tuple[str, ...] = ()) -> list[Viewer]:
    """`count` honest viewers, then one hostile viewer per kind in `hostile`."""
    probe = await browser.new_context()
    agent = await (await probe.new_page()).evaluate("() => navigator.userAgent")
    await probe.close()
    viewers = []
    for i, kind in enumerate([None] * count + list(hostile)):
        name = f"{agent} hb-viewer/{i}"
        context = await browser.new_context(user_agent=name)  # its own cache, storage and peer id
        await context.add_init_script(RECORDER)
        await context.add_init_script(PLAYERS)
        if kind is None:
            await context.add_init_script(HANDED)
        else:
            await context.add_init_script(ALTER_P2P_UPLOADS if kind == "flip" else hostile_peer(kind))
        page = await context.new_page()
        viewer = Viewer(context, page, name, kind)
        page.on("pageerror", lambda e, v=viewer: v.problems.append(str(e)))
        viewers.append(viewer)

    async def start(v: Viewer) -> None:
        await v.page.goto(url)
        await v.page.wait_for_function("() => window.viewerStats && window.viewerStats.state === 'playing'",
                                       timeout=60_000, polling=POLL_MS)

    await asyncio.gather(*(start(v) for v in viewers))
    return viewers


async def sample(viewers: list[Viewer]) -> None:
    async def one(v: Viewer) -> None:
        if v.closed_at is None:
            with contextlib.suppress(Exception):  # closed under us: its samples end there
                v.samples.append(await v.page.evaluate(SAMPLE))

    await asyncio.gather(*(one(v) for v in viewers))


async def sample_until(viewers: list[Viewer], until: float) -> None:
    while time.time() < until:
        await sample(viewers)
        await asyncio.sleep(max(0.0, min(SAMPLE_EVERY, until - time.time())))


async def close_viewer(v: Viewer) -> None:
    with contextlib.suppress(Exception):
        v.events = await v.page.evaluate(EVENTS)
    v.closed_at = time.time()
    await v.context.close()


# -- figures -------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    start: float  # epoch seconds
    end: float
    viewers: list[int]  # indexes of the viewers playing throughout


@dataclass
class Figures:
    gets_per_seg: float
    segments: int
    stalls: int
    stall_s: float
    stalls_per_min: float  # per viewer-minute of the phase
    seeks: int
    behind: float
    peer_share: float | None
    peers_median: float | None
    peers_max: int | None
    errors: int
    stall_list: list[tuple[int, float, float]]  # (viewer, seconds into the phase, seconds stalled)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def phase_figures(phase: Phase, viewers: list[Viewer], proxy: CountingProxy,
                  own_gets: bool = False) -> Figures:
    """`own_gets`: count only the GETs of the phase's viewers (by user agent), not every GET."""
    start_ms, end_ms = phase.start * 1000, phase.end * 1000
    first: dict[str, float] = {}
    for t, path in proxy.log:
        first.setdefault(path, t)
    names = sorted((p for p, t in first.items() if phase.start <= t < phase.end), key=sequence)[1:-1]
    if own_gets:
        agents = {viewers[i].agent for i in phase.viewers}
        gets = sum(n for (agent, path), n in proxy.gets_by_agent.items() if agent in agents and path in names)
    else:
        gets = sum(proxy.gets[p] for p in names)
    per = gets / (len(names) * len(phase.viewers)) if names and phase.viewers else float("nan")

    stalls, stall_s, seeks, behind, peers, errors = 0, 0.0, 0, [], [], 0
    peers_max: int | None = None
    stall_list: list[tuple[int, float, float]] = []
    from_peers = from_http = 0
    for i in phase.viewers:
        v = viewers[i]
        ev = v.events or {}
        playing = sorted(ev.get("playing", []))
        for w in ev.get("waiting", []):
            if start_ms <= w < end_ms:
                stalls += 1
                after = [p for p in playing if p >= w]
                lasted = (min(after[0], end_ms) - w) / 1000 if after else (end_ms - w) / 1000
                stall_s += lasted
                stall_list.append((i, (w - start_ms) / 1000, lasted))
        seeks += sum(1 for s in ev.get("seeking", []) if start_ms <= s < end_ms)
        inside = [s for s in v.samples if start_ms <= s["t"] < end_ms]
        behind += [s["latency"] for s in inside if s["latency"] is not None]
        errors = max(errors, max((s["errors"] for s in inside), default=0))
        with_p2p = [s for s in inside if s["p2p"]]
        if with_p2p:
            before = [s for s in v.samples if s["t"] < start_ms and s["p2p"]]
            base = before[-1]["p2p"] if before else {"fromPeers": 0, "fromHttp": 0}
            last = with_p2p[-1]["p2p"]
            from_peers += last["fromPeers"] - base["fromPeers"]
            from_http += last["fromHttp"] - base["fromHttp"]
            peers += [s["p2p"]["peers"] for s in with_p2p]
            peers_max = max(peers_max or 0, max(s["p2p"]["peers"] for s in with_p2p))
    total = from_peers + from_http
    return Figures(
        gets_per_seg=per, segments=len(names), stalls=stalls, stall_s=stall_s, seeks=seeks,
        stalls_per_min=stalls / (len(phase.viewers) * (phase.end - phase.start) / 60) if phase.viewers else math.nan,
        behind=median(behind), peer_share=(from_peers / total if total else 0.0) if peers_max is not None else None,
        peers_median=median(peers) if peers else None, peers_max=peers_max, errors=errors,
        stall_list=stall_list,
    )


@dataclass
class ModeResult:
    mode: str
    startup: list[float]  # seconds, per viewer
    phases: list[tuple[Phase, Figures]]
    notes: list[str] = field(default_factory=list)


# -- one mode ------------------------------------------------------------------------------------


async def run_mode(mode: str, args: argparse.Namespace, pw: Any, s3: SeaweedS3, work: Path,
                   tracker_dir: Path | None) -> ModeResult:
    folder = work / mode
    folder.mkdir()
    async with contextlib.AsyncExitStack() as stack:
        tracker: LocalTracker | None = None
        if mode == "http":
            trackers = ""
        elif mode == "tracker-unreachable":
            trackers = f"ws://127.0.0.1:{closed_port()}"
        else:
            assert tracker_dir is not None
            tracker = await stack.enter_async_context(LocalTracker(tracker_dir))
            trackers = tracker.url
        stream = await stack.enter_async_context(live_stream(folder, s3, trackers, args.rewind,
                                                                      recordings_of(args)))
        browser = await launch_chromium(pw, WEBRTC_ARGS)
        stack.push_async_callback(browser.close)
        hostile = tuple(args.hostile) if mode == "hostile" else ()
        also = f" and hostile ones: {', '.join(hostile)}" if hostile else ""
        print(f"[{mode}] opening {args.viewers} viewers{also} ...", flush=True)
        viewers = await open_viewers(browser, f"{stream.service.url}/", args.viewers, hostile)
        everyone = list(range(len(viewers)))
        notes: list[str] = []
        await sample_until(viewers, time.time() + args.warmup)
        t0 = time.time()
        end = t0 + args.seconds
        print(f"[{mode}] all playing; measuring {args.seconds:.0f} s ...", flush=True)
        phases: list[Phase]
        if mode == "tracker-down":
            assert tracker is not None
            at = t0 + args.event_at
            await sample_until(viewers, at)
            stopped = time.time()
            await tracker.__aexit__(None, None, None)  # LocalTracker's stop; a second exit does nothing
            took = time.time() - stopped
            last = [s["p2p"]["peers"] for v in viewers for s in v.samples[-1:] if s["p2p"]]
            await sample_until(viewers, end)
            after = [s["p2p"]["peers"] for v in viewers for s in v.samples[-1:] if s["p2p"]]
            notes.append(f"tracker stopped at {stopped - t0:.1f} s (stopping took {took:.1f} s); peers connected "
                         f"per viewer then: {last}, at the end: {after}")
            phases = [Phase("tracker up", t0, stopped, everyone), Phase("tracker stopped", stopped, end, everyone)]
        elif mode == "peer-vanishes":
            at = t0 + args.seconds / 2
            await sample_until(viewers, at)
            sent = [(v.samples[-1]["p2p"] or {}).get("toPeers", 0) if v.samples else 0 for v in viewers]
            gone = max(everyone, key=lambda i: sent[i])
            await close_viewer(viewers[gone])
            closed = viewers[gone].closed_at or time.time()
            notes.append(f"viewer {gone} closed at {closed - t0:.1f} s (it had sent peers {sent[gone] / 1e6:.1f} MB; "
                         f"the others had sent {[round(s / 1e6, 1) for i, s in enumerate(sent) if i != gone]} MB)")
            await sample_until(viewers, end)
            left = [i for i in everyone if i != gone]
            phases = [Phase(f"all {len(viewers)}", t0, closed, everyone), Phase("after close", closed, end, left)]
        elif mode == "hostile":
            await sample_until(viewers, end)
            phases = [Phase("honest", t0, end, [i for i in everyone if viewers[i].hostile is None])]
        else:
            await sample_until(viewers, end)
            phases = [Phase("run", t0, end, everyone)]
        fetches: list[float] = []
        for v in viewers:
            if v.closed_at is None:
                v.events = await v.page.evaluate(EVENTS)
                fetches += await v.page.evaluate(FETCHES)
        if mode != "http":
            notes += verification_notes(viewers, fetches)
        if mode == "hostile":
            notes += await hostile_notes(viewers, stream.proxy)
        startup = [v.events.get("firstPlaying", float("nan")) / 1000 for v in viewers if v.hostile is None]
        for i, v in enumerate(viewers):
            if v.problems:
                notes.append(f"viewer {i} page errors: {v.problems[:3]}")
        own = mode == "hostile"
        figures = [(p, phase_figures(p, viewers, stream.proxy, own)) for p in phases]
        return ModeResult(mode, startup, figures, notes)
    raise AssertionError("unreachable")


async def hostile_notes(viewers: list[Viewer], proxy: CountingProxy) -> list[str]:
    """What the hostile viewers did and what the honest ones got (issue 40)."""
    ids: dict[int, set[str]] = {}
    for i, v in enumerate(viewers):
        with contextlib.suppress(Exception):
            ids[i] = set(await v.page.evaluate("() => window.ownPeerIds()"))
    hostile_ids = set().union(*(ids.get(i, set()) for i, v in enumerate(viewers) if v.hostile))
    notes = []
    for i, v in enumerate(viewers):
        if v.hostile:
            uploads = await v.page.evaluate("() => window.hostileUploads ?? null")
            notes.append(f"hostile {i} ({v.hostile}): answered {uploads if uploads is not None else 'every'} "
                         "segment request(s) its way")
            continue
        handed = await v.page.evaluate("() => window.handed")
        altered = sum(1 for h in handed if h is not None and h not in proxy.served)
        p = v.samples[-1]["p2p"] if v.samples and v.samples[-1]["p2p"] else {}
        banned = set(p.get("bannedIds", []))
        dropped = set(p.get("droppedIds", []))
        notes.append(f"honest {i}: {len(handed)} segments handed to hls.js, {altered} not the bucket's "
                     f"(altered); banned {len(banned & hostile_ids)} hostile and {len(banned - hostile_ids)} "
                     f"other peers; dropped {len(dropped & hostile_ids)} hostile and {len(dropped - hostile_ids)} "
                     f"other peers for unfinished uploads ({p.get('unfinished', 0)} attempts left unfinished); "
                     f"threw away {p.get('discarded', 0) / 1e6:.2f} MB from peers; refused {p.get('oversized', 0)} sizes"
                     + (f"; stopped asking peers: {p['peersOff']}" if p.get("peersOff") else ""))
    return notes


def verification_notes(viewers: list[Viewer], fetches: list[float]) -> list[str]:
    """What checking peers' segments cost and found (viewerStats.p2p at each viewer's last sample)."""
    last = [(i, v.samples[-1]["p2p"]) for i, v in enumerate(viewers) if v.samples and v.samples[-1]["p2p"]]
    if not last:
        return []
    verified = sum(p["verified"] for _, p in last)
    hashed = verified + sum(p["verifiedBucket"] for _, p in last)
    ms = sum(p["verifyMs"] for _, p in last)
    mb = sum(p["verifiedBytes"] for _, p in last) / 1e6
    appends = [a for v in viewers for a in (v.events or {}).get("appends", [])]
    notes = [f"verification: {hashed} segments hashed ({verified} from peers, the rest from the bucket), "
             f"{ms / hashed:.2f} ms each ({ms / mb:.2f} ms per MB)" if hashed
             else "verification: nothing hashed",
             f"a segment otherwise: HTTP fetch median {median(fetches):.1f} ms ({len(fetches)} fetches), "
             f"appendBuffer to updateend median {median(appends):.1f} ms per call ({len(appends)} calls)"]
    for i, p in last:
        who = f"hostile ({viewers[i].hostile})" if viewers[i].hostile else "viewer"
        notes.append(f"{who} {i}: rejected {p['rejected']} segments, banned {p['banned']} peers, "
                     f"refused {p['refused']} reconnections, verified {p['verified']}")
    return notes


# -- the report ----------------------------------------------------------------------------------


def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base != base or value != value or base == 0:
        return "–"
    return f"{value / base:.2f}x"


def num(value: float | None, fmt: str) -> str:
    return "–" if value is None or value != value else format(value, fmt)


def report(results: list[ModeResult], args: argparse.Namespace) -> None:
    base = next((r for r in results if r.mode == "http"), None)
    base_f = base.phases[0][1] if base else None
    base_startup = median(base.startup) if base else None
    for r in results:
        print(f"\n### {r.mode}\n")
        print(f"startup (page open to first frame playing): median {median(r.startup):.2f} s, "
              f"max {max(r.startup):.2f} s ({ratio(median(r.startup), base_startup)} http)\n")
        print("| phase | s | viewers | segments | GETs/seg/viewer | stalls | stall s | seeks "
              "| behind live (median) | from peers | peers (median/max) | errors |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for phase, f in r.phases:
            peers = "–" if f.peers_max is None else f"{num(f.peers_median, '.1f')}/{f.peers_max}"
            share = "–" if f.peer_share is None else f"{f.peer_share:.0%}"
            print(f"| {phase.name} | {phase.end - phase.start:.0f} | {len(phase.viewers)} | {f.segments} "
                  f"| {num(f.gets_per_seg, '.2f')} | {f.stalls} | {f.stall_s:.1f} | {f.seeks} "
                  f"| {num(f.behind, '.1f')} s | {share} | {peers} | {f.errors} |")
        for phase, f in r.phases:
            if f.stall_list:
                each = ", ".join(f"viewer {i} at +{at:.1f} s for {lasted:.2f} s" for i, at, lasted in f.stall_list)
                print(f"\n- stalls in {phase.name}: {each}")
        for note in r.notes:
            print(f"\n- {note}")
    print(f"\n### summary: each figure and its ratio to http ({args.viewers} viewers, {args.seconds:.0f} s, "
          f"{SEGMENT_SECONDS} s segments)\n")
    print("| mode / phase | GETs/seg/viewer | startup median | stalls (s) | stalls per viewer-min | behind live "
          "| from peers | peers (median/max) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        st = median(r.startup)
        for phase, f in r.phases:
            stalls = f"{f.stalls} ({f.stall_s:.1f} s)"
            if base_f is not None and r is not base:
                stalls += f", {f.stalls - base_f.stalls:+d} vs http"
            share = "–" if f.peer_share is None else f"{f.peer_share:.0%}"
            peers = "–" if f.peers_max is None else f"{num(f.peers_median, '.1f')}/{f.peers_max}"
            print(f"| {r.mode} / {phase.name} "
                  f"| {num(f.gets_per_seg, '.2f')} ({ratio(f.gets_per_seg, base_f.gets_per_seg if base_f else None)}) "
                  f"| {st:.2f} s ({ratio(st, base_startup)}) | {stalls} "
                  f"| {f.stalls_per_min:.2f} ({ratio(f.stalls_per_min, base_f.stalls_per_min if base_f else None)}) "
                  f"| {num(f.behind, '.1f')} s ({ratio(f.behind, base_f.behind if base_f else None)}) | {share} | {peers} |")
    print("\n(ratios: this figure / http's; '–' where http's is 0 or missing. Stalls: also the difference in "
          "count, though phases differ in length and viewers: compare stalls per viewer-minute.)")
    if args.viewers:
        print(f"(ideal GETs/seg/viewer with every segment fetched once from the bucket: {1 / args.viewers:.2f})")


async def main(args: argparse.Namespace) -> int:
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is not installed", file=sys.stderr)
        return 2
    tracker_dir: Path | None = None
    if any(m not in ("http", "tracker-unreachable") for m in args.modes):
        try:
            tracker_dir = await asyncio.to_thread(install)
        except TrackerUnavailable as err:
            print(f"no tracker here ({err}): only http and tracker-unreachable", file=sys.stderr)
            args.modes = [m for m in args.modes if m in ("http", "tracker-unreachable")]
    results: list[ModeResult] = []
    async with workspace("p2p") as ws, async_playwright() as pw:
        for mode in args.modes:
            results.append(await run_mode(mode, args, pw, ws.s3, ws.work, tracker_dir))
    report(results, args)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.p2p", description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=4, help=f"browser contexts, 2..{MAX_VIEWERS} (default 4)")
    parser.add_argument("--seconds", type=float, default=40.0, help="measured playback per mode (default 40)")
    parser.add_argument("--warmup", type=float, default=6.0, help="after all play, before measuring (default 6)")
    parser.add_argument("--event-at", type=float, default=15.0,
                        help="tracker-down: seconds into the run the tracker stops (default 15)")
    parser.add_argument("--rewind", type=int, default=DEFAULT_REWIND_SECONDS,
                        help=f"REWIND_SECONDS of the service (default {DEFAULT_REWIND_SECONDS}, the service's own: the "
                        "playlists list that much behind the live edge)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}; "
                        "http first: the others' ratios are against it")
    parser.add_argument("--hostile", default=",".join(HOSTILE_DEFAULT),
                        help="hostile mode: one more viewer per kind, comma-separated, of "
                        f"{', '.join(HOSTILE)} (default: {', '.join(HOSTILE_DEFAULT)})")
    add_recordings_option(parser)
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes {unknown}; known: {', '.join(MODES)}")
    if not 2 <= args.viewers <= MAX_VIEWERS:
        parser.error(f"--viewers must be 2..{MAX_VIEWERS} (two cores)")
    args.hostile = [k.strip() for k in args.hostile.split(",") if k.strip()]
    if not args.hostile or any(k not in HOSTILE for k in args.hostile):
        parser.error(f"--hostile: comma-separated, of {', '.join(HOSTILE)}")
    if "hostile" in args.modes and args.viewers + len(args.hostile) > MAX_PAGES:
        parser.error(f"hostile mode: --viewers plus the --hostile kinds must be at most {MAX_PAGES} "
                     "(two cores)")
    if not 0 < args.event_at < args.seconds:
        parser.error("--event-at must be inside --seconds")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
