/* The player's life: hls.js (or Safari's native HLS where MSE is missing) started, stopped and made
 * anew; recovery from its errors with a backoff; a waiting/offline state that polls the playlist and
 * resumes by itself; stalls and the end of a stream noticed.
 *
 * Media errors (issue 40, V4): a segment the browser cannot decode (bad bytes in the bucket, or any
 * other bad segment) makes the video element fail and pause, and hls.js reports nothing fatal. The
 * video's error, a fatal media error from hls.js, or no progress for MEDIA_STALL_MS while the page wants
 * to play (not paused by the viewer) with data to play, is a media error: hls.js's media recovery first
 * (then play again), and another within MEDIA_RETRY_WINDOW_MS a new player at the live edge (past the
 * bad segment). Each is counted in mediaErrors and listed in errors (its snapshot).
 *
 * Content steering (PATHWAYS): when a segment fetch from a bucket's pathway fails, this page moves that
 * pathway behind the others at once (hls.pathwayPriority; pathways.js says which comes first: the second
 * bucket if there is one, else the VM) and keeps it there a while, whatever the steering manifests say.
 *
 * create(deps) returns { start, restart, stop, hls, play, tick, engine, snapshot }:
 * - start(url, p2p) plays the playlist at `url` (p2p: viewer/p2p.js's player factory, or null); the
 *   player restarts itself from then on; stop() drops the player, restart() starts it again;
 * - hls() is the current hls.js player, or null (none, or the native player);
 * - play() plays the video, muted if the browser allows only that;
 * - tick() once a second: progress, stalls and the end of a stream;
 * - engine(): 'hls.js <version>', 'native' or null; snapshot(): what it keeps (below), read-only.
 * deps: video, status (status.js), position (position.js), rewind (rewind.js: where to start),
 * countSegment(url, bytes), refresh() (the stats panel),
 * onPlayer(hls) (each new hls.js player, before it loads: playback.js listens to it),
 * and the controls' side: onLevels(levels, hls), onMutedAutoplay(), onStart(live) (a player starts
 * at the live edge, or at a time; a time found to be at the edge says live again once it knows),
 * onStop(), behind() (the viewer watches behind the live edge);
 * and for a private stream, access (access.js: the multivariant playlist is asked with the token held,
 * and every URL the service wrote with an older token is asked with the current one, so a renewed token
 * reaches hls.js's reloads) and denied() (a playlist answered 401/403: the player has stopped; the page
 * gets a token and starts it again).
 */

import { demoted } from './pathways.js';
import { snapshot as frozen } from './snapshot.js';

const RECREATE_MIN_MS = 2000; // pause before a new player after a fatal error, backing off...
const RECREATE_MAX_MS = 5000; // ...up to this
const POLL_WAITING_MS = 2000; // the playlist answered 503/404: the stream has not started yet
const POLL_OFFLINE_MS = 3000; // the stream ended: look for the next one
const NETWORK_RETRIES = 3; // hls.startLoad() attempts before the player is recreated
const MEDIA_RETRY_WINDOW_MS = 20000; // a media error this soon after hls.js's recovery: a new player instead
const STALL_MS = 2500; // no progress this long while playing: say so
const MEDIA_STALL_MS = 6000; // no progress this long while the page wants to play, with data to play: recover
const STALLED_BUFFER_S = 1; // "data to play": this much buffered ahead of the playhead (else it is loading)
const ENDED_STALL_MS = 4000; // after #EXT-X-ENDLIST, no progress this long is the end too
const FRAG_ERRORS = ['fragLoadError', 'fragLoadTimeOut'];
const MAX_ERRORS = 50; // errors kept, the newest

export function create(deps) {
  const { video, status, position, rewind } = deps;
  const access = deps.access || null;
  const address = (url) => (access ? access.withToken(url) : url);
  // What this module keeps, as snapshot() hands it out. `errors` lists fatal player errors and media
  // errors; a playlist answering 503/404 is not one: that is the "waiting" state.
  const own = {
    engine: null, // 'hls.js <version>' or 'native'
    src: null, // the playlist playing
    recoveries: 0,
    mediaErrors: 0, // the video could not decode what it got, or stalled with data to play
    // Every error by kind and outcome: recovered in place, or fatal (a new player).
    errorKinds: { network: { recovered: 0, fatal: 0 }, media: { recovered: 0, fatal: 0 },
      other: { recovered: 0, fatal: 0 } },
    errors: [], // 'networkError/fragLoadError (HTTP 403)', ...
    autoplayBlocked: false, // the browser refused to start the video by itself: the viewer pressed play
    buffer: 0, // seconds buffered ahead of the playhead
  };
  let src = null;
  let p2p = null;
  let hls = null;
  let generation = 0; // bumped by every start and stop; late callbacks of older ones are ignored
  let timer = null; // the pending restart or poll
  let failures = 0; // fatal errors since playback last worked (for the backoff)
  let networkRetries = 0;
  let lastMediaRecovery = -Infinity;
  let userPaused = false; // the viewer paused the video (not an error, not the page)
  let sawLive = false; // this player has seen a live (no ENDLIST) playlist
  let endlist = false; // ...and then #EXT-X-ENDLIST: play to the end, then show "offline"
  let lastTime = -1;
  let lastProgressAt = 0;

  // -- lifecycle ------------------------------------------------------------------------------------

  function begin(url, sharing) {
    src = url;
    own.src = url;
    p2p = sharing;
    start();
  }

  function start() {
    stop();
    const gen = generation;
    userPaused = false;
    sawLive = false;
    endlist = false;
    networkRetries = 0;
    lastProgressAt = performance.now();
    deps.onStart(!rewind.pending());
    if (failures) {
      status.set('loading', 'Reconnecting…', 'Reconnecting…');
    } else {
      status.set('loading');
    }
    if (window.Hls && window.Hls.isSupported()) {
      startHlsJs(gen);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      own.engine = 'native';
      if (rewind.pending()) {
        video.addEventListener('loadedmetadata', () => {
          if (!rewind.startNative(gen === generation) && gen === generation) deps.onStart(true);
        }, { once: true });
      }
      video.src = address(src);
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
    deps.onStop();
  }

  function startHlsJs(gen) {
    const Hls = window.Hls;
    // liveMaxLatencyDuration(Count) stays at its default, Infinity: hls.js never pulls a rewound viewer
    // back to live. Interstitials are off: Owncast makes none, and hls.js's interstitials controller would
    // restart loading at the live start it chose on the first playlist, undoing startLoad(?start).
    const config = { liveDurationInfinity: true, backBufferLength: 30, enableInterstitialPlayback: false };
    if (access && access.token()) {
      // Only with a token (a public stream's requests go as they always did): hls.js reuses the URIs the
      // service wrote, older token and all, for its reloads; each request goes out with the current one.
      config.xhrSetup = (xhr, url) => {
        const current = access.refresh(url);
        if (current !== url) xhr.open('GET', current, true);
      };
    }
    const h = p2p ? p2p.createHls(config) : new Hls(config);
    hls = h;
    own.engine = 'hls.js ' + Hls.version;
    deps.onPlayer(h);
    h.on(Hls.Events.MANIFEST_PARSED, (event, data) => {
      deps.onLevels(data.levels, h);
      play();
    });
    h.on(Hls.Events.LEVEL_UPDATED, (event, data) => onPlaylist(data.details));
    if (rewind.pending()) {
      // After hls.js has picked the live edge for this first playlist: startLoad(position) overrides it.
      h.once(Hls.Events.LEVEL_LOADED, (event, data) => {
        if (gen === generation && !rewind.startHlsJsAt(h, data.details)) deps.onStart(true); // a time ahead: live
      });
    }
    h.on(Hls.Events.FRAG_LOADED, (event, data) => onSegment(data));
    // hls.js attaches the video again after its media recovery (ours, or its own after a failed append):
    // the element comes back paused, and plays only if asked.
    h.on(Hls.Events.MEDIA_ATTACHED, () => {
      if (gen === generation && status.state() === 'playing' && !userPaused) play();
    });
    const failedAt = new Map(); // pathway -> when a segment fetch from it last failed (performance.now())
    const leaveFailing = () => {
      const known = h.pathways || [];
      if (known.length < 2) return;
      const order = h.pathwayPriority || known;
      const next = demoted(order, failedAt, performance.now());
      if (next !== order) h.pathwayPriority = next;
    };
    h.on(Hls.Events.ERROR, (event, data) => {
      if (gen !== generation) return;
      if (data.fatal) {
        onFatal(data);
      } else if (FRAG_ERRORS.includes(data.details) && data.frag) {
        const level = h.levels[data.frag.level];
        if (level && level.pathwayId) {
          failedAt.set(level.pathwayId, performance.now());
          leaveFailing();
        }
      }
    });
    // hls.js applies the manifest's priority after this event: ours goes on top of it, a turn later.
    h.on(Hls.Events.STEERING_MANIFEST_LOADED, () => {
      if (failedAt.size) setTimeout(() => { if (gen === generation) leaveFailing(); }, 0);
    });
    h.attachMedia(video);
    h.loadSource(address(src));
  }

  function onPlaylist(details) {
    if (details.live) {
      sawLive = true;
      endlist = false;
    } else if (details.type === 'VOD' && !sawLive) {
      // A clip or a recording (#EXT-X-PLAYLIST-TYPE:VOD, which a live playlist never has, ended or not):
      // played from its start, then "offline" as a stream that ended.
      endlist = true;
    } else if (!sawLive) {
      waitForStream('offline'); // opened after the stream ended: do not replay its last seconds
    } else {
      endlist = true; // play out what was listed; the video's "ended" event comes next
    }
  }

  function onSegment(data) {
    const loaded = (data.part || data.frag).stats.loaded || (data.payload ? data.payload.byteLength : 0);
    deps.countSegment(data.frag.url, loaded);
    networkRetries = 0;
    deps.refresh();
  }

  function onFatal(data) {
    const Hls = window.Hls;
    const code = data.response && data.response.code;
    const playlist = /^(manifest|level)Load/.test(data.details);
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR && playlist && (code === 404 || code === 503)) {
      waitForStream('waiting'); // the server says there is no stream (yet)
      return;
    }
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR && playlist && (code === 401 || code === 403)) {
      refused(); // a private stream, and no valid token
      return;
    }
    addError(data.type + '/' + data.details + (code ? ' (HTTP ' + code + ')' : ''));
    const kind = data.type === Hls.ErrorTypes.NETWORK_ERROR ? 'network' : 'other';
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR && !data.details.startsWith('manifest')
        && networkRetries < NETWORK_RETRIES) {
      networkRetries += 1;
      own.recoveries += 1;
      own.errorKinds.network.recovered += 1;
      hls.startLoad();
    } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      mediaError(null);
    } else {
      own.errorKinds[kind].fatal += 1;
      restartLater(false);
    }
  }

  function addError(text) {
    own.errors.push(text);
    if (own.errors.length > MAX_ERRORS) own.errors.shift();
  }

  /** A media error (issue 40, V4): `reason` is added to the errors (null: already added). */
  function mediaError(reason) {
    const now = performance.now();
    own.mediaErrors += 1;
    if (reason) addError(reason);
    lastProgressAt = now;
    if (hls && now - lastMediaRecovery > MEDIA_RETRY_WINDOW_MS) {
      lastMediaRecovery = now;
      own.recoveries += 1;
      own.errorKinds.media.recovered += 1;
      hls.recoverMediaError(); // a new MediaSource from the playhead on; MEDIA_ATTACHED plays again
    } else {
      own.errorKinds.media.fatal += 1;
      restartLater(true); // the same segment again, most likely: start past it
    }
  }

  /** A new player after a pause that grows with each failure in a row; `atLiveEdge` after a media error,
   * else a rewound viewer resumes where they were. */
  function restartLater(atLiveEdge) {
    const delay = Math.min(RECREATE_MAX_MS, RECREATE_MIN_MS * 1.5 ** failures);
    failures += 1;
    const date = rewind.playingDate();
    if (!atLiveEdge && deps.behind() && date !== null) rewind.resumeAt(date);
    stop();
    status.set('error', 'Playback error. Reconnecting in ' + Math.round(delay / 1000) + ' s…');
    timer = setTimeout(start, delay);
  }

  // -- waiting for a stream -------------------------------------------------------------------------

  /** A private stream's playlist refused this page: no player until the page has a token. */
  function refused() {
    stop();
    status.set('loading');
    if (deps.denied) deps.denied();
  }

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
        if (found === 'denied') {
          refused();
          return;
        }
        if (found && found !== status.state()) status.set(found);
        poll();
      }, status.state() === 'offline' ? POLL_OFFLINE_MS : POLL_WAITING_MS);
    };
    poll();
  }

  /** 'live', 'offline' (ended playlist), 'waiting' (no playlist yet), 'denied' (a private stream's
   * playlist refused the token, or its lack), or null (could not tell). */
  async function probe(url) {
    try {
      let text = await fetchPlaylist(address(url));
      if (text !== null && text.includes('#EXT-X-STREAM-INF')) {
        const variant = text.split(/\r?\n/).find((line) => line.trim() && !line.startsWith('#'));
        text = variant ? await fetchPlaylist(new URL(variant.trim(), url).href) : null;
      }
      if (text === null) return 'waiting';
      if (text.includes('#EXT-X-ENDLIST')) return 'offline';
      return text.includes('#EXTINF') ? 'live' : 'waiting';
    } catch (err) {
      if (err instanceof Refused) return 'denied';
      return null; // the server is unreachable: keep saying what we said
    }
  }

  async function fetchPlaylist(url) {
    const response = await fetch(access ? access.refresh(url) : url, { cache: 'no-store' });
    if (response.status === 401 || response.status === 403) throw new Refused();
    return response.ok ? response.text() : null;
  }

  // -- the video element ----------------------------------------------------------------------------

  function play() {
    const gen = generation;
    userPaused = false;
    const blocked = () => {
      if (gen !== generation || status.state() !== 'loading') return;
      own.autoplayBlocked = true; // the first frame waits for the viewer (playback.js: no start-up time)
      status.overlay('Press play to start');
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
      deps.onMutedAutoplay();
      video.play().catch(blocked);
    });
  }

  function tick() {
    const now = performance.now();
    const t = video.currentTime;
    const playing = status.state() === 'playing';
    const wantsPlay = playing && !userPaused;
    // Progress: time moving with data to play, not a seek or a nudge a stalled player makes; or a video
    // nobody wants playing (paused by the viewer, or before it first played). A video that paused by
    // itself is not progress (issue 40, V4: it used to count, and the page sat paused for good).
    if ((video.paused && !wantsPlay) || (t !== lastTime && video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA)) {
      lastProgressAt = now;
      if (playing && status.overlayText() === 'Buffering…') status.overlay('');
    }
    lastTime = t;
    own.buffer = position.bufferAhead();
    const stalled = now - lastProgressAt;
    if (playing && endlist && stalled > ENDED_STALL_MS && own.buffer < 0.5) {
      waitForStream('offline'); // the last segment played but no "ended" event came
    } else if (wantsPlay && stalled > MEDIA_STALL_MS && (video.paused || own.buffer >= STALLED_BUFFER_S)) {
      mediaError('media/stalled ' + Math.round(stalled / 1000) + ' s' + (video.paused ? ', paused' : ' with '
        + own.buffer.toFixed(1) + ' s buffered'));
    } else if (playing && stalled > STALL_MS) {
      status.overlay('Buffering…');
    }
  }

  video.addEventListener('playing', () => {
    failures = 0;
    lastProgressAt = performance.now();
    if (status.state() !== 'playing') status.set('playing');
    status.overlay('');
  });
  video.addEventListener('waiting', () => {
    if (status.state() === 'playing') status.overlay('Buffering…');
  });
  video.addEventListener('ended', () => {
    if (status.state() === 'playing' || status.state() === 'loading') waitForStream('offline');
  });
  video.addEventListener('pause', () => {
    // The viewer's pause (the controls, a key): not one the element makes when it fails.
    if (!video.error && !video.ended) userPaused = true;
  });
  video.addEventListener('play', () => { userPaused = false; });
  video.addEventListener('error', async () => {
    if (status.state() !== 'loading' && status.state() !== 'playing') return;
    if (hls) {
      // What hls.js does not report as fatal: the element could not decode what it was given.
      const error = video.error;
      mediaError('media/element error ' + (error ? error.code + (error.message ? ': ' + error.message : '') : '?'));
      return;
    }
    // The native player (Safari) failing.
    if (!video.hasAttribute('src')) return;
    const gen = generation;
    const found = await probe(src); // no stream (503/404, ended) is waiting, not an error
    if (gen !== generation) return;
    if (found === 'waiting' || found === 'offline') {
      waitForStream(found);
    } else if (found === 'denied') {
      refused();
    } else {
      addError('native/media error ' + (video.error ? video.error.code : '?'));
      own.errorKinds.media.fatal += 1;
      restartLater(false);
    }
  });

  /** The playlist started last, again (a private stream's page got a token); nothing before a start. */
  function restart() {
    if (src !== null) start();
  }

  return { start: begin, restart, stop, hls: () => hls, play, tick, engine: () => own.engine,
    snapshot: () => frozen(own) };
}

/** A playlist answered 401 or 403 (probe). */
class Refused extends Error {}
