"""The CPU the steering probe costs the service per GET, as it runs: one ranged GET of a segment's first
byte (steering/first_byte.py's FirstByte, the probe's own client), spaced as the probe spaces them,
against the same loop without the GET measured in the same run; and, for scale, the same GET through
aiohttp's client (what the probe used before: a ClientSession, `session.get` with a Range header).

    python -m bench.probe_cost [--gets 300] [--gaps 0.02,0.5]

The segment is answered by a minimal aiohttp server in a process of its own (its CPU not counted): the
figure is the client's, `time.process_time` of this process, all of its threads. A tight loop of GETs
back to back costs less per GET than GETs a while apart (a connection kept warm, nothing idle between),
which is why the gaps are the probe's: it goes once a second while live (PROBE_EVERY). Reported: the
loop's CPU per iteration without the GET, with the probe's GET, and their difference (the probe's cost);
then aiohttp's GET's cost the same way and its ratio to the probe's.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from multiprocessing.queues import Queue

import aiohttp
from aiohttp import web

from broadcaster.steering.first_byte import FirstByte
from broadcaster.steering.probe import PROBE_HEADERS

Fetch = Callable[[str, float], Awaitable[tuple[bool, str]]]


def _serve(port: Queue[int]) -> None:
    """A bucket's public URL, for the probe: 206 with the first byte of a segment."""

    async def segment(request: web.Request) -> web.Response:
        return web.Response(body=b"\x47", status=206, headers={"Content-Range": "bytes 0-0/1880"})

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/live/0/{name}", segment)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(run())


async def _aiohttp_get(session: aiohttp.ClientSession, url: str, timeout: float) -> tuple[bool, str]:
    """The probe's GET as it was made before FirstByte: aiohttp's client."""
    async with session.get(url, headers={"Range": "bytes=0-0"}, allow_redirects=False,
                           timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        await response.read()
        return response.status in (200, 206), f"HTTP {response.status}"


async def _loop(port: int | None, gets: int, gap: float, client: str) -> float:
    """CPU seconds per iteration of `gets` iterations `gap` apart, each a GET by `client` ("probe":
    FirstByte; "aiohttp") or none (`port` None)."""
    session = aiohttp.ClientSession(auto_decompress=False, headers=PROBE_HEADERS)
    probe = FirstByte(PROBE_HEADERS)
    fetch: Fetch = probe if client == "probe" else (lambda url, timeout: _aiohttp_get(session, url, timeout))
    try:
        urls = [f"http://127.0.0.1:{port}/live/0/stream-{i}.ts" for i in range(gets)]
        if port is not None:
            ok, detail = await fetch(urls[0], 2.0)  # the connection, warm
            if not ok:
                raise SystemExit(f"the probe failed against the local server: {detail}")
        started = time.process_time()
        for url in urls:
            if port is not None:
                ok, detail = await fetch(url, 2.0)
                if not ok:
                    raise SystemExit(f"the probe failed against the local server: {detail}")
            await asyncio.sleep(gap)
        return (time.process_time() - started) / gets
    finally:
        await probe.close()
        await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gets", type=int, default=300, help="GETs per gap (default 300)")
    parser.add_argument("--gaps", default="0.02,0.5",
                        help="seconds between GETs, comma-separated (default 0.02,0.5; the probe's is 1)")
    args = parser.parse_args()
    gaps = [float(g) for g in args.gaps.split(",")]
    ports: Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        print(f"{'gap':>8} {'loop alone':>12} {'with the GET':>14} {'per GET':>10} {'aiohttp':>10} {'ratio':>7}"
              "   (CPU of this process)")
        for gap in gaps:
            alone = asyncio.run(_loop(None, args.gets, gap, "probe"))
            probed = asyncio.run(_loop(port, args.gets, gap, "probe"))
            other = asyncio.run(_loop(port, args.gets, gap, "aiohttp"))
            cost, others = probed - alone, other - alone
            ratio = f"{others / cost:.2f}x" if cost > 0 else "-"
            print(f"{gap:>7.2f}s {alone * 1e6:>10.0f}us {probed * 1e6:>12.0f}us {cost * 1e6:>8.0f}us "
                  f"{others * 1e6:>8.0f}us {ratio:>7}")
    finally:
        server.kill()
        server.join()


if __name__ == "__main__":
    main()
