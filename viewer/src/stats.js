/* The stats for the streamer: the `stats` object (the test hook window.viewerStats, updated in place),
 * the stats panel's rows and its R2 badge, and the formatting the page shares.
 *
 * `errors` lists fatal player errors; a playlist answering 503/404 is not one: that is the "waiting"
 * state. p2p.js adds `.p2p` (its own rows too) when P2P is on. */

const EGRESS_USD_PER_GB = 0.09; // AWS EC2 data transfer out to the internet, first 10 TB a month
const BYTES_PER_GB = 2 ** 30; // AWS bills data transfer in binary gigabytes
const MAX_ERRORS = 50;

/** create({ src, video, hls, position, onToggle }): hls() is the current hls.js player or null;
 * onToggle(open) is called when the panel opens or closes (the events panel follows it). */
export function create({ src, video, hls, position, onToggle }) {
  const $ = (id) => document.getElementById(id);
  const panel = $('stats');
  const toggle = $('stats-toggle');
  const r2Badge = $('r2-badge');
  const pageHost = location.host;

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
    mediaErrors: 0, // the video could not decode what it got, or stalled with data to play (player.js)
    // Every error by kind and outcome (player.js): recovered in place, or fatal (a new player).
    errorKinds: { network: { recovered: 0, fatal: 0 }, media: { recovered: 0, fatal: 0 },
      other: { recovered: 0, fatal: 0 } },
    errors: [], // 'networkError/fragLoadError (HTTP 403)', ...
    autoplayBlocked: false, // the browser refused to start the video by itself: the viewer pressed play
    events: 0, // server events received on /live/events (only while the stats panel is open)
    eventStream: 'closed', // 'closed' | 'connecting' | 'open'
    playingDate: null, // ms since the epoch of the picture shown (EXT-X-PROGRAM-DATE-TIME), or null
    seekableStart: null, // the window one can seek in, in the video's seconds
    seekableEnd: null,
    behindLive: null, // seconds behind where the live button goes
    momentLink: null, // this page with ?start= the picture shown
  };
  window.viewerStats = stats;

  /** A segment (or init section) loaded from `url`: counted, and by host. */
  function countSegment(url, loaded) {
    let host = '';
    try {
      host = new URL(url, location.href).host;
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
  }

  function addError(text) {
    stats.errors.push(text);
    if (stats.errors.length > MAX_ERRORS) stats.errors.shift();
  }

  /** The player's figures into `stats`: quality, bitrate, bandwidth, latency, distance to live. */
  function read() {
    const h = hls();
    const level = h && h.currentLevel >= 0 ? h.levels[h.currentLevel] : null;
    const width = (level && level.width) || video.videoWidth;
    const height = (level && level.height) || video.videoHeight;
    stats.quality = width && height ? width + 'x' + height : null;
    stats.bitrate = level ? level.bitrate : null;
    stats.bandwidth = h ? Math.round(h.bandwidthEstimate) || null : null;
    const range = position.seekableRange();
    if (h) {
      stats.latency = h.latency > 0 ? h.latency : null;
    } else if (stats.engine === 'native' && range) {
      stats.latency = Math.max(0, range.end - video.currentTime);
    } else {
      stats.latency = null;
    }
    const live = range && stats.latency !== null ? position.livePosition(range) : null;
    stats.behindLive = live === null ? null : Math.max(0, live - video.currentTime);
  }

  function render() {
    const h = hls();
    const manual = h && h.manualLevel >= 0 ? '' : ' (auto)';
    const text = {
      's-state': stats.state,
      's-engine': stats.engine || '–',
      's-quality': stats.quality ? stats.quality + (h ? manual : '') : '–',
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
      's-media-errors': String(stats.mediaErrors),
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

  /** Renders the panel when it is open (it costs nothing while closed). */
  function refresh() {
    if (!panel.hidden) render();
  }

  function isOpen() {
    return !panel.hidden;
  }

  function show(open) {
    panel.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
    toggle.textContent = open ? 'Hide stats' : 'Show stats';
    if (open) {
      read();
      render();
    }
    onToggle(open);
  }

  toggle.addEventListener('click', () => show(panel.hidden));

  return { values: stats, countSegment, addError, read, refresh, isOpen, show };
}

/** Rows added to the stats panel ([id, name] each) after the row of the value `afterId` (or last), each
 * showing '–' until set; their value cells, in order (p2p.js, playback.js). */
export function addRows(names, afterId) {
  const list = document.querySelector('#stats dl');
  const cells = [];
  const after = document.getElementById(afterId);
  let anchor = after ? after.parentElement : null;
  for (const [id, name] of names) {
    const row = document.createElement('div');
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = name;
    dd.id = id;
    dd.textContent = '–';
    row.append(dt, dd);
    if (list && anchor) {
      anchor.after(row);
      anchor = row;
    } else if (list) {
      list.append(row);
    }
    cells.push(dd);
  }
  return cells;
}

export function formatBitrate(bps) {
  return bps >= 1e6 ? (bps / 1e6).toFixed(2) + ' Mbit/s' : Math.round(bps / 1e3) + ' kbit/s';
}

export function formatBytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

/** 75 → '1:15', 3725 → '1:02:05'. */
export function formatDuration(seconds) {
  const s = Math.round(seconds);
  const hours = Math.floor(s / 3600);
  const rest = String(Math.floor((s % 3600) / 60)).padStart(hours ? 2 : 1, '0') + ':'
    + String(s % 60).padStart(2, '0');
  return hours ? hours + ':' + rest : rest;
}
