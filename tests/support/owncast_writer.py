"""Owncast's HLS folder, written by hand the way Owncast writes it: the one writer tests and benches share.

Owncast's HTTP receiver creates each file under its final name and copies the request body in as it
arrives (no temp file, no rename), and ffmpeg PUTs a segment before the playlist that lists it. A reader
can therefore see a half-written segment or playlist; `write_in_place` reproduces that. The product's own
demo writer, fed by a real ffmpeg, is broadcaster/demo/emulator.py; this one is for tests and benches that
place every byte themselves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.ffmpeg import ffmpeg_exe

SECONDS = 1.0  # HandFedOwncast's EXTINF: Owncast's lowest latency level
PIECE = 64 * 1024  # bytes per write: a reader may see the file after any of them

Body = bytes | bytearray | memoryview | str
Entry = tuple[str, float, float | None]  # (segment name, EXTINF, PROGRAM-DATE-TIME epoch or None)


def write_in_place(path: Path, data: Body, *, piece: int = PIECE, stop_after: int | None = None) -> None:
    """Owncast copies each HTTP body into the final name: open, truncate, write in pieces (flushed, so a
    reader sees each one). `stop_after`: the writer is still busy after that many bytes."""
    raw = data.encode() if isinstance(data, str) else data
    end = len(raw) if stop_after is None else stop_after
    with open(path, "wb") as f:
        for i in range(0, end, piece):
            f.write(raw[i : min(i + piece, end)])
            f.flush()


def pdt(epoch: float) -> str:
    """EXT-X-PROGRAM-DATE-TIME as ffmpeg's hls muxer writes it: milliseconds and +0000."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def playlist_head(first: int, target: int) -> list[str]:
    """The tags ffmpeg writes above the entries of an Owncast variant playlist."""
    return ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}", f"#EXT-X-MEDIA-SEQUENCE:{first}",
            "#EXT-X-INDEPENDENT-SEGMENTS"]


def entry_text(name: str, duration: float, at: float | None = None) -> str:
    """One entry: its PROGRAM-DATE-TIME (Owncast always sets ffmpeg's program_date_time), EXTINF, name."""
    stamp = f"#EXT-X-PROGRAM-DATE-TIME:{pdt(at)}\n" if at is not None else ""
    return f"{stamp}#EXTINF:{duration:.6f},\n{name}"


def playlist_text(entries: Iterable[Entry], *, first: int, target: int) -> str:
    """A whole variant playlist as ffmpeg writes it (not ended)."""
    return "\n".join(playlist_head(first, target) + [entry_text(*e) for e in entries]) + "\n"


def media(*names: str, ended: bool = False) -> str:
    """A minimal media playlist of 1 s entries, for tests of the watcher's reading."""
    body = "".join(f"#EXTINF:1.000000,\n{n}\n" for n in names)
    return "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n" + body + (
        "#EXT-X-ENDLIST\n" if ended else "")


def real_ts_segment(folder: Path) -> bytes:
    """One real 1 s MPEG-TS segment (H.264 + AAC), made by the ffmpeg the tests use."""
    out = folder / "segment.ts"
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc=size=160x90:rate=30", "-f", "lavfi", "-i", "sine=frequency=440",
         "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac",
         "-f", "mpegts", str(out)],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    data = out.read_bytes()
    assert data[:1] == b"\x47" and len(data) % 188 == 0
    return data


Prepare = Callable[[Path], object]


@dataclass
class HandFedOwncast:
    """HLS_DIR written by hand the way Owncast writes it: `slot()` puts one segment in every variant
    folder, then rewrites every variant playlist to list it (a rolling list of `list_size` entries)."""

    root: Path
    ts: bytes
    variants: tuple[int, ...] = (0, 1)
    run: str = "f4ult"
    list_size: int = 10
    with_pdt: bool = True  # ffmpeg's program_date_time flag, which Owncast always sets
    entries: dict[int, list[str]] = field(default_factory=dict)  # one block (tags + URI) per entry
    removed: dict[int, int] = field(default_factory=dict)  # entries slid out = EXT-X-MEDIA-SEQUENCE
    number: int = 0  # Owncast's number for the next slot
    t0: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for v in self.variants:
            (self.root / str(v)).mkdir(exist_ok=True)
            self.entries[v] = []
            self.removed[v] = 0
        write_in_place(self.root / "stream.m3u8", self.master_text())

    def master_text(self) -> str:
        lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
        for v in self.variants:
            info = f'BANDWIDTH={900000 - 100000 * v},RESOLUTION=160x90,CODECS="avc1.64000c,mp4a.40.2"'
            lines += [f"#EXT-X-STREAM-INF:{info}", f"{v}/stream.m3u8"]
        return "\n".join(lines) + "\n"

    def name(self, number: int, ext: str = "ts") -> str:
        return f"stream-{self.run}-{number}.{ext}"

    def folder(self, v: int) -> Path:
        return self.root / str(v)

    def playlist(self, v: int) -> Path:
        return self.folder(v) / "stream.m3u8"

    def playlist_text(self, v: int) -> str:
        return "\n".join(playlist_head(self.removed[v], 1) + self.entries[v]) + "\n"

    def add_entry(self, v: int, uri: str, duration: float = SECONDS, number: int | None = None) -> None:
        """One more entry in variant v's list (without rewriting the file)."""
        at = self.t0 + (self.number if number is None else number) * SECONDS
        self.entries[v].append(entry_text(uri, duration, at if self.with_pdt else None))
        while len(self.entries[v]) > self.list_size:
            self.entries[v].pop(0)
            self.removed[v] += 1

    def write_playlist(self, v: int) -> None:
        write_in_place(self.playlist(v), self.playlist_text(v))

    def slot(
        self,
        prepare: dict[int, Prepare] | None = None,
        *,
        duration: dict[int, float] | None = None,
        ext: str = "ts",
    ) -> str:
        """The next segment in every variant: its file (by default the real TS bytes; `prepare[v]`
        makes something else of it), then the playlist that lists it. Returns its name."""
        name = self.name(self.number, ext)
        for v in self.variants:
            path = self.folder(v) / name
            make = (prepare or {}).get(v)
            if make is None:
                write_in_place(path, self.ts)
            else:
                make(path)
            self.add_entry(v, name, (duration or {}).get(v, SECONDS))
        for v in self.variants:
            self.write_playlist(v)
        self.number += 1
        return name


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
