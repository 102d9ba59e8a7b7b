"""A steering policy (broadcaster/steering/policy.py) on a fake clock, evaluated as the service's loop
evaluates it: the buckets' signals are the test's to set."""

from __future__ import annotations

import functools

from broadcaster.steering.policy import BucketSignals, SteeringPolicy
from tests.support.fakes import Clock


class PolicyWorld:
    """`behind`, `failing` and `refused`: the first bucket's signals; `others_behind[pathway]`: how long
    the uploads to each other bucket named in `pathways` have waited (their last attempt failed, as the
    first's by default)."""

    def __init__(self, pathways: tuple[str, ...] = ("bucket", "vm"), target: int = 2,
                 interval: float = 1.0) -> None:
        self.clock = Clock()
        self.behind = 0.0
        self.failing = True  # the uploads' last attempt failed
        self.refused: str | None = None  # why the bucket refused the last attempt
        self.others_behind = {p: 0.0 for p in pathways if p not in ("bucket", "vm")}
        signals = {"bucket": BucketSignals(behind=lambda: self.behind, failing=lambda: self.failing,
                                           refused=lambda: self.refused),
                   **{p: BucketSignals(behind=functools.partial(self.others_behind.__getitem__, p))
                      for p in self.others_behind}}
        self.policy = SteeringPolicy(pathways, signals, lambda: target, interval=interval, clock=self.clock)

    def run(self, seconds: float, step: float = 0.5) -> None:
        """Evaluate every `step` for `seconds`, as the service's loop does."""
        end = self.clock.t + seconds
        while self.clock.t < end:
            self.clock.t += step
            self.policy.evaluate()
