"""Child processes the demo and the tests start (ffmpeg, SeaweedFS): each in its own process group,
stopped gently, killed for sure, never left behind."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
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
