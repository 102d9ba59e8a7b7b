"""The pathways a publisher lists on (content steering), in PATHWAYS' order, and what the steering stage
tells of them: `fallbacks(pathway)`, where a bucket's pathway lists what it lacks while players are steered
away from it, and `redirects()`, whether the VM answers its segments with a redirect to the first bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..playlist import hls
from ..playlist.pathway import BUCKET, LISTED, Pathway, SegmentUris

FIRST = Pathway(hls.BUCKET_PATHWAY, BUCKET, "", LISTED)


@dataclass(frozen=True)
class PathwayPlan:
    pathways: tuple[Pathway, ...] = (FIRST,)
    fallbacks: Callable[[str], Sequence[str]] = lambda pathway: ()
    redirects: Callable[[], bool] = lambda: True
    uris: Mapping[str, SegmentUris] = field(init=False)
    held: bool = field(init=False)  # a pathway lists what the VM holds, before any bucket has it

    def __post_init__(self) -> None:
        ids = [p.id for p in self.pathways]
        if not ids or ids[0] != hls.BUCKET_PATHWAY or len(set(ids)) != len(ids) or not self.pathways[0].is_bucket:
            raise ValueError(f"pathways start with the first bucket's, each once: {ids}")
        object.__setattr__(self, "uris", {p.id: p.uris for p in self.pathways})
        object.__setattr__(self, "held", any(not p.is_bucket for p in self.pathways))

    @property
    def first(self) -> Pathway:
        return self.pathways[0]

    @property
    def buckets(self) -> tuple[Pathway, ...]:
        return tuple(p for p in self.pathways if p.is_bucket)

    def lists_held(self) -> bool:
        """Now, a pathway lists what the VM holds before any bucket has it."""
        return self.held and not self.redirects()
