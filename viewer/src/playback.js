/* How this page's playback fares, for the streamer (issue 42): what the heartbeat reports to the service
 * (watching.js sends it; broadcaster/status/playback.py takes it) and to Owncast's Stream Health.
 *
 * Measured here, from the page's own events, as totals since the page loaded:
 * - the start-up: navigation to the first 'playing' (not when the viewer had to press play first);
 * - watched and stalled time: the video playing, or waiting for data after its first frame (a seek, a
 *   pause, a player being made anew are neither), and the stalls begun;
 * - latency behind live: the service's clock (the page's own corrected by the heartbeat's answer, so a
 *   wrong clock on the viewer's device does not matter) minus the shown frame's PROGRAM-DATE-TIME; none
 *   while the viewer chose to watch behind (sought back, or ?start=) until back near the live edge;
 * - the variant playing (the number in its playlist's path, as the service's variants are numbered) and
 *   the switches; frames decoded and dropped; errors by kind and outcome (player.js's errorKinds);
 * - segments loaded by source, with their download time and bytes: from the bucket over HTTP (hls.js's
 *   own timing), or, with P2P, each as P2P Media Loader completed it, from a peer or the bucket (its
 *   attempt's start to its end: hls.js's figures for those are made up from the engine's bandwidth);
 * - with P2P: bytes sent to peers, segments from peers verified and rejected, peers banned (p2p.js).
 *
 * The report itself (broadcaster/status/playback.py says why binary): base64 of a version byte (1), then
 * the fields of its FIELDS, little-endian unsigned integers of the widths WIDTHS gives (each clamped to
 * what its width holds; the largest value: no figure), counts since the previous report, the P2P ones
 * only with P2P on; at most one per `minGapMs`. Nothing identifies the viewer. A report the service did
 * not take (too soon after the last one, or more than its time allows) is counted again in the next.
 * The start-up goes in every report until one with it is taken, then never again: once per page, also
 * when the page pauses (it leaves the count) and plays on.
 *
 * Content steering (PATHWAYS): the pathway the page plays (its hls.js level's PATHWAY-ID) and its segment
 * fetches that failed on each pathway go with every beat in the header Hb-Pathway (pathwayWord(),
 * broadcaster/steering/reports.py reads it: `<pathway or -> <id>=<count> ...`, only the pathways with
 * failures). The service moves nobody on it (anyone can send it), but looks at the bucket at once, and
 * while the bucket serves everyone else it sends this page's address the VM's bytes for a while instead
 * of redirecting it to the bucket. A failed fetch on the VM's pathway while the last steering manifest
 * put the bucket first is counted as the bucket's: the VM then answers with a redirect to the bucket,
 * and it is the bucket that failed. onFailure(fn) is told of each failed fetch from a bucket at once
 * (watching.js then beats without waiting for its interval).
 *
 * create({ video, hls, position, player, p2p, behindLive }): hls() is the current hls.js player or
 * null; player() is player.js's snapshot (its errors by kind, autoplayBlocked), p2p() p2p.js's or null,
 * behindLive() the seconds behind the live button's position or null (stats.js). Returns { attach(hls),
 * report(minGapMs) ({ text: Hb-Report's value, change } or null), answered(report, sentAt, receivedAt,
 * body), changes() (totals' changes, take() and undo(change): changesOf, FIELDS' order from watched on,
 * without latency and variant), latency(), latencyNow(),
 * stalledNow(), bandwidth(), bitrate(), pathwayWord(), onFailure(fn), snapshot() (the figures below, read-only: the
 * stats panel's, and the test hook's viewerStats.playback) }.
 */

import { snapshot as frozen } from './snapshot.js';

const VARIANT_IN_PATH = /\/(\d+)\/(?:playlist|stream)\.m3u8(?:[?#]|$)/; // the service's and Owncast's paths
const REWOUND_S = 4; // a seek this far back is the viewer's choice to watch behind live
const KEPT_URLS = 64; // segment URLs remembered between the engine's events and hls.js's
// broadcaster/status/playback.py's FIELDS, in order: bytes per field (1, 2 or 4).
const WIDTHS = [4, 4, 1, 4, 4, 1, 1, 2, 2, 1, 1, 1, 1, 1, 1, 2, 4, 4, /* P2P: */ 2, 4, 4, 4, 2, 2, 1];
const WITHOUT_P2P = 18;
const VERSION = 1;
// broadcaster/playlist/hls.py's PATHWAYS; a pathway whose ID starts with one of them (the service's own
// aliases of it, e.g. bucket-2) counts as that one.
const PATHWAYS = ['bucket', 'vm', 'backup'];
const VM = 'vm';
const MOST_FAILED = 255; // broadcaster/steering/reports.py's MOST
const FRAG_ERRORS = ['fragLoadError', 'fragLoadTimeOut'];

/** The pathway (of PATHWAYS) an hls.js level belongs to, or null. */
export function pathwayOf(level) {
  const id = level && (level.pathwayId || (level.attrs && level.attrs['PATHWAY-ID']));
  return (id && PATHWAYS.find((p) => id === p || id.startsWith(p + '-'))) || null;
}

/** The report's bytes, base64: each value clamped to its width, -1 (no figure) its largest value. */
function encode(values) {
  const size = 1 + values.reduce((n, v, i) => n + WIDTHS[i], 0);
  const view = new DataView(new ArrayBuffer(size));
  view.setUint8(0, VERSION);
  let at = 1;
  values.forEach((v, i) => {
    const width = WIDTHS[i];
    const most = 2 ** (8 * width) - 1;
    const value = v < 0 ? most : Math.min(Math.round(v), most - 1);
    if (width === 1) view.setUint8(at, value);
    else if (width === 2) view.setUint16(at, value, true);
    else view.setUint32(at, value, true);
    at += width;
  });
  return btoa(String.fromCharCode(...new Uint8Array(view.buffer)));
}

/** A view of `totals()` (an array of counts) that answers what changed since its previous take(). undo(change):
 * that take's change did not go; the next take carries it. Not a step back to the totals before that take: a
 * heartbeat's report may be answered after the next one went (a slow answer, a 503 later than a beat), and
 * stepping back then lost the first report's counts and counted the second's twice (a page's P2P rejection
 * never reached /metrics, 2026-11-28). */
export function changesOf(totals) {
  let last = totals();
  let carried = null;
  return {
    take() {
      const now = totals();
      const change = now.map((v, i) => v - last[i] + (carried ? carried[i] : 0));
      last = now;
      carried = null;
      return change;
    },
    undo(change) {
      carried = carried ? carried.map((v, i) => v + change[i]) : change.slice();
    },
  };
}

export function create({ video, hls, position, player, p2p, behindLive }) {
  const figures = {
    startupMs: -1,
    watchedMs: 0,
    stalls: 0,
    stalledMs: 0,
    switches: 0,
    variant: -1,
    latencyMs: -1, // the last figure measured (at a report)
    clockOffsetMs: null, // the service's clock minus this page's performance clock (timeOrigin + now)
    clockRttMs: null, // the round trip of the answer that offset came from (the smallest seen)
    skewMs: null, // the service's clock minus this device's Date.now()
    bucket: { segments: 0, ms: 0, bytes: 0 },
    peer: { segments: 0, ms: 0, bytes: 0 },
    frames: 0,
    droppedFrames: 0,
    pathway: null, // the pathway the page plays (content steering), as last told
    failed: { bucket: 0, vm: 0, backup: 0 }, // segment fetches that failed, by pathway, since the last word
    reports: 0, // sent with a heartbeat
    notTaken: 0, // answered as not taken (too soon): counted again in the next
    lastReport: null,
  };
  const params = new URLSearchParams(location.search);
  let rewound = params.has('start'); // watching behind live by choice: no latency figure
  let state = 'idle'; // 'idle' | 'playing' | 'stalled'
  let since = performance.now();
  let everPlayed = false;
  let lastTime = 0; // the video's time at the last timeupdate (to tell a seek back from a nudge)
  let frames = { total: 0, dropped: 0 }; // the video's own counters, last read
  let reportedAt = -Infinity;
  const failureListeners = [];
  let startupSent = false; // the last report carried the start-up
  let startupTaken = false; // a report with it was taken: the service has it
  const ours = changes();

  function set(next) {
    const now = performance.now();
    if (state === 'playing') figures.watchedMs += now - since;
    else if (state === 'stalled') figures.stalledMs += now - since;
    if (next === 'stalled' && state !== 'stalled') figures.stalls += 1;
    state = next;
    since = now;
  }

  video.addEventListener('playing', () => {
    if (!everPlayed) {
      everPlayed = true;
      // Navigation to the first frame, unless the viewer had to start it (autoplay refused: player.js).
      if (!player().autoplayBlocked) figures.startupMs = performance.now();
    }
    set('playing');
  });
  video.addEventListener('waiting', () => {
    set(everPlayed && !video.seeking && !video.paused ? 'stalled' : 'idle');
  });
  for (const name of ['pause', 'ended', 'emptied', 'seeking', 'error']) {
    video.addEventListener(name, () => set('idle'));
  }
  video.addEventListener('seeking', () => {
    if (everPlayed && video.currentTime < lastTime - REWOUND_S) rewound = true;
  });
  video.addEventListener('timeupdate', () => {
    if (!video.seeking) lastTime = video.currentTime;
  });

  /** A new hls.js player (player.js): its switches and segments, and P2P Media Loader's when on. */
  function attach(h) {
    const Hls = window.Hls;
    let switched = false;
    const starts = new Map(); // segment URL -> when the engine's current attempt at it started
    const engineLoaded = new Set(); // segments the engine loaded and counted: hls.js's event skips them
    const engine = h.p2pEngine;
    if (engine) {
      const forget = (d) => starts.delete(d.segment.url);
      engine.addEventListener('onSegmentStart', (d) => {
        if (starts.size >= KEPT_URLS) starts.clear();
        starts.set(d.segment.url, performance.now());
      });
      engine.addEventListener('onSegmentError', forget);
      engine.addEventListener('onSegmentAbort', forget);
      engine.addEventListener('onSegmentLoaded', (d) => {
        const start = starts.get(d.segmentUrl);
        starts.delete(d.segmentUrl);
        add(d.downloadSource === 'p2p' ? figures.peer : figures.bucket,
          start === undefined ? 0 : performance.now() - start, d.bytesLength);
        if (engineLoaded.size >= KEPT_URLS) engineLoaded.delete(engineLoaded.values().next().value);
        engineLoaded.add(d.segmentUrl);
      });
    }
    h.on(Hls.Events.FRAG_LOADED, (event, data) => {
      const frag = data.frag;
      if (frag.sn === 'initSegment' || engineLoaded.delete(frag.url)) return;
      const s = (data.part || frag).stats;
      add(figures.bucket, Math.max(0, s.loading.end - s.loading.start), s.loaded);
    });
    let bucketFirst = false; // the last steering manifest put a bucket first: the VM redirects there
    h.on(Hls.Events.STEERING_MANIFEST_LOADED, (event, data) => {
      const priority = (data.steeringManifest && data.steeringManifest['PATHWAY-PRIORITY']) || [];
      const first = priority.length ? pathwayOf({ pathwayId: priority[0] }) : null;
      bucketFirst = first !== null && first !== VM;
    });
    h.on(Hls.Events.ERROR, (event, data) => {
      if (data.fatal || !FRAG_ERRORS.includes(data.details) || !data.frag) return;
      let pathway = pathwayOf(h.levels[data.frag.level]);
      if (!pathway) return;
      if (pathway === VM && bucketFirst) pathway = 'bucket';
      figures.failed[pathway] += 1;
      if (pathway !== VM) failureListeners.forEach((fn) => fn(pathway));
    });
    h.on(Hls.Events.LEVEL_SWITCHED, (event, data) => {
      if (switched) figures.switches += 1; // the first is the start, not a switch
      switched = true;
      const level = h.levels[data.level];
      const uri = level ? level.uri || [].concat(level.url || [])[0] || '' : '';
      const found = VARIANT_IN_PATH.exec(uri);
      figures.variant = found ? Number(found[1]) : -1;
    });
  }

  function add(source, ms, bytes) {
    source.segments += 1;
    source.ms += ms;
    source.bytes += bytes || 0;
  }

  /** Everything counted so far (time in the current state included). */
  function totals() {
    set(state);
    readFrames();
    const e = player().errorKinds;
    const p = sharing();
    return [figures.watchedMs, figures.stalls, figures.stalledMs, figures.switches, figures.frames,
      figures.droppedFrames, e.network.recovered, e.network.fatal, e.media.recovered, e.media.fatal,
      e.other.recovered, e.other.fatal, figures.bucket.segments, figures.bucket.ms, figures.bucket.bytes,
      figures.peer.segments, figures.peer.ms, figures.peer.bytes,
      p ? p.bytesToPeers : 0, p ? p.verifiedSegments : 0, p ? p.rejectedSegments : 0, p ? p.bannedPeers : 0];
  }

  function readFrames() {
    const q = typeof video.getVideoPlaybackQuality === 'function' ? video.getVideoPlaybackQuality() : null;
    if (!q) return;
    // The element's counters start again with each new source: a smaller figure is a new count.
    const total = q.totalVideoFrames >= frames.total ? q.totalVideoFrames - frames.total : q.totalVideoFrames;
    const dropped = q.droppedVideoFrames >= frames.dropped ? q.droppedVideoFrames - frames.dropped
      : q.droppedVideoFrames;
    figures.frames += total;
    figures.droppedFrames += dropped;
    frames = { total: q.totalVideoFrames, dropped: q.droppedVideoFrames };
  }

  /** A view of the totals that answers what changed since its previous take() (changesOf). */
  function changes() {
    return changesOf(totals);
  }

  /** The service's clock now (ms since the epoch), or null before the heartbeat said it. */
  function serviceNow() {
    if (figures.clockOffsetMs === null) return null;
    return performance.timeOrigin + performance.now() + figures.clockOffsetMs;
  }

  /** P2P's figures when it is on, else null. */
  function sharing() {
    const p = p2p();
    return p && !p.off ? p : null;
  }

  /** ms from the shown frame's PROGRAM-DATE-TIME to the service's clock now; -1 without one (no clock
   * yet, no date, or the viewer chose to watch behind). */
  function latencyNow() {
    const date = position.playingDate();
    const now = serviceNow();
    // Back near the live edge (the live button, or caught up): following live again.
    const lag = behindLive();
    const near = lag !== null && lag <= 2 * position.targetDuration();
    if (rewound && date !== null && near) rewound = false;
    return date === null || now === null || rewound ? -1 : Math.max(0, now - date);
  }

  /** latencyNow(), kept as the figure reported. */
  function latency() {
    figures.latencyMs = latencyNow();
    return figures.latencyMs;
  }

  /** The report for the heartbeat (its text, and the change it carries: undone if it is not taken), or null
   * when the last one went less than minGapMs ago. */
  function report(minGapMs) {
    const at = performance.now();
    if (at - reportedAt < minGapMs) return null;
    reportedAt = at;
    const d = ours.take();
    const whole = (v) => Math.max(0, Math.round(v));
    startupSent = figures.startupMs >= 0 && !startupTaken;
    const fields = [startupSent ? Math.round(figures.startupMs) : -1, whole(d[0]), whole(d[1]),
      whole(d[2]), Math.round(latency()), figures.variant, ...d.slice(3).map(whole)];
    const text = encode(sharing() ? fields : fields.slice(0, WITHOUT_P2P));
    figures.reports += 1;
    figures.lastReport = fields;
    return { text, change: d };
  }

  /** The heartbeat's answer to `report`: the service's clock, and whether it took the report. `body`
   * null: no report answer came (not counted: 429; a 500; the beat failed on the way), so the report was
   * not taken either and its counts go into the next, as after "too soon". Dropping them instead lost
   * the P2P rejections a page had seen (CI, 2026-11-27); a beat that failed after the service took it
   * counts twice, within what the service lets a page's time hold (status/playback.py). */
  function answered(sent, sentAt, receivedAt, body) {
    if (!body || typeof body.now !== 'number') {
      if (sent) notTaken(sent);
      return;
    }
    const rtt = receivedAt - sentAt;
    if (figures.clockRttMs === null || rtt <= figures.clockRttMs) {
      // The service read its clock about halfway through the round trip; the fastest answer says it best.
      figures.clockRttMs = rtt;
      figures.clockOffsetMs = body.now - (performance.timeOrigin + (sentAt + receivedAt) / 2);
      figures.skewMs = Math.round(body.now - (Date.now() - (performance.now() - (sentAt + receivedAt) / 2)));
    }
    if (sent && body.taken === 0) {
      notTaken(sent);
    } else if (sent && startupSent) {
      startupTaken = true;
    }
  }

  function notTaken(sent) {
    figures.notTaken += 1;
    ours.undo(sent.change);
    reportedAt = -Infinity;
  }

  /** Hb-Pathway's value: the pathway played now ('-' when not known), then `<pathway>=<count>` for each
   * on which fetches failed since the last word (counted from zero again); null without content steering
   * (one pathway). */
  function pathwayWord() {
    const h = hls();
    if (!h || !h.pathways || h.pathways.length < 2) return null;
    figures.pathway = pathwayOf(h.levels[h.currentLevel] || h.levels[h.loadLevel]);
    const failed = PATHWAYS.filter((p) => figures.failed[p] > 0)
      .map((p) => `${p}=${Math.min(MOST_FAILED, figures.failed[p])}`);
    PATHWAYS.forEach((p) => { figures.failed[p] = 0; });
    return [figures.pathway || '-', ...failed].join(' ');
  }
  /** The playing variant's BANDWIDTH (bits/s, hls.js's level), 0 when not known. */
  function bitrate() {
    const h = hls();
    const level = h && h.levels ? h.levels[h.currentLevel] : null;
    return level && level.bitrate > 0 ? level.bitrate : 0;
  }

  /** hls.js's bandwidth estimate (bits/s), 0 without one. */
  function bandwidth() {
    const h = hls();
    return h && h.bandwidthEstimate > 0 ? h.bandwidthEstimate : 0;
  }

  return {
    attach,
    report,
    answered,
    changes,
    stalledNow: () => state === 'stalled',
    latency,
    latencyNow,
    bandwidth,
    bitrate,
    pathwayWord,
    onFailure: (fn) => failureListeners.push(fn),
    snapshot: () => {
      set(state); // the time in the current state counted
      return frozen(figures);
    },
  };
}
