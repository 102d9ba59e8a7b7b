"""VariantPlaylist: one variant's live playlist, and the one owner of its ManifestGenerator.

Nobody else holds the generator (the pure window of playlist/manifest.py; a saved one is rebuilt by
playlist_memory.restore and handed straight here by variants.Variants.playlist, and
tests/test_structure.py checks that no other module names one): every change goes through an intent
here, named for what it means to the variant's playlist.

- `open`: the first playlist, once the target duration is known.
- `list`: a segment uploaded, under the number every variant listed together gives its slot; or a gap
  there (EXT-X-GAP), where this variant alone lacks the segment.
- `gap`: a segment that will never come: the next one carries EXT-X-DISCONTINUITY.
- `end`: the stream ended: EXT-X-ENDLIST.
- `join`: an empty playlist takes the discontinuity number the others give the next slot (6.2.4).
- `drop_hashes`: P2P was turned off since the state it came from was saved.

Where does a variant's playlist restart? Here, and only here (docs/hls-rules.md, "A new target
duration" and "Numbers across restarts"); who decides when is named beside each:

- `retarget`: a new target duration, every variant at once (target.TargetPolicy decides, a Retarget).
- `rejoin`: a variant back after streams without it, where the others number (the lister, at a slot).
- `continue_above`: a state not saved at a clean stop (the publisher's restore).

With the VM's pathway (content steering) a segment is listed as soon as the VM kept its copy, its
upload pending (`list(..., upload=)`): the playlist's versions are the VM pathway's, and the bucket's
playlist is the newest version that lists nothing still uploading (`bucket_visible`): an earlier
version of the same playlist, kept for that (`_history`), so the two pathways carry the same numbers,
discontinuities, durations and dates (6.2.4), the bucket's behind by its uploads. A new target while
the bucket's lags (`retarget`) keeps the former playlist's versions the VM's pathway showed (`_Former`):
the bucket's shows them, as their uploads land, up to the last the VM's showed, and only then the new
playlist, so no segment shown on one pathway is missing from the other (unless its upload fails for
good, or a second new target comes before the bucket's caught up with the first: both logged).

Every segment that leaves the window goes to `on_removed` (on to the cleaner) as it leaves: no caller
drains it. What clients were shown is told here by the Release (`shown`): a new target carries what no
client saw (issue 32), and clips are cut from what was shown (`shown_between`), never from what is
listed but not yet saved and shown.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..playlist.manifest import ManifestGenerator, SegmentRejected
from ..playlist.options import WindowOptions
from ..playlist.rendered import Rendered
from ..playlist.segments import ListedSegment, Removed
from . import playlist_memory

__all__ = ["RemovedHook", "SegmentRejected", "VariantPlaylist"]

log = logging.getLogger(__name__)

RemovedHook = Callable[[list[Removed]], None]


class Landing(Protocol):
    """An upload not landed yet (an asyncio future, or a restored one waiting for its upload to start)."""

    def done(self) -> bool: ...


class _Restored:
    """A restored state's upload that had not landed: pending until the publisher starts it again."""

    def done(self) -> bool:
        return False


def _failed(upload: Landing) -> bool:
    """An upload that ended without landing (an error; not a cancel: the publisher is closing)."""
    return isinstance(upload, asyncio.Future) and not upload.cancelled() and upload.exception() is not None


@dataclass(slots=True)
class _Former:
    """The playlist before a new target, as far as the VM's pathway showed it and the bucket's did not
    yet: the bucket's shows these versions (as their uploads land) before any of the new playlist's."""

    history: tuple[dict[int, Rendered], dict[int, Rendered]]  # (served, edge) by their last number
    keys: dict[str, int]  # its segments that were still uploading -> their numbers
    through: int  # the last number the VM's pathway showed: the bucket's shows that far, then moves on
    target: int  # the target duration its versions were rendered under

    @classmethod
    def kept(cls, gen: ManifestGenerator, history: tuple[dict[int, Rendered], dict[int, Rendered]],
             pending: Iterable[str], shown: int, bucket_shown: int) -> _Former | None:
        """What to keep of `gen`'s playlist at a new target: its versions from the bucket's last shown to
        the VM's (`history`, every version while the bucket's lags: VariantPlaylist.visible). None when
        that version is not among them (it came before another restart): nothing to keep."""
        served, edge = ({n: r for n, r in h.items() if bucket_shown <= n <= shown} for h in history)
        if shown not in served:
            return None
        waiting = set(pending)
        keys = {e.segment.key: e.sequence for e in gen.window if e.segment.key in waiting and e.sequence <= shown}
        return cls((served, edge), keys, shown, gen.target_duration)

    def visible(self, edge: bool, pending: Iterable[str]) -> Rendered | None:
        """Its newest version that lists only what is in the bucket (`pending`: still uploading)."""
        waiting = [self.keys[key] for key in pending if key in self.keys]
        through = min(waiting) - 1 if waiting else self.through
        history = self.history[edge]
        older = [n for n in history if n <= through]
        return history[max(older)] if older else None


def _owed(index: int, gen: ManifestGenerator, history: tuple[dict[int, Rendered], dict[int, Rendered]],
          pending: Iterable[str], shown: tuple[int, int], former: _Former | None, keep: bool) -> _Former | None:
    """The former playlist a variant's bucket playlist owes after a new target, `shown` (bucket's, VM's)
    apart: the one it still owes, or `gen`'s (`keep`: no variant owes one). Logs what it will never show."""
    kept = _Former.kept(gen, history, pending, shown[1], shown[0]) if keep and former is None else None
    if kept is None:
        floor = max(shown[0], former.through if former is not None else -1)
        unseen = [e.segment.uri.rsplit("/", 1)[-1] for e in gen.window if floor < e.sequence <= shown[1]]
        if unseen:
            log.warning("variant %d: %s shown on the VM's pathway only, not in the bucket's playlist: a new "
                        "target came before the bucket's caught up with the last one", index, ", ".join(unseen))
    return former if former is not None else kept


class VariantPlaylist:
    def __init__(self, index: int, options: WindowOptions, on_removed: RemovedHook,
                 generator: ManifestGenerator | None = None) -> None:
        """`generator`: a restored playlist's (None: opened once the target duration is known)."""
        self.index = index
        self._options = options
        self._on_removed = on_removed
        self._gen = generator
        self._shown = -1  # the last number a client may have seen (told by the Release)
        self._bucket_shown = -1  # ... and the last shown in the bucket's playlist (what clips may cut)
        self._bucket_target: int | None = None  # the target duration of the bucket's version shown
        self._pending: dict[str, Landing] = {}  # key -> its upload, listed before it landed
        self._leaving: builtins.list[Removed] = []  # left the window while the bucket's playlist lagged
        # Versions by their last number, (served, edge): the bucket's shows one of them while uploads land.
        self._history: tuple[dict[int, Rendered], dict[int, Rendered]] = ({}, {})
        self._former: _Former | None = None  # the playlist before a retarget, owed to the bucket's
        self.last_run: int | None = None  # the run of the last slot listed here
        self.last_listed: float | None = None  # monotonic, when it last listed a segment

    # -- what it is now (read only) -------------------------------------------------------------------

    @property
    def opened(self) -> bool:
        return self._gen is not None

    @property
    def segment_count(self) -> int:
        return self._gen.segment_count if self._gen is not None else 0

    @property
    def next_sequence(self) -> int:
        return self._gen.next_sequence if self._gen is not None else 0

    @property
    def media_sequence(self) -> int:
        return self._gen.media_sequence if self._gen is not None else 0

    @property
    def ended(self) -> bool:
        return self._gen is not None and self._gen.ended

    @property
    def target_duration(self) -> int | None:
        return self._gen.target_duration if self._gen is not None else None

    @property
    def last_discontinuity(self) -> int:
        return self._gen.last_discontinuity if self._gen is not None else 0

    def next_discontinuity(self, discontinuity: bool) -> int:
        """The discontinuity number the next segment listed gets, `discontinuity` being its flag."""
        return self._gen.next_discontinuity(discontinuity) if self._gen is not None else 0

    @property
    def listing(self) -> bool:
        """Open and listing something: it takes part in every slot, and gives the others its numbers."""
        return self.segment_count > 0

    def uris(self) -> list[str]:
        return self._gen.uris() if self._gen is not None else []

    def visible(self, edge: bool = False) -> Rendered | None:
        """Its current version (`edge`: for the bucket, which cannot block), or None while there is
        nothing to show: not open, empty, or regrowing after continuing above a state (6.2.2)."""
        gen = self._gen
        if gen is None or not gen.segment_count or not gen.showable:
            return None
        rendered = gen.render_edge() if edge else gen.render()
        # While the bucket's playlist is behind the VM's pathway, every version from its last shown on:
        # it shows each once its uploads land, also across a new target (_Former).
        if self._pending or self._bucket_shown < self._shown:
            history = self._history[edge]
            history[rendered.last_sequence] = rendered
            for n in [n for n in history if n < self._bucket_shown]:
                del history[n]
        return rendered

    @property
    def uploading(self) -> int:
        """Segments it lists whose upload has not landed yet."""
        self._settle()
        return len(self._pending)

    def uploading_keys(self) -> builtins.list[str]:
        """Their keys (what a restart uploads again: the publisher's memory saves them)."""
        self._settle()
        return sorted(self._pending)

    def awaiting(self, keys: Iterable[str]) -> builtins.list[str]:
        """A restored state's uploads that had not landed, of segments this playlist lists: pending until
        `landing` gives each its upload again. Returns those it lists (the others left its window)."""
        listed = set(self.uris_by_key())
        kept = [key for key in keys if key in listed]
        for key in kept:
            self._pending[key] = _Restored()
        return kept

    def landing(self, key: str, upload: asyncio.Future[Any]) -> None:
        """The upload of a segment it lists, started again after a restart."""
        if key in self._pending:
            self._pending[key] = upload

    def uploads(self) -> builtins.list[asyncio.Future[Any]]:
        """The uploads of what it lists that have not landed (a stop waits for them, then cancels them)."""
        return [u for u in self._pending.values() if isinstance(u, asyncio.Future) and not u.done()]

    def uris_by_key(self) -> dict[str, str]:
        gen = self._gen
        return {e.segment.key: e.segment.uri for e in gen.window if e.segment.key} if gen is not None else {}

    def bucket_visible(self, edge: bool = False, now: float | None = None) -> Rendered | None:
        """The bucket's version: the newest that lists only what is in the bucket (every version while
        nothing listed is still uploading). An upload that failed for good is a gap from then on
        (`_unavailable`): the bucket never lists a segment it does not have, nor stops for ever. After a
        new target, the former playlist's versions come first, as far as the VM's pathway showed it."""
        pending = self._settle(now)
        former = self._former
        if former is not None:
            if self._bucket_shown < former.through:
                return former.visible(edge, self._pending)
            self._former = None  # shown that far: the new playlist's versions from now on
            pending = self._settle(now)  # what left with it goes on to the cleaner
        if not pending:
            return self.visible(edge)
        gen = self._gen
        assert gen is not None
        first = None  # the first number still uploading
        for entry in reversed(gen.window):
            if entry.segment.key in self._pending:
                first = entry.sequence
        history = self._history[edge]
        through = gen.next_sequence - 1 if first is None else first - 1
        older = [n for n in history if n <= through]
        if not older:
            return None
        best = max(older)
        for n in [n for n in history if n < best]:
            del history[n]
        return history[best]

    @property
    def owes_former(self) -> bool:
        """The bucket's playlist has not shown its former playlist as far as the VM's pathway did (a new
        target came while its uploads lagged): it shows that first, under the former target."""
        return self._former is not None and self._bucket_shown < self._former.through

    def _remember_current(self) -> None:
        for edge in (False, True):
            history = self._history[edge]
            history.clear()
            gen = self._gen
            if gen is not None and gen.segment_count and gen.showable:
                rendered = gen.render_edge() if edge else gen.render()
                history[rendered.last_sequence] = rendered

    def _forget_history(self) -> None:
        """A restart: no version from before it is shown again (the bucket's shows the new playlist's
        versions as their uploads land)."""
        for history in self._history:
            history.clear()

    def _settle(self, now: float | None = None) -> bool:
        """Forget uploads that landed (or failed for good), each landed one kept listed about a window
        from `now` (ManifestGenerator.landed); True while some are still pending."""
        pending = self._pending
        if pending:
            for key in [k for k, upload in pending.items() if upload.done()]:
                upload = pending.pop(key)
                former = self._former
                if _failed(upload) and former is not None and key in former.keys:
                    # The bucket cannot show the former playlist past it (nor can the VM's pathway serve it).
                    former.through = min(former.through, former.keys[key] - 1)
                    log.warning("variant %d: segment %s, shown on the VM's pathway before a new target, cannot "
                                "be uploaded (%s); the bucket's playlist moves to the new target without it",
                                self.index, key, upload.exception() if isinstance(upload, asyncio.Future) else None)
                elif _failed(upload):
                    self._unavailable(key, upload)
                elif now is not None and self._gen is not None:
                    self._gen.landed(key, now)
        if not pending and self._leaving and now is not None and self._former is None:
            leaving, self._leaving = self._leaving, []
            self._on_removed([replace(r, removed_at=max(r.removed_at, now)) for r in leaving])
        return bool(pending)

    def _unavailable(self, key: str, upload: Landing) -> None:
        """An upload that failed for good, its segment listed ahead on the VM's pathway: the bucket does
        not have it, and the VM's copy is gone (an upload sends that copy: it fails only once the copy
        and Owncast's file are both gone). A gap from now on in both pathways' playlists (4.4.4.7): the
        bucket's never showed it (it shows the version before it until then), the VM's cannot serve it.
        The bucket's versions that list it as a segment are forgotten."""
        if self._gen is None:
            return
        number = self._gen.unavailable(key)
        if number is None:
            return
        for history in self._history:
            for n in [n for n in history if n >= number]:
                del history[n]
        err = upload.exception() if isinstance(upload, asyncio.Future) else None
        log.warning("variant %d: segment %s, listed on the VM's pathway before its upload, cannot be uploaded "
                    "(%s); listed as a gap (EXT-X-GAP)", self.index, key, err)

    def leaving_saved(self) -> builtins.list[builtins.list[object]]:
        """What left the window while the bucket's playlist lagged and is not on to the cleaner yet, as
        [key, keep]: the publisher's memory saves it beside the window, so a stop or a crash meanwhile
        loses no key (the cleaner saves only what it was given)."""
        return [[r.segment.key, r.keep] for r in self._leaving if r.segment.key]

    def restore_leaving(self, leaving: Iterable[tuple[str, float]], now: float) -> None:
        """A restored state's `leaving_saved`: handed on once the bucket's playlist catches up, as before."""
        self._leaving = [Removed(ListedSegment("", 0.0, key=key), now, keep) for key, keep in leaving]

    def saved(self, now: float) -> dict[str, object] | None:
        """Its part of the publisher's memory (playlist_memory's format), None before it is open."""
        return playlist_memory.snapshot(self._gen, now) if self._gen is not None else None

    # -- what clients were shown (the Release tells), and what clips are cut from ------------------------

    def shown(self, rendered: Rendered | None, bucket: Rendered | None = None) -> bool:
        """The Release made `rendered` visible (and `bucket` in the bucket's playlist, when it differs; only
        that when `rendered` is None, e.g. a new playlist still empty): numbers up to its last may have
        been seen. True when that showed the former playlist as far as the VM's pathway did."""
        shown = bucket or rendered
        assert shown is not None
        if rendered is not None:
            self._shown = rendered.last_sequence
        self._bucket_shown = shown.last_sequence
        former = self._former
        if former is not None and self._bucket_shown <= former.through:
            self._bucket_target = former.target
            return self._bucket_shown == former.through
        self._bucket_target = self.target_duration
        return False

    def shown_ahead(self, rendered: Rendered) -> None:
        """The Release made `rendered` visible on the VM's pathway, the bucket's version unchanged."""
        self._shown = rendered.last_sequence

    @property
    def bucket_retargets(self) -> bool:
        """Its bucket's version shown is not under its target duration now (or none was shown): a
        new one would change the target the bucket's playlist shows (a retarget restarts every variant)."""
        return self._bucket_target != self.target_duration

    def forget_shown(self) -> None:
        """A restored state replaces what is visible: nothing of this playlist is shown until told."""
        self._shown = self._bucket_shown = -1
        self._former = None

    def shown_span(self) -> tuple[float, float] | None:
        """(start, end) by PROGRAM-DATE-TIME of what it lists and clients were shown, or None."""
        shown = self.shown_between(float("-inf"), float("inf"), newest=1)
        gen = self._gen
        first = gen.window.first if gen is not None else None
        if not shown or first is None:
            return None
        return first.program_date_time, (shown[-1].program_date_time or 0.0) + shown[-1].duration

    def shown_between(self, start: float, end: float, newest: int | None = None) -> list[ListedSegment]:
        """The segments clients were shown, still listed, that overlap [start, end) by PROGRAM-DATE-TIME,
        each with its date and discontinuity as listed (a clip is made of them); `newest`: only the last
        that many of them (read from the end: a long window costs nothing)."""
        gen = self._gen
        if gen is None:
            return []
        out: list[ListedSegment] = []
        for e in reversed(gen.window):
            if newest is not None and len(out) >= newest:
                break
            if e.sequence <= self._bucket_shown and e.program_date_time < end and e.program_date_time + e.segment.duration > start:
                out.append(replace(e.segment, program_date_time=e.program_date_time, discontinuity=e.discontinuity))
        return out[::-1]

    # -- the intents ------------------------------------------------------------------------------------

    def open(self, target: int, independent: bool, now: float, above: tuple[int, int] | None = None) -> None:
        """The first playlist, under `target`; `above`: (sequence, discontinuity floor) to continue at,
        after a start that continued above a state (every playlist starts there, its first segment
        after a discontinuity)."""
        if self._gen is not None:
            raise ValueError(f"variant {self.index}: its playlist is open already")
        self._gen = ManifestGenerator(target, self._options, independent_segments=independent)
        if above is not None:
            self._gen.continue_above(above[0], above[1], now)
            self._drain()

    def list(self, segment: ListedSegment, run: int | None, now: float, sequence: int, wall: float,
             upload: asyncio.Future[Any] | None = None) -> int:
        """List a segment of `run` under `sequence` (an empty playlist starts at it: the number the
        variants listed together are at), or, `segment.gap`, a gap there (EXT-X-GAP: this variant lacks
        a moment the others list); returns its number. It is uploaded, or its `upload` is pending (the
        VM kept it: the bucket's playlist lists it once it lands). Raises SegmentRejected when the
        playlist refuses it (its gap is marked: the next segment carries a discontinuity)."""
        gen = self._opened()
        pending = upload is not None and not upload.done() and bool(segment.key)
        if pending and not self._settle():
            # The bucket shows the version before this one until it lands.
            self._remember_current()
        try:
            number = gen.append(segment, now, sequence, wall=wall)
        except SegmentRejected:
            gen.mark_gap()
            raise
        if pending and upload is not None and segment.key:
            self._pending[segment.key] = upload
        if self._pending and gen.showable:
            # Every version listed while uploads lag: the bucket shows each once what it lists has landed.
            self._history[False][number] = gen.render()
            if self._history[True]:
                self._history[True][number] = gen.render_edge()
        if run is not None:
            self.last_run = run
        if not segment.gap:
            self.last_listed = now  # a gap is nothing listed: /health says so past three target durations
        self._drain()
        return number

    def gap(self) -> None:
        """A segment between the last listed and the next will never come: the next carries a
        discontinuity."""
        if self._gen is not None:
            self._gen.mark_gap()

    def end(self) -> bool:
        """EXT-X-ENDLIST (6.2.1); True when that closed it now (it lists something, not ended yet)."""
        gen = self._gen
        if gen is None or not gen.segment_count or gen.ended:
            return False
        gen.end()
        return True

    def join(self, discontinuity_number: int) -> None:
        """An empty playlist joins variants already listing: its first segment gets their number."""
        self._opened().join(discontinuity_number)

    def drop_hashes(self) -> None:
        if self._gen is not None:
            self._gen.drop_hashes()

    # -- where it restarts -------------------------------------------------------------------------------

    def retarget(self, target: int, now: float, *, new_timeline: bool,
                 keep_former: bool = True) -> builtins.list[ListedSegment]:
        """A new playlist at the same address under a new target duration (target.Retarget): what
        clients saw leaves (kept downloadable as any removed segment), what they never saw starts the
        new playlist under its own numbers (issue 32). Returns those of them that do not fit the new
        target: they leave too, and the gap is marked. `keep_former`: no variant's bucket playlist still
        owes a former playlist (variants.Variants.retarget: one former at a time, every variant alike)."""
        gen = self._gen
        if gen is None:
            return []
        if self._former is not None and not self.owes_former:
            self._former = None  # shown as far as it went
        if self._bucket_shown < self._shown:
            # The VM's pathway showed segments the bucket's did not yet (uploads lagging, or a version not
            # saved and shown yet): they leave as seen, and the bucket's shows them from the former
            # playlist first, as they land.
            self._former = _owed(self.index, gen, self._history, self._pending, (self._bucket_shown, self._shown),
                                 self._former, keep_former)
        left = gen.restart(target, now, new_timeline=new_timeline, served_through=self._shown)
        self._forget_history()
        self._drain()
        return left

    def rejoin(self, sequence: int, discontinuity_sequence: int, now: float) -> None:
        """Back in Owncast's stream after streams without it (Owncast's variants 3 -> 1 -> 3): its
        numbers fell behind the others'. A new playlist at the same address, at `sequence` on the
        others' timeline."""
        gen = self._opened()
        gen.restart(gen.target_duration, now, sequence=sequence, discontinuity_sequence=discontinuity_sequence)
        self._forget_history()
        self._drain()
        log.info("variant %d: back in Owncast's stream; its playlist starts again at %d", self.index, sequence)

    def continue_above(self, sequence: int, floor: int, now: float) -> None:
        """Give up the window and continue at `sequence`, after a discontinuity above `floor`
        (hls.continue_above): numbers up to there may have named other segments."""
        if self._gen is not None:
            self._gen.continue_above(sequence, floor, now)
            self._forget_history()
            self._drain()

    # -- internals --------------------------------------------------------------------------------------

    def _opened(self) -> ManifestGenerator:
        if self._gen is None:
            raise ValueError(f"variant {self.index}: its playlist is not open yet")
        return self._gen

    def _drain(self) -> None:
        assert self._gen is not None
        removed = self._gen.drain_removed()
        if not removed:
            return
        if self._pending or self._former is not None:
            # The bucket's playlist shows an earlier version, which may still list these: they leave its
            # playlist only once it catches up (_settle), and stay downloadable from then on.
            self._leaving += removed
        else:
            self._on_removed(removed)
