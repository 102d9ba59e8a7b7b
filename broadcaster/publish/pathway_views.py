"""What each pathway lists of one variant's playlist (docs/steering.md): the entries up to the newest
whose segment is there (a bucket's once its upload there landed; the VM's at once, or once the first
bucket's lists it while it only redirects). A pathway never goes back (6.2.2); versions differ only in
their end and URIs (6.2.4). PathwayViews changes no playlist: the hold it decides is returned.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from itertools import takewhile
from dataclasses import dataclass, field
from typing import Protocol, cast

from ..playlist.entry import Entry
from ..playlist.pathway import LISTED, Pathway
from ..playlist.rendered import Rendered, Version
from ..playlist.segments import Removed
from ..playlist.views import GAP, OWN, Snapshot, Source, View
from ..playlist.window import Window
from ..state import validate
from .landings import Landings
from .listed_keys import At, VmListed
from .pathways import PathwayPlan

log = logging.getLogger(__name__)

_MAX_MODES = 100_000  # modes a saved view may hold (a 4 h rewind of 1 s segments is 14,400)


class Frozen(Source, Protocol):
    """The former playlist (a frozen ManifestGenerator): read, and told a segment is nowhere."""

    def unavailable(self, key: str) -> int | None: ...


def after(window: Window, through: int) -> Iterator[Entry]:
    """The entries numbered above `through`, in order (read from the end: a pathway's lag)."""
    return reversed(list(takewhile(lambda e: e.sequence > through, reversed(window))))


@dataclass(eq=False, slots=True)
class Former:
    """The playlist before a new target, which the pathways behind list up to the last number shown
    anywhere before the new one; what leaves the new playlist meanwhile is held here until none lists it."""

    playlist: Frozen
    views: dict[str, View]
    through: int
    left: list[Removed] = field(default_factory=list)  # what left the new playlist meanwhile

    def done(self, pathway: str) -> bool:
        """`pathway` listed it as far as it was shown (or does not list it)."""
        view = self.views.get(pathway)
        return view is None or view.through >= self.through

    def render(self, pathway: str, edge: bool) -> Rendered | None:
        view = self.views.get(pathway)
        return view.render(self.playlist, edge) if view is not None else None

    def keys(self) -> Iterator[tuple[str, bool]]:
        """(key, listed as a gap) of each segment it lists."""
        return ((e.segment.key, e.segment.gap) for e in self.playlist.window if e.segment.key)

    def leave(self, pathway: str) -> bool:
        """`pathway` lists the new playlist from now on; True when no pathway lists this one any more."""
        self.views.pop(pathway, None)
        return not self.views

    def drop(self) -> list[Removed]:
        """Given up: what it held back, for the cleaner."""
        for pid, view in self.views.items():
            unseen = [e.segment.key or "" for e in after(self.playlist.window, view.through)
                      if e.sequence <= self.through]
            if unseen:
                log.warning("%s pathway: %s shown on another pathway only: a new target came before this "
                            "one had listed them", pid, ", ".join(k.rpartition("/")[2] for k in unseen))
        self.views.clear()
        left, self.left = self.left, []
        return left


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
        return [view for pid, view in self._views.items() if not self._on_former(pid)]

    # -- what lands where -----------------------------------------------------------------------------

    def listed_keys(self, playlist: Source) -> dict[str, bool]:
        """Key -> listed as a gap, of every segment the playlist or the former lists."""
        listed = {e.segment.key: e.segment.gap for e in playlist.window if e.segment.key}
        if self.former is not None:
            listed.update(self.former.keys())
        return listed

    def nowhere(self, key: str) -> None:
        """The segment under `key` exists nowhere: the former lists it as a gap too."""
        if self.former is not None:
            self.former.playlist.unavailable(key)

    def found(self, pathway: str, key: str, at: At | None, vm: bool) -> tuple[int, str | None] | None:
        """`key` (`at`: where the window lists it) as `pathway` lists it: its number and the first bucket's
        URL once landed there; the VM's pathway also answers what left the window (6.2.2)."""
        if at is None and vm:
            at = self._vm_listed.get(key)
            if at is None:
                return None
        elif (at is None or (view := self._views.get(pathway)) is None or self._on_former(pathway)
              or not 0 <= at[0] <= view.through):
            return None  # not listed on `pathway` (or not yet)
        number, url, segment_key = at
        return number, url if self._landings.landed(self._plan.first.id, segment_key) else None

    # -- how far each pathway lists ---------------------------------------------------------------------

    def advance(self, playlist: Playlist | None) -> int | None:
        """Each pathway's view as far as its segments are there; returns where the furthest behind ends."""
        former = self.former
        if former is not None:
            first_view = former.views.get(self._plan.first.id)
            for view in former.views.values():
                self._extend(view, former.playlist, first_view.through if first_view is not None else former.through,
                             former.through)
        if playlist is None:
            return None
        first_through = -1  # the first bucket's is moved on first (none while it lists the former)
        last, oldest = playlist.next_sequence - 1, playlist.media_sequence
        hold: int | None = None
        for view in self._current():
            if view.through < last:  # else nothing new to list there (most pushes, on most pathways)
                self._extend(view, playlist, first_through, last)
            through = view.through
            if view is self._first:
                first_through = through
            if oldest <= through < last and (hold is None or through < hold):
                hold = through
        return hold

    def trim(self, oldest: int) -> None:
        for view in self._views.values():
            view.drop_modes_before(oldest)

    def before_append(self, playlist: Playlist) -> int | None:
        """An entry is about to be appended: where the pathway furthest behind ends (None: no hold)."""
        oldest = playlist.media_sequence
        throughs = [v.through for v in self._current() if v.through >= oldest]
        return min(throughs) if throughs else None

    def _extend(self, view: View, playlist: Source, first_through: int, last: int) -> None:
        through = max(view.through, playlist.media_sequence - 1)
        window = playlist.window
        pathway = view.pathway
        if not pathway.is_bucket:
            # The VM's pathway lists each at once, or, while it only redirects, once the first bucket's does.
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
        """Each pathway's version now (`edge`: the first bucket's alone), the others rendered when asked."""
        out: dict[str, Version] = {}
        former = self.former
        snapshot = functools.cache(lambda: Snapshot(cast(Playlist, playlist)))
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
                # The whole playlist at its own URIs: the playlist's own version, shared.
                rendered = playlist.render_edge() if edge else playlist.render()
            else:
                rendered = view.render(playlist, edge)
            if rendered is not None:
                out[pid] = rendered
        return out

    # -- what clients were shown -------------------------------------------------------------------------

    def saw(self, pid: str, last: int) -> None:
        self._shown[pid] = last

    def shown_on(self, pid: str) -> int:
        return self._shown.get(pid, -1)

    @property
    def shown_anywhere(self) -> int:
        return max(self._shown.values(), default=-1)

    def forget_shown(self) -> None:
        for pid in self._shown:
            self._shown[pid] = -1

    # -- a restart --------------------------------------------------------------------------------------

    @property
    def on_former(self) -> frozenset[str]:
        return frozenset(self.former.views) if self.former is not None else frozenset()

    def behind(self, shown: int) -> set[str]:
        """The pathways (not on the former) that have not shown up to `shown`."""
        return {pid for pid, seen in self._shown.items() if seen < shown and not self._on_former(pid)}

    def restarting(self, frozen: Frozen | None, keep: set[str], shown: int) -> list[Removed]:
        """A new target: `keep` go on listing `frozen` up to `shown`; returns what a dropped former held."""
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
        """`pid` showed the former playlist as far as any pathway did (or lists none)."""
        former = self.former
        return (former is None or pid not in former.views
                or (former.done(pid) and self._shown[pid] >= former.through))

    def leave_former(self, pid: str) -> list[Removed]:
        """`pid` lists the new playlist from now on; returns what left once no pathway lists the former."""
        former = self.former
        if former is None or pid not in former.views:
            return []
        self._views[pid].forget()
        return self._drop_former() if former.leave(pid) else []

    def hold_back(self, removed: list[Removed]) -> list[Removed]:
        """What left the playlist, held while a pathway lists the former; returns what goes on now."""
        if self.former is None:
            return removed
        self.former.left += removed
        return []

    def _drop_former(self) -> list[Removed]:
        former, self.former = self.former, None
        return former.drop() if former is not None else []

    def forget(self) -> list[Removed]:
        """A restart that keeps nothing; returns what a former playlist held back."""
        left = self._drop_former()
        self._vm_listed.clear()  # its numbers may name other segments now
        for view in self._views.values():
            view.forget()
        return left

    # -- saved with the state -----------------------------------------------------------------------------

    def saved(self, last: int) -> dict[str, object]:
        """Where each view ends and its modes, unless it lists the playlist whole at its own URIs."""
        out: dict[str, object] = {}
        for v in self._current():
            if v.through == last and not v.modes:
                continue
            modes = {"modes": {str(n): m for n, m in v.modes.items()}} if v.modes else {}
            out[v.pathway.id] = {"through": v.through, **modes}
        return out

    def restore(self, data: object, playlist: Playlist | None) -> None:
        """`saved`'s values, for the pathways configured now (ValueError when they do not add up)."""
        last = playlist.next_sequence - 1 if playlist else -1
        raw = validate.mapping(data, "the pathways' views", 64)
        for whole in self._views.values():
            whole.through = last
        for pid, value in raw.items():
            view = self._views.get(pid)
            fields = validate.mapping(value, f"the {pid} pathway's view", 2)
            through = validate.integer(validate.field(fields, "through", "a view"), "through", -1)
            modes = validate.mapping(fields.get("modes", {}), "modes", _MAX_MODES)
            if view is None:
                continue
            view.through = min(through, last)
            if not view.pathway.is_bucket:
                continue  # the VM's pathway lists at its own URIs: no modes
            for n, mode in modes.items():
                number = validate.integer(int(n) if n.isdigit() and len(n) < 19 else -1, "a mode's number")
                text = validate.text(mode, "a mode", 64)
                if text != GAP and text not in self._plan.uris:
                    continue  # a pathway no longer configured: listed at ours
                view.modes[number] = text


def _mode(plan: PathwayPlan, landings: Landings, pathway: Pathway, e: Entry) -> str | None:
    """How a bucket's `pathway` lists `e` now (OWN, GAP or the pathway whose URI it takes), None: not yet."""
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
