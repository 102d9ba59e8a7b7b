"""Can this user enter every folder on the way to HLS_DIR, list it and its variant folders, read their
files, and watch them (inotify)? The likeliest set-up mistake: each problem one line naming the folder and
its fix, for `check`, `run` (exit 2) and /health. Only a refusal counts: a folder gone is the watcher's.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from .. import fixes
from ..files import closed_folder, user_name
from . import inotify
from .tasks import cancelled

ACCESS_INTERVAL = 5.0  # seconds between two checks while the service runs
_SEGMENT_SUFFIXES = (".ts", ".m4s", ".mp4")


def problems(hls_dir: Path, *, watch: bool) -> list[str]:
    """One line per folder or file of HLS_DIR this user is refused (`watch`: an inotify watch tried too)."""
    user = user_name()
    closed = closed_folder(hls_dir / "x")  # HLS_DIR itself included
    if closed is not None:
        where = "HLS_DIR" if closed == hls_dir else "on the way to HLS_DIR"
        return [f"user {user} cannot enter {closed} ({where}); {fixes.enter(closed)}"]
    above = _owncast_data_folder(hls_dir)
    if above is not None:
        return [above]
    folders = [hls_dir]
    try:
        with os.scandir(hls_dir) as entries:
            folders += sorted(Path(e.path) for e in entries if e.name.isdigit() and _is_dir(e))
    except PermissionError:
        return [f"user {user} cannot list HLS_DIR {hls_dir}; {fixes.read_owncast(hls_dir)}"]
    except OSError:
        return []  # gone (Owncast replacing it): nothing refused
    found = [problem for folder in folders if (problem := _folder_problem(hls_dir, folder, user)) is not None]
    if watch and not found and inotify.available():
        try:
            inotify.FolderWatch(hls_dir).close()
        except OSError as err:  # PermissionError: a folder below refused, no limit to raise
            fix = (f"a folder in it is closed to the user; {fixes.read_owncast(hls_dir)}"
                   if isinstance(err, PermissionError) else
                   f"set HLS_WATCH=watchfiles, or raise the kernel's limits; {fixes.inotify_limits()}")
            found.append(f"user {user} cannot watch HLS_DIR {hls_dir} with inotify ({err.strerror or err}): {fix}")
    return found


def _owncast_data_folder(hls_dir: Path) -> str | None:
    """The line saying HLS_DIR is Owncast's `data` folder or its own folder, not its HLS folder."""
    try:
        if any(e.isdigit() for e in os.listdir(hls_dir)) or (hls_dir / "stream.m3u8").exists():
            return None
        below = next((b for b in (hls_dir / "hls", hls_dir / "data" / "hls") if b.is_dir()), None)
    except OSError:
        return None
    if below is None:
        return None
    what = "data folder" if below.parent == hls_dir else "own folder"
    return (f"HLS_DIR {hls_dir} looks like Owncast's {what}, not its HLS folder: the stream is written "
            f"in {below}; set HLS_DIR={below}")


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _folder_problem(hls_dir: Path, folder: Path, user: str) -> str | None:
    """Enter and list `folder`, then read its playlist and one segment: the first refusal, as a line."""
    what = "HLS_DIR" if folder == hls_dir else f"HLS_DIR's variant folder {folder.name}"
    try:
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries)
    except PermissionError:
        return f"user {user} cannot list {folder} ({what}); {fixes.read_owncast(hls_dir)}"
    except OSError:
        return None
    files = [n for n in ("stream.m3u8",) if n in names]
    files += [n for n in names if n.endswith(_SEGMENT_SUFFIXES)][-1:]  # one segment stands for them all
    for name in files:
        path = folder / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except PermissionError:
            return f"user {user} cannot read {path} ({what}); {fixes.read_owncast(hls_dir)}"
        except OSError:
            continue  # gone, or a symlink (the watcher refuses those itself)
        os.close(fd)
    return None


class AccessWatch:
    """`problem`: the first refusal found by the last check (every `interval` seconds), for /health."""

    def __init__(self, hls_dir: Path, interval: float = ACCESS_INTERVAL) -> None:
        self._hls_dir = hls_dir
        self._interval = interval
        self.problem: str | None = None
        self._task: asyncio.Task[None] | None = None

    def check(self, *, watch: bool = False) -> list[str]:
        """Every refusal now (`watch`: an inotify watch tried too, at start-up)."""
        found = problems(self._hls_dir, watch=watch)
        self.problem = found[0] if found else None
        return found

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="hls-access")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancelled(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.check()
