"""The order a run's tests begin in, from each module's seconds in a full run (tests/durations.json,
written by `scripts/test --write-durations`), not lists kept by hand.

loadgroup hands each worker the next xdist_group in this order (--no-loadscope-reorder): the longest group
without a browser, then every browser group, longest first, then the other groups; then the tests in no
group, modules of LONG seconds or more first (those without a browser before those with one), then the
rest in file order. A module or group the data does not know counts as short."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

DURATIONS = Path(__file__).resolve().parent.parent / "durations.json"
LONG = 5.0  # seconds per test from which a module in no group begins before the short ones


@dataclass(frozen=True)
class Module:
    seconds: float  # all its tests, setup and teardown included, in a full run
    tests: int


def read(path: Path = DURATIONS) -> dict[str, Module]:
    """The recorded seconds of each module (by file name); empty when there are none yet."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {name: Module(float(m["seconds"]), int(m["tests"])) for name, m in raw.items()
            if isinstance(m, dict) and "seconds" in m and "tests" in m}


def write(seen: Mapping[str, Module], path: Path = DURATIONS) -> None:
    """The seconds of the modules this run ran, over what was recorded (a run of part of the suite keeps
    the others' figures), sorted by name: one line each, a diff a reviewer can read."""
    merged = {name: m for name, m in {**read(path), **seen}.items() if (path.parent / name).is_file()}
    path.write_text(json.dumps({name: {"seconds": round(m.seconds, 1), "tests": m.tests}
                                for name, m in sorted(merged.items())}, indent=1) + "\n")


def group_order(groups: Mapping[str, tuple[float, bool]]) -> tuple[str, ...]:
    """The order the xdist groups begin in; `groups`: each present -> (seconds, has a browser)."""
    def longest(names: Collection[str]) -> list[str]:
        return sorted(names, key=lambda g: (-groups[g][0], g))

    quiet = longest([g for g, (_, browser) in groups.items() if not browser])
    loud = longest([g for g, (_, browser) in groups.items() if browser])
    return (*quiet[:1], *loud, *quiet[1:])


def ungrouped_rank(modules: Mapping[str, Module], name: str, browser: bool) -> tuple[int, float]:
    """Where a module in no group begins: (0, -seconds a test) for a long one without a browser, (1, ...)
    for a long one with one, (2, 0) for the rest (file order among them: the sort is stable)."""
    m = modules.get(name)
    per_test = m.seconds / m.tests if m is not None and m.tests else 0.0
    if per_test < LONG:
        return 2, 0.0
    return (1 if browser else 0), -per_test
