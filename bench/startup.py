"""The viewer page's start-up against a bare hls.js page on the same stream (issue 42's table), in one run.

    python -m bench.startup [--rounds 5] [--links local,150ms,300ms-3mbit] [--before CHECKOUT]
                            [--recordings DIR]

Real parts, as the demo runs them: SeaweedFS on 127.0.0.1 (the bucket), the Owncast emulator
(broadcaster.demo.emulator: real ffmpeg, the demo's 2 variants of 2 s MPEG-TS segments) and the
service as an operator runs it (`python -m broadcaster run`, a process of its own, from this checkout,
WINDOW_SECONDS=12 as the demo sets it). In front of it, nginx routing by path as the tunnel does
(cloudflared.yml.example's rules, tests/support/nginx.py), which also serves /bare.html: a page that
only runs the same hls.min.js (the service's, at its versioned URL) with its defaults on
/live/master.m3u8. The two pages are on one origin, reached the same way.

The browser is Debian's headless Chromium through Playwright. Each load is a first visit: a fresh
context (no cache, no open connection), Chromium's network emulation (CDP
Network.emulateNetworkConditions) set before the navigation. Links: `local` (none), `150ms` (150 ms
round trip), `300ms-3mbit` (300 ms and 3 Mbit/s each way). Per round, every link and every page in an
order that alternates from round to round. Measured (tests/support/startup.py): the time from the
navigation's start to the video's first frame (requestVideoFrameCallback), and the requests the
browser started before that frame, each redirect counted as a request.

--before CHECKOUT adds the page of another checkout (e.g. a worktree of an older commit), served the
same way by a second service from that checkout (its own key prefix and state, the same HLS_DIR)
behind its own nginx with that checkout's tunnel rules: before and after in one run.

Issue 42's goal: at a 150 ms round trip, the first frame within 10 % of the bare page (medians), no
more than 12 requests before it, and no redirect on the way to a module.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from bench.rig import REPO, add_recordings_option, recordings_of, service_env, start_service, workspace
from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from tests.support.browser import CHROMIUM, launch_chromium
from tests.support.nginx import NGINX, Nginx, tunnel_locations
from tests.support.service_process import ServiceProcess
from tests.support.startup import Startup, StartupRecorder, emulate

HOSTNAME = "live.example.com"  # the viewer's hostname in cloudflared.yml.example
SERVICE = "http://127.0.0.1:3000"  # the port the example names; the service runs elsewhere here
SEGMENT_SECONDS = 2  # the demo's
WINDOW_SECONDS = "12"  # the demo's for 2 s segments
GOAL_LINK = "150ms"
GOAL_RATIO = 1.10
GOAL_REQUESTS = 12

# (latency ms, throughput bytes/s each way; -1: none)
LINKS: dict[str, tuple[float, float]] = {
    "local": (0, -1),
    "150ms": (150, -1),
    "300ms-3mbit": (300, 3_000_000 / 8),
}
LINK_NAMES = {"local": "local", "150ms": "150 ms round trip", "300ms-3mbit": "300 ms, 3 Mbit/s"}

BARE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>bare hls.js</title><link rel="icon" href="data:,"></head>
<body>
<video id="video" controls playsinline autoplay></video>
<script src="__HLS__"></script>
<script>
  const video = document.getElementById('video');
  const hls = new Hls();
  hls.loadSource('/live/master.m3u8');
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
</script>
</body>
</html>
"""


@dataclass
class Page:
    name: str
    url: str


@dataclass
class Loads:
    frames: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    redirects: list[int] = field(default_factory=list)
    module_redirects: list[int] = field(default_factory=list)
    failed: int = 0
    example: Startup | None = None


def tunnel_server(checkout: Path, service_url: str, bare: Path | None) -> str:
    """nginx's server block: `checkout`'s tunnel rules to `service_url`, and /bare.html from `bare`."""
    rules = yaml.safe_load((checkout / "cloudflared.yml.example").read_text())["ingress"]
    block = tunnel_locations(rules, HOSTNAME, {SERVICE: service_url})
    if bare is not None:
        block += (f'\n        location = /bare.html {{ alias {bare}; default_type "text/html; charset=utf-8";'
                  ' add_header Cache-Control no-cache; }')
    return block


async def wait_playing(url: str, timeout: float = 60) -> str:
    """The viewer page once the service lists segments (its master answers 200)."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        while True:
            async with session.get(f"{url}/live/master.m3u8") as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.2)  # polling a condition under the timeout above
        async with session.get(f"{url}/") as resp:
            return await resp.text()


async def load(browser: Any, url: str, link: str, timeout_ms: float) -> Startup:
    """One first visit of `url` over `link`: its start-up."""
    latency, throughput = LINKS[link]
    context = await browser.new_context()
    try:
        page = await context.new_page()
        recorder = StartupRecorder(page)
        await recorder.install()
        if latency or throughput > 0:
            await emulate(context, page, latency, throughput)
        await page.goto(url, wait_until="commit")
        return await recorder.result(timeout_ms)
    finally:
        await context.close()


def is_module(path: str) -> bool:
    return path.endswith(".js") and not path.endswith("hls.min.js")


async def main(args: argparse.Namespace) -> int:
    if not Path(CHROMIUM).exists():
        sys.exit(f"bench/startup.py needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    if not Path(NGINX).exists():
        sys.exit(f"bench/startup.py needs Debian's nginx at {NGINX} (apt-get install nginx)")
    links = [link.strip() for link in args.links.split(",") if link.strip()]
    unknown = [link for link in links if link not in LINKS]
    if unknown:
        sys.exit(f"--links: unknown {', '.join(unknown)} (known: {', '.join(LINKS)})")
    before = Path(args.before).resolve() if args.before else None
    if before is not None and not (before / "broadcaster").is_dir():
        sys.exit(f"--before: {before} is not a checkout of hls-broadcaster (no broadcaster/ in it)")
    from playwright.async_api import async_playwright

    pages: list[Page] = []
    loads: dict[tuple[str, str], Loads] = {}
    services: list[ServiceProcess] = []
    tunnels: list[Nginx] = []
    async with workspace("startup") as ws:
        hls_dir = ws.folder("hls")
        try:
            async with OwncastEmulator(hls_dir, resolve_settings(variants=2, segment_seconds=SEGMENT_SECONDS),
                                       recordings=recordings_of(args)) as owncast:
                checkouts = [("this page", REPO)] + ([("before", before)] if before is not None else [])
                for i, (name, checkout) in enumerate(checkouts):
                    env = service_env(hls_dir, ws.s3, ws.work / f"state-{i}", R2_KEY_PREFIX=f"live{i}",
                                      WINDOW_SECONDS=WINDOW_SECONDS, REWIND_SECONDS="300")
                    paths = [str(checkout), *filter(None, [os.environ.get("PYTHONPATH")])]
                    env["PYTHONPATH"] = os.pathsep.join(paths)
                    service = await start_service(env, ws.work / f"cwd-{i}")
                    services.append(service)
                    bare = ws.work / "bare.html" if i == 0 else None
                    server = tunnel_server(checkout, service.url, bare)
                    tunnel = await Nginx(ws.work / f"tunnel-{i}", server).start()
                    tunnels.append(tunnel)
                    html = await wait_playing(tunnel.url)
                    if bare is not None:
                        hls_js = re.search(r'src="(hls\.min\.js\?v=[0-9a-f]+)"', html)
                        if hls_js is None:
                            sys.exit("the service's page names no versioned hls.min.js")
                        bare.write_text(BARE.replace("__HLS__", "/" + hls_js.group(1)))
                        pages.append(Page("bare hls.js", f"{tunnel.url}/bare.html"))
                    pages.append(Page(name, f"{tunnel.url}/"))
                await owncast.wait_for_segments(0, 3, timeout=30)
                where = ", ".join(f"{p.name} at {p.url}" for p in pages)
                print(f"pages: {where}; Owncast emulator ffmpeg pid {owncast.ffmpeg_pid}", flush=True)
                async with async_playwright() as pw:
                    browser = await launch_chromium(pw, draw_video=True)  # to the first frame drawn
                    try:
                        for r in range(args.rounds):
                            for link in links:
                                turn = (r + links.index(link)) % len(pages)
                                for page in pages[turn:] + pages[:turn]:
                                    got = loads.setdefault((link, page.name), Loads())
                                    try:
                                        start = await load(browser, page.url, link, args.timeout * 1000)
                                    except Exception as err:  # noqa: BLE001 - a page that never played
                                        got.failed += 1
                                        print(f"round {r + 1} {link} {page.name}: no first frame "
                                              f"({err!r:.200})", flush=True)
                                        continue
                                    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
                                    own = [f for f in start.before if f.url.startswith(origin)]
                                    got.frames.append(start.first_frame)
                                    got.requests.append(start.count())
                                    got.redirects.append(len(start.redirects()))
                                    got.module_redirects.append(sum(
                                        1 for f in start.redirects() if is_module(urlsplit(f.url).path)))
                                    got.example = got.example or start
                                    print(f"round {r + 1} {link:>12} {page.name:>12}: first frame "
                                          f"{start.first_frame:5.2f} s, {start.count():2d} requests "
                                          f"({len(own)} to the page's origin, "
                                          f"{len(start.redirects())} redirects)",
                                          flush=True)
                    finally:
                        await browser.close()
        finally:
            for tunnel in tunnels:
                await tunnel.stop()
            for service in services:
                await service.stop()
    return report(args, links, pages, loads)


def report(args: argparse.Namespace, links: list[str], pages: list[Page],
           loads: dict[tuple[str, str], Loads]) -> int:
    names = [p.name for p in pages if p.name != "bare hls.js"]
    print()
    print(f"### first visit, medians of {args.rounds} rounds per link and page (alternating); the demo's "
          f"stream (2 variants, {SEGMENT_SECONDS} s segments), the tunnel's routing in front")
    head = "| link |" + "".join(f" {n}: first frame |" for n in names) + " bare hls.js |" + "".join(
        f" {n} / bare |" for n in names) + " requests before the first frame (" + " vs ".join(
        [*names, "bare"]) + ") | redirects (" + " / ".join(names) + ") |"
    print(head)
    print("|" + "---|" * head.count(" |"))
    figures: dict[tuple[str, str], float] = {}
    for link in links:
        for n in [*names, "bare hls.js"]:
            got = loads.get((link, n), Loads())
            figures[(link, n)] = statistics.median(got.frames) if got.frames else float("nan")
        ratios = [figures[(link, n)] / figures[(link, "bare hls.js")] for n in names]
        requests = [statistics.median(loads.get((link, n), Loads()).requests or [float("nan")])
                    for n in [*names, "bare hls.js"]]
        redirects = [max(loads.get((link, n), Loads()).redirects or [0]) for n in names]
        cells = ([f"{figures[(link, n)]:.2f} s" for n in names] + [f"{figures[(link, 'bare hls.js')]:.2f} s"]
                 + [f"{r:.2f}x" for r in ratios] + [" vs ".join(f"{q:g}" for q in requests)]
                 + [" / ".join(str(d) for d in redirects)])
        print(f"| {LINK_NAMES[link]} | " + " | ".join(cells) + " |")
    for link in links:
        spread = [f"{n} {min(g.frames):.2f}-{max(g.frames):.2f} s" for n in [*names, "bare hls.js"]
                  if (g := loads.get((link, n), Loads())).frames]
        print(f"- {LINK_NAMES[link]}, first frame, fastest-slowest: " + "; ".join(spread))
    for (link, name), got in sorted(loads.items()):
        if got.failed:
            print(f"- {link} {name}: {got.failed} loads without a first frame")
    for (link, name), got in sorted(loads.items()):
        if got.example is not None and link == (GOAL_LINK if GOAL_LINK in links else links[0]):
            paths = [f"{f.started:.2f} " + urlsplit(f.url).path
                     + ("?" + urlsplit(f.url).query if urlsplit(f.url).query else "")
                     + (" (302)" if f.redirected else "") for f in got.example.before]
            print(f"- {name}, {link}, round 1, each request's start (s) until the first frame at "
                  f"{got.example.first_frame:.2f} s: " + ", ".join(paths))
    if GOAL_LINK not in links:
        print(f"goal: not measured (needs the {GOAL_LINK} link)")
        return 1
    this = loads.get((GOAL_LINK, "this page"), Loads())
    ratio = figures[(GOAL_LINK, "this page")] / figures[(GOAL_LINK, "bare hls.js")]
    most = max(this.requests or [10**6])
    redirected = max(this.module_redirects or [10**6])
    met = ratio <= GOAL_RATIO and most <= GOAL_REQUESTS and redirected == 0 and not this.failed
    print(f"goal: at {LINK_NAMES[GOAL_LINK]}, first frame within {GOAL_RATIO:.2f}x of bare ({ratio:.2f}x), "
          f"<= {GOAL_REQUESTS} requests before it (at most {most}), no redirect to a module ({redirected}): "
          f"{'met' if met else 'NOT met'}")
    return 0 if met else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="loads of each page on each link (default 5)")
    parser.add_argument("--links", default=",".join(LINKS), help=f"comma-separated, of {', '.join(LINKS)}")
    parser.add_argument("--before", default="", help="another checkout whose page is measured too")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a load may take (default 60)")
    add_recordings_option(parser)
    return parser


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_parser().parse_args())))
