"""Parts: the pieces of the publisher's state, each with one owner, built once by the publisher
(publisher.py) and handed as one record to the parts that work through them (the lister, the intake, the
recall): the variants (what was read of Owncast, and each one's playlist), the slots (slots.Lanes), the
numbering the playlists share (numbering.Numbering), the target policy, the uploads, the files an upload
waits on (writing.WritesWaited), the copies uploaded late (late.LateCopies) and where versions go
(release.Release)."""

from __future__ import annotations

from dataclasses import dataclass

from ..bucket.recorder import Recorder
from ..metrics import Metrics
from .config import PublisherConfig
from .late import LateCopies
from .numbering import Numbering
from .release import Release
from .slots import Lanes
from .target import TargetPolicy
from .uploads import Uploads
from .variants import Variants
from .writing import WritesWaited


@dataclass(frozen=True, slots=True)
class Parts:
    config: PublisherConfig
    metrics: Metrics
    recorder: Recorder | None
    variants: Variants
    lanes: Lanes
    numbering: Numbering
    target: TargetPolicy
    release: Release
    uploads: Uploads
    waited: WritesWaited
    late: LateCopies
