"""Writers unlike Owncast (issue 67) against the service on SeaweedFS: what the bucket, the live playlist
and the recording end with.

    python -m bench.odd_writers [--watch auto|watchfiles] [--media real|random]

Run by hand, not a test (tests/test_late_and_reopened.py and tests/test_spans.py are the tests). Two
variants of 1 s segments (`--media real`: ffmpeg's MPEG-TS, as Owncast's; `random`: 188,000 bytes of
packets without timestamps, as the issue measured, which no reader can tell from a whole file when cut on
a packet boundary); variant 1's files are written whole, variant 0's file of three slots the odd way:

- paused: all but its last 4 packets written (a packet boundary), the file left open; the rest 2.5 s after
  its playlist names it (longer than a target duration: its variant gives it up as a gap).
- reopened: half its bytes written and the file closed (a packet boundary); opened again 0.6 s after its
  playlist names it, the rest appended, closed.
- restarted: held open as `paused`; the service stopped (SIGTERM) once variant 0 lists the slot as a gap,
  started again, and the rest written 1.5 s after the restart.

Then one more whole slot and the stream's end (Owncast's offline tail), which writes the recordings.
Reported per writer: what variant 0's live playlist lists for the slot (segment or gap) and when, from
its playlist naming it; what the bucket holds of it (bytes, against the size its writer finished) and
from when; what variant 0's recording lists there. The service runs the code this process imports: run
it from a checkout to measure that checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import aiohttp

from bench.rig import workspace
from tests.support.observe import Observer
from tests.support.owncast_writer import HandFedOwncast, real_ts_segment
from tests.support.service_process import ServiceProcess, service_env

SIZE = 188_000  # with --media random


class Odd:
    """Variant 0's file of one slot, written `kind`'s way; `rest()` finishes it."""

    def __init__(self, kind: str, data: bytes) -> None:
        self.kind = kind
        self.data = data
        self.cut = len(data) // 2 // 188 * 188 if kind == "reopened" else len(data) - 4 * 188
        self.file: BinaryIO | None = None
        self.path: Path | None = None
        self.named = 0.0  # monotonic: when its playlist named it
        self.listed: tuple[str, float] | None = None  # variant 0's entry for it, and when first seen
        self.held: list[tuple[int, float]] = []  # bytes the bucket held, and since when, each change
        self.whole_at: float | None = None  # when the bucket first held its final bytes

    def begin(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "wb")  # noqa: SIM115 (kept open until rest)
        self.file.write(self.data[: self.cut])
        self.file.flush()
        if self.kind == "reopened":
            self.file.close()
            self.file = None

    def rest(self) -> None:
        assert self.path is not None
        if self.file is None:
            self.file = open(self.path, "ab")  # noqa: SIM115
        self.file.write(self.data[self.cut:])
        self.file.close()
        self.file = None


async def watch(http: aiohttp.ClientSession, seen: Observer, odd: Odd, name: str, url: str) -> None:
    """Note what variant 0 lists for `name` and what the bucket holds, until cancelled."""
    while True:
        now = time.monotonic() - odd.named
        try:
            await seen.poll()
            msn = next((n for n, listed in seen.listed.get(0, {}).items() if listed == name), None)
            if msn is not None and odd.listed is None:
                odd.listed = ("gap" if msn in seen.gaps.get(0, ()) else "segment", now)
            async with http.get(url) as r:
                size = len(await r.read()) if r.status == 200 else 0
            if not odd.held or odd.held[-1][0] != size:
                odd.held.append((size, now))
            if size == len(odd.data) and odd.whole_at is None:
                odd.whole_at = now
        except (aiohttp.ClientError, AssertionError, OSError):
            pass  # the service restarting
        await asyncio.sleep(0.02)


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def main(args: argparse.Namespace) -> None:
    async with workspace("odd-writers") as ws, aiohttp.ClientSession() as http:
        data = (b"".join(b"\x47" + os.urandom(187) for _ in range(SIZE // 188)) if args.media == "random"
                else real_ts_segment(ws.work))
        feed = HandFedOwncast(ws.work / "hls", data, variants=(0, 1))
        names = [feed.slot()]
        env = service_env(feed.root, ws.s3, ws.work / "state", HLS_WATCH=args.watch, WINDOW_SECONDS="60",
                          KEEP_RECORDINGS="true")
        odds: list[tuple[str, Odd]] = []
        before: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        service = await ServiceProcess(env, ws.work / "run").start()
        seen = Observer(service.url, http, (0, 1))
        watchers: list[asyncio.Task[None]] = []
        try:
            await seen.listed_everywhere(names[0], timeout=30)
            for kind in ("paused", "reopened", "restarted"):
                odd = Odd(kind, data)
                name = feed.slot({0: odd.begin})
                odd.named = time.monotonic()
                odds.append((name, odd))
                url = f"{ws.s3.public_url}/live/0/{name}"
                watchers.append(asyncio.create_task(watch(http, seen, odd, name, url)))
                if kind == "paused":
                    await asyncio.sleep(2.5)  # the writer's pause: a clock, not a condition
                    odd.rest()
                elif kind == "reopened":
                    await asyncio.sleep(0.6)
                    odd.rest()
                else:
                    await until(lambda: odd.listed is not None)  # noqa: B023
                    before = await seen.metrics()
                    assert await service.stop() == 0
                    service = await ServiceProcess(env, ws.work / "run").start()
                    seen.url = service.url
                    await asyncio.sleep(1.5)
                    odd.rest()
                await asyncio.sleep(3)  # what it ends with, a few seconds on
            names += [n for n, _ in odds]
            names.append(feed.slot())
            await seen.listed_everywhere(names[-1], timeout=30)
            feed.offline(data, ws.work)
            recording = f"{ws.s3.public_url}/live/0/recording-f4ult.m3u8"

            async def written() -> str | None:
                async with http.get(recording) as r:
                    return await r.text() if r.status == 200 else None

            text = None
            async with asyncio.timeout(40):
                while (text := await written()) is None:
                    await asyncio.sleep(0.2)
            metrics = await seen.metrics()
        finally:
            for w in watchers:
                w.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            for _, odd in odds:
                if odd.file is not None:
                    odd.file.close()
            await service.stop()
    lines = text.splitlines()
    print(f"watch: {args.watch}; {args.media} segments of {len(data):,} bytes; times from the playlist naming the slot")
    print(f"{'writer':<10} {'variant 0 lists':<18} {'bucket holds (bytes, from)':<36} {'whole from':<12} recording")
    for name, odd in odds:
        at = next((i for i, line in enumerate(lines) if line.endswith(name)), None)
        rec = "absent" if at is None else "gap" if lines[at - 2] == "#EXT-X-GAP" else "segment"
        listed = f"{odd.listed[0]} at {odd.listed[1]:.2f}s" if odd.listed else "nothing"
        held = ", ".join(f"{size:,} from {at:.2f}s" for size, at in odd.held if size)
        whole = f"{odd.whole_at:.2f}s" if odd.whole_at is not None else "never"
        print(f"{odd.kind:<10} {listed:<18} {held or 'nothing':<36} {whole:<12} {rec}")
    for when, m in (("before the restart", before), ("after it", metrics)):
        counters = {f"{k[0].removeprefix('hls_broadcaster_')}{dict(k[1])}": v for k, v in m.items() if v and k[0] in (
            "hls_broadcaster_segments_lost_total", "hls_broadcaster_segments_late_total",
            "hls_broadcaster_segment_rewrites_total")}
        print(f"counters {when}:", counters or "none")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watch", choices=("auto", "watchfiles"), default="auto")
    parser.add_argument("--media", choices=("real", "random"), default="real",
                        help="real: one second of ffmpeg's MPEG-TS; random: 188,000 bytes of packets without "
                             "timestamps (the service cannot tell a half of those from a whole)")
    asyncio.run(main(parser.parse_args()))
