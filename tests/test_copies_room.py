"""copy_files.room: what the copies kept for an outage may take now, and what bounds it, on this machine's
real disk (tmp_path's)."""

from __future__ import annotations

import os
from pathlib import Path

from broadcaster.vm.copy_files import CAP, DISK, reserve, room


def above_reserve(folder: Path) -> int:
    st = os.statvfs(folder)
    return max(0, st.f_bavail * st.f_frsize - reserve(st))  # what the copies could still take


def test_the_cap_bounds_the_copies_until_the_disk_reaches_its_reserve_first(tmp_path: Path) -> None:
    if above_reserve(tmp_path) > 1024:
        assert room(tmp_path, 0, 1024) == (1024, CAP)
    before = above_reserve(tmp_path)
    bound, by = room(tmp_path, 5000, 10 ** 18)  # a cap no disk reaches: the disk's reserve bounds them
    after = above_reserve(tmp_path)
    slack = 16 << 20  # other processes write and delete on this disk meanwhile
    assert by == DISK and 5000 + min(before, after) - slack <= bound <= 5000 + max(before, after) + slack, \
        (bound, before, after)
    assert room(tmp_path / "gone", 5000, 1024) == (1024, CAP)  # cannot tell: the cap
