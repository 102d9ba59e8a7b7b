"""Whether any process has a file open for writing, asked of the kernel: a read lease (F_SETLEASE
F_RDLCK), refused with EAGAIN while it is, taken and released at once (about 3 us). Only the owner or
CAP_LEASE gets one: else None (said once per reason). A writer's open during the lease sends SIGIO: a
no-op handler goes in first (not SIG_IGN, which children inherit).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import signal
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_UNSUPPORTED = {
    errno.EACCES: "the files are not this user's and it lacks CAP_LEASE (run it as Owncast's user, or "
                  "grant AmbientCapabilities=CAP_LEASE)",
    errno.EPERM: "leases are not allowed here (a seccomp filter or a security module refuses fcntl F_SETLEASE)",
    errno.EINVAL: "the file system takes no leases, or fs.leases-enable is 0",
    errno.ENOLCK: "the kernel is out of lock records",
}
_told: set[str] = set()
_sigio_ready = False


def _on_sigio(_signum: int, _frame: object) -> None:
    """A writer opened a file during a lease held for an instant: nothing to do."""


def _sigio_unsafe() -> str | None:
    """Why SIGIO could end the process (None: a handler of ours, or someone's, is in place)."""
    global _sigio_ready
    if _sigio_ready:
        return None
    current = signal.getsignal(signal.SIGIO)
    if current is signal.SIG_DFL:
        if threading.current_thread() is not threading.main_thread():
            return "asked from a thread other than the main one, which alone can set a SIGIO handler"
        signal.signal(signal.SIGIO, _on_sigio)
        signal.siginterrupt(signal.SIGIO, False)  # restart a system call it lands in (SA_RESTART)
    elif current is None:
        return "SIGIO has a handler set outside Python, which may end the process"
    _sigio_ready = True
    return None


def writers(fd: int, path: Path) -> bool | None:
    """Whether the file open as `fd` is open for writing anywhere; None when the kernel will not say."""
    if (unsafe := _sigio_unsafe()) is not None:
        _tell("sigio", unsafe, path)
        return None
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as err:
        if err.errno == errno.EAGAIN:
            return True
        _tell(errno.errorcode.get(err.errno or 0, str(err.errno)), _UNSUPPORTED.get(err.errno or 0, str(err)), path)
        return None
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False


def _tell(kind: str, why: str, path: Path) -> None:
    if kind in _told:
        return
    _told.add(kind)
    log.warning("cannot ask the kernel whether %s is still open for writing: %s. Segments are judged by "
                "what inotify says and by the file itself instead, which a writer that pauses, or another "
                "process that opens and closes the file, can mislead (docs/how-it-works.md#whole-segments-only)",
                path, why)
