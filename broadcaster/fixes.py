"""The fixes a permission error's line gives: each a shell line that works pasted as root on a stock
Debian or Ubuntu, granting the user this process runs as what it lacks and nothing more. Someone else's
folder gets an ACL for this user alone (never a group, which lets in every member); a file made for the
service its user's own group when no one else is in it; STATE_DIR becomes the user's.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import sys
from pathlib import Path

from .files import closed_folder, user_name

AS_ROOT = "as root: "  # what every fix begins with; the rest of the line is the shell line to paste


def own_group() -> str | None:
    """This user's primary group when no one else is in it, else None."""
    try:
        user = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(user.pw_gid)
    except KeyError:
        return None
    if group.gr_mem and group.gr_mem != [user.pw_name]:
        return None
    if any(other.pw_gid == user.pw_gid and other.pw_uid != user.pw_uid for other in pwd.getpwall()):
        return None
    return group.gr_name


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _setfacl(command: str) -> str:
    """`command`, a setfacl line, with its package installed first where setfacl is missing."""
    if shutil.which("setfacl") is not None:
        return command
    if shutil.which("apt-get") is not None:
        return f"apt-get update && apt-get install -y acl && {command}"
    return f"{command}  # setfacl is in the acl package"


def enter(folder: Path) -> str:
    """Let this user pass through `folder` (x only: it need not list it)."""
    return AS_ROOT + _setfacl(f"setfacl -m u:{user_name()}:x {_q(folder)}")


def denied(path: Path) -> str:
    """What a permission error on the way to `path` says: the folder this user cannot enter, and its fix."""
    closed = closed_folder(path)
    if closed is None:
        return f"user {user_name()} cannot reach it (permission denied)"
    return f"user {user_name()} cannot enter {closed} (permission denied); {enter(closed)}"


def read_owncast(hls_dir: Path) -> str:
    """Let this user read HLS_DIR and all in it, now and as Owncast makes it again (default ACLs)."""
    user, top, hls = user_name(), _q(hls_dir.parent), _q(hls_dir)
    return AS_ROOT + _setfacl(
        f"setfacl -d -m u:{user}:rX {top} && setfacl -R -m u:{user}:rX {hls} && "
        f"find {hls} -type d -exec setfacl -d -m u:{user}:rX {{}} +")


def read_service_file(path: Path) -> str:
    """Let this user read a file made for the service (the env file)."""
    group = own_group()
    if group is not None:
        return AS_ROOT + f"chgrp {shlex.quote(group)} {_q(path)} && chmod 0640 {_q(path)}"
    return AS_ROOT + _setfacl(f"setfacl -m u:{user_name()}:r {_q(path)}")


def enter_service_folder(folder: Path) -> str:
    """Let this user into a folder made for the service (the env file's)."""
    group = own_group()
    if group is not None:
        return AS_ROOT + f"chgrp {shlex.quote(group)} {_q(folder)} && chmod 0750 {_q(folder)}"
    return enter(folder)


INOTIFY_LIMITS = Path("/etc/sysctl.d/60-hls-broadcaster.conf")


def inotify_limits() -> str:
    """Raise the kernel's inotify limits for every user, now and at every boot."""
    return AS_ROOT + (f"printf 'fs.inotify.max_user_instances=512\\nfs.inotify.max_user_watches=524288\\n' "
                      f"> {INOTIFY_LIMITS} && sysctl -p {INOTIFY_LIMITS}")


def this_check(env_file: str | Path | None, argv0: str = sys.argv[0]) -> str:
    """This `check` as a shell line another user can run: the program's full path, the env file given."""
    if Path(argv0).name == "__main__.py":  # python -m broadcaster
        program = f"{_q(Path(sys.executable).absolute())} -m broadcaster"
    else:
        program = _q(Path(shutil.which(argv0) or argv0).absolute())
    # ./.env, the default, named only where it is: named and missing, the pasted line would fail on it.
    given = f" --env-file {_q(Path(env_file).absolute())}" if env_file and Path(env_file).is_file() else ""
    return f"{program}{given} check"


def own_folder(folder: Path) -> str:
    """Give this user a folder of its own (STATE_DIR), made where missing."""
    user, group = user_name(), own_group()
    owner = f"-o {shlex.quote(user)}" + (f" -g {shlex.quote(group)}" if group else "")
    folder = folder.absolute()  # pasted into a root shell elsewhere, a relative path names another folder
    return AS_ROOT + f"install -d -m 0750 {owner} {_q(folder)} && chown -R {shlex.quote(user)} {_q(folder)}"
