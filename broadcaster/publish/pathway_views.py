"""What each pathway lists of one variant's playlist: the one rule, for every pathway.

A pathway lists the playlist's entries up to the newest one whose segment is there: a bucket's once its
upload there landed (landings.Landings; failed for good: a gap, EXT-X-GAP; while players are steered
away, at the URI of the first pathway that has it, PathwayPlan.fallbacks, for players that stay); the
VM's at once (vm/held.py), or, while it only redirects to the first bucket (PathwayPlan.redirects), once
the first bucket's lists it.

A pathway never goes back: what it listed stays listed at its URI (6.2.2), and the playlist keeps every
entry until the pathway furthest behind has a window without it (ManifestGenerator.keep_through): every
version has the same numbers, discontinuities, durations and dates (6.2.4), only its end and URIs differ.
After a new target duration, a pathway behind lists the former playlist first (former.py).

PathwayViews decides and changes no playlist: the hold it decides is returned to the playlist's owner.
"""


from __future__ import annotations

from typing import Protocol

from ..playlist.entry import Entry
from ..playlist.pathway import LISTED, Pathway
from ..playlist.rendered import Rendered, Version
from ..playlist.segments import Removed
from ..playlist.views import GAP, OWN, Snapshot, Source, View
from . import views_memory
from .former import Former, Frozen, after
from .landings import Landings
from .listed_keys import At, VmListed
from .pathways import PathwayPlan


class Playlist(Source, Protocol):
    """What the views read of the playlist (variant_playlist's ManifestGenerator): read only."""

    def render(self) -> Rendered: ...

    def render_edge(self) -> Rendered: ...


class PathwayViews:

    def __init__(self, plan: PathwayPlan, landings: Landings) -> None:
        self._plan = plan
        self._landings = landings
        self._views: dict[str, View] = {p.id: View(p, plan.uris) for p in plan.pathways}
        self._first = self._views[plan.first.id]
        self._shown: dict[str, int] = {p.id: -1 for p in plan.pathways}  # the last number each showed
        self.former: Former | None = None  # a restarted playlist some pathways still list (a new target)
        self._vm_listed = VmListed()

    def _on_former(self, pid: str) -> bool:
        return self.former is not None and pid in self.former.views

    def _current(self) -> list[View]:
        """The views of the current playlist (not of the former), in the plan's order."""
        former = self.former
        if former is None:
            return list(self._views.values())
        return [view for pid, view in self._views.items() if pid not in former.views]

    # -- what lands where -----------------------------------------------------------------------------

    def listed_keys(self, playlist: Source) -> dict[str, bool]:
        """Key -> listed as a gap, of every segment the playlist or the former lists (Landings.settle)."""
        listed = {e.segment.key: e.segment.gap for e in playlist.window if e.segment.key}
        if self.former is not None:
            listed.update(self.former.keys())
        return listed

    def nowhere(self, key: str) -> None:
        """The segment under `key` exists nowhere (Landings.settle): the former lists it as a gap too."""
        if self.former is not None:
            self.former.playlist.unavailable(key)

    def lists(self, pid: str, sequence: int) -> bool:
        """Whether `pid`'s view lists number `sequence` of the current playlist."""
        view = self._views.get(pid)
        if view is None or self._on_former(pid):
            return False
        return 0 <= sequence <= view.through

    def found(self, pathway: str, key: str, at: At | None, vm: bool) -> tuple[int, str | None] | None:
        """`key` (`at`: where the window lists it) as `pathway` lists it: its number and the first bucket's
        URL once it landed there; None when `pathway` does not list it. The VM's pathway also answers what it
        listed before it left the window (6.2.2)."""
        if at is None and vm:
            at = self._vm_listed.get(key)
            if at is None:
                return None
        elif at is None or not self.lists(pathway, at[0]):
            return None
        number, url, segment_key = at
        return number, url if self._landings.landed(self._plan.first.id, segment_key) else None

    # -- how far each pathway lists ---------------------------------------------------------------------

    def advance(self, playlist: Playlist | None) -> int | None:
        """Each pathway's view as far as its segments are there; returns where the pathway furthest behind
        ends, short of the window's end (None: none is behind): the playlist keeps what it still needs, then
        `trim`."""
        former = self.former
        if former is not None:
            first_view = former.views.get(self._plan.first.id)
            for view in former.views.values():
                self._extend(view, former.playlist, first_view.through if first_view is not None else former.through,
                             former.through)
        if playlist is None:
            return None
        first_view = self._first
        first_through = -1  # the first bucket's is moved on first (none while it lists the former)
        last = playlist.next_sequence - 1
        oldest = playlist.media_sequence
        hold: int | None = None
        for view in self._current():
            if view.through < last:  # else nothing new to list there (most pushes, on most pathways)
                self._extend(view, playlist, first_through, last)
            through = view.through
            if view is first_view:
                first_through = through
            if oldest <= through < last and (hold is None or through < hold):
                hold = through
        return hold

    def trim(self, oldest: int) -> None:
        """The window starts at `oldest` now: the modes of what left go with it."""
        for view in self._views.values():
            if view.modes:
                view.drop_modes_before(oldest)

    def before_append(self, playlist: Playlist) -> int | None:
        """An entry is about to be appended, which no pathway lists yet: where the pathway furthest behind
        ends (the hold the playlist keeps until they are looked at again: advance); None: as it is."""
        oldest = playlist.media_sequence
        throughs = [v.through for v in self._current() if v.through >= oldest]
        return min(throughs) if throughs else None

    def _extend(self, view: View, playlist: Source, first_through: int, last: int) -> None:
        through = max(view.through, playlist.media_sequence - 1)
        window = playlist.window
        pathway = view.pathway
        if not pathway.is_bucket:
            # The VM serves every segment listed: its pathway lists each at once (a gap too), or, while it
            # only redirects to the first bucket, once that bucket's pathway does. Decided once a push,
            # not asked of every entry (this runs for every segment while nothing fails).
            upto = min(last, first_through) if self._plan.redirects() else last
            entries = len(window)
            for e in after(window, through):
                sequence = e.sequence
                if sequence > upto and (sequence > last or not e.segment.gap):  # a gap is listed at once
                    break
                self._vm_listed.add(e, entries)
                through = sequence
        else:
            for e in after(window, through):
                if e.sequence > last:
                    break
                mode = _mode(self._plan, self._landings, pathway, e)
                if mode is None:
                    break
                if mode != OWN:
                    view.modes[e.sequence] = mode
                through = e.sequence
        if through > view.through:
            view.through = through

    def versions(self, playlist: Playlist | None, showable: bool, edge: bool = False) -> dict[str, Version]:
        """Each pathway's version now; `edge`: the first bucket's alone. The first bucket's is rendered now,
        every other one when first asked (View.version: one Snapshot for them all)."""
        out: dict[str, Version] = {}
        former = self.former
        frozen: list[Snapshot] = []

        def snapshot() -> Snapshot:  # made once a push, and only for a pathway whose version changed
            if not frozen:
                assert playlist is not None
                frozen.append(Snapshot(playlist))
            return frozen[0]

        for pid, view in self._views.items():
            first = view is self._first
            if edge and not first:
                continue
            rendered: Version | None
            if former is not None and pid in former.views:
                rendered = former.render(pid, edge)
            elif playlist is None or not showable:
                rendered = None
            elif not first:
                rendered = view.version(playlist, snapshot, edge)
            elif view.pathway.uris is LISTED and not view.modes and view.through == playlist.next_sequence - 1:
                # The whole playlist at the URIs it was listed with: the playlist's own version, shared.
                rendered = playlist.render_edge() if edge else playlist.render()
            else:
                rendered = view.render(playlist, edge)
            if rendered is not None:
                out[pid] = rendered
        return out

    # -- what clients were shown (the Release tells) --------------------------------------------------------

    def saw(self, pid: str, last: int) -> None:
        self._shown[pid] = last

    def shown_on(self, pid: str) -> int:
        """The last number `pid` showed (-1: none since a start)."""
        return self._shown.get(pid, -1)

    @property
    def shown_anywhere(self) -> int:
        """The last number a client may have seen."""
        return max(self._shown.values(), default=-1)

    def forget_shown(self) -> None:
        for pid in self._shown:
            self._shown[pid] = -1

    # -- a restart --------------------------------------------------------------------------------------

    @property
    def on_former(self) -> frozenset[str]:
        """The pathways that still list the playlist before its last restart (a new target)."""
        return frozenset(self.former.views) if self.former is not None else frozenset()

    def behind(self, shown: int) -> set[str]:
        """The pathways that have not shown everything shown anywhere (`shown`, the last number): what
        their version lists beyond that was pushed, not seen (a save is on its way)."""
        return {pid for pid, seen in self._shown.items() if seen < shown and not self._on_former(pid)}

    def restarting(self, frozen: Frozen | None, keep: set[str], shown: int) -> list[Removed]:
        """The playlist restarts (a new target): the pathways in `keep` go on listing `frozen` up to `shown`;
        the others start on the new one. Returns what left a former playlist given up now."""
        dropped = self._drop_former()
        if frozen is not None and keep:
            kept = {pid: self._views[pid] for pid in keep}
            for pid, view in kept.items():
                self._views[pid] = View(view.pathway, self._plan.uris)
            self.former = Former(frozen, kept, shown)
        for pid, view in self._views.items():
            if not self._on_former(pid):
                view.forget()
        return dropped

    def former_done(self, pid: str) -> bool:
        """`pid` showed the former playlist as far as any pathway did (or has none here)."""
        former = self.former
        if former is None or pid not in former.views:
            return True
        return former.done(pid) and self._shown[pid] >= former.through

    def leave_former(self, pid: str) -> list[Removed]:
        """`pid` lists the new playlist from now on; returns what left once no pathway lists the former."""
        former = self.former
        if former is None or pid not in former.views:
            return []
        self._views[pid].forget()
        if former.leave(pid):
            return self._drop_former()
        return []

    def hold_back(self, removed: list[Removed]) -> list[Removed]:
        """What left the playlist: held while a pathway still lists the former (which may list it: it leaves
        once that is done with, and stays downloadable from then on); returns what goes on now."""
        if self.former is None:
            return removed
        self.former.hold_back(removed)
        return []

    def _drop_former(self) -> list[Removed]:
        former, self.former = self.former, None
        return former.drop() if former is not None else []

    def forget(self) -> list[Removed]:
        """A restart that keeps nothing: every view empty. Returns what a former playlist held back."""
        left = self._drop_former()
        self._vm_listed.clear()  # its numbers may name other segments now
        for view in self._views.values():
            view.forget()
        return left

    # -- saved with the state -----------------------------------------------------------------------------

    def saved(self, last: int) -> dict[str, object]:
        """views_memory.saved; the former is not saved."""
        return views_memory.saved(self._current(), last)

    def restore(self, data: object, playlist: Playlist | None) -> None:
        """views_memory.restore, for the pathways configured now."""
        views_memory.restore(data, self._views, self._plan.uris, playlist.next_sequence - 1 if playlist else -1)


def _mode(plan: PathwayPlan, landings: Landings, pathway: Pathway, e: Entry) -> str | None:
    """How a bucket's `pathway` lists `e` now (OWN, GAP or the pathway whose URI it takes), None: not yet.
    (The VM's lists what it holds: PathwayViews._extend.)"""
    key = e.segment.key
    if e.segment.gap:
        return OWN
    state = landings.state(pathway.id, key)
    if state is not None:
        return state
    for other in plan.fallbacks(pathway.id):
        target = next((p for p in plan.pathways if p.id == other), None)
        if target is not None and (not target.is_bucket or landings.state(other, key) == OWN):
            return other
    return None
