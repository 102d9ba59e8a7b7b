"""Child processes the demo and the tests start (ffmpeg, SeaweedFS): each in its own process group,
stopped gently, killed for sure, never left behind; their start-up waited for as long as they get on
(StartClock)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)


class GroupKiller:
    """SIGKILLs a child's process group unless the child is known to be gone.

    Registered with weakref.finalize, so it also runs at interpreter exit or when the owner is
    garbage collected without close() (e.g. a test's event loop torn down). `after` runs once the
    group was killed (e.g. to remove what a killed child cannot clean up itself).
    """

    def __init__(self, pid: int, after: Callable[[], None] | None = None) -> None:
        self.pid = pid
        self.after = after
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        if self.after is not None:
            self.after()


def child_argv(argv: list[str]) -> list[str]:
    """Prefix setpriv --pdeathsig so the child dies even if Python is SIGKILLed."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


async def stop_child(
    proc: asyncio.subprocess.Process,
    killer: GroupKiller | None,
    finalizer: weakref.finalize | None,  # type: ignore[type-arg]
    *,
    name: str,
    timeout: float,
    whole_group: bool,
) -> None:
    """SIGTERM (the child alone, or its whole group), wait `timeout`, then SIGKILL the group."""
    try:
        if proc.returncode is None:
            try:
                if whole_group:
                    os.killpg(proc.pid, signal.SIGTERM)
                else:
                    proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.warning("%s pid %d ignored SIGTERM for %.0f s; killing it", name, proc.pid, timeout)
                if killer is not None:
                    killer()
                await proc.wait()
    finally:
        if killer is not None:
            killer.done = True
        if finalizer is not None:
            finalizer.detach()


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, from /proc; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class StartClock:
    """How long a child may take to be ready: as long as it gets on. On a busy machine a child's
    start-up takes many times its usual wall time, so a fixed wall-clock deadline fails it for the
    machine's load; this one gives up only when the child has used `busy` seconds of CPU without
    being ready (it works without getting there), has used none at all for `still` seconds (it
    waits on something that does not come), or after `cap` seconds whatever it did."""

    def __init__(self, pid: int, *, busy: float = 30.0, still: float = 30.0, cap: float = 300.0) -> None:
        self.pid = pid
        self.busy, self.still, self.cap = busy, still, cap
        self._began = self._moved = time.monotonic()
        self._cpu0 = self._cpu = cpu_seconds(pid) or 0.0

    def expired(self) -> str | None:
        """Why the wait is over, or None while the child may still get there."""
        now = time.monotonic()
        cpu = cpu_seconds(self.pid)
        if cpu is not None and cpu > self._cpu:
            self._cpu, self._moved = cpu, now
        used = self._cpu - self._cpu0
        if used >= self.busy:
            return f"not ready after {used:.1f} s of CPU ({now - self._began:.0f} s)"
        if now - self._moved >= self.still:
            return f"used no CPU for {now - self._moved:.0f} s ({now - self._began:.0f} s in all)"
        if now - self._began >= self.cap:
            return f"not ready within {self.cap:.0f} s"
        return None
