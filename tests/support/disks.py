"""STATE_DIR made to fail: at the seam (StateFile's write raises) or for real (a 1 MB tmpfs filled up
or remounted read-only)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    """A real 1 MB tmpfs: filled up with a file (ENOSPC), or remounted read-only (EROFS); `inodes`: filled
    up with empty files instead (ENOSPC for a new file, while files there still grow)."""

    def __init__(self, folder: Path, *, inodes: bool = False) -> None:
        super().__init__(folder)
        self.inodes = inodes

    def fail(self, code: int) -> None:
        super().fail(code)
        if code == errno.ENOSPC and self.inodes:
            (self.folder / "fillers").mkdir()
            try:
                for n in range(1 << 16):
                    (self.folder / "fillers" / str(n)).touch()
            except OSError as err:
                assert err.errno == errno.ENOSPC
            else:
                raise AssertionError("the tmpfs never ran out of inodes (mounted without nr_inodes?)")
        elif code == errno.ENOSPC:
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
        if self.fault == errno.ENOSPC and self.inodes:
            shutil.rmtree(self.folder / "fillers")
        elif self.fault == errno.ENOSPC:
            (self.folder / "filler").unlink()
        elif self.fault is not None:
            _mount("-o", "remount,rw", "tmpfs", str(self.folder))
        super().heal()


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def small_tmpfs(folder: Path, inodes: int | None = None, size_mb: int = 1) -> Iterator[Path]:
    """A tmpfs of `size_mb` (at most `inodes` files) at `folder`, or a skip where none can be mounted."""
    folder.mkdir()
    options = f"size={size_mb}m,mode=0700" + (f",nr_inodes={inodes}" if inodes else "")
    try:
        _mount("-t", "tmpfs", "-o", options, "tmpfs", str(folder))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {detail.decode().strip() or err}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True, timeout=10)


# The os calls the state modules make to write: a fault is injected at one of them (FaultPlan).
WRITE_CALLS = frozenset({"open", "write", "pwrite", "fsync", "fdatasync", "ftruncate", "replace", "close",
                         "fstat", "rename", "unlink"})


class FaultPlan:
    """Counts the write calls the state modules make while armed; raises OSError(`code`) at call number
    `at` (and, `lasting`, at every call after it: the disk died). `calls` names each call seen, in order."""

    def __init__(self, at: int | None = None, *, lasting: bool = False, code: int = errno.EIO) -> None:
        self.at, self.lasting, self.code = at, lasting, code
        self.armed = False
        self.calls: list[str] = []
        self.failed: list[str] = []

    def call(self, name: str, real: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.armed:
            n = len(self.calls)
            self.calls.append(name)
            if self.at is not None and (n == self.at or (self.lasting and n > self.at)):
                self.failed.append(name)
                raise OSError(self.code, os.strerror(self.code))
        return real(*args, **kwargs)


class FaultyOs:
    """Stands in for the `os` module inside a state module (monkeypatch its `os`): every write call goes
    through `plan`, the rest (os.path, constants, reads) is the real os."""

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in WRITE_CALLS:
            return real
        plan = self._plan
        return lambda *args, **kwargs: plan.call(name, real, *args, **kwargs)
