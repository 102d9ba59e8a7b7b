"""Variants: Owncast's variants by index, each with its playlist (made here under the one WindowOptions);
the Release tells what it made visible here (`shown`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..playlist.options import WindowOptions
from ..playlist.rendered import Version
from ..playlist.segments import ListedSegment
from . import playlist_memory
from .pathways import PathwayPlan
from .slots import Variant
from .variant_playlist import RemovedHook, VariantPlaylist


class Variants(Mapping[int, Variant]):
    def __init__(self, options: WindowOptions, on_removed: RemovedHook, plan: PathwayPlan | None = None) -> None:
        self._options = options
        self._on_removed = on_removed
        self._plan = plan or PathwayPlan()
        self._variants: dict[int, Variant] = {}
        self.caught_up: Callable[[], None] | None = None  # a pathway showed every former playlist through

    def __getitem__(self, index: int) -> Variant:
        return self._variants[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._variants)

    def __len__(self) -> int:
        return len(self._variants)

    def join_apart(self, v: Variant, run: int, discontinuity: bool) -> None:
        """`v` new in a run whose variants are cut apart starts at the discontinuity number the others give
        this run (6.2.4): theirs where they list or listed it, else the one their next segment gets."""
        numbers = []
        for o in self._variants.values():
            p = o.playlist
            if o is not v and not o.withdrawn and p.listing:
                listed = p.last_discontinuity if p.last_run == run else p.run_numbers.get(run)
                numbers.append(listed if listed is not None else p.next_discontinuity(True))
        if numbers:
            v.playlist.join(max(numbers), discontinuity)

    def add(self, index: int, created: float) -> Variant:
        v = self._variants[index] = Variant(index, self.playlist(index, None, created), created=created)
        return v

    def playlist(self, index: int, saved: dict[str, Any] | None, now: float) -> VariantPlaylist:
        """A variant's playlist: not open yet (`saved` None), or as `saved`."""
        generator = None if saved is None else playlist_memory.restore(saved, now, self._options)
        return VariantPlaylist(index, self._options, self._on_removed, generator, self._plan)

    def restored(self, variants: Mapping[int, Variant]) -> None:
        self._variants = dict(variants)

    # -- release.ShownTo -----------------------------------------------------------------------------------

    def shown(self, renderings: Mapping[str, Mapping[int, Version]], *, replace: bool = False) -> None:
        if replace:
            for v in self._variants.values():
                v.playlist.forget_shown()
        for pathway, versions in renderings.items():
            for index, rendered in versions.items():
                variant = self._variants.get(index)
                if variant is not None:
                    variant.playlist.shown(pathway, rendered)
        if self.caught_up is not None and self._leaving():
            self.caught_up()

    def _leaving(self) -> set[str]:
        """The pathways that showed every (not withdrawn) variant's former playlist as far as it went."""
        playing = [v for v in self._variants.values() if not v.withdrawn]
        return {pid for v in self._variants.values() for pid in v.playlist.on_former
                if all(o.playlist.former_done(pid) for o in playing)}

    def retarget(self, target: int, now: float, *, new_timeline: bool,
                 carry_to: int = 0) -> dict[int, list[ListedSegment]]:
        """Every variant's playlist starts again under `target`; returns what each leaves unlisted. A pathway
        behind in any variant lists every former playlist first; what is carried ends below `carry_to`."""
        behind = frozenset(pid for v in self._variants.values() for pid in v.playlist.behind())
        to = carry_to if new_timeline else 0
        return {index: v.playlist.retarget(target, now, new_timeline=new_timeline, keep_former=behind,
                                           carry_to=to) for index, v in self._variants.items()}

    def versions(self, now: float, edge: bool = False) -> dict[str, dict[int, Version]]:
        """Every variant's version on each pathway, every variant switched to a new target at once (6.2.4)."""
        playing = [v for v in self._variants.values() if not v.withdrawn]
        together = self._leaving()
        for v in self._variants.values():
            for pid in v.playlist.on_former:
                # A withdrawn variant leaves once it showed its own as far as it went.
                if v.playlist.former_done(pid) and (pid in together or v.withdrawn):
                    v.playlist.leave_former(pid)
        out: dict[str, dict[int, Version]] = {p.id: {} for p in self._plan.pathways[:1 if edge else None]}
        for index, v in self._variants.items():
            for pid, rendered in v.playlist.versions(now, edge).items():
                out[pid][index] = rendered
        for pid, versions in out.items():
            if not versions:
                continue
            # The target of each variant's visible version once these are shown.
            targets = {v.playlist.version_target(pid) if v.index in versions else v.playlist.shown_target(pid)
                       for v in playing} - {None}
            if len(targets) > 1:  # not every variant can switch yet: none does
                out[pid] = {i: r for i, r in versions.items()
                            if self._variants[i].playlist.version_target(pid)
                            in (self._variants[i].playlist.shown_target(pid), None)}
        return out
