"""P2P only with the viewer's knowing and where it helps, in a real browser (P2P_START_ON off,
P2P_MIN_VIEWERS=2): no RTCPeerConnection before the viewer ticks the notice, nor while fewer than two
share; once two chose, peers connect. The choice outlives a reload, the embed shows the same notice, and
the first visit at a 150 ms round trip reaches its first frame within 12 requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.browser import (PLAYERS, POLL_MS, WEBRTC_ARGS, module_chromium, needs_chromium,
                                   open_viewer, until_page)
from tests.support.p2p_demo import demo_with_tracker
from tests.support.s3 import bucket_of_its_own
from tests.support.startup import Startup, first_visit
from tests.support.waiting import until

MAX_REQUESTS_BEFORE_FIRST_FRAME = 12  # the goal at a 150 ms round trip
pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_chromium,
              pytest.mark.xdist_group("p2p_choice_browser"), pytest.mark.asyncio(loop_scope="module")]

# Every RTCPeerConnection the page makes, counted before any of its scripts runs.
COUNT_PEER_CONNECTIONS = """(() => {
  const Native = window.RTCPeerConnection;
  window.peerConnections = 0;
  function Counted(...args) {
    window.peerConnections += 1;
    return new Native(...args);
  }
  Counted.prototype = Native.prototype;
  window.RTCPeerConnection = Counted;
})();"""
# The browser's data saver on (navigator.connection.saveData), as Chrome reports it.
SAVE_DATA = """Object.defineProperty(navigator, 'connection',
  { value: { type: 'wifi', saveData: true, addEventListener() {} }, configurable: true });"""
# P2P_UPLOAD_MB as the first page reads it: a twentieth of a megabyte, a few seconds of sharing.
CAP_MB = 0.05
# What may pass the cap: the rest of the segment on its way (the demo's are about 160 KB).
SEGMENT_MAX = 512 * 1024
SEGMENT_BYTES = 100_000  # less than one of the demo's 1 s segments
# Every parse of the page's config is read with this upload cap in place of the setting's.
SMALL_CAP = """(() => {
  const parse = JSON.parse;
  JSON.parse = (...args) => {
    const value = parse(...args);
    if (value && value.p2p && typeof value.p2p === 'object' && 'uploadMb' in value.p2p) value.p2p.uploadMb = %s;
    return value;
  };
})();""" % CAP_MB
# What the page shows and knows of P2P: the notice, the box, the choice, the engine's counts.
READ = """() => {
  const line = document.getElementById('p2p-choice');
  const p2p = window.viewerStats && window.viewerStats.p2p;
  return { shown: Boolean(line) && !line.hidden && line.offsetHeight > 0, text: line ? line.textContent : '',
           ticked: document.getElementById('p2p-choice-box').checked, pcs: window.peerConnections,
           choice: p2p ? p2p.choice : null, peers: p2p ? p2p.peersSeen : 0,
           shared: p2p ? p2p.bytesFromPeers + p2p.bytesToPeers : 0, sent: p2p ? p2p.bytesToPeers : 0,
           noUploads: p2p ? p2p.uploadDisabled : null, http: p2p ? p2p.bytesFromHttp : 0 };
}"""


browser = module_chromium(WEBRTC_ARGS, "browser")


@pytest_asyncio.fixture(loop_scope="module")
async def seaweed(seaweed_server: SeaweedS3) -> AsyncIterator[SeaweedS3]:
    async with bucket_of_its_own(seaweed_server) as bucket:
        yield bucket


async def viewer(browser: Any, url: str, recorded: list[Startup] | None = None, *extra: str) -> Any:
    """A page of its own context counting its peer connections; `recorded`: a 150 ms first visit."""
    context = await browser.new_context()
    await context.add_init_script(COUNT_PEER_CONNECTIONS)
    await context.add_init_script(PLAYERS)
    for script in extra:
        await context.add_init_script(script)
    page = await context.new_page()
    if recorded is None:
        await open_viewer(page, url)
        return page
    recorded.append(await first_visit(context, page, url))
    await until_page(page, "() => window.viewerStats && window.viewerStats.state === 'playing'")
    return page


async def counted(page: Any, sharing: int) -> dict[str, Any]:
    """The page's state once the service's count of sharing viewers it last heard is `sharing`."""
    seen: list[dict[str, Any]] = []

    async def heard() -> dict[str, Any] | None:
        seen[:] = [await page.evaluate(READ)]
        choice = seen[0]["choice"]
        return seen[0] if choice is not None and choice["sharing"] == sharing else None

    state: dict[str, Any] = await until(heard, f"the page hearing {sharing} sharing", 20, every=POLL_MS / 1000,
                                        detail=lambda: seen)
    return state


async def both_until(pages: tuple[Any, Any], holds: Callable[[list[dict[str, Any]]], bool], what: str,
                     timeout: float) -> list[dict[str, Any]]:
    """Both pages' state once `holds` of the two, read every 0.2 s (the last reading goes with a failure)."""
    seen: list[dict[str, Any]] = []

    async def read() -> bool:
        seen[:] = [await page.evaluate(READ) for page in pages]
        return holds(seen)

    await until(read, what, timeout, every=0.2, detail=lambda: seen)
    return seen


async def test_no_peer_before_the_choice_nor_below_the_threshold_then_peers_share(
        tmp_path: Path, seaweed: SeaweedS3, tracker_dir: Path, recordings: Recordings, browser: Any) -> None:
    async with demo_with_tracker(tmp_path, seaweed, tracker_dir, recordings=recordings, VIEWER_TIMEOUT="3",
                                 P2P_START_ON="false", P2P_MIN_VIEWERS="2") as demo:
        starts: list[Startup] = []
        first = await viewer(browser, f"{demo.service.url}/", starts, SMALL_CAP)
        asked = [f.url for f in starts[0].before]
        assert starts[0].count() <= MAX_REQUESTS_BEFORE_FIRST_FRAME, asked
        assert not [u for u in asked if "watching" in u or u.startswith("ws")], asked
        # Told first: the line says what sharing means; the box starts as the operator set it (no).
        before = await counted(first, 0)
        assert before["shown"] and "IP address" in before["text"] and not before["ticked"], before
        assert before["pcs"] == 0 and before["choice"]["on"] is False, before
        # Chosen, but alone: still no peer connection (it counts itself among the sharing).
        await first.check("#p2p-choice-box")
        alone = await counted(first, 1)
        assert alone["pcs"] == 0 and alone["choice"]["yes"] and not alone["choice"]["on"], alone
        # The choice outlives a reload.
        await first.reload()
        await until_page(first, "() => window.viewerStats && window.viewerStats.state === 'playing'")
        kept = await counted(first, 1)
        assert kept["ticked"] and kept["choice"]["chosen"] == "yes" and kept["pcs"] == 0, kept
        # The embed: the same notice; ticked, peers connect (its browser saves data: it sends nothing).
        second = await viewer(browser, f"{demo.service.url}/embed", None, SAVE_DATA)
        embedded = await second.evaluate(READ)
        assert embedded["shown"] and embedded["text"] == kept["text"] and not embedded["ticked"], embedded
        assert embedded["pcs"] == 0, embedded
        await second.check("#p2p-choice-box")
        pages = (first, second)
        seen = await both_until(pages, lambda both: all(s["pcs"] > 0 and s["peers"] > 0 and s["shared"] > 0
                                                        for s in both), "both pages sharing with a peer", 40)
        assert seen[1]["noUploads"] is True and seen[1]["sent"] == 0, seen
        # Past its upload cap the first page sends no more; the second plays on, from the bucket.
        seen = await both_until(pages, lambda both: both[0]["noUploads"] is True,
                                "the first page's upload cap reached", 90)
        at_cap, from_bucket = seen[0]["sent"], seen[1]["http"]
        assert CAP_MB * 1e6 <= at_cap <= CAP_MB * 1e6 + SEGMENT_MAX, seen
        seen = await both_until(pages, lambda both: both[1]["http"] >= from_bucket + 2 * SEGMENT_BYTES,
                                "the second page taking two segments more from the bucket", 60)
        assert seen[0]["sent"] == at_cap, seen
        for page in pages:
            await page.context.close()
