"""Ingest latency: from Owncast listing a segment to the service listing it, against a plain
put_object of the same bytes to the same S3 server, measured alternately in the same run.

    python -m bench.ingest_latency [--segments 200] [--size 400000] [--interval 0.1]
        [--writer closed|held] [--tail-bytes 90000] [--tail-ms 10] [--watch auto|watchfiles]
        [--lease on|off] [--unheard] [--media random|real]

Owncast's side is emulated exactly: the segment is written in place, then the variant playlist is
rewritten in place to list it; the clock starts when that playlist write is closed. With
`--writer held` (video passthrough as measured, issue 39), the playlist names the segment while its last
`--tail-bytes` are still to come; they follow `--tail-ms` later, then the close: the service must wait
for them, so that wait is in the figure. `--watch watchfiles` takes the path that cannot see a close. `--lease off`: the
kernel is not asked whether the segment is still open for writing (as where Owncast's files are another
user's and CAP_LEASE is not granted): watchfiles' path then waits for the segment to be unchanged for a
while. `--unheard`: the watcher's events say nothing of the segments (as for the files of a restart or
an inotify overflow), so the wait is the one after those. `--media real`: each segment is one second of
real H.264+AAC MPEG-TS from ffmpeg (about `--size` bytes) instead of random packets, and every other
segment is judged without its #EXTINF (the watcher's `named` not heard for it), so the cost of reading
its timestamps (source/spans.py) is measured against the check as it was before, in one run. The service runs
in this process with its real watcher, uploader and publisher; the clock stops when the publisher
has appended the segment and rendered the new playlist. The baseline is one put_object of the same
bytes through the same kind of client to the same SeaweedFS. Reported: percentiles of both, and the
overhead (service minus baseline) at each percentile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.rig import workspace
from broadcaster.source import inotify, leases
from broadcaster.bucket.store import BucketAccess, S3Store
from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.demo.owncast_files import MasterEntry, OwncastFolder
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.playlist.rendered import Rendered
from broadcaster.service import Service
from broadcaster.settings import load_settings
from broadcaster.source.owncast import SourceSegment
from tests.support.stats import pct


async def main(args: argparse.Namespace) -> None:
    if args.watch == "watchfiles":
        inotify.available = lambda: False  # what the service sees where inotify is not (no setting in older versions)
    if args.lease == "off":
        leases.writers = _unanswered  # what the service sees where the kernel will not answer
    async with workspace("ingest") as ws:
        print("SeaweedFS ready", file=sys.stderr)  # stages on stderr: a run that hangs says where
        await _bench(args, ws.work, ws.s3)


def _unanswered(fd: int, path: Path) -> bool | None:  # noqa: ARG001
    return None


async def _bench(args: argparse.Namespace, work: Path, s3: SeaweedS3) -> None:
    hls = work / "hls"
    owncast = OwncastFolder(hls, (0,), shortid="bench", list_size=10, target=1, piece=32 * 1024)
    # The service takes its variants from Owncast's master playlist, as Owncast writes it first.
    owncast.write_master([MasterEntry(8 * args.size)])
    body = os.urandom(args.size // 188 * 188)  # whole MPEG-TS packets, as every segment Owncast writes
    if args.media == "real":
        body = _real_segment(work, args.size)
    listed: dict[str, float] = {}
    arrived = asyncio.Event()

    settings = load_settings(environ={
        "HLS_DIR": str(hls), "S3_ENDPOINT_URL": s3.endpoint_url, "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_BUCKET_NAME": s3.bucket, "R2_PUBLIC_URL": s3.public_url,
        "PORT": "0", "STATE_DIR": str(work / "state"), "WINDOW_SECONDS": "10",
    })
    service: Service

    def on_listed(variant: int, sequence: int, segment: SourceSegment, _url: str) -> None:
        rendered: Rendered | None = service.playlists.media_playlist(variant)  # render is part of listing
        assert rendered is not None
        listed[segment.name] = time.perf_counter()
        arrived.set()

    service = Service(settings, on_listed=on_listed)
    if args.unheard:
        setattr(service.writes, "note", lambda _events: None)  # noqa: B010 (every segment unheard of)
    if args.media == "real":
        named = service.writes.named  # every other segment (odd numbers) judged as before: no #EXTINF told
        setattr(service.writes, "named", lambda path, seconds: None if int(path.stem.rsplit("-", 1)[1]) % 2  # noqa: B010
                else named(path, seconds))
    if args.no_state:
        service.release.snapshots = None  # measure what durability (fsync per listing) costs
    await service.start()
    print("service started", file=sys.stderr)
    baseline = S3Store(BucketAccess(s3.endpoint_url, "auto", s3.access_key, s3.secret_key, s3.bucket))
    await baseline.start()
    ours: list[float] = []
    plain: list[float] = []
    unchecked: list[float] = []  # --media real: the segments judged without their #EXTINF
    try:
        for i in range(args.segments + args.warmup):
            # A: a plain put_object of the same bytes.
            t = time.perf_counter()
            await baseline.put(f"baseline/{i}.ts", body, content_type="video/mp2t", cache_control="no-cache")
            plain_time = time.perf_counter() - t
            # B: Owncast writes the segment, then the playlist; the service lists it.
            arrived.clear()
            if args.writer == "closed":
                name = owncast.slot(body, duration=1.0, at=time.time())
                t = time.perf_counter()
            else:
                name, t = await _held_slot(owncast, body, args.tail_bytes, args.tail_ms / 1000)
            async with asyncio.timeout(30):
                while name not in listed:
                    await arrived.wait()
                    arrived.clear()
            print(f"segment {i} listed", file=sys.stderr)
            if i >= args.warmup:
                checked = args.media != "real" or int(name.rsplit(".", 1)[0].rsplit("-", 1)[1]) % 2 == 0
                (ours if checked else unchecked).append(listed[name] - t)
                plain.append(plain_time)
            await asyncio.sleep(args.interval)
    finally:
        await baseline.close()
        print("stopping the service", file=sys.stderr)
        await service.stop()

    print(f"state saved before listing: {'no (--no-state)' if args.no_state else 'yes'}; watch: "
          f"{'inotify' if inotify.available() else 'watchfiles'}; writer: {args.writer}"
          + (f" ({args.tail_bytes} bytes {args.tail_ms:g} ms after the playlist)" if args.writer == "held" else "")
          + f"; lease: {args.lease}" + ("; segments unheard of (as after a restart or an overflow)"
                                        if args.unheard else ""))
    print(f"ingest latency, {args.segments} segments of {args.size} bytes, SeaweedFS on 127.0.0.1, "
          f"{args.interval * 1000:.0f} ms apart (after {args.warmup} warm-up)")
    print(f"{'':>22} {'p50':>9} {'p95':>9} {'p99':>9} {'mean':>9}")
    rows = [("plain put_object", plain), ("service (listed)", ours)]
    if unchecked:
        rows = [rows[0], ("listed, #EXTINF read", ours), ("listed, as before", unchecked)]
        print(f"media: real ffmpeg MPEG-TS of {len(body)} bytes; the timestamp check on even segments only")
    for label, xs in rows:
        print(f"{label:>22} " + " ".join(f"{pct(xs, p) * 1000:8.2f}ms" for p in (50, 95, 99))
              + f" {statistics.fmean(xs) * 1000:8.2f}ms")
    over = [pct(ours, p) - pct(plain, p) for p in (50, 95, 99)]
    print(f"{'overhead':>22} " + " ".join(f"{o * 1000:8.2f}ms" for o in over))
    print(f"{'ratio service/plain':>22} " + " ".join(f"{pct(ours, p) / pct(plain, p):8.2f}x " for p in (50, 95, 99)))
    if unchecked:
        print(f"{'ratio checked/before':>22} " + " ".join(f"{pct(ours, p) / pct(unchecked, p):8.2f}x "
                                                         for p in (50, 95, 99)))
    print(f"goal: p50 overhead <= 10 ms ({'met' if over[0] <= 0.010 else 'NOT met'}), "
          f"p95 overhead <= 25 ms ({'met' if over[1] <= 0.025 else 'NOT met'})")


def _real_segment(work: Path, size: int) -> bytes:
    """One second of real H.264+AAC MPEG-TS from ffmpeg, about `size` bytes."""
    out = work / "real.ts"
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440",
         "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-b:v", str(size * 8),
         "-maxrate", str(size * 8), "-bufsize", str(size * 8), "-c:a", "aac", "-f", "mpegts", str(out)],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    return out.read_bytes()


async def _held_slot(owncast: OwncastFolder, body: bytes, tail: int, delay: float) -> tuple[str, float]:
    """The next segment listed while its last `tail` bytes are still to come; they follow `delay` later,
    then the close, as Owncast's handler copies a body ffmpeg sent before the playlist. Returns the name
    and when the playlist named it (perf_counter)."""
    name = owncast.name(owncast.number)
    with open(owncast.folder(0) / name, "wb") as f:
        f.write(body[: len(body) - tail])
        f.flush()
        owncast.lists[0].add(name, 1.0, time.time())
        owncast.write_playlist(0)
        owncast.number += 1
        named = time.perf_counter()
        await asyncio.sleep(delay)
        f.write(body[len(body) - tail:])
    return name, named


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--size", type=int, default=400_000, help="segment bytes (1 s at ~3 Mbit/s)")
    parser.add_argument("--no-state", action="store_true", help="skip saving state before listing")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between segments")
    parser.add_argument("--writer", choices=("closed", "held"), default="closed",
                        help="closed: each segment whole before its playlist (transcoded); held: the playlist "
                        "first, the segment's tail after (passthrough)")
    parser.add_argument("--tail-bytes", type=int, default=90_000, help="with --writer held: bytes still to come")
    parser.add_argument("--tail-ms", type=float, default=10.0, help="with --writer held: when they come")
    parser.add_argument("--watch", choices=("auto", "watchfiles"), default="auto")
    parser.add_argument("--media", choices=("random", "real"), default="random",
                        help="real: ffmpeg's MPEG-TS, and the timestamp check on every other segment only")
    parser.add_argument("--lease", choices=("on", "off"), default="on",
                        help="off: never ask the kernel whether a segment is still open for writing")
    parser.add_argument("--unheard", action="store_true",
                        help="the watcher's events tell nothing of the segments (a restart, an overflow)")
    asyncio.run(main(parser.parse_args()))
