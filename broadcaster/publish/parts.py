"""Parts: the pieces of the publisher's state, each with one owner, built once by the publisher and
handed as one record to the lister and the recall."""

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
from .uploads import Uploads, WritesWaited
from .variants import Variants


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
