"""An event loop in a thread of its own, for the servers a test puts between its players and the service
(gates.py's proxies, CountingProxy): in the test's own loop they answer only when Playwright's events and
the test's polling let them, and players would stand still behind a backlog the service already cleared."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")


class LoopThread:
    """`async with LoopThread() as rig:` then `await rig.run(coroutine)` runs it on the thread's loop and
    gives its result (or its exception) to the caller's. Objects made there (servers, client sessions)
    are used there: call their coroutines through run()."""

    def __init__(self, name: str = "rig") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    async def __aenter__(self) -> Self:
        self._thread.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        async def drained() -> None:  # what the servers left (their close() ran through run())
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        await self.run(drained())
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join, 10)
        self.loop.close()
