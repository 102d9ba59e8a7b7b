/* Owncast's Stream Health for this page's viewers (OWNCAST_URL): the page's playback as CMCD v2 event
 * reports in JSON, POSTed from the viewer's own browser to Owncast's collector, config.owncast.cmcd
 * (/api/metrics/cmcd, Owncast 0.2: webserver/handlers/cmcdCollector.go). Owncast tells viewers apart by
 * the request's address and User-Agent, so only the viewer's browser can send them (relayed by the VM,
 * every viewer would be one). Nothing goes into segment URLs: the bucket's cache keys stay as they are.
 *
 * When: at the first frame and at each change of state (playing, paused, stalled, seeking, ended; at most
 * one POST each MIN_GAP_MS, the latest state winning), and every config.owncast.report seconds while the
 * video plays (Owncast's own player's cadence, 10 s). What, in the keys the collector reads (its
 * hlsMetrics.go, registerCMCDKeys), from the counts the heartbeat's report to /metrics carries
 * (playback.js's changes(): the same segments, bytes, download times, stalls and errors):
 *   sid   a random id made here for this page: Owncast's playback client (not the heartbeat's id)
 *   sta   the player's state, CMCD's tokens: p playing, a paused, r rebuffering, k seeking, e ended
 *   mtp   the window's segment bytes over their download time, kbit/s (no segment loaded: none)
 *   ttlb  the window's mean segment download time, ms
 *   ltc   the latency behind live, ms (playback.js's figure; none while the viewer watches behind)
 *   br    the playing variant's BANDWIDTH, kbit/s (Owncast counts a change as a variant switch)
 *   bs    on one report per stall begun, and e="e" on one report per player error: the collector adds
 *         one error for each, so Owncast's count for this viewer is the page's stalls plus errors
 * Everything goes as one JSON array per POST (at most MAX_ITEMS reports: the rest go with the next), in a
 * text/plain body: a request without preflight (the collector reads the body as JSON whatever its type,
 * and answers with CORS headers for any origin, so the page reads its status).
 *
 * An Owncast without the collector (before 0.2) answers 404 there, without CORS headers: the request
 * fails where a no-cors one reaches the same URL. The page then sends, for the rest of its life, what
 * Owncast's older page sends to /api/metrics/playback (config.owncast.metrics; its
 * web/components/video/metrics/playback.js) at the same cadence. A request that fails because the
 * network did (the no-cors one fails too) changes nothing: its counts go with the next.
 *
 * create({ owncast, playback, video, post, now }): owncast is config.json's "owncast", playback
 * playback.js's, post fetch (a test gives its own), now Date.now. Returns { start() and stop() (the
 * cadence: watching.js calls them as the page plays and pauses), snapshot() (what went, for the test
 * hook viewerStats.owncast) }. */

import { snapshot as frozen } from './snapshot.js';

const MIN_GAP_MS = 1000; // a page flapping between states POSTs no more than once a second
const MAX_ITEMS = 64; // reports in one POST: about 4 KB, well inside the collector's 64 KiB
// playback.js's changes(), FIELDS' order from watched on: what the reports read of it.
const STALLS = 1;
const ERRORS = [6, 12]; // errors by kind and outcome, six fields
const BUCKET = 12; // segments, ms, bytes from the bucket; PEER the same from peers
const PEER = 15;

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The CMCD reports for one POST: for each stall begun in `change` a rebuffering report with bs, for each
 * error one with e="e", then the report of the state `sta` (event `event`: 'ps' a state change, 't' the
 * interval) with the window's measures, last (the collector keeps the last state it reads). At most `max`
 * reports: `left` is the stalls and errors that did not fit. */
export function reportsFrom(change, { sid, sta, event, latencyMs, bitrateBps, ts }, max = MAX_ITEMS) {
  const segments = change[BUCKET] + change[PEER];
  const ms = change[BUCKET + 1] + change[PEER + 1];
  const bytes = change[BUCKET + 2] + change[PEER + 2];
  const head = { v: 2, sid, ts, e: event, sta };
  if (segments > 0 && ms > 0) {
    head.mtp = Math.round((bytes * 8) / ms); // bits per ms: kbit/s
    head.ttlb = Math.round(ms / segments);
  }
  if (latencyMs >= 0) head.ltc = Math.round(latencyMs);
  if (bitrateBps > 0) head.br = Math.round(bitrateBps / 1000);
  let stalls = Math.max(0, change[STALLS]);
  let errors = change.slice(...ERRORS).reduce((a, b) => a + Math.max(0, b), 0);
  const items = [];
  while (items.length < max - 1 && errors > 0) {
    items.push({ v: 2, sid, ts, e: 'e' });
    errors -= 1;
  }
  while (items.length < max - 1 && stalls > 1) {
    items.push({ v: 2, sid, ts, e: 'ps', sta: 'r', bs: true });
    stalls -= 1;
  }
  if (stalls > 0) {
    head.bs = true;
    stalls -= 1;
  }
  items.push(head);
  return { items, left: { stalls, errors } };
}

/** The body Owncast's older page sends to /api/metrics/playback for `change`, or null when no segment was
 * loaded in it (as that page: nothing then, the window goes on). */
export function legacyReport(change, { bandwidthBps, latencyMs, stalledNow }) {
  const segments = change[BUCKET] + change[PEER];
  if (!segments) return null;
  const errors = change.slice(...ERRORS).reduce((a, b) => a + b, 0);
  return {
    bandwidth: Math.round(bandwidthBps / 1000), // kbit/s, as Owncast's page sends it
    latency: latencyMs >= 0 ? latencyMs / 1000 : 0, // 0: Owncast keeps none
    errors: change[STALLS] + errors + (stalledNow ? 1 : 0),
    downloadDuration: (change[BUCKET + 1] + change[PEER + 1]) / segments / 1000,
    qualityVariantChanges: change[3],
  };
}

/** `change` less the stalls and errors `left` says did not go (they go with the next take()). */
function notSent(change, left) {
  const out = change.map(() => 0);
  out[STALLS] = left.stalls;
  out[ERRORS[0]] = left.errors; // carried as network/recovered: only their sum is read here
  return out;
}

export function create({ owncast, playback, video, post = (...a) => fetch(...a), now = Date.now }) {
  const changes = playback.changes();
  const sid = randomId();
  const own = {
    mode: owncast.cmcd ? 'cmcd' : 'legacy', // 'legacy': /api/metrics/playback, for an Owncast before 0.2
    sid,
    posts: 0, // POSTs Owncast answered with a success
    stalls: 0, // in those: reports with bs
    errors: 0, // reports with e="e"
    last: null, // the last report of a state sent (its measures)
  };
  let cadence = null;
  let pending = null; // a state change to report
  // POSTs in a row refused while a no-cors request got through. One alone is no verdict: a network back
  // between the POST and the no-cors one looks the same, and would leave the collector for good.
  let refused = 0;
  let timer = null;
  let lastPostAt = -Infinity;
  let played = false;

  function state() {
    if (video.ended) return 'e';
    if (video.seeking) return 'k';
    if (video.paused) return 'a';
    return playback.stalledNow() ? 'r' : 'p';
  }

  /** A state change: reported at once, or MIN_GAP_MS after the last POST (the state then, the latest). */
  function changed() {
    if (!played || own.mode !== 'cmcd') return;
    pending = 'ps';
    if (timer !== null) return;
    const wait = Math.max(0, lastPostAt + MIN_GAP_MS - performance.now());
    timer = setTimeout(() => {
      timer = null;
      send(pending || 't');
      pending = null;
    }, wait);
  }

  function send(event) {
    if (own.mode === 'legacy') {
      if (event === 't') sendLegacy();
      return;
    }
    lastPostAt = performance.now();
    const change = changes.take();
    const { items, left } = reportsFrom(change, { sid, sta: state(), event, latencyMs: playback.latencyNow(),
      bitrateBps: playback.bitrate(), ts: now() });
    const carried = notSent(change, left);
    if (left.stalls || left.errors) changes.undo(carried);
    const sent = change.map((v, i) => v - carried[i]);
    const body = JSON.stringify(items);
    post(owncast.cmcd, { method: 'POST', mode: 'cors', cache: 'no-store', credentials: 'omit', body })
      .then((response) => {
        refused = 0;
        if (response.status === 404) return fallBack(sent);
        if (!response.ok) return null; // refused (400: the collector found no report): not sent again
        own.posts += 1;
        own.stalls += items.filter((r) => r.bs).length;
        own.errors += items.filter((r) => r.e === 'e').length;
        own.last = items[items.length - 1];
        return null;
      })
      .catch(() => post(owncast.cmcd, { mode: 'no-cors', cache: 'no-store', credentials: 'omit' })
        .then(() => { // reached without CORS, twice in a row: not the collector
          refused += 1;
          if (refused >= 2) fallBack(sent);
          else changes.undo(sent);
        }, () => changes.undo(sent)));
  }

  /** Owncast has no collector: its older endpoint from now on, carrying what did not reach it. */
  function fallBack(sent) {
    changes.undo(sent);
    own.mode = 'legacy';
  }

  function sendLegacy() {
    const change = changes.take();
    const body = legacyReport(change, { bandwidthBps: playback.bandwidth(), latencyMs: playback.latency(),
      stalledNow: playback.stalledNow() });
    if (body === null) {
      changes.undo(change);
      return;
    }
    // A plain-text body needs no preflight, so no-cors delivers it (that Owncast sends no CORS headers
    // there, and reads the body as JSON whatever its type).
    post(owncast.metrics, { method: 'POST', mode: 'no-cors', cache: 'no-store', credentials: 'omit',
      body: JSON.stringify(body) }).catch(() => {});
  }

  video.addEventListener('playing', () => {
    played = true;
    changed();
  });
  video.addEventListener('waiting', () => {
    if (playback.stalledNow()) changed();
  });
  for (const name of ['pause', 'seeking', 'ended']) video.addEventListener(name, changed);
  if (!video.paused && video.readyState > 2) {
    played = true; // playing before this module came (watching.js is imported once the page plays)
    changed();
  }

  return {
    start() {
      if (cadence === null && owncast.report > 0) cadence = setInterval(() => send('t'), owncast.report * 1000);
    },
    stop() {
      clearInterval(cadence);
      cadence = null;
    },
    snapshot: () => frozen(own),
  };
}
