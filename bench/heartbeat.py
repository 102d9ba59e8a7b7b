"""What the viewer count costs the VM: CPU instructions per heartbeat, and per heartbeat carrying a
playback report (issue 42), against per playlist request, and the traffic 1000 viewers add, counted
(callgrind), not timed.

    python -m bench.heartbeat [--requests 2000] [--viewers 1000] [--target-duration 3] [--viewer-timeout 30]

As bench/serve_cost.py: keep-alive requests go through aiohttp's real request handler into an in-memory
transport under valgrind's callgrind; runs of N and 2N requests, subtracted, give the cost of N. Both
kinds of request go to the same app (the service's create_app: playlists, the viewer, the heartbeat
route and a count already holding --viewers pages), one at a time on one connection:

- playlist: `GET /live/playlist.m3u8` (serve_cost.py's playlist);
- heartbeat: `POST /live/watching` with `Hb-Watching: <id>` from --viewers pages in turn, each from its own address
  (CF-Connecting-IP, TRUST_CF_CONNECTING_IP on: the address is hashed on every beat), the count answered
  as JSON (SHOW_VIEWER_COUNT on, the costlier answer);
- report: the same heartbeat with a playback report (`Hb-Report`, a P2P page's, the longer form: 80
  characters) as a viewer's page sends it, every report taken and added up (the service's rule of one report
  per page per half interval is set to 0 here, so none is turned away as too soon: the costliest path;
  the count's clock moves 12 s / --viewers a reading (10 ms at the default 1000), so a page's reports,
  --viewers beats apart, cover the 10 s their counts need: issue 50's bounds pass, none is refused), and
  the answer with the service's clock.

Both carry the same headers, as a browser sends them through Cloudflare's tunnel (about 600 bytes; the
POST also its Content-Length: 0).

Then the traffic: a player reloads its playlist about once a target duration (blocking reload: once a
segment), a page beats once every VIEWER_TIMEOUT / 3; with PUBLISH_PLAYLISTS the playlists come from
the bucket and the heartbeats are all the VM sees of its viewers. Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
from typing import Any

from bench.rig import WARM_UP, counted, feed, live_app

# What reaches the service through the tunnel, the same for both kinds: cloudflared's forwarded headers and
# a browser's own (Chromium 120's, abridged). Only the request line and its handler differ.
_HEADERS = (
    "Host: live.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.0.0 Safari/537.36\r\nAccept: */*\r\nAccept-Language: en-US,en;q=0.9\r\n"
    "Referer: https://live.example.com/\r\nCf-Ray: 8a1b2c3d4e5f6a7b-AMS\r\nCf-Visitor: {{\"scheme\":\"https\"}}\r\n"
    "Cf-Ipcountry: NL\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: {address}\r\n"
    "CF-Connecting-IP: {address}\r\nCdn-Loop: cloudflare\r\n"
)


def _address(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


# A P2P page's report after 10 s of 3 s segments from two sources: what viewer/playback.js sends
# (broadcaster/status/playback.py's FIELDS); the seconds between two such reports of a page, with margin.
REPORT_SECONDS = 12.0
REPORT_VALUES = (842, 10012, 0, 0, 7213, 1, 0, 300, 0, 0, 0, 0, 0, 0, 0, 2, 412, 262144, 1, 1520, 131072,
                 65536, 1, 0, 0)


def _requests(kind: str, viewers: int) -> list[bytes]:
    if kind == "playlist":
        return [("GET /live/playlist.m3u8 HTTP/1.1\r\n" + _HEADERS.format(address=_address(n)) + "\r\n").encode()
                for n in range(viewers)]
    # A POST without a body: browsers send its Content-Length.
    from broadcaster.status.playback import encode

    report = f"Hb-Report: {encode(*REPORT_VALUES)}\r\n" if kind == "report" else ""
    return [("POST /live/watching HTTP/1.1\r\n" + _HEADERS.format(address=_address(n))
             + f"Hb-Watching: {secrets.token_urlsafe(16)}\r\n{report}Content-Length: 0\r\n\r\n").encode()
            for n in range(viewers)]


async def _drive(kind: str, requests: int, viewers: int) -> None:
    import logging

    from broadcaster.http import PlaylistOptions, ViewerOptions, Viewers, create_app
    from broadcaster.http.keys import HEALTH
    from broadcaster.metrics import Metrics
    from broadcaster.service import default_viewer_dir
    from broadcaster.status.audience import Audience
    from broadcaster.status.playback import Playback

    import itertools
    from functools import partial

    logging.disable(logging.CRITICAL)
    playlist_app = live_app()  # its playlist source, the one serve_cost.py measures
    source: Any = playlist_app[HEALTH]  # its Source is the playlists' too
    viewer_dir = default_viewer_dir()
    assert viewer_dir is not None
    step = max(0.01, REPORT_SECONDS / viewers)  # a page's reports cover their counts' time (see above)
    audience = Audience(3600, clock=partial(next, itertools.count(0.0, step)))
    playback = Playback(audience, interval=1200, gap=0)  # every report taken (see above)
    app = create_app(source, source, Metrics(),
                     playlist_options=PlaylistOptions(trust_cf_connecting_ip=True),
                     viewer_options=ViewerOptions(viewer_dir, viewers=Viewers(audience, playback)))
    await feed(app, kind, _requests(kind, viewers), WARM_UP + requests)
    if kind != "playlist" and audience.watching != min(viewers, WARM_UP + requests):
        sys.exit(f"{kind}: {audience.watching} pages counted, {viewers} expected")
    if kind == "report" and playback.reports != WARM_UP + requests:
        sys.exit(f"report: {playback.reports} reports taken, {WARM_UP + requests} sent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="N: runs of N and 2N requests are counted")
    parser.add_argument("--viewers", type=int, default=1000, help="pages counted (and beating in turn)")
    parser.add_argument("--target-duration", type=float, default=3.0, help="s between a player's reloads")
    parser.add_argument("--viewer-timeout", type=float, default=30.0, help="VIEWER_TIMEOUT (beats every third)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "REQUESTS", "VIEWERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_drive(args.child[0], int(args.child[1]), int(args.child[2])))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench/heartbeat.py needs valgrind: apt-get install valgrind")
    n, viewers = args.requests, args.viewers
    cost = counted("bench.heartbeat", ("playlist", "heartbeat", "report"), n, str(viewers))
    print(f"instructions per request (callgrind, runs of {n} and {2 * n} subtracted; {viewers} pages counted)")
    for kind, value in cost.items():
        print(f"  {kind:>9}: {value:9,.0f}")
    print(f"  a heartbeat costs {cost['heartbeat'] / cost['playlist']:.2f} playlist requests, "
          f"one with a playback report {cost['report'] / cost['playlist']:.2f} (at most 1.2: issue 42)")
    playlists = viewers / args.target_duration
    beats = viewers / (args.viewer_timeout / 3)
    print(f"{viewers} viewers: {playlists:,.0f} playlist requests/s (one per {args.target_duration:g} s each), "
          f"{beats:,.0f} heartbeats/s (one per {args.viewer_timeout / 3:g} s each)")
    print(f"  heartbeats add {beats / playlists:.0%} requests and "
          f"{beats * cost['heartbeat'] / (playlists * cost['playlist']):.0%} CPU (instructions) to the "
          "playlists' own; with PUBLISH_PLAYLISTS they are all the VM serves its viewers")


if __name__ == "__main__":
    main()
