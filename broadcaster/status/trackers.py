"""Whether the P2P trackers (P2P_TRACKERS) answer, for /health and hls_broadcaster_p2p_tracker_up: each
probe is a viewer's first step, a WebSocket and an announce of the first variant with event "stopped"
(answered, and no peer added). One that does not answer or refuses the stream is down for the viewers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from prometheus_client import Gauge

from ..source.tasks import cancelled

log = logging.getLogger(__name__)

PROBE_INTERVAL = 15.0  # seconds between probes of a tracker that answers
PROBE_INTERVAL_DOWN = 5.0  # of one that does not: its return is seen soon
PROBE_TIMEOUT = 5.0


# hls.js's video codec prefixes (its sampleEntryCodesISO.video): the rest of CODECS is not in the key.
_VIDEO = frozenset({"avc1", "avc2", "avc3", "avc4", "avcp", "av01", "dav1", "drac", "dva1", "dvav", "dvh1", "dvhe",
                    "encv", "hev1", "hvc1", "mjp2", "mp4v", "mvc1", "mvc2", "mvc3", "mvc4", "resv", "rv60", "s263",
                    "svc1", "svc2", "vc-1", "vp08", "vp09"})
_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _codec_key(codecs: list[str]) -> str:
    out = []
    for codec in codecs:
        codec = codec.strip().lower()
        parts = codec.split(".")
        if len(parts) == 3 and parts[0] in ("avc1", "avc") and parts[1].isdigit() and parts[2].isdigit() \
                and parts[1] == str(int(parts[1])) and parts[2] == str(int(parts[2])):
            codec = f"{parts[0]}.{int(parts[1]):02x}00{int(parts[2]):02x}"
        out.append(codec)
    return ",".join(sorted(out))


def variant_key(stream_inf: str) -> str:
    """P2P Media Loader 2.3.1's key of one variant (as broadcaster/tracker/swarms.mjs derives it)."""
    attrs = {m[1]: m[2][1:-1] if m[2].startswith('"') else m[2] for m in _ATTR.finditer(stream_inf)}
    bitrate = _leading_int(attrs.get("BANDWIDTH")) or _leading_int(attrs.get("AVERAGE-BANDWIDTH")) or 0
    codecs = width = height = rate = video_range = ""
    if bitrate:
        video = [c.split("/")[0] for c in re.split(r"[ ,]+", attrs.get("CODECS", "")) if c and c[:4] in _VIDEO]
        codecs = _codec_key(video) if video else ""
        resolution = re.fullmatch(r"(\d+)x(\d+)", attrs.get("RESOLUTION", ""))
        if resolution:
            width, height = str(int(resolution[1])), str(int(resolution[2]))
        rate = _js_number(attrs.get("FRAME-RATE", ""))
        video_range = attrs.get("VIDEO-RANGE", "").upper().strip()
    key = f"{bitrate}-{codecs}-{width}-{height}----{rate}-{video_range}"
    return base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()


def _leading_int(text: str | None) -> int:
    match = re.match(r"\s*([+-]?\d+)", text or "")
    return int(match[1]) if match else 0


def _js_number(text: str) -> str:
    """String(Number(text)) for the decimal numbers a playlist carries ("30.000" -> "30"); "" if none."""
    try:
        value = float(text)
    except ValueError:
        return ""
    if not text.strip() or value != value:
        return ""
    return str(int(value)) if value.is_integer() else repr(value)


def info_hash(swarm: str, key: str, kind: str = "main") -> str:
    """The info hash P2P Media Loader 2.3.1 announces for one stream of `swarm`."""
    digest = hashlib.sha1(f"v2-{swarm}-{kind}-{key}".encode()).digest()
    return base64.b64encode(digest[:15]).decode()


def master_info_hashes(swarm: str, master: str) -> list[str]:
    """Every variant's info hash in a multivariant playlist's text."""
    prefix = "#EXT-X-STREAM-INF:"
    return [info_hash(swarm, variant_key(line[len(prefix):])) for line in master.splitlines()
            if line.startswith(prefix)]


@dataclass(frozen=True, slots=True)
class Reading:
    up: bool | None  # None: not probed yet
    problem: str | None = None
    since: float = 0.0  # time.monotonic() of the last change


class TrackerProbe:
    """Probes each tracker in turn, from start() to stop(); readings() for /health, the gauge for metrics."""

    def __init__(self, urls: tuple[str, ...], swarm: str, master: Callable[[], bytes | None], gauge: Gauge) -> None:
        """master: the multivariant playlist served now (None before the stream): its first variant is probed."""
        self._urls = urls
        self._swarm = swarm
        self._master = master
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
        await cancelled(task)
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _run(self) -> None:
        await asyncio.sleep(PROBE_INTERVAL_DOWN)  # a tracker started with the service (the demo's) is up by then
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
            problem = f"cannot connect ({err.os_error.strerror or 'connection refused'})"
        except aiohttp.WSServerHandshakeError as err:
            problem = f"refused the WebSocket: HTTP {err.status}"
        except (aiohttp.ClientError, OSError) as err:
            problem = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        except Exception as err:  # noqa: BLE001: anything else is a down tracker too, never the probe's end
            log.exception("P2P tracker probe of %s failed unexpectedly", url)
            problem = f"probe failed: {type(err).__name__}"
        self._record(url, problem)

    async def _ask(self, url: str) -> str | None:
        assert self._http is not None
        master = self._master()
        hashes = master_info_hashes(self._swarm, master.decode(errors="replace")) if master else []
        async with self._http.ws_connect(url, autoping=True, max_msg_size=1 << 16) as ws:
            if not hashes:
                return None  # no stream yet: that it accepts the WebSocket is all there is to see
            await ws.send_str(json.dumps({
                "action": "announce", "info_hash": hashes[0], "peer_id": "-HB0001-" + secrets.token_hex(6),
                "numwant": 0, "uploaded": 0, "downloaded": 0, "event": "stopped"}))
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                with contextlib.suppress(ValueError, AttributeError):
                    answer = json.loads(msg.data)
                    if answer.get("info_hash") == hashes[0]:
                        reason = answer.get("failure reason")
                        return None if reason is None else f"refuses this stream: {str(reason)[:200]}"
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
