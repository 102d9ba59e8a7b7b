"""The cache path: nginx with deploy/nginx-cache.conf in front of the service, 10,000 viewers; against
the same kind of load straight at the service, in the same run.

    python -m bench.edge [--viewers 10000] [--origin-viewers 2000] [--blocking 0.9] [--duration 30]

Real parts: SeaweedFS on 127.0.0.1 (the bucket), the whole Service in a process of its own fed by the
synthetic Owncast of bench/rig.py (real ffmpeg 1 s segments written the way Owncast
writes them), exactly as bench/viewers.py runs it (bench/crowd.py): an on_listed hook there notes when each media
sequence number is listed, the reference for "how soon a new segment reaches a viewer". Debian's nginx
runs deploy/nginx-cache.conf with the three strings its header names replaced (listen port, upstream,
folder) and nothing else, in the foreground, stopped by its PID.

Viewers: wrk (Debian's, LuaJIT) with bench/edge.lua, two processes: --blocking of the viewers in one
(2 threads) behave like hls.js with blocking reload (plain playlist once, then `?_HLS_msn=<last+1>
&_HLS_skip=YES` as soon as an answer arrives), the rest in another (1 thread) poll the plain playlist
every --poll-interval (+-20 %). Each wrk holds its connections open for the whole phase: connecting
(--connect seconds allowed), then --duration measured seconds. RLIMIT_NOFILE is raised for wrk and
nginx (to the hard limit; nginx's own worker_rlimit_nofile does the rest). Next to them, --probes
Python clients make blocking requests like the wrk viewers (the same URLs, so the same cache entries)
and time their own answers: from the service listing the segment to the probe having the answer.

Phases: "cache" (--viewers through nginx), then "origin" (--origin-viewers straight at the service; on
2 cores one event loop does not hold 10,000, see bench/viewers.py, hence a smaller default).

Reported per phase, over the measured window: viewer answers/s (wrk's, counted per second by the Lua
script, plus the probes'), errors (wrk's whole run: answers with status >= 400 and socket errors,
apart; goal 0), origin requests/s (the service's hls_broadcaster_playlist_requests_total) and their
share of viewer answers (goal < 1 % through the cache), the probes' listing-to-answer p50/p95/max and
what nginx's X-Cache-Status said for them, CPU of nginx, the service and wrk, and how busy the machine
was: the load generator shares the cores with what it measures, so say so with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import random
import re
import resource
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.rig import (
    NGINX,
    NginxCache,
    nofile_to_hard,
    cpu_seconds,
    free_port,
    machine_idle,
    workspace,
)
from bench.crowd import PATH, Server, last_sequence, serve_ours, start_server
from tests.support.stats import pct

REPO = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "edge.lua"
FD_SPARE = 200


# -- wrk -------------------------------------------------------------------------------------------


@dataclass
class WrkRun:
    mode: str
    connections: int
    proc: asyncio.subprocess.Process
    out: str = ""
    per_second: dict[int, tuple[int, int]] = field(default_factory=dict)  # second -> (answers, status >= 400)
    requests: int = 0
    non_2xx_3xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    unread: int = 0

    async def finish(self) -> None:
        stdout, stderr = await self.proc.communicate()
        self.out = stdout.decode(errors="replace") + stderr.decode(errors="replace")
        for line in self.out.splitlines():
            if line.startswith("EDGE "):
                _, second, answers, bad = line.split()
                self.per_second[int(second)] = (int(answers), int(bad))
            elif line.startswith("EDGE-UNREAD "):
                self.unread = int(line.split()[1])
        m = re.search(r"(\d+) requests in", self.out)
        if self.proc.returncode != 0 or m is None:
            raise RuntimeError(f"wrk ({self.mode}) failed:\n{self.out}")
        self.requests = int(m.group(1))
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", self.out)
        self.non_2xx_3xx = int(m.group(1)) if m else 0
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", self.out)
        if m:
            self.socket_errors = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), m.groups(),
                                                            strict=True) if int(v)}

    def window(self, first: int, last: int) -> tuple[int, int]:
        """(answers, answers with status >= 400) in wall-clock seconds first .. last - 1."""
        got = [self.per_second.get(s, (0, 0)) for s in range(first, last)]
        return sum(a for a, _ in got), sum(b for _, b in got)


async def start_wrk(url: str, mode: str, connections: int, threads: int, seconds: int, poll_ms: int,
                    skip: bool) -> WrkRun:
    env = {**os.environ, "EDGE_MODE": mode, "EDGE_POLL_MS": str(poll_ms), "EDGE_SKIP": "1" if skip else "0",
           "EDGE_CONNECTIONS_PER_THREAD": str(connections // threads)}
    proc = await asyncio.create_subprocess_exec(
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA), url,
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=nofile_to_hard,
    )
    return WrkRun(mode, connections, proc)


# -- probes: blocking viewers that time their own answers ------------------------------------------


@dataclass
class ProbeAnswer:
    asked: int
    sent: float  # time.monotonic()
    recv: float
    status: int
    cache: str  # nginx's X-Cache-Status, "" straight from the service


async def probe(session: aiohttp.ClientSession, url: str, skip: bool, log: list[ProbeAnswer]) -> None:
    """A blocking-reload viewer (like the wrk ones) until cancelled. Before each request it waits a
    random 0-0.4 s (the next segment is listed about 1 s after the last): behind nginx's cache lock,
    which a waiting request checks every 500 ms from its arrival, its answers then sample every phase
    an audience joining at random moments has, not just the few phases five probes would keep."""
    last = -1
    while True:
        await asyncio.sleep(random.uniform(0, 0.4))
        if last < 0:
            async with session.get(url) as r:
                body = await r.read()
            if r.status != 200:
                await asyncio.sleep(0.2)
                continue
            last = last_sequence(body)
        asked = last + 1
        query = f"?_HLS_msn={asked}" + ("&_HLS_skip=YES" if skip else "")
        sent = time.monotonic()
        try:
            async with session.get(url + query) as r:
                body = await r.read()
                status, cache = r.status, r.headers.get("X-Cache-Status", "")
        except aiohttp.ClientError:
            status, cache, body = 0, "", b""
        log.append(ProbeAnswer(asked, sent, time.monotonic(), status, cache))
        last = last_sequence(body) if status == 200 else -1


# -- one phase -------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    viewers: int
    seconds: float = 0.0
    answers: int = 0  # in the window: wrk's and the probes'
    window_bad: int = 0
    origin_requests: float = 0.0
    wrks: list[WrkRun] = field(default_factory=list)
    probes: list[ProbeAnswer] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)  # monotonic
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core
    machine_busy: float = 0.0
    # Whole phase: (viewer answers, origin requests); the origin's include the requests still held when
    # wrk stops, which no viewer counts as answered.
    whole: tuple[int, float] = (0, 0.0)


async def origin_count(session: aiohttp.ClientSession, service_url: str) -> float:
    async with session.get(f"{service_url}/metrics") as r:
        text = await r.text()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "hls_broadcaster_playlist_requests_total")


def _cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process still there (nginx's cache loader exits a minute after start)."""
    got = {}
    for pid in pids:
        try:
            got[pid] = cpu_seconds(pid)
        except FileNotFoundError:
            pass
    return got


async def sleep_until_wall(when: float) -> None:
    await asyncio.sleep(max(0.0, when - time.time()))


async def run_phase(name: str, base: str, viewers: int, service: Server, nginx: NginxCache | None,
                    args: argparse.Namespace) -> Phase:
    phase = Phase(name, viewers)
    blocking = round(viewers * args.blocking)
    polling = viewers - blocking
    seconds = math.ceil(args.connect + args.duration + 2)
    url = base + PATH
    poll_ms = round(args.poll_interval * 1000)
    async with aiohttp.ClientSession() as metrics:
        whole0 = await origin_count(metrics, service.url)
    if blocking:
        phase.wrks.append(await start_wrk(url, "blocking", blocking, min(2, blocking), seconds, poll_ms, args.skip))
    if polling:
        phase.wrks.append(await start_wrk(url, "poll", polling, 1, seconds, poll_ms, args.skip))
    first = math.ceil(time.time() + args.connect)  # the window, in whole wall-clock seconds
    last = first + math.ceil(args.duration)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session, \
               aiohttp.ClientSession() as metrics:
        tasks = [asyncio.create_task(probe(session, url, args.skip, phase.probes)) for _ in range(args.probes)]
        pids = {"service": [service.pid], "nginx": nginx.pids() if nginx else [],
                "wrk": [w.proc.pid for w in phase.wrks]}

        async def readings() -> tuple[float, dict[str, dict[int, float]], tuple[float, float], float, float]:
            """(now, CPU per process, the machine's idle, the origin's count, when it was counted)."""
            now, cpu, idle = time.monotonic(), {k: _cpu(v) for k, v in pids.items()}, machine_idle()
            return now, cpu, idle, await origin_count(metrics, service.url), time.monotonic()

        await sleep_until_wall(first)
        start, cpu0, idle0, count0, counted0 = await readings()
        await sleep_until_wall(last)
        end, cpu1, idle1, count1, counted1 = await readings()
        for w in phase.wrks:
            await w.finish()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        whole1 = await origin_count(metrics, service.url)
    phase.whole = (sum(w.requests for w in phase.wrks) + len(phase.probes), whole1 - whole0)
    phase.window = (start, end)
    phase.seconds = end - start
    phase.cpu = {k: sum(cpu1[k][p] - cpu0[k][p] for p in cpu1[k].keys() & cpu0[k].keys()) / phase.seconds
                 for k in pids}
    idle, total = idle1[0] - idle0[0], idle1[1] - idle0[1]
    phase.machine_busy = 1 - idle / total if total else math.nan
    for w in phase.wrks:
        answers, bad = w.window(first, last)
        phase.answers += answers
        phase.window_bad += bad
    in_window = [p for p in phase.probes if start <= p.recv <= end]
    phase.answers += len(in_window)
    phase.window_bad += sum(p.status != 200 for p in in_window)
    # Scraped on a busy service, so over the time between the two answers, scaled to the window.
    phase.origin_requests = (count1 - count0) * phase.seconds / (counted1 - counted0)
    return phase


# -- report ----------------------------------------------------------------------------------------


def wake_ups(phase: Phase, listed: dict[int, tuple[float, str]]) -> tuple[list[float], Counter[str], int]:
    """Probe answers in the window for a segment not yet listed when asked: listing -> answer seconds,
    X-Cache-Status of those answers, and how many were answered at once (the segment was listed)."""
    lo, hi = phase.window
    wake: list[float] = []
    cache: Counter[str] = Counter()
    at_once = 0
    for p in phase.probes:
        if not lo <= p.recv <= hi or p.status != 200 or p.asked not in listed:
            continue
        at = listed[p.asked][0]
        if p.sent < at:
            wake.append(p.recv - at)
            cache[p.cache or "origin"] += 1
        else:
            at_once += 1
    return wake, cache, at_once


def report(args: argparse.Namespace, phases: list[Phase], listed: dict[int, tuple[float, str]]) -> bool:
    print()
    print(f"1 s segments; {args.blocking:.0%} of viewers blocking (_HLS_msn{'&_HLS_skip=YES' if args.skip else ''}),"
          f" the rest polling every {args.poll_interval:g} s; {args.duration:g} s measured per phase; "
          f"{os.cpu_count()} CPUs shared by everything (wrk, nginx, the service, SeaweedFS, the probes)")
    ok = False
    figures: dict[str, dict[str, float]] = {}
    for ph in phases:
        wake, cache, at_once = wake_ups(ph, listed)
        status = sum(w.non_2xx_3xx for w in ph.wrks)
        sockets: Counter[str] = Counter()
        for w in ph.wrks:
            sockets.update(w.socket_errors)
        rate = ph.answers / ph.seconds
        origin_rate = ph.origin_requests / ph.seconds
        share = ph.origin_requests / ph.answers if ph.answers else math.nan
        figures[ph.name] = {"answers": rate, "p50": pct(wake, 50) if wake else math.nan,
                            "p95": pct(wake, 95) if wake else math.nan, "origin": origin_rate}
        print(f"\n{ph.name}: {ph.viewers} viewers " + ("through nginx" if ph.name == "cache" else "straight at the service")
              + f" ({', '.join(f'{w.connections} {w.mode}' for w in ph.wrks)}, + {args.probes} probes)")
        print(f"  viewer answers/s          {rate:8.0f}   ({ph.answers} in {ph.seconds:.1f} s)")
        print(f"  errors, status >= 400     {status:8d}   (whole run; {ph.window_bad} in the window)")
        print(f"  errors, socket            {sum(sockets.values()):8d}   "
              f"({', '.join(f'{k} {v}' for k, v in sockets.items()) or 'none'}; whole run)")
        print(f"  origin requests/s         {origin_rate:8.1f}   ({share:.2%} of viewer answers; whole phase: "
              f"{ph.whole[1]:.0f} for {ph.whole[0]} viewer answers, {ph.whole[1] / max(1, ph.whole[0]):.2%})")
        print(f"  listing -> probe answer   p50 {pct(wake, 50) * 1000 if wake else math.nan:6.0f} ms   "
              f"p95 {pct(wake, 95) * 1000 if wake else math.nan:6.0f} ms   "
              f"max {max(wake) * 1000 if wake else math.nan:6.0f} ms   ({len(wake)} held answers; "
              f"{at_once} answered at once; X-Cache-Status {dict(cache)})")
        print("  CPU (1 core = 100 %)      " + ", ".join(f"{k} {v:.0%}" for k, v in ph.cpu.items())
              + f"; machine busy {ph.machine_busy:.0%}")
        unread = sum(w.unread for w in ph.wrks)
        if unread:
            print(f"  {unread} answers whose playlist the Lua viewers could not read (they start over)")
        if "timeout" in sockets:
            print("  (wrk's timeout: every 2 s, each connection whose request or connection attempt is older "
                  "than 10 s counts once more)")
        if ph.name == "cache":
            ok = status == 0 and not sockets and share < 0.01
    if "cache" in figures and "origin" in figures:
        c, o = figures["cache"], figures["origin"]
        print(f"\ncache/origin: answers/s {c['answers'] / o['answers']:.2f}x; origin requests/s "
              f"{c['origin'] / o['origin']:.3f}x; listing -> answer p50 {c['p50'] / o['p50']:.2f}x, "
              f"p95 {c['p95'] / o['p95']:.2f}x")
    print(f"goals (cache): zero errors and origin share < 1 %: {'met' if ok else 'NOT met'}")
    return ok


async def main(args: argparse.Namespace) -> int:
    for tool in ("wrk", NGINX):
        if shutil.which(tool) is None:
            sys.exit(f"bench/edge.py needs {tool}: apt-get install {Path(tool).name}")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    need = max(args.viewers, args.origin_viewers) + FD_SPARE
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(f"bench/edge.py: {need} open files needed but RLIMIT_NOFILE's hard limit is {hard}; "
                 "raise it (ulimit -Hn) or use fewer --viewers")
    ctx = multiprocessing.get_context("spawn")
    nginx: NginxCache | None = None
    service: Server | None = None
    async with workspace("edge") as ws:
        work = ws.work
        hls_dir, writer = ws.owncast(await ws.encoded())
        phases: list[Phase] = []
        try:
            env = ws.env(hls_dir, LOG_LEVEL="warning")
            service = await start_server("service", ctx, serve_ours, env, args.origin_viewers)
            print(f"waiting for the live window to fill ({args.warmup:g} s) ...", flush=True)
            async with aiohttp.ClientSession() as http:
                async with asyncio.timeout(args.warmup + 60):
                    while True:
                        async with http.get(service.url + PATH) as r:
                            if r.status == 200:
                                break
                        await asyncio.sleep(0.2)
            await asyncio.sleep(args.warmup)
            nginx = NginxCache(work / "nginx", service.url.removeprefix("http://"))
            nginx.start()
            print(f"service (pid {service.pid}) at {service.url}, nginx (pid {nginx.pids()[0]}) at "
                  f"127.0.0.1:{nginx.port}", flush=True)
            for rnd in range(args.rounds):
                for name in ("cache", "origin"):
                    base = f"http://127.0.0.1:{nginx.port}" if name == "cache" else service.url
                    viewers = args.viewers if name == "cache" else args.origin_viewers
                    print(f"round {rnd + 1}/{args.rounds}: {name}: {viewers} viewers ...", flush=True)
                    phase = await run_phase(name, base, viewers, service, nginx if name == "cache" else None,
                                            args)
                    print(f"  {phase.answers / phase.seconds:.0f} answers/s, origin "
                          f"{phase.origin_requests / phase.seconds:.1f} requests/s; whole phase: "
                          f"{phase.whole[0]} viewer answers, {phase.whole[1]:.0f} origin requests",
                          flush=True)
                    phases.append(phase)
                    await asyncio.sleep(args.settle)
        finally:
            if nginx is not None:
                problems = [line for line in nginx.log().splitlines() if "[warn]" not in line]
                nginx.stop()
                if problems:
                    print("nginx error log:", *problems[-10:], sep="\n  ")
            if service is not None:
                await asyncio.to_thread(service.stop)
            await writer.stop()
        merged = {name: Phase(name, phases[0].viewers if name == "cache" else args.origin_viewers)
                  for name in ("cache", "origin")}
        for ph in phases:
            m = merged[ph.name]
            m.answers += ph.answers
            m.window_bad += ph.window_bad
            m.seconds += ph.seconds
            m.origin_requests += ph.origin_requests
            m.whole = (m.whole[0] + ph.whole[0], m.whole[1] + ph.whole[1])
            m.wrks += ph.wrks
            m.probes += [p for p in ph.probes if ph.window[0] <= p.recv <= ph.window[1]]
            m.window = (min(m.window[0] or ph.window[0], ph.window[0]), max(m.window[1], ph.window[1]))
            m.cpu = {k: m.cpu.get(k, 0.0) + v / args.rounds for k, v in ph.cpu.items()}
            m.machine_busy += ph.machine_busy / args.rounds
        assert service is not None
        if service.logged:
            print("service log:", *sorted({what for _, what in service.logged})[:10], sep="\n  ")
        return 0 if report(args, list(merged.values()), service.listed) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=10_000, help="viewers through nginx (default 10000)")
    parser.add_argument("--origin-viewers", type=int, default=2000,
                        help="viewers straight at the service, the baseline (default 2000)")
    parser.add_argument("--blocking", type=float, default=0.9,
                        help="fraction of viewers using blocking reload; the rest poll (default 0.9)")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between polls (default 0.5)")
    parser.add_argument("--skip", action=argparse.BooleanOptionalAction, default=True,
                        help="blocking viewers add _HLS_skip=YES, as hls.js does (default: yes)")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per phase (default 30)")
    parser.add_argument("--connect", type=float, default=10.0,
                        help="seconds for the viewers to connect before measuring (default 10)")
    parser.add_argument("--probes", type=int, default=5, help="Python probe viewers timing their answers")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of cache + origin (default 1)")
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="seconds of stream before the first phase: the live window fills (default 30)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between phases (default 3)")
    return parser


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_parser().parse_args())))
