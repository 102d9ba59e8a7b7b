"""The gap players' rig (tests/test_gap_players.py): the three live playlists of a stream with a lost
segment, rendered in manifest.py's format, and the server that plays them to each client on its own
clock.

  A  baseline: all segments.
  B  what the service renders: segment LOST left out, `#EXT-X-DISCONTINUITY` before the next one.
  C  segment LOST kept as an entry, `#EXT-X-GAP` before its URI, which answers 404.

Each client has its own clock from its first playlist request: FIRST_LISTED segments are listed at
once, one more each second, a window of WINDOW, and ENDLIST with the last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

VIEWER = Path(__file__).resolve().parent.parent.parent / "viewer"
LOST = 5  # the segment Owncast deleted before it was uploaded
FIRST_LISTED = 3  # listed at a client's first request; then one more per second
WINDOW = 6  # segments in the sliding playlist (>= 3 target durations)
EPOCH = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
SCENARIOS = ("A", "B", "C")


def segment_name(i: int) -> str:
    return f"seg{i:03d}.ts"


# -- playlists -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    source: int  # index of the segment in the source stream
    duration: float
    discontinuity: bool = False
    gap: bool = False


def entries(scenario: str, durations: list[float]) -> list[Entry]:
    out: list[Entry] = []
    for i, d in enumerate(durations):
        if i == LOST and scenario == "B":
            continue
        disc, gap = scenario == "B" and i == LOST + 1, scenario == "C" and i == LOST
        out.append(Entry(i, d, discontinuity=disc, gap=gap))
    return out


def render(scenario: str, durations: list[float], published: int) -> str:
    """The playlist once source segments [0, published) exist: manifest.py's format, sliding."""
    starts = [sum(durations[:i]) for i in range(len(durations))]
    listed = [e for e in entries(scenario, durations) if e.source < published]
    first = max(0, len(listed) - WINDOW)
    removed, window = listed[:first], listed[first:]
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{8 if scenario == 'C' else 3}",
        "#EXT-X-TARGETDURATION:1",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{sum(e.discontinuity for e in removed)}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for e in window:
        if e.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        pdt = datetime.fromtimestamp(EPOCH + starts[e.source], tz=UTC).isoformat(timespec="milliseconds")
        lines.append("#EXT-X-PROGRAM-DATE-TIME:" + pdt.replace("+00:00", "Z"))
        lines.append(f"#EXTINF:{e.duration:.3f},")
        if e.gap:
            lines.append("#EXT-X-GAP")
        lines.append(segment_name(e.source))
    if published >= len(durations):
        lines.append("#EXT-X-ENDLIST")
    lines.append("")
    return "\n".join(lines)


# -- the server ------------------------------------------------------------------------------------

PLAYER_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>gap test</title></head>
<body><video id="v" muted playsinline></video>
<script src="/hls.min.js"></script>
<script src="/gap-player.js"></script>
</body></html>
"""

# Records what the test asks about on window.gapLog; `done` when the video ended, a fatal error came,
# or playback has not moved for STUCK_MS since it started. A stall is playback standing still for more
# than 250 ms after the first 'playing' event (`at` is where it stood).
PLAYER_JS = """
(() => {
  const STUCK_MS = 6000;
  const src = new URLSearchParams(location.search).get('src');
  const video = document.getElementById('v');
  const log = window.gapLog = {
    version: Hls.version, frags: [], errors: [], waiting: [], stalls: [], media: [],
    ended: false, fatal: false, stuck: false, done: false, started: false, playError: null, mediaError: null,
  };
  const now = () => performance.now();
  let lastTime = -1, lastMove = now();
  const hls = new Hls({ liveDurationInfinity: true, backBufferLength: 30 });  // as viewer/player.js
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    video.play().catch((err) => { log.playError = String(err); });
  });
  hls.on(Hls.Events.FRAG_LOADED, (event, data) => {
    log.frags.push({ sn: data.frag.sn, url: data.frag.url, gap: !!data.frag.gap, cc: data.frag.cc });
  });
  hls.on(Hls.Events.ERROR, (event, data) => {
    log.errors.push({
      type: data.type, details: data.details, fatal: !!data.fatal, t: video.currentTime,
      sn: data.frag ? data.frag.sn : null, url: data.frag ? data.frag.url : (data.url || null),
      code: data.response ? data.response.code : null,
    });
    if (data.fatal) { log.fatal = true; log.done = true; }
  });
  video.addEventListener('playing', () => {
    log.started = true;
    log.media.push(['playing', video.currentTime, Math.round(now())]);
  });
  video.addEventListener('waiting', () => {
    log.waiting.push(video.currentTime);
    log.media.push(['waiting', video.currentTime, Math.round(now())]);
  });
  video.addEventListener('seeking', () => log.media.push(['seeking', video.currentTime, Math.round(now())]));
  video.addEventListener('ended', () => { log.ended = true; log.done = true; });
  video.addEventListener('error', () => {
    log.mediaError = video.error ? (video.error.message || String(video.error.code)) : '?';
    log.done = true;
  });
  setInterval(() => {
    const t = video.currentTime;
    if (t !== lastTime) {
      const still = now() - lastMove;
      if (log.started && lastTime >= 0 && still > 250) {
        log.stalls.push({ at: lastTime, ms: Math.round(still) });
      }
      lastTime = t;
      lastMove = now();
    } else if (log.started && !video.ended && now() - lastMove > STUCK_MS) {
      log.stuck = true;
      log.done = true;
    }
  }, 50);
  hls.attachMedia(video);
  hls.loadSource(src);
})();
"""


@dataclass
class GapServer:
    segments: dict[str, bytes]
    durations: list[float]
    requests: list[tuple[str, str, str, int]] = field(default_factory=list)  # scenario, client, name, status
    clocks: dict[tuple[str, str], float] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/player.html", self.page)
        app.router.add_get("/gap-player.js", self.script)
        app.router.add_get("/hls.min.js", self.hlsjs)
        app.router.add_get("/p/{scenario}/{client}/index.m3u8", self.playlist)
        app.router.add_get("/p/{scenario}/{client}/{name}", self.segment)
        return app

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=PLAYER_HTML, content_type="text/html")

    async def script(self, request: web.Request) -> web.Response:
        return web.Response(text=PLAYER_JS, content_type="text/javascript")

    async def hlsjs(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(VIEWER / "hls.min.js")

    async def playlist(self, request: web.Request) -> web.Response:
        scenario, client = request.match_info["scenario"], request.match_info["client"]
        if scenario not in SCENARIOS:
            raise web.HTTPNotFound()
        started = self.clocks.setdefault((scenario, client), time.monotonic())
        published = min(len(self.durations), FIRST_LISTED + int(time.monotonic() - started))
        return web.Response(text=render(scenario, self.durations, published),
                            content_type="application/vnd.apple.mpegurl",
                            headers={"Cache-Control": "no-cache"})

    async def segment(self, request: web.Request) -> web.Response:
        scenario, client, name = (request.match_info[k] for k in ("scenario", "client", "name"))
        lost = scenario != "A" and name == segment_name(LOST)
        status = 404 if lost or name not in self.segments else 200
        self.requests.append((scenario, client, name, status))
        if status == 404:
            raise web.HTTPNotFound()
        return web.Response(body=self.segments[name], content_type="video/mp2t")

    def asked(self, scenario: str, client: str) -> list[tuple[str, int]]:
        return [(n, s) for sc, c, n, s in self.requests if sc == scenario and c == client]
