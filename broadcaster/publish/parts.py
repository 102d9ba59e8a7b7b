"""Parts: the pieces of the publisher's state, each with one owner, built once by the publisher and
handed as one record to the lister and the recall; Numbering, the piece every playlist shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..bucket.recorder import Recorder
from ..metrics import Metrics
from .config import PublisherConfig
from .late import LateCopies
from .release import Release
from .slots import Lanes
from .target import TargetPolicy
from .uploads import Uploads, WritesWaited
from .variants import Variants


class Numbering:
    """The numbers every variant's playlist shares; the next media sequence number is the highest any
    variant has reached, plus one, so numbering never goes back."""

    def __init__(self, first_sequence: int) -> None:
        self.next_sequence = first_sequence  # the media sequence to start from without saved state
        self.last_run: int | None = None  # the run of the last slot listed
        self.discontinuity_floor = 0  # where a new playlist's discontinuity numbers start (0: none)
        self.runs: dict[str, int] = {}  # Owncast run name -> order

    def run(self, name: str) -> int:
        return self.runs.setdefault(name, len(self.runs))

    def run_name(self, run: int) -> str:
        return next((name for name, order in self.runs.items() if order == run), f"run-{run}")

    def listed(self, next_sequence: int, run: int) -> None:
        """A slot of `run` was listed in a playlist whose next number is now `next_sequence`."""
        self.next_sequence = max(self.next_sequence, next_sequence)
        self.last_run = run

    def continued(self, start: int, floor: int) -> None:
        """Every playlist continues at `start`, its discontinuity numbers above `floor` (hls.continue_above)."""
        self.next_sequence, self.discontinuity_floor = start, floor

    def restored(self, next_sequence: int, last_run: int | None, runs: Mapping[str, int], floor: int) -> None:
        self.next_sequence, self.last_run, self.discontinuity_floor = next_sequence, last_run, floor
        self.runs = dict(runs)


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
