"""A stand-in for Owncast 0.2's CMCD collector, as Owncast's source does it (owncast#5031, owncast#5094):

- ReportCmcd (cmcdCollector.go): CORS for any origin on every answer; `OPTIONS` 204; the body bounded at
  64 KiB; then the first JSON value of a POST's body, whatever its Content-Type: an object (with the
  query's and headers' CMCD keys merged in) or an array of reports (non-objects skipped; the query's and
  headers' keys one more report); an empty body: those keys alone. A body that does not decode: 400 with
  Go's message; no report with keys: 400 "no CMCD report found in request"; else 200, empty.
- `?CMCD=` and the four `CMCD-*` headers in dictionary syntax (parseCMCDPayload: `k=v` split on commas
  outside quotes; a quoted value a string, a number a float, a bare token a string, a key alone true).
- registerCMCDKeys: a report counts under its `sid` (else the viewer's id, as owncast_viewers.client_id):
  `sta` its state, `mtp` > 0 its bandwidth, `ltc` > 0 its latency (ms -> s), `br` > 0 its bitrate (a
  change is a variant switch), one error each for `bs` true and `e` == "e". Values of another type than
  Go asserts are ignored.
- A playback client silent for 60 s is gone; `viewers()` groups the clients by viewer (address +
  User-Agent), as the admin's per-viewer view."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.owncast_viewers import address_of, client_id

MAX_BODY = 64 * 1024  # cmcdCollector.go, http.MaxBytesReader
CMCD_HEADERS = ("CMCD-Request", "CMCD-Object", "CMCD-Status", "CMCD-Session")
STALE_AFTER = 60.0  # playbackClients.go, playbackClientStaleTimeout
CORS = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT = {**CORS, "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
             "Access-Control-Allow-Headers": "Content-Type, CMCD-Request, CMCD-Object, CMCD-Status, CMCD-Session"}


@dataclass
class PlaybackClient:
    """ClientPlaybackState: one playback client's latest values (0: never measured)."""

    client_id: str
    viewer_id: str
    address: str
    user_agent: str
    bandwidth_kbps: float = 0.0
    latency_seconds: float = 0.0
    bitrate_kbps: float = 0.0
    error_count: float = 0.0
    quality_variant_changes: float = 0.0
    player_state: str = ""
    reports: int = 0
    last_update: float = field(default_factory=time.monotonic)


def parse_payload(payload: str, keys: dict[str, object]) -> None:
    """parseCMCDPayload."""
    for raw in _split_outside_quotes(payload, ","):
        item = raw.strip()
        if not item:
            continue
        at = _index_outside_quotes(item, "=")
        if at == -1:
            keys[item] = True
            continue
        key, value = item[:at].strip(), item[at + 1:].strip()
        if not key:
            continue
        if value.startswith('"'):
            keys[key] = _unquote(value)
        else:
            try:
                keys[key] = float(value)
            except ValueError:
                keys[key] = value


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, start, quoted, i = [], 0, False, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and quoted:
            i += 1
        elif c == '"':
            quoted = not quoted
        elif c == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    return [*parts, text[start:]]


def _index_outside_quotes(text: str, sep: str) -> int:
    first, *rest = _split_outside_quotes(text, sep)
    return len(first) if rest else -1


def _unquote(value: str) -> str:
    value = value.removeprefix('"').removesuffix('"')
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            i += 1
        out.append(value[i])
        i += 1
    return "".join(out)


def request_keys(request: web.BaseRequest) -> dict[str, object] | None:
    """parseCMCDRequest: the query parameter's and the headers' keys, None without any."""
    keys: dict[str, object] = {}
    if payload := request.query.get("CMCD", ""):
        parse_payload(payload, keys)
    for name in CMCD_HEADERS:
        if payload := request.headers.get(name, ""):
            parse_payload(payload, keys)
    return keys or None


class CmcdRefused(ValueError):
    pass


def parse_reports(method: str, body: bytes, from_request: dict[str, object] | None) -> list[dict[str, object]]:
    """parseCmcdReports over a body already read (at most MAX_BODY + 1 bytes)."""
    if method != "POST":
        return [from_request] if from_request else []
    text = body[:MAX_BODY].decode("utf-8", "replace").lstrip(" \t\r\n")
    if not text:
        if len(body) > MAX_BODY:
            raise CmcdRefused("http: request body too large")
        return [from_request] if from_request else []
    try:
        value, _end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as err:
        raise CmcdRefused("http: request body too large" if len(body) > MAX_BODY
                          else f"invalid character: {err.msg}") from None
    if isinstance(value, list):
        reports = [entry for entry in value if isinstance(entry, dict)]
        return [*reports, from_request] if from_request else reports
    if isinstance(value, dict):
        return [value | (from_request or {})]
    return []


def _number(keys: dict[str, object], key: str) -> float:
    """cmcdNumber: a float64 (JSON number), else 0 (Go's failed assertion)."""
    value = keys.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


class CmcdCollector:
    """POST/GET/OPTIONS /api/metrics/cmcd; `clients` its playback clients by client id."""

    def __init__(self) -> None:
        self.clients: dict[str, PlaybackClient] = {}
        self.refused: list[str] = []  # the 400s' messages

    async def collect(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=PREFLIGHT)
        body = await request.content.read(MAX_BODY + 1)
        try:
            reports = parse_reports(request.method, body, request_keys(request))
        except CmcdRefused as err:
            return self._refuse(str(err))
        registered = False
        for keys in reports:
            if keys:
                self._register(request, keys)
                registered = True
        if not registered:
            return self._refuse("no CMCD report found in request")
        return web.Response(status=200, headers=CORS)

    def _refuse(self, message: str) -> web.Response:
        self.refused.append(message)
        return web.json_response({"success": False, "message": message}, status=400, headers=CORS)

    def _register(self, request: web.BaseRequest, keys: dict[str, object]) -> None:
        """registerCMCDKeys, then RegisterPlaybackReport's update of the client's state."""
        viewer = client_id(request)
        sid = keys.get("sid")
        key = sid if isinstance(sid, str) and sid else viewer
        now = time.monotonic()
        client = self.clients.get(key)
        if client is None or now - client.last_update >= STALE_AFTER:
            client = PlaybackClient(key, viewer, address_of(request), request.headers.get("User-Agent", ""))
            self.clients[key] = client
        client.viewer_id, client.last_update = viewer, now
        client.address, client.user_agent = address_of(request), request.headers.get("User-Agent", "")
        client.reports += 1
        if isinstance(state := keys.get("sta"), str) and state:
            client.player_state = state
        if (mtp := _number(keys, "mtp")) > 0:
            client.bandwidth_kbps = mtp
        if (ltc := _number(keys, "ltc")) > 0:
            client.latency_seconds = ltc / 1000
        if (br := _number(keys, "br")) > 0:
            if client.bitrate_kbps and client.bitrate_kbps != br:
                client.quality_variant_changes += 1
            client.bitrate_kbps = br
        client.error_count += (keys.get("bs") is True) + (keys.get("e") == "e")

    def viewers(self) -> dict[tuple[str, str], list[PlaybackClient]]:
        """The live clients by viewer: (address, User-Agent) -> its clients."""
        now = time.monotonic()
        out: dict[tuple[str, str], list[PlaybackClient]] = {}
        for client in self.clients.values():
            if now - client.last_update < STALE_AFTER:
                out.setdefault((client.address, client.user_agent), []).append(client)
        return out
