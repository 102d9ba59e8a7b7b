"""Glass to request: from Owncast listing a segment to a viewer holding a playlist that lists it,
for a blocking-reload client and for the polling client it replaces, measured together in one run.

    python -m bench.glass_to_request [--segments 120] [--warmup 5] [--pollers 10] [--kbps 1200]

Real parts: SeaweedFS on 127.0.0.1 (the bucket), the service as an operator runs it
(`python -m broadcaster run`, its own process, BLOCKING_RELOAD=true) and a synthetic Owncast in a
process of its own. The synthetic Owncast writes real ffmpeg output: a few 1 s MPEG-TS segments are
encoded once at start (imageio-ffmpeg's ffmpeg, libx264 CBR at --kbps), then copied into
HLS_DIR/0/ at a steady 1 s cadence the way Owncast writes: the segment file in place under its final
name, then the variant playlist rewritten in place (sliding window of --list-size, target duration
1, PROGRAM-DATE-TIME). The "glass" clock is read when that playlist write is closed.

Clients, in this process, at the same time, against the same segments:
  blocking  asks `/live/0/playlist.m3u8?_HLS_msn=<last+1>` again as soon as it has an answer and
            records when each new segment first appears in a response;
  polling   --pollers clients that GET the plain playlist every half target duration (what hls.js
            does without blocking reload), their start phases spread evenly over the 0.5 s (50 ms
            apart with 10), since one poller is phase-locked to the 1 s cadence; each records
            when it first sees each segment.
Clocks: time.monotonic() everywhere (CLOCK_MONOTONIC, the same clock in every process).

Reported: p50/p95/p99/max of glass-to-client for both, the ratio polling/blocking at each percentile,
the goal (blocking p95 < 50 ms), and where the time goes, from the service's own /metrics over the
measured segments (parsed with prometheus_client.parser): upload (PutObject) time, and listing delay
(from the watcher reading Owncast's playlist to the new playlist being served, which includes the
upload and the state save); what remains of glass-to-client is file-watch detection plus the wake-up
and the HTTP answer. Per segment, from the uploader's debug log lines (the service runs at
LOG_LEVEL=debug for this): its PutObject time against everything else, and the five slowest. For
context on a noisy machine: the service's own state save (write + 2 fsyncs, on the listing path)
timed once a second on the same disk, the load average, and any service counter of rejected input,
lost segments or failed uploads that moved.

bench/viewers.py and bench/hlsjs_reload.py import the synthetic Owncast, the service process and the
helpers from this file.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

import aiohttp

from bench.rig import (
    SEGMENT_SECONDS,
    Workspace,
    counters,
    ms,
    parse_playlist,
    scrape_histograms,
    scrape_metrics,
    start_service,
    wait_listed,
    workspace,
)
from tests.support.owncast_writer import OwncastReplay
from tests.support.stats import pct

POLL_INTERVAL = SEGMENT_SECONDS / 2  # hls.js without blocking reload: half a target duration


# -- the service, as an operator runs it ---------------------------------------------------------

_UPLOADED = re.compile(r"uploaded \S*/([^/\s]+) \(\d+ bytes\) in (\d+) ms")


# -- the two clients -----------------------------------------------------------------------------


async def blocking_client(session: aiohttp.ClientSession, url: str, seen: dict[str, float],
                          problems: list[tuple[float, str]]) -> None:
    """Always asks for the segment after the last one it has; notes when each first shows up."""
    first, names = await wait_listed(session, url)
    for name in names:
        seen.setdefault(name, time.monotonic())
    last = first + len(names) - 1
    while True:
        async with session.get(url, params={"_HLS_msn": str(last + 1)}) as r:
            body = await r.read()
            now = time.monotonic()
        if r.status != 200:
            problems.append((now, f"blocking request for {last + 1}: HTTP {r.status}"))
            await asyncio.sleep(0.05)
            continue
        first, names = parse_playlist(body)
        for name in names:
            seen.setdefault(name, now)
        last = max(last, first + len(names) - 1)


async def polling_client(session: aiohttp.ClientSession, url: str, seen: dict[str, float], start: float,
                         problems: list[tuple[float, str]]) -> None:
    """GETs the plain playlist at start + k * POLL_INTERVAL (a fixed rate, a fixed phase)."""
    await wait_listed(session, url)
    k = max(0, math.ceil((time.monotonic() - start) / POLL_INTERVAL))
    while True:
        await asyncio.sleep(max(0.0, start + k * POLL_INTERVAL - time.monotonic()))
        k += 1
        async with session.get(url) as r:
            body = await r.read()
            now = time.monotonic()
        if r.status != 200:
            problems.append((now, f"poll: HTTP {r.status}"))
            continue
        for name in parse_playlist(body)[1]:
            seen.setdefault(name, now)


# -- the bench -----------------------------------------------------------------------------------


def probe_state_saves(folder: Path, stop: threading.Event, took: list[float]) -> None:
    """Thread: the service's own state save (write, fsync, rename, fsync the folder) of a state-sized
    file once a second on the same file system, half a second off the segment cadence: what the
    disk costs on the listing path, on this machine, now."""
    from broadcaster.state.disk import StateFile

    folder.mkdir(parents=True, exist_ok=True)
    state = StateFile(folder)
    data = {"probe": "x" * 6000}
    while not stop.wait(1.0):
        began = time.perf_counter()
        state.save(data)
        took.append(time.perf_counter() - began)


def _row(label: str, xs: list[float]) -> str:
    return f"{label:>28} " + " ".join(ms(pct(xs, p)) for p in (50, 95, 99, 100)) + f"  (n={len(xs)})"


async def main(args: argparse.Namespace) -> int:
    async with workspace("glass") as ws:
        return await _bench(args, ws)


async def _bench(args: argparse.Namespace, ws: Workspace) -> int:
    work = ws.work
    segments = await ws.encoded(args.encode, args.kbps)
    sizes = [len(s.data) for s in segments]
    hls_dir = ws.folder("hls")
    total = args.warmup + args.segments
    blocking_seen: dict[str, float] = {}
    polling_seen: list[dict[str, float]] = [{} for _ in range(args.pollers)]
    problems: list[tuple[float, str]] = []
    saves: list[float] = []
    probe_stop = threading.Event()
    load_before = os.getloadavg()
    # Debug level: the uploader logs each PutObject's time per segment (one line a second).
    service = await start_service(ws.env(hls_dir, BLOCKING_RELOAD="true", LOG_LEVEL="debug"), work / "cwd")
    writer = OwncastReplay(hls_dir, segments, list_size=args.list_size, limit=total)
    tasks: list[asyncio.Task[None]] = []
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
                for _ in range(2 + args.pollers)]  # the last one scrapes /metrics
    try:
        url = f"{service.url}/live/0/playlist.m3u8"
        tasks.append(asyncio.create_task(blocking_client(sessions[0], url, blocking_seen, problems)))
        base = time.monotonic()
        for i in range(args.pollers):  # phases evenly spread over one poll interval
            tasks.append(asyncio.create_task(polling_client(
                sessions[1 + i], url, polling_seen[i], base + i * POLL_INTERVAL / args.pollers, problems)))
        print(f"service pid {service.pid} at {service.url}; writing {total} segments "
              f"({args.warmup} warm-up), about {total * SEGMENT_SECONDS} s ...", flush=True)
        # Histograms over the measured segments only: scraped when warm-up ends and at the end.
        warm_name_suffix = f"-{args.warmup - 1}.ts"
        async with asyncio.timeout(args.warmup * SEGMENT_SECONDS + 60):
            while not any(n.endswith(warm_name_suffix) for n in blocking_seen):
                await asyncio.sleep(0.05)
        before = await scrape_histograms(sessions[-1], service.url)
        await asyncio.sleep(0.5)
        probe = threading.Thread(target=probe_state_saves, args=(work / "probe", probe_stop, saves),
                                 daemon=True)
        probe.start()
        await writer.wait()
        await asyncio.sleep(2.0)  # the last segment's upload and listing
        after = await scrape_histograms(sessions[-1], service.url)
        troubles = counters(await scrape_metrics(sessions[-1], service.url),
                            "hls_broadcaster_input_rejected", "hls_broadcaster_segments_lost",
                            "hls_broadcaster_upload_failures")
    finally:
        probe_stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in sessions:
            await s.close()
        await writer.stop()
        await service.stop()

    measured = [n for n in writer.glass if int(n.rsplit("-", 1)[1].split(".")[0]) >= args.warmup]
    blocking = [blocking_seen[n] - writer.glass[n] for n in measured if n in blocking_seen]
    polling = [seen[n] - writer.glass[n] for seen in polling_seen for n in measured if n in seen]
    missed_blocking = sum(n not in blocking_seen for n in measured)
    missed_polling = sum(n not in seen for seen in polling_seen for n in measured)

    print()
    print(f"glass to request: {len(measured)} segments of {SEGMENT_SECONDS} s "
          f"({min(sizes) // 1000}-{max(sizes) // 1000} KB, real ffmpeg MPEG-TS) after {args.warmup} warm-up; "
          f"service in its own process, SeaweedFS on 127.0.0.1; writer cadence slipped at most "
          f"{writer.late_max * 1000:.1f} ms")
    print(f"{'':>28} {'p50':>10} {'p95':>10} {'p99':>10} {'max':>10}")
    if not blocking or not polling:
        print("no measurements: a client saw nothing")
        return 1
    print(_row("blocking (_HLS_msn=last+1)", blocking))
    print(_row(f"polling every {POLL_INTERVAL * 1000:.0f} ms (x{args.pollers})", polling))
    print(f"{'ratio polling/blocking':>28} " + " ".join(
        f"{pct(polling, p) / max(pct(blocking, p), 1e-9):9.1f}x" for p in (50, 95, 99, 100)))
    print(f"{'mean':>28} blocking {statistics.fmean(blocking) * 1000:.1f} ms, "
          f"polling {statistics.fmean(polling) * 1000:.1f} ms")
    if missed_blocking or missed_polling:
        print(f"segments never seen: blocking {missed_blocking}, polling {missed_polling} (client x segment)")

    print("where the time goes (service's own histograms over the measured segments, bucket-interpolated):")
    for name, label in (("hls_broadcaster_upload_duration_seconds", "upload (PutObject)"),
                        ("hls_broadcaster_listing_delay_seconds", "seen -> listed (listing delay)")):
        if name in after and name in before:
            print(f"  {label:>30}: {after[name].minus(before[name]).describe()}")
    listing = after.get("hls_broadcaster_listing_delay_seconds")
    if listing is not None and "hls_broadcaster_listing_delay_seconds" in before:
        delta = listing.minus(before["hls_broadcaster_listing_delay_seconds"])
        if delta.count > 0:
            rest = statistics.fmean(blocking) - delta.total / delta.count
            print(f"  {'remainder of blocking mean':>30}: {rest * 1000:6.1f}ms  "
                  "(file-watch detection + wake-up + HTTP answer)")
    # Per segment, from the uploader's debug lines: the PutObject against everything else.
    uploads = {m.group(1): int(m.group(2)) / 1000 for m in map(_UPLOADED.search, service.lines) if m}
    pairs = [(blocking_seen[n] - writer.glass[n], uploads[n])
             for n in measured if n in blocking_seen and n in uploads]
    if pairs:
        others = [whole - up for whole, up in pairs]
        print(f"  per segment (blocking), PutObject: p50 {pct([u for _, u in pairs], 50) * 1000:.0f}ms "
              f"p95 {pct([u for _, u in pairs], 95) * 1000:.0f}ms; everything else (watch, read, state save, "
              f"wake-up, HTTP): p50 {pct(others, 50) * 1000:.0f}ms p95 {pct(others, 95) * 1000:.0f}ms")
        slowest = sorted(pairs, reverse=True)[:5]
        print("  slowest 5 (glass-to-client / of which PutObject): "
              + ", ".join(f"{t * 1000:.0f}/{u * 1000:.0f}ms" for t, u in slowest))
    if saves:
        print(f"  {'state save probe (same disk)':>30}: p50 {pct(saves, 50) * 1000:.1f}ms p95 "
              f"{pct(saves, 95) * 1000:.1f}ms max {pct(saves, 100) * 1000:.1f}ms "
              f"({len(saves)} saves, one a second)")
    print(f"  {'load average (1 min)':>30}: {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({os.cpu_count()} CPUs; other users' work included)")
    if troubles:
        print(f"  service counters that should stay at zero (whole run): {troubles}")
    # After the last segment the stream stands still: a held request then gets 503 after 3 s, as it should.
    during = [what for when, what in problems if when < max(writer.glass.values()) + 1.0]
    if during:
        print(f"client problems while the stream ran ({len(during)}): {during[:5]}")
    if service.warnings():
        print(f"service warnings/errors ({len(service.warnings())}):", *service.warnings()[:5], sep="\n  ")
    met = pct(blocking, 95) < 0.050
    print(f"goal: blocking p95 < 50 ms: {'met' if met else 'NOT met'} ({pct(blocking, 95) * 1000:.1f} ms)")
    return 0 if met and not missed_blocking and not during else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=120, help="measured segments (1 s each; default 120)")
    parser.add_argument("--warmup", type=int, default=5, help="segments before measuring (default 5)")
    parser.add_argument("--pollers", type=int, default=10,
                        help="polling clients, phases spread over the poll interval (default 10)")
    parser.add_argument("--encode", type=int, default=5, help="distinct segments encoded at start (default 5)")
    parser.add_argument("--kbps", type=int, default=1200, help="video bitrate of the segments (default 1200)")
    parser.add_argument("--list-size", type=int, default=25,
                        help="segments in Owncast's playlist (its 1 s latency level lists 25)")
    return parser


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_parser().parse_args())))
