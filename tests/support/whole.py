"""What each listed URL (the bucket's, or the VM's path while players are steered away) serves against the
file Owncast finished writing, byte for byte. The reference is the writers' ledger (each file's SHA-256 and
size at close), never a read of Owncast's folder, which may catch a file still being written or gone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import aiohttp

from broadcaster.demo.ledger import Finished, Ledger
from tests.support.waiting import TimedOut, until

FINISH_TIMEOUT = 10.0  # a writer holding a file back (LateTails) finishes it within seconds


async def finished(ledger: Ledger, path: Path, timeout: float = FINISH_TIMEOUT) -> Finished | None:
    """`path` as its writer finished it, waited for; None if it never was (the comparison says so)."""
    try:
        final: Finished = await until(lambda: ledger.get(path), f"{path} finished by its writer", timeout,
                                      every=0.05)
    except TimedOut:
        return None
    return final


async def altered(http: aiohttp.ClientSession, ledger: Ledger, listed: Iterable[tuple[str, Path]],
                  timeout: float = FINISH_TIMEOUT) -> list[str]:
    """For each (URL listed, Owncast's file): what is wrong with the bytes at that URL."""
    gate = asyncio.Semaphore(8)

    async def check(url: str, path: Path) -> str | None:
        async with gate, http.get(url) as r:
            body = await r.read()
        if r.status != 200:
            return f"{url}: listed, but answers {r.status}"
        await finished(ledger, path, timeout)
        problem = ledger.mismatch(path, body)
        return None if problem is None else f"{url}: {problem}"

    found = await asyncio.gather(*(check(url, path) for url, path in listed))
    return [f for f in found if f is not None]


async def assert_whole(http: aiohttp.ClientSession, ledger: Ledger | None, listed: Iterable[tuple[str, Path]],
                       timeout: float = FINISH_TIMEOUT) -> int:
    """Every listed URL serves the file Owncast finished writing. Returns how many."""
    assert ledger is not None, "the Owncast writer keeps no ledger: give it one to compare bytes"
    pairs = list(listed)
    assert pairs, "nothing listed to compare"
    wrong = await altered(http, ledger, pairs, timeout)
    assert not wrong, (f"{len(wrong)} of {len(pairs)} listed segments are not the file Owncast finished "
                       "writing:\n" + "\n".join(wrong[:20]))
    return len(pairs)
