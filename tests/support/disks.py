"""STATE_DIR made to fail: at the seam (StateFile's write raises) or for real (a 1 MB tmpfs filled up
or remounted read-only)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.state.disk import StateFile


class Disk:
    """STATE_DIR, made to fail with `fail(errno)` and mended with `heal()`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fault: int | None = None

    def state_file(self) -> StateFile:
        return StateFile(self.folder)

    def fail(self, code: int) -> None:
        self.fault = code

    def heal(self) -> None:
        self.fault = None


class _FailingStateFile(StateFile):
    def __init__(self, disk: Disk) -> None:
        super().__init__(disk.folder)
        self._disk = disk

    def _write(self, body: bytes) -> None:
        if self._disk.fault is not None:
            raise OSError(self._disk.fault, os.strerror(self._disk.fault))
        super()._write(body)


class SeamDisk(Disk):
    """The seam: StateFile's write raises what a full or read-only disk raises."""

    def state_file(self) -> StateFile:
        return _FailingStateFile(self)


class TmpfsDisk(Disk):
    """A real 1 MB tmpfs: filled up with a file (ENOSPC), or remounted read-only (EROFS)."""

    def fail(self, code: int) -> None:
        super().fail(code)
        if code == errno.ENOSPC:
            fd = os.open(self.folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC
            finally:
                os.close(fd)
        else:
            _mount("-o", "remount,ro", "tmpfs", str(self.folder))

    def heal(self) -> None:
        if self.fault == errno.ENOSPC:
            (self.folder / "filler").unlink()
        elif self.fault is not None:
            _mount("-o", "remount,rw", "tmpfs", str(self.folder))
        super().heal()


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def small_tmpfs(folder: Path) -> Iterator[Path]:
    """A 1 MB tmpfs at `folder`, or a skip when this machine does not let the test mount one."""
    folder.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(folder))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {detail.decode().strip() or err}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True, timeout=10)
