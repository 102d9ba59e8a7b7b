"""A page's start-up as the browser sees it: the time to its video's first frame (requestVideoFrameCallback,
in the page's clock) and the requests the browser started before it (Playwright's request.timing), each
redirect a request of its own, as on the network. For the browser tests' first visits and bench/startup.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.support.browser import POLL_MS

# Installed before the page's own scripts (add_init_script): hooks every <video> the page makes.
FIRST_FRAME = """(() => {
  const start = window.startup = { firstFrame: null, playing: null };
  const seen = new WeakSet();
  const hook = (video) => {
    if (seen.has(video)) return;
    seen.add(video);
    const frame = (now, meta) => {
      if (start.firstFrame !== null) return;
      start.firstFrame = meta && meta.presentationTime ? meta.presentationTime : now;
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(frame);
    else video.addEventListener('loadeddata', () => frame(performance.now()), { once: true });
    video.addEventListener('playing', () => {
      if (start.playing === null) start.playing = performance.now();
    });
  };
  new MutationObserver(() => document.querySelectorAll('video').forEach(hook))
    .observe(document, { childList: true, subtree: true });
})();"""


@dataclass(frozen=True)
class Fetched:
    url: str
    started: float  # seconds after the navigation started
    redirected: bool  # answered by a redirect (the request that follows it is another Fetched)


@dataclass(frozen=True)
class Startup:
    first_frame: float  # seconds from the navigation's start to the video's first frame
    before: list[Fetched]  # the requests started before it, in order

    def redirects(self) -> list[Fetched]:
        return [f for f in self.before if f.redirected]

    def count(self) -> int:
        return len(self.before)

    def to_first_segment(self) -> list[Fetched]:
        """The requests up to the first media segment's: what the page asks for before the stream's bytes.
        (After it, how many more segments and playlist reloads come before the first frame depends on how
        long the machine takes to decode one, not on the page.)"""
        for i, f in enumerate(self.before):
            if urlsplit(f.url).path.endswith((".ts", ".m4s", ".mp4")):
                return self.before[: i + 1]
        return list(self.before)

    def same_origin_files(self, origin: str) -> list[str]:
        """Paths (and queries) of what was asked of the page's own origin: the page, its files, config."""
        out = []
        for f in self.before:
            parts = urlsplit(f.url)
            if f"{parts.scheme}://{parts.netloc}" == origin:
                out.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        return out


async def emulate(context: Any, page: Any, latency_ms: float, throughput: float = -1) -> None:
    """Chromium's network emulation: `latency_ms` on every round trip, `throughput` bytes/s (-1: none)."""
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": latency_ms,
        "downloadThroughput": throughput, "uploadThroughput": throughput})


class StartupRecorder:
    """`recorder = StartupRecorder(page)` before `page.goto(url)` (the page of a fresh context), then
    `await recorder.result(timeout_ms)` once the page is loading."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[Any] = []
        page.on("request", lambda request: self.requests.append(request))

    async def install(self) -> None:
        await self.page.add_init_script(FIRST_FRAME)

    async def result(self, timeout_ms: float = 60_000) -> Startup:
        await self.page.wait_for_function("() => window.startup && window.startup.firstFrame !== null",
                                          timeout=timeout_ms, polling=POLL_MS)
        origin, frame = await self.page.evaluate("() => [performance.timeOrigin, window.startup.firstFrame]")
        frame_at = float(origin) + float(frame)  # epoch ms, the browser's clock
        before: list[Fetched] = []
        for request in self.requests:
            if not request.url.startswith(("http:", "https:")):
                continue  # data:, blob: (hls.js's worker)
            started = float((request.timing or {}).get("startTime", -1))
            if started <= 0 or started > frame_at:
                continue
            redirected = request.redirected_to is not None
            before.append(Fetched(request.url, (started - float(origin)) / 1000, redirected))
        before.sort(key=lambda f: f.started)
        return Startup(float(frame) / 1000, before)


async def first_visit(context: Any, page: Any, url: str, latency_ms: float = 150) -> Startup:
    """`page` (of a fresh `context`) opening `url` at a `latency_ms` round trip: its start-up, within 30 s."""
    recorder = StartupRecorder(page)
    await recorder.install()
    await emulate(context, page, latency_ms=latency_ms)
    await page.goto(url, wait_until="commit")
    return await recorder.result(timeout_ms=30_000)
