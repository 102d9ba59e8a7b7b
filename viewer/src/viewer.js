/* Live viewer: composes the page's parts, each an ES module of its own (no build step):
 *
 *   player.js    the player's life: hls.js or native, errors and backoff, waiting for the stream
 *   status.js    the status line and the overlay on the video
 *   position.js  where the playhead is in the stream (the seekable window, the live edge, the date)
 *   controls.js  quality, unmute, "Go live"
 *   rewind.js    the seek bar, the clock, moment links and ?start=
 *   stats.js     window.viewerStats, the stats panel and the formatting helpers
 *   events.js    the server's events (/live/events) while the stats panel is open
 *   playback.js  how playback fares (stalls, latency, errors, downloads), reported with the heartbeat
 *   p2p.js       viewer-to-viewer segments, imported only when /config.json has "p2p"
 *
 * Each exports create(deps): values and callbacks in, a few functions out. No globals but hls.min.js's
 * window.Hls (a classic script that runs before this one) and the test hook window.viewerStats. A part
 * that needs one created after it (the player is at the centre of a few such loops) gets a callback,
 * called only once the page runs. A new module: import it here, create it with what it needs, and add
 * its name to the tunnel's viewer path (cloudflared.yml.example; tests/test_deploy.py checks).
 *
 * The service serves this file with the modules it imports statically inside it: one request, not one
 * per module (issue 42). Keep to the import and export forms broadcaster/http/module_combine.py lists,
 * or the modules come one by one (the service's log says why; tests/test_viewer_modules.py fails).
 */

import * as Controls from './controls.js';
import * as Events from './events.js';
import * as Playback from './playback.js';
import * as Player from './player.js';
import * as Position from './position.js';
import * as Rewind from './rewind.js';
import * as Stats from './stats.js';
import * as Status from './status.js';

const video = document.getElementById('video');
const params = new URLSearchParams(location.search);
const given = params.get('src') || null;
// Without ?src, config.json (from the service) says where the stream is: the service's own
// playlists, or the bucket's when playlists are published there. Resolved before the player starts.
const src = given === null ? null : playlistUrl(given);

const hls = () => player.hls();
const position = Position.create({ video, hls });
const stats = Stats.create({ src, video, hls, position, onToggle: (open) => (open ? events.open() : events.close()) });
const viewerStats = stats.values; // the test hook, window.viewerStats
const status = Status.create({ stats: viewerStats, onChange: stats.refresh });
const rewind = Rewind.create({ video, stats: viewerStats, position, play: () => player.play(), toLive: () => controls.toLive() });
const playback = Playback.create({ video, hls, stats: viewerStats, position });
const player = Player.create({
  video, stats: viewerStats, status, position, rewind,
  countSegment: stats.countSegment, addError: stats.addError, refresh: stats.refresh,
  onPlayer: playback.attach,
  onLevels: (levels, h) => controls.fillQualities(levels, h),
  onMutedAutoplay: () => controls.offerUnmute(),
  onStart: (live) => controls.starting(live),
  onStop: () => controls.reset(),
  behind: () => controls.behind(),
});
const controls = Controls.create({ video, hls, position, stats: viewerStats, play: player.play });
const events = Events.create({ stats: viewerStats, isOpen: stats.isOpen });

video.addEventListener('timeupdate', () => {
  // The clock and the test hooks, between ticks (a seek shows at once, not up to a second later).
  stats.read();
  rewind.update();
});

function tick() {
  player.tick();
  stats.read();
  controls.update();
  rewind.update();
  stats.refresh();
}

/**
 * config.json: in the page, where the service writes it (issue 42: the player starts without asking
 * for it), else fetched; null when there is none (the page is hosted elsewhere).
 */
async function readConfig() {
  const inline = document.querySelector('meta[name="viewer-config"]');
  if (inline && inline.content) {
    try {
      return JSON.parse(inline.content);
    } catch (err) {
      // not JSON: ask the service
    }
  }
  const response = await fetch('config.json', { cache: 'no-cache' });
  return response.ok ? response.json() : null;
}

/** config.json's playlist URL (or the service's own), and viewer/p2p.js when it has "p2p". */
async function configuredSource() {
  let p2p = null;
  try {
    const config = (await readConfig()) || {};
    if (config && config.p2p && window.Hls && window.Hls.isSupported()) {
      // Peer-to-peer segments, the bucket as the fallback; if it cannot load, play without it, and say
      // why in the console (a file missing, a config.json p2p.js refuses).
      p2p = await import('./p2p.js').then((m) => m.create(config.p2p, viewerStats, Stats)).catch((err) => {
        console.warn('P2P off:', err);
        return null;
      });
    }
    if (config && config.viewers) {
      // "N watching" and the heartbeat that counts this page (watching.js; SHOW_VIEWER_COUNT, OWNCAST_URL).
      import('./watching.js').then((m) => m.start(config, video, () => p2p !== null, playback))
        .catch((err) => console.warn('viewer count off:', err));
    }
    if (config && typeof config.src === 'string' && playlistUrl(config.src)) return [playlistUrl(config.src), p2p];
  } catch (err) {
    // no config (the page is hosted elsewhere) or not JSON: the service's default path
  }
  return [playlistUrl('/live/master.m3u8'), p2p];
}

/**
 * Whether ?src= may play here (issue 41): a link to this site must not make it play someone else's
 * stream. Allowed: this service's playlists (this origin, /live/ or /hls/), where config.json plays
 * from (the bucket's copies, and its folder), and the origins the operator lists (VIEWER_SOURCES:
 * config.sources, '*' for any). A page with no config.json is hosted elsewhere, by its operator: any.
 */
async function allowedSource(url) {
  let config;
  try {
    config = await readConfig();
    if (config === null) return true;
  } catch (err) {
    return true;
  }
  const wanted = new URL(url);
  if (wanted.origin === location.origin && /^\/(live|hls)\//.test(wanted.pathname)) return true;
  const home = config && typeof config.src === 'string' ? playlistUrl(config.src) : null;
  if (home) {
    const base = new URL('.', home);
    if (wanted.origin === base.origin && wanted.pathname.startsWith(base.pathname)) return true;
  }
  const sources = config && Array.isArray(config.sources) ? config.sources : [];
  return sources.includes('*') || sources.includes(wanted.origin);
}

function playlistUrl(text) {
  try {
    const url = new URL(text, location.href);
    if (url.protocol === 'http:' || url.protocol === 'https:') return url.href;
  } catch (err) {
    // not a URL: reported below
  }
  return null;
}

// -- go -------------------------------------------------------------------------------------------

if (params.get('stats') === '1') stats.show(true);
setInterval(tick, 1000);
if (given !== null && src === null) {
  status.set('error', 'The src parameter is not an http(s) URL.', 'Bad src parameter');
} else if (src !== null) {
  allowedSource(src).then((allowed) => {
    if (allowed) player.start(src, null);
    else {
      const why = "This page plays only this site's own stream: the src parameter names another site.";
      status.set('error', why, 'Not this site\'s stream');
    }
  });
} else {
  configuredSource().then(([found, p2p]) => {
    viewerStats.src = found;
    player.start(found, p2p);
  });
}
