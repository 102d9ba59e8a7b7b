"""A stand-in for Owncast's web server: an Owncast-like page, /api/status, and the HLS folder under /hls/.

The page plays the same-origin /hls/stream.m3u8 with video.js and its bundled VHS, configured as
Owncast's own player is (tests/support/videojs/VENDOR.md). Like Owncast, the server also serves its HLS
folder (the emulator's files) under /hls/, so a test sees whether a request for a playlist or a segment
reached Owncast or went elsewhere: every request it gets is recorded in `requests`.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.support.local_http import serve_local

VIDEOJS_DIR = Path(__file__).resolve().parent / "videojs"

# Owncast's player options (web/components/video/OwncastPlayer), with autoplay muted so a test needs no
# click. window.player is the video.js player.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Owncast stand-in</title>
<link rel="stylesheet" href="/videojs/video-js.min.css">
<script src="/videojs/video.min.js"></script>
</head>
<body>
<h1>My Owncast stream</h1>
<video id="video" class="video-js vjs-default-skin" controls playsinline muted preload="auto"></video>
<div id="chat">chat stays here</div>
<script>
window.player = videojs('video', {
  autoplay: 'muted',
  controls: true,
  responsive: true,
  fluid: false,
  playsinline: true,
  liveui: true,
  preload: 'auto',
  html5: {
    vhs: {
      overrideNative: !videojs.browser.IS_SAFARI,
      enableLowInitialPlaylist: true,
      experimentalBufferBasedABR: true,
      useNetworkInformationApi: true,
      maxPlaylistRetries: 30,
    },
  },
  liveTracker: { trackingThreshold: 0, liveTolerance: 15 },
  sources: [{ src: '/hls/stream.m3u8', type: 'application/x-mpegURL' }],
});
window.playerErrors = [];
player.on('error', () => window.playerErrors.push(JSON.stringify(player.error())));
</script>
</body>
</html>
"""


class OwncastWeb:
    """`async with OwncastWeb(hls_dir) as owncast:` then `owncast.url`; `owncast.requests` lists every
    request as "METHOD /path?query", in order."""

    def __init__(self, hls_dir: Path, page: str = PAGE) -> None:
        self.hls_dir = hls_dir
        self.page = page
        self.requests: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.requests.append(f"{request.method} {request.path_qs}")
            return await handler(request)

        async def page(_request: web.Request) -> web.Response:
            return web.Response(text=self.page, content_type="text/html")

        async def status(_request: web.Request) -> web.Response:
            online = (self.hls_dir / "stream.m3u8").exists()
            return web.Response(text=json.dumps({"online": online, "viewerCount": 1}),
                                content_type="application/json")

        app = web.Application(middlewares=[record])
        app.router.add_get("/", page)
        app.router.add_get("/api/status", status)
        app.router.add_static("/videojs/", VIDEOJS_DIR)
        app.router.add_static("/hls/", self.hls_dir)  # what Owncast serves; nobody should ask any more
        return app

    def hls_requests(self) -> list[str]:
        """Requests for Owncast's playlists or segments (anything under /hls/)."""
        return [r for r in self.requests if r.split(" ", 1)[1].startswith("/hls/")]

    async def __aenter__(self) -> OwncastWeb:
        self._runner, self.url = await serve_local(self._app())
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
