"""Loopback ports for servers whose port must be known before they bind it (SeaweedFS's five, a
tracker whose URL the viewers are told first, a proxy that binds its port again after a pause).

A port picked as free and bound later by another program can be taken in between. Two things keep
that from happening here:
- The ports come from below the kernel's ephemeral range (32768+), so no outgoing connection is
  given one (on a busy machine thousands a second are, each on a port of that range).
- Each is reserved on this machine while its holder runs: an flock on a file named after it in a
  shared folder, so two of our servers (in other xdist workers, other checkouts, a demo) never pick
  the same one. The kernel releases the lock when its holder dies.
What is left (a program we do not know binding the same port first) is the caller's to retry with
fresh ports; the SeaweedFS and the tracker starts do.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

PORT_LOW, PORT_HIGH = 10000, 22000  # with a +10000 twin (SeaweedFS's gRPC ports) still below 32768
TWIN_OFFSET = 10000
_FOLDER = Path(tempfile.gettempdir()) / "hls-broadcaster-ports"


class NoFreePort(RuntimeError):
    """No port (and twin) could be found free and unreserved."""


def bindable(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _lock(port: int) -> int | None:
    """An open descriptor holding the port's lock, None if someone holds it, -1 if the folder is
    unusable (then nothing is reserved, and bindable() alone decides)."""
    try:
        if not _FOLDER.is_dir():
            _FOLDER.mkdir(exist_ok=True)
            _FOLDER.chmod(0o1777)  # every user's servers share it (each lock file is its maker's)
        fd = os.open(_FOLDER / str(port), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class Reserved:
    """Ports held for one server: `ports` (each with its twin when asked for), until release()."""

    def __init__(self, ports: list[int], fds: list[int]) -> None:
        self.ports = ports
        self._fds = fds

    def release(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def reserve_ports(count: int, *, twins: bool = False) -> Reserved:
    """`count` distinct ports, free now and reserved on this machine until release() (with their
    +TWIN_OFFSET twins when `twins`)."""
    chosen: list[int] = []
    taken: set[int] = set()
    fds: list[int] = []
    for _ in range(2000):
        port = random.randrange(PORT_LOW, PORT_HIGH)
        wanted = (port, port + TWIN_OFFSET) if twins else (port,)
        if taken.intersection(wanted):
            continue
        held: list[int] = []
        for p in wanted:
            fd = _lock(p)
            if fd is None:
                break
            held.append(fd)
        if len(held) == len(wanted) and all(bindable(p) for p in wanted):
            chosen.append(port)
            taken.update(wanted)
            fds += held
            if len(chosen) == count:
                return Reserved(chosen, fds)
        else:
            Reserved([], held).release()
    Reserved([], fds).release()
    raise NoFreePort(f"no {count} free loopback ports between {PORT_LOW} and {PORT_HIGH}")


def reserve_port() -> Reserved:
    """One port, reserved until release(): `reserve_port().ports[0]`."""
    return reserve_ports(1)


# Kept for the holders of a port for as long as this process runs (free_port's callers).
_KEPT: list[Reserved] = []


def kept_port() -> int:
    """A port reserved until this process ends, for a caller that passes a number on and never gives
    it back (a bench's server, a URL of a tracker that starts later)."""
    reserved = reserve_port()
    _KEPT.append(reserved)
    return reserved.ports[0]
