/* Live viewer: hls.js (or Safari's native HLS where MSE is missing), recovery from player errors,
 * an offline/waiting screen that resumes by itself, and stats for the streamer.
 *
 * An ES module (index.html loads it with type="module", after hls.min.js); its parts are modules of
 * their own beside it (stats.js: the formatting; events.js: the server's events in the stats panel;
 * status.js: the status line and the overlay; position.js: where the playhead is in the stream;
 * controls.js: quality, unmute, Go live; rewind.js: the seek bar, moment links and ?start=).
 *
 * Test hook: window.viewerStats, updated in place (see `stats` below). `errors` lists fatal player
 * errors; a playlist answering 503/404 is not one: that is the "waiting" state.

 */

import * as Controls from './controls.js';
import * as Events from './events.js';
import * as Position from './position.js';
import * as Rewind from './rewind.js';
import { formatBitrate, formatBytes } from './stats.js';
import * as Status from './status.js';

const EGRESS_USD_PER_GB = 0.09; // AWS EC2 data transfer out to the internet, first 10 TB a month
const BYTES_PER_GB = 2 ** 30; // AWS bills data transfer in binary gigabytes
const RECREATE_MIN_MS = 2000; // pause before a new player after a fatal error, backing off...
const RECREATE_MAX_MS = 5000; // ...up to this
const POLL_WAITING_MS = 2000; // the playlist answered 503/404: the stream has not started yet
const POLL_OFFLINE_MS = 3000; // the stream ended: look for the next one
const NETWORK_RETRIES = 3; // hls.startLoad() attempts before the player is recreated
const MEDIA_RECOVERY_WINDOW_MS = 3000; // a second media error within this swaps the audio codec
const STALL_MS = 2500; // no progress this long while playing: say so
const ENDED_STALL_MS = 4000; // after #EXT-X-ENDLIST, no progress this long is the end too
const MAX_ERRORS = 50;

const $ = (id) => document.getElementById(id);
const video = $('video');
const statsToggle = $('stats-toggle');
const statsPanel = $('stats');
const r2Badge = $('r2-badge');

const pageHost = location.host;
const params = new URLSearchParams(location.search);
const given = params.get('src') || null;
// Without ?src, config.json (from the service) says where the stream is: the service's own
// playlists, or the bucket's when playlists are published there. Resolved before the first start().
let src = given === null ? null : playlistUrl(given);

const stats = {
  state: 'loading', // 'loading' | 'playing' | 'offline' | 'waiting' | 'error'
  engine: null, // 'hls.js <version>' or 'native'
  src: src,
  segments: 0, // segment (and init section) files loaded, this page's lifetime
  bytes: 0,
  segmentHosts: [], // hosts the segments came from
  originSegments: 0, // segments from the page's own host: the bucket should serve them all
  offloadedBytes: 0, // bytes from any other host (the bucket)
  egressSavedUsd: 0,
  quality: null, // '1280x720'
  bitrate: null, // bits/s of the playing variant
  bandwidth: null, // hls.js's estimate, bits/s
  latency: null, // seconds behind the live edge
  buffer: 0, // seconds buffered ahead of the playhead
  recoveries: 0,
  errors: [], // 'networkError/fragLoadError (HTTP 403)', ...
  events: 0, // server events received on /live/events (only while the stats panel is open)
  eventStream: 'closed', // 'closed' | 'connecting' | 'open'
  playingDate: null, // ms since the epoch of the picture shown (EXT-X-PROGRAM-DATE-TIME), or null
  seekableStart: null, // the window one can seek in, in the video's seconds
  seekableEnd: null,
  behindLive: null, // seconds behind where the live button goes
  momentLink: null, // this page with ?start= the picture shown
};
window.viewerStats = stats;
const position = Position.create({ video, hls: () => hls });
const controls = Controls.create({ video, hls: () => hls, position, stats, play: () => play() });
const rewind = Rewind.create({ video, stats, position, play: () => play(), toLive: controls.toLive });
const events = Events.create({ stats, isOpen: () => !statsPanel.hidden });
const status = Status.create({ stats, onChange: () => {
  if (!statsPanel.hidden) render(); // the panel's state row must not lag the overlay
} });

let hls = null;
let p2p = null; // viewer/p2p.js, imported only when config.json has "p2p"
let generation = 0; // bumped by every start and stop; late callbacks of older ones are ignored
let timer = null; // the pending restart or poll
let failures = 0; // fatal errors since playback last worked (for the backoff)
let networkRetries = 0;
let lastMediaRecovery = -Infinity;
let lastCodecSwap = -Infinity;
let sawLive = false; // this player has seen a live (no ENDLIST) playlist
let endlist = false; // ...and then #EXT-X-ENDLIST: play to the end, then show "offline"
let lastTime = -1;
let lastProgressAt = 0;
// -- player lifecycle ---------------------------------------------------------------------------

function start() {
  stop();
  const gen = generation;
  sawLive = false;
  endlist = false;
  networkRetries = 0;
  lastProgressAt = performance.now();
  if (failures) {
    status.set('loading', 'Reconnecting…', 'Reconnecting…');
  } else {
    status.set('loading');
  }
  if (window.Hls && window.Hls.isSupported()) {
    startHlsJs(gen);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    stats.engine = 'native';
    if (rewind.pending()) video.addEventListener('loadedmetadata', () => rewind.startNative(gen === generation), { once: true });
    video.src = src;
    play();
  } else {
    status.set('error', 'This browser cannot play HLS video.', 'Cannot play this stream here');
  }
}

function stop() {
  generation += 1;
  clearTimeout(timer);
  timer = null;
  if (hls) {
    hls.destroy();
    hls = null;
  } else if (video.hasAttribute('src')) {
    video.removeAttribute('src');
    video.load();
  }
  controls.reset();
}

function startHlsJs(gen) {
  const Hls = window.Hls;
  // liveMaxLatencyDuration(Count) stays at its default, Infinity: hls.js never pulls a rewound viewer
  // back to live. Interstitials are off: Owncast makes none, and hls.js's interstitials controller would
  // restart loading at the live start it chose on the first playlist, undoing startLoad(?start).
  const config = { liveDurationInfinity: true, backBufferLength: 30, enableInterstitialPlayback: false };
  const h = p2p ? p2p.createHls(config) : new Hls(config);
  hls = h;
  stats.engine = 'hls.js ' + Hls.version;
  h.on(Hls.Events.MANIFEST_PARSED, (event, data) => {
    controls.fillQualities(data.levels, h);
    play();
  });
  h.on(Hls.Events.LEVEL_UPDATED, (event, data) => onPlaylist(data.details));
  if (rewind.pending()) {
    // After hls.js has picked the live edge for this first playlist: startLoad(position) overrides it.
    h.once(Hls.Events.LEVEL_LOADED, (event, data) => {
      if (gen === generation) rewind.startHlsJsAt(h, data.details);
    });
  }
  h.on(Hls.Events.FRAG_LOADED, (event, data) => onSegment(data));
  h.on(Hls.Events.ERROR, (event, data) => {
    if (gen === generation && data.fatal) onFatal(data);
  });
  h.attachMedia(video);
  h.loadSource(src);
}

function onPlaylist(details) {
  if (details.live) {
    sawLive = true;
    endlist = false;
  } else if (!sawLive) {
    waitForStream('offline'); // opened after the stream ended: do not replay its last seconds
  } else {
    endlist = true; // play out what was listed; the video's "ended" event comes next
  }
}

function onSegment(data) {
  const loaded = (data.part || data.frag).stats.loaded || (data.payload ? data.payload.byteLength : 0);
  let host = '';
  try {
    host = new URL(data.frag.url, location.href).host;
  } catch (err) {
    host = '(unparsable URL)';
  }
  stats.segments += 1;
  stats.bytes += loaded;
  if (!stats.segmentHosts.includes(host)) stats.segmentHosts.push(host);
  if (host === pageHost) {
    stats.originSegments += 1;
  } else {
    stats.offloadedBytes += loaded;
    stats.egressSavedUsd = (stats.offloadedBytes / BYTES_PER_GB) * EGRESS_USD_PER_GB;
  }
  networkRetries = 0;
  if (!statsPanel.hidden) render();
}

function onFatal(data) {
  const Hls = window.Hls;
  const code = data.response && data.response.code;
  const playlist = /^(manifest|level)Load/.test(data.details);
  if (data.type === Hls.ErrorTypes.NETWORK_ERROR && playlist && (code === 404 || code === 503)) {
    waitForStream('waiting'); // the server says there is no stream (yet)
    return;
  }
  addError(data.type + '/' + data.details + (code ? ' (HTTP ' + code + ')' : ''));
  const now = performance.now();
  if (data.type === Hls.ErrorTypes.NETWORK_ERROR && !data.details.startsWith('manifest')
      && networkRetries < NETWORK_RETRIES) {
    networkRetries += 1;
    stats.recoveries += 1;
    hls.startLoad();
  } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR && now - lastMediaRecovery > MEDIA_RECOVERY_WINDOW_MS) {
    lastMediaRecovery = now;
    stats.recoveries += 1;
    hls.recoverMediaError();
  } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR && now - lastCodecSwap > MEDIA_RECOVERY_WINDOW_MS) {
    lastCodecSwap = now;
    stats.recoveries += 1;
    hls.swapAudioCodec();
    hls.recoverMediaError();
  } else {
    restartLater();
  }
}

function addError(text) {
  stats.errors.push(text);
  if (stats.errors.length > MAX_ERRORS) stats.errors.shift();
}

function restartLater() {
  const delay = Math.min(RECREATE_MAX_MS, RECREATE_MIN_MS * 1.5 ** failures);
  failures += 1;
  // A rewound viewer resumes where they were, not at the live edge.
  if (controls.behind() && stats.playingDate !== null) rewind.resumeAt(stats.playingDate);
  stop();
  status.set('error', 'Playback error. Reconnecting in ' + Math.round(delay / 1000) + ' s…');
  timer = setTimeout(start, delay);
}

// -- waiting for a stream -----------------------------------------------------------------------

/** Drops the player and polls the playlist until a live one is back, then plays it. */
function waitForStream(state) {
  stop();
  const gen = generation;
  status.set(state);
  const poll = () => {
    timer = setTimeout(async () => {
      const found = await probe(src);
      if (gen !== generation) return;
      if (found === 'live') {
        start();
        return;
      }
      if (found && found !== stats.state) status.set(found);
      poll();
    }, stats.state === 'offline' ? POLL_OFFLINE_MS : POLL_WAITING_MS);
  };
  poll();
}

/** 'live', 'offline' (ended playlist), 'waiting' (no playlist yet), or null (could not tell). */
async function probe(url) {
  try {
    let text = await fetchPlaylist(url);
    if (text !== null && text.includes('#EXT-X-STREAM-INF')) {
      const variant = text.split(/\r?\n/).find((line) => line.trim() && !line.startsWith('#'));
      text = variant ? await fetchPlaylist(new URL(variant.trim(), url).href) : null;
    }
    if (text === null) return 'waiting';
    if (text.includes('#EXT-X-ENDLIST')) return 'offline';
    return text.includes('#EXTINF') ? 'live' : 'waiting';
  } catch (err) {
    return null; // the server is unreachable: keep saying what we said
  }
}

async function fetchPlaylist(url) {
  const response = await fetch(url, { cache: 'no-store' });
  return response.ok ? response.text() : null;
}

// -- the video element --------------------------------------------------------------------------

function play() {
  const gen = generation;
  const blocked = () => {
    if (gen === generation && stats.state === 'loading') status.overlay('Press play to start');
  };
  const attempt = video.play();
  if (!attempt) return;
  attempt.catch((err) => {
    // AbortError: a new source or a stop came first. NotAllowedError: autoplay with sound refused.
    if (err.name !== 'NotAllowedError' || gen !== generation) return;
    if (video.muted) {
      blocked();
      return;
    }
    video.muted = true; // browsers allow muted autoplay; offer the sound back
    controls.offerUnmute();
    video.play().catch(blocked);
  });
}

video.addEventListener('playing', () => {
  failures = 0;
  lastProgressAt = performance.now();
  if (stats.state !== 'playing') status.set('playing');
  status.overlay('');
});
video.addEventListener('waiting', () => {
  if (stats.state === 'playing') status.overlay('Buffering…');
});
video.addEventListener('ended', () => {
  if (stats.state === 'playing' || stats.state === 'loading') waitForStream('offline');
});
video.addEventListener('error', async () => {
  // hls.js reports its own errors; this is the native player (Safari) failing.
  if (hls || !video.hasAttribute('src') || (stats.state !== 'loading' && stats.state !== 'playing')) return;
  const gen = generation;
  const found = await probe(src); // no stream (503/404, ended) is waiting, not an error
  if (gen !== generation) return;
  if (found === 'waiting' || found === 'offline') {
    waitForStream(found);
  } else {
    addError('native/media error ' + (video.error ? video.error.code : '?'));
    restartLater();
  }
});
video.addEventListener('timeupdate', () => {
  // The clock and the test hooks, between ticks (a seek shows at once, not up to a second later).
  readPlayer();
  rewind.update();
});

statsToggle.addEventListener('click', () => showStats(statsPanel.hidden));

function showStats(open) {
  statsPanel.hidden = !open;
  statsToggle.setAttribute('aria-expanded', String(open));
  statsToggle.textContent = open ? 'Hide stats' : 'Show stats';
  if (open) {
    readPlayer();
    render();
    events.open();
  } else {
    events.close();
  }
}

// -- progress and stats -------------------------------------------------------------------

function tick() {
  const now = performance.now();
  const t = video.currentTime;
  // Progress: time moving with data to play, not a seek or a nudge a stalled player makes.
  if (video.paused || (t !== lastTime && video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA)) {
    lastProgressAt = now;
    if (stats.state === 'playing' && status.overlayText() === 'Buffering…') status.overlay('');
  }
  lastTime = t;
  stats.buffer = position.bufferAhead();
  const stalled = now - lastProgressAt;
  if (stats.state === 'playing' && endlist && stalled > ENDED_STALL_MS && stats.buffer < 0.5) {
    waitForStream('offline'); // the last segment played but no "ended" event came
  } else if (stats.state === 'playing' && stalled > STALL_MS) {
    status.overlay('Buffering…');
  }
  readPlayer();
  controls.update();
  rewind.update();
  if (!statsPanel.hidden) render();
}

function readPlayer() {
  const level = hls && hls.currentLevel >= 0 ? hls.levels[hls.currentLevel] : null;
  const width = (level && level.width) || video.videoWidth;
  const height = (level && level.height) || video.videoHeight;
  stats.quality = width && height ? width + 'x' + height : null;
  stats.bitrate = level ? level.bitrate : null;
  stats.bandwidth = hls ? Math.round(hls.bandwidthEstimate) || null : null;
  const range = position.seekableRange();
  if (hls) {
    stats.latency = hls.latency > 0 ? hls.latency : null;
  } else if (stats.engine === 'native' && range) {
    stats.latency = Math.max(0, range.end - video.currentTime);
  } else {
    stats.latency = null;
  }
  const live = range && stats.latency !== null ? position.livePosition(range) : null;
  stats.behindLive = live === null ? null : Math.max(0, live - video.currentTime);
}

function render() {
  const manual = hls && hls.manualLevel >= 0 ? '' : ' (auto)';
  const text = {
    's-state': stats.state,
    's-engine': stats.engine || '–',
    's-quality': stats.quality ? stats.quality + (hls ? manual : '') : '–',
    's-bitrate': stats.bitrate ? formatBitrate(stats.bitrate) : '–',
    's-bandwidth': stats.bandwidth ? formatBitrate(stats.bandwidth) : '–',
    's-latency': stats.latency !== null ? stats.latency.toFixed(1) + ' s' : '–',
    's-buffer': stats.buffer.toFixed(1) + ' s',
    's-segments': stats.engine === 'native' ? 'not counted by the native player' : String(stats.segments),
    's-bytes': formatBytes(stats.bytes),
    's-hosts': stats.segmentHosts.join(', ') || '–',
    's-offloaded': formatBytes(stats.offloadedBytes),
    's-saved': '$' + stats.egressSavedUsd.toFixed(4),
    's-recoveries': String(stats.recoveries),
  };
  for (const [id, value] of Object.entries(text)) {
    const el = $(id);
    if (el.textContent !== value) el.textContent = value;
  }
  const origin = stats.originSegments;
  r2Badge.className = origin ? 'badge warn' : 'badge good';
  r2Badge.textContent = origin
    ? 'R2 optimization: warning, ' + origin + (origin === 1 ? ' segment' : ' segments')
      + ' from this server instead of the bucket'
    : 'R2 optimization: 0 segments from this server';
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

// -- go -----------------------------------------------------------------------------------------

if (new URLSearchParams(location.search).get('stats') === '1') showStats(true);
setInterval(tick, 1000);
async function configuredSource() {
  try {
    const response = await fetch('config.json', { cache: 'no-cache' });
    const config = response.ok ? await response.json() : {};
    if (config && config.p2p && window.Hls && window.Hls.isSupported()) {
      // Peer-to-peer segments, the bucket as the fallback; if it cannot load, play without it, and say
      // why in the console (a file missing, a config.json p2p.js refuses).
      p2p = await import('./p2p.js').then((m) => m.create(config.p2p, stats, formatBytes)).catch((err) => {
        console.warn('P2P off:', err);
        return null;
      });
    }
    if (config && typeof config.src === 'string' && playlistUrl(config.src)) return playlistUrl(config.src);
  } catch (err) {
    // no config (the page is hosted elsewhere) or not JSON: the service's default path
  }
  return playlistUrl('/live/master.m3u8');
}

if (given !== null && src === null) {
  status.set('error', 'The src parameter is not an http(s) URL.', 'Bad src parameter');
} else if (src !== null) {
  start();
} else {
  configuredSource().then((found) => {
    src = found;
    stats.src = found;
    start();
  });
}
