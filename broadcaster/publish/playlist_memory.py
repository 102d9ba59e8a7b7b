"""One variant's playlist (a ManifestGenerator) as JSON in state.json, and reading it back: `restore`
checks types, ranges and sizes, so nothing read from a damaged or crafted file may fail later."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any

from ..playlist import hls
from ..playlist.manifest import ManifestGenerator, Saved, resume
from ..playlist.options import WindowOptions
from ..playlist.segments import ListedSegment
from ..state import validate
from ..state.disk import RawJSON
from ..tails import Tail

# More than any window lists (a day of 1 s segments is 86,400): larger was not written by the service.
MAX_RESTORED_ENTRIES = 500_000
# TARGET_DURATION may be set above what Owncast advertises (hls.MAX_TARGET_DURATION): any sane value.
MAX_RESTORED_TARGET = 3600
# The dates a PROGRAM-DATE-TIME can carry: 0001-01-01 to 9999-12-31.
MIN_EPOCH, MAX_EPOCH = -62_135_596_800.0, 253_402_300_799.0
_CHECKS: dict[str, Callable[[object, str], Any]] = {"bool": validate.flag, "int": validate.integer,
                                                    "float": validate.number}
_OPTIONAL = ("continues", "regrowing")  # flags absent in older files (false)


def snapshot(gen: ManifestGenerator, now: float) -> dict[str, Any]:
    """Everything needed to continue this playlist after a restart (JSON-able)."""
    return {
        **asdict(gen.saved()),
        # The entries' records as a Tail, so the journal writes only those listed since its last line.
        "clock": round(now, 3),
        "entries": gen.records(),
    }


def saved_segment(values: list[Any], longest: float, *, dated: bool = True, sha256: bytes | None = None,
                  gap: bool = False) -> ListedSegment:
    """A saved entry's [URI, duration, date, discontinuity, init URI, key], each checked."""
    uri, duration, pdt, disc, init, key = values
    date = None if pdt is None and not dated else validate.number(pdt, "a segment date", MIN_EPOCH, MAX_EPOCH)
    if init is not None and '"' in validate.text(init, "an init URI"):  # written inside URI="..."
        raise ValueError("an init URI contains a quote")
    return ListedSegment(validate.text(uri, "a segment URI"),
                         validate.number(duration, "a segment duration", 0.001, longest), date,
                         validate.flag(disc, "a discontinuity"), init,
                         None if key is None else validate.text(key, "a segment key"), sha256, gap)


def restore(data: dict[str, Any], now: float, options: WindowOptions) -> ManifestGenerator:
    """Rebuild from `snapshot` under today's `options` (ValueError naming what does not add up)."""
    what = "playlist state"
    data = validate.mapping(data, what, 100)
    target = validate.integer(validate.field(data, "target_duration", what), "target_duration", 1,
                              MAX_RESTORED_TARGET)
    values: dict[str, Any] = {}
    for f in fields(Saved)[1:]:
        raw = data.get(f.name, False) if f.name in _OPTIONAL else validate.field(data, f.name, what)
        values[f.name] = _CHECKS[str(f.type)](raw, f.name)
    saved = Saved(target, **values)
    # Each entry's listing time on the saving process's clock; files from before "clock" held ages.
    raw_clock = data.get("clock")
    clock = None if raw_clock is None else validate.number(raw_clock, "clock", -1e15)
    raw_entries = validate.field(data, "entries", what)
    if isinstance(raw_entries, Tail):  # a snapshot restored without going through a file
        raw_entries = RawJSON(raw_entries.text()).decode()
    entries: list[tuple[int, ListedSegment, float]] = []
    for raw in validate.array(raw_entries, "entries", MAX_RESTORED_ENTRIES):
        entry = validate.array(raw, "an entry", 10)
        if len(entry) not in (8, 9, 10):
            raise ValueError(f"an entry has {len(entry)} values, not 8 to 10")
        seq, age = entry[0], entry[7]
        # A ninth value: its hash (null for a gap without one); a tenth: a gap entry (Entry.saved).
        gap = len(entry) == 10 and validate.flag(entry[9], "a gap")
        digest = None if len(entry) < 9 or (gap and entry[8] is None) \
            else hls.decode_segment_hash(validate.text(entry[8], "a segment hash", 64))
        segment = saved_segment(entry[1:7], target + 1, sha256=digest, gap=gap)
        if clock is not None:
            age = round(clock - validate.number(age, "a segment's listing time", -1e15), 3)
        listed_at = now - validate.number(age, "a segment age", 0, 1e9)
        entries.append((validate.integer(seq, "a sequence number"), segment, listed_at))
    return resume(saved, entries, options)
