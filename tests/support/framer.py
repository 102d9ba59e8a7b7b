"""Another site's page framing the service's /embed (docs/viewers.md's snippet), served on 127.0.0.1 at a
port of its own, and a script at /evil.js that a page of the service must refuse to run."""

from __future__ import annotations

from aiohttp import web

from tests.support.local_http import Served

EMBED = ('<iframe src="{target}/embed" width="640" height="360" allow="autoplay; fullscreen" allowfullscreen'
         ' style="border:0"></iframe>')  # docs/viewers.md#embedding-the-player


class Framer(Served):
    """`host`: the name its URL gives 127.0.0.1 (`localhost` makes the frame a third party: another site,
    not only another port). `target`: the service's URL, set once it runs."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.host = host
        self.target = ""
        self.app.router.add_get("/", self._page)
        self.app.router.add_get("/evil.js", self._script)

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(text=f"<!doctype html><title>a site</title><h1>My site</h1>"
                                 f"{EMBED.format(target=self.target)}", content_type="text/html")

    @staticmethod
    async def _script(_request: web.Request) -> web.Response:
        return web.Response(text='window.injected = "remote";', content_type="text/javascript")

    async def __aenter__(self) -> Framer:
        await super().__aenter__()
        self.url = self.url.replace("127.0.0.1", self.host)
        return self
