"""A stand-in for Owncast's viewer count, playback reports and Stream Health, as Owncast's source does them.

- `GET /api/ping` (webserver/handlers/ping.go): the viewer made from the request is marked active; 200,
  no body, no CORS. Its id (utils/clientId.go): md5 of the address and the User-Agent, the address being
  X-Forwarded-For's first entry ("::ffff:" and a port stripped) when sent, which Owncast trusts.
- SetViewerActive (services/stream/stats.go): nothing while no stream is connected; pruneViewerCount, every
  `prune_every` (5 s), drops viewers unseen for `purge_timeout` (15 s; parameters, so tests need not wait).
- `GET /api/status`: `viewerCount`, the active viewers. `GET /api/config`: `name`, `summary` (and
  `streamTitle` when set), with `Access-Control-Allow-Origin: *` and caching off.
- `/api/metrics/playback` (playbackMetrics.go): not a POST, or a first JSON value that does not decode
  into float64 {bandwidth, latency, errors, downloadDuration, qualityVariantChanges} (names matched
  case-insensitively, unknown ones ignored, null and missing 0): 400 `{"success":false,"message":...}`;
  else 200, and the viewer's errors and variant changes, and its non-zero bandwidth, latency and download
  duration, replace its values in the window. Content-Type is not looked at.
- Each poll (every 2 minutes) empties the window after making the overview from it while online
  (`stream_health()`, healthOverview.go): healthy percentage = 100 - the share of reporting clients with
  errors (int(x / total * 100)), healthy above 75; representation = clients reporting a bandwidth over
  active viewers; "N of M viewers (P%) may be experiencing some issues." once 3 or more clients report.

Without a CMCD `collector` (tests/support/owncast_cmcd.py) it is an Owncast before 0.2: `/api/metrics/cmcd`
falls to its index handler, a 404 with `Access-Control-Allow-Origin: *`, counted in `cmcd_misses`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

from aiohttp import web

from tests.support.local_http import Served

if TYPE_CHECKING:
    from tests.support.owncast_cmcd import CmcdCollector


def address_of(request: web.BaseRequest) -> str:
    """GetIPAddressFromRequest."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded:
        first = forwarded.split(", ")[0].removeprefix("::ffff:")
        if ":" in first:
            return _split_host_port(first)
        return first
    return _split_host_port(_remote_addr(request))


def _remote_addr(request: web.BaseRequest) -> str:
    """Go's RemoteAddr: host:port, an IPv6 host in brackets."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return ""
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_host_port(text: str) -> str:
    """net.SplitHostPort's host, or "" where it fails (Owncast logs the error and uses "")."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        return host if sep and rest.startswith(":") else ""
    host, sep, _port = text.rpartition(":")
    return host if sep and ":" not in host else ""


def client_id(request: web.BaseRequest) -> str:
    """GenerateClientIDFromRequest: md5(address + User-Agent)."""
    user_agent = request.headers.get("User-Agent", "")
    return hashlib.md5((address_of(request) + user_agent).encode()).hexdigest()  # noqa: S324 (Owncast's)


@dataclass
class Viewer:
    address: str
    user_agent: str
    last_seen: float


# reportPlaybackMetricsRequest's fields (playbackMetrics.go, lines 21-27), by the name Go matches them on.
PLAYBACK_FIELDS = {name.lower(): name for name in
                   ("bandwidth", "latency", "errors", "downloadDuration", "qualityVariantChanges")}
HEALTHY_ABOVE = 75  # healthOverview.go, healthyPercentageMinValue
DETAILS_FROM = 3  # minClientCountForDetails


class PlaybackDecodeError(ValueError):
    pass


def decode_playback(body: str) -> dict[str, float]:
    """json.NewDecoder(r.Body).Decode(&request): the first JSON value of the body, into the request's
    fields (missing and null: 0); anything else is Go's decode error."""
    try:
        value, _ = json.JSONDecoder(parse_constant=_not_json).raw_decode(body.lstrip(" \t\r\n"))
    except json.JSONDecodeError as err:
        raise PlaybackDecodeError(f"invalid character: {err.msg}") from None
    out = dict.fromkeys(PLAYBACK_FIELDS.values(), 0.0)
    if value is None:
        return out
    if not isinstance(value, dict):
        raise PlaybackDecodeError("json: cannot unmarshal into Go value of type reportPlaybackMetricsRequest")
    for key, given in value.items():
        name = PLAYBACK_FIELDS.get(key.lower())
        if name is None or given is None:
            continue
        if isinstance(given, bool) or not isinstance(given, int | float):
            raise PlaybackDecodeError(f"json: cannot unmarshal into Go struct field .{name} of type float64")
        out[name] = float(given)
    return out


def _not_json(name: str) -> float:
    raise PlaybackDecodeError(f"invalid character {name[0]!r} looking for beginning of value")


@dataclass
class PlaybackWindow:
    """Owncast's windowed maps (services/metrics/metrics.go), client id -> the latest value: those the
    health overview reads (latency, download duration and variant changes are only stored there)."""

    errors: dict[str, float] = field(default_factory=dict)
    bandwidths: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamHealth:
    """models.StreamHealthOverview, as generateStreamHealthOverview fills it."""

    healthy: bool
    healthy_percentage: int
    message: str
    representation: int


class OwncastViewers(Served):
    """Owncast's viewer APIs on 127.0.0.1; `viewers` is its active set, `playback` its playback window."""

    def __init__(self, *, purge_timeout: float = 15.0, prune_every: float = 5.0,
                 stream_connected: bool = True, collector: CmcdCollector | None = None) -> None:
        super().__init__()
        r = self.app.router
        r.add_get("/api/ping", self._ping)
        r.add_get("/api/status", self._status)
        r.add_get("/api/config", self._config)
        r.add_route("*", "/api/metrics/playback", self._playback)
        r.add_route("*", "/api/metrics/cmcd", collector.collect if collector is not None else self._no_collector)
        self.cmcd_misses = 0
        self.purge_timeout = purge_timeout
        self.prune_every = prune_every
        self.stream_connected = stream_connected
        self.name = "New Owncast Server"  # its server name and summary, as an admin set them (/api/config)
        self.summary = "This is a new live video streaming server powered by Owncast."
        self.viewers: dict[str, Viewer] = {}
        self.playback = PlaybackWindow()
        self.playback_reports: list[tuple[str, dict[str, float]]] = []  # (User-Agent, report) as they came
        self._pruner: asyncio.Task[None] | None = None

    @property
    def viewer_count(self) -> int:
        return len(self.viewers)

    async def _ping(self, request: web.Request) -> web.Response:
        if self.stream_connected:  # SetViewerActive
            key = client_id(request)
            known = self.viewers.get(key)
            if known is not None:
                known.last_seen = time.monotonic()
            else:
                self.viewers[key] = Viewer(address_of(request), request.headers.get("User-Agent", ""),
                                           time.monotonic())
        return web.Response(status=200)

    async def _playback(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return _simple(False, f"{request.method} not supported")
        try:
            report = decode_playback((await request.read()).decode("utf-8", "replace"))
        except PlaybackDecodeError as err:
            return _simple(False, str(err))
        self.playback_reports.append((request.headers.get("User-Agent", ""), report))
        client = client_id(request)
        self.playback.errors[client] = report["errors"]
        if report["bandwidth"] != 0.0:
            self.playback.bandwidths[client] = report["bandwidth"]
        return web.Response(status=200)

    def stream_health(self) -> StreamHealth | None:
        """generateStreamHealthOverview over the window as it is (None where Owncast shows none)."""
        total_players = self.viewer_count
        errors = self.playback.errors
        if total_players == 0 or not errors:
            return None
        with_errors = sum(1 for count in errors.values() if count > 0)
        pct = 100 - _int_percentage(with_errors, len(errors))
        if pct < 1:
            return None
        message = ""
        reporting = len(self.playback.bandwidths)
        if reporting and with_errors and reporting >= DETAILS_FROM:
            message = (f"{with_errors} of {reporting} viewers ({_int_percentage(with_errors, reporting)}%) "
                       "may be experiencing some issues.")
        representation = _int_percentage(reporting, total_players) if reporting else 0
        return StreamHealth(pct > HEALTHY_ABOVE, pct, message, representation)

    def poll(self) -> StreamHealth | None:
        """handlePlaybackPolling: the overview from the window, then the window emptied."""
        overview = self.stream_health() if self.stream_connected else None
        self.playback = PlaybackWindow()
        return overview

    async def _no_collector(self, _request: web.Request) -> web.Response:
        self.cmcd_misses += 1
        return web.Response(status=404, text="404 page not found\n", headers={"Access-Control-Allow-Origin": "*"})

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response({"online": self.stream_connected, "viewerCount": self.viewer_count})

    async def _config(self, _request: web.Request) -> web.Response:
        body = {"name": self.name, "summary": self.summary, "offlineMessage": "", "logo": "/logo",
                "version": "Owncast v0.2.3-stand-in", "tags": [], "nsfw": False}
        return web.json_response(body, headers={"Access-Control-Allow-Origin": "*",
                                                "Cache-Control": "no-cache, no-store, must-revalidate"})

    def prune(self) -> None:
        """pruneViewerCount."""
        now = time.monotonic()
        self.viewers = {k: v for k, v in self.viewers.items() if now - v.last_seen < self.purge_timeout}

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(self.prune_every)
            self.prune()

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self._pruner = asyncio.create_task(self._prune_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await super().__aexit__()


def _simple(success: bool, message: str) -> web.Response:
    """responses.WriteSimpleResponse."""
    return web.json_response({"success": success, "message": message}, status=200 if success else 400)


def _int_percentage(x: int, total: int) -> int:
    """utils.IntPercentage."""
    return int(x / total * 100)
