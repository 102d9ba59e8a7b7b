"""How a start that cannot go on fails: one line for the operator, and exit 2 when only they can mend it."""

from __future__ import annotations

import errno
from pathlib import Path

from .. import state_dir as judged
from ..state.disk import DirectoryBusy, DirectoryLock
from ..vm.held import Held


class StartupError(RuntimeError):
    """The service cannot start; the message is one line for the operator."""


class SetupError(StartupError):
    """The service cannot start and a restart cannot change that (exit 2); a line for each problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def set_up(err: OSError) -> bool:
    """An error of a folder's that only the operator mends: permissions, a read-only file system."""
    return err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def failed(line: str, set_up: bool) -> StartupError:
    """The error a failed start raises: exit 2 for a set-up mistake, 1 for what a restart may fix."""
    return SetupError([line]) if set_up else StartupError(line)


def lock_state_dir(state_dir: Path) -> DirectoryLock:
    """One service per STATE_DIR: a second one would serve the same numbers twice."""
    lock = DirectoryLock(state_dir)
    try:
        lock.acquire()
    except DirectoryBusy as err:
        raise SetupError([judged.in_use(state_dir, err.pid)]) from None
    except OSError as err:
        raise failed(f"cannot lock STATE_DIR {state_dir}: {err.strerror or err}", set_up(err)) from None
    return lock


def open_copies(held: Held) -> Held:
    """The folder of the copies `held` keeps (PATHWAYS names a second pathway), made and emptied."""
    try:
        held.open()
    except OSError as err:
        raise failed(f"cannot keep segment copies in {held.folder} (PATHWAYS names a second pathway): "
                     f"{err.strerror or err}", set_up(err)) from None
    return held
