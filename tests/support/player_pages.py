"""The players' pages: hls.js (the viewer's options), video.js (Owncast's) and Shaka (defaults), each
loading the stream from `?src=`, and the probe every one of them records on (window.probe): what the
picture shows (its barcode), their errors, stalls and switches. Served by player_pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

SUPPORT = Path(__file__).resolve().parent
VIEWER = SUPPORT.parent.parent / "viewer"
VIDEOJS = SUPPORT / "videojs"
SHAKA = SUPPORT / "shaka"
SHAKA5 = SUPPORT / "shaka5"
STALL_MS = 250

# Records on window.probe, polled every 50 ms: errors, the video's events, the fragments loaded (hls.js: sn
# and cc), stalls (time standing still for more than STALL_MS while neither paused nor seeking, once it has
# moved; `current`: the one going on), seconds played, how far it got (`furthest`) and how long it has not
# moved (`stillMs`), a sample every 250 ms of [ms, currentTime, position, picture height, seconds played],
# the switches it was made to do, and `done` once the video ended, a fatal error came, or it has not moved
# for STUCK_MS (`stuck`, 20 s unless the page's `stuck` says: a starved Shaka stood still 10 s and went on)
# at `last` seconds or later. A position is the moment the picture shows, read from its barcode. `hooked`:
# for hooks a page adds. Added as an init script it watches any page; a page's own copy then adds nothing.
PROBE_JS = """
(() => {
  if (window.probe) return;
  const params = new URLSearchParams(location.search);
  const STALL_MS = %d, STUCK_MS = Number(params.get('stuck')) || 20000;
  const LAST = Number(params.get('last')) || 0;
  const switchAt = (params.get('switch') || '').split(',').filter(Boolean).map(Number);
  const heights = (params.get('heights') || '').split(',').filter(Boolean).map(Number);
  const log = window.probe = {
    player: null, version: null, errors: [], notes: [], media: [], samples: [], stalls: [], switches: [],
    frags: [], hooked: { errors: [], levels: [], frags: [] }, ended: false, fatal: false, stuck: false,
    done: false, started: false, moved: false, playError: null, mediaError: null, loads: 0, played: 0,
    current: 0, furthest: 0, stillMs: 0,
  };
  const now = () => Math.round(performance.now());
  let video = null, adapter = null, lastTime = -1, lastMove = performance.now(), lastPlay = lastMove;
  let lastSample = 0, next = 0;
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
  // How far playback got: the moment shown where the page reads it, else currentTime (a player whose first
  // playlist had slid on, on a page slow to load, starts its timeline at a later segment's moment).
  const reached = () => (position !== null ? position : video.currentTime);
  const hook = (v) => {
    video = v;
    for (const kind of ['playing', 'waiting', 'seeking', 'pause', 'ended', 'error']) {
      v.addEventListener(kind, () => {
        if (kind === 'playing') log.started = true;
        if (kind === 'ended') { log.ended = true; log.done = true; }
        if (kind === 'error') {
          log.mediaError = v.error ? (v.error.message || String(v.error.code)) : '?';
          log.done = true;
        }
        log.media.push([kind, v.currentTime, now(), position]);
      });
    }
  };
  window.probeAttach = (a) => { adapter = a; log.player = a.name; log.version = a.version; };
  window.probeError = (e) => {
    e.t = video ? video.currentTime : null; e.ms = now(); e.position = position;
    log.errors.push(e);
    if (e.fatal) { log.fatal = true; log.done = true; }
  };
  window.probeNote = (n) => log.notes.push([now(), video ? video.currentTime : null, n]);
  window.probePlay = () => {
    document.querySelector('video').play().catch((err) => { log.playError = String(err); });
  };
  const watch = () => {
    const v = document.querySelector('video');
    if (!v) return;
    if (v !== video) hook(v);
    const t = v.currentTime, ms = performance.now();
    if (t !== lastTime) {
      const still = ms - lastPlay;
      if (log.moved && lastTime >= 0 && still > STALL_MS) {
        log.stalls.push({ at: Math.round(lastPlay), ms: Math.round(still), position });
      }
      if (log.moved && t > lastTime && t - lastTime < 1) log.played += t - lastTime;
      if (!v.paused && t > 0) log.moved = true;
      lastTime = t;
      lastMove = lastPlay = ms;
      log.current = 0;
    } else {
      if (v.paused || v.seeking) lastPlay = ms; else log.current = Math.round(ms - lastPlay);
      if (log.started && !log.ended && !v.ended && reached() >= LAST && ms - lastMove > STUCK_MS) {
        log.stuck = true;
        log.done = true;
      }
    }
    if (log.started) log.furthest = Math.max(log.furthest, reached());
    log.stillMs = Math.round(ms - lastMove);
    if (adapter && ms - lastSample >= 250) {
      lastSample = ms;
      try { position = shown(); } catch (err) { position = null; }
      log.samples.push([now(), t, position, v.videoHeight, Math.round(log.played * 1000) / 1000]);
      if (heights.includes(v.videoHeight)) showing = heights.indexOf(v.videoHeight);
    }
    if (adapter && next < switchAt.length && log.played >= switchAt[next]) {
      const to = showing === 0 ? 1 : 0;
      next += 1;
      log.switches.push({ ms: now(), t, played: log.played, to, position });
      try {
        adapter.switchTo(to, heights[to]);
      } catch (err) {
        log.switches[log.switches.length - 1].error = String(err);
      }
    }
  };
  watch();  // the page's own copy: its video is there
  setInterval(watch, 50);
})();
""" % STALL_MS

# What a page says (window.probe's), with its player's name, version, fatal errors (the probe's, or the
# viewer page's errors when it counted one it had to make a new player for: viewerStats.errorKinds) and
# the last errors it reported, fatal or not (`said`).
PAGE_STATE_JS = """() => {
  const none = { player: null, errors: [], media: [], hooked: { errors: [], levels: [], frags: [] } };
  const p = window.probe || none;  // a page that never loaded
  const s = window.viewerStats || null, own = p.player !== null;
  const kinds = s && s.errorKinds ? Object.values(s.errorKinds) : [];
  const viewerFatal = kinds.some((k) => k.fatal) ? (s.errors.length ? s.errors : ['a fatal error']) : [];
  return JSON.parse(JSON.stringify({
    started: !!p.started, ended: !!p.ended, stuck: !!p.stuck, stillMs: p.stillMs || 0,
    furthest: p.furthest || 0, played: p.played || 0, errors: p.hooked.errors, levels: p.hooked.levels,
    frags: p.hooked.frags, events: p.media.slice(-12), mediaError: p.mediaError || null,
    player: own ? p.player : 'viewer', version: p.version || null,
    fatal: (own ? p.errors.filter((e) => e.fatal).map((e) => e.details) : viewerFatal).map(String),
    said: (own ? p.errors.map((e) => e.details) : s ? s.errors : []).map(String).slice(-50),
    viewer: s ? { state: s.state, engine: s.engine } : null,
  }));
}"""


async def page_state(page: Any) -> dict[str, Any]:
    """PAGE_STATE_JS's answer."""
    state: dict[str, Any] = await page.evaluate(PAGE_STATE_JS)
    return state

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
  hls.on(Hls.Events.FRAG_LOADED, (e, data) => probe.frags.push({ sn: data.frag.sn, cc: data.frag.cc }));
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
    a favicon (a 204), and the players' scripts: the viewer's folder (hls.js) under /js/, Shaka 4.16 and 5.2, video.js."""
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=pages[request.match_info["player"]], content_type="text/html")

    async def probe(_request: web.Request) -> web.Response:
        return web.Response(text=PROBE_JS, content_type="text/javascript")

    async def no_icon(_request: web.Request) -> web.Response:  # not a 404 in the page's console
        return web.Response(status=204)

    app.router.add_get("/page/{player}", page)
    app.router.add_get("/favicon.ico", no_icon)
    app.router.add_get("/js/probe.js", probe)
    app.router.add_static("/js/", VIEWER)
    app.router.add_static("/shaka/", SHAKA)
    app.router.add_static("/shaka5/", SHAKA5)
    app.router.add_static("/videojs/", VIDEOJS)
    return app
