"""The viewer page's Content-Security-Policy (broadcaster/http/page_policy.py) in headless Chromium, on the
live demo stream: every frame records each `securitypolicyviolation` from its start, and the page plays with
P2P off, framed by a FRAME_ANCESTORS site (/embed), and with P2P on, with no violation; a script injected
inline or from another origin is refused, and reported."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.browser import POLL_MS, WEBRTC_ARGS, Chromium, module_chromium, needs_chromium, watch
from tests.support.framer import Framer
from tests.support.p2p_demo import demo_with_tracker, running_demo

pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_chromium,
              pytest.mark.asyncio(loop_scope="module")]

WAIT_MS = 30_000
# Each frame's violations, from its first script on (Playwright's init scripts run before the page's).
RECORD_VIOLATIONS = """(() => {
  const seen = [];
  Object.defineProperty(window, 'cspViolations', { value: seen });
  // Which policy: the header's (page_policy.py, the only one that can say frame-ancestors) or the <meta>.
  document.addEventListener('securitypolicyviolation', (e) => seen.push(
    [e.originalPolicy.includes('frame-ancestors') ? 'header' : 'meta', e.effectiveDirective, e.blockedURI,
     e.sourceFile || '', e.sample || ''].join(' ')));
})();"""
PLAYING = "() => window.viewerStats && window.viewerStats.state === 'playing'"
# A script put into the page as a bug might let one in: inline, and from another origin.
INJECT = """(other) => new Promise((resolve) => {
  const inline = document.createElement('script');
  inline.textContent = 'window.injected = "inline"';
  document.head.append(inline);
  const remote = document.createElement('script');
  remote.src = other + '/evil.js';
  remote.onload = () => resolve('loaded');
  remote.onerror = () => resolve('refused');
  document.head.append(remote);
})"""


chromium = module_chromium(WEBRTC_ARGS)


@contextlib.asynccontextmanager
async def watched(chromium: Chromium) -> AsyncIterator[tuple[Any, list[str]]]:
    """A browser context whose frames record their CSP violations, and the console's CSP messages."""
    async with chromium.own() as own:
        context = await own.new_context()
        await context.add_init_script(RECORD_VIOLATIONS)
        said: list[str] = []
        context.on("console", lambda m: said.append(m.text) if "Content Security Policy" in m.text else None)
        yield context, said


async def violations(frame: Any) -> list[str]:
    found: list[str] = await frame.evaluate("() => [...window.cspViolations]")
    return found


async def test_the_page_plays_under_its_policy_alone_and_embedded_and_refuses_an_injected_script(
        tmp_path: Path, seaweed: SeaweedS3, recordings: Recordings, chromium: Chromium) -> None:
    async with Framer() as site, running_demo(tmp_path, seaweed, "", recordings=recordings,
                                            FRAME_ANCESTORS=f"'self' {site.url}") as demo, \
            watched(chromium) as (context, said):
        site.target = demo.service.url
        page = await context.new_page()
        answer = await page.goto(f"{demo.service.url}/")
        assert answer is not None
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self';" in policy and f"frame-ancestors 'self' {site.url}" in policy, policy
        await page.wait_for_function(PLAYING, timeout=WAIT_MS, polling=POLL_MS)
        await watch(page, 2)
        framing = await context.new_page()
        await framing.goto(site.url)
        frame = next(f for f in framing.frames if f.url.startswith(f"{demo.service.url}/embed"))
        await frame.wait_for_function(PLAYING, timeout=WAIT_MS, polling=POLL_MS)
        await watch(frame, 2)
        assert await violations(page) == [] and await violations(frame) == [] and said == [], \
            (await violations(page), await violations(frame), said)

        # What the policy is for: an injected script runs nowhere, and the page reports it.
        assert await page.evaluate(INJECT, site.url) == "refused"
        assert await page.evaluate("() => window.injected === undefined")
        # Each refused by both policies: the header's, and the page's own <meta> (kept for a copy hosted
        # elsewhere); the header's alone would refuse them.
        seen = sorted(" ".join(v.split(" ")[:3]) for v in await violations(page))
        assert seen == sorted(f"{policy} script-src-elem {what}" for policy in ("header", "meta")
                              for what in ("inline", f"{site.url}/evil.js")), seen
        await watch(page, 1)  # and plays on


async def test_the_page_with_p2p_plays_and_shares_under_its_policy(
        tracker_dir: Path, tmp_path: Path, seaweed: SeaweedS3, recordings: Recordings, chromium: Chromium) -> None:
    async with demo_with_tracker(tmp_path, seaweed, tracker_dir, recordings=recordings,
                                 P2P_STUN_SERVERS="none") as demo, watched(chromium) as (context, said):
        pages = [await context.new_page() for _ in range(2)]
        for page in pages:
            answer = await page.goto(f"{demo.service.url}/")
            assert answer is not None and "ws://127.0.0.1:" in answer.headers["content-security-policy"]
        for page in pages:  # found each other through the tracker (connect-src), and connected
            await page.wait_for_function("() => window.viewerStats && window.viewerStats.p2p "
                                         "&& window.viewerStats.p2p.peers >= 1", timeout=WAIT_MS, polling=POLL_MS)
            await watch(page, 2)
        found = [await violations(page) for page in pages]
        assert found == [[], []] and said == [], (found, said)
