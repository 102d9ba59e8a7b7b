"""The Publisher's memory as JSON (state.json's top level) and Recall, which writes it and restores each
part through its own. state.json may be damaged or crafted: `decode` checks types, ranges and sizes
before anything is used, and raises ValueError naming what does not add up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Set as AbstractSet
from dataclasses import dataclass
from dataclasses import field as member
from typing import Any

from ..numbers import whole_number
from ..playlist import hls
from ..playlist.segments import ListedSegment, Removed
from ..source.owncast import SourcePlaylist, stream_id
from ..state.snapshots import SHOWN_PAST
from ..state.validate import INT64, array, describe, field, flag, integer, mapping, number, text
from .late import parse_saved
from .behind import Behind
from .parts import Parts
from .playlist_memory import MAX_RESTORED_TARGET, saved_segment
from .release import RESERVED
from .slots import SEEN_LIMIT, SeenNames, SlotKey, Variant, succeeded
from .variant_playlist import SegmentRejected, VariantPlaylist

log = logging.getLogger(__name__)

# A variant's playlist, not open yet (None) or restored from its saved form (variants.Variants.playlist).
PlaylistMaker = Callable[[int, dict[str, Any] | None, float], VariantPlaylist]

# Bounds on what a saved state may hold, far above what the service writes: more is not ours.
_MAX_VARIANTS = 100
_MAX_RUNS = 1_000_000  # Owncast transcoder runs seen over the service's life, one per stream start
_MAX_UPLOADED = 100_000
# Keys that left a window while the bucket's playlist lagged (a day's outage at 1 s segments: 86,400).
_MAX_LEAVING = 2_000_000
# A removed segment's time kept: a week is not ours.
_MAX_KEEP = 7 * 86400.0


@dataclass(slots=True)
class Memory:
    """What the publisher carries across a restart."""

    variants: Mapping[int, Variant]
    target: int | None
    independent: bool
    next_sequence: int
    last_run: int | None
    decided: SlotKey
    runs: Mapping[str, int]  # Owncast run name -> order
    uploaded: AbstractSet[str]  # keys uploaded before a restart, not listed then
    reserved: int = 0  # numbers below it may have been served once this state was saved
    clean: bool = False  # saved at a clean stop: nothing past next_sequence served
    allowed: int = 0  # numbers below it may be shown before a save succeeds (recorded in STATE_DIR/served)
    discontinuity_floor: int = 0  # what a new playlist starts from after continuing above a state
    continue_at: int = 0  # not `clean`: where every playlist continues, and the discontinuity number
    continue_floor: int = 0  # it starts above (hls.continue_above)
    late: list[tuple[int, str, str]] = member(default_factory=list)  # late uploads, [variant, key, run]
    late_landed: list[str] = member(default_factory=list)  # gaps whose segment landed
    # What waiting slots were listed as here (run, variant, entry): its gaps are late.
    waited: list[tuple[str, int, ListedSegment]] = member(default_factory=list)


def _number_key(key: str, what: str, digits: int) -> int:
    """A saved object's key that must be a number (JSON keys are text)."""
    number = whole_number(key, digits)
    if number is None:
        raise ValueError(f"{what} numbered {describe(key)} is not one of ours")
    return number


def _slot_key(raw: object, what: str, low: int = 0) -> SlotKey:
    pair = array(raw, what, 2)
    if len(pair) != 2:
        raise ValueError(f"{what} is {describe(pair)}, not [run, number]")
    return integer(pair[0], what, low), integer(pair[1], what, low)


def _leaving(item: object) -> tuple[str, float]:
    """One of a variant's keys that left its window, [key, seconds kept]."""
    pair = array(item, "a leaving key", 2)
    if len(pair) != 2:
        raise ValueError(f"a leaving key is {describe(pair)}, not [key, seconds kept]")
    return text(pair[0], "a leaving key"), number(pair[1], "a leaving key's time kept", 0, _MAX_KEEP)


def _uploading(raw: object) -> dict[str, list[str]]:
    """A variant's uploads not landed, by pathway (a list: the first bucket's, in older files)."""
    if isinstance(raw, list):
        raw = {hls.BUCKET_PATHWAY: raw}
    by_pathway = mapping(raw, "uploading", 64)
    return {text(pid, "a pathway", 64): [text(k, "an uploading key") for k in array(keys, "uploading", _MAX_UPLOADED)]
            for pid, keys in by_pathway.items()}


def _restore_waiting(playlist: VariantPlaylist, raw: object, now: float) -> list[tuple[str, ListedSegment]]:
    """What waited in a variant, listed under the numbers the others gave it (a copy not uploaded as a
    gap); returns what it listed, each with its recording's run."""
    listed: list[tuple[str, ListedSegment]] = []
    for item in array(raw, "waiting", 10_000):
        if item in ("gap", "end"):
            playlist.gap() if item == "gap" else playlist.end()
            continue
        entry = array(item, "a waiting slot", 9)
        if len(entry) not in (7, 8, 9) or not playlist.opened:
            raise ValueError(f"a waiting slot is {describe(entry)}, not [number, uri, duration, date, "
                             "discontinuity, init, key, run, uploaded] of an open playlist")
        uploaded = len(entry) == 9 and flag(entry[8], "uploaded") and entry[6] is not None
        segment = saved_segment(entry[1:7], 3600, dated=False, gap=not uploaded)
        sequence = integer(entry[0], "a waiting number")
        if playlist.listing and sequence != playlist.next_sequence:
            raise ValueError(f"waiting slot {sequence} does not follow the playlist's {playlist.next_sequence - 1}")
        try:
            playlist.list(segment, None, now, sequence, now)
        except SegmentRejected as err:
            raise ValueError(f"waiting slot {sequence}: {err}") from None
        # Its recording's run (older files: Owncast's stream id in the name, if any).
        run = text(entry[7], "a waiting slot's run", 1 << 16, one_line=False) if len(entry) >= 8 else \
            stream_id((segment.key or segment.uri).rpartition("/")[2]) or ""
        listed.append((run, segment))
    return listed


def decode(data: dict[str, object], now: float, playlist: PlaylistMaker) -> Memory:
    """The memory `Recall.memory` wrote, each variant's playlist made by `playlist`."""
    what = "publisher state"
    data = mapping(data, what, 1000)
    raw_target = field(data, "target_duration", what)
    target = None if raw_target is None else integer(raw_target, "target_duration", 1, MAX_RESTORED_TARGET)
    variants: dict[int, Variant] = {}
    waited: list[tuple[str, int, ListedSegment]] = []
    for name, raw in mapping(field(data, "variants", what), "variants", _MAX_VARIANTS).items():
        index = _number_key(name, "a variant", 4)
        raw = mapping(raw, f"variant {name}", 100)
        gen_data = field(raw, "generator", what)
        restored = playlist(index, None if gen_data is None else mapping(gen_data, "generator", 100), now)
        if restored.opened and restored.target_duration != target:
            raise ValueError(f"variant {name}: target duration {restored.target_duration}, not {target}")
        waited += [(run, index, s) for run, s in _restore_waiting(restored, raw.get("waiting", []), now)]
        # Uploads listed before they landed, of what it lists: started again.
        listed = set(restored.uris_by_key())
        restored.landings.restored({pid: [key for key in keys if key in listed]
                                    for pid, keys in _uploading(raw.get("uploading", {})).items()})
        restored.restore_views(raw.get("views", {}))  # absent in older files
        # Older files: keys that left a window while the bucket's playlist lagged, for the cleaner.
        leaving = array(raw.get("leaving", []), "leaving", _MAX_LEAVING)
        restored.left([_leaving(item) for item in leaving], now)
        in_flight = {text(n, "a name in flight", 1 << 16, one_line=False)
                     for n in array(raw.get("in_flight", []), "in_flight", SEEN_LIMIT)}  # absent in older files
        seen = SeenNames()
        for item in array(field(raw, "seen", what), "seen", SEEN_LIMIT):
            name = text(item, "a seen name", 1 << 16, one_line=False)
            if name not in in_flight:
                seen[name] = None
        first = mapping(field(raw, "first", what), "first", _MAX_RUNS)
        raw_last_key = field(raw, "last_key", what)
        last_key = None if raw_last_key is None else _slot_key(raw_last_key, "last_key")
        variants[index] = Variant(
            index, restored, seen,
            first={_number_key(k, "a run", 18): integer(n, "a first number") for k, n in first.items()},
            last_key=last_key,
            last_media_sequence=integer(field(raw, "last_media_sequence", what), "last_media_sequence", -1),
            restarts=integer(field(raw, "restarts", what), "restarts"),
            source_ended=flag(field(raw, "source_ended", what), "source_ended"),
            created=now)
    if target is None and any(v.playlist.opened for v in variants.values()):
        raise ValueError("playlists without a target duration")
    independent = flag(field(data, "independent", what), "independent")
    next_sequence = integer(field(data, "next_sequence", what), "next_sequence")
    if any(v.playlist.opened and v.playlist.next_sequence > next_sequence for v in variants.values()):
        raise ValueError("a playlist is ahead of the shared numbering")
    raw_last_run = field(data, "last_run", what)
    last_run = None if raw_last_run is None else integer(raw_last_run, "last_run")
    key = _slot_key(field(data, "decided", what), "decided", -1)
    runs = {text(name, "a run name", 1 << 16, one_line=False): integer(n, "a run number")
            for name, n in mapping(field(data, "runs", what), "runs", _MAX_RUNS).items()}
    # Runs are numbered in the order seen: one outside them would keep a new stream's segments "late".
    if sorted(runs.values()) != list(range(len(runs))):
        raise ValueError("run numbers are not 0, 1, 2...")
    used = [key[0], -1 if last_run is None else last_run]
    for v in variants.values():
        used += [*v.first, -1 if v.last_key is None else v.last_key[0]]
    if max(used) >= len(runs):
        raise ValueError(f"run {max(used)} is not among the {len(runs)} runs saved")
    uploaded = {text(k, "an uploaded key") for k in array(field(data, "uploaded", what), "uploaded",
                                                              _MAX_UPLOADED)}
    # Numbers up to the highest STATE_DIR/served recorded were shown; without a record, at worst up to a
    # reserve past next_sequence.
    raw_reserved = data.get(RESERVED)
    reserved = allowed = (next_sequence + hls.SEQUENCE_RESERVE if raw_reserved is None
                          else integer(raw_reserved, RESERVED, next_sequence))
    raw_shown = data.get(SHOWN_PAST)
    if raw_shown is not None:
        reserved = max(next_sequence, integer(raw_shown, SHOWN_PAST) + 1)
        allowed = max(allowed, reserved)
    clean = flag(data.get("clean_stop", False), "clean_stop")
    floor = integer(data.get("discontinuity_floor", 0), "discontinuity_floor")
    start = above = 0
    if not clean:
        opened = [v.playlist for v in variants.values() if v.playlist.opened]
        start, above = hls.continue_above(reserved, next_sequence, [p.last_discontinuity for p in opened] + [floor])
        if max(start, above) > INT64:
            raise ValueError(f"reserved {reserved} leaves no numbers to continue above it")
    late, late_landed = parse_saved(data.get("late", {}))
    return Memory(variants, target, independent, next_sequence, last_run, key, runs, uploaded, reserved, clean,
                  allowed, floor, start, above, late, late_landed, waited)


class Recall:
    def __init__(self, parts: Parts, behind: Behind, drop: Callable[[list[Removed]], None]) -> None:
        """`behind`: the lister's; `drop`: objects no playlist will name go on to the cleaner."""
        self._mono = parts.config.monotonic
        self._parts = parts
        self._behind = behind
        self._drop = drop
        self._read_since: set[int] | None = None  # after continuing above an unclean state (first_read)

    def memory(self, now: float) -> dict[str, object]:
        p = self._parts
        numbering, waiting, late = p.numbering, self._behind.saved(), p.late.saved()
        pending: dict[int, set[str]] = {}
        uploaded: list[str] = []
        for slot in p.lanes.undecided():
            for index, copy in slot.copies.items():
                pending.setdefault(index, set()).add(copy.source.name)
                if succeeded(copy.task):
                    uploaded.append(copy.key)
        variants: dict[str, dict[str, object]] = {}
        for v in p.variants.values():
            landing, views = v.playlist.landings.keys(), v.playlist.views_saved()
            variants[str(v.index)] = {
                "generator": v.playlist.saved(now),
                # The names still in flight apart: a restart forgets those, so it uploads and lists them.
                "seen": v.seen.saved(),
                "in_flight": sorted(pending.get(v.index, ())),
                # Listed before their upload landed: uploaded again (a list when only the first bucket's).
                "uploading": (landing.get(hls.BUCKET_PATHWAY, []) if set(landing) <= {hls.BUCKET_PATHWAY}
                              else landing),
                "first": {str(k): n for k, n in v.first.items()},
                "last_key": list(v.last_key) if v.last_key else None,
                "last_media_sequence": v.last_media_sequence,
                "restarts": v.restarts,
                "source_ended": v.source_ended,
                **({"waiting": waiting[v.index]} if waiting.get(v.index) else {}),
                **({"views": views} if views else {}),
            }
        out: dict[str, object] = {
            "target_duration": p.target.value,
            "independent": p.target.independent,
            "next_sequence": numbering.next_sequence,
            RESERVED: numbering.next_sequence + hls.SEQUENCE_RESERVE,
            "discontinuity_floor": numbering.discontinuity_floor,
            "last_run": numbering.last_run,
            "decided": list(p.lanes.together.decided),
            "runs": dict(numbering.runs),
            "variants": variants,
            "uploaded": uploaded + sorted(p.uploads.restored),
        }
        if late.get("pending") or late.get("landed"):
            out["late"] = late
        return out

    def restore(self, data: dict[str, object]) -> int:
        """Continue from `memory` (ValueError before anything changes); returns Memory.allowed."""
        p = self._parts
        try:
            m = decode(data, self._mono(), p.variants.playlist)
        except ValueError:
            raise
        except Exception as err:  # noqa: BLE001 (a check missed above: still a bad file, not a crash)
            raise ValueError(f"publisher state does not parse: {describe(err)}") from None
        p.variants.restored(m.variants)
        p.target.value, p.target.independent = m.target, m.independent
        p.numbering.restored(m.next_sequence, m.last_run, m.runs, m.discontinuity_floor)
        p.lanes.together.decided = m.decided
        p.uploads.restored = set(m.uploaded)
        # Late from before: saved as such, or waiting in a variant (a gap from now on).
        p.late.restore([*m.late, *((i, s.key, run) for run, i, s in m.waited if s.gap and s.key)],
                           m.late_landed)
        if p.recorder is not None:
            for run, index, segment in m.waited:
                if run:
                    p.recorder.record(run, index, segment)
        if not p.config.segment_hashes:  # P2P turned off since that save
            for v in p.variants.values():
                v.playlist.drop_hashes()
        if m.clean:
            log.info("continuing from saved state: next media sequence %d, %d variant(s)",
                     p.numbering.next_sequence, len(p.variants))
        else:
            now = self._mono()
            for v in p.variants.values():
                v.playlist.continue_above(m.continue_at, m.continue_floor, now)
            self._forget_uploads(sorted(p.uploads.restored), now)
            p.uploads.restored = set()
            p.numbering.continued(m.continue_at, m.continue_floor)
            self._read_since = set()
            log.warning("state was not saved at a clean stop: media sequence numbers up to %d may have been "
                        "served since; continuing from %d with a discontinuity, at Owncast's next segment",
                        m.reserved - 1, m.continue_at)
        return m.allowed

    def first_read(self, v: Variant, playlist: SourcePlaylist, now: float) -> None:
        """After continuing above a state not saved at a clean stop, what a variant's first read lists may
        have been served under numbers given up: seen, never listed again (a URI keeps its number)."""
        if self._read_since is None or v.index in self._read_since:
            return
        self._read_since.add(v.index)
        given_up = [seg for seg in playlist.segments if seg.name not in v.seen]
        for seg in given_up:
            v.seen[seg.name] = None
        keys = [self._parts.uploads.key(v.index, seg.name) for seg in given_up if not seg.is_offline_clip]
        self._forget_uploads(keys, now)
        if given_up:
            log.info("variant %d: %d segment(s) Owncast lists may have been served before the restart; "
                     "not listed again", v.index, len(given_up))

    def _forget_uploads(self, keys: list[str], now: float) -> None:
        """Objects a playlist served before the restart may name: they go once none can."""
        keep = self._parts.target.keep_for(self._parts.config.window.seconds)
        self._drop([Removed(ListedSegment("", 0.0, key=key), now, keep) for key in keys])
