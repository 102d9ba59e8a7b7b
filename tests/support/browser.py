"""Debian's Chromium for the browser tests, launched one way (never Playwright's own download)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.waiting import until

CHROMIUM = "/usr/bin/chromium"
# Chromium 156 prewarms its omnibox popup, a WebUI page (chrome://omnibox-popup.top-chrome/), in a
# renderer of its own for every window, so for each browser context the tests open, though headless has
# no omnibox to show it in: 0.4-1 s of CPU each.
NO_OMNIBOX_POPUP = ("WebUIOmniboxPopup", "WebUIOmniboxFullPopup", "WebUIOmniboxAimPopup")
# Chromium reads the last --disable-features only, and Playwright passes its own list before ours:
# the one given here keeps Playwright's list (1.65's chromiumSwitches, for reasons of its own) and adds ours.
PLAYWRIGHT_DISABLED = (
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding", "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect", "OptimizationHints", "NetworkTimeServiceQuerying", "AimEnabled",
    "PreconnectToSearch",
)
_BASE_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",  # the viewer starts playing by itself
]


def _disabled(*features: str) -> str:
    return "--disable-features=" + ",".join((*PLAYWRIGHT_DISABLED, *NO_OMNIBOX_POPUP, *features))


CHROMIUM_ARGS = [*_BASE_ARGS, _disabled()]
# For WebRTC between viewers of one machine: host candidates as plain 127.0.0.1, not mDNS names nothing
# here resolves (the P2P test and bench).
WEBRTC_ARGS = [*_BASE_ARGS, _disabled("WebRtcHideLocalIpsWithMdns")]

# A hostile viewer (the P2P test and bench): every segment chunk it sends over WebRTC has one
# byte flipped (commands, a few hundred bytes, go as they are). Its own player keeps the bucket's bytes.
ALTER_P2P_UPLOADS = """(() => {
  const send = RTCDataChannel.prototype.send;
  RTCDataChannel.prototype.send = function (data) {
    const view = data instanceof ArrayBuffer ? new Uint8Array(data)
      : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
    if (view && view.byteLength >= 4096) {
      const altered = view.slice();
      altered[altered.length >> 1] ^= 0xff;
      return send.call(this, altered);
    }
    return send.call(this, data);
  };
})();"""

# Hostile viewers: the page's P2P Media Loader (the vendored 2.3.1's own Peer class, reached
# through its engine as viewer/p2p.js reaches it) answers every segment request it gets the hostile way,
# and never sends the "completed" command. window.hostileUploads counts the segments it sent that way,
# window.hostileLog says to whom (the peer id) and how ('altered', 'half', '+20 kB', 'x4 + 1 MB').
#   withhold  the whole segment, one byte flipped in every 16 KiB, never "completed"
#   larger    the real segment, announced larger (alternately by 20 kB, within any bound, and 4x + 1 MB),
#             never "completed" (the end it announced never comes)
#   half      the first half of the segment, altered, and then nothing
#   end       announces every segment the playlists list as its own as soon as it is listed
#             (so that it is asked first, before anyone has it), and answers every request with the
#             segment's bytes (made-up ones when it has none yet, 200 KiB) but the last 1 KiB at once, then
#             a byte a second, so that the engine's 2 s "no bytes" timeout never ends the attempt: no
#             upload ever completes (nor is ever checked), and each costs its receiver the bytes and the
#             wait until the segment falls due and comes from the bucket
# It needs window.players and window.p2pLoaders (PLAYERS below).
HOSTILE_MODES = ("withhold", "larger", "half")
WITHHOLDING = "end"  # not in HOSTILE_MODES: tests/test_p2p_browser.py's V5 test and bench.p2p use it apart
_HOSTILE_PEER = """(() => {
  const MODE = '__MODE__';
  window.hostileUploads = 0;
  window.hostileLog = [];
  const alter = (buffer) => {
    const bytes = new Uint8Array(buffer.slice(0));
    for (let i = Math.min(8192, bytes.length >> 1); i < bytes.length; i += 16384) bytes[i] ^= 0xff;
    return bytes.buffer;
  };
  const hostile = async function (segment, requestId, data) {
    this.trickle = null; // a trickle for the segment asked before stops
    window.hostileUploads += 1;
    let announced = data.byteLength;
    let body = data;
    let how = MODE === 'withhold' ? 'altered' : MODE === 'end' ? 'all but its end' : 'half';
    if (MODE === 'withhold') body = alter(data);
    if (MODE === 'end') body = data.slice(0, Math.max(0, data.byteLength - 1024));
    if (MODE === 'half') body = alter(data).slice(0, data.byteLength >> 1);
    if (MODE === 'larger') {
      const big = window.hostileUploads % 2 === 0;
      announced = big ? 4 * data.byteLength + (1 << 20) : data.byteLength + 20000;
      how = big ? 'x4 + 1 MB' : '+20 kB';
    }
    window.hostileLog.push({ to: this.id, how });
    this.peerProtocol.sendCommand({ c: 2, i: segment.externalId, r: requestId, s: announced }); // SegmentData
    try {
      await this.peerProtocol.splitSegmentDataToChunksAndUploadAsync(body, requestId);
    } catch (err) {
      return; // cancelled by the receiver
    }
    if (MODE !== 'end') return;
    // A byte a second of the 1 KiB left, never the last one, until this peer is asked for another segment.
    const mine = {};
    this.trickle = mine;
    for (let left = 1023; left > 0 && this.trickle === mine; left -= 1) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (this.trickle !== mine || this.connection.destroyed) return;
      try {
        this.connection.write(new Uint8Array([data.byteLength & 0xff]));
      } catch (err) {
        return;
      }
    }
  };
  // 'end': every listed segment announced as this peer's own, to every peer, again and again.
  const listed = () => window.p2pLoaders()
    .flatMap((loader) => [...loader.stream.segments.values()].map((s) => s.externalId));
  let announce = null;
  const timer = setInterval(() => {
    for (const loader of window.p2pLoaders()) {
      const client = loader.trackerClient;
      for (const known of client && client._peers ? client._peers.values() : []) {
        if (!known.peer) continue;
        const Peer = Object.getPrototypeOf(known.peer);
        Peer.uploadSegmentData = hostile;
        if (MODE === 'end') {
          announce = Peer.sendSegmentsAnnouncementCommand;
          Peer.sendSegmentsAnnouncementCommand = function () { announce.call(this, listed(), []); };
          Peer.sendSegmentAbsentCommand = function (id, requestId) {
            hostile.call(this, { externalId: id }, requestId, new Uint8Array(200 * 1024).fill(0x5a).buffer);
          };
          setInterval(() => {
            for (const l of window.p2pLoaders()) {
              const peers = l.trackerClient && l.trackerClient._peers;
              for (const k of peers ? peers.values() : []) if (k.peer) k.peer.sendSegmentsAnnouncementCommand();
            }
          }, 500);
        }
        clearInterval(timer);
        return;
      }
    }
  }, 50);
})();"""


def hostile_peer(mode: str) -> str:
    """The init script of a hostile viewer of HOSTILE_MODES or WITHHOLDING (with PLAYERS)."""
    assert mode in (*HOSTILE_MODES, WITHHOLDING), mode
    return _HOSTILE_PEER.replace("__MODE__", mode)


# Every hls.js player the page makes, in window.players (a subclass of hls.js's Hls, which viewer/p2p.js's
# engine extends), and window.ownPeerIds(): the peer ids this page's P2P Media Loader announces.
PLAYERS = """(() => {
  window.players = [];
  let Kept;
  Object.defineProperty(window, 'Hls', {
    configurable: true,
    get: () => Kept,
    set: (Hls) => {
      Kept = class extends Hls {
        constructor(...args) { super(...args); window.players.push(this); }
      };
    },
  });
  // Every P2P loader of the players' main streams (P2P Media Loader's own objects, reached as
  // viewer/p2p.js reaches them).
  window.p2pLoaders = () => window.players.flatMap((hls) => {
    const stream = hls.p2pEngine && hls.p2pEngine.core && hls.p2pEngine.core.mainStreamLoader;
    const items = stream && stream.p2pLoaders ? [...stream.p2pLoaders.loaders.values()] : [];
    return items.filter((item) => item && item.loader).map((item) => item.loader);
  });
  // The tracker client's class keeps them (a static map), whatever became of the players since.
  const ids = new Set();
  const look = () => {
    for (const loader of window.p2pLoaders()) {
      for (const id of loader.trackerClient.constructor.PEER_ID_BY_INFO_HASH.values()) ids.add(id);
    }
  };
  setInterval(look, 200);
  window.ownPeerIds = () => {
    look();
    return [...ids];
  };
  // The peers this page is connected to now (for a test's account of who could ask whom).
  window.connectedPeerIds = () => window.p2pLoaders().flatMap((loader) =>
    [...loader.trackerClient._peers.values()].filter((k) => k.peer).map((k) => k.peer.id));
})();"""

# An honest viewer that asks a peer chosen at random among those that have the segment: P2P Media Loader's
# own choice while no peer's bandwidth is known. Once some are known it weighs each peer by its bandwidth
# over the last 15 s, which leaves one not asked yet about a tenth of the weight of one just used: a hostile
# peer not picked in the first seconds may stay unasked for a minute. At random, each is asked within
# seconds; the attacks only come sooner.
# window.askingAtRandom: it took. It needs PLAYERS.
ASK_AT_RANDOM = """(() => {
  const timer = setInterval(() => {
    for (const loader of window.p2pLoaders()) {
      for (const known of loader.trackerClient._peers.values()) {
        if (!known.peer) continue;
        Object.defineProperty(Object.getPrototypeOf(known.peer), 'downloadBandwidth', { get: () => 0 });
        window.askingAtRandom = known.peer.downloadBandwidth === 0;
        clearInterval(timer);
        return;
      }
    }
  }, 50);
})();"""

# The SHA-256 (hex) of every segment hls.js hands its transmuxer (worker), in order: what it plays.
HANDED = """(() => {
  window.handed = [];
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (message, ...rest) {
    if (message && message.cmd === 'demux' && message.data instanceof ArrayBuffer) {
      const slot = window.handed.push(null) - 1;
      crypto.subtle.digest('SHA-256', message.data.slice(0)).then((d) => {
        window.handed[slot] = [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
      });
    }
    return post.call(this, message, ...rest);
  };
})();"""

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/test installs it)"
)


# A bound for a launch that never comes, not for a slow one (a loaded machine's takes over 30 s).
LAUNCH_TIMEOUT_MS = 180_000


# The pages' size where a test does not set its own: Chromium draws every frame in software here, and a
# small page costs a third less CPU than Playwright's default 1280x720.
VIEWPORT = {"width": 480, "height": 270}


# How often a page checks a wait_for_function condition, in ms: Playwright's default polls on every
# animation frame, making Chromium draw 60 frames a second while it waits. Every call passes it
# (tests/test_suite_rules.py).
POLL_MS = 100


# The pages do not draw their <video> (visibility: hidden, adopted before the page's scripts run): it is
# still fetched, decoded and played, its frames still reach requestVideoFrameCallback and its box keeps its
# size, but drawing it is a third of a playing page's CPU. A test that looks at the picture launches with
# draw_video=True or calls show_video(page) first.
UNDRAWN_VIDEO = """(() => {
  const sheet = new CSSStyleSheet();
  sheet.replaceSync('video { visibility: hidden !important; }');
  sheet.undrawnVideo = true;
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
})();"""


async def show_video(page: Any) -> None:
    """Draw the page's <video> again (UNDRAWN_VIDEO), e.g. before a screenshot."""
    await page.evaluate("() => { document.adoptedStyleSheets = document.adoptedStyleSheets"
                        ".filter((s) => !s.undrawnVideo); }")


class Chromium:
    """A launched Playwright Browser whose new contexts and pages are VIEWPORT-sized unless told otherwise
    and draw no video unless launched with draw_video=True (UNDRAWN_VIDEO); the rest is the Browser's own."""

    def __init__(self, browser: Any, draw_video: bool = False) -> None:
        self._browser = browser
        self._draw_video = draw_video

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)

    async def new_context(self, **options: Any) -> Any:
        return await self._made(self._browser.new_context, options)

    async def new_page(self, **options: Any) -> Any:
        return await self._made(self._browser.new_page, options)

    async def _made(self, make: Callable[..., Awaitable[Any]], options: dict[str, Any]) -> Any:
        made = await make(**{"viewport": dict(VIEWPORT), **options})
        if not self._draw_video:
            await made.add_init_script(UNDRAWN_VIDEO)
        return made

    def own(self, *, draw_video: bool | None = None) -> OwnedPages:
        """The contexts and pages one test opens in this shared browser (drawing video as it does
        unless told)."""
        return OwnedPages(Chromium(self._browser, self._draw_video if draw_video is None else draw_video))


class OwnedPages:
    """One test's contexts and pages in a browser a module's tests share: `close` closes what this test
    opened, and only that, so what one test leaves playing does not count among the next one's viewers."""

    def __init__(self, chromium: Chromium) -> None:
        self._chromium = chromium
        self._opened: list[Any] = []  # contexts, and pages opened with a context of their own

    async def new_context(self, **options: Any) -> Any:
        self._opened.append(await self._chromium.new_context(**options))
        return self._opened[-1]

    async def new_page(self, **options: Any) -> Any:
        self._opened.append(await self._chromium.new_page(**options))
        return self._opened[-1]

    async def close(self) -> None:
        while self._opened:
            with contextlib.suppress(Exception):  # closed already, or its renderer gone: nothing to close
                await self._opened.pop().close()

    async def __aenter__(self) -> OwnedPages:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def launch_chromium(pw: Any, args: list[str] = CHROMIUM_ARGS, *, draw_video: bool = False) -> Any:
    """A headless Chromium (args: CHROMIUM_ARGS or WEBRTC_ARGS) drawing video only with draw_video=True."""
    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args, timeout=LAUNCH_TIMEOUT_MS)
    return Chromium(browser, draw_video)


@contextlib.asynccontextmanager
async def shared_chromium(args: list[str] = CHROMIUM_ARGS, *,
                         draw_video: bool = False) -> AsyncIterator[Chromium]:
    """Playwright's driver and a Chromium (launch_chromium's), closed with it: a module-scoped fixture's
    tests each open their own contexts and pages there (Chromium.own) and close them."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await launch_chromium(pw, args, draw_video=draw_video)
        try:
            yield launched
        finally:
            await launched.close()


def module_chromium(args: list[str] = CHROMIUM_ARGS, name: str = "chromium") -> Any:
    """A module-scoped fixture, `name`: one shared_chromium(args) for the module's tests."""

    @pytest_asyncio.fixture(scope="module", loop_scope="module", name=name)
    async def fixture() -> AsyncIterator[Chromium]:
        async with shared_chromium(args) as launched:
            yield launched

    return fixture


@pytest_asyncio.fixture(loop_scope="module", name="browser")
async def owned_pages(chromium: Chromium) -> AsyncIterator[OwnedPages]:
    """`browser`: this test's contexts and pages in the module's `chromium`, closed when it ends."""
    async with chromium.own() as own:
        yield own


async def until_served(url: str, timeout: float = 30.0) -> str:
    """`url`'s body once it is answered 200 (a playlist: the service answers 503 until it lists one)."""
    async with aiohttp.ClientSession() as http:
        async def served() -> str | None:
            async with http.get(url) as response:
                return await response.text() if response.status == 200 else None

        text: str = await until(served, f"{url} served", timeout, every=0.1)
        return text


async def until_page(page: Any, condition: str, arg: Any = None, timeout: float = 30.0) -> None:
    """Until JavaScript `condition(arg)` holds in `page` (or a frame), checked every POLL_MS."""
    await page.wait_for_function(condition, arg=arg, timeout=timeout * 1000, polling=POLL_MS)


async def open_viewer(page: Any, url: str) -> None:
    """Load the viewer page at `url` and wait until hls.js plays."""
    await page.goto(url)
    await until_page(page, "() => window.viewerStats && window.viewerStats.state === 'playing'")


async def wait_for_state(page: Any, state: str, timeout_ms: int, playlist: str | None = None) -> None:
    """Until the viewer's state (window.viewerStats.state) is `state`. A wait that fails says where the
    player stood (its state, errors, the video's time, buffer and flags) and, given `playlist` (a URL the
    page can fetch), the last lines of what that playlist says now."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await until_page(page, "s => window.viewerStats && window.viewerStats.state === s", state,
                         timeout=timeout_ms / 1000)
    except PlaywrightTimeout:
        where = await page.evaluate("""async (url) => {
          const s = window.viewerStats || {}, v = document.querySelector('video');
          let tail = null;
          if (url) {
            try {
              const r = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(5000) });
              tail = r.status + ': ' + (await r.text()).trim().split('\\n').slice(-6).join(' | ');
            } catch (err) { tail = String(err); }
          }
          return { state: s.state, errors: s.errors, engine: s.engine, buffer: s.buffer,
                   time: v && v.currentTime, ended: v && v.ended, paused: v && v.paused,
                   readyState: v && v.readyState, playlist: tail };
        }""", playlist)
        raise AssertionError(f"the viewer not {state!r} after {timeout_ms / 1000:g} s: {where}") from None


async def stat_rows(page: Any) -> dict[str, str]:
    """The viewer's stats panel's visible rows, name to value."""
    rows: dict[str, str] = await page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#stats dl div:not([hidden])')]"
        ".map((d) => [d.querySelector('dt').textContent, d.querySelector('dd').textContent]))")
    return rows


async def watch(page: Any, seconds: float, timeout_ms: int = 30_000) -> dict[str, Any]:
    """Until the video has played `seconds` more; then the viewer's stats (window.viewerStats)."""
    start = await page.evaluate("() => document.querySelector('video').currentTime")
    await until_page(page, "t => document.querySelector('video').currentTime > t", start + seconds,
                     timeout=timeout_ms / 1000)
    stats: dict[str, Any] = await page.evaluate("() => JSON.parse(JSON.stringify(window.viewerStats))")
    return stats


def page_errors(page: Any, errors: list[str] | None = None) -> list[str]:
    """`errors` (a new list without one), growing with the page's console errors and uncaught exceptions,
    but the browser's "Failed to load resource" lines (a failed fetch is the network's; the page copes)."""
    found = [] if errors is None else errors
    page.on("console", lambda m: found.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text else None)
    page.on("pageerror", lambda e: found.append(str(e)))
    return found
