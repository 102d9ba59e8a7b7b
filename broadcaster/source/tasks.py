"""Stopping a component's background tasks: each cancelled, then waited for, so nothing it started runs
on after its stop (the first stage's, so every stage may use it)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancelled(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel every task given (None: none there) and wait for each to end. All are cancelled before any
    is awaited, so they stop together; an error a task raised other than its cancellation propagates."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
