"""How long a child may take to start (demo/children.StartClock): as long as it gets on; one that works
without getting ready, or waits on nothing, is given up."""

from __future__ import annotations

import subprocess
import sys
import time

from broadcaster.demo.children import StartClock, cpu_seconds


def expiry(argv: list[str], **bounds: float) -> tuple[str, float]:
    """Why and when (seconds) a clock on this child ran out."""
    child = subprocess.Popen(argv)
    try:
        clock = StartClock(child.pid, **bounds)
        began = time.monotonic()
        while (why := clock.expired()) is None:
            time.sleep(0.05)  # a poll's pace: the clock decides
        return why, time.monotonic() - began
    finally:
        child.kill()
        child.wait()


def test_a_child_that_uses_no_cpu_is_given_up_after_standing_still() -> None:
    why, _ = expiry(["sleep", "600"], busy=30, still=1, cap=600)
    assert why.startswith("used no CPU for"), why


def test_a_child_that_works_without_getting_ready_is_given_up_by_its_cpu() -> None:
    why, _ = expiry([sys.executable, "-c", "while True: pass"], busy=0.5, still=600, cap=600)
    assert why.startswith("not ready after ") and float(why.split()[3]) >= 0.5, why


def test_the_cap_bounds_it_whatever_it_does() -> None:
    why, _ = expiry([sys.executable, "-c", "while True: pass"], busy=600, still=600, cap=1)
    assert why == "not ready within 1 s", why


def test_cpu_seconds_of_a_process_gone_is_none() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert cpu_seconds(child.pid) is None
