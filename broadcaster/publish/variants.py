"""Variants: Owncast's variants as the publisher knows them, by index, each with its playlist.

The publisher adds a variant when its playlist first comes, and a restore replaces them all; both
build the variant's playlist here (a VariantPlaylist under the one WindowOptions, its removed segments
going on to the cleaner), so a playlist is made in one place, new or restored. Others read the
variants through the Mapping: what was read of Owncast is written by the publisher only (a restore
builds each Variant whole, memory.decode, and `restored` puts them here), and a playlist changes only
through its own intents (variant_playlist.py). The Release tells what it made
visible here (`shown`), and each playlist keeps how far it was shown.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, Mapping, ValuesView
from typing import Any

from ..playlist.options import WindowOptions
from ..playlist.rendered import Rendered
from ..playlist.segments import ListedSegment
from . import playlist_memory
from .slots import Variant
from .variant_playlist import RemovedHook, VariantPlaylist


class Variants(Mapping[int, Variant]):
    def __init__(self, options: WindowOptions, on_removed: RemovedHook) -> None:
        self._options = options
        self._on_removed = on_removed
        self._variants: dict[int, Variant] = {}
        # Called when the bucket's playlist showed a former playlist as far as the VM's pathway did: the
        # new playlist's versions are due there, new segment or not (the publisher asks its lister).
        self.caught_up: Callable[[], None] | None = None

    def __getitem__(self, index: int) -> Variant:
        return self._variants[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._variants)

    def __len__(self) -> int:
        return len(self._variants)

    def __contains__(self, index: object) -> bool:
        return index in self._variants

    def get(self, index: int, default: Variant | None = None) -> Variant | None:  # type: ignore[override]
        return self._variants.get(index, default)

    def values(self) -> ValuesView[Variant]:
        return self._variants.values()

    def items(self) -> ItemsView[int, Variant]:
        return self._variants.items()

    def add(self, index: int, created: float) -> Variant:
        v = self._variants[index] = Variant(index, self.playlist(index, None, created), created=created)
        return v

    def playlist(self, index: int, saved: dict[str, Any] | None, now: float) -> VariantPlaylist:
        """A variant's playlist: not open yet (`saved` None), or as `saved` (playlist_memory's format;
        raises ValueError naming what does not add up)."""
        generator = None if saved is None else playlist_memory.restore(saved, now, self._options)
        return VariantPlaylist(index, self._options, self._on_removed, generator)

    def restored(self, variants: Mapping[int, Variant]) -> None:
        self._variants = dict(variants)

    # -- what the Release made visible (release.ShownTo) ---------------------------------------------------

    def shown(self, renderings: Mapping[int, Rendered], *, replace: bool = False,
              bucket: Mapping[int, Rendered] | None = None) -> None:
        """`bucket`: what the bucket's playlists show, when not `renderings` (the VM's pathway ahead)."""
        if replace:
            for v in self._variants.values():
                v.playlist.forget_shown()
        due = False
        for index in renderings.keys() | (bucket or {}).keys():
            variant = self._variants.get(index)
            if variant is None:
                continue
            rendered = renderings.get(index)
            if bucket is not None and index not in bucket:
                if rendered is not None:
                    variant.playlist.shown_ahead(rendered)
            else:
                # Also a bucket's version alone: a former playlist shown while the new one is still empty.
                due = variant.playlist.shown(rendered, None if bucket is None else bucket[index]) or due
        if due and self.caught_up is not None:
            self.caught_up()

    def retarget(self, target: int, now: float, *, new_timeline: bool) -> dict[int, list[ListedSegment]]:
        """Every variant's playlist starts again under `target` (VariantPlaylist.retarget); returns what
        each leaves unlisted. A bucket's playlist behind the VM's pathway keeps its former playlist
        until shown that far, one former at a time: while one is still owed, none is kept (the bucket's
        playlists would show two targets at once), and what the VM's pathway alone showed is logged."""
        keep = not any(v.playlist.owes_former for v in self._variants.values() if not v.withdrawn)
        return {index: v.playlist.retarget(target, now, new_timeline=new_timeline, keep_former=keep)
                for index, v in self._variants.items()}

    def versions(self, edge: bool = False) -> dict[int, Rendered]:
        """Every variant's current version that can be shown (`edge`: the bucket's)."""
        out = {}
        for index, v in self._variants.items():
            rendered = v.playlist.visible(edge)
            if rendered is not None:
                out[index] = rendered
        return out

    def bucket_versions(self, now: float, edge: bool = False) -> dict[int, Rendered]:
        """Every variant's version the bucket's pathway shows (listing only what is in the bucket). A new
        target duration reaches every variant's at once (6.2.4: variants share one): while one still
        shows an earlier target's version, its upload under the new one not landed, the others show none
        under the new target yet (the VM's pathway has them). One that still shows its former playlist
        (`owes_former`) shows it under the former target, and holds the others the same way (a withdrawn
        one holds none: no master names it)."""
        out = {}
        former = set()
        behind = False
        for index, v in self._variants.items():
            rendered = v.playlist.bucket_visible(edge, now)
            if v.playlist.owes_former:
                former.add(index)  # shown, also withdrawn (no master names it: its target holds no other)
                behind = behind or not v.withdrawn
            if rendered is not None:
                out[index] = rendered
            elif v.playlist.listing and not v.withdrawn and v.playlist.bucket_retargets:
                behind = True
        if behind:
            out = {i: r for i, r in out.items() if i in former or not self._variants[i].playlist.bucket_retargets}
        return out
