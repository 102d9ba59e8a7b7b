"""Parts: the pieces of the publisher's state the lister lists through, each with one owner (built by the
publisher, publisher.py): the variants (what was read of Owncast, and each one's playlist), the slots
(lanes.Lanes), the numbering the playlists share (numbering.Numbering) and the target policy."""

from __future__ import annotations

from dataclasses import dataclass

from .lanes import Lanes
from .numbering import Numbering
from .target import TargetPolicy
from .variants import Variants


@dataclass(frozen=True, slots=True)
class Parts:
    variants: Variants
    lanes: Lanes
    numbering: Numbering
    target: TargetPolicy
