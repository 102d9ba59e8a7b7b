"""CPU instructions per playlist request, a private stream's against a public one: counted, not timed.

    python -m bench.private_cost [--requests 2000]

bench/serve_cost.py's way (aiohttp's real request handler fed keep-alive GETs through an in-memory
transport under callgrind; runs of N and 2N requests subtracted), with the same playlist and app, side by
side in one run: public (no gate); private, the viewer token in the query (`access=`, what a player
without headers sends); the same with an invite's token judged again on every request (`judged`: what
a token's first request costs, and each after the invites file changed: a token let in is let in again
by its bytes until it ends or the file changes); private, the token as `Authorization: Bearer` (its head
80-odd bytes longer than the others); and public again with a field as long as that one (`long`: what the
head's length alone costs). All of them are answered before aiohttp (http/quick.py). The goal: a private
request costs at most 1.1x a public one once its token is known. Needs valgrind
(apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from bench.rig import WARM_UP, counted, feed, live_generator, playlist_app

GOAL = 1.1
KINDS = ("public", "query", "judged", "bearer", "long")
SECRET = "bench-secret-" * 4
HOST = b"Host: 127.0.0.1:8080\r\n"


def _app(kind: str, work: Path) -> tuple[web.Application, str]:
    """The public app over live_generator's playlist, with the gate but for `public` (its invites file in
    `work`); and a token."""
    from broadcaster.access.grants import Gatekeeper, Keys
    from broadcaster.access.invites import Invite, InvitesFile, write_invites
    from broadcaster.access.tokens import PASSPHRASE, ViewerTokens
    from broadcaster.http import PlaylistOptions
    from broadcaster.http.gate import Gate

    gen = live_generator()
    options = PlaylistOptions()
    until = int(time.time()) + 3600
    if kind not in ("public", "long"):
        invites = work / "invites.json"
        write_invites(invites, {"bench": Invite("bench", until)})
        keeper = Gatekeeper(Keys(SECRET, "pw"), InvitesFile(invites))
        # judged: a clock an hour on at each reading, so no token is let in again by its bytes.
        hours = itertools.count(0.0, 3600.0).__next__
        options = PlaylistOptions(gate=Gate(keeper, clock=hours) if kind == "judged" else Gate(keeper))
    token = ViewerTokens(SECRET).mint("bench" if kind == "judged" else PASSPHRASE, until)
    return playlist_app(lambda variant: gen.render() if variant == 0 else None, playlist_options=options), token


async def _drive(kind: str, requests: int) -> None:
    import logging

    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="bench-private-cost-") as work:
        app, token = _app(kind, Path(work))
        await _requests(app, kind, token, requests)


async def _requests(app: web.Application, kind: str, token: str, requests: int) -> None:
    if kind in ("query", "judged"):
        request = f"GET /live/playlist.m3u8?access={token} HTTP/1.1\r\n".encode() + HOST + b"\r\n"
    elif kind in ("bearer", "long"):
        name = "Authorization" if kind == "bearer" else "X-Other-Names"  # as long
        request = (b"GET /live/playlist.m3u8 HTTP/1.1\r\n" + HOST
                   + f"{name}: Bearer {token}\r\n".encode() + b"\r\n")
    else:
        request = b"GET /live/playlist.m3u8 HTTP/1.1\r\n" + HOST + b"\r\n"
    await feed(app, kind, [request], WARM_UP + requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="N: runs of N and 2N requests are counted")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_drive(args.child[0], int(args.child[1])))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench/private_cost.py needs valgrind: apt-get install valgrind")
    n = args.requests
    cost = counted("bench.private_cost", KINDS, n)
    print(f"instructions per media playlist request (callgrind, {n} requests: runs of {n} and {2 * n} subtracted)")
    for kind, value in cost.items():
        print(f"  {kind:>8}: {value:9,.0f}")
    ratios = {kind: cost[kind] / cost["public"] for kind in KINDS[1:]}
    worst = max(ratios["query"], ratios["bearer"])
    print(f"  private/public: query {ratios['query']:.3f}, bearer {ratios['bearer']:.3f} "
          f"(goal: <= {GOAL}: {'met' if worst <= GOAL else 'NOT met'}); a token's first request "
          f"(judged): {ratios['judged']:.3f}; a public request with a field as long as Bearer's: "
          f"{ratios['long']:.3f}")

if __name__ == "__main__":
    main()
