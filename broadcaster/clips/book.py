"""The clips the operator made: each a VOD playlist over the live window's segments where they are (no
video copied), held from the cleaner while the clip exists and saved in STATE_DIR/clips.json.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ..bucket.cleaner import DeletingStore
from ..bucket.recorder import VOD_CACHE_CONTROL, PlaylistUploader  # a clip, as a recording, never changes
from ..bucket.store import StoreError
from ..playlist import hls
from ..playlist.hls import format_program_date_time as _iso  # times as the playlists write them
from ..playlist.master import render_master
from ..playlist.segments import ListedSegment
from ..playlist.vod import render_vod
from ..source.owncast import SourceVariant
from ..state import validate
from ..settings import MOST_CLIPS
from ..state.disk import StateFile

log = logging.getLogger(__name__)

CLIPS_FILE = "clips.json"
# The operator's control socket in STATE_DIR: served by http/control.py, reached by `hls-broadcaster clip`.
SOCKET_FOLDER = "control"
SOCKET_NAME = "control.sock"
CLIP_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{4}")
_MAX_KEYS = 500_000  # a 4 h window of 1 s segments in 30 variants
LATE_WAIT = 10.0  # seconds a clip waits for a gap's segment still uploading late: a clip never changes
LATEST = 253_402_300_799.0  # the last Unix second RFC 3339 can write (9999-12-31T23:59:59Z)


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_FOLDER / SOCKET_NAME


class ClipError(ValueError):
    """What the operator asked cannot be made; one line that says why."""


class Shown(Protocol):
    """What one variant's live playlist showed clients and still lists (publish's VariantPlaylist)."""

    def shown_span(self) -> tuple[float, float] | None: ...
    def shown_between(self, start: float, end: float) -> list[ListedSegment]: ...


class ClipSource(Protocol):
    def variants(self) -> list[int]: ...
    def playlist(self, index: int) -> Shown | None: ...

    async def landed(self, keys: list[str], timeout: float) -> set[str]:
        """Of these gaps' keys, those whose segment is in the bucket after all (waiting `timeout` at most)."""


class Holder(Protocol):
    def hold(self, keys: list[str]) -> None: ...
    def let_go(self, keys: list[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class Clip:
    id: str
    created: float  # Unix time it was made
    start: float  # PROGRAM-DATE-TIME of its first segment
    end: float  # ... and of the end of its last
    url: str  # its multivariant playlist: public, or a path of the service (a private stream's, gated)
    keys: tuple[str, ...]  # the segments it lists
    playlists: tuple[str, ...]  # its own playlists: objects in the bucket, or kept (a private stream's)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "start": _iso(self.start), "end": _iso(self.end),
                "seconds": round(self.end - self.start, 3), "created": _iso(self.created),
                "segments": len(self.keys), "private": self.gated}

    @property
    def gated(self) -> bool:
        return self.url.startswith("/")

    def saved(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created, "start": self.start, "end": self.end, "url": self.url,
                "keys": list(self.keys), "playlists": list(self.playlists)}

    @classmethod
    def from_saved(cls, raw: object) -> Clip:
        d = validate.mapping(raw, "a clip", 20)
        clip_id = validate.text(validate.field(d, "id", "a clip"), "a clip id", 64)
        if not CLIP_ID.fullmatch(clip_id):
            raise ValueError(f"clip id {validate.describe(clip_id)} is not one of ours")
        return cls(clip_id,
                   validate.number(validate.field(d, "created", "a clip"), "a clip's time"),
                   validate.number(validate.field(d, "start", "a clip"), "a clip's start"),
                   validate.number(validate.field(d, "end", "a clip"), "a clip's end"),
                   validate.text(validate.field(d, "url", "a clip"), "a clip's URL"),
                   tuple(validate.text(k, "a clip's segment key")
                         for k in validate.array(validate.field(d, "keys", "a clip"), "keys", _MAX_KEYS)),
                   tuple(validate.text(k, "a clip's playlist key")
                         for k in validate.array(validate.field(d, "playlists", "a clip"), "playlists", 1000)))


def parse_time(text: str) -> float:
    """A time of day as the operator writes it: RFC 3339 (2026-11-23T14:00:00Z) or Unix seconds."""
    value = text.strip()
    try:
        return float(value) if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value) else datetime.fromisoformat(
            value.replace("z", "Z")).timestamp()
    except ValueError:
        raise ClipError(f"{text!r} is not a time: give RFC 3339 (2026-11-23T14:00:00Z) or Unix seconds") from None


@dataclass(frozen=True)
class ClipPlaces:
    """`public_url` None: presigned URLs (no clip); `gated`: where a private stream's clips are served."""

    key_prefix: str
    public_url: str | None
    max_clips: int = MOST_CLIPS
    wall_clock: Callable[[], float] = time.time
    gated: str | None = None


class ClipBook:
    def __init__(self, file: StateFile, uploader: PlaylistUploader, store: DeletingStore, source: ClipSource,
                 announced: Callable[[], list[SourceVariant] | None], places: ClipPlaces, *,
                 holder: Holder | None) -> None:
        """`holder`: the cleaner (None when nothing is ever deleted)."""
        self._file = file
        self._places = places
        self._uploader = uploader
        self._store = store
        self._source = source
        self._announced = announced
        self._prefix = places.key_prefix
        self._holder = holder
        self._clips: dict[str, Clip] = {}
        self._lock = asyncio.Lock()  # one change at a time: the file is written whole

    def load(self) -> None:
        """The clips saved before a restart, held again before the cleaner's first run; bad ones dropped."""
        data = self._file.load()
        if data is None:
            return
        entries = data.get("clips")
        if type(entries) is not list:
            self._file.set_aside("corrupt", f"clips is {validate.describe(entries)}, not a list")
            return
        dropped: list[str] = []
        for raw in entries[:MOST_CLIPS]:
            try:
                clip = Clip.from_saved(raw)
            except ValueError as err:
                dropped.append(str(err))
                continue
            if clip.id in self._clips:
                dropped.append(f"clip id {clip.id} listed twice")
                continue
            self._clips[clip.id] = clip
            if self._holder is not None:
                self._holder.hold(list(clip.keys))
        kept = len(self._clips)
        beyond = max(0, len(entries) - MOST_CLIPS)
        if dropped or beyond:
            self._report_dropped(kept, dropped, beyond)
        if kept:
            log.info("%d clip(s) kept from before the restart", kept)
        if kept > self._places.max_clips:
            log.warning("%d clips kept, more than MAX_CLIPS=%d: new clips are refused until some are deleted",
                        kept, self._places.max_clips)

    def _report_dropped(self, kept: int, dropped: list[str], beyond: int) -> None:
        copy = self._file.path.with_name(f"{self._file.path.name}.dropped-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            shutil.copyfile(self._file.path, copy)
            kept_as = f"the file as it was is copied to {copy}"
        except OSError as err:
            kept_as = f"the file as it was could not be copied aside ({err.strerror or err})"
        why = [f"{len(dropped)} unreadable (first: {validate.describe(dropped[0])})"] if dropped else []
        why += [f"{beyond} beyond the first {MOST_CLIPS}"] if beyond else []
        log.error("%s: dropped %d clip(s), %s; kept %d; the segments only they listed are no longer kept; %s",
                  self._file.path, len(dropped) + beyond, ", ".join(why), kept, kept_as)

    def clips(self) -> list[Clip]:
        return sorted(self._clips.values(), key=lambda c: (c.start, c.id))

    def span(self) -> tuple[float, float] | None:
        """What the window shows now, by PROGRAM-DATE-TIME, over every variant."""
        shown = [self._source.playlist(index) for index in self._source.variants()]
        spans = [s for s in (p.shown_span() for p in shown if p is not None) if s is not None]
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)

    async def make(self, *, last: float | None = None, start: float | None = None,
                   end: float | None = None) -> Clip:
        """A clip of the last `last` seconds, or from `start` to `end` (Unix times), inside the window."""
        for name, value in (("last", last), ("from", start), ("to", end)):
            if value is not None and not 0 <= value <= LATEST:  # NaN too
                raise ClipError(f"{name!r} must be a number of seconds from 0 to {LATEST:.0f} (9999-12-31)")
        if self._places.public_url is None and self._places.gated is None:
            raise ClipError("clips need segments any player may read: with SEGMENT_URLS=presigned no player could "
                            "read the clip's playlists in the bucket (a private stream, PRIVATE=true, serves them)")
        span = self.span()
        if span is None:
            raise ClipError("the live playlists list nothing yet: no stream in the window to clip")
        if last is not None:
            if not last > 0:
                raise ClipError("--last must be a number of seconds above 0")
            end = span[1]
            start = max(span[0], end - last)
        if start is None or end is None:
            raise ClipError("give --last SECONDS, or --from TIME and --to TIME")
        window = f"the window holds {_iso(span[0])} to {_iso(span[1])} (REWIND_SECONDS)"
        if not start < end:
            raise ClipError(f"the clip must end after it starts ({_iso(start)} to {_iso(end)})")
        if start < span[0] - 0.001:
            raise ClipError(f"{_iso(start)} is before the window: {window}")
        if start >= span[1]:
            raise ClipError(f"{_iso(start)} is after the live edge: {window}")
        end = min(end, span[1])
        async with self._lock:
            if len(self._clips) >= self._places.max_clips:
                raise ClipError(f"{len(self._clips)} clips kept, the most MAX_CLIPS allows: delete one "
                                "(hls-broadcaster clip --delete ID) or raise MAX_CLIPS")
            clip_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(start)) + "-" + secrets.token_hex(2)
            shown = self._shown(start, end)
            # A gap whose segment landed late is a segment here (the live playlist keeps its gap, 6.2.2).
            landed = await self._source.landed([s.key for ss in shown.values() for s in ss if s.gap and s.key],
                                                LATE_WAIT)
            shown = {i: [replace(s, gap=False) if s.gap and s.key in landed else s for s in ss]
                     for i, ss in shown.items()}
            bodies, keys, first, stop = self._playlists(shown, start, end)
            media = {hls.clip_key(self._prefix, clip_id, hls.variant_uri(i, hls.MEDIA_PLAYLIST_NAME)): body
                     for i, body in bodies.items()}
            master = hls.clip_key(self._prefix, clip_id, hls.MASTER_PLAYLIST_NAME)
            clip = Clip(clip_id, self._places.wall_clock(), first, stop, self._url(clip_id), tuple(keys),
                        (*media, master))
            # Held and saved first: the cleaner must not take a segment while the playlists upload.
            self._clips[clip_id] = clip
            if self._holder is not None:
                self._holder.hold(keys)
            try:
                await self._save()
                for key, body in [*media.items(), (master, self._master(list(bodies)))]:
                    await self._uploader.upload_bytes(key, body, content_type=hls.PLAYLIST_CONTENT_TYPE,
                                                      cache_control=VOD_CACHE_CONTROL)
            except BaseException:  # cancelled (the bucket did not take it in time) or the disk refused
                del self._clips[clip_id]
                if self._holder is not None:
                    self._holder.let_go(keys)
                await asyncio.shield(self._save_quietly())
                raise
        log.info("clip %s made: %s to %s, %d segments, %s", clip_id, _iso(first), _iso(stop), len(keys), clip.url)
        return clip

    def _url(self, clip_id: str) -> str:
        if self._places.gated is not None:
            return f"{self._places.gated}/{hls.clip_key('', clip_id, hls.MASTER_PLAYLIST_NAME)}"
        return f"{self._places.public_url}/{hls.clip_key(self._prefix, clip_id, hls.MASTER_PLAYLIST_NAME)}"

    def _shown(self, start: float, end: float) -> dict[int, list[ListedSegment]]:
        """Per variant, the segments clients were shown between `start` and `end` (those with a key)."""
        out: dict[int, list[ListedSegment]] = {}
        for index in self._source.variants():
            shown = self._source.playlist(index)
            segments = [s for s in (shown.shown_between(start, end) if shown is not None else []) if s.key]
            if segments:
                out[index] = segments
        return out

    def _playlists(self, shown: dict[int, list[ListedSegment]], start: float,
                   end: float) -> tuple[dict[int, bytes], list[str], float, float]:
        """Each variant's VOD playlist of `shown` (a gap stays a gap, so every variant numbers alike)."""
        bodies: dict[int, bytes] = {}  # by variant
        keys: list[str] = []
        first, stop = float("inf"), float("-inf")
        for index, segments in shown.items():
            target = max(1, max(hls.rounded_duration(s.duration) for s in segments))
            listed = [replace(s, uri=hls.clip_segment_uri(self._prefix, s.key or "")) for s in segments]
            bodies[index] = render_vod(listed, target)
            keys += [s.key for s in segments if s.key and not s.gap]
            first = min(first, segments[0].program_date_time or start)
            last = segments[-1]
            stop = max(stop, (last.program_date_time or end) + last.duration)
        if not bodies:
            raise ClipError(f"no segment is listed between {_iso(start)} and {_iso(end)}")
        return bodies, keys, first, stop

    def _master(self, variants: list[int]) -> bytes:
        """Owncast's variants in the clip as its master announces them."""
        known = {v.index: v for v in self._announced() or []}
        return render_master([known.get(i) or SourceVariant(i, 1) for i in variants]).body

    async def delete(self, clip_id: str) -> Clip:
        """Delete a clip's playlists; its segments go once no playlist and no other clip lists them."""
        async with self._lock:
            clip = self._clips.get(clip_id)
            if clip is None:
                raise KeyError(clip_id)
            try:
                failed = await self._store.delete_many(list(clip.playlists))
            except StoreError as err:
                raise ClipError(f"the bucket refused to delete the clip ({err.reason}); it is kept, try again") from None
            if failed:
                raise ClipError(f"the bucket did not delete {', '.join(failed)}; the clip is kept, try again")
            del self._clips[clip_id]
            await self._save()
            if self._holder is not None:
                self._holder.let_go(list(clip.keys))
        log.info("clip %s deleted; its %d segments go once nothing lists them", clip_id, len(clip.keys))
        return clip

    async def _save(self) -> None:
        data = {"clips": [c.saved() for c in self.clips()]}
        await asyncio.to_thread(self._file.save, data)

    async def _save_quietly(self) -> None:
        try:
            await self._save()
        except OSError as err:
            log.error("cannot save %s: %s", self._file.path, err.strerror or err)
