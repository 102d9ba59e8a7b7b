"""Stopping a component's background tasks (here, in the first stage, so every stage may use it)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancelled(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel every task given (None: none there), all before any is awaited, and wait for each to end; an
    error a task raised other than its cancellation propagates."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
