"""Playlist serving throughput: our server against a trivial aiohttp handler, same machine, same run.

    python -m bench.serve [--connections 256] [--duration 10] [--rounds 3]

Both servers run in a child process each (one event loop, as in production); `wrk` (Debian's
package) drives them with keep-alive connections, alternating A/B over several rounds so a noisy
neighbour hits both; both servers are pinned to one CPU and wrk to the other. Ours serves a real 10-segment live playlist from a ManifestGenerator through
the full app (routing, CORS headers, ETag, gzip choice, metrics); the baseline returns the same bytes from a bare handler.
Reported: requests/s, p99 latency and the server process's CPU time per request of each run; the
ratio of the median requests/s (goal: ours >= 0.9 of the baseline), and beside it the CPU-per-request
ratio and each round's ratio, to show how much of a figure is the machine's noise.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import shutil
import statistics
import subprocess
import sys

from bench.rig import SERVER_CPU, WRK_CPU, bare_app, cpu_seconds, free_port, live_app, pin, wait_listening


def _serve(kind: str, port: int) -> None:
    import logging

    from aiohttp import web

    pin(SERVER_CPU)
    logging.disable(logging.CRITICAL)
    app = live_app() if kind == "ours" else bare_app()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, handle_signals=True)


def _wrk(port: int, connections: int, duration: int) -> tuple[float, float, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}/live/playlist.m3u8"],
        capture_output=True, text=True, check=True, preexec_fn=lambda: pin(WRK_CPU),
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert m is not None, out
    p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    if "Non-2xx" in out or "Socket errors" in out:
        print("  wrk reported errors:", " ".join(line.strip() for line in out.splitlines() if "error" in line.lower() or "Non-2xx" in line))
    return rps, p99, requests


def _run(pid: int, port: int, connections: int, duration: int) -> tuple[float, float, float]:
    """(requests/s, p99 ms, server CPU microseconds per request)."""
    cpu = cpu_seconds(pid)
    rps, p99, requests = _wrk(port, connections, duration)
    return rps, p99, (cpu_seconds(pid) - cpu) / max(requests, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/serve.py needs wrk: apt-get install wrk")
    ctx = multiprocessing.get_context("spawn")
    results: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "ours": []}
    procs = {}
    ports = {}
    for kind in results:
        ports[kind] = free_port()
        procs[kind] = ctx.Process(target=_serve, args=(kind, ports[kind]), daemon=True)
        procs[kind].start()
        wait_listening(ports[kind], alive=procs[kind].is_alive)
    try:
        for kind in results:  # warm-up
            _wrk(ports[kind], args.connections, 2)
        for _ in range(args.rounds):
            for kind in results:
                pid = procs[kind].pid
                assert pid is not None
                results[kind].append(_run(pid, ports[kind], args.connections, args.duration))
    finally:
        for p in procs.values():
            p.terminate()
            p.join(5)
    print(f"playlist serving, {args.connections} keep-alive connections, wrk -t1, {args.rounds} x {args.duration}s each, alternating")
    for kind, runs in results.items():
        print(f"  {kind:>8}: " + "  ".join(f"{r:6.0f} req/s p99 {p:5.1f} ms {c:5.0f} us" for r, p, c in runs))
    base = statistics.median(r for r, _, _ in results["baseline"])
    ours = statistics.median(r for r, _, _ in results["ours"])
    base_p99 = statistics.median(p for _, p, _ in results["baseline"])
    ours_p99 = statistics.median(p for _, p, _ in results["ours"])
    base_cpu = statistics.median(c for _, _, c in results["baseline"])
    ours_cpu = statistics.median(c for _, _, c in results["ours"])
    ratios = [_ratio(o[0], b[0]) for b, o in zip(results["baseline"], results["ours"], strict=True)]
    print(f"  median: baseline {base:.0f} req/s (p99 {base_p99:.2f} ms), ours {ours:.0f} req/s (p99 {ours_p99:.2f} ms)")
    print(f"  server CPU per request, median: baseline {base_cpu:.0f} us, ours {ours_cpu:.0f} us "
          f"(baseline/ours {_shown(_ratio(base_cpu, ours_cpu))})")
    # Shown for the spread: one run's speed swings by a third on a shared VM, even between two
    # back-to-back runs, so pairs are not steadier than medians.
    print("  ratio per round (ours / the baseline run just before it): " + "  ".join(_shown(r) for r in ratios))
    ratio = _ratio(ours, base)
    met = ratio is not None and ratio >= 0.9
    print(f"  ratio ours/baseline (medians): {_shown(ratio)} (goal >= 0.9: {'met' if met else 'NOT met'})")
    if ratio is None or not ours:
        # A server that answered nothing in a whole run (a machine too loaded to measure): no ratio.
        print("  a run got no answer at all: the machine was too busy to measure; run again on a quiet one")
    if not met:
        sys.exit(1)


def _ratio(a: float, b: float) -> float | None:
    """a / b, or None when b is 0 (a run in which nothing was answered or counted)."""
    return a / b if b else None


def _shown(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}"


if __name__ == "__main__":
    main()
