"""The bucket on an event loop of its own, in a thread of its own: a crowd of viewers lagging the serving
loop would delay every socket callback of an upload until it timed out; here a request runs at full speed
and only its result waits for the serving loop, once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .store import S3Store

T = TypeVar("T")

_JOIN_TIMEOUT = 10.0  # the loop only runs our own requests, each bounded by the store's timeouts


class StoreThread:
    """S3Store's async API, each call on the store's loop (cancelling it cancels the request there)."""

    def __init__(self, store: S3Store) -> None:
        self._store = store
        self.bucket = store.bucket
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="bucket-io", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            await self._call(self._store.start())
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Requests still running are cancelled (their callers get CancelledError)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            await self._call(self._shut_down())
        finally:
            self._loop = self._thread = None
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join, _JOIN_TIMEOUT)
            if not thread.is_alive():
                loop.close()

    async def _shut_down(self) -> None:
        """On the store's loop: no request may be left pending there once it stops."""
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await self._store.close()
        await asyncio.get_running_loop().shutdown_asyncgens()

    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
        await self._call(self._store.put(key, body, content_type=content_type, cache_control=cache_control))

    async def delete(self, key: str) -> None:
        await self._call(self._store.delete(key))

    async def delete_many(self, keys: list[str]) -> list[str]:
        return await self._call(self._store.delete_many(keys))

    async def probe(self) -> None:
        await self._call(self._store.probe())

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("store not started")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))
