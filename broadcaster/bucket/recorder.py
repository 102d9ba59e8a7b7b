"""KEEP_RECORDINGS: every listed segment of a run is journaled in STATE_DIR; when the stream ends, a VOD
playlist of the run is written next to its segments, plus a multivariant one. Journal lines `landed` and
`lost` mend or make its gaps."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import urlsplit

from ..numbers import whole_number
from ..playlist import hls
from ..playlist.master import render_master
from ..playlist.segments import ListedSegment
from ..playlist.vod import render_vod
from ..source.owncast import SourceVariant
from ..state import validate

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_-]")
LATE_WAIT = 15.0  # seconds a recording waits, once its stream ended, for segments uploading late
VOD_CACHE_CONTROL = "public, max-age=86400"


def _journal_entry(raw: str, *, first: bool) -> ListedSegment:
    """One journal line, checked: it is written into a playlist again (ValueError when it does not add up)."""
    d = validate.mapping(json.loads(raw, parse_constant=float), "a journal line", 10)
    name = validate.text(validate.field(d, "name", "a journal line"), "a segment name", 1024)
    pdt = validate.field(d, "pdt", "a journal line")
    init = validate.field(d, "init", "a journal line")
    if init is not None and '"' in validate.text(init, "an init name", 1024):
        raise ValueError("an init name contains a quote")
    return ListedSegment(
        name, validate.number(validate.field(d, "duration", "a journal line"), "a duration", 0.001, 3600),
        None if pdt is None else validate.number(pdt, "a date", 0, 253_402_300_799),
        validate.flag(validate.field(d, "discontinuity", "a journal line"), "a discontinuity") and not first,
        init, gap=validate.flag(d.get("gap", False), "a gap"))  # absent in older journals


def _marked(raw: str, mark: str) -> str | None:
    """The segment a `landed` or `lost` line names; None for any other line or mark."""
    if f'"{mark}"' not in raw:
        return None
    d = validate.mapping(json.loads(raw), "a journal line", 1)
    return validate.text(validate.field(d, mark, "a journal line"), "a segment name", 1024)


class PlaylistUploader(Protocol):
    """Where a recording's or a clip's playlists go: the bucket's uploader, or a private stream's."""

    async def upload_bytes(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> float: ...


class Recorder:
    def __init__(self, uploader: PlaylistUploader, state_dir: Path, key_prefix: str) -> None:
        self._uploader = uploader
        self._dir = state_dir / "recordings"
        self._prefix = key_prefix
        self._tasks: set[asyncio.Task[None]] = set()
        self.written: list[str] = []  # keys of finished recordings
        self._late: dict[str, set[asyncio.Future[None]]] = {}  # run -> its segments still uploading late

    def _folder(self, run: str) -> Path:
        return self._dir / _SAFE.sub("_", run)

    def record(self, run: str, variant: int, segment: ListedSegment) -> None:
        """Append a listed segment to its run's journal (names only: the playlist sits beside them)."""
        line: dict[str, object] = {
            "name": PurePosixPath(segment.key or segment.uri).name, "duration": segment.duration,
            "pdt": segment.program_date_time, "discontinuity": segment.discontinuity,
            # The URL's path, not the URL: a presigned one ends in ?X-Amz-... (the object's name is the same).
            "init": PurePosixPath(urlsplit(segment.init_uri).path).name if segment.init_uri else None,
        }
        if segment.gap:
            line["gap"] = True
        self._append(run, variant, line)

    def landed(self, run: str, variant: int, name: str) -> None:
        """A segment journaled as a gap is in the bucket now (uploaded late): the recording lists it."""
        self._append(run, variant, {"landed": name})

    def lost(self, run: str, variant: int, name: str) -> None:
        """A segment journaled as listed will never be in the bucket: the recording lists a gap there."""
        self._append(run, variant, {"lost": name})

    def expect(self, run: str, settled: asyncio.Future[None]) -> None:
        """A segment of `run` uploading late: its recording waits for `settled` (LATE_WAIT at most)."""
        pending = self._late.setdefault(run, set())
        pending.add(settled)
        settled.add_done_callback(pending.discard)

    def _append(self, run: str, variant: int, line: dict[str, object]) -> None:
        path = self._folder(run) / f"{variant}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def finish(self, run: str, target_duration: int, variants: list[SourceVariant] | None) -> None:
        task = asyncio.create_task(self._write(run, target_duration, variants), name=f"recording-{run}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, run: str, target_duration: int, variants: list[SourceVariant] | None) -> None:
        if late := self._late.pop(run, set()):
            _done, pending = await asyncio.wait(late, timeout=LATE_WAIT)
            if pending:
                log.warning("recording of run %s: %d segment(s) still uploading late after %gs; listed as gaps",
                            run, len(pending), LATE_WAIT)
        name = f"recording-{_SAFE.sub('_', run)}.m3u8"
        put = functools.partial(self._uploader.upload_bytes, content_type=hls.PLAYLIST_CONTENT_TYPE,
                                cache_control=VOD_CACHE_CONTROL)
        written: list[int] = []
        for journal in sorted(self._folder(run).glob("*.jsonl")):
            if (variant := whole_number(journal.stem, 4)) is None:
                continue  # not a variant's journal
            segments: list[ListedSegment] = []
            landed: set[str] = set()
            lost: set[str] = set()
            unreadable = 0
            for raw in journal.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    if (arrived := _marked(raw, "landed")) is not None:
                        landed.add(arrived)
                    elif (gone := _marked(raw, "lost")) is not None:
                        lost.add(gone)
                    else:
                        segments.append(_journal_entry(raw, first=not segments))
                except (ValueError, RecursionError):
                    unreadable += 1  # a line cut by a crash, or damaged: that segment is missing
            segments = [replace(s, gap=False) if s.gap and s.uri in landed
                        else replace(s, gap=True) if not s.gap and s.uri in lost else s for s in segments]
            if unreadable:
                log.warning("recording of run %s, variant %d: %d unreadable line(s) in %s left out",
                            run, variant, unreadable, journal)
            if not segments:
                continue
            key = hls.object_key(self._prefix, variant, name)
            await put(key, render_vod(segments, target_duration))
            written.append(variant)
            log.info("recording of run %s, variant %d: %d segments kept at %s", run, variant, len(segments), key)
        if written:
            known = {v.index: v for v in variants or []}
            master = render_master([known.get(v) or SourceVariant(v, 1) for v in written], media_name=name)
            key = hls.bucket_key(self._prefix, name)
            await put(key, master.body)
            self.written.append(key)

    async def close(self) -> None:
        """Give recordings being written a moment, then stop."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for t in list(self._tasks):
            t.cancel()
