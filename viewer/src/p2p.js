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
 * Nothing reaches hls.js unchecked (issues 31 and 40; p2p-trust.js): the service lists the SHA-256 of
 * each segment near the live edge in the media playlist (#EXT-HB-SHA256, broadcaster/playlist/hls.py),
 * which hls.js keeps in each fragment's tagList. The engine learns a segment only together with its hash
 * (a segment listed without one is never asked of peers: hls.js loads it from the bucket), and every
 * segment the engine completes, from a peer or from the bucket, is hashed (WebCrypto) before the engine
 * hands it on. The vendored engine is patched (VENDOR.md) so that a failed or aborted attempt's bytes
 * never seed another. A peer's segment that fails: the bytes are dropped, the engine fetches the segment
 * again (over HTTP when it is due), destroys that connection, and when every byte came from that peer
 * alone this page refuses it for the rest of its life (the tracker may introduce it again). A peer that
 * announces a size no segment of its variant has is dropped; one that leaves its uploads unfinished (more
 * than 3 beyond those it delivered) is dropped and refused the same way. Should the engine ever make more
 * bucket GETs per segment than a page without P2P (one), the page stops asking peers. Without WebCrypto
 * (a page over plain http on another host than localhost) there is no P2P at all.
 *
 * What it counts (`stats` below) is its own, and so are the checks' and the GET budget's counts
 * (p2p-trust.js: Checks, GetBudget): snapshot() composes the three into one read-only copy (the stats
 * panel's, and the test hook's window.viewerStats.p2p).
 *
 * Peers only when allowed: the engine starts with P2P off (no tracker, no RTCPeerConnection) and
 * allow(true) turns it on once the viewer chose it and enough viewers are there (p2p-choice.js).
 * Uploads stop on a metered connection (cellular, or the browser's data saver) and once this visit has
 * sent config.p2p.uploadMb MB to peers (P2P_UPLOAD_MB).
 */
import { HlsJsP2PEngine } from '../p2p-media-loader-hlsjs.es.min.js';
import { retoken } from './p2p-retoken.js';
import { Checks, GetBudget, SegmentHashes, Unfinished } from './p2p-trust.js';
import { snapshot as frozen } from './snapshot.js';

const LIVE_SYNC_SEGMENTS = 3; // hls.js's default; without it the engine moves playback to the window's start
const START_HIGH_DEMAND_SECONDS = 24 * 3600; // until the video plays: everything is urgent (see above)
const VALIDATION_FAILED = 'p2p-segment-validation-failed'; // P2P Media Loader's error type
const ABSENT = 'peer-segment-absent'; // the peer no longer has the segment: not an upload it left unfinished
const P2P_OFF = { mainStream: { isP2PDisabled: true }, secondaryStream: { isP2PDisabled: true } };
// Peer ids a page remembers as banned: a new id costs an attacker nothing, a connection each time, so
// the list only needs to hold the ones seen lately; the oldest is forgotten first.
const MAX_BANNED = 256;
const RETOKEN_MS = 5000; // a private stream: how soon a renewed token reaches the tracker connections

/** Everything viewer.js needs: { createHls, snapshot }, createHls(config) in place of `new Hls(config)`,
 * or null when P2P cannot be safe here (no WebCrypto: the page then plays from the bucket alone, and
 * snapshot() says why, as `off`). access: a private stream's token (access.js), or null: the trackers'
 * URLs carry it as the page holds it when a player is made (the counts keep the URLs without it), and a
 * segment of the service's (the VM's pathway) is fetched with it. */
export function create(options, access = null) {
  const valid = options && Array.isArray(options.trackers) && options.trackers.length
    && options.trackers.every((url) => /^wss?:\/\//.test(url)) && typeof options.swarm === 'string' && options.swarm
    && Array.isArray(options.stun) && options.stun.every((url) => /^stuns?:/i.test(url));
  if (!valid) {
    throw new TypeError('config.json "p2p": expected {"trackers": ["wss://..."], "swarm": "<id>", "stun": ["stun:..."]}');
  }
  if (!(globalThis.crypto && crypto.subtle && typeof crypto.subtle.digest === 'function')) {
    // Peers' bytes could not be checked: none are taken. WebCrypto needs a secure context.
    const reason = 'no WebCrypto to check peers\' segments (the page needs https, or http on localhost)';
    console.warn('P2P off:', reason);
    return { createHls: null, snapshot: () => frozen({ off: reason }) };
  }
  const uploadCap = Number.isFinite(options.uploadMb) && options.uploadMb >= 0 ? options.uploadMb * 1e6 : Infinity;
  const stats = {
    trackers: options.trackers.slice(),
    stun: options.stun.slice(), // the STUN servers given to WebRTC, in place of the library's (Google's, Twilio's)
    swarm: options.swarm,
    bytesFromPeers: 0, // segment bytes received over WebRTC, rejected ones too
    bytesFromHttp: 0, // segment bytes P2P Media Loader fetched from the bucket
    bytesToPeers: 0, // bytes this viewer sent to others
    peerShare: 0, // bytes from peers kept (not rejected) / all segment bytes the P2P engine loaded, 0..1
    peers: 0, // peers connected now
    peersSeen: 0, // peers connected at some point, this page's lifetime
    trackerErrors: 0, // the tracker refused or failed (P2P Media Loader's onTrackerError)
    trackerWarnings: 0, // e.g. the tracker cannot be reached (onTrackerWarning): HTTP alone goes on
    trackerTokens: 0, // a private stream: tracker connections moved to a renewed token (p2p-retoken.js)
    uploadDisabled: isMetered() || uploadCap <= 0, // 0 MB: sends nothing from the start
    uploadCap, // bytes; once sent, this visit sends no more (the rest of the segment being sent may pass it)
    allowed: false, // the viewer's choice and the swarm's size (p2p-choice.js) let it ask peers
    rejectedSegments: 0, // segments peers sent that did not hash as the playlist says: dropped, refetched
    rejectedBytes: 0,
    discardedBytes: 0, // bytes from peers dropped: rejected ones, attempts that failed or were aborted, and
    // bytes that came for no attempt going on (the rest of a segment the page stopped waiting for)
    unblamedRejections: 0, // rejected segments not wholly from the peer that completed them: nobody banned
    peersOff: null, // why this page stopped asking peers, if it did
    bannedPeers: 0, // peers that sent one: disconnected and refused for this page's life
    bannedPeerIds: [], // the latest MAX_BANNED
    unfinishedAttempts: 0, // peers' attempts that ended without a segment (timed out, aborted, cut short)
    droppedPeers: 0, // peers that left too many uploads unfinished: disconnected and refused for this page's life
    droppedPeerIds: [], // the latest MAX_BANNED
    refusedConnections: 0, // connections from a banned peer that the tracker introduced again, closed
    unhashedSegments: 0, // segments the newest playlist lists without a hash: never asked of peers
  };
  const hashes = new SegmentHashes();
  // Their own counts (verified*, verifyMs, httpMismatches, oversizedAnnouncements; httpGets,
  // deliveredSegments, getsPerSegment), read through their snapshot().
  const checks = new Checks(hashes);
  const budget = new GetBudget((why) => stopAskingPeers(why));
  const unfinished = new Unfinished();
  const banned = new Set(); // peer ids, for this page's life (the latest MAX_BANNED)
  const dropped = new Set(); // peer ids dropped for unfinished uploads, refused as banned ones are (the same)
  let current = null; // the engine of the newest player: older ones' late events are ignored
  if (access) {
    // A renewed token, to the tracker before the older one ends there (p2p-retoken.js).
    setInterval(() => {
      if (current) stats.trackerTokens += retoken(current, access);
    }, RETOKEN_MS);
  }
  let peers = new Set();

  /** What it and its checks and GET budget counted, read-only, with the share of the engine's bytes
   * peers gave (kept ones: a segment a peer is still sending is not kept yet, and may be rejected or
   * dropped). */
  function snapshot() {
    const kept = stats.bytesFromPeers - stats.discardedBytes - checks.pending();
    const total = kept + stats.bytesFromHttp;
    stats.peerShare = total ? kept / total : 0;
    return frozen({ ...stats, ...checks.snapshot(), ...budget.snapshot() });
  }

  function watch(engine) {
    current = engine;
    peers = new Set();
    stats.peers = 0;
    const mine = (listener) => (...args) => {
      if (engine === current) listener(...args);
    };
    engine.addEventListener('onChunkDownloaded', mine((bytes, source, peerId) => {
      if (source === 'p2p') {
        stats.bytesFromPeers += bytes;
        if (!checks.received(bytes, peerId)) stats.discardedBytes += bytes;
      } else {
        stats.bytesFromHttp += bytes;
      }
    }));
    engine.addEventListener('onSegmentStart', mine((details) => {
      stats.discardedBytes += checks.started(details);
    }));
    engine.addEventListener('onSegmentLoaded', mine((details) => {
      budget.delivered();
      if (details.downloadSource === 'p2p') {
        checks.ended(details.peerId);
        unfinished.delivered(details.peerId);
      }
    }));
    engine.addEventListener('onSegmentAbort', mine((details) => {
      if (details.downloadSource !== 'p2p') return;
      stats.discardedBytes += checks.ended(details.peerId);
      leftUnfinished(engine, details.peerId);
    }));
    engine.addEventListener('onChunkUploaded', mine((bytes) => {
      stats.bytesToPeers += bytes;
      if (!stats.uploadDisabled && stats.bytesToPeers >= stats.uploadCap) {
        stats.uploadDisabled = true; // this visit gave its share: it still takes from peers
        engine.applyDynamicConfig({ core: { isP2PUploadDisabled: true } });
      }
    }));
    engine.addEventListener('onPeerConnect', mine((peer) => {
      if (banned.has(peer.peerId) || dropped.has(peer.peerId)) {
        // The engine finishes setting the connection up after this event: close it right after.
        queueMicrotask(() => { if (refuse(engine, peer.peerId)) stats.refusedConnections += 1; });
        return;
      }
      peers.add(peer.peerId);
      stats.peers = peers.size;
      stats.peersSeen += 1;
    }));
    engine.addEventListener('onPeerClose', mine((peer) => {
      peers.delete(peer.peerId);
      stats.peers = peers.size;
    }));
    engine.addEventListener('onSegmentError', mine((details) => {
      if (!details || !details.error || details.downloadSource !== 'p2p') return;
      if (details.error.type !== VALIDATION_FAILED) {
        stats.discardedBytes += checks.ended(details.peerId); // timed out, wrong size, closed: dropped
        if (details.error.type !== ABSENT) leftUnfinished(engine, details.peerId);
        return;
      }
      const url = details.segment && details.segment.url;
      const verdict = checks.rejected(details);
      stats.rejectedSegments += 1;
      stats.rejectedBytes += verdict.bytes;
      stats.discardedBytes += checks.ended(details.peerId);
      if (verdict.why === 'mismatch' && !verdict.ban) stats.unblamedRejections += 1;
      // Dispatched before the engine destroys the connection. Only a peer that sent wrong bytes, all of
      // them, is banned: a segment with no hash here is not the peer's fault (and is not asked of peers
      // anyway), and bytes another source sent are not this peer's.
      if (verdict.ban && !banned.has(details.peerId)) {
        banned.add(details.peerId);
        if (banned.size > MAX_BANNED) banned.delete(banned.values().next().value);
        stats.bannedPeers += 1;
        stats.bannedPeerIds = [...banned];
        console.warn('P2P: peer ' + details.peerId + ' sent a segment that does not match its SHA-256 ('
          + url + '); it is refused from now on, the segment comes from the bucket');
      }
    }));
    engine.addEventListener('onTrackerError', mine(() => { stats.trackerErrors += 1; }));
    engine.addEventListener('onTrackerWarning', mine(() => { stats.trackerWarnings += 1; }));
  }

  /** A peer's attempt ended without a segment; past the bound (Unfinished) the peer is dropped and refused
   * for this page's life, as a banned one is (the engine would otherwise keep asking it). */
  function leftUnfinished(engine, peerId) {
    stats.unfinishedAttempts += 1;
    if (!unfinished.unfinished(peerId) || banned.has(peerId) || dropped.has(peerId)) return;
    dropped.add(peerId);
    if (dropped.size > MAX_BANNED) dropped.delete(dropped.values().next().value);
    stats.droppedPeers += 1;
    stats.droppedPeerIds = [...dropped];
    console.warn('P2P: peer ' + peerId + ' leaves its uploads unfinished (more than it delivers); it is '
      + 'dropped and refused from now on, its segments come from other peers or the bucket');
    // Now, the segments the engine believes it has (its announcement) go, so that the engine, still in the
    // turn that ended this attempt, asks it for no other; its connection is closed once that turn is done.
    for (const peer of peersOf(engine, peerId)) {
      if (peer.loadedSegments instanceof Set) peer.loadedSegments.clear();
    }
    queueMicrotask(() => refuse(engine, peerId));
  }

  const HlsWithP2P = HlsJsP2PEngine.injectMixin(window.Hls);

  /** P2P would cost the bucket more than no P2P (GetBudget): no more asking peers, for this page's life
   * (the engine still loads and checks every segment from the bucket). */
  function stopAskingPeers(why) {
    if (stats.peersOff) return;
    stats.peersOff = why;
    console.warn('P2P: not asking peers any more: ' + why);
    if (current) current.applyDynamicConfig({ core: P2P_OFF });
  }

  function createHls(config) {
    const Hls = window.Hls;
    const hlsConfig = { ...config };
    if (hlsConfig.liveSyncDuration === undefined && hlsConfig.liveSyncDurationCount === undefined) {
      hlsConfig.liveSyncDurationCount = LIVE_SYNC_SEGMENTS;
    }
    hlsConfig.p2p = {
      core: {
        announceTrackers: access ? stats.trackers.map(access.withToken) : stats.trackers,
        swarmId: stats.swarm,
        highDemandTimeWindow: START_HIGH_DEMAND_SECONDS,
        isP2PUploadDisabled: stats.uploadDisabled,
        rtcConfig: { iceServers: stats.stun.length ? [{ urls: stats.stun }] : [] },
        // Every segment the engine completes, whatever filled it, and every size a peer announces.
        validateP2PSegment: (url, byteRange, data) => checks.fromPeer(url, byteRange, data),
        validateHTTPSegment: (url, byteRange, data) => checks.fromBucket(url, byteRange, data),
        validateP2PSegmentSize: (url, byteRange, size) => checks.sizeAllowed(url, byteRange, size),
        httpRequestSetup: (url, byteRange, signal, range) => {
          budget.get();
          const asked = access ? access.refresh(url) : url;
          if (asked === url) return undefined; // the engine's own request
          const headers = range ? { Range: `bytes=${range.start}-${range.end ?? ''}` } : undefined;
          return new Request(asked, { headers, signal });
        },
        ...(stats.peersOff || !stats.allowed ? P2P_OFF : {}),
      },
      onHlsJsCreated(hls) {
        watch(hls.p2pEngine);
        hls.config.fLoader = copyingLoader(hls.config.fLoader);
        teachPlaylists(hls, hashes, stats);
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

  /** Peers or not (the viewer's choice and the swarm's size), from now on; off closes its connections. */
  function allow(on) {
    stats.allowed = Boolean(on);
    if (!current || stats.peersOff) return;
    const p2pOff = !stats.allowed;
    current.applyDynamicConfig({ core: {
      mainStream: { isP2PDisabled: p2pOff }, secondaryStream: { isP2PDisabled: p2pOff } } });
  }

  return { createHls, snapshot, allow };
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
 * What the engine learns of each playlist hls.js loads (its LEVEL_UPDATED: delta updates already merged,
 * skipped fragments being the earlier ones with their tags):
 * - only the fragments whose SHA-256 the playlist lists, recorded in `hashes` in the same step, so the
 *   engine never asks peers for a segment it cannot check (hls.js loads those from the bucket itself);
 * - the playlist's URL without delivery directives. The engine knows each variant by its URL in the
 *   multivariant playlist and looks each reloaded playlist up by the URL hls.js loaded it from; with
 *   blocking reload (BLOCKING_RELOAD, the default) that URL carries ?_HLS_msn=..., so every reload
 *   missed and the engine knew only the first playlist's segments.
 * segmentManager is the engine's own, unexported field in 2.3.1. Without it the engine would learn
 * segments with no hash recorded: P2P is then turned off for this player (every check would fail).
 */
function teachPlaylists(hls, hashes, stats) {
  const engine = hls.p2pEngine;
  const manager = engine.segmentManager;
  if (!manager || typeof manager.updatePlaylist !== 'function') {
    console.warn('P2P off: P2P Media Loader has no segmentManager.updatePlaylist (not 2.3.x?)');
    engine.applyDynamicConfig({ core: P2P_OFF });
    return;
  }
  const update = manager.updatePlaylist.bind(manager);
  manager.updatePlaylist = (data) => {
    const { url, fragments, live } = data.details;
    const key = withoutDirectives(url);
    const level = hls.levels && Number.isInteger(data.level) ? hls.levels[data.level] : null;
    const checkable = hashes.learn(key, fragments, level && level.bitrate > 0 ? level.bitrate : 0);
    stats.unhashedSegments = fragments.length - checkable.length;
    update({ ...data, details: { url: key, fragments: checkable, live } });
  };
}

/**
 * Close the connection to a banned peer the tracker introduced again. P2P Media Loader 2.3.1 offers no
 * way to refuse a peer: its tracker client accepts every peer the tracker pairs it with, and forgets a
 * peer once its connection is destroyed (so after a failed check, the same peer can come back at the
 * next announce). The connection is reached through the engine's own fields (core, the stream loaders,
 * their P2P loaders' trackerClient), none of them exported; if they are not there, the peer stays
 * connected and every segment it sends is still checked (and dropped when wrong).
 */
let warnedCannotRefuse = false;
function refuse(engine, peerId) {
  let closed = false;
  for (const peer of peersOf(engine, peerId)) {
    if (typeof peer.destroy === 'function') {
      peer.destroy();
      closed = true;
    }
  }
  if (!closed && !warnedCannotRefuse) {
    warnedCannotRefuse = true;
    console.warn('P2P: cannot close banned peer ' + peerId + ' (P2P Media Loader internals changed); '
      + 'its segments are still checked');
  }
  return closed;
}

/** The engine's own connections to `peerId` (its Peer objects), through the same fields as refuse(). */
function peersOf(engine, peerId) {
  const core = engine.core;
  const found = [];
  for (const streamLoader of [core && core.mainStreamLoader, core && core.secondaryStreamLoader]) {
    const loaders = streamLoader && streamLoader.p2pLoaders && streamLoader.p2pLoaders.loaders;
    if (!loaders || typeof loaders.values !== 'function') continue;
    for (const item of loaders.values()) {
      const client = item && item.loader && item.loader.trackerClient;
      const known = client && client._peers && client._peers.get(peerId);
      if (known && known.peer) found.push(known.peer);
    }
  }
  return found;
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

function isMetered() {
  // As PeerTube does: a viewer on a metered mobile connection, or who asked the browser to save data,
  // downloads from peers but uploads nothing.
  const connection = navigator.connection;
  return Boolean(connection && (connection.type === 'cellular' || connection.saveData === true));
}
