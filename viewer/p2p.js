/* Viewer-to-viewer segment sharing (issue 22): P2P Media Loader's hls.js integration, with the bucket
 * (HTTP) as the fallback for every segment no peer delivers in time.
 *
 * viewer.js imports this module only when /config.json has "p2p" (P2P_TRACKERS is set), so a page
 * without P2P loads none of it. config.p2p: { trackers: ["wss://..."], swarm: "<id of this stream>",
 * stun: ["stun:host:port", ...] } (P2P_STUN_SERVERS; [] = none: peers meet by their local addresses only).
 *
 * Live latency first: hls.js keeps its usual distance from the live edge (3 segments), and a segment
 * comes over HTTP as soon as less than one segment of buffer is left before it (highDemandTimeWindow =
 * the target duration). Until then peers may deliver it, fetched from the bucket by one of them.
 *
 * Start-up is the exception: the engine measures "soon" from the video's currentTime, which stays 0
 * until the first segment is in, while hls.js's live start lies a window (up to REWIND_SECONDS) later.
 * So until the video first plays every segment is urgent (the first ones come over HTTP at once, as
 * without P2P); the one-segment window applies from then on.
 *
 * Test hook: window.viewerStats.p2p (see `stats` below).
 */
import { HlsJsP2PEngine } from './p2p-media-loader-hlsjs.es.min.js';

const LIVE_SYNC_SEGMENTS = 3; // hls.js's default; without it the engine moves playback to the window's start
const START_HIGH_DEMAND_SECONDS = 24 * 3600; // until the video plays: everything is urgent (see above)
const RENDER_MS = 1000;

/** Everything viewer.js needs: createHls(config) in place of `new Hls(config)`. formatBytes is the
 * viewer's own, so the stats panel writes sizes one way. */
export function create(options, viewerStats, formatBytes) {
  const valid = options && Array.isArray(options.trackers) && options.trackers.length
    && options.trackers.every((url) => /^wss?:\/\//.test(url)) && typeof options.swarm === 'string' && options.swarm
    && Array.isArray(options.stun) && options.stun.every((url) => /^stuns?:/i.test(url));
  if (!valid) {
    throw new TypeError('config.json "p2p": expected {"trackers": ["wss://..."], "swarm": "<id>", "stun": ["stun:..."]}');
  }
  const stats = {
    trackers: options.trackers.slice(),
    stun: options.stun.slice(), // the STUN servers given to WebRTC, in place of the library's (Google's, Twilio's)
    swarm: options.swarm,
    bytesFromPeers: 0, // segment bytes received over WebRTC
    bytesFromHttp: 0, // segment bytes P2P Media Loader fetched from the bucket
    bytesToPeers: 0, // bytes this viewer sent to others
    peerShare: 0, // bytesFromPeers / all segment bytes the P2P engine loaded, 0..1
    peers: 0, // peers connected now
    peersSeen: 0, // peers connected at some point, this page's lifetime
    trackerErrors: 0, // the tracker refused or failed (P2P Media Loader's onTrackerError)
    trackerWarnings: 0, // e.g. the tracker cannot be reached (onTrackerWarning): HTTP alone goes on
    uploadDisabled: isCellular(),
  };
  viewerStats.p2p = stats;
  const rows = addRows();
  let current = null; // the engine of the newest player: older ones' late events are ignored
  let peers = new Set();
  let shown = '';

  function render() {
    const total = stats.bytesFromPeers + stats.bytesFromHttp;
    stats.peerShare = total ? stats.bytesFromPeers / total : 0;
    const peerPct = total ? Math.round(100 * stats.peerShare) + ' %' : '–';
    const httpPct = total ? Math.round(100 * (1 - stats.peerShare)) + ' %' : '–';
    const text = [
      peerPct + ' · ' + formatBytes(stats.bytesFromPeers),
      httpPct + ' · ' + formatBytes(stats.bytesFromHttp),
      String(stats.peers) + (stats.uploadDisabled ? ' (not uploading: cellular)' : ''),
    ];
    const key = text.join('|');
    if (key === shown) return;
    shown = key;
    rows.forEach((dd, i) => { dd.textContent = text[i]; });
  }
  setInterval(render, RENDER_MS);
  render();

  function watch(engine) {
    current = engine;
    peers = new Set();
    stats.peers = 0;
    const mine = (listener) => (...args) => {
      if (engine === current) listener(...args);
    };
    engine.addEventListener('onChunkDownloaded', mine((bytes, source) => {
      if (source === 'p2p') stats.bytesFromPeers += bytes;
      else stats.bytesFromHttp += bytes;
    }));
    engine.addEventListener('onChunkUploaded', mine((bytes) => { stats.bytesToPeers += bytes; }));
    engine.addEventListener('onPeerConnect', mine((peer) => {
      peers.add(peer.peerId);
      stats.peers = peers.size;
      stats.peersSeen += 1;
    }));
    engine.addEventListener('onPeerClose', mine((peer) => {
      peers.delete(peer.peerId);
      stats.peers = peers.size;
    }));
    engine.addEventListener('onTrackerError', mine(() => { stats.trackerErrors += 1; }));
    engine.addEventListener('onTrackerWarning', mine(() => { stats.trackerWarnings += 1; }));
  }

  const HlsWithP2P = HlsJsP2PEngine.injectMixin(window.Hls);

  function createHls(config) {
    const Hls = window.Hls;
    const hlsConfig = { ...config };
    if (hlsConfig.liveSyncDuration === undefined && hlsConfig.liveSyncDurationCount === undefined) {
      hlsConfig.liveSyncDurationCount = LIVE_SYNC_SEGMENTS;
    }
    hlsConfig.p2p = {
      core: {
        announceTrackers: stats.trackers,
        swarmId: stats.swarm,
        highDemandTimeWindow: START_HIGH_DEMAND_SECONDS,
        isP2PUploadDisabled: stats.uploadDisabled,
        rtcConfig: { iceServers: stats.stun.length ? [{ urls: stats.stun }] : [] },
      },
      onHlsJsCreated(hls) {
        watch(hls.p2pEngine);
        hls.config.fLoader = copyingLoader(hls.config.fLoader);
        keyPlaylistsWithoutDirectives(hls.p2pEngine);
        // Once the video plays, one segment of buffer left before a segment: it comes over HTTP if no
        // peer has delivered it.
        let target = 0;
        let applied = 0;
        let playing = false;
        const apply = () => {
          if (playing && target > 0 && target !== applied) {
            applied = target;
            hls.p2pEngine.applyDynamicConfig({ core: { highDemandTimeWindow: target } });
          }
        };
        hls.on(Hls.Events.LEVEL_UPDATED, (event, data) => {
          target = data.details.targetduration;
          apply();
        });
        // The <video> outlives this player (player.js makes a new one after a fatal error): its listener
        // goes with the player, so a video that never played keeps no dead player alive.
        let attached = null;
        const detach = () => {
          if (attached) attached.abort();
          attached = null;
        };
        hls.on(Hls.Events.MEDIA_ATTACHED, (event, data) => {
          detach();
          attached = new AbortController();
          data.media.addEventListener('playing', () => { playing = true; apply(); },
            { once: true, signal: attached.signal });
        });
        hls.on(Hls.Events.MEDIA_DETACHING, detach);
        hls.on(Hls.Events.DESTROYING, detach);
      },
    };
    return new HlsWithP2P(hlsConfig);
  }

  return { createHls };
}

/**
 * The engine's fragment loader, handing hls.js a copy of each segment. P2P Media Loader keeps the
 * ArrayBuffer it gives hls.js to serve it to peers, but hls.js transfers that buffer to its transmuxer
 * worker, which detaches it: the next upload of that segment then fails ("Cannot perform
 * ArrayBuffer.prototype.slice on a detached ArrayBuffer") after its first 64 KB chunk. One copy per
 * segment keeps both the worker and the uploads.
 */
function copyingLoader(Base) {
  return class CopyingFragmentLoader extends Base {
    load(context, config, callbacks) {
      const onSuccess = (response, ...rest) => {
        const data = response.data instanceof ArrayBuffer ? response.data.slice(0) : response.data;
        callbacks.onSuccess({ ...response, data }, ...rest);
      };
      return super.load(context, config, { ...callbacks, onSuccess });
    }
  };
}

/**
 * The engine knows each variant by its URL in the multivariant playlist, and looks each reloaded
 * playlist up by the URL hls.js loaded it from. With blocking reload (BLOCKING_RELOAD, the default)
 * that URL carries ?_HLS_msn=..., so every reload missed and the engine knew only the segments of the
 * first playlist: hls.js then loaded every later segment itself, over HTTP, never from peers. Hand the
 * engine the URL without the delivery directives. (segmentManager is the engine's own, unexported
 * field in 2.3.1; without it, P2P works as before, for the first playlist's segments only.)
 */
function keyPlaylistsWithoutDirectives(engine) {
  const manager = engine.segmentManager;
  if (!manager || typeof manager.updatePlaylist !== 'function') return;
  const update = manager.updatePlaylist.bind(manager);
  manager.updatePlaylist = (data) => {
    const { url, fragments, live } = data.details;
    update({ ...data, details: { url: withoutDirectives(url), fragments, live } });
  };
}

function withoutDirectives(text) {
  try {
    const url = new URL(text);
    for (const name of [...url.searchParams.keys()]) {
      if (name.startsWith('_HLS_')) url.searchParams.delete(name);
    }
    return url.href;
  } catch (err) {
    return text;
  }
}

function isCellular() {
  // As PeerTube does: a viewer on a metered mobile connection downloads from peers but uploads nothing.
  return Boolean(navigator.connection && navigator.connection.type === 'cellular');
}

/** The stats panel's P2P rows, after "Segment hosts" (or last). */
function addRows() {
  const list = document.querySelector('#stats dl');
  const names = [['s-p2p-peers-share', 'From peers'], ['s-p2p-http-share', 'From R2 (HTTP)'],
    ['s-p2p-peers', 'Peers connected']];
  const cells = [];
  const after = document.getElementById('s-hosts');
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
