"""tests/test_nginx_cache.py's rig: the shipped cache (deploy/nginx-cache.conf) in front of the service, with
Owncast's folder fed by hand (one variant, `seconds` a segment); the service's own /metrics, read straight
from it, is the witness of what reached it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support.nginx import Nginx, shipped_cache
from tests.support.owncast_writer import HandFedOwncast
from tests.support.scrape import by_label, scraped, total
from tests.support.service_process import ServiceProcess, moto_env
from tests.support.waiting import until


@dataclass
class Edge:
    owncast: HandFedOwncast
    service: ServiceProcess
    nginx: Nginx
    http: aiohttp.ClientSession

    async def origin_requests(self) -> dict[str, float]:
        """hls_broadcaster_playlist_requests_total by status, straight from the service."""
        samples = await scraped(self.http, self.service.url)
        return by_label(samples, "hls_broadcaster_playlist_requests_total", "status")

    async def origin_counts(self, name: str) -> float:
        """The sum of a counter's samples, straight from the service."""
        return total(await scraped(self.http, self.service.url), name)

    async def listed_at_origin(self, name: str, timeout: float = 20.0, headers: dict[str, str] | None = None) -> int:
        """Until the service's playlist (asked directly, with `headers`) lists segment `name`; the service's
        media sequence number of its last segment."""
        seen: list[tuple[int, bytes]] = []

        async def listed() -> tuple[int] | None:  # (a tuple: sequence number 0 is an answer too)
            async with self.http.get(f"{self.service.url}/live/0/playlist.m3u8", headers=headers) as r:
                body = await r.read()
            seen[:] = [(r.status, body)]
            last = body.rstrip().rsplit(b"\n", 1)[-1].partition(b"?")[0]  # a private stream's carries a token
            return (last_sequence(body),) if r.status == 200 and last.endswith(f"/{name}".encode()) else None

        (sequence,) = await until(listed, f"the service to list {name}", timeout, every=0.05,
                                  detail=lambda: seen[-1] if seen else "no answer")
        return int(sequence)


@asynccontextmanager
async def cache_edge(work: Path, moto_url: str, ts: bytes, *, seconds: int,
                     **over: str) -> AsyncIterator[Edge]:
    """The service on moto's S3 server (support/service_process's moto_env: its bucket public, as R2's),
    Owncast's folder under `work`/hls written with `ts` for every segment, and the shipped cache in front
    of the service; the service's problems must be none at the end, nginx's error log is shown when the
    test fails. `over`: the service's own settings (TRUST_CF_CONNECTING_IP=true: the cache behind
    cloudflared)."""
    owncast = HandFedOwncast(work / "hls", ts, variants=(0,), run="c4che", seconds=seconds)
    env = moto_env(moto_url, work, R2_KEY_PREFIX=work.name, **{"PATHWAYS": "bucket,vm", **over})
    async with ServiceProcess(env, work / "cwd") as service:
        nginx = shipped_cache(work / "nginx", service.url.removeprefix("http://"))
        await nginx.start()
        try:
            async with aiohttp.ClientSession() as http:
                yield Edge(owncast, service, nginx, http)
        except BaseException:
            print("--- nginx error log ---", nginx.error_log(), sep="\n")
            raise
        finally:
            await nginx.stop()
        assert service.problems() == []


_MSN = re.compile(rb"#EXT-X-MEDIA-SEQUENCE:(\d+)")


def last_sequence(body: bytes) -> int:
    """The media sequence number of a media playlist's last segment."""
    m = _MSN.search(body)
    assert m is not None, body
    return int(m.group(1)) + body.count(b"#EXTINF") - 1
