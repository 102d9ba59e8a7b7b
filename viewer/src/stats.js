/* The stats for the streamer, in the viewer's words: the stats panel, the peer-to-peer line under the
 * video, and window.viewerStats (the test hook), all composed from the modules' snapshots (issue 49: each
 * module keeps its own state; none writes another's). What this module measures itself: the segments
 * hls.js loaded, by host, and the player's quality, bitrate, bandwidth and distance to live. Plus the
 * formatting the page shares.
 *
 * The panel's downloads add up: "Video downloaded" is "From the storage bucket" plus "From other
 * viewers", both from playback.js's count by source (the same one the playback report carries). */

import { snapshot as frozen } from './snapshot.js';

const EGRESS_USD_PER_GB = 0.09; // AWS EC2 data transfer out to the internet, first 10 TB a month
const BYTES_PER_GB = 2 ** 30; // AWS bills data transfer in binary gigabytes

/** create({ video, hls, position, onToggle }): hls() is the current hls.js player or null; onToggle(open)
 * is called when the panel opens or closes (the events panel follows it). The modules it composes come
 * later, by attach({ status, player, rewind, events, playback, p2p, owncast, access }) (each with snapshot();
 * p2p only when on, owncast with OWNCAST_URL). */
export function create({ video, hls, position, onToggle }) {
  const $ = (id) => document.getElementById(id);
  const panel = $('stats');
  const toggle = $('stats-toggle');
  const originBadge = $('origin-badge');
  const sharingLine = $('sharing');
  const pageHost = location.host;
  const parts = {};

  const own = {
    segments: 0, // segment (and init section) files hls.js loaded, this page's lifetime
    bytes: 0,
    segmentHosts: [], // hosts the segments came from
    originSegments: 0, // segments from the page's own host: the bucket should serve them all
    offloadedBytes: 0, // bytes from any other host (the bucket)
    egressSavedUsd: 0,
    quality: null, // '1280x720'
    bitrate: null, // bits/s of the playing variant
    bandwidth: null, // hls.js's estimate, bits/s
    latency: null, // seconds behind the live edge of the newest playlist (hls.js's figure)
    behindLive: null, // seconds behind where the live button goes
  };

  function attach(more) {
    Object.assign(parts, more);
  }

  /** Every module's snapshot in one read-only object: window.viewerStats. Made once per task (a test's
   * `window.viewerStats.p2p && window.viewerStats.p2p.peers` reads one), made anew in the next. */
  let composed = null;
  function snapshot() {
    if (composed === null) {
      const all = { ...own };
      for (const name of ['status', 'player', 'rewind', 'events']) {
        if (parts[name]) Object.assign(all, parts[name].snapshot());
      }
      if (parts.playback) all.playback = parts.playback.snapshot();
      if (parts.p2p) all.p2p = parts.p2p.snapshot();
      if (parts.owncast) all.owncast = parts.owncast.snapshot(); // owncast-health.js's reports
      if (parts.access) all.access = parts.access.snapshot(); // a private stream's token (access.js)
      composed = frozen(all);
      queueMicrotask(() => { composed = null; });
    }
    return composed;
  }
  Object.defineProperty(window, 'viewerStats', { get: snapshot, configurable: true, enumerable: true });

  /** A segment (or init section) loaded from `url`: counted, and by host. */
  function countSegment(url, loaded) {
    let host = '';
    try {
      host = new URL(url, location.href).host;
    } catch (err) {
      host = '(unparsable URL)';
    }
    own.segments += 1;
    own.bytes += loaded;
    if (!own.segmentHosts.includes(host)) own.segmentHosts.push(host);
    if (host === pageHost) {
      own.originSegments += 1;
    } else {
      own.offloadedBytes += loaded;
      own.egressSavedUsd = (own.offloadedBytes / BYTES_PER_GB) * EGRESS_USD_PER_GB;
    }
  }

  /** The player's figures: quality, bitrate, bandwidth, latency, distance to live. */
  function read() {
    const h = hls();
    const level = h && h.currentLevel >= 0 ? h.levels[h.currentLevel] : null;
    const width = (level && level.width) || video.videoWidth;
    const height = (level && level.height) || video.videoHeight;
    own.quality = width && height ? width + 'x' + height : null;
    own.bitrate = level ? level.bitrate : null;
    own.bandwidth = h ? Math.round(h.bandwidthEstimate) || null : null;
    const range = position.seekableRange();
    const native = parts.player && parts.player.engine() === 'native'; // on every timeupdate: no copy
    if (h) {
      own.latency = h.latency > 0 ? h.latency : null;
    } else if (native && range) {
      own.latency = Math.max(0, range.end - video.currentTime);
    } else {
      own.latency = null;
    }
    const live = range && own.latency !== null ? position.livePosition(range) : null;
    own.behindLive = live === null ? null : Math.max(0, live - video.currentTime);
  }

  /** How far behind live the picture is, one figure: by the service's clock when the heartbeat told it
   * (playback.js), else hls.js's distance to the newest playlist's end. */
  function behindText() {
    const byClock = parts.playback ? parts.playback.latencyNow() : -1;
    if (byClock >= 0) return (byClock / 1000).toFixed(1) + ' s';
    return own.latency !== null ? own.latency.toFixed(1) + ' s' : '–';
  }

  function share(bytes, total) {
    return formatBytes(bytes) + (total ? ' · ' + Math.round((100 * bytes) / total) + ' %' : '');
  }

  function render() {
    const h = hls();
    const player = parts.player ? parts.player.snapshot() : null;
    const state = parts.status ? parts.status.state() : 'loading';
    const figures = parts.playback ? parts.playback.snapshot() : null;
    const p2p = parts.p2p ? parts.p2p.snapshot() : null;
    const native = player && player.engine === 'native';
    const manual = h && h.manualLevel >= 0 ? '' : ' (auto)';
    const fromBucket = figures ? figures.bucket.bytes : 0;
    const fromPeers = figures ? figures.peer.bytes : 0;
    const total = fromBucket + fromPeers;
    const text = {
      's-state': state,
      's-engine': (player && player.engine) || '–',
      's-quality': own.quality ? own.quality + (h ? manual : '') : '–',
      's-bitrate': own.bitrate ? formatBitrate(own.bitrate) : '–',
      's-bandwidth': own.bandwidth ? formatBitrate(own.bandwidth) : '–',
      's-latency': behindText(),
      's-buffer': (player ? player.buffer : 0).toFixed(1) + ' s',
      's-startup': figures && figures.startupMs >= 0 ? (figures.startupMs / 1000).toFixed(2) + ' s' : '–',
      's-stalls': figures ? figures.stalls + ' · ' + (figures.stalledMs / 1000).toFixed(1) + ' s' : '–',
      's-segments': native ? 'not counted by the native player' : String(own.segments),
      's-bytes': native ? 'not counted by the native player' : formatBytes(total),
      's-from-bucket': native ? '–' : share(fromBucket, total),
      's-from-peers': share(fromPeers, total),
      's-hosts': own.segmentHosts.join(', ') || '–',
      's-saved': '$' + own.egressSavedUsd.toFixed(4),
      's-recoveries': String(player ? player.recoveries : 0),
      's-media-errors': String(player ? player.mediaErrors : 0),
    };
    if (p2p && !p2p.off) {
      text['s-p2p-peers'] = String(p2p.peers) + (p2p.uploadDisabled ? ' (not sending: metered connection or this visit\'s cap reached)' : '')
        + (p2p.peersOff ? ' (no longer asked: ' + p2p.peersOff + ')' : '');
      text['s-p2p-rejected'] = p2p.rejectedSegments + ' refused · ' + p2p.bannedPeers
        + (p2p.bannedPeers === 1 ? ' viewer' : ' viewers') + ' blocked'
        + (p2p.droppedPeers ? ' · ' + p2p.droppedPeers + ' dropped (never finished sending)' : '');
    } else if (p2p) {
      text['s-p2p-off'] = 'off: ' + p2p.off;
    }
    for (const [id, value] of Object.entries(text)) {
      const el = $(id);
      if (el && el.textContent !== value) el.textContent = value;
    }
    for (const id of ['s-from-peers', 's-p2p-peers', 's-p2p-rejected']) $(id).parentElement.hidden = !(p2p && !p2p.off);
    $('s-p2p-off').parentElement.hidden = !(p2p && p2p.off);
    const origin = own.originSegments;
    originBadge.className = origin ? 'badge warn' : 'badge good';
    originBadge.textContent = origin
      ? origin + (origin === 1 ? ' segment' : ' segments') + ' came from this server instead of the storage bucket: '
        + 'check R2_PUBLIC_URL'
      : 'No video came from this server: the storage bucket' + (p2p && !p2p.off ? ' and other viewers' : '')
        + ' sent it all.';
  }

  /** Under the video, with P2P on: whether this page shares with other viewers, and how much they sent. */
  function renderSharing() {
    const p2p = parts.p2p ? parts.p2p.snapshot() : null;
    let text = '';
    if (p2p && p2p.off) {
      text = 'Sharing with other viewers is off here (' + p2p.off + ').';
    } else if (p2p && p2p.peersOff) {
      text = 'Not sharing with other viewers any more: everything comes from the storage bucket.';
    } else if (p2p) {
      const figures = parts.playback ? parts.playback.snapshot() : null;
      const total = figures ? figures.bucket.bytes + figures.peer.bytes : 0;
      const theirs = total && figures.peer.bytes ? ', ' + Math.round((100 * figures.peer.bytes) / total)
        + ' % of the video from them' : '';
      text = p2p.peers ? 'Sharing with ' + p2p.peers + (p2p.peers === 1 ? ' other viewer' : ' other viewers') + theirs
        : 'Sharing with other viewers: none connected yet' + theirs;
    }
    sharingLine.hidden = !text;
    if (sharingLine.textContent !== text) sharingLine.textContent = text;
  }

  /** Once a second and after every state change: the sharing line, and the panel when it is open (it
   * costs nothing while closed). */
  function refresh() {
    renderSharing();
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

  return { attach, snapshot, countSegment, read, refresh, isOpen, show, behindLive: () => own.behindLive };
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
