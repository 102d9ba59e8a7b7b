"""10,000 viewers on one live playlist: errors, response times, blocked-request wake-up, memory per
held request; our whole service against a trivial aiohttp app, alternating in the same run.

    python -m bench.viewers [--viewers 10000] [--blocking 0.9] [--duration 30] [--rounds 2]

Ours: the whole Service (watcher, uploader, Publisher, server) in a process of its own, fed the real
way: the synthetic Owncast of bench/rig.py (real ffmpeg 1 s segments, written in place,
playlist rewritten in place, 1 s cadence) into HLS_DIR, uploads to SeaweedFS on 127.0.0.1. The real
Publisher path rather than a fake PlaylistSource because it is what wakes held requests in
production (Publisher.wait_for_sequence, one event per published version) and the feed costs the
machine little: one 165 KB upload and a few small file reads a second, next to 10,000 viewers. An
on_listed hook in that process notes when each media sequence number is listed (right after the
held requests are woken), which is the start of a blocked request's wake-up.
Baseline: a trivial aiohttp app in a process of its own (same framework, same event loop, same
listen backlog): the plain playlist is fixed bytes (the playlist ours served at start); a blocking
request (any _HLS_msn) is held until the next whole-second tick, then gets fixed bytes too (the delta
update ours served at start, for _HLS_skip) and the tick's time in a header. Its wake-up is measured
from that tick.

Viewers: --client-procs processes, each driving its share of keep-alive HTTP/1.1 connections with
minimal requests on raw asyncio (one asyncio.Protocol per connection: no task, no StreamReader, so
the load generator stays cheap; aiohttp's client for 10,000 connections on 2 cores would be the
bottleneck itself). --blocking of the viewers behave like hls.js 1.7 with blocking reload: GET the
plain playlist once, then always ask `_HLS_msn=<last listed + 1>&_HLS_skip=YES` (a delta update, as
hls.js asks when the playlist offers them; --no-skip for full playlists) as soon as an answer
arrives; the rest poll the plain playlist every --poll-interval from a random phase (a late answer
skips slots, as a player would, rather than catching up). Before the first phase the service runs
until its live window is full (WINDOW_SECONDS, 30 s), so playlists have their steady size. Each
phase spawns fresh client processes that open connections at --ramp per second; measuring starts
--settle seconds after all are open, or after viewers/ramp + --connect-timeout seconds if they
never all open (the report says how many were). Phases alternate ours/baseline for --rounds rounds.

Reported per server, over the measurement windows: errors (anything but a 200, connection lost or
refused, no answer within 10 s; must be zero), p50/p99 of plain (non-blocking) GETs (goal: p99 <
100 ms for ours), wake-up of held requests (from listing / tick to the viewer having the answer),
blocking requests answered at once, responses per second, the server's CPU, event-loop lag, full
garbage collections (count and longest pause: they stop the event loop) and memory: idle VmRSS
(before any viewer) and VmRSS while requests are held, per held request ((loaded - idle) / held
requests at that moment, counted from the viewers' own logs; it includes each connection's own
cost) and per connection. Client side: CPU of the client processes and their event-loop lag, and
how busy the whole machine was, to say whether the load generator saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import logging
import math
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from bench.crowd import (
    BLOCKING,
    FD_SPARE,
    PATH,
    PLAIN,
    Log,
    Server,
    lag_probe,
    last_sequence,
    raise_nofile,
    run_viewers,
    serve_ours,
    start_server,
    time_gc,
    until_told,
)
from bench.rig import (
    SEGMENT_SECONDS,
    cpu_seconds,
    machine_idle,
    rss_kb,
    workspace,
)
from tests.support.stats import pct


# -- the baseline server -------------------------------------------------------------------------


def serve_baseline(body: bytes, delta: bytes, viewers: int, conn: Connection) -> None:
    """Process target: fixed bytes (`delta` for _HLS_skip); a blocking request held until the next
    whole-second tick."""
    raise_nofile(viewers + FD_SPARE, "the baseline server")
    from aiohttp import web

    class Tick(asyncio.Event):
        at = 0.0  # when it fired

    async def main() -> None:
        tick = Tick()

        async def ticker() -> None:
            nonlocal tick
            while True:
                await asyncio.sleep(math.floor(time.monotonic()) + 1 - time.monotonic())
                fired, tick = tick, Tick()
                fired.at = time.monotonic()
                fired.set()  # like Publisher._apply: one event per version, replaced, then set

        async def playlist(request: web.Request) -> web.Response:
            if "_HLS_msn" in request.query:
                waited = tick
                await waited.wait()
                return web.Response(body=delta if "_HLS_skip" in request.query else body,
                                    content_type="application/vnd.apple.mpegurl",
                                    headers={"X-Tick": f"{waited.at:.6f}"})
            return web.Response(body=body, content_type="application/vnd.apple.mpegurl")

        app = web.Application()
        app.router.add_get(PATH, playlist)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        lag: list[tuple[float, float]] = []
        pauses: list[tuple[float, int, float]] = []
        time_gc(pauses)
        tasks = [asyncio.create_task(ticker()), asyncio.create_task(lag_probe(lag))]
        conn.send((f"http://127.0.0.1:{port}", len(gc.get_objects())))
        try:
            await until_told(conn)
        finally:
            for t in tasks:
                t.cancel()
            await runner.cleanup()
        conn.send(({}, lag, [], pauses))

    asyncio.run(main())


# -- the coordinator -----------------------------------------------------------------------------


@dataclass
class Phase:
    server: str
    window: tuple[float, float]
    logs: list[Log]
    server_cpu: float
    client_cpu: float
    machine_busy: float
    rss: list[tuple[float, int]]
    connect_seconds: float
    span: tuple[float, float]  # the whole phase: connecting, settling, measuring, closing
    open_at_start: int  # connections open when measuring began


async def run_phase(server: Server, args: argparse.Namespace, ctx: Any, seed: int) -> Phase:
    blocking = round(args.viewers * args.blocking)
    polling = args.viewers - blocking
    stop = ctx.Event()
    opened = ctx.Value("i", 0)
    procs, conns = [], []
    for i in range(args.client_procs):
        b = blocking // args.client_procs + (i < blocking % args.client_procs)
        p = polling // args.client_procs + (i < polling % args.client_procs)
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=run_viewers, name=f"viewers-{i}", daemon=True,
                           args=(server.url, b, p, args.poll_interval, args.ramp / args.client_procs, args.skip,
                                 seed + i, opened, stop, send))
        proc.start()
        send.close()
        procs.append(proc)
        conns.append(recv)
    began = time.monotonic()
    # All connections open (as the viewers count them), then settle.
    deadline = began + args.viewers / args.ramp + args.connect_timeout
    shown = began
    while (established := opened.value) < args.viewers and time.monotonic() < deadline:
        if not all(p.is_alive() for p in procs):
            raise RuntimeError("a client process died while connecting")
        if time.monotonic() - shown >= 5:
            shown = time.monotonic()
            print(f"  {established} connections open after {shown - began:.0f} s", flush=True)
        await asyncio.sleep(0.25)
    connect_seconds = time.monotonic() - began
    if established < args.viewers:
        print(f"  only {established} of {args.viewers} connections open after {connect_seconds:.0f} s; "
              "measuring anyway", flush=True)
    await asyncio.sleep(args.settle)
    start = time.monotonic()
    cpu0 = cpu_seconds(server.pid), sum(cpu_seconds(p.pid) for p in procs if p.pid), machine_idle()
    rss: list[tuple[float, int]] = []
    while time.monotonic() < start + args.duration:
        rss.append((time.monotonic(), rss_kb(server.pid)))
        await asyncio.sleep(0.1)
    end = time.monotonic()
    cpu1 = cpu_seconds(server.pid), sum(cpu_seconds(p.pid) for p in procs if p.pid), machine_idle()
    stop.set()
    logs: list[Log] = []
    for recv in conns:
        if await asyncio.to_thread(recv.poll, 60):
            logs.append(recv.recv())
    for proc in procs:
        await asyncio.to_thread(proc.join, 10)
    span = end - start
    finished = time.monotonic()
    idle, total = cpu1[2][0] - cpu0[2][0], cpu1[2][1] - cpu0[2][1]
    return Phase(server.name, (start, end), logs, (cpu1[0] - cpu0[0]) / span, (cpu1[1] - cpu0[1]) / span,
                 1 - idle / total if total else math.nan, rss, connect_seconds, (began, finished),
                 established)


# -- analysis ------------------------------------------------------------------------------------


@dataclass
class Summary:
    plain: list[float] = field(default_factory=list)
    wake: list[float] = field(default_factory=list)
    at_once: list[float] = field(default_factory=list)
    answers: int = 0
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    window_errors: int = 0
    per_held_kb: list[float] = field(default_factory=list)
    per_conn_kb: list[float] = field(default_factory=list)
    held_counts: list[int] = field(default_factory=list)
    loaded_rss_kb: list[int] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    machine_busy: list[float] = field(default_factory=list)
    client_lag: list[float] = field(default_factory=list)
    server_lag: list[float] = field(default_factory=list)
    connect_seconds: list[float] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    unlisted: int = 0
    service_log: Counter[str] = field(default_factory=Counter)
    full_gc: list[float] = field(default_factory=list)  # pauses of generation-2 collections in the windows


def summarize(phase: Phase, server: Server, summary: Summary, viewers: int) -> None:
    lo, hi = phase.window
    listed = server.listed
    sends: list[float] = []
    recvs: list[float] = []
    for log in phase.logs:
        for when, what in log.errors:
            summary.errors[what] += 1
            summary.window_errors += lo <= when <= hi
        summary.client_lag += [lag for when, lag in log.lag if lo <= when <= hi]
        for kind, asked, sent, recv, tick, status in zip(log.kind, log.asked, log.sent, log.recv, log.tick,
                                                         log.status, strict=True):
            if kind == BLOCKING:
                sends.append(sent)
                recvs.append(math.inf if math.isnan(recv) else recv)
            if math.isnan(recv) or not lo <= recv <= hi or status != 200:  # errors are counted, not timed
                continue
            summary.answers += 1
            if kind == PLAIN:
                summary.plain.append(recv - sent)
            elif not math.isnan(tick):  # baseline: woken by the tick
                summary.wake.append(recv - tick)
            else:
                at = listed.get(asked)
                if at is None:
                    summary.unlisted += 1
                elif sent < at[0]:
                    summary.wake.append(recv - at[0])
                else:
                    summary.at_once.append(recv - sent)
    summary.seconds += hi - lo
    # Held requests at each RSS sample: sent before it and not answered yet.
    sends.sort()
    recvs.sort()
    for when, kb in phase.rss:
        held = bisect.bisect_right(sends, when) - bisect.bisect_right(recvs, when)
        if held > 0:
            summary.held_counts.append(held)
            summary.loaded_rss_kb.append(kb)
            summary.per_held_kb.append((kb - server.idle_rss_kb) / held)
            summary.per_conn_kb.append((kb - server.idle_rss_kb) / max(1, phase.open_at_start))
    summary.server_cpu.append(phase.server_cpu)
    summary.client_cpu.append(phase.client_cpu)
    summary.machine_busy.append(phase.machine_busy)
    summary.server_lag += [lag for when, lag in server.lag if lo <= when <= hi]
    summary.full_gc += [took for when, gen, took in server.gc_pauses if gen == 2 and lo <= when <= hi]
    summary.connect_seconds.append(phase.connect_seconds)
    summary.opened.append(phase.open_at_start)
    summary.service_log.update(what for when, what in server.logged if phase.span[0] <= when <= phase.span[1])


def _q(xs: list[float], p: float, scale: float = 1000.0, unit: str = "ms") -> str:
    return f"{pct(xs, p) * scale:.1f}{unit}" if xs else "-"


def report(args: argparse.Namespace, sums: dict[str, Summary], servers: dict[str, Server]) -> bool:
    o, b = sums["ours"], sums["baseline"]
    blocking = round(args.viewers * args.blocking)
    offered = blocking / SEGMENT_SECONDS + (args.viewers - blocking) / args.poll_interval
    print()
    print(f"{args.viewers} viewers ({blocking} blocking with _HLS_msn{'&_HLS_skip=YES' if args.skip else ''}, "
          f"{args.viewers - blocking} polling every "
          f"{args.poll_interval * 1000:.0f} ms), 1 s segments, {args.client_procs} client processes, "
          f"{args.rounds} x {args.duration:.0f} s per server, alternating; {os.cpu_count()} CPUs; "
          f"offered load about {offered:.0f} answers/s")
    rows: list[tuple[str, Callable[[Summary], str], Callable[[Summary], float] | None]] = [
        ("errors (whole phase)", lambda s: str(sum(s.errors.values())), None),
        ("errors (in the window)", lambda s: str(s.window_errors), None),
        ("answers/s", lambda s: f"{s.answers / s.seconds:.0f}", lambda s: s.answers / s.seconds),
        ("plain GET p50", lambda s: _q(s.plain, 50), lambda s: pct(s.plain, 50)),
        ("plain GET p99", lambda s: _q(s.plain, 99), lambda s: pct(s.plain, 99)),
        ("plain GET max", lambda s: _q(s.plain, 100), lambda s: pct(s.plain, 100)),
        ("held: wake-up p50", lambda s: _q(s.wake, 50), lambda s: pct(s.wake, 50)),
        ("held: wake-up p99", lambda s: _q(s.wake, 99), lambda s: pct(s.wake, 99)),
        ("held: wake-up max", lambda s: _q(s.wake, 100), lambda s: pct(s.wake, 100)),
        ("held requests answered", lambda s: str(len(s.wake)), None),
        ("blocking answered at once", lambda s: f"{len(s.at_once)} (p50 {_q(s.at_once, 50)})", None),
        ("server CPU (1 core = 100%)", lambda s: f"{statistics.fmean(s.server_cpu) * 100:.0f}%",
         lambda s: statistics.fmean(s.server_cpu)),
        ("server loop lag p99/max", lambda s: f"{_q(s.server_lag, 99)}/{_q(s.server_lag, 100)}", None),
        ("full GCs: n, max pause", lambda s: f"{len(s.full_gc)}, {_q(s.full_gc, 100)}", None),
        ("GC-tracked objects at start", lambda s: "", None),
        ("server VmRSS idle", lambda s: "", None),
        ("server VmRSS loaded (median)", lambda s: f"{statistics.median(s.loaded_rss_kb) / 1024:.0f} MB"
         if s.loaded_rss_kb else "-", None),
        ("held at those moments", lambda s: f"{statistics.median(s.held_counts):.0f}" if s.held_counts else "-",
         None),
        ("memory per held request", lambda s: f"{statistics.median(s.per_held_kb):.1f} KB" if s.per_held_kb else "-",
         lambda s: statistics.median(s.per_held_kb)),
        ("memory per connection", lambda s: f"{statistics.median(s.per_conn_kb):.1f} KB" if s.per_conn_kb else "-",
         None),
        ("client CPU (all procs)", lambda s: f"{statistics.fmean(s.client_cpu) * 100:.0f}%", None),
        ("client loop lag p99/max", lambda s: f"{_q(s.client_lag, 99)}/{_q(s.client_lag, 100)}", None),
        ("machine busy", lambda s: f"{statistics.fmean(s.machine_busy) * 100:.0f}%", None),
        ("open when measuring (min)", lambda s: str(min(s.opened)), None),
        ("time to open them (max)", lambda s: f"{max(s.connect_seconds):.1f}s", None),
    ]
    print(f"{'':>30} {'ours':>22} {'baseline':>22} {'ours/baseline':>14}")
    for label, show, value in rows:
        if label == "server VmRSS idle":
            ours_text = f"{servers['ours'].idle_rss_kb / 1024:.0f} MB"
            base_text = f"{servers['baseline'].idle_rss_kb / 1024:.0f} MB"
            print(f"{label:>30} {ours_text:>22} {base_text:>22}")
            continue
        if label == "GC-tracked objects at start":
            print(f"{label:>30} {servers['ours'].gc_objects:>22} {servers['baseline'].gc_objects:>22}")
            continue
        ratio = ""
        if value is not None:
            try:
                ratio = f"{value(o) / value(b):.2f}x"
            except (ValueError, ZeroDivisionError, statistics.StatisticsError, IndexError):
                ratio = "-"
        print(f"{label:>30} {show(o):>22} {show(b):>22} {ratio:>14}")
    for name, s in sums.items():
        if s.errors:
            print(f"  {name} errors: " + "; ".join(f"{n} x {what}" for what, n in s.errors.most_common(5)))
        if s.service_log:
            print(f"  {name} service log during its phases: "
                  + "; ".join(f"{n} x {what}" for what, n in s.service_log.most_common(4)))
        if s.unlisted:
            print(f"  {name}: {s.unlisted} blocking answers for a sequence never seen listed (not counted)")
    client_lag = pct(o.client_lag + b.client_lag, 99) if o.client_lag or b.client_lag else 0.0
    print(f"client side: {'SATURATED' if client_lag > 0.05 else 'kept up'} (client loop lag p99 "
          f"{client_lag * 1000:.1f} ms, threshold 50 ms; the measured times include it); "
          f"machine busy {statistics.fmean(o.machine_busy + b.machine_busy) * 100:.0f}% (other users included)")
    for name, s in sums.items():
        lag = pct(s.server_lag, 99) if s.server_lag else 0.0
        print(f"{name} server: {'SATURATED' if lag > 0.1 else 'kept up'} (one event loop on one core: "
              f"CPU {statistics.fmean(s.server_cpu) * 100:.0f}%, loop lag p99 {lag * 1000:.0f} ms, "
              "threshold 100 ms)")
    errors_ok = not o.errors and not b.errors
    p99_ok = bool(o.plain) and pct(o.plain, 99) < 0.100
    print(f"goals (ours): zero errors: {'met' if errors_ok else 'NOT met'}; plain GET p99 < 100 ms: "
          f"{'met' if p99_ok else 'NOT met'} ({_q(o.plain, 99)})")
    return errors_ok and p99_ok


async def main(args: argparse.Namespace) -> int:
    raise_nofile(FD_SPARE * 5, "the coordinator")
    for who, n in (("the service", args.viewers + FD_SPARE),
                   ("a client process", math.ceil(args.viewers / args.client_procs) + FD_SPARE)):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < n:
            sys.exit(f"bench/viewers.py: {who} needs {n} open files but RLIMIT_NOFILE's hard limit is {hard}; "
                     f"raise it (ulimit -Hn) or use fewer --viewers / more --client-procs")
    ctx = multiprocessing.get_context("spawn")
    async with workspace("viewers") as ws:
        hls_dir, writer = ws.owncast(await ws.encoded())
        env = ws.env(hls_dir, LOG_LEVEL="warning", WINDOW_SECONDS=str(args.window))
        servers: dict[str, Server] = {}
        try:
            servers["ours"] = await start_server("ours", ctx, serve_ours, env, args.viewers)
            print(f"waiting for the live window to fill (about WINDOW_SECONDS = {args.window:g} s) ...", flush=True)
            async with aiohttp.ClientSession() as http:
                url = servers["ours"].url + PATH
                first = None
                async with asyncio.timeout(90):
                    while True:  # until the window slides: the playlist has its steady size
                        async with http.get(url) as r:
                            body = await r.read()
                        if r.status == 200:
                            sequence = int(body.split(b"#EXT-X-MEDIA-SEQUENCE:")[1].split(b"\n")[0])
                            first = sequence if first is None else first
                            if sequence > first:
                                break
                        await asyncio.sleep(0.2)
                # The delta update hls.js gets with _HLS_skip=YES (answered at once: msn is listed).
                query = {"_HLS_msn": str(last_sequence(body)), "_HLS_skip": "YES"}
                async with http.get(url, params=query) as r:
                    delta = await r.read() if r.status == 200 else body
            servers["baseline"] = await start_server("baseline", ctx, serve_baseline, body, delta,
                                                     args.viewers)
            await asyncio.sleep(2)
            for s in servers.values():
                s.idle_rss_kb = rss_kb(s.pid)
            print(f"ours (pid {servers['ours'].pid}) at {servers['ours'].url}, baseline (pid "
                  f"{servers['baseline'].pid}) at {servers['baseline'].url}; playlist {len(body)} bytes, "
                  f"delta update {len(delta)} bytes",
                  flush=True)
            phases: list[Phase] = []
            for rnd in range(args.rounds):
                order = ("ours", "baseline") if rnd % 2 == 0 else ("baseline", "ours")
                for name in order:
                    print(f"round {rnd + 1}/{args.rounds}: {name}: opening {args.viewers} connections ...",
                          flush=True)
                    phase = await run_phase(servers[name], args, ctx, seed=1000 * rnd + len(phases))
                    errs = sum(len(log.errors) for log in phase.logs)
                    answers = sum(len(log.kind) for log in phase.logs)
                    print(f"  connected in {phase.connect_seconds:.1f} s; {answers} answers, {errs} errors, "
                          f"server CPU {phase.server_cpu * 100:.0f}%, "
                          f"clients {phase.client_cpu * 100:.0f}%", flush=True)
                    phases.append(phase)
                    await asyncio.sleep(args.settle)
        finally:
            for s in servers.values():
                await asyncio.to_thread(s.stop)
            await writer.stop()
        sums = {"ours": Summary(), "baseline": Summary()}
        for phase in phases:
            summarize(phase, servers[phase.server], sums[phase.server], args.viewers)
        ok = report(args, sums, servers)
        return 0 if ok else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=10_000, help="concurrent viewers (default 10000)")
    parser.add_argument("--blocking", type=float, default=0.9,
                        help="fraction of viewers using blocking reload; the rest poll (default 0.9)")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between polls (default 0.5)")
    parser.add_argument("--skip", action=argparse.BooleanOptionalAction, default=True,
                        help="blocking viewers add _HLS_skip=YES, as hls.js does when the playlist offers delta "
                             "updates (default: yes)")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per phase (default 30)")
    parser.add_argument("--window", type=float, default=30.0, help="the service's WINDOW_SECONDS (default 30)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of ours + baseline (default 2)")
    parser.add_argument("--client-procs", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--ramp", type=float, default=2000.0, help="new connections per second (default 2000)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after connecting before measuring")
    parser.add_argument("--connect-timeout", type=float, default=20.0,
                        help="seconds beyond viewers/ramp to wait for every connection to open (default 20)")
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(_parser().parse_args())))
