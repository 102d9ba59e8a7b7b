"""CPU instructions per playlist request: our server against the trivial handler, counted, not timed.

    python -m bench.serve_cost [--requests 2000]

bench/serve.py's requests/s scatter by a fifth between rounds on this VM, with the same code. This
counts instead: it feeds keep-alive GET requests through the protocol a connection gets (for ours, as the
service listens: the connection gate, which answers a plain playlist GET itself, in front of aiohttp's
request handler; for the baseline aiohttp's alone), routing, handlers, response writing, into an
in-memory transport, under valgrind's callgrind, which counts the instructions executed. A run of N
requests and one of 2N, minus each other, give the cost of N requests without start-up. The count
repeats to within about 0.3 % (PYTHONHASHSEED=0), so one run settles a change of a few per cent.

The apps and the request are bench/serve.py's (wrk sends no Accept-Encoding). "via_aiohttp" is ours with
the same request and an If-None-Match that matches nothing (the same 200, from the route in aiohttp):
what a request the gate does not answer costs. "steering" is a steering player's manifest reload with the
same Host, which the gate answers too (http/steering_route.py); its goal is to cost no more than a plain
playlist request ("ours"). Left out, the same for both: the kernel's
side of socket I/O, about a quarter of the server's CPU under wrk. So on a quiet, CPU-bound machine
serve.py's ratio would lie between this ratio baseline/ours and 1.
Needs valgrind (apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys

from bench.rig import WARM_UP, bare_app, counted, feed, live_app, steered_app

# What wrk sends in bench/serve.py (no Accept-Encoding: both apps send the plain playlist).
REQUEST = b"GET /live/playlist.m3u8 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
# The same answer from the route in aiohttp (a tag that matches nothing keeps it from the gate).
VIA_AIOHTTP = b'GET /live/playlist.m3u8 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nIf-None-Match: "other"\r\n\r\n'
# A steering player's manifest reload, as hls.js sends it (it must cost no more than a plain playlist
# request), to the same app with content steering on.
STEERING = (b"GET /live/steering.json?_HLS_pathway=bucket&_HLS_throughput=4200000 HTTP/1.1\r\n"
            b"Host: 127.0.0.1:8080\r\n\r\n")


async def _drive(kind: str, requests: int) -> None:
    """One request at a time on one keep-alive connection, as a player sends them."""
    import logging

    logging.disable(logging.CRITICAL)
    app = live_app() if kind in ("ours", "via_aiohttp") else steered_app() if kind == "steering" else bare_app()
    request = {"steering": STEERING, "via_aiohttp": VIA_AIOHTTP}.get(kind, REQUEST)
    transport = await feed(app, kind, [request], WARM_UP + requests)
    head, _, body = transport.last.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if transport.writes != WARM_UP + requests or length is None or len(body) != int(length.group(1)):
        sys.exit(f"{kind}: a response was not written whole in one write: {transport.last[:300]!r}")


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
    per_request = counted("bench.serve_cost", ("baseline", "ours", "via_aiohttp", "steering"), n)
    print(f"instructions per playlist request (callgrind, {n} requests: runs of {n} and {2 * n} subtracted)")
    for kind, cost in per_request.items():
        print(f"  {kind:>11}: {cost:9,.0f}")
    print(f"  ours adds {per_request['ours'] - per_request['baseline']:,.0f} "
          f"({per_request['ours'] / per_request['baseline'] - 1:+.1%})")
    print(f"  ratio baseline/ours: {per_request['baseline'] / per_request['ours']:.3f} "
          f"(bench/serve.py's goal: >= 1.2 x the baseline's requests/s)")
    steering = per_request["steering"] / per_request["ours"]
    print(f"  a steering manifest request / a plain playlist request: {steering:.3f} "
          f"(goal: <= 1: {'met' if steering <= 1 else 'NOT met'}); "
          f"/ a playlist request via aiohttp: {per_request['steering'] / per_request['via_aiohttp']:.3f}")


if __name__ == "__main__":
    main()
