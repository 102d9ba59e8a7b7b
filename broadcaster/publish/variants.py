"""Variants: Owncast's variants as the publisher knows them, by index, with one owner.

The publisher adds a variant when its playlist first comes, and a restore replaces them all; everyone
else (the lister, the memory, health) reads them through the Mapping, which has no way to change them.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView

from .slots import Variant


class Variants(Mapping[int, Variant]):
    def __init__(self) -> None:
        self._variants: dict[int, Variant] = {}

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
        v = self._variants[index] = Variant(index, created=created)
        return v

    def restored(self, variants: Mapping[int, Variant]) -> None:
        self._variants = dict(variants)
