"""BucketGates: a real S3 server (SeaweedFS) behind two gates a test opens and closes, one on the service's
way (its S3 endpoint) and one on the viewers' (the public URL, and the service's own look at it).

Each gate is a FaultProxy: closed, it answers 503 with S3's SlowDown body, as R2 in its outages (or, with
`how="refuse"`, refuses connections). The viewers' gate's 503s carry CORS like the bucket's answers, so a
player sees the status; `cors=False` leaves it out (the browser sees status 0, as for a CDN's error page)."""

from __future__ import annotations

from types import TracebackType
from typing import Literal, Self

from aiohttp import web

from broadcaster.demo.seaweed import SeaweedS3
from tests.support.fault_proxy import FaultProxy, Mode, Seen

How = Literal["down_503", "refuse"]
VIEWERS_HOST = "127.0.0.2"


class _CorsFaultProxy(FaultProxy):
    """A FaultProxy whose own 503s carry CORS, as the bucket's other answers do."""

    def __init__(self, upstream: str, *, cors: bool = True, host: str = "127.0.0.1") -> None:
        super().__init__(upstream, host=host)
        self.cors = cors

    async def _unavailable(self, request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        response = await super()._unavailable(request, seen)
        if self.cors:
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response


class BucketGates:
    """`service_url` is the service's S3_ENDPOINT_URL, `public_url` its R2_PUBLIC_URL."""

    def __init__(self, s3: SeaweedS3) -> None:
        self.s3 = s3
        self.service = FaultProxy(s3.endpoint_url)
        # Another loopback address: players tell hosts apart by name (Shaka bans a failing one by its name,
        # ports aside), and in production the bucket's domain is never the tunnel's.
        self.viewers = _CorsFaultProxy(s3.endpoint_url, host=VIEWERS_HOST)

    @property
    def service_url(self) -> str:
        return self.service.url

    @property
    def public_url(self) -> str:
        return f"{self.viewers.url}/{self.s3.bucket}"

    async def close(self, *, service: bool, viewers: bool, how: How = "down_503", cors: bool = True) -> None:
        self.viewers.cors = cors
        mode: Mode = how
        await self.service.set_mode(mode if service else "pass")
        await self.viewers.set_mode(mode if viewers else "pass")

    async def open(self) -> None:
        await self.service.pass_through()
        await self.viewers.pass_through()

    @property
    def closed(self) -> dict[str, bool]:
        return {"service": self.service.mode != "pass", "viewers": self.viewers.mode != "pass"}

    async def __aenter__(self) -> Self:
        await self.service.start()
        try:
            await self.viewers.start()
        except BaseException:
            await self.service.close()
            raise
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.viewers.close()
        finally:
            await self.service.close()
