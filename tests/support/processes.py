"""Processes a test started: whether one is still there and its resident memory (read from /proc), and
when a server it started takes connections."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broadcaster.demo.children import StartClock
from tests.support.waiting import until


def rss_kb(pid: int) -> int:
    """The process's resident memory in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def alive(pid: int) -> bool:
    """True if pid is a live process (a zombie left for init to reap counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def until_listening(proc: asyncio.subprocess.Process, port: int, what: str, *,
                          busy: float | None = None, still: float | None = None, every: float = 0.02) -> bool:
    """Until 127.0.0.1:`port` takes connections (True), or `proc` exits or stops getting on (False):
    waited for while it gets on (StartClock, `busy`/`still` seconds when given), not for a fixed wall time
    a loaded machine may not give it."""
    clock = StartClock(proc.pid, **{k: v for k, v in (("busy", busy), ("still", still)) if v is not None})

    async def verdict() -> str | None:
        if proc.returncode is not None or clock.expired() is not None:
            return "gave up"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return None  # not bound yet
        writer.close()
        await writer.wait_closed()
        return "listening"

    said: str = await until(verdict, what, None, every=every)
    return said == "listening"
