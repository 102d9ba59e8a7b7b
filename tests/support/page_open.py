"""How the player tests open a page in Chromium: a context of its own (its cache, storage and User-Agent),
the scripts that watch it added before the page's own, and its console and thrown errors kept for a
failure's message."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

SAID = 300  # characters kept of each console line or error


@dataclass
class Opened:
    """A page in a context of its own; `said`: its console's warnings and errors, `thrown`: its pageerrors."""

    context: Any
    page: Any
    at: float  # the clock's time when it was opened
    said: list[str] = field(default_factory=list)
    thrown: list[str] = field(default_factory=list)


class Agents:
    """Chromium's own User-Agent, read once from a page of its own, with a tag of the caller's after it:
    a proxy or a server tells the pages apart by it."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self._agent = ""

    async def tagged(self, tag: str) -> str:
        if not self._agent:
            context = await self.browser.new_context()
            try:
                page = await context.new_page()
                self._agent = str(await page.evaluate("() => navigator.userAgent"))
            finally:
                await context.close()
        return f"{self._agent} {tag}"


async def open_page(browser: Any, url: str | None, *, scripts: Sequence[str] = (), user_agent: str | None = None,
                    clock: Callable[[], float] = time.monotonic) -> Opened:
    """A new context and page of `browser` (tests/support/browser.py's Chromium: VIEWPORT-sized, its video
    undrawn), `scripts` added as init scripts in order, its console and errors recorded; then `url`
    loaded (None: the caller hooks more first and loads it, `goto`)."""
    context = await browser.new_context(**({"user_agent": user_agent} if user_agent else {}))
    page = await context.new_page()
    opened = Opened(context, page, clock())
    page.on("console", lambda m: opened.said.append(f"{m.type}: {m.text}"[:SAID])
            if m.type in ("warning", "error") else None)
    page.on("pageerror", lambda error: opened.thrown.append(str(error)[:SAID]))
    for script in scripts:
        await page.add_init_script(script)
    if url is not None:
        await page.goto(url)
    return opened
