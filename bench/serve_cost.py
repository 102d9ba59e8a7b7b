"""CPU instructions per playlist request: our server against the trivial handler, counted, not timed.

    python -m bench.serve_cost [--requests 2000]

bench/serve.py's requests/s scatter by a fifth between rounds on this VM, with the same code. This
counts instead: it feeds keep-alive GET requests through aiohttp's real request handler (the
protocol `AppRunner.server()` makes, routing, our handlers, response writing) into an in-memory
transport, under valgrind's callgrind, which counts the instructions executed. A run of N requests
and one of 2N, minus each other, give the cost of N requests without start-up. The count repeats
to within about 0.3 % (PYTHONHASHSEED=0), so one run settles a change of a few per cent.

The apps and the request are bench/serve.py's (wrk sends no Accept-Encoding). Left out, the same for
both: the kernel's side of socket I/O, about a quarter of the server's CPU under wrk. So on a quiet,
CPU-bound machine serve.py's ratio would lie between this ratio baseline/ours and 1.
Needs valgrind (apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# What wrk sends in bench/serve.py (no Accept-Encoding: both apps send the plain playlist).
REQUEST = b"GET /live/playlist.m3u8 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
WARM_UP = 200
REPO = Path(__file__).resolve().parent.parent  # the child runs as `python -m bench.serve_cost` here


class _Transport(asyncio.Transport):
    """Keeps what aiohttp writes (a small response is one write: head and body together)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.last = b""
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes += 1
        self.last = data  # aiohttp hands over bytes it does not touch again: no copy, no cost

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def _drive(kind: str, requests: int) -> None:
    """One request at a time on one keep-alive connection, as a player sends them. What this loop
    itself costs is counted for both apps alike; it is kept to a few cheap operations."""
    import logging

    from aiohttp import web

    from bench import serve

    logging.disable(logging.CRITICAL)
    app = serve._playlist_app() if kind == "ours" else serve._baseline_app()
    runner = web.AppRunner(app, access_log=None)  # type: ignore[arg-type]
    await runner.setup()
    assert runner.server is not None
    protocol = runner.server()
    transport = _Transport()
    protocol.connection_made(transport)
    for _ in range(WARM_UP + requests):
        written = transport.writes
        protocol.data_received(REQUEST)
        while transport.writes == written:
            await asyncio.sleep(0)
        if not transport.last.startswith(b"HTTP/1.1 200 "):
            sys.exit(f"{kind}: unexpected response {transport.last[:200]!r}")
    head, _, body = transport.last.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if transport.writes != WARM_UP + requests or length is None or len(body) != int(length.group(1)):
        sys.exit(f"{kind}: a response was not written whole in one write: {transport.last[:300]!r}")
    await runner.cleanup()


def instructions(module: str, kind: str, *child_args: str) -> int:
    """Instructions `python -m <module> --child <kind> <child_args>` executes under callgrind (the
    benches that count rather than time requests: this one and bench/heartbeat.py)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", module, "--child", kind, *child_args],
        capture_output=True, text=True, env=env, check=False, cwd=REPO,  # its stderr is reported below
    )
    if out.returncode != 0:
        sys.exit(f"{module}: the {kind} run failed:\n{out.stderr[-2000:]}")
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        sys.exit(f"{module}: no instruction count from valgrind:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="N: runs of N and 2N requests are counted")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_drive(args.child[0], int(args.child[1])))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench/serve_cost.py needs valgrind: apt-get install valgrind")
    n = args.requests
    jobs = [(kind, count) for kind in ("baseline", "ours") for count in (n, 2 * n)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: instructions("bench.serve_cost", job[0], str(job[1])), jobs), strict=True))
    per_request = {kind: (counts[(kind, 2 * n)] - counts[(kind, n)]) / n for kind in ("baseline", "ours")}
    print(f"instructions per playlist request (callgrind, {n} requests: runs of {n} and {2 * n} subtracted)")
    for kind, cost in per_request.items():
        print(f"  {kind:>8}: {cost:9,.0f}")
    print(f"  ours adds {per_request['ours'] - per_request['baseline']:,.0f} "
          f"({per_request['ours'] / per_request['baseline'] - 1:+.1%})")
    print(f"  ratio baseline/ours: {per_request['baseline'] / per_request['ours']:.3f} "
          f"(bench/serve.py's goal: >= 0.9 of the baseline's requests/s)")


if __name__ == "__main__":
    main()
