"""How much the copies kept for an outage may take now (vm/held.py): VM_COPIES_MB, or less where
STATE_DIR's disk reaches its reserve first. /health says which, so an operator knows how long the
outage's backlog holds before the oldest copies go."""

from __future__ import annotations

import os
from pathlib import Path

# The copies never take the last of STATE_DIR's disk: the state must still be saved (numbers served,
# docs/hls-rules.md#numbers-across-restarts). This much stays free, or a fiftieth of the disk if more;
# past it the oldest copies go, then new ones are not kept.
DISK_RESERVE = 64 * 1024 * 1024
CAP = "VM_COPIES_MB"
DISK = "disk_reserve"


def reserve(st: os.statvfs_result) -> int:
    """The bytes of this disk the copies leave free."""
    return max(DISK_RESERVE, st.f_blocks * st.f_frsize // 50)


def room(folder: Path, kept: int, cap: int) -> tuple[int, str]:
    """The most the copies may take now (`kept` bytes are taken already), and what bounds it: CAP
    (VM_COPIES_MB), or DISK (the disk's free space down to its reserve, when that comes first)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return cap, CAP  # cannot tell: the cap is what is known
    disk = kept + max(0, st.f_bavail * st.f_frsize - reserve(st))
    return (disk, DISK) if disk < cap else (cap, CAP)
