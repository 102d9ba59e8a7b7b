"""What one playlist request can make the VM send, at the longest rewind window (issue 32, item 3).

    python -m bench.amplification [--seconds 14400] [--requests 300] [--rounds 5]

A window of REWIND_SECONDS of 1 s segments (the real ManifestGenerator, one variant, the URLs a real
bucket gets) in the real app (create_app, the playlist routes as the service runs them), fed keep-alive
requests through aiohttp's own request handler into an in-memory transport (bench/serve_cost.py's way:
no socket, no client in the measurement). For each kind of request: bytes the server wrote per
request (head and body) and CPU per request (process time over --requests requests, the median of
--rounds rounds), with ratios against the canonical gzip request measured in the same run:

- canonical, gzip: what a CDN or the nginx cache asks the origin, and what players ask. A cache holds
  this answer: behind one, the origin sends it about once per version, not per viewer.
- cache-busted, gzip: `?cachebust=<new random>` each time, as Owncast's page and an attacker send; a CDN
  passes every such URL to the origin. Before issue 32 it was answered as the canonical request (the
  canonical row is what it cost then).
- canonical, no gzip: what ffmpeg sends (no Accept-Encoding). Before issue 32: the whole plain playlist
  (the row "whole, no gzip" shows what that cost, rendered here for comparison).
- cache-busted, no gzip: the worst an attacker could ask before.
- blocking, gzip: `?_HLS_msn=<last>`, a player's blocking reload for the newest segment, listed now.
- video.js's order, gzip: `?_HLS_skip=YES&_HLS_msn=<last>`, a valid set of directives in another order:
  answered as its canonical form is (issue 47; a redirect to it before), a delta update here. One more
  URL per number, not one per request.
- behind, gzip: `?_HLS_msn=<last - 2>`, a player slow to ask again: the newest version at once, a 200
  (issue 47; a redirect before). Bounded: two numbers behind the newest (hls.MSN_BEHIND_LIMIT).
- The delivery directives as an attacker varies them (issue 41), a new URL each request: `_HLS_part=<random>`
  (no partial segments are served), `_HLS_msn=<a random number listed long before>`, `_HLS_msn=<last>` with
  leading zeros, `_HLS_skip=v2`, and (issue 50, R1c) percent-encoding of a random choice of the URL's
  characters, in the query (`_HLS_%6dsn=`) or the path (`pl%61ylist.m3u8`), hex digits in either case.
  Before issue 41 (R1c: before issue 50) each was the whole playlist; now a redirect to the canonical URL
  (the exit status says if one costs more than 1 KB). A number listed long before is the exception
  (issue 47: every player gets a 200): the whole newest version, within the client's budget
  (broadcaster/http/late.py), then the redirect. Its row is the mix; the exit status says if the run
  sent more whole playlists for it than the budget allows in the run's time.

CPU figures scatter with the machine's load (2 shared cores); bytes do not.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import re
import secrets
import statistics
import sys
import time
from typing import Any

from bench.rig import MemoryTransport, in_memory, playlist_app

HOST = b"Host: live.example.com\r\n"


class _Collecting(MemoryTransport):
    """Every byte written, counted (a large body may come in more than one write)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.head = b""

    def write(self, data: Any) -> None:
        super().write(data)
        if not self.head:
            self.head = bytes(data[:4096])
        self.sent += len(data)


def _app(seconds: int) -> tuple[Any, Any]:
    from broadcaster.playlist.manifest import ManifestGenerator
    from broadcaster.playlist.options import WindowOptions
    from broadcaster.playlist.segments import ListedSegment

    gen = ManifestGenerator(1, WindowOptions(float(seconds), can_block_reload=True, start_at_edge=True))
    for i in range(seconds):
        gen.append(ListedSegment(f"https://media.example.com/live/0/stream-q1w2e3r4t-{i}.ts", 1.0, 1.8e9 + i,
                                 key=f"live/0/stream-q1w2e3r4t-{i}.ts"), float(i))
    rendered = gen.render()
    return playlist_app(lambda variant: rendered if variant == 0 else None), rendered


async def _measure(protocol: Any, transport: _Collecting, requests: list[bytes]) -> tuple[float, float, int]:
    """(CPU seconds, bytes written, status of the last answer) for `requests`, one at a time on one
    keep-alive connection, as a player (or a CDN's connection to the origin) sends them."""
    status = 0
    sent = transport.sent
    cpu = time.process_time()
    for request in requests:
        before, transport.head = transport.sent, b""
        protocol.data_received(request)
        while True:  # until the whole answer is written (its head says how long it is)
            await asyncio.sleep(0)
            head, _, _ = transport.head.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if length is not None and transport.sent - before >= len(head) + 4 + int(length[1]):
                break
        status = int(transport.head[9:12])
    return time.process_time() - cpu, transport.sent - sent, status


async def _run_all(app: Any, kinds: dict[str, Any], rounds: int) -> dict[str, list[tuple[float, float, int]]]:
    """Every kind's samples per round, and (as "wall") the run's wall-clock seconds."""
    transport = _Collecting()
    started = time.monotonic()
    samples: dict[str, list[tuple[float, float, int]]] = {kind: [] for kind in kinds}
    async with in_memory(app, transport) as protocol:
        for _round in range(rounds):
            for kind, make in kinds.items():  # interleaved: the machine's load falls on every kind alike
                samples[kind].append(await _measure(protocol, transport, make()))
    samples["wall"] = [(time.monotonic() - started, 0.0, 0)]
    return samples


def _request(path: str, gzip: bool) -> bytes:
    accept = b"Accept-Encoding: gzip, deflate, br\r\n" if gzip else b""
    return b"GET " + path.encode() + b" HTTP/1.1\r\n" + HOST + accept + b"\r\n"


def _respelt(text: str, rng: random.Random) -> str:
    """`text` with a random choice of its letters, digits and `_` percent-encoded, hex digits in either
    case: the same URL to the router, another one to a cache (at least one character encoded)."""
    chars = list(text)
    spots = [i for i, c in enumerate(chars) if c.isalnum() or c == "_"]
    for i in rng.sample(spots, rng.randrange(1, len(spots) + 1)):
        code = f"{ord(chars[i]):02x}"
        chars[i] = "%" + "".join(rng.choice((d.lower(), d.upper())) for d in code)
    return "".join(chars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=14_400, help="the window: REWIND_SECONDS of 1 s segments")
    parser.add_argument("--requests", type=int, default=300, help="requests per kind per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the median is reported)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    import logging

    logging.disable(logging.CRITICAL)
    app, rendered = _app(args.seconds)
    path = "/live/0/playlist.m3u8"
    last = rendered.last_sequence

    def busted(gzip: bool) -> list[bytes]:
        return [_request(f"{path}?cachebust={secrets.token_hex(3)}", gzip) for _ in range(args.requests)]

    kinds: dict[str, Any] = {
        "canonical, gzip": lambda: [_request(path, True)] * args.requests,
        "cache-busted, gzip": lambda: busted(True),
        "canonical, no gzip": lambda: [_request(path, False)] * args.requests,
        "cache-busted, no gzip": lambda: busted(False),
        "blocking, gzip": lambda: [_request(f"{path}?_HLS_msn={last}", True)] * args.requests,
        "video.js's order, gzip": lambda: [_request(f"{path}?_HLS_skip=YES&_HLS_msn={last}", True)] * args.requests,
        "behind, gzip": lambda: [_request(f"{path}?_HLS_msn={last - 2}", True)] * args.requests,
    }
    rng = random.Random(41)
    behind = last - 3  # the numbers listed long before: below hls.MSN_BEHIND_LIMIT
    directives: dict[str, Any] = {
        "_HLS_part, gzip": lambda: f"{path}?_HLS_msn={last}&_HLS_part={rng.randrange(10**9)}",
        "_HLS_msn listed, gzip": lambda: f"{path}?_HLS_msn={rng.randrange(behind)}",
        "leading zeros, gzip": lambda: f"{path}?_HLS_msn={'0' * rng.randrange(1, 19 - len(str(last)))}{last}",
        "_HLS_skip=v2, gzip": lambda: f"{path}?_HLS_msn={last}&_HLS_skip=v2",
        "encoded query, gzip": lambda: f"{path}?{_respelt(f'_HLS_msn={last}', rng)}",
        "encoded path, gzip": lambda: _respelt(path, rng),
    }
    for kind, target in directives.items():
        kinds[kind] = functools.partial(
            lambda target: [_request(target(), True) for _ in range(args.requests)], target)
    _ = rendered.gzip_body, rendered.identity  # made once per version, before any request is timed
    results: dict[str, dict[str, float]] = {}
    samples = asyncio.run(_run_all(app, kinds, args.rounds))
    wall = samples.pop("wall")[0][0]
    late_bytes = sum(run[1] for run in samples["_HLS_msn listed, gzip"])
    for kind, runs in samples.items():
        results[kind] = {"status": runs[-1][2], "bytes": runs[-1][1] / args.requests,
                         "cpu_us": statistics.median(r[0] for r in runs) / args.requests * 1e6}
    base = results["canonical, gzip"]
    print(f"# One playlist request at a {args.seconds} s window of 1 s segments "
          f"({len(rendered.body) / 1e6:.2f} MB plain, {len(rendered.gzip_body) / 1e3:.1f} KB gzipped)\n")
    print(f"{args.requests} requests per kind, median CPU of {args.rounds} rounds; ratios against the canonical "
          "gzip request of the same run.\n")
    print("| request | status | bytes out per request | x canonical | CPU us per request | x canonical |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind, r in results.items():
        print(f"| {kind} | {r['status']:.0f} | {r['bytes']:,.0f} | {r['bytes'] / base['bytes']:.3f} | "
              f"{r['cpu_us']:.0f} | {r['cpu_us'] / base['cpu_us']:.2f} |")
    whole = len(rendered.body)
    print(f"| (before issue 32) whole, no gzip | 200 | {whole:,} + head | {whole / base['bytes']:.1f} | | |")
    if args.json:
        print(json.dumps(results, indent=1))
    if results["cache-busted, gzip"]["bytes"] > base["bytes"] or results["canonical, no gzip"]["bytes"] > base["bytes"]:
        sys.exit("a cache-busted or no-gzip request costs more bytes than the canonical answer")
    # The bench's requests come from a loopback peer: a client the service cannot tell apart from others
    # (clients.py), so the shared budget applies.
    from broadcaster.http import late

    whole_gzip = len(rendered.gzip_body) + 1000
    allowed = late.UNKNOWN_SHARE * (late.BURST + late.PER_TARGET_DURATION * wall) * whole_gzip
    allowed += args.rounds * args.requests * 1000
    print(f"\nLate numbers (`_HLS_msn listed`): {late_bytes / 1e6:.2f} MB in {wall:.1f} s for "
          f"{args.rounds * args.requests} requests, about {late_bytes / whole_gzip:.0f} whole answers; the budget "
          f"allows at most {allowed / 1e6:.2f} MB")
    if late_bytes > allowed:
        sys.exit("late numbers cost more than their budget allows")
    costly = [kind for kind in directives if kind != "_HLS_msn listed, gzip"
              and (results[kind]["status"] != 302 or results[kind]["bytes"] > 1000)]
    if costly:
        sys.exit(f"not a small redirect: {', '.join(costly)}")


if __name__ == "__main__":
    main()
