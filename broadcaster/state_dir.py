"""STATE_DIR as `run` and `check` judge it, in one place: `check` fails exactly what `run` refuses."""

from __future__ import annotations

import fcntl
import os
import pwd
from pathlib import Path

from . import fixes
from .files import user_name

# What deploy/hls-broadcaster.service's StateDirectory= makes (systemd makes no other path).
SYSTEMD_STATE_DIR = Path("/var/lib/hls-broadcaster")


def refusal(path: Path) -> str | None:
    """Why `run`, as this user, refuses `path` as STATE_DIR, with the fix; None when it takes it."""
    user = user_name()
    try:
        if path.exists():
            if not path.is_dir():
                return "not a folder"
            if not os.access(path, os.W_OK | os.X_OK):
                return f"not writable by user {user}; {fixes.own_folder(path)}"
            return _foreign_files(path)
        parent = next(p for p in path.absolute().parents if p.exists())
        if not parent.is_dir():
            return f"cannot be made: {parent} is not a folder"
        if not os.access(parent, os.W_OK | os.X_OK):
            return (f"does not exist and user {user} cannot make it in {parent} (the unit's StateDirectory= "
                    f"makes only {SYSTEMD_STATE_DIR}): fix the path, or make it, {fixes.own_folder(path)}")
        return None
    except PermissionError:
        return fixes.denied(path)
    except OSError as err:
        return f"cannot reach it ({err.strerror or err})"


def _foreign_files(path: Path) -> str | None:
    """What the service keeps there must be its user's to rewrite (a run by hand as root leaves root's)."""
    try:
        control = path / "control"
        entries = sorted([*path.iterdir(), *(control.glob("*") if control.is_dir() else ())])
    except OSError:
        return None
    for entry in entries:
        if not os.access(entry, os.R_OK | os.W_OK):
            return (f"user {user_name()} cannot rewrite {entry.name} in it (left by a run as another user?); "
                    f"{fixes.own_folder(path)}")
    return None


def make(path: Path) -> str | None:
    """Make STATE_DIR where missing: the line saying why not, else None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot create it as user {user_name()} ({err.strerror or err}); {fixes.own_folder(path)}"
    return None


def missing(path: Path) -> bool:
    """Not there (and reachable to tell): what `run` makes, unlike a path it cannot reach."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def systemd_makes(path: Path) -> bool:
    """`path` is the folder the unit's StateDirectory= makes before `run` starts, and is not there yet."""
    return path.absolute() == SYSTEMD_STATE_DIR and missing(path)


def in_use(path: Path, pid: str | None) -> str:
    by = f" (pid {pid})" if pid else ""
    return f"STATE_DIR {path} is in use by another hls-broadcaster{by}; each service needs a STATE_DIR of its own"


def holder(path: Path) -> str | None:
    """The pid of the hls-broadcaster holding STATE_DIR's lock, else None (a shared lock tried and let go)."""
    try:
        fd = os.open(path / "lock", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def held_by_another(path: Path, env_file: Path | None) -> str | None:
    """`check`'s line when the service holding STATE_DIR was started with another env file, else None."""
    pid = holder(path)
    if pid is None or env_file is None or not env_file.is_file():
        return None
    theirs = _env_file_of(pid)
    if theirs is None or not theirs.is_file():
        return None
    try:
        same = os.path.samefile(theirs, env_file)
    except OSError:
        return None
    if same:
        return None
    return f"{in_use(path, pid)} (its settings are {theirs}'s, these {env_file.absolute()}'s): `run` refuses it"


def _env_file_of(pid: str) -> Path | None:
    """The env file the process `pid` read (its last --env-file, else ./.env); None if /proc cannot tell."""
    try:
        argv = Path(f"/proc/{int(pid)}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (OSError, ValueError):
        return None
    if not any("broadcaster" in arg for arg in argv[:3]):  # another process (another pid namespace's)
        return None
    given = ".env"
    for i, arg in enumerate(argv):
        if arg == "--env-file" and i + 1 < len(argv):
            given = argv[i + 1]
        elif arg.startswith("--env-file="):
            given = arg.split("=", 1)[1]
    if os.path.isabs(given):
        return Path(given)
    try:
        return Path(os.readlink(f"/proc/{int(pid)}/cwd")) / given
    except OSError:  # another user's process: its working folder is not ours to read
        return None


def root_refusal(path: Path, env_file: str | Path | None, argv0: str | None = None) -> str | None:
    """The line refusing `run` as root on a STATE_DIR another user owns; None when not root or root's."""
    if os.geteuid() != 0:
        return None
    try:
        there = path.exists()
        owned = path if there else next(p for p in path.absolute().parents if p.exists())
        owner = owned.stat().st_uid
    except OSError:
        return None
    if owner == 0:
        return None
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    command = fixes.this_check(env_file) if argv0 is None else fixes.this_check(env_file, argv0)
    run = command.removesuffix(" check") + " run"
    which = "which is" if there else f"to be made in {owned}, which is"
    return (f"run as root on STATE_DIR {path}, {which} user {name}'s: it would leave files only root may "
            f"rewrite, and {name}'s next start would fail on them. Run it as that user: sudo -u {name} {run}")
