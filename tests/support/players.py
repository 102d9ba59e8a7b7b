"""Players playing what the service made (tests/test_players_across_change.py): each client replays the
versions one publisher run made (publish_scenario.Made) through the service's own PlaylistRoutes on its
own clock, from its first request; the pages of hls.js (the viewer's options), video.js (Owncast's) and
Shaka (defaults) record on window.probe what the picture shows (its barcode), their errors, stalls and
switches; ffmpeg reads the same playlists. Played is what one player did.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.http.playlists import PlaylistRoutes
from broadcaster.playlist import hls
from broadcaster.playlist.rendered import Rendered
from tests.support.browser import POLL_MS
from tests.support.publish_scenario import Made, Scenario, Version

SUPPORT = Path(__file__).resolve().parent
VIEWER = SUPPORT.parent.parent / "viewer"
VIDEOJS = SUPPORT / "videojs"
SHAKA = SUPPORT / "shaka"
SHAKA5 = SUPPORT / "shaka5"
PLAYER_TIMEOUT = 75.0  # a stuck player is caught by the page's own watchdog long before this


# -- serving: the service's own playlist routes, each client on its own clock ------------------------


class Replay:
    """The PlaylistSource of one client: the versions its publisher run made, shown on the client's own
    clock, which starts at its first request at the scenario's `join` moment."""

    def __init__(self, versions: list[Version], join: float, rate: float = 1.0) -> None:
        """`rate`: the client's clock against the wall's (below 1: each version shown longer)."""
        self.versions = versions
        self._times = [v.at for v in versions]
        self.join = join
        self.rate = rate
        self._started: float | None = None
        self.held_requests = 0  # not counted: one client each, never near the cap

    def clock(self) -> float:
        if self._started is None:
            self._started = time.monotonic()
        return self.join + (time.monotonic() - self._started) * self.rate

    def current(self) -> Version:
        return self.versions[max(0, bisect.bisect_right(self._times, self.clock()) - 1)]

    @property
    def target_duration(self) -> int | None:
        return self.current().target

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
        return self.current().master

    def media_playlist(self, variant: int) -> Rendered | None:
        return self.current().media.get(variant)

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
        """As VisiblePlaylists.wait_for_sequence: the version listing `sequence`, once this client's
        clock reaches it, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            rendered = self.media_playlist(variant)
            if rendered is not None and (rendered.last_sequence >= sequence or rendered.ended):
                return rendered
            i = bisect.bisect_right(self._times, self.clock())
            left = deadline - time.monotonic()
            if i >= len(self._times) or left <= 0:
                return None
            await asyncio.sleep(min((self._times[i] - self.clock()) / self.rate, left) + 0.001)


@dataclass
class Request:
    at: float  # on the client's clock: seconds from the scenario's start
    path: str
    status: int


class SwitchRace:
    """One client's playlist answers in the order a slow link or a busy machine sometimes gives them at a
    switch between variants: the reload of the variant it plays that is pending when it switches is
    answered while the other variant's first playlist is on its way, and that playlist LATENCY later.
    To have a reload pending then, the first variant's blocking reloads are held until the switch (at
    most HOLD, three target durations of "apart", the longest a server may hold one). Shaka 4.16.50
    loses the new variant's segments in this order (test_players_across_change, SHAKA_APART)."""

    HOLD = 9.0
    LATENCY = 0.3

    def __init__(self) -> None:
        self.first: int | None = None  # the variant whose playlist was asked for first
        self.switched = asyncio.Event()  # a first playlist of another variant was asked for
        self.answered = asyncio.Event()  # the held reload has its answer
        self.held = 0  # reloads answered at the switch (1 when the race happened)

    async def answer(self, request: web.Request,
                     respond: Callable[[], Awaitable[web.Response]]) -> web.Response:
        variant, blocking = int(request.match_info["n"]), "_HLS_msn" in request.query
        if self.first is None and not blocking:
            self.first = variant
        elif variant == self.first and blocking and not self.switched.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.switched.wait(), self.HOLD)
            try:
                return await respond()
            finally:
                self.held += self.switched.is_set()
                self.answered.set()
        elif variant != self.first and not blocking and not self.switched.is_set():
            self.switched.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.answered.wait(), self.HOLD)
            await asyncio.sleep(self.LATENCY)  # the link's latency, not a wait for a condition
        return await respond()


@dataclass
class Client:
    """One player in one scenario: its own publisher run (segment URLs pointing at its own path), its
    clock and its requests; `race` orders its answers at a switch (SwitchRace)."""

    scenario: Scenario
    player: str
    made: Made
    replay: Replay
    routes: PlaylistRoutes
    requests: list[Request] = field(default_factory=list)
    race: SwitchRace | None = None


# Records on window.probe: errors (fatal or not), media events, stalls (playback standing still for more
# than 250 ms once started, with the position shown), a sample every 250 ms of [ms, currentTime,
# position, picture height, seconds played], the switches it was made to do, and `done` once the video
# ended, a fatal error came, or playback has not moved for STUCK_MS. A position is the moment (seconds
# from the scenario's start) the picture shows, read from its barcode. STUCK_MS is 20 s: in full runs of the
# suite (seven other Chromium pages beside these four on two cores) Shaka stood still 10 s and went on.
PROBE_JS = """
(() => {
  const STUCK_MS = 20000;
  const params = new URLSearchParams(location.search);
  const switchAt = (params.get('switch') || '').split(',').filter(Boolean).map(Number);
  const heights = (params.get('heights') || '').split(',').filter(Boolean).map(Number);
  const video = document.getElementById('v');
  const log = window.probe = {
    player: null, version: null, errors: [], notes: [], media: [], samples: [], stalls: [], switches: [],
    ended: false, fatal: false, stuck: false, done: false, started: false, playError: null, mediaError: null,
    loads: 0,
  };
  const now = () => Math.round(performance.now());
  let adapter = null, lastTime = -1, lastMove = performance.now(), lastSample = 0, played = 0, next = 0;
  let showing = -1;  // the variant whose picture was last seen (by its height)
  let position = null;
  // The moment the picture shows, from its barcode (tests: barcode()): BITS boxes across the top sixth.
  const BITS = 10, canvas = document.createElement('canvas');
  canvas.width = 160; canvas.height = 90;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const shown = () => {
    if (!video.videoWidth || video.readyState < 2) return null;
    ctx.drawImage(video, 0, 0, 160, 90);
    const row = ctx.getImageData(0, 7, 160, 1).data;
    let tenths = 0;
    for (let i = 0; i < BITS; i++) if (row[Math.floor((i + 0.5) * 160 / BITS) * 4] > 128) tenths |= 1 << i;
    return tenths / 10;
  };
  window.probeAttach = (a) => { adapter = a; log.player = a.name; log.version = a.version; };
  window.probeError = (e) => {
    e.t = video.currentTime; e.ms = now(); e.position = position;
    log.errors.push(e);
    if (e.fatal) { log.fatal = true; log.done = true; }
  };
  window.probeNote = (n) => log.notes.push([now(), video.currentTime, n]);
  window.probePlay = () => video.play().catch((err) => { log.playError = String(err); });
  for (const kind of ['playing', 'waiting', 'seeking']) {
    video.addEventListener(kind, () => {
      if (kind === 'playing') log.started = true;
      log.media.push([kind, video.currentTime, now(), position]);
    });
  }
  video.addEventListener('ended', () => { log.ended = true; log.done = true; });
  video.addEventListener('error', () => {
    log.mediaError = video.error ? (video.error.message || String(video.error.code)) : '?';
    log.done = true;
  });
  setInterval(() => {
    const t = video.currentTime, ms = performance.now();
    if (t !== lastTime) {
      const still = ms - lastMove;
      if (log.started && lastTime >= 0 && still > 250) {
        log.stalls.push({ at: lastTime, ms: Math.round(still), position });
      }
      if (log.started && lastTime >= 0 && t > lastTime && t - lastTime < 1) played += t - lastTime;
      lastTime = t;
      lastMove = ms;
    } else if (log.started && !video.ended && ms - lastMove > STUCK_MS) {
      log.stuck = true;
      log.done = true;
    }
    if (adapter && ms - lastSample >= 250) {
      lastSample = ms;
      try { position = shown(); } catch (err) { position = null; }
      log.samples.push([now(), t, position, video.videoHeight, Math.round(played * 1000) / 1000]);
      if (heights.includes(video.videoHeight)) showing = heights.indexOf(video.videoHeight);
    }
    if (adapter && next < switchAt.length && played >= switchAt[next]) {
      const to = showing === 0 ? 1 : 0;
      next += 1;
      log.switches.push({ ms: now(), t, played, to, position });
      try {
        adapter.switchTo(to, heights[to]);
      } catch (err) {
        log.switches[log.switches.length - 1].error = String(err);
      }
    }
  }, 50);
})();
"""

# hls.js as the viewer runs it (viewer/player.js: the same options; a quality is chosen with nextLevel, as
# viewer/controls.js does).
HLSJS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>hls.js</title></head>
<body><video id="v" muted playsinline></video>
<script src="/js/hls.min.js"></script>
<script src="/js/probe.js"></script>
<script>
(() => {
  const src = new URLSearchParams(location.search).get('src');
  const video = document.getElementById('v');
  const hls = window.hls = new Hls({ liveDurationInfinity: true, backBufferLength: 30 });
  const variantOf = (url) => Number((/\\/live\\/(\\d+)\\//.exec(url) || [0, -1])[1]);
  probeAttach({
    name: 'hls.js', version: Hls.version,
    switchTo: (to) => { hls.nextLevel = hls.levels.findIndex((l) => variantOf(l.url) === to); },
  });
  hls.on(Hls.Events.MANIFEST_LOADING, () => { probe.loads += 1; });
  hls.on(Hls.Events.MANIFEST_PARSED, () => probePlay());
  hls.on(Hls.Events.LEVEL_SWITCHED, (e, data) => probeNote('level ' + variantOf(hls.levels[data.level].url)));
  hls.on(Hls.Events.ERROR, (e, data) => probeError({
    fatal: !!data.fatal, details: data.details, sn: data.frag ? data.frag.sn : null,
  }));
  hls.attachMedia(video);
  hls.loadSource(src);
})();
</script>
</body></html>
"""

# video.js with its VHS, configured as Owncast's own player (tests/support/owncast_web.py). A quality
# is forced by enabling only its representation (VHS's quality API).
VIDEOJS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>video.js</title>
<link rel="stylesheet" href="/videojs/video-js.min.css">
<script src="/videojs/video.min.js"></script></head>
<body><video id="v" class="video-js" playsinline muted preload="auto"></video>
<script src="/js/probe.js"></script>
<script>
(() => {
  const src = new URLSearchParams(location.search).get('src');
  const variantOf = (url) => Number((/\\/live\\/(\\d+)\\//.exec(url || '') || [0, -1])[1]);
  const player = window.player = videojs('v', {
    autoplay: 'muted', controls: true, playsinline: true, liveui: true, preload: 'auto',
    html5: { vhs: { overrideNative: !videojs.browser.IS_SAFARI, enableLowInitialPlaylist: true,
                    experimentalBufferBasedABR: true, useNetworkInformationApi: true,
                    maxPlaylistRetries: 30 } },
    liveTracker: { trackingThreshold: 0, liveTolerance: 15 },
  });
  const vhs = () => player.tech(true).vhs;
  probeAttach({
    name: 'video.js', version: videojs.VERSION,
    switchTo: (to) => {
      vhs().representations().forEach((r) => {
        r.enabled(variantOf(r.playlist && r.playlist.resolvedUri) === to);
      });
    },
  });
  player.on('error', () => probeError({ fatal: true, details: JSON.stringify(player.error()) }));
  player.on('loadstart', () => { probe.loads += 1; });
  player.ready(() => {
    const tech = player.tech(true);
    // VHS reports trouble as usage events (a rendition disabled by the test's own switch is not one).
    tech.on('usage', (e) => {
      if (/exclu|error|retry|reload|timeout|stuck|gap/i.test(e.name)) {
        probeError({ fatal: false, details: e.name });
      }
    });
    tech.on('retryplaylist', () => probeError({ fatal: false, details: 'retryplaylist' }));
    tech.on('mediachange', () => probeNote('media ' + variantOf(vhs().playlists.media().resolvedUri)));
  });
  player.src({ src, type: 'application/x-mpegURL' });
})();
</script>
</body></html>
"""

# Shaka Player with its defaults. A quality is forced with selectVariantTrack (ABR off), clearing the
# buffer so the switch shows within a segment, as hls.js's nextLevel and VHS's representations do.
SHAKA_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shaka</title></head>
<body><video id="v" muted playsinline></video>
<script src="/shaka/shaka-player.compiled.js"></script>
<script src="/js/probe.js"></script>
<script>
(async () => {
  const src = new URLSearchParams(location.search).get('src');
  const video = document.getElementById('v');
  shaka.polyfill.installAll();
  const player = window.player = new shaka.Player();
  probeAttach({
    name: 'shaka', version: shaka.Player.version,
    switchTo: (to, height) => {
      player.configure({ abr: { enabled: false } });
      player.selectVariantTrack(player.getVariantTracks().find((t) => t.height === height), true);
    },
  });
  // Fatal is the severity Shaka leaves on the error, read a task later: its streaming engine dispatches
  // the event first and then calls streaming.failureCallback, whose default for a live stream turns a
  // segment's HTTP error (1001, 1002) or timeout (1003) RECOVERABLE and retries streaming itself a
  // second later (shaka-player.compiled.js 4.16: `a.g.onError(c);c.handled||a.i.failureCallback(c)`).
  player.addEventListener('error', (e) => {
    const err = e.detail;
    const seen = err.severity;
    setTimeout(() => probeError({
      fatal: err.severity === shaka.util.Error.Severity.CRITICAL,
      details: 'code ' + err.code + (err.data && err.data.length ? ' ' + String(err.data[0]).slice(0, 120) + ' ' + String(err.data[1]) : '')
        + (seen !== err.severity ? ' (made recoverable by Shaka, retried)' : ''),
    }), 0);
  });
  player.addEventListener('variantchanged', () => {
    const t = player.getVariantTracks().find((x) => x.active);
    probeNote('variant ' + (t ? t.height : '?'));
  });
  await player.attach(video);
  probe.loads += 1;
  try {
    await player.load(src);
  } catch (err) {
    probeError({ fatal: true, details: 'load: ' + (err && err.code) });
    return;
  }
  probePlay();
})();
</script>
</body></html>
"""

# hls.js without content steering (its controller left out, as in a build without it, or any player that
# does not know EXT-X-CONTENT-STEERING): each pathway's variants are redundant streams to it (HLS 6.3.4).
HLSJS_NO_STEERING_PAGE = HLSJS_PAGE.replace(
    "new Hls({ liveDurationInfinity: true, backBufferLength: 30 })",
    "new Hls({ liveDurationInfinity: true, backBufferLength: 30, contentSteeringController: null })")
assert HLSJS_NO_STEERING_PAGE != HLSJS_PAGE

PAGES = {"hlsjs": HLSJS_PAGE, "videojs": VIDEOJS_PAGE, "shaka": SHAKA_PAGE, "hlsjs_no_steering": HLSJS_NO_STEERING_PAGE}


def player_pages(pages: Mapping[str, str]) -> web.Application:
    """An app serving `pages` by name at /page/{player} (each loads the stream from `?src=`), PROBE_JS,
    and the players' scripts: the viewer's folder (hls.js) under /js/, Shaka 4.16 and 5.2, video.js."""
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=pages[request.match_info["player"]], content_type="text/html")

    async def probe(_request: web.Request) -> web.Response:
        return web.Response(text=PROBE_JS, content_type="text/javascript")

    app.router.add_get("/page/{player}", page)
    app.router.add_get("/js/probe.js", probe)
    app.router.add_static("/js/", VIEWER)
    app.router.add_static("/shaka/", SHAKA)
    app.router.add_static("/shaka5/", SHAKA5)
    app.router.add_static("/videojs/", VIDEOJS)
    return app


class Server:
    """Pages and players, and per (scenario, player): the service's playlist routes over that client's
    Replay, and the segments its publisher run uploaded (what the bucket would hold)."""

    def __init__(self) -> None:
        self.clients: dict[tuple[str, str], Client] = {}

    def app(self) -> web.Application:
        app = player_pages(PAGES)
        r = app.router
        r.add_get("/favicon.ico", self.no_icon)
        r.add_get("/p/{scenario}/{player}/live/master.m3u8", self.master)
        r.add_get(r"/p/{scenario}/{player}/live/{n:\d+}/playlist.m3u8", self.media)
        r.add_get("/s/{scenario}/{player}/{key:.+}", self.segment)
        return app

    @staticmethod
    async def no_icon(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    def client(self, request: web.Request) -> Client:
        client = self.clients.get((request.match_info["scenario"], request.match_info["player"]))
        if client is None:
            raise web.HTTPNotFound()
        return client

    async def _recorded(self, request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.Response]]) -> web.Response:
        client = self.client(request)
        at = client.replay.clock()
        response = await handler(request)
        client.requests.append(Request(round(at, 3), request.path_qs, response.status))
        return response

    async def master(self, request: web.Request) -> web.Response:
        return await self._recorded(request, self.client(request).routes.master)

    async def media(self, request: web.Request) -> web.Response:
        client = self.client(request)
        if client.race is not None:
            return await client.race.answer(request, lambda: self._recorded(request, client.routes.media))
        return await self._recorded(request, client.routes.media)

    async def segment(self, request: web.Request) -> web.Response:
        client = self.client(request)
        body = client.made.bucket.get(request.match_info["key"])
        status = 404 if body is None else 200
        client.requests.append(Request(round(client.replay.clock(), 3), request.path, status))
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="video/mp2t")


# -- the players --------------------------------------------------------------------------------------


@dataclass
class Played:
    """What one player did in one scenario."""

    scenario: Scenario
    player: str
    client: Client
    log: dict[str, Any] = field(default_factory=dict)  # window.probe (browsers)
    console: list[str] = field(default_factory=list)  # browser console warnings and errors, page errors
    navigations: int = 0  # page loads: 1 means the page never reloaded
    exit_code: int | None = None  # ffmpeg
    ffmpeg_log: list[str] = field(default_factory=list)
    frames: int = 0

    @staticmethod
    def position(sample: Any) -> float | None:
        return None if sample is None else float(sample)

    def positions(self) -> list[tuple[float, float, int]]:
        """(seconds played, position, picture height) for every sample whose position is known."""
        return [(s[4], s[2], s[3]) for s in self.log.get("samples", []) if s[2] is not None]

    def reached(self) -> float | None:
        """How far past the scenario's start the playhead got (seconds)."""
        return max((at for _, at, _ in self.positions()), default=None)

    def jumps(self) -> list[tuple[float, float]]:
        """Where the picture moved more than a second away from the seconds played between two
        samples: (from, to)."""
        out, samples = [], self.log.get("samples", [])
        for (_, _, a0, _, p0), (_, _, a1, _, p1) in zip(samples, samples[1:]):
            if a0 is not None and a1 is not None and abs((a1 - a0) - (p1 - p0)) > 1.0:
                out.append((a0, a1))
        return out

    def heights(self) -> list[tuple[float, int]]:
        """(position, picture height) each time the height changed."""
        out: list[tuple[float, int]] = []
        for _, at, height in self.positions():
            if height and (not out or out[-1][1] != height):
                out.append((at, height))
        return out

    def stalls(self) -> list[tuple[float | None, int]]:
        """(position, ms) of every stall after the start."""
        return [(self.position(s.get("position")), s["ms"]) for s in self.log.get("stalls", [])]

    def stalls_near_change(self) -> list[tuple[float | None, int]]:
        c = self.scenario.change
        return [(at, ms) for at, ms in self.stalls() if at is not None and c - 1.5 <= at <= c + 2]

    @property
    def fatal(self) -> list[str]:
        return [str(e.get("details")) for e in self.log.get("errors", []) if e.get("fatal")]

    @property
    def nonfatal(self) -> list[str]:
        return [str(e.get("details")) for e in self.log.get("errors", []) if not e.get("fatal")]

    def missing(self) -> list[str]:
        return [r.path for r in self.client.requests if r.status == 404]

    def masters(self) -> int:
        return sum(1 for r in self.client.requests if r.path.endswith("master.m3u8"))

    def playlist_answers(self) -> dict[int, int]:
        """How many playlist requests got each status: each request is one round trip (a 302 is two)."""
        statuses = [r.status for r in self.client.requests if ".m3u8" in r.path]
        return {status: statuses.count(status) for status in sorted(set(statuses))}

    def redirects(self) -> list[tuple[str, str]]:
        """Each playlist request answered 302, and why (a failed test says): "behind" (a number more than
        hls.MSN_BEHIND_LIMIT behind the newest when it was asked: a client late for its reload, past its
        budget of such answers, broadcaster/http/late.py), "repeated" (_HLS_msn given twice: Shaka 4.16 keeps the URL a redirect took it to as
        the playlist's own and adds its next number after the one there, so every reload after its first
        redirect is one more), or "other"."""
        out = []
        for r in self.client.requests:
            if ".m3u8" not in r.path or r.status != 302:
                continue
            asked = [int(n) for n in re.findall(r"[?&]_HLS_msn=(\d+)", r.path)]
            variant = re.search(r"/live/(\d+)/", r.path)
            version = self.client.replay.versions[
                max(0, bisect.bisect_right([v.at for v in self.client.replay.versions], r.at) - 1)]
            shown = version.media.get(int(variant.group(1))) if variant else None
            if len(asked) > 1:
                why = "repeated"
            elif asked and shown is not None and asked[0] < shown.last_sequence - hls.MSN_BEHIND_LIMIT:
                why = "behind"
            else:
                why = "other"
            out.append((r.path.rsplit("/", 1)[-1], why))
        return out

    def segments_after_change(self) -> list[str]:
        """The segments asked for that start at or after the change."""
        cuts = self.scenario.by_key()
        out = []
        for r in self.client.requests:
            cut = cuts.get(r.path.split(f"/s/{self.scenario.name}/{self.player}/", 1)[-1])
            if cut is not None and cut.start >= self.scenario.change:
                out.append(cut.name)
        return out

    def warnings(self) -> list[str]:
        return warned(self.ffmpeg_log)

    def summary(self) -> str:
        if self.player == "ffmpeg":
            return (f"  ffmpeg: exit={self.exit_code} frames={self.frames} masters={self.masters()}"
                    f" after_change={len(self.segments_after_change())} missing={self.missing()}"
                    f" playlist_answers={self.playlist_answers()} warnings={self.warnings()}")
        log = self.log
        return (f"  {self.player} {log.get('version')}: reached={self.reached()} ended={log.get('ended')}"
                f" stuck={log.get('stuck')} fatal={self.fatal} nonfatal={self.nonfatal}"
                f" stalls_at_change={self.stalls_near_change()} stalls={self.stalls()} jumps={self.jumps()}"
                f" loads={log.get('loads')} masters={self.masters()} navigations={self.navigations}"
                f" missing={self.missing()} playlist_answers={self.playlist_answers()} heights={self.heights()}"
                f" switches={[(round(w['played'], 1), w['to'], w.get('position')) for w in log['switches']]}"
                f" notes={[n[2] for n in log.get('notes', [])][:10]} console={self.console[:3]}"
                + (f" last_media_events={log.get('media', [])[-4:]}"
                   f" last_requests={[(r.at, r.path.rsplit('/', 1)[-1], r.status) for r in self.client.requests[-6:]]}"
                   if log.get("stuck") else ""))


async def run_browser(browser: Any, base: str, played: Played) -> None:
    """One player's run, bounded as a whole: a renderer that stops answering (seen once, under the full
    suite's load: the module waited 17 minutes on it) becomes an observation, not a hung suite."""
    try:
        await asyncio.wait_for(_run_browser(browser, base, played), PLAYER_TIMEOUT + 45)
    except TimeoutError:
        played.console.append(f"harness: the page stopped answering within {PLAYER_TIMEOUT + 45:.0f} s")


async def _run_browser(browser: Any, base: str, played: Played) -> None:
    from playwright.async_api import TimeoutError as PlaywrightTimeoutError

    s = played.scenario
    context = await browser.new_context()
    try:
        page = await context.new_page()
        page.on("console", lambda m: played.console.append(f"{m.type}: {m.text}"[:300])
                if m.type in ("warning", "error") and "getManifest()" not in m.text else None)
        page.on("pageerror", lambda err: played.console.append(f"pageerror: {err}"[:300]))

        def navigated(frame: Any) -> None:
            if frame == page.main_frame:
                played.navigations += 1

        page.on("framenavigated", navigated)
        query = (f"src=/p/{s.name}/{played.player}/live/master.m3u8&heights={','.join(map(str, s.heights()))}"
                 f"&switch={','.join(f'{x:g}' for x in s.switch_at)}")
        await page.goto(f"{base}/page/{played.player}?{query}")
        with contextlib.suppress(PlaywrightTimeoutError):  # an observation too: `done` stays false
            await page.wait_for_function("() => window.probe && window.probe.done",
                                         timeout=PLAYER_TIMEOUT * 1000, polling=POLL_MS)
        played.log = await page.evaluate("() => JSON.parse(JSON.stringify(window.probe))")
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(context.close(), 15)


async def read_with_ffmpeg(url: str, timeout: float) -> tuple[int, str, str]:
    """ffmpeg reading `url` as a player does (`-c copy -f null -`), killed after `timeout` seconds: its exit
    status, its -progress lines (`progress`), and what it logged at warning level or above."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "level+warning", "-nostats",
        "-progress", "pipe:1", "-i", url, "-c", "copy", "-f", "null", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def progress(out: str, key: str) -> str:
    """The last value ffmpeg's -progress lines gave `key` ("0" without)."""
    values = re.findall(rf"^{key}=(\S+)$", out, re.MULTILINE)
    return values[-1] if values else "0"


def warned(lines: list[str]) -> list[str]:
    """ffmpeg's lines at warning level or above (-loglevel level+warning)."""
    return [line for line in lines if re.search(r"\[(warning|error|fatal|panic)\] ", line)]


async def run_ffmpeg(base: str, played: Played) -> None:
    url = f"{base}/p/{played.scenario.name}/ffmpeg/live/master.m3u8"
    played.exit_code, out, err = await read_with_ffmpeg(url, PLAYER_TIMEOUT)
    played.ffmpeg_log = [line for line in err.splitlines() if line.strip()]
    played.frames = int(progress(out, "frame"))
