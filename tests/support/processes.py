"""Whether a process the test started is still there, read from /proc."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """True if pid is a live process (a zombie left for init to reap counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
