"""CPU instructions per playlist request, a private stream's against a public one: counted, not timed.

    python -m bench.private_cost [--requests 2000]

bench/serve_cost.py's way (aiohttp's real request handler fed keep-alive GETs through an in-memory
transport under callgrind; runs of N and 2N requests subtracted), with the same playlist and app, three
ways: public (no gate); private, the viewer token in the query (`access=`, what a player without
headers sends: the gate checks it, takes it out of the URL the playlist route sees); private, the token
as `Authorization: Bearer`. The token is one the gate has seen before, as a player's every reload is.
The goal: a private request costs at most 1.1x a public one. Needs valgrind (apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from bench.rig import WARM_UP, counted, feed, live_generator, playlist_app

GOAL = 1.1
SECRET = "bench-secret-" * 4
HOST = b"Host: 127.0.0.1:8080\r\n"


def _app(private: bool) -> tuple[web.Application, str]:
    """The public app over live_generator's playlist, with the gate when `private`; and a token."""
    from broadcaster.access.grants import Gatekeeper, Keys
    from broadcaster.access.invites import InvitesFile
    from broadcaster.access.tokens import PASSPHRASE, ViewerTokens
    from broadcaster.http import PlaylistOptions
    from broadcaster.http.gate import Gate

    gen = live_generator()
    options = PlaylistOptions()
    if private:
        invites = InvitesFile(Path(tempfile.gettempdir()) / "bench-private-cost-invites.json")
        options = PlaylistOptions(gate=Gate(Gatekeeper(Keys(SECRET, "pw"), invites)))
    token = ViewerTokens(SECRET).mint(PASSPHRASE, int(time.time()) + 3600)
    return playlist_app(lambda variant: gen.render() if variant == 0 else None, playlist_options=options), token


async def _drive(kind: str, requests: int) -> None:
    import logging

    logging.disable(logging.CRITICAL)
    app, token = _app(kind != "public")
    if kind == "query":
        request = f"GET /live/playlist.m3u8?access={token} HTTP/1.1\r\n".encode() + HOST + b"\r\n"
    elif kind == "bearer":
        request = (b"GET /live/playlist.m3u8 HTTP/1.1\r\n" + HOST
                   + f"Authorization: Bearer {token}\r\n".encode() + b"\r\n")
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
    cost = counted("bench.private_cost", ("public", "query", "bearer"), n)
    print(f"instructions per media playlist request (callgrind, {n} requests: runs of {n} and {2 * n} subtracted)")
    for kind, value in cost.items():
        print(f"  {kind:>8}: {value:9,.0f}")
    worst = max(cost["query"], cost["bearer"]) / cost["public"]
    print(f"  private/public: query {cost['query'] / cost['public']:.3f}, bearer {cost['bearer'] / cost['public']:.3f} "
          f"(goal: <= {GOAL}: {'met' if worst <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
