"""Owncast's HLS folder, file by file, written the way Owncast writes it: the one writer.

Owncast's HTTP receiver creates each file under its final name and copies the request body in as it
arrives (no temp file, no rename), and ffmpeg PUTs a segment before the playlist that lists it. A reader
can therefore see a half-written segment or a truncated playlist. Everything that writes such a folder
uses these primitives: the emulator (fed by a real ffmpeg), the tests' hand-fed driver and the benches'
replayer (tests/support/owncast_writer.py), so the format has one copy.

Mirrored from Owncast (core/transcoder, fileWriterReceiverService.go, hlsFilesystemCleanup.go,
core/offlineState.go, utils.CleanupDirectory) and ffmpeg's hls muxer (program_date_time,
independent_segments, omit_endlist); see docs/owncast.md.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from broadcaster.demo.ledger import Finished, Hashing, Ledger

PLAYLIST = "stream.m3u8"  # the master in HLS_DIR and each variant's media playlist in HLS_DIR/<n>/
PIECE = 64 * 1024  # bytes per write: a reader may see the file after any of them
OFFLINE_SECONDS = 8  # Owncast v0.1.x hard-codes #EXTINF:8.000000 for its offline clip
# teris-io/shortid's alphabet: ids may contain '-' and '_', so names like
# stream-a-B_c9-d2x-12.ts happen in real life; watchers must parse loosely.
SHORTID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
SHORTID_LENGTH = 9

Body = bytes | bytearray | memoryview | str
Entry = tuple[str, float, float | None]  # (segment name, EXTINF, PROGRAM-DATE-TIME epoch or None)


def new_shortid(rng: random.Random | None = None) -> str:
    """A fresh id for one transcoder start (`rng` for a reproducible one)."""
    pick = secrets.choice if rng is None else rng.choice
    return "".join(pick(SHORTID_ALPHABET) for _ in range(SHORTID_LENGTH))


def segment_name(shortid: str, number: int, ext: str = "ts") -> str:
    """ffmpeg's `-hls_segment_filename stream-<shortid>-%d.<ext>` as Owncast sets it."""
    return f"stream-{shortid}-{number}.{ext}"


# -- writing in place -----------------------------------------------------------------------------


def write_in_place(
    path: Path, data: Body, *, piece: int = PIECE, cuts: Sequence[int] = (), pause: float = 0.0,
    stop_after: int | None = None, ledger: Ledger | None = None,
) -> None:
    """Owncast copies each HTTP body into the final name: open, truncate, write in pieces (flushed, so a
    reader sees each one). `cuts`: byte offsets where a piece must end, with `pause` seconds after each
    (a reader then reliably sees the file cut there). `stop_after`: the writer is still busy after that
    many bytes (so `ledger` records nothing: the file is not finished)."""
    raw = data.encode() if isinstance(data, str) else data
    end = len(raw) if stop_after is None else stop_after
    bounds = sorted({*range(piece, end, piece), *(c for c in cuts if 0 < c < end), end})
    with open(path, "wb") as f:
        start = 0
        for stop in bounds:
            f.write(raw[start:stop])
            f.flush()
            if pause > 0 and stop in cuts:
                time.sleep(pause)
            start = stop
    if ledger is not None and stop_after is None:
        ledger.record(path, Finished.of(raw))


class OpenInPlace:
    """A file written in place whose writer is still busy: its first `written` bytes are on disk and the
    file stays open until `finish()` writes the rest and closes it (only then does `ledger` record it).
    Owncast's receiver between a body's last bytes arriving and reaching the disk, held on purpose."""

    def __init__(self, path: Path, data: Body, written: int, ledger: Ledger | None = None) -> None:
        self.path = path
        self._raw = data.encode() if isinstance(data, str) else bytes(data)
        self._written = max(0, min(written, len(self._raw)))
        self._ledger = ledger
        self._file: IO[bytes] | None = open(path, "wb")
        self._file.write(self._raw[: self._written])
        self._file.flush()

    @property
    def finished(self) -> bool:
        return self._file is None

    def finish(self) -> None:
        """The rest of the body, then close. Idempotent."""
        if self._file is None:
            return
        f, self._file = self._file, None
        with f:
            f.write(self._raw[self._written :])
        if self._ledger is not None:
            self._ledger.record(self.path, Finished.of(self._raw))


async def copy_in_place(path: Path, chunks: AsyncIterable[bytes], *, delay: float = 0.0, pieces: int = 8,
                        ledger: Ledger | None = None) -> int:
    """The receiver's side of a PUT (os.Create + io.Copy): each chunk written as it arrives. delay > 0:
    the whole body in `pieces` writes with this pause before each, so readers catch the file half-written.
    `ledger` records the bytes once the file is closed."""
    hashing = Hashing()
    with path.open("wb") as f:
        if delay <= 0:
            async for chunk in chunks:
                f.write(chunk)
                f.flush()
                hashing.update(chunk)
        else:
            data = bytearray()
            async for chunk in chunks:
                data += chunk
            step = -(-len(data) // pieces) or 1
            for start in range(0, len(data) or 1, step):
                await asyncio.sleep(delay)
                f.write(data[start : start + step])
                f.flush()
            hashing.update(data)
    if ledger is not None:
        ledger.record(path, hashing.finished())
    return hashing.size


async def copy_late_tail(path: Path, chunks: AsyncIterable[bytes], hold: Callable[[], Awaitable[None]], *,
                         share: float = 0.2, ledger: Ledger | None = None) -> int:
    """A PUT whose handler is still copying the body's last bytes when the playlist naming the file is
    rewritten (issue 39), made certain: the file created, the whole body received, all but its last
    `share` written, the file kept open while `hold()` runs, then the rest written and the file closed
    (even if cancelled: the writer still finishes its file). `ledger` records the bytes as closed."""
    finished = False
    data = bytearray()
    try:
        with path.open("wb") as f:  # os.Create, before the body
            async for chunk in chunks:
                data += chunk
            cut = len(data) - max(1, int(len(data) * share)) if data else 0
            f.write(data[:cut])
            f.flush()
            try:
                await hold()
            finally:
                f.write(data[cut:])
                finished = True
    finally:
        if finished and ledger is not None:
            ledger.record(path, Finished.of(data))
    return len(data)


def move_into_place(text: str, target: Path, tmp_dir: Path, ledger: Ledger | None = None) -> None:
    """Owncast's other way (the offline tail only): a temp file in `tmp_dir` (same file system), then a move."""
    fd, tmp_name = tempfile.mkstemp(prefix=f"tmp-{target.name}", dir=tmp_dir)
    raw = text.encode()
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    shutil.move(tmp_name, target)
    if ledger is not None:
        ledger.record(target, Finished.of(raw))


# -- the playlists' text --------------------------------------------------------------------------


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


def listed_segments(text: str) -> list[str]:
    """URIs in a media playlist, ignoring a last line that is still being written."""
    complete = text.split("\n")[:-1]  # text after the last newline may be cut short
    return [line.strip() for line in complete if line.strip() and not line.startswith("#")]


@dataclass(frozen=True)
class MasterEntry:
    """One variant in the master playlist ffmpeg writes (`-master_pl_name stream.m3u8`)."""

    bandwidth: int
    resolution: str = "1280x720"
    codecs: str = "avc1.64001f,mp4a.40.2"


def master_text(variants: Sequence[MasterEntry]) -> str:
    """The master playlist: one EXT-X-STREAM-INF per variant folder 0, 1, ..., a blank line after each."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    for i, v in enumerate(variants):
        info = f'BANDWIDTH={v.bandwidth},RESOLUTION={v.resolution},CODECS="{v.codecs}"'
        lines += [f"#EXT-X-STREAM-INF:{info}", f"{i}/{PLAYLIST}", ""]
    return "\n".join(lines) + "\n"


def offline_tail_text(existing: str | None, segment: str, init: str | None = None) -> str:
    """A variant playlist after the broadcaster left: the offline clip appended, then ENDLIST
    (core/offlineState.go). `existing` None: no playlist yet, so the clip alone."""
    lines = ["#EXT-X-DISCONTINUITY"] if existing is not None else []
    if init is not None:
        lines.append(f'#EXT-X-MAP:URI="{init}"')
    lines += [f"#EXTINF:{OFFLINE_SECONDS}.000000,", segment, "#EXT-X-ENDLIST"]
    if existing is None:
        existing = f"#EXTM3U\n#EXT-X-VERSION:{7 if init else 3}\n#EXT-X-TARGETDURATION:{OFFLINE_SECONDS}\n"
    return existing + "\n".join(lines) + "\n"


@dataclass
class RollingList:
    """ffmpeg's `-hls_list_size`: the newest `size` entries, as text blocks a test may still edit."""

    size: int
    blocks: list[str]
    removed: int = 0  # entries slid out: the EXT-X-MEDIA-SEQUENCE

    def add(self, name: str, duration: float, at: float | None = None) -> None:
        self.blocks.append(entry_text(name, duration, at))
        while len(self.blocks) > self.size:
            self.blocks.pop(0)
            self.removed += 1

    def text(self, target: int) -> str:
        return "\n".join(playlist_head(self.removed, target) + self.blocks) + "\n"


# -- the folder's life ----------------------------------------------------------------------------


def wipe(hls_dir: Path, variants: Iterable[int], *, aside: Path | None = None) -> None:
    """A transcoder start (utils.CleanupDirectory): os.RemoveAll(HLS_DIR), MkdirAll, one folder per
    variant, so HLS_DIR itself is replaced. `aside`: move the old one there first, so the new folder
    cannot reuse its inode while it still exists."""
    if aside is not None and hls_dir.exists():
        os.rename(hls_dir, aside)
        hls_dir.mkdir(parents=True)
        shutil.rmtree(aside)
    else:
        shutil.rmtree(hls_dir, ignore_errors=True)
        hls_dir.mkdir(parents=True, exist_ok=True)
    for v in variants:
        (hls_dir / str(v)).mkdir()


def cleanup_old_segments(folder: Path, keep: int, may_remove: Callable[[Path], bool] | None = None) -> int:
    """Owncast's local cleanup of one variant folder: keep the newest `keep` segments (by mtime).
    `may_remove`: a filter on the older ones (a bench spares what the service has not read yet)."""
    stamped: list[tuple[int, Path]] = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return 0
    for path in entries:
        if path.suffix in (".ts", ".m4s"):
            try:
                stamped.append((path.stat().st_mtime_ns, path))
            except FileNotFoundError:
                continue
    stamped.sort(reverse=True)
    removed = 0
    for _, path in stamped[keep:]:
        if may_remove is None or may_remove(path):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


class OwncastFolder:
    """HLS_DIR as one Owncast stream writes it: variant folders, each with its rolling list.

    `slot()` is what ffmpeg does every segment: the segment in every variant folder, then every
    variant playlist rewritten in place to list it. The finer steps are there for writers that
    break the order on purpose. `ledger`: where every file written is recorded once closed."""

    def __init__(self, root: Path, variants: Sequence[int] = (0,), *, shortid: str | None = None,
                 list_size: int = 10, target: int = 1, piece: int = PIECE,
                 ledger: Ledger | None = None) -> None:
        self.root = root
        self.ledger = ledger
        self.variants = tuple(variants)
        self.shortid = shortid if shortid is not None else new_shortid()
        self.target = target
        self.piece = piece
        self.number = 0  # ffmpeg's number for the next segment
        self.lists = {v: RollingList(list_size, []) for v in self.variants}
        root.mkdir(parents=True, exist_ok=True)
        for v in self.variants:
            self.folder(v).mkdir(exist_ok=True)

    @property
    def list_size(self) -> int:
        return self.lists[self.variants[0]].size

    @list_size.setter
    def list_size(self, size: int) -> None:
        for rolling in self.lists.values():
            rolling.size = size

    def folder(self, v: int) -> Path:
        return self.root / str(v)

    def playlist(self, v: int) -> Path:
        return self.folder(v) / PLAYLIST

    def name(self, number: int, ext: str = "ts") -> str:
        return segment_name(self.shortid, number, ext)

    def restart(self, *, shortid: str | None = None, aside: Path | None = None) -> None:
        """A new transcoder start: HLS_DIR wiped, a new shortid, numbering and lists from scratch."""
        wipe(self.root, self.variants, aside=aside)
        self.shortid = shortid if shortid is not None else new_shortid()
        self.number = 0
        self.lists = {v: RollingList(self.list_size, []) for v in self.variants}

    def write_master(self, entries: Sequence[MasterEntry]) -> None:
        write_in_place(self.root / PLAYLIST, master_text(entries), piece=self.piece, ledger=self.ledger)

    def write_segment(self, v: int, name: str, body: Body) -> Path:
        path = self.folder(v) / name
        write_in_place(path, body, piece=self.piece, ledger=self.ledger)
        return path

    def begin_segment(self, v: int, name: str, body: Body, written: int) -> OpenInPlace:
        """A segment whose writer is still busy after `written` bytes: `finish()` the rest."""
        return OpenInPlace(self.folder(v) / name, body, written, self.ledger)

    def playlist_text(self, v: int) -> str:
        return self.lists[v].text(self.target)

    def write_playlist(self, v: int, *, cuts: Sequence[int] = (), pause: float = 0.0) -> None:
        write_in_place(self.playlist(v), self.playlist_text(v), piece=self.piece, cuts=cuts, pause=pause,
                       ledger=self.ledger)

    def slot(self, bodies: Body | Mapping[int, Body], *, duration: float = 1.0, at: float | None = None,
             ext: str = "ts") -> str:
        """The next segment (the same body everywhere, or one per variant), then the playlists."""
        name = self.name(self.number, ext)
        for v in self.variants:
            self.write_segment(v, name, bodies[v] if isinstance(bodies, Mapping) else bodies)
            self.lists[v].add(name, duration, at)
        for v in self.variants:
            self.write_playlist(v)
        self.number += 1
        return name

    def offline(self, clip: Body, tmp_dir: Path, name: str = "offline.ts") -> None:
        """The broadcaster left: the offline clip copied into each variant folder and appended."""
        for v in self.variants:
            self.write_segment(v, name, clip)
            text = offline_tail_text(self.playlist_text(v), name)
            move_into_place(text, self.playlist(v), tmp_dir, self.ledger)

    def cleanup(self, keep: int, may_remove: Callable[[Path], bool] | None = None) -> int:
        return sum(cleanup_old_segments(self.folder(v), keep, may_remove) for v in self.variants)
