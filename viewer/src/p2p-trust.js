/* What viewer/p2p.js checks before any bytes reach hls.js through P2P Media Loader (issues 31 and 40):
 *
 * - SegmentHashes: each segment's SHA-256 from the playlists (#EXT-HB-SHA256, only near the live edge:
 *   broadcaster/playlist/hls.py) and the most bytes it may have (its variant's peak bitrate times its
 *   duration, with room to spare).
 * - Checks: every segment the engine completes, from a peer or from the bucket, hashed against the
 *   playlist (WebCrypto) before the engine hands it on; the size a peer announces, against that bound;
 *   and who sent what, so that a peer is blamed only for a segment whose every byte it sent alone.
 * - GetBudget: the bucket GETs the engine makes per segment it delivers. Without P2P a viewer makes one;
 *   past MAX_GETS_PER_SEGMENT over a window of segments, the page stops asking peers (whatever a peer
 *   does, P2P must not cost the bucket more than no P2P).
 * - Unfinished: each peer's uploads that never finished against those it delivered; past a bound the
 *   page drops that peer for good (a peer that withholds the end of every upload, issue 50's V5).
 *
 * The vendored engine is patched (viewer/VENDOR.md, "P2P Media Loader: the patch") so that a failed or
 * aborted attempt's bytes are dropped (never resumed by another source), a segment is checked as soon
 * as all its bytes are in (a peer that withholds its "completed" command gains nothing), and a peer's
 * announced size goes through validateP2PSegmentSize. */

const HASH_TAG = 'EXT-HB-SHA256'; // hls.SEGMENT_HASH_TAG without '#': hls.js keeps [name, value] in tagList
const HASH_TEXT = /^[A-Za-z0-9_-]{43}$/; // 32 bytes, unpadded base64url
// A segment's bytes at most: SIZE_FACTOR times its variant's peak bitrate (BANDWIDTH) times its duration,
// plus SIZE_SLACK. An encoder keeps segments near the bitrate it announces; twice it with room for a
// short segment's headers is never an honest segment's size, and a peer that announces more is dropped.
const SIZE_FACTOR = 2;
const SIZE_SLACK = 256 * 1024;
const GET_WINDOW = 20; // segments the engine delivered, per look at its GETs
const MAX_GETS_PER_SEGMENT = 1.25; // without P2P: 1; retries after a network error may add a few
const MAX_VERDICTS = 64;
const MAX_ATTEMPTS = 256;
// A peer may leave this many more uploads unfinished than it delivered before it is dropped. An honest
// peer delivers nearly all it starts (one left when a segment falls due as it sends, or the player moves
// on); a withholder delivers none, and is dropped at its fourth. Each unfinished attempt costs the page at
// most one segment's bytes (SIZE_FACTOR) and the segment's GET (it falls due and comes from the bucket),
// as without P2P.
const MAX_UNFINISHED = 3;
const MAX_TALLIES = 256; // peers tallied, the least recently seen forgotten first

/** url -> { hash (base64url), maxBytes } of the segments the playlists list with a hash, per playlist:
 * the newest version's and the one before (a segment that just left may still be arriving). */
export class SegmentHashes {
  constructor() {
    this.playlists = new Map(); // playlist URL -> { now: Map, before: Map }
  }

  /** The fragments of one playlist version (hls.js's, delta updates merged) that have a hash: recorded,
   * and returned (the engine learns only those). `bitrate`: the variant's peak bits/s, 0 if unknown. */
  learn(playlist, fragments, bitrate) {
    const known = new Map();
    const checkable = [];
    for (const fragment of fragments) {
      const hash = hashOf(fragment);
      if (hash && fragment.url) {
        const maxBytes = bitrate > 0 && fragment.duration > 0
          ? Math.ceil(SIZE_FACTOR * (bitrate / 8) * fragment.duration) + SIZE_SLACK : Infinity;
        known.set(fragment.url, { hash, maxBytes });
        checkable.push(fragment);
      }
    }
    const entry = this.playlists.get(playlist);
    this.playlists.set(playlist, { now: known, before: entry ? entry.now : new Map() });
    return checkable;
  }

  get(url) {
    for (const { now, before } of this.playlists.values()) {
      const known = now.get(url) || before.get(url);
      if (known) return known;
    }
    return null;
  }
}

/** The engine's validators and the bookkeeping behind a ban. What it counts is its own; snapshot()
 * hands out a read-only copy (p2p.js's snapshot() puts it in viewerStats.p2p). */
export class Checks {
  #counts = {
    verifiedSegments: 0, // segments from peers whose SHA-256 matched
    verifiedBucketSegments: 0, // segments the engine loaded from the bucket whose SHA-256 matched
    verifyMs: 0, // time spent hashing segments (crypto.subtle.digest), peers' and the bucket's together
    verifiedBytes: 0,
    httpMismatches: 0, // segments from the bucket that did not hash as the playlist says (never expected)
    oversizedAnnouncements: 0, // peers that announced a size no segment of the variant has: dropped
  };

  constructor(hashes) {
    this.hashes = hashes;
    this.verdicts = new Map(); // segment URL -> its last failed check from a peer: { why, bytes }
    this.attempts = new Map(); // peer id -> { url, bytes }: its current attempt, bytes it sent for it
  }

  /** What it counted, read-only. */
  snapshot() {
    return Object.freeze({ ...this.#counts });
  }

  /** validateP2PSegment: the whole segment a peer sent (as soon as all its bytes are in). */
  async fromPeer(url, byteRange, data) {
    const why = await this.check(url, byteRange, data);
    if (why === null) {
      this.#counts.verifiedSegments += 1;
      return true;
    }
    this.verdicts.set(url, { why, bytes: data && data.byteLength ? data.byteLength : 0 });
    if (this.verdicts.size > MAX_VERDICTS) this.verdicts.delete(this.verdicts.keys().next().value);
    return false;
  }

  /** validateHTTPSegment: the whole segment, from the bucket (or completed with bytes already loaded:
   * the engine's patch drops a failed attempt's, but this check does not rely on it). */
  async fromBucket(url, byteRange, data) {
    const why = await this.check(url, byteRange, data);
    if (why === null) this.#counts.verifiedBucketSegments += 1;
    if (why === 'mismatch') {
      this.#counts.httpMismatches += 1;
      console.error('P2P: the bucket\'s bytes of ' + url + ' do not match the SHA-256 its playlist lists');
    }
    return why === null;
  }

  /** null when `data` is the segment the playlist names, else why not ('unknown' or 'mismatch'). */
  async check(url, byteRange, data) {
    const known = this.hashes.get(url);
    if (!known || byteRange !== undefined || !(data instanceof ArrayBuffer)) return 'unknown';
    const started = performance.now();
    const digest = await crypto.subtle.digest('SHA-256', data);
    this.#counts.verifyMs += performance.now() - started;
    this.#counts.verifiedBytes += data.byteLength;
    return base64url(digest) === known.hash ? null : 'mismatch';
  }

  /** validateP2PSegmentSize (the patch): the size a peer announces for a segment; false drops the peer. */
  sizeAllowed(url, byteRange, size) {
    const known = this.hashes.get(url);
    if (known && Number.isInteger(size) && size > 0 && size <= known.maxBytes) return true;
    this.#counts.oversizedAnnouncements += 1;
    return false;
  }

  /** The engine's onSegmentStart: a peer's attempt at a segment begins (its bytes are counted from 0).
   * Returns the bytes of attempts it forgets, which delivered nothing: the peer's previous one, if no event
   * ended it, and the oldest when there are too many. */
  started(details) {
    if (details.downloadSource !== 'p2p' || !details.peerId || !details.segment) return 0;
    let forgotten = this.ended(details.peerId);
    this.attempts.set(details.peerId, { url: details.segment.url, bytes: 0 });
    if (this.attempts.size > MAX_ATTEMPTS) forgotten += this.ended(this.attempts.keys().next().value);
    return forgotten;
  }

  /** The engine's onChunkDownloaded from a peer: whether the bytes belong to an attempt going on. The
   * engine reports every chunk a peer's connection brings, also those of a segment it no longer waits
   * for (a peer goes on sending for a moment after an abort, or after its connection is closed for a
   * rejected segment): those are kept by nobody. */
  received(bytes, peerId) {
    const attempt = this.attempts.get(peerId);
    if (attempt) attempt.bytes += bytes;
    return attempt !== undefined;
  }

  /** A peer's segment failed its check (the engine's onSegmentError, p2p-segment-validation-failed):
   * { bytes, ban }. `ban` only when the hash did not match and every byte checked came from that peer
   * in this attempt (issue 40, V2: bytes resumed from another source must never get a peer banned). */
  rejected(details) {
    const url = details.segment && details.segment.url;
    const verdict = this.verdicts.get(url) || {};
    this.verdicts.delete(url);
    const attempt = details.peerId ? this.attempts.get(details.peerId) : null;
    const alone = Boolean(attempt && attempt.url === url && verdict.bytes > 0 && attempt.bytes >= verdict.bytes);
    return { bytes: verdict.bytes || 0, ban: verdict.why === 'mismatch' && alone, why: verdict.why };
  }

  /** Bytes peers have sent for attempts still going on: neither kept nor dropped yet. */
  pending() {
    let bytes = 0;
    for (const attempt of this.attempts.values()) bytes += attempt.bytes;
    return bytes;
  }

  /** A peer's attempt ended without a segment (failed or aborted): the bytes it had sent, dropped. */
  ended(peerId) {
    const attempt = this.attempts.get(peerId);
    this.attempts.delete(peerId);
    return attempt ? attempt.bytes : 0;
  }
}

/** Uploads each peer left unfinished and delivered (issue 50, V5). A peer that sends a segment but
 * never its end (a byte now and then, so that the engine's 2 s timeout never fires) was never dropped:
 * each attempt lasted until the segment fell due and came from the bucket, so peers saved no GET and the
 * page downloaded megabytes a minute from it only to throw them away. Unfinished: an attempt that timed
 * out, was aborted or was cut short (not a segment the peer says it no longer has, nor one that failed
 * its hash: Checks bans for that). */
export class Unfinished {
  constructor() {
    this.peers = new Map(); // peer id -> { delivered, unfinished }
  }

  tally(peerId) {
    let tally = this.peers.get(peerId);
    if (tally) this.peers.delete(peerId); // set again last: the least recently seen are first
    else tally = { delivered: 0, unfinished: 0 };
    this.peers.set(peerId, tally);
    if (this.peers.size > MAX_TALLIES) this.peers.delete(this.peers.keys().next().value);
    return tally;
  }

  /** A segment from this peer passed its check. */
  delivered(peerId) {
    if (peerId) this.tally(peerId).delivered += 1;
  }

  /** An attempt at this peer ended without a segment: true the once it goes past the bound (drop it). */
  unfinished(peerId) {
    if (!peerId) return false;
    const tally = this.tally(peerId);
    tally.unfinished += 1;
    return tally.unfinished - tally.delivered === MAX_UNFINISHED + 1;
  }
}

/** Bucket GETs the engine makes per segment it delivers (engine-wide: a new player keeps counting). What
 * it counts is its own; snapshot() hands out a read-only copy (p2p.js's snapshot() puts it in
 * viewerStats.p2p). */
export class GetBudget {
  #counts = {
    httpGets: 0, // bucket GETs the engine made (hls.js loads segments without a hash itself, one GET each)
    deliveredSegments: 0, // segments the engine delivered (from peers or the bucket)
    getsPerSegment: null, // httpGets / deliveredSegments over the last window of GET_WINDOW segments
  };

  constructor(onExceeded) {
    this.onExceeded = onExceeded;
    this.gets = 0; // in the current window
    this.segments = 0;
  }

  /** What it counted, read-only. */
  snapshot() {
    return Object.freeze({ ...this.#counts });
  }

  /** httpRequestSetup: called for every GET the engine sends; the engine makes the request itself. */
  get() {
    this.gets += 1;
    this.#counts.httpGets += 1;
    return undefined;
  }

  /** onSegmentLoaded: the engine delivered a segment (from a peer or the bucket). */
  delivered() {
    this.segments += 1;
    this.#counts.deliveredSegments += 1;
    if (this.segments < GET_WINDOW) return;
    const rate = this.gets / this.segments;
    this.#counts.getsPerSegment = Math.round(rate * 100) / 100;
    this.gets = 0;
    this.segments = 0;
    if (rate > MAX_GETS_PER_SEGMENT) {
      this.onExceeded(rate.toFixed(2) + ' bucket GETs per segment over the last ' + GET_WINDOW
        + ' segments (without P2P: 1)');
    }
  }
}

function hashOf(fragment) {
  const tags = fragment.tagList || [];
  for (const tag of tags) {
    if (tag[0] === HASH_TAG && HASH_TEXT.test(tag[1] || '')) return tag[1];
  }
  return null;
}

function base64url(buffer) {
  let text = '';
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
