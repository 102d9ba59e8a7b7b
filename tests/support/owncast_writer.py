"""Owncast's HLS folder written by hand, for tests and benches that place every byte themselves.

The format and the way of writing (in place, in pieces, segment before playlist) are
broadcaster/demo/owncast_files.py's, which the demo's emulator uses too; this module only drives it:
`HandFedOwncast` one slot at a time from a test, `OwncastReplay` pre-encoded segments at a cadence from
a process of its own (a bench's Owncast), `emulator_paused` holds the emulator's ffmpeg still.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.demo.ledger import Ledger
from broadcaster.demo.owncast_files import (
    Body, MasterEntry, OpenInPlace, OwncastFolder, master_text, playlist_text, write_in_place,
)

if TYPE_CHECKING:
    from broadcaster.demo.emulator import OwncastEmulator

__all__ = [
    "SECONDS", "HandFedOwncast", "LateSlot", "OwncastReplay", "Prepare", "emulator_paused", "keep_writing",
    "media", "one_run_segments", "owncast_number", "real_ts_segment", "replay", "write_in_place",
    "write_next",
]  # fmt: skip

SECONDS = 1.0  # HandFedOwncast's EXTINF: Owncast's lowest latency level


def media(*names: str, ended: bool = False) -> str:
    """A minimal media playlist of 1 s entries, for tests of the watcher's reading."""
    text = playlist_text([(n, SECONDS, None) for n in names], first=0, target=1)
    return text + ("#EXT-X-ENDLIST\n" if ended else "")


def owncast_number(name: str) -> int:
    """Owncast's own number of a segment, from its name stream-<shortid>-<n>.<ext> (or a URI ending so)."""
    return int(name.rsplit("-", 1)[1].split(".")[0])


def real_ts_segment(folder: Path, seconds: int = 1) -> bytes:
    """One real MPEG-TS segment (H.264 + AAC) of `seconds`, made by the ffmpeg the tests use."""
    out = folder / "segment.ts"
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc=size=160x90:rate=30", "-f", "lavfi", "-i", "sine=frequency=440",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac",
         "-f", "mpegts", str(out)],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    data = out.read_bytes()
    assert data[:1] == b"\x47" and len(data) % 188 == 0
    return data


def one_run_segments(folder: Path, seconds: int, fps: int = 10) -> list[bytes]:
    """`seconds` 1 s MPEG-TS segments of one ffmpeg run (a keyframe each second, small, so quick):
    timestamps continue across them, as one Owncast transcoder run writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size=160x90:rate={fps}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050", "-t", str(seconds),
         "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-g", str(fps),
         "-keyint_min", str(fps), "-sc_threshold", "0", "-c:a", "aac", "-ac", "1", "-b:a", "32k",
         "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
         "-hls_segment_filename", str(folder / "seg%d.ts"), str(folder / "out.m3u8")],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    text = (folder / "out.m3u8").read_text()
    assert text.count("#EXTINF:1.000000,") == seconds, text[:400]
    return [(folder / f"seg{i}.ts").read_bytes() for i in range(seconds)]


Prepare = Callable[[Path], object]


@dataclass
class LateSlot:
    """A slot whose segment files are listed while their writer still holds their last bytes."""

    name: str
    files: list[OpenInPlace]

    def finish(self) -> None:
        """The last bytes of every variant's file, and close them."""
        for f in self.files:
            f.finish()


class HandFedOwncast(OwncastFolder):
    """HLS_DIR written by hand the way Owncast writes it: `slot()` puts one segment in every variant
    folder, then rewrites every variant playlist to list it (a rolling list of `list_size` entries).
    `seconds`: each EXTINF and the target duration; `ledger` records every file it writes as closed."""

    def __init__(self, root: Path, ts: bytes, *, variants: tuple[int, ...] = (0, 1), run: str = "f4ult",
                 list_size: int = 10, with_pdt: bool = True, t0: float | None = None,
                 ledger: Ledger | None = None, seconds: int = int(SECONDS)) -> None:
        super().__init__(root, variants, shortid=run, list_size=list_size, target=seconds, ledger=ledger)
        self.ts, self.seconds = ts, seconds
        self.with_pdt = with_pdt  # ffmpeg's program_date_time flag, which Owncast always sets
        self.t0 = time.time() if t0 is None else t0
        write_in_place(root / "stream.m3u8", self.master_text(), ledger=ledger)

    @property
    def entries(self) -> dict[int, list[str]]:
        """One text block (tags + URI) per listed entry, which a test may edit before writing."""
        return {v: self.lists[v].blocks for v in self.variants}

    def master_text(self) -> str:
        return master_text([MasterEntry(900000 - 100000 * v, "160x90", "avc1.64000c,mp4a.40.2")
                            for v in self.variants])

    def add_entry(self, v: int, uri: str, duration: float | None = None, number: int | None = None,
                  at: float | None = None) -> None:
        """One more entry in variant v's list (without rewriting the file); `duration` by default its
        `seconds`, `at` (its date) by default its number's slot from `t0`."""
        if at is None:
            at = self.t0 + (self.number if number is None else number) * self.seconds
        self.lists[v].add(uri, self.seconds if duration is None else duration, at if self.with_pdt else None)

    def slot(self, bodies: Body | Mapping[int, Body | Prepare] | None = None, *,
             duration: float | Mapping[int, float] | None = None, at: float | None = None,
             ext: str = "ts") -> str:
        """The next segment in every variant: its file (by default the real TS bytes; a `Prepare` given for
        a variant makes something else of it), then the playlist that lists it. Returns its name."""
        name = self.name(self.number, ext)
        for v in self.variants:
            body = bodies.get(v) if isinstance(bodies, Mapping) else bodies
            if callable(body):
                body(self.folder(v) / name)
            else:
                self.write_segment(v, name, self.ts if body is None else body)
            self.add_entry(v, name, duration.get(v) if isinstance(duration, Mapping) else duration, at=at)
        for v in self.variants:
            self.write_playlist(v)
        self.number += 1
        return name

    def late_slot(self, share: float = 0.2) -> LateSlot:
        """A segment Owncast is still writing when its playlist names it, held as long as the test likes:
        all but its last `share` written and the file left open, then the playlists; `LateSlot.finish()`
        ends it."""
        name = self.name(self.number)
        written = len(self.ts) - max(1, int(len(self.ts) * share))
        held = LateSlot(name, [])
        try:
            for v in self.variants:
                held.files.append(self.begin_segment(v, name, self.ts, written))
                self.add_entry(v, name)
            for v in self.variants:
                self.write_playlist(v)
        except BaseException:
            held.finish()
            raise
        self.number += 1
        return held


# -- a bench's Owncast: pre-encoded segments at a cadence, from a process of its own ----------------


def write_next(owncast: HandFedOwncast, segments: list[bytes]) -> None:
    """Owncast's next segment, `segments`[its number], written in every variant, then the playlists."""
    body = segments[owncast.number]
    owncast.slot({v: lambda path: write_in_place(path, body) for v in owncast.variants})


async def keep_writing(owncast: HandFedOwncast, segments: list[bytes]) -> None:
    """The rest of `segments`, one a second on the stream's clock: segment n goes in at t0 + n + 1."""
    while owncast.number < len(segments):
        await asyncio.sleep(max(0.0, owncast.t0 + owncast.number + 1 - time.time()))
        write_next(owncast, segments)


class Encoded(Protocol):
    """One pre-encoded segment (bench/rig.py's Segment is one)."""

    @property
    def data(self) -> bytes: ...
    @property
    def duration(self) -> float: ...


def replay(hls_dir: Path, segments: Sequence[Encoded], *, cadence: float, list_size: int, limit: int,
           stop: Callable[[float], bool], piece: int = 32 * 1024) -> tuple[dict[str, float], float]:
    """Write segment k (the segments cycled) at start + (k + 1) * cadence, then the playlist listing it,
    until `limit` segments (0: until `stop(timeout)` says so); Owncast's cleanup keeps list_size + 10.
    Returns {name: monotonic time it was listed} and the worst lateness against the cadence."""
    files = OwncastFolder(hls_dir, (0,), list_size=list_size, piece=piece,
                          target=max(math.ceil(s.duration) for s in segments))
    files.write_master([MasterEntry(int(max(len(s.data) / s.duration for s in segments) * 8 * 1.1))])
    glass: dict[str, float] = {}
    late_max = 0.0
    start_at = time.monotonic()
    while not limit or files.number < limit:
        deadline = start_at + (files.number + 1) * cadence  # segment k is complete one cadence after it began
        if stop(max(0.0, deadline - time.monotonic())):
            break
        late_max = max(late_max, time.monotonic() - deadline)
        seg = segments[files.number % len(segments)]
        name = files.slot(seg.data, duration=seg.duration, at=time.time() - seg.duration)
        glass[name] = time.monotonic()  # the moment Owncast has listed it
        files.cleanup(list_size + 10)
    return glass, late_max


def _replay_process(hls_dir: str, segments: Sequence[Encoded], cadence: float, list_size: int, limit: int,
                    stop: MpEvent, conn: Connection) -> None:
    glass: dict[str, float] = {}
    late_max = 0.0
    try:
        glass, late_max = replay(Path(hls_dir), segments, cadence=cadence, list_size=list_size, limit=limit,
                                 stop=stop.wait)
    finally:
        conn.send((glass, late_max))
        conn.close()


class OwncastReplay:
    """`replay` in a process of its own (Owncast is another program), from construction until `limit`
    segments or `stop()`; then `glass` and `late_max` hold what it returned."""

    def __init__(self, hls_dir: Path, segments: Sequence[Encoded], *, cadence: float = 1.0, list_size: int = 25,
                 limit: int = 0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_replay_process, name="owncast", daemon=True,
                                 args=(str(hls_dir), list(segments), cadence, list_size, limit, self._stop, send))
        self._proc.start()
        send.close()
        self.glass: dict[str, float] = {}
        self.late_max = 0.0

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def done(self) -> bool:
        return not self._proc.is_alive()

    async def wait(self) -> None:
        await asyncio.to_thread(self._collect)  # read before joining: a big answer fills the pipe
        await asyncio.to_thread(self._proc.join)

    async def stop(self) -> None:
        self._stop.set()
        await self.wait()

    def _collect(self) -> None:
        if self.glass:
            return
        try:
            self.glass, self.late_max = self._recv.recv()  # sent when it stops, even on an error
        except EOFError:  # it died without a word
            pass


@contextlib.contextmanager
def emulator_paused(owncast: OwncastEmulator) -> Iterator[None]:
    """The emulator's ffmpeg processes stopped (SIGSTOP) for the block and continued after it, whatever
    happens: Owncast writes nothing meanwhile, so what a test checks after a restart of the service does
    not depend on how long the restart took on a loaded machine. (With -re, ffmpeg catches up after.)"""
    pids = [pid for pid in (owncast.source_pid, owncast.ffmpeg_pid) if pid is not None]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
