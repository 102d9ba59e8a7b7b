"""What a long rewind window costs: playlist bytes, CPU per segment and per reload, R2 storage, egress.

    python -m bench.rewind_cost                  # 1 s and 3 s segments; 30 s, 5 min, 15 min, 1 h, 4 h
    python -m bench.rewind_cost --quick --json   # short wrk runs, and the figures as JSON at the end
    python -m bench.rewind_cost --windows 30,3600 --segments 1 --variants 1
    python -m bench.rewind_cost --no-http --windows 30,14400 --segments 1   # CPU, STATE_DIR, cold start

REWIND_SECONDS would let the live playlists list up to that much of the stream behind the live edge.
Every figure is taken for each (segment length, window) and set against the 30 s window (today's
default WINDOW_SECONDS) measured in the same run: this machine is shared and noisy, so read the
ratios, not the absolute numbers.

How, per (segment length d, window W), with the real broadcaster.playlist.manifest.ManifestGenerator
(target duration d, can_block_reload=True, as the service builds it with blocking reload on), filled
with more than a window of segments, `now` advancing by d per segment, so the window is full and
sliding (the steady state). URIs as the service
lists them with R2_PUBLIC_URL on r2.dev (PublicUrls: <base>/live/<variant>/stream-<shortid>-<n>.ts).

1. Playlist bytes per reload, one variant: the full playlist and the delta update (_HLS_skip=YES),
   plain and gzipped (Rendered.body / gzip_body / delta).
2. CPU per new segment (process CPU, time.process_time), averaged over --appends appends per variant
   in the steady state, in steps: the publisher's next_discontinuity (it asks it per variant per
   slot), append, render() (full + delta), render_edge().body (the copy for the bucket, made only with
   PUBLISH_PLAYLISTS=true: the whole text, uploaded whole), gzip of the full playlist and of the delta
   and their ETags (each made once per version, on first demand), and the state (state: what Snapshots.save does after every listed slot, with
   --variants generators in one state: JournaledState.prepare on the loop and write_prepared, the
   journal line written and fdatasynced, in a folder on /dev/shm when there is one so the disk's wait
   is left out; CPU only, divided by the variants; the compaction's share added, amortized: one full
   snapshot written every `threshold` bytes of journal). "% core" is the total times segments per
   second of stream (variants / d).
6. STATE_DIR per segment and a cold start: bytes one segment writes (its journal line, plus its share
   of the next compaction), the full snapshot's size, and the time (wall clock) a start takes to read
   state.json, replay a journal filled up to its compaction threshold (the worst case) and restore
   every variant's generator (ManifestGenerator.restore, every value checked).
3. CPU per reload and reload throughput, over the real HTTP stack: the app from
   broadcaster.http.create_app (routing, the playlist handlers, headers, metrics) over a playlist
   source holding the filled generators, run with handler_cancellation as the service runs it, in a
   child process pinned to one CPU (its CPU read from /proc/<pid>/stat, bench/rig.py cpu_seconds);
   `wrk -t1` pinned to the other CPU, --connections keep-alive connections for --duration seconds,
   with Accept-Encoding: gzip, against /live/0/playlist.m3u8 (full) and ?_HLS_skip=YES (delta). The
   playlist does not change during a run: what is measured is answering, not rendering (that is 2).
   --rounds rounds, each running the 30 s baseline then every other window, and the baseline once
   more at the end; each figure is the median of its runs, and every run's req/s is printed to show
   the spread. "busy" is the server's CPU seconds per second: when it is well below 100 % the server
   was not the bottleneck (wrk or the machine's other load was), so read CPU per request first.
4. R2 storage the window holds: W x the sum of the variants' bitrates (--kbps; default: every variant
   is Owncast's default output, 1200 kbps, docs/owncast.md "Variants": 1200-192 kbps of video plus
   the broadcaster's audio passed through, which Owncast budgets at 192). The cleaner keeps a segment
   that left the window for another playlist length plus CLEANUP_MARGIN (60 s), so the bucket really
   holds about 2W + 60 s: shown too, with R2's standard storage price.
5. What one viewer costs the VM in egress: with blocking reload a player reloads once per segment
   (3600/d reloads an hour), each answer a full playlist (a player without delta updates) or a delta
   update (hls.js, which asks _HLS_skip=YES when CAN-SKIP-UNTIL is offered); GB per viewer-hour and
   $ at EC2's $0.09/GB, bodies only (wrk's bytes per response minus the body give the headers, shown).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.rig import SERVER_CPU, WRK_CPU, cpu_seconds, free_port, pin, playlist_app, wait_listening
from broadcaster.playlist.manifest import ManifestGenerator
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish import playlist_memory
from broadcaster.state.disk import Prepared, no_collection
from broadcaster.state.journal import JournaledState

BASELINE = 30.0  # today's default WINDOW_SECONDS
R2_BASE = "https://pub-0123456789abcdef0123456789abcdef.r2.dev"  # R2_PUBLIC_URL on r2.dev
PREFIX = "live"  # R2_KEY_PREFIX's default
SHORTID = "Xk3jd9aQ2"  # Owncast names segments stream-<shortid>-<n>.ts, a 9-character shortid
T0 = 1_800_000_000.0
OWNCAST_KBPS = 1200  # Owncast's default output (docs/owncast.md, "Variants")
CLEANUP_MARGIN = 60.0  # its default: a removed segment stays a playlist length + this
EC2_EGRESS_PER_GB = 0.09
R2_PER_GB_MONTH = 0.015  # R2 standard storage, per GB-month


def listed(variant: int, n: int, seconds: float) -> ListedSegment:
    key = f"{PREFIX}/{variant}/stream-{SHORTID}-{n}.ts"
    return ListedSegment(f"{R2_BASE}/{key}", seconds, T0 + n * seconds, key=key)


def filled(seconds: float, window: float, variant: int = 0) -> tuple[ManifestGenerator, int]:
    """A generator whose window is full and sliding, and the number of the next segment."""
    gen = ManifestGenerator(math.ceil(seconds), WindowOptions(window, can_block_reload=True))
    count = math.ceil(window / seconds) + 10
    for n in range(count):
        gen.append(listed(variant, n, seconds), T0 + n * seconds)
    rendered = gen.render()
    if gen.media_sequence == 0 or rendered.delta is None:
        raise RuntimeError(f"{window:.0f} s of {seconds:g} s segments: not in the steady state")
    return gen, count


def gzipped(rendered: Rendered) -> int:
    """Makes the gzip copies of a version (full and delta) and their ETags, as the first gzip request
    of each does."""
    size = len(rendered.gzip_body) + len(rendered.gzip_etag)
    if rendered.delta is not None:
        size += len(rendered.delta.gzip_body) + len(rendered.delta.gzip_etag)
    return size


# -- 1 and 2: in this process ------------------------------------------------------------------


STEPS = ("next_disc", "append", "render", "edge", "gzip", "state")


@dataclass
class Case:
    seconds: float
    window: float
    entries: int = 0
    full: int = 0
    full_gz: int = 0
    delta: int = 0
    delta_gz: int = 0
    skipped_entries: int = 0
    state_bytes: int = 0  # one variant's share of state.json (the full snapshot)
    variants: int = 1
    line_bytes: float = 0.0  # a journal line, every variant
    full_bytes: int = 0  # the full snapshot, every variant
    full_ms: float = 0.0  # CPU of one compaction (encode and write), every variant
    threshold: int = 0  # journal bytes between compactions
    bytes_per_segment: float = 0.0  # line + its share of a compaction, every variant
    restore_s: float = 0.0  # cold start: state.json + a full journal + every generator restored
    restore_cpu_s: float = 0.0  # the same in CPU seconds (what other load on the machine does not inflate)
    state_alone_ms: float = 0.0  # a save per variant, timed in a loop of appends and saves only
    journal_lines: int = 0  # lines replayed in that cold start
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per step, per appended segment
    http: dict[str, dict[str, float]] = field(default_factory=dict)  # "full"/"delta" -> figures

    @property
    def cpu_total_ms(self) -> float:
        return sum(self.cpu_ms.values())

    @property
    def cpu_served_ms(self) -> float:
        """Without the bucket's copy: what every service pays (PUBLISH_PLAYLISTS is off by default)."""
        return self.cpu_total_ms - self.cpu_ms["edge"]


def _state_folder() -> str | None:
    """tmpfs when there is one: the bench times CPU, and the state's fsyncs then cost no disk wait."""
    return "/dev/shm" if Path("/dev/shm").is_dir() else None


def _state_of(gen: ManifestGenerator, now: float, variants: int) -> dict[str, Any]:
    """What the publisher saves, reduced to what grows with the window: each variant's generator (the
    same one under every variant's key: the same bytes and work as that many)."""
    return {"variants": {str(v): {"generator": playlist_memory.snapshot(gen, now)} for v in range(variants)}}


def measure_playlist(case: Case, appends: int, variants: int) -> None:
    gen, n = filled(case.seconds, case.window)
    r = gen.render()
    assert r.delta is not None
    case.entries = gen.segment_count
    case.variants = variants
    case.full, case.full_gz = len(r.body), len(r.gzip_body)
    case.delta, case.delta_gz = len(r.delta.body), len(r.delta.gzip_body)
    skip = re.search(rb"SKIPPED-SEGMENTS=(\d+)", r.delta.body)
    case.skipped_entries = int(skip.group(1)) if skip else 0
    spent = dict.fromkeys(STEPS, 0.0)
    clock = time.process_time
    lines = 0
    with tempfile.TemporaryDirectory(dir=_state_folder()) as folder:
        state = JournaledState(Path(folder))
        state.write_prepared(state.prepare(_state_of(gen, T0 + n * case.seconds, variants)))  # the first: full
        for k in range(appends + 2):  # the first two warm up
            now = T0 + n * case.seconds
            t0 = clock()
            gen.next_discontinuity(False)
            t1 = clock()
            gen.append(listed(0, n, case.seconds), now)
            t2 = clock()
            rendered: Rendered = gen.render()
            t3 = clock()
            gen.render_edge().body  # noqa: B018 (what the mirror uploads)
            t4 = clock()
            gzipped(rendered)
            t5 = clock()
            prepared = state.prepare(_state_of(gen, now, variants))
            state.write_prepared(prepared)
            t6 = clock()
            n += 1
            if rendered.delta is None:
                raise RuntimeError("no delta update in the steady state")
            if prepared.kind != "line":
                raise RuntimeError("a compaction within the timed appends: raise journal.MIN_COMPACT")
            if k < 2:
                continue
            for step, dt in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, (t6 - t5) / variants),
                                strict=True):
                spent[step] += dt
            case.line_bytes += len(prepared.body) / appends
        # The same saves without the rendering between them: what the state's own work costs, apart
        # from the caches the rendering of a long window empties before each save.
        alone = 0.0
        for _k in range(appends):
            now = T0 + n * case.seconds
            gen.append(listed(0, n, case.seconds), now)
            n += 1
            t0 = clock()
            state.write_prepared(state.prepare(_state_of(gen, now, variants)))
            alone += clock() - t0
        # One compaction, timed: its share per segment is its cost times lines per threshold.
        state.compact_next()
        t0 = clock()
        full: Prepared = state.prepare(_state_of(gen, T0 + n * case.seconds, variants))
        state.write_prepared(full)
        case.full_ms = (clock() - t0) * 1000
        case.full_bytes = len(full.body)
        case.state_bytes = len(full.body) // variants
        case.threshold = state.threshold
        share = case.line_bytes / case.threshold  # compactions per segment
        case.bytes_per_segment = case.line_bytes + case.full_bytes * share
        spent["state"] += case.full_ms / 1000 * share * appends / variants
        case.state_alone_ms = (alone / appends + case.full_ms / 1000 * share) / variants * 1000
        # The worst cold start: a journal filled up to the threshold, then read back.
        while state._journal_size + case.line_bytes < state.threshold:
            now = T0 + n * case.seconds
            gen.append(listed(0, n, case.seconds), now)
            n += 1
            state.write_prepared(state.prepare(_state_of(gen, now, variants)))
            lines += 1
        case.journal_lines = lines
        t0, c0 = time.perf_counter(), time.process_time()
        with no_collection():  # as Snapshots.restore reads and restores
            data = JournaledState(Path(folder)).load()
            assert data is not None
            for v in range(variants):
                back = playlist_memory.restore(data["variants"][str(v)]["generator"], now,
                                               WindowOptions(case.window, can_block_reload=True))
                assert back.segment_count == gen.segment_count
        case.restore_s = time.perf_counter() - t0
        case.restore_cpu_s = time.process_time() - c0
    case.cpu_ms = {step: total / appends * 1000 for step, total in spent.items()}


# -- 3: the real app in a child process, driven by wrk -------------------------------------------


def _serve(seconds: float, window: float, variants: int, port: int) -> None:
    """Process target: the service's public app over generators with the window filled."""
    import logging

    from aiohttp import web

    pin(SERVER_CPU)
    logging.disable(logging.CRITICAL)
    gens = [filled(seconds, window, v)[0] for v in range(variants)]
    for gen in gens:  # made once per version in the service too, before the crowd asks
        gzipped(gen.render())
    app = playlist_app(lambda variant: gens[variant].render() if 0 <= variant < len(gens) else None,
                       target=math.ceil(seconds))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, handle_signals=True,
                handler_cancellation=True)


_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def wrk(port: int, path: str, connections: int, duration: float) -> tuple[int, float, float]:
    """(requests, seconds, bytes read) of one wrk run with Accept-Encoding: gzip."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "-H", "Accept-Encoding: gzip",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True, preexec_fn=lambda: pin(WRK_CPU),
    ).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m), ([\d.]+)([KMGT]?B) read", out)
    if m is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    if "Non-2xx" in out:
        raise RuntimeError(f"the server answered errors:\n{out}")
    took = float(m.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    return int(m.group(1)), took, float(m.group(4)) * _UNITS[m.group(5)]


def run_http(pid: int, port: int, path: str, connections: int, duration: float) -> dict[str, float]:
    cpu = cpu_seconds(pid)
    requests, took, read = wrk(port, path, connections, duration)
    spent = cpu_seconds(pid) - cpu
    n = max(requests, 1)
    return {"rps": requests / took, "mb_s": read / took / 1e6, "cpu_us": spent / n * 1e6,
            "busy": spent / took,
            "bytes_per_response": read / n}


PATHS = {"full": "/live/0/playlist.m3u8", "delta": "/live/0/playlist.m3u8?_HLS_skip=YES"}


def measure_http(cases: list[Case], variants: int, connections: int, duration: float,
                 rounds: int) -> dict[str, list[float]]:
    """Every window of one segment length, each in a server of its own, all started at once. Each
    round runs the baseline then every other window; the baseline once more at the end. Each figure is
    the median of its runs (the baseline's of rounds + 1). Returns every run's req/s per case, to show
    the spread."""
    ctx = multiprocessing.get_context("spawn")
    procs: dict[float, tuple[Any, int]] = {}
    runs: dict[float, dict[str, list[dict[str, float]]]] = {c.window: {k: [] for k in PATHS} for c in cases}
    base = next(c for c in cases if c.window == BASELINE)
    try:
        for case in cases:
            port = free_port()
            proc = ctx.Process(target=_serve, args=(case.seconds, case.window, variants, port), daemon=True)
            proc.start()
            procs[case.window] = (proc, port)
        for proc, port in procs.values():
            wait_listening(port, timeout=120, alive=proc.is_alive)
        for proc, port in procs.values():  # warm-up
            for path in PATHS.values():
                wrk(port, path, connections, 1)
        order = [base, *(c for c in cases if c is not base)] * rounds + [base]
        for case in order:
            proc, port = procs[case.window]
            for kind, path in PATHS.items():
                runs[case.window][kind].append(run_http(proc.pid, port, path, connections, duration))
    finally:
        for proc, _port in procs.values():
            proc.terminate()
            proc.join(5)
    for case in cases:
        case.http = {kind: {k: statistics.median(r[k] for r in each) for k in each[0]}
                     for kind, each in runs[case.window].items()}
    return {f"{window:g} {kind}": [r["rps"] for r in each]
            for window, by in runs.items() for kind, each in by.items()}


# -- printing ------------------------------------------------------------------------------------


def window_name(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def sig(x: float, digits: int = 3) -> str:
    """`digits` significant digits, without an exponent."""
    if x == 0:
        return "0"
    return f"{x:,.{max(0, digits - 1 - math.floor(math.log10(abs(x))))}f}"


def kb(n: float) -> str:
    return f"{n / 1000:,.1f}"


def ratio(value: float, base: float) -> str:
    return f"x{value / base:,.1f}" if base else "-"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(cases: list[Case], args: argparse.Namespace, kbps: list[int],
           spread: dict[float, dict[str, list[float]]]) -> str:
    base = {c.seconds: c for c in cases if c.window == BASELINE}
    out: list[str] = []
    out.append("## 1. Playlist bytes per reload, one variant (kB = 1000 B; ratio vs the 30 s window)\n")
    rows = []
    for c in cases:
        b = base[c.seconds]
        rows.append([f"{c.seconds:g} s", window_name(c.window), f"{c.entries:,}", kb(c.full), kb(c.full_gz),
                     ratio(c.full_gz, b.full_gz), f"{c.full / c.full_gz:.1f}", kb(c.delta), kb(c.delta_gz),
                     ratio(c.delta_gz, b.delta_gz), f"{c.skipped_entries:,}"])
    out.append(table(["seg", "window", "entries", "full kB", "full gz kB", "gz vs 30 s", "gz factor",
                      "delta kB", "delta gz kB", "delta gz vs 30 s", "skipped"], rows))

    out.append(f"\n## 2. Service CPU per new segment, per variant (ms, mean of {args.appends} appends; "
               f"% core = total x {args.variants} variants / segment length)\n")
    rows = []
    for c in cases:
        b = base[c.seconds]
        core = c.cpu_total_ms * args.variants / c.seconds / 10
        rows.append([f"{c.seconds:g} s", window_name(c.window), *(f"{c.cpu_ms[s]:.3f}" for s in STEPS),
                     f"{c.cpu_total_ms:.3f}", ratio(c.cpu_total_ms, b.cpu_total_ms), f"{core:.2f} %",
                     f"{c.cpu_served_ms:.3f}", f"x{c.cpu_served_ms / b.cpu_served_ms:.2f}", kb(c.state_bytes)])
    out.append(table(["seg", "window", *STEPS, "total", "vs 30 s", "% core", "no edge", "vs 30 s",
                      "state kB/variant"], rows))
    out.append("\nnext_disc: the publisher's next_discontinuity (a sum over the window); "
               "render: full (in parts) + delta text; edge: render_edge's whole body (bucket copy, "
               "PUBLISH_PLAYLISTS only); gzip: full + delta, with their ETags; no edge: the total without it; "
               "state: a save, per variant: the journal line encoded and written (fdatasync's wait not "
               "counted), plus its share of a compaction (table 6); state kB/variant: the full snapshot.")
    out.append(f"\n## 6. STATE_DIR per segment ({args.variants} variants in one state) and a cold start\n")
    rows = []
    for c in cases:
        b = base[c.seconds]
        state_ms = c.cpu_ms["state"]
        rows.append([f"{c.seconds:g} s", window_name(c.window), f"{c.line_bytes:,.0f}",
                     f"{c.bytes_per_segment:,.0f}", ratio(c.bytes_per_segment, b.bytes_per_segment),
                     f"{state_ms:.3f}", ratio(state_ms, b.cpu_ms["state"]), f"{c.state_alone_ms:.3f}",
                     ratio(c.state_alone_ms, b.state_alone_ms), kb(c.full_bytes),
                     f"{c.full_ms:,.1f}", kb(c.threshold), f"{c.bytes_per_segment / c.seconds / 1000:,.2f}",
                     f"{c.journal_lines:,}", f"{c.restore_cpu_s:.3f}", f"{c.restore_s:.3f}"])
    out.append(table(["seg", "window", "line B", "B/segment", "vs 30 s", "state CPU ms/variant", "vs 30 s",
                      "alone ms/variant", "vs 30 s", "full kB", "full CPU ms", "threshold kB", "kB/s written", "lines replayed",
                      "cold start CPU s", "cold start wall s"], rows))
    out.append("\nstate CPU: as in table 2 (each save right after that version's rendering and gzip); alone: "
               "the same saves in a loop of appends and saves only, the state's own work without the caches "
               "a long window's rendering empties. "
               "B/segment: the line plus its share of the next compaction (full x line / threshold). "
               "cold start: state.json and a journal filled to its threshold read back, every variant's "
               "generator restored: the process's CPU seconds, and the wall clock (which other load on the machine "
               "stretches).")

    if not spread:
        return "\n".join(out)
    out.append(f"\n## 3. Reloads over the real app (create_app), wrk -t1 -c{args.connections} "
               f"{args.duration:g} s, Accept-Encoding: gzip, server pinned to one CPU; median of "
               f"{args.rounds} rounds\n")
    rows = []
    for c in cases:
        b = base[c.seconds]
        cells = [f"{c.seconds:g} s", window_name(c.window)]
        for kind in PATHS:
            h, bh = c.http[kind], b.http[kind]
            cells += [f"{h['rps']:,.0f}", ratio(h["rps"], bh["rps"]), f"{h['mb_s']:,.1f}",
                      f"{h['cpu_us']:,.0f}", ratio(h["cpu_us"], bh["cpu_us"]), f"{h['busy'] * 100:.0f} %"]
        rows.append(cells)
    per_kind = ["req/s", "vs 30 s", "MB/s", "CPU us/req", "vs 30 s", "busy"]
    out.append(table(["seg", "window", *(f"{kind} {h}" if i in (0, 2, 3) else h
                                         for kind in PATHS for i, h in enumerate(per_kind))], rows))
    out.append("\nbusy: the server's CPU seconds per second of the run; below about 90 % the server was not "
               "what limited req/s (wrk, or other load on this machine was), so read CPU us/req first.")
    for seconds, by in spread.items():
        out.append(f"\nreq/s of every run, {seconds:g} s segments (in the order run; the 30 s window first "
                   "in each round and once more at the end): "
                   + "; ".join(f"{name}: " + " ".join(f"{r:,.0f}" for r in rps) for name, rps in by.items()))
    total_kbps = sum(kbps)
    per_second = total_kbps * 1000 / 8
    out.append(f"\n## 4. R2 storage held by the window: {len(kbps)} variant(s) at "
               f"{' + '.join(str(k) for k in kbps)} kbps = {total_kbps} kbps "
               f"({'Owncast default output, docs/owncast.md' if args.kbps is None else '--kbps'}); "
               f"{per_second * 3600 / 1e9:.2f} GB per hour of window\n")
    rows = []
    for window in args.windows:
        in_window = window * per_second
        held = (2 * window + CLEANUP_MARGIN) * per_second
        rows.append([window_name(window), sig(in_window / 1e9), ratio(in_window, BASELINE * per_second),
                     sig(held / 1e9), sig(held / 1e9 * R2_PER_GB_MONTH)])
    out.append(table(["window", "in window GB", "vs 30 s", "held (2W + 60 s) GB", "$/month at $0.015/GB"],
                     rows))
    out.append("\n(The same for either segment length: storage follows seconds of stream, not segments.)")

    out.append(f"\n## 5. Playlist egress per viewer-hour, one reload per segment (blocking reload), "
               f"EC2 ${EC2_EGRESS_PER_GB}/GB, bodies only\n")
    rows = []
    for c in cases:
        reloads = 3600 / c.seconds
        gb = {k: v * reloads / 1e9
              for k, v in (("full", c.full), ("full_gz", c.full_gz), ("delta_gz", c.delta_gz))}
        rows.append([f"{c.seconds:g} s", window_name(c.window), f"{reloads:,.0f}",
                     *(sig(gb[k]) for k in ("full", "full_gz", "delta_gz")),
                     *(sig(gb[k] * EC2_EGRESS_PER_GB) for k in ("full", "full_gz", "delta_gz")),
                     f"x{c.full_gz / c.delta_gz:.1f}"])
    out.append(table(["seg", "window", "reloads/h", "full GB/h", "full gz GB/h", "delta gz GB/h",
                      "$/h full", "$/h full gz", "$/h delta gz", "no-delta / delta"], rows))
    headers = [h["bytes_per_response"] - body for c in cases
               for h, body in ((c.http["full"], c.full_gz), (c.http["delta"], c.delta_gz))]
    out.append(f"\nHeaders add about {min(headers):,.0f}-{max(headers):,.0f} B per response "
               f"(wrk's bytes per response minus the gzipped body).")
    return "\n".join(out)


def numbers(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=numbers, default=[30, 300, 900, 3600, 14400],
                        help="window lengths in seconds (30 is the baseline, always measured)")
    parser.add_argument("--segments", type=numbers, default=[1, 3], help="segment lengths in seconds")
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--kbps", type=lambda t: [int(x) for x in numbers(t)], default=None,
                        help="each variant's bitrate (default: Owncast's default output, 1200, for each)")
    parser.add_argument("--appends", type=int, default=50, help="appends timed per case (CPU per segment)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="wrk rounds over every window")
    parser.add_argument("--quick", action="store_true", help="2 s wrk runs, 20 appends")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--no-http", action="store_true", help="skip 3 and 5 (wrk over the real app)")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.no_http:
        sys.exit("bench/rewind_cost.py needs wrk: apt-get install wrk")
    if args.quick:
        args.duration, args.appends = 2.0, 20
    args.windows = sorted(set(args.windows) | {BASELINE})
    kbps = args.kbps if args.kbps is not None else [OWNCAST_KBPS] * args.variants
    if len(kbps) != args.variants:
        sys.exit(f"--kbps gives {len(kbps)} bitrates for {args.variants} variants")

    cases = [Case(s, w) for s in args.segments for w in args.windows]
    started = time.monotonic()
    for c in cases:
        print(f"playlist and CPU per segment: {c.seconds:g} s segments, {window_name(c.window)} window",
              file=sys.stderr, flush=True)
        measure_playlist(c, args.appends, args.variants)
    spread: dict[float, dict[str, list[float]]] = {}
    for seconds in [] if args.no_http else args.segments:
        print(f"reloads over HTTP: {seconds:g} s segments", file=sys.stderr, flush=True)
        spread[seconds] = measure_http([c for c in cases if c.seconds == seconds], args.variants,
                                       args.connections, args.duration, args.rounds)
    print(f"# Rewind window cost: {args.variants} variant(s), segments {args.segments} s, windows "
          f"{[window_name(w) for w in args.windows]} ({time.monotonic() - started:.0f} s to measure)\n")
    print(report(cases, args, kbps, spread))
    if args.json:
        print("\n```json")
        print(json.dumps({"variants": args.variants, "kbps": kbps, "cases": [asdict(c) for c in cases],
                          "rps_of_every_run": {str(k): v for k, v in spread.items()}}, indent=1))
        print("```")


if __name__ == "__main__":
    main()
