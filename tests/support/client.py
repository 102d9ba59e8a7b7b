"""The app under test, asked over real HTTP through aiohttp's test client."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import AppRunner, BaseRunner
from prometheus_client import CONTENT_TYPE_LATEST
from yarl import URL

from tests.support.scrape import parsed

Client = TestClient[web.Request, web.Application]

PLAIN = {"Accept-Encoding": "identity"}  # the client does not decompress: tests see the bytes sent


class Uncancelling(TestServer):
    """A test server that does not cancel a handler whose client goes (aiohttp's TestServer always does,
    as the service does: handler_cancellation): the handler finds out by writing."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return AppRunner(self.app, **{**kwargs, "handler_cancellation": False})


async def get(client: Client, path: str | URL, headers: dict[str, str] | None = None,
              method: str = "GET") -> tuple[int, Any, bytes]:
    async with client.request(method, path, headers=PLAIN if headers is None else headers) as resp:
        return resp.status, resp.headers, await resp.read()


async def playlist_counts(client: Client) -> dict[tuple[str, str], float]:
    """The playlist requests /metrics has counted, by (playlist, status)."""
    status, headers, body = await get(client, "/metrics")
    assert status == 200 and headers["Content-Type"] == CONTENT_TYPE_LATEST
    return {(dict(labels)["playlist"], dict(labels)["status"]): value
            for (name, labels), value in parsed(body.decode()).items()
            if name == "hls_broadcaster_playlist_requests_total"}


def new_id() -> str:
    """A viewer page's id, as the page makes one (its heartbeats name it)."""
    return secrets.token_urlsafe(16)
