"""Whether the P2P trackers the viewers are told to use (P2P_TRACKERS) answer, for /health and
hls_broadcaster_p2p_tracker_up{tracker}.

Each probe is what a viewer's first step is: a WebSocket to the tracker and an announce for this
stream's swarm, here with event "stopped" (the tracker answers it, and no peer is added that viewers
would send offers to). A tracker that does not answer, or refuses the swarm (it serves another stream,
or has not learnt this one yet), is down for the viewers: they play from the bucket alone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass

import aiohttp
from prometheus_client import Gauge

log = logging.getLogger(__name__)

PROBE_INTERVAL = 15.0  # seconds between probes of a tracker that answers
PROBE_INTERVAL_DOWN = 5.0  # of one that does not: its return is seen soon
PROBE_TIMEOUT = 5.0


def info_hash(swarm: str, kind: str = "main", index: int = 0) -> str:
    """The info hash P2P Media Loader 2.3.1 announces for one stream of `swarm` (the first variant by
    default), as the tracker derives it too (broadcaster/tracker/swarms.mjs)."""
    digest = hashlib.sha1(f"v2-{swarm}-{kind}-{index}".encode()).digest()
    return base64.b64encode(digest[:15]).decode()


@dataclass(frozen=True, slots=True)
class Reading:
    up: bool | None  # None: not probed yet
    problem: str | None = None
    since: float = 0.0  # time.monotonic() of the last change


class TrackerProbe:
    """Probes each tracker in turn, from start() to stop(); readings() for /health, the gauge for metrics."""

    def __init__(self, urls: tuple[str, ...], swarm: str, gauge: Gauge) -> None:
        self._urls = urls
        self._hash = info_hash(swarm)
        self._gauge = gauge
        self._readings = {url: Reading(None, since=time.monotonic()) for url in urls}
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    def readings(self) -> dict[str, Reading]:
        return dict(self._readings)

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT))
        self._task = asyncio.create_task(self._run(), name="tracker-probe")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _run(self) -> None:
        while True:
            await asyncio.gather(*(self._probe(url) for url in self._urls))
            down = any(r.up is False for r in self._readings.values())
            await asyncio.sleep(PROBE_INTERVAL_DOWN if down else PROBE_INTERVAL)

    async def _probe(self, url: str) -> None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                problem = await self._ask(url)
        except TimeoutError:
            problem = f"no answer in {PROBE_TIMEOUT:.0f} s"
        except aiohttp.ClientConnectorError as err:
            problem = f"cannot connect ({err.os_error.strerror or err.os_error})"
        except aiohttp.WSServerHandshakeError as err:
            problem = f"refused the WebSocket: HTTP {err.status}"
        except (aiohttp.ClientError, OSError) as err:
            problem = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        self._record(url, problem)

    async def _ask(self, url: str) -> str | None:
        assert self._http is not None
        async with self._http.ws_connect(url, autoping=True, max_msg_size=1 << 16) as ws:
            await ws.send_str(json.dumps({
                "action": "announce", "info_hash": self._hash, "peer_id": "-HB0001-" + secrets.token_hex(6),
                "numwant": 0, "uploaded": 0, "downloaded": 0, "event": "stopped",
            }))
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                with contextlib.suppress(ValueError, AttributeError):
                    answer = json.loads(msg.data)
                    if answer.get("info_hash") == self._hash:
                        reason = answer.get("failure reason")
                        return None if reason is None else f"refuses this stream's swarm: {str(reason)[:200]}"
            return f"closed the connection without an answer ({ws.close_code})"

    def _record(self, url: str, problem: str | None) -> None:
        before = self._readings[url]
        up = problem is None
        self._gauge.labels(tracker=url).set(1 if up else 0)
        if before.up == up and before.problem == problem:
            return
        self._readings[url] = Reading(up, problem, time.monotonic())
        if not up:
            log.warning("P2P tracker %s does not serve the viewers (%s): they play from the bucket alone",
                        url, problem)
        elif before.up is False:
            log.info("P2P tracker %s answers again", url)
