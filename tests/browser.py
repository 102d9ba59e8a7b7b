"""Debian's Chromium for the browser tests, launched one way (never Playwright's own download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",  # the viewer starts playing by itself
]

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/test installs it)"
)


async def launch_chromium(pw: Any) -> Any:
    """A headless Chromium from a playwright.async_api.Playwright."""
    return await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
