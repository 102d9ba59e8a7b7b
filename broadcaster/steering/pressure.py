"""Whether this machine's CPU is saturated: then a bucket's slow answers are this machine's, not the
bucket's.

Every upload and every probe of every bucket goes through this machine. When its runnable tasks wait for a
CPU most of the time (Linux's pressure stall information, /proc/pressure/cpu: "some", over 10 s), a probe
with no answer in time and an upload that only waits say nothing of the bucket: its answer may sit
unread. Steering on them would move players for nothing, to the VM's pathway at worst, which adds the
segments' bytes to the machine that cannot keep up (docs/steering.md). Refusals and errors still count.

Where the file is missing or unreadable (another kernel, PSI off), the machine never counts as saturated:
the policy then reads slowness as it always did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

PSI_CPU = Path("/proc/pressure/cpu")
SATURATED = 80.0  # percent of the last 10 s in which some runnable task waited for a CPU
READ_EVERY = 1.0  # seconds a reading is kept (the policy asks twice a second while anything is amiss)


def read_cpu_pressure(path: Path = PSI_CPU) -> float | None:
    """The "some avg10" of /proc/pressure/cpu, in percent; None where it cannot be read."""
    try:
        first = path.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "some":
        return None
    for field in first[1:]:
        name, _, value = field.partition("=")
        if name == "avg10":
            try:
                return float(value)
            except ValueError:
                return None
    return None


class Saturation:
    """`busy()`: this machine's CPU pressure is SATURATED or more. Told in the log when it begins and ends."""

    def __init__(self, read: Callable[[], float | None] = read_cpu_pressure,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._clock = clock
        self._at = -1e18
        self._busy = False
        self.pressure: float | None = None  # the last reading

    def busy(self) -> bool:
        now = self._clock()
        if now - self._at < READ_EVERY:
            return self._busy
        self._at = now
        self.pressure = pressure = self._read()
        busy = pressure is not None and pressure >= SATURATED
        if busy != self._busy:
            if busy:
                log.warning("this machine's CPU is saturated (tasks waited for it %.0f%% of the last 10 s): "
                            "a bucket's slow answers are not counted against it until that eases; its "
                            "refusals and errors still are", pressure)
            else:
                log.info("this machine's CPU is no longer saturated: a bucket's slow answers count again")
            self._busy = busy
        return busy
