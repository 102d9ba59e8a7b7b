"""What each pathway lists of one variant's playlist: the one rule, for every pathway.

A pathway lists the playlist's entries up to the newest one whose segment is there, each once it is:

- a bucket's pathway, once its upload to that bucket landed (`pending` holds each upload not landed
  yet); an upload that failed for good is listed there as a gap (EXT-X-GAP: the other pathways may
  have it); while players are steered away from it, what it lacks is listed at the URI of the first
  pathway that has it (PathwayPlan.fallbacks), so a player that stays on it (video.js, a player without
  content steering) plays on from there;
- the VM's, at once (every segment listed is ready: held, or in a bucket; the VM serves Owncast's file
  or the copy it kept, vm/held.py), or, while it only redirects players to
  the first bucket (PathwayPlan.redirects), once the first bucket's pathway lists it.

A pathway never goes back: what it listed stays listed, at the URI it was listed at (6.2.2), and the
playlist keeps every entry until the pathway furthest behind has a window without it
(ManifestGenerator.hold). So every pathway's version has the same numbers, discontinuities, durations
and dates (6.2.4): only where each ends, and its URIs, differ (views.View renders them from the entries).

A new target duration restarts the playlist (variant_playlist.VariantPlaylist.retarget). A pathway
that had not listed everything any pathway showed goes on listing the former playlist (`former`) as
its segments land, up to the last number shown anywhere, and only then the new one: no segment shown
on one pathway is missing from another. The variants' playlists switch each pathway together
(variants.Variants: one target per pathway at a time, 6.2.4).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Protocol

from ..playlist.entry import Entry
from ..playlist.pathway import LISTED, Pathway, init_key
from ..playlist.rendered import Rendered
from ..playlist.segments import Removed
from ..playlist.views import GAP, OWN, Source, View
from ..playlist.window import Window
from ..state import validate
from .pathways import PathwayPlan

log = logging.getLogger(__name__)

_VM_LISTED_SLACK = 16  # keys the VM's pathway's record keeps beyond twice the window's entries
_MAX_MODES = 100_000  # modes a saved view may hold (a 4 h rewind of 1 s segments is 14,400)


class Landing(Protocol):
    """An upload not landed yet (an asyncio future, or a restored one waiting for its upload to start)."""

    def done(self) -> bool: ...


class Restored:
    """A restored state's upload that had not landed: pending until the publisher starts it again."""

    def done(self) -> bool:
        return False


def failed(upload: Landing) -> bool:
    """An upload that ended without landing (an error; not a cancel: the publisher is closing)."""
    return (isinstance(upload, asyncio.Future) and upload.done() and not upload.cancelled()
            and upload.exception() is not None)


class Playlist(Source, Protocol):
    """What the views read of the playlist and tell it (variant_playlist's ManifestGenerator)."""

    hold: int | None

    def slide(self, now: float) -> None: ...

    def landed(self, key: str, now: float) -> None: ...

    def unavailable(self, key: str) -> int | None: ...

    def render(self) -> Rendered: ...

    def render_edge(self) -> Rendered: ...


def _after(window: Window, through: int) -> Iterator[Entry]:
    """The entries numbered above `through`, in order (read from the end: a pathway's lag)."""
    newer: list[Entry] = []
    for e in reversed(window):
        if e.sequence <= through:
            break
        newer.append(e)
    return reversed(newer)


class PathwayViews:
    """Each pathway's view of one variant's playlist (views.View), and what decides how far each goes."""

    def __init__(self, plan: PathwayPlan) -> None:
        self._plan = plan
        self.views: dict[str, View] = {p.id: self._view(p) for p in plan.pathways}
        # Per bucket pathway, the uploads of segments listed before they landed there.
        self.pending: dict[str, dict[str, Landing]] = {p.id: {} for p in plan.buckets}
        self.shown: dict[str, int] = {p.id: -1 for p in plan.pathways}  # the last number each showed
        # A restarted playlist some pathways still list (a new target): the playlist before it, its
        # views, the last number shown of it anywhere, and what left it, held until it is done with.
        self.former: Playlist | None = None
        self.former_views: dict[str, View] = {}
        self.former_through = -1
        self.former_left: list[Removed] = []
        # What the VM's pathway listed, by key (segments and init sections): its number, the first
        # bucket's URI and the segment's key. Kept a while after it leaves the window (twice the window's
        # entries): a player holding an older version still asks for it (6.2.2: a removed segment stays
        # available its duration plus the playlist's), and the VM answers only what its pathway listed.
        self.vm_listed: OrderedDict[str, tuple[int, str, str]] = OrderedDict()
        # The pathways nobody reads now (PathwayPlan.idle, set at each push): no version is made of them,
        # and what they showed does not hold back a new target.
        self._idle: frozenset[str] = frozenset()
        self._vms = frozenset(p.id for p in plan.pathways if not p.is_bucket)  # the VM's (one or none)
        # The views each push moves on (`_moving`): on the current playlist, not the VM's while idle; and the
        # VM's left where they are while idle. Worked out when either changes, not at every push and save
        # (issue 66 item 3: with the VM's pathway idle a push and a save cost what they cost without it).
        self._moving: tuple[View, ...] = ()
        self._first_moving: View | None = None
        self._resting: tuple[View, ...] = ()
        self._read: tuple[tuple[str, View], ...] = ()  # the views of the pathways not idle, for `versions`
        self._regroup()

    def _view(self, pathway: Pathway) -> View:
        return View(pathway, self._plan.uris)

    @property
    def idle(self) -> frozenset[str]:
        return self._idle

    @idle.setter
    def idle(self, idle: frozenset[str]) -> None:
        if idle is not self._idle:  # most pushes: the set of the push before
            changed = idle != self._idle
            self._idle = idle
            if changed:
                self._regroup()

    def _regroup(self) -> None:
        """The views a push moves on and those left where they are, in the plan's order (the buckets first:
        the VM's may follow the first bucket's)."""
        former, idle, vms, views = self.former_views, self._idle, self._vms, self.views
        self._moving = tuple(views[p.id] for p in self._plan.pathways
                             if p.id not in former and not (p.id in idle and p.id in vms))
        first = self._plan.first.id
        self._first_moving = views[first] if first not in former else None
        self._resting = tuple(views[pid] for pid in sorted(vms) if pid in idle and pid not in former)
        self._read = tuple((pid, view) for pid, view in views.items() if pid not in idle)

    @property
    def plan(self) -> PathwayPlan:
        return self._plan

    # -- what lands where -----------------------------------------------------------------------------

    def pend(self, key: str, landings: Mapping[str, Landing]) -> None:
        """A segment listed before it landed on these pathways (each one's upload)."""
        for pid, upload in landings.items():
            if pid in self.pending and not upload.done():
                self.pending[pid][key] = upload

    def settle(self, playlist: Playlist, now: float) -> None:
        """Forget the uploads that landed (each segment listed late stays about a window from now:
        ManifestGenerator.landed); one that failed for good stays, a gap there, while it is listed. A
        segment whose upload failed on every bucket's pathway exists nowhere (its upload sends the VM's
        copy, or Owncast's file: it fails only once both are gone): the entry itself becomes a gap, so
        every pathway lists it as one, the VM's and a bucket's that listed it at the VM's URI included,
        and a clip or the rewind window never names it as a segment again."""
        listed: dict[str, bool] | None = None  # key -> listed as a gap already
        for pending in self.pending.values():
            for key, upload in list(pending.items()):
                if not upload.done():
                    continue
                if not failed(upload):
                    del pending[key]
                    playlist.landed(key, now)
                    continue
                if listed is None:
                    listed = {e.segment.key: e.segment.gap for e in playlist.window if e.segment.key}
                    if self.former is not None:
                        listed.update((e.segment.key, e.segment.gap) for e in self.former.window
                                      if e.segment.key)
                gap = listed.get(key)
                if gap is None:
                    del pending[key]  # a gap that left every playlist
                elif not gap and self._nowhere(key):
                    listed[key] = True
                    for each in (playlist, self.former):
                        if each is not None:
                            each.unavailable(key)

    def _nowhere(self, key: str) -> bool:
        """The uploads of `key` failed for good on every bucket's pathway (one not pending landed there)."""
        return all((upload := pending.get(key)) is not None and failed(upload)
                   for pending in self.pending.values())

    def _state(self, pid: str, key: str | None) -> str | None:
        """OWN: landed there (or held, for the VM); GAP: it never will; None: not yet."""
        pending = self.pending.get(pid)
        if key is None or pending is None:
            return OWN
        upload = pending.get(key)
        if upload is None:
            return OWN
        return GAP if failed(upload) else None

    def _mode(self, pathway: Pathway, e: Entry) -> str | None:
        """How a bucket's `pathway` lists `e` now (OWN, GAP or the pathway whose URI it takes), None: not
        yet. (The VM's lists what it holds, _extend.)"""
        key = e.segment.key
        if e.segment.gap:
            return OWN
        state = self._state(pathway.id, key)
        if state is not None:
            return state
        for other in self._plan.fallbacks(pathway.id):
            target = next((p for p in self._plan.pathways if p.id == other), None)
            if target is not None and (not target.is_bucket or self._state(other, key) == OWN):
                return other
        return None

    def _vm_lists(self, e: Entry, most: int) -> None:
        """The VM's pathway lists `e`: recorded (with its init section), `most` kept, the oldest dropped."""
        seg = e.segment
        key = seg.key
        if not key or seg.gap:
            return
        listed = self.vm_listed
        listed[key] = (e.sequence, seg.uri, key)
        if seg.init_uri is not None:
            init = init_key(seg)
            if init is not None and init not in listed:
                listed[init] = (e.sequence, seg.init_uri, key)
        while len(listed) > most:
            listed.popitem(last=False)

    def lists(self, pid: str, sequence: int) -> bool:
        """Whether `pid`'s view lists number `sequence` (of the current playlist: a pathway still on the
        former lists none of it)."""
        view = self.views.get(pid)
        if view is None or pid in self.former_views:
            return False
        return 0 <= sequence <= self._through(view)

    def _through(self, view: View) -> int:
        """How far `view` lists now: the VM's while idle, not moved on (advance), as far as the first
        bucket's pathway lists too (the VM only redirects there while its pathway is idle)."""
        first = self._first_moving
        if first is not None and view in self._resting:
            return max(view.through, first.through)
        return view.through

    def landed(self, pid: str, key: str | None) -> bool:
        """Whether `key` is in `pid`'s bucket (listed and not on its way there)."""
        pending = self.pending.get(pid)
        return key is not None and (pending is None or key not in pending)

    # -- how far each pathway lists ---------------------------------------------------------------------

    def advance(self, playlist: Playlist | None, now: float) -> None:
        """Each pathway's view as far as its segments are there; then the playlist keeps what the one
        furthest behind still needs (`hold`) and lets go of the rest."""
        former = self.former
        first_id = self._plan.first.id
        if former is not None:
            first_view = self.former_views.get(first_id)
            for view in self.former_views.values():
                self._extend(view, former, first_view.through if first_view is not None else self.former_through,
                             self.former_through)
        if playlist is None:
            return
        first_view = self._first_moving
        first_through = -1  # the first bucket's is moved on first (none while it lists the former)
        last = playlist.next_sequence - 1
        oldest = playlist.media_sequence
        hold: int | None = None  # where the pathway furthest behind ends, in the window and short of its end
        # Nobody reads the VM's pathway while it is idle (not in `_moving`): no version of it is made, so
        # nothing it would list now is seen, and it holds nothing back. Read again (or players steered to
        # it), it lists on from the window as it is then: what left meanwhile was shown to no client there.
        for view in self._moving:
            if view.through < last:  # else nothing new to list there (most pushes, on most pathways)
                self._extend(view, playlist, first_through, last)
            through = view.through
            if view is first_view:
                first_through = through
            if oldest <= through < last and (hold is None or through < hold):
                hold = through
        if hold != playlist.hold:
            playlist.hold = hold
            playlist.slide(now)
            oldest = playlist.media_sequence
        for view in self.views.values():
            if view.modes:
                view.drop_modes_before(oldest)

    def before_append(self, playlist: Playlist) -> None:
        """An entry is about to be appended, which no pathway lists yet: the playlist keeps a window for
        each of them as they are (`hold`) until they are looked at again (advance)."""
        oldest = playlist.media_sequence
        throughs = [v.through for v in self._moving if v.through >= oldest]
        if throughs:
            playlist.hold = min(throughs)

    def _extend(self, view: View, playlist: Playlist, first_through: int, last: int) -> None:
        through = max(view.through, playlist.media_sequence - 1)
        window = playlist.window
        pathway = view.pathway
        if not pathway.is_bucket:
            # The VM serves every segment listed: its pathway lists each at once (a gap too), or, while it
            # only redirects to the first bucket, once that bucket's pathway does. Decided once a push,
            # not asked of every entry (issue 66 item 3: this runs for every segment while nothing fails).
            upto = min(last, first_through) if self._plan.redirects() else last
            most = 2 * len(window) + _VM_LISTED_SLACK
            for e in _after(window, through):
                sequence = e.sequence
                if sequence > upto and (sequence > last or not e.segment.gap):  # a gap is listed at once
                    break
                self._vm_lists(e, most)
                through = sequence
        else:
            for e in _after(window, through):
                if e.sequence > last:
                    break
                mode = self._mode(pathway, e)
                if mode is None:
                    break
                if mode != OWN:
                    view.modes[e.sequence] = mode
                through = e.sequence
        if through > view.through:
            view.through = through

    def versions(self, playlist: Playlist | None, showable: bool, edge: bool = False,
                 idle: frozenset[str] = frozenset()) -> dict[str, Rendered]:
        """Each pathway's version now (none while it lists nothing, nor for the pathways in `idle`)."""
        out: dict[str, Rendered] = {}
        read = self._read if idle is self._idle else tuple((p, v) for p, v in self.views.items() if p not in idle)
        for pid, view in read:
            if pid in self.former_views:
                rendered = self.former_views[pid].render(self.former, edge) if self.former is not None else None
            elif playlist is None or not showable:
                rendered = None
            elif view.pathway.uris is LISTED and not view.modes and view.through == playlist.next_sequence - 1:
                # The whole playlist at the URIs it was listed with: the playlist's own version, shared.
                rendered = playlist.render_edge() if edge else playlist.render()
            else:
                rendered = view.render(playlist, edge)
            if rendered is not None:
                out[pid] = rendered
        return out

    # -- a restart --------------------------------------------------------------------------------------

    def behind(self, shown: int) -> set[str]:
        """The pathways that have not shown everything shown anywhere (`shown`, the last number): what
        their version lists beyond that was pushed, not seen (a save is on its way). Not an idle one: nobody
        reads it, and it lists the new playlist as soon as it is read again."""
        return {pid for pid, seen in self.shown.items()
                if seen < shown and pid not in self.former_views and pid not in self.idle}

    def restarting(self, frozen: Playlist | None, keep: set[str], shown: int) -> list[Removed]:
        """The playlist restarts (a new target): the pathways in `keep` go on listing `frozen` (the
        playlist as it was) up to `shown`; the others start on the new one. Returns what left a former
        playlist given up now (one former at a time)."""
        dropped = self._drop_former() if self.former is not None else []
        if frozen is not None and keep:
            self.former = frozen
            self.former_through = shown
            for pid in keep:
                self.former_views[pid] = self.views[pid]
                self.views[pid] = self._view(self.views[pid].pathway)
        for pid, view in self.views.items():
            if pid not in self.former_views:
                view.forget()
        self._regroup()
        return dropped

    def former_done(self, pid: str) -> bool:
        """`pid` listed the former playlist as far as it was shown (or there is none for it here)."""
        view = self.former_views.get(pid)
        return view is None or view.through >= self.former_through

    def leave_former(self, pid: str) -> list[Removed]:
        """`pid` lists the new playlist from now on; returns what left once no pathway lists the former."""
        view = self.former_views.pop(pid, None)
        if view is not None:
            self.views[pid].forget()
            self._regroup()
        if not self.former_views and self.former is not None:
            return self._drop_former()
        return []

    def _drop_former(self) -> list[Removed]:
        former = self.former
        if former is not None:
            for pid, view in self.former_views.items():
                unseen = [e.segment.key or "" for e in _after(former.window, view.through)
                          if e.sequence <= self.former_through]
                if unseen:
                    log.warning("%s pathway: %s shown on another pathway only: a new target came before this "
                                "one had listed them", pid, ", ".join(k.rpartition("/")[2] for k in unseen))
        self.former = None
        if self.former_views:
            self.former_views.clear()
            self._regroup()
        left, self.former_left = self.former_left, []
        return left

    def forget(self) -> None:
        """A restart that keeps nothing (continuing above a state, a variant back): every view empty."""
        self._drop_former()
        self.vm_listed.clear()  # its numbers may name other segments now
        for view in self.views.values():
            view.forget()

    # -- saved with the state -----------------------------------------------------------------------------

    def saved(self, last: int) -> dict[str, object]:
        """Where each pathway's view ends and the modes it listed, for the views that do not list the
        playlist through `last` at their own URIs (most saves hold none: one line per segment stays as
        short as without pathways). The former is not saved: a restart lists the new playlist on every
        pathway."""
        out: dict[str, object] = {}
        for v in self._moving:
            if v.through == last and not v.modes:
                continue
            modes = {"modes": {str(n): m for n, m in v.modes.items()}} if v.modes else {}
            out[v.pathway.id] = {"through": v.through, **modes}
        # The VM's while idle: saved as far as it lists now (_through; its pathway lists every entry at its
        # own URI: no modes, restore). Nothing to save while the first bucket's lists everything.
        first = self._first_moving
        if self._resting and (first is None or first.through != last):
            for v in self._resting:
                through = self._through(v)
                if through != last:
                    out[v.pathway.id] = {"through": through}
        return out

    def restore(self, data: object, playlist: Playlist | None) -> None:
        """`saved`'s values, for the pathways configured now (another pathway's are dropped); raises
        ValueError when they do not add up."""
        raw = validate.mapping(data, "the pathways' views", 64)
        last = playlist.next_sequence - 1 if playlist is not None else -1
        for whole in self.views.values():  # a view not saved listed the playlist whole
            whole.through = last
        for pid, value in raw.items():
            view = self.views.get(pid)
            fields = validate.mapping(value, f"the {pid} pathway's view", 2)
            through = validate.integer(validate.field(fields, "through", "a view"), "through", -1)
            modes = validate.mapping(fields.get("modes", {}), "modes", _MAX_MODES)
            if view is None:
                continue
            view.through = min(through, last)
            if not view.pathway.is_bucket:
                continue  # the VM's pathway lists what it holds at its own URIs (_extend): no modes
            for n, mode in modes.items():
                number = validate.integer(int(n) if n.isdigit() and len(n) < 19 else -1, "a mode's number")
                text = validate.text(mode, "a mode", 64)
                if text != GAP and text not in self._plan.uris:
                    continue  # a pathway no longer configured: its URI cannot be written; listed at ours
                view.modes[number] = text
