"""Running a command as another user, so file permissions are the kernel's, not a fake's.

The tests run as root, which reads every folder: `as_nobody` wraps a command with setpriv to uid/gid 65534
with no groups and no capabilities (run by another user than root, the tests skip). Where Python lives
where nobody can enter (pyenv under /root, 0700), the command runs in a mount namespace of its own where
each such folder is covered by a 0755 tmpfs holding bind mounts of just what Python needs; the folders the
test is about keep their real modes. Where neither can be done, the test is skipped with the reason."""

from __future__ import annotations

import os
import shlex
import shutil
import site
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import pytest

NOBODY = 65534
ROOT = Path(__file__).resolve().parent.parent.parent


def _others_enter(folder: Path) -> bool:
    try:
        return bool(folder.stat().st_mode & stat.S_IXOTH)
    except OSError:
        return False


def _needed(also: Sequence[Path] = ()) -> list[Path]:
    """What a Python process of this checkout reads: the interpreter, its libraries, site-packages (and
    the folders their .pth files point to), the checkout, and `also`."""
    paths = {Path(sys.executable).resolve(), Path(sys.prefix), Path(sys.base_prefix), ROOT, *also,
             Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])}
    paths.update(Path(p) for p in site.getsitepackages())
    paths.update(Path(p) for p in sys.path if p and Path(p).is_dir())
    return sorted(p for p in paths if p.exists())


def _blocked(also: Sequence[Path] = ()) -> dict[Path, set[str]]:
    """The first folder others cannot enter on the way to what Python needs -> the paths needed inside it,
    each down to the entry below the last closed folder on its way (/root/.cache/x under /root and
    /root/.cache, both 0700: .cache/x; the folders above it are made open in the tmpfs over /root)."""
    blocked: dict[Path, set[str]] = {}
    for path in _needed(also):
        resolved = path.resolve()
        closed = [f for f in [*reversed(resolved.parents), resolved] if f.is_dir() and not _others_enter(f)]
        if closed and closed[-1] == resolved:
            pytest.skip(f"{resolved} itself cannot be entered by another user")
        if closed:
            below = resolved.parts[:len(closed[-1].parts) + 1]
            blocked.setdefault(closed[0], set()).add(str(Path(*below).relative_to(closed[0])))
    return blocked


def _setpriv() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot run a command as another user")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all", "--"]


def as_nobody(argv: list[str], stage: Path, *, drop_root: bool = True, also: Sequence[Path] = ()) -> list[str]:
    """`argv` as uid 65534 (none: the prefix that runs a command so). `stage`: an empty folder of the
    caller's, the namespace's scratch mount point. drop_root=False: still root, in the namespace where another
    user reaches Python (for a command that drops root itself: `check --as nobody`)."""
    if os.geteuid() != 0:
        pytest.skip("not root: cannot make folders owned by another user, nor run as one")
    drop = _setpriv() if drop_root else []
    blocked = _blocked(also)
    if not blocked:
        return [*drop, *argv]
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip(f"{', '.join(map(str, blocked))} cannot be entered by another user and unshare is missing")
    lines = ["set -e", f"mount -t tmpfs -o mode=0755 as-nobody-stage {shlex.quote(str(stage))}"]
    moves = []
    for n, (folder, children) in enumerate(sorted(blocked.items())):
        for m, child in enumerate(sorted(children)):
            source, held = folder / child, stage / f"{n}-{m}"
            make = "mkdir" if source.is_dir() else "touch"
            lines += [f"{make} {shlex.quote(str(held))}",
                      f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(held))}"]
            moves.append((folder, held, source, make))
    for folder in blocked:
        lines.append(f"mount -t tmpfs -o mode=0755 as-nobody {shlex.quote(str(folder))}")
    for _folder, held, source, make in moves:
        lines += [f"mkdir -p {shlex.quote(str(source.parent))}", f"{make} {shlex.quote(str(source))}",
                  f"mount --bind {shlex.quote(str(held))} {shlex.quote(str(source))}"]
    lines.append(f'exec {shlex.join(drop)} "$@"')  # the command: sh's arguments after its $0
    probe = subprocess.run([unshare, "-m", "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"{', '.join(map(str, blocked))} cannot be entered by another user, and no mount namespace "
                    f"can be made here to let it in ({probe.stderr.strip()[:200]})")
    return [unshare, "-m", "--propagation", "private", "sh", "-c", "\n".join(lines), "sh", *argv]


def open_folder(base: Path) -> Path:
    """A folder anyone may enter (pytest's tmp_path is under a 0700 folder of root's)."""
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    return base
