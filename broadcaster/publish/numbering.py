"""Numbering: the numbers every variant's playlist shares, with one owner.

The next media sequence number (the highest any variant has reached, plus one, so numbering never goes
back), the run of the last slot listed, where a new playlist starts after continuing above a state, and
Owncast's runs by name. Each changes through a method here; the publisher's memory saves them.
"""

from __future__ import annotations

from collections.abc import Mapping


class Numbering:
    def __init__(self, first_sequence: int) -> None:
        self._next_sequence = first_sequence  # the media sequence to start from without saved state
        self._last_run: int | None = None
        self._discontinuity_floor = 0
        self._runs: dict[str, int] = {}  # Owncast run name -> order

    @property
    def next_sequence(self) -> int:
        return self._next_sequence

    @property
    def last_run(self) -> int | None:
        """The run of the last slot listed."""
        return self._last_run

    @property
    def discontinuity_floor(self) -> int:
        """Where a new playlist's discontinuity numbers start after continuing above a state (0: none)."""
        return self._discontinuity_floor

    @property
    def runs(self) -> Mapping[str, int]:
        return self._runs

    def run(self, name: str) -> int:
        """The order of Owncast's run `name`: the next one when it is new."""
        return self._runs.setdefault(name, len(self._runs))

    def run_name(self, run: int) -> str:
        return next((name for name, order in self._runs.items() if order == run), f"run-{run}")

    def listed(self, next_sequence: int, run: int) -> None:
        """A slot of `run` was listed in a playlist whose next number is now `next_sequence`."""
        self._next_sequence = max(self._next_sequence, next_sequence)
        self._last_run = run

    def continued(self, start: int, floor: int) -> None:
        """Every playlist continues at `start`, its discontinuity numbers above `floor` (hls.continue_above).
        """
        self._next_sequence, self._discontinuity_floor = start, floor

    def restored(self, next_sequence: int, last_run: int | None, runs: Mapping[str, int], floor: int) -> None:
        self._next_sequence, self._last_run, self._discontinuity_floor = next_sequence, last_run, floor
        self._runs = dict(runs)
