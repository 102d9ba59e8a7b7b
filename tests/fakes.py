"""Fakes at the seams: a bucket whose every put the test controls."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from broadcaster.store import StoreError


@dataclass
class Put:
    key: str
    body: bytes
    content_type: str
    cache_control: str


@dataclass
class FakeStore:
    """Succeeds at once unless told otherwise: `fail[key] = n` fails n times; `hold(key)` blocks
    that key's puts until `release(key)`; `down = True` fails everything."""

    puts: list[Put] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    down: bool = False
    hang: bool = False
    _gates: dict[str, asyncio.Event] = field(default_factory=dict)

    def hold(self, key: str) -> None:
        self._gates[key] = asyncio.Event()

    def release(self, key: str) -> None:
        self._gates.pop(key).set()

    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
        self.attempts.append(key)
        if self.hang:
            await asyncio.Event().wait()
        gate = self._gates.get(key)
        if gate is not None:
            await gate.wait()
        if self.down:
            raise StoreError("ServiceUnavailable", "bucket down")
        if self.fail.get(key, 0) > 0:
            self.fail[key] -= 1
            raise StoreError("InternalError", "try again")
        self.puts.append(Put(key, body, content_type, cache_control))

    async def probe(self) -> None:
        if self.down:
            raise StoreError("ServiceUnavailable", "bucket down")

    def keys(self) -> list[str]:
        return [p.key for p in self.puts]
