/* Live viewer: hls.js (or Safari's native HLS where MSE is missing), recovery from player errors,
 * an offline/waiting screen that resumes by itself, and stats for the streamer.
 *
 * Test hook: window.viewerStats, updated in place (see `stats` below). `errors` lists fatal player
 * errors; a playlist answering 503/404 is not one: that is the "waiting" state.
 *
 * While the stats panel is open, an EventSource on /live/events shows the server's latest events
 * (segments listed, stream state). It is opened only then, so ordinary viewers hold no connection.
 *
 * Rewind: when the playlists reach back far enough, a seek bar spans the seekable window and shows the
 * time of day being watched (EXT-X-PROGRAM-DATE-TIME). ?start=<RFC 3339 or Unix seconds> starts there
 * instead of at the live edge; the playlist URLs stay the same (the CDN's cache and blocking reload
 * still apply): the page picks the position once it has the first playlist.
 */
(function () {
  'use strict';

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
  const BEHIND_TICKS = 3; // seconds behind the live edge before "Go live" is offered
  const MAX_ERRORS = 50;
  const EVENTS_SHOWN = 10; // server events listed in the stats panel, newest first
  const EVENTS_REOPEN_MS = 5000; // the server refused the stream (503: busy or restarting): try again
  const SEEK_MIN_WINDOW_S = 45; // shorter windows (the default WINDOW_SECONDS is 30) get no seek bar
  const START_MARGIN_TDS = 3; // the window slides on: stay this many target durations inside its start
  const NATIVE_TARGET_S = 2; // the native player does not tell the target duration: assume this
  const NOTICE_MS = 8000;

  const MESSAGES = {
    loading: ['Loading the stream…', 'Loading the stream…'],
    playing: ['Live', ''],
    waiting: ['Waiting for the stream to start. It will play by itself.', 'Waiting for the stream'],
    offline: ['Stream offline. It will play again by itself when the stream is back.', 'Stream offline'],
    error: ['Playback error. Reconnecting…', 'Reconnecting…'],
  };

  const $ = (id) => document.getElementById(id);
  const video = $('video');
  const overlay = $('overlay');
  const overlayText = $('overlay-text');
  const status = $('status');
  const quality = $('quality');
  const unmute = $('unmute');
  const goLive = $('go-live');
  const statsToggle = $('stats-toggle');
  const statsPanel = $('stats');
  const r2Badge = $('r2-badge');
  const eventsList = $('events');
  const eventsStatus = $('events-status');
  const timeline = $('timeline');
  const seek = $('seek');
  const clock = $('clock');
  const behind = $('behind');
  const moment = $('moment');
  const notice = $('notice');

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
  let preferredLevel = -1; // the viewer's quality choice, kept across player restarts
  let lastTime = -1;
  let lastProgressAt = 0;
  let behindTicks = 0;
  let dragging = false; // the viewer holds the seek bar's thumb: ticks must not move it
  let noticeTimer = null;
  // ms since the epoch: the next player starts there instead of at the live edge (?start, or where a
  // rewound viewer was when the player had to be recreated).
  let startAt = parseStart(params.get('start'));

  // -- player lifecycle ---------------------------------------------------------------------------

  function start() {
    stop();
    const gen = generation;
    sawLive = false;
    endlist = false;
    networkRetries = 0;
    lastProgressAt = performance.now();
    if (failures) {
      setState('loading', 'Reconnecting…', 'Reconnecting…');
    } else {
      setState('loading');
    }
    if (window.Hls && window.Hls.isSupported()) {
      startHlsJs(gen);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      stats.engine = 'native';
      if (startAt !== null) video.addEventListener('loadedmetadata', () => startNative(gen), { once: true });
      video.src = src;
      play();
    } else {
      setState('error', 'This browser cannot play HLS video.', 'Cannot play this stream here');
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
    goLive.hidden = true;
    behindTicks = 0;
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
      fillQualities(data.levels);
      play();
    });
    h.on(Hls.Events.LEVEL_UPDATED, (event, data) => onPlaylist(data.details));
    if (startAt !== null) {
      // After hls.js has picked the live edge for this first playlist: startLoad(position) overrides it.
      h.once(Hls.Events.LEVEL_LOADED, (event, data) => {
        if (gen === generation) startHlsJsAt(h, data.details);
      });
    }
    h.on(Hls.Events.FRAG_LOADED, (event, data) => onSegment(data));
    h.on(Hls.Events.ERROR, (event, data) => {
      if (gen === generation && data.fatal) onFatal(data);
    });
    h.attachMedia(video);
    h.loadSource(src);
  }

  /** Starts at startAt, in the fragment whose PROGRAM-DATE-TIME covers it. */
  function startHlsJsAt(h, details) {
    const at = startAt;
    startAt = null;
    if (!details.live) return;
    const fragments = details.fragments.filter((f) => f.programDateTime !== null);
    const f = fragments.find((frag) => at < frag.programDateTime + frag.duration * 1000);
    if (!f) return; // at or after the live edge (or no dates): live
    const td = details.targetduration;
    const live = h.liveSyncPosition !== null ? h.liveSyncPosition : details.edge - START_MARGIN_TDS * td;
    // Before f: in a gap between dates (a discontinuity) start at f, before the first one is too early.
    const position = f === fragments[0] ? f.start + (at - f.programDateTime) / 1000
      : f.start + Math.max(0, at - f.programDateTime) / 1000;
    const chosen = startPosition(position, details.fragmentStart, live, START_MARGIN_TDS * td);
    if (chosen !== null) h.startLoad(chosen);
  }

  /** The native player's timeline is dated by getStartDate() (Safari). */
  function startNative(gen) {
    const at = startAt;
    startAt = null;
    const origin = nativeOrigin();
    const range = seekableRange();
    if (gen !== generation || origin === null || !range) return;
    const chosen = startPosition((at - origin) / 1000, range.start, livePosition(range),
      START_MARGIN_TDS * NATIVE_TARGET_S);
    if (chosen !== null) video.currentTime = chosen;
  }

  /** Where to start for a wanted position: null to play live, else inside the window (and say so when
   * the time has already left it). */
  function startPosition(position, start, live, margin) {
    if (position >= live) return null;
    const earliest = Math.min(start + margin, live);
    if (position < start) {
      showNotice('That time is no longer available: playing from the earliest moment kept.');
    }
    return Math.max(position, earliest);
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
    if (!goLive.hidden && stats.playingDate !== null) startAt = stats.playingDate;
    stop();
    setState('error', 'Playback error. Reconnecting in ' + Math.round(delay / 1000) + ' s…');
    timer = setTimeout(start, delay);
  }

  // -- waiting for a stream -----------------------------------------------------------------------

  /** Drops the player and polls the playlist until a live one is back, then plays it. */
  function waitForStream(state) {
    stop();
    const gen = generation;
    setState(state);
    const poll = () => {
      timer = setTimeout(async () => {
        const found = await probe(src);
        if (gen !== generation) return;
        if (found === 'live') {
          start();
          return;
        }
        if (found && found !== stats.state) setState(found);
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
      if (gen === generation && stats.state === 'loading') showOverlay('Press play to start');
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
      unmute.hidden = false;
      video.play().catch(blocked);
    });
  }

  video.addEventListener('playing', () => {
    failures = 0;
    lastProgressAt = performance.now();
    if (stats.state !== 'playing') setState('playing');
    showOverlay('');
  });
  video.addEventListener('waiting', () => {
    if (stats.state === 'playing') showOverlay('Buffering…');
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
    updateTimeline();
  });
  video.addEventListener('volumechange', () => {
    if (!video.muted) unmute.hidden = true;
  });

  // -- controls -----------------------------------------------------------------------------------

  unmute.addEventListener('click', () => {
    video.muted = false;
    unmute.hidden = true;
  });

  goLive.addEventListener('click', toLive);

  function toLive() {
    const range = seekableRange();
    if (hls && hls.liveSyncPosition !== null) {
      video.currentTime = hls.liveSyncPosition;
    } else if (!hls && range) {
      video.currentTime = livePosition(range);
    }
    behindTicks = 0;
    goLive.hidden = true;
    play();
  }

  // The seek bar's value is the offset from the end of the seekable window (<= 0): the thumb stays put
  // while the window slides on under a viewer watching at normal pace, as it should.
  seek.addEventListener('input', () => {
    dragging = true;
    const range = seekableRange();
    if (range) showPosition(range.end + Number(seek.value));
  });
  seek.addEventListener('change', () => {
    dragging = false;
    const range = seekableRange();
    if (!range) return;
    const target = range.end + Number(seek.value);
    if (target >= livePosition(range)) {
      toLive();
      return;
    }
    video.currentTime = Math.max(target, Math.min(range.start + startMargin(), livePosition(range)));
    play();
  });
  seek.addEventListener('blur', () => {
    dragging = false; // a drag that never ended in a change (the pointer left the window)
  });

  quality.addEventListener('change', () => {
    preferredLevel = Number(quality.value);
    if (hls) hls.nextLevel = preferredLevel; // -1: automatic; switches at the next segment
  });

  function fillQualities(levels) {
    quality.replaceChildren(new Option('Auto', '-1'));
    levels.forEach((level, i) => {
      const name = level.height ? level.height + 'p' : 'Variant ' + (i + 1);
      quality.add(new Option(level.bitrate ? name + ' · ' + formatBitrate(level.bitrate) : name, String(i)));
    });
    quality.disabled = levels.length < 2;
    if (preferredLevel >= levels.length) preferredLevel = -1;
    quality.value = String(preferredLevel);
    if (preferredLevel >= 0) hls.nextLevel = preferredLevel;
  }

  statsToggle.addEventListener('click', () => showStats(statsPanel.hidden));

  function showStats(open) {
    statsPanel.hidden = !open;
    statsToggle.setAttribute('aria-expanded', String(open));
    statsToggle.textContent = open ? 'Hide stats' : 'Show stats';
    if (open) {
      readPlayer();
      render();
      openEvents();
    } else {
      closeEvents();
    }
  }

  // -- server events (stats panel only) -----------------------------------------------------------

  let eventSource = null;
  let eventsTimer = null;

  function openEvents() {
    if (eventSource || !window.EventSource) return;
    clearTimeout(eventsTimer);
    // The service that serves this page; EventSource sends Last-Event-ID itself when it reconnects.
    const source = new EventSource(new URL('/live/events', location.href).href);
    eventSource = source;
    setEventStream('connecting');
    source.addEventListener('open', () => setEventStream('open'));
    source.addEventListener('error', () => {
      if (source.readyState !== EventSource.CLOSED) {
        setEventStream('connecting'); // the browser reconnects by itself after the server's retry
        return;
      }
      // Refused (503 when busy or restarting) or not an event stream: browsers give up; we do not.
      eventSource = null;
      setEventStream('closed');
      eventsTimer = setTimeout(() => {
        if (!statsPanel.hidden) openEvents();
      }, EVENTS_REOPEN_MS);
    });
    for (const type of ['segment', 'state', 'reset']) {
      source.addEventListener(type, (event) => onServerEvent(type, event.data));
    }
  }

  function closeEvents() {
    clearTimeout(eventsTimer);
    eventsTimer = null;
    if (eventSource) eventSource.close();
    eventSource = null;
    setEventStream('closed');
  }

  function setEventStream(state) {
    stats.eventStream = state;
    eventsStatus.textContent = state;
  }

  function onServerEvent(type, data) {
    let body = null;
    try {
      body = JSON.parse(data);
    } catch (err) {
      return; // not ours: ignore it rather than break the panel
    }
    if (body === null || typeof body !== 'object') return;
    stats.events += 1;
    const item = document.createElement('li');
    item.dataset.type = type;
    const time = document.createElement('time');
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour12: false });
    const text = document.createElement('span');
    if (type === 'segment') {
      const duration = typeof body.duration === 'number' ? body.duration.toFixed(2) + ' s' : '?';
      text.textContent = 'variant ' + body.variant + ' · #' + body.media_sequence + ' · ' + duration;
      if (typeof body.url === 'string') item.title = body.url;
    } else if (type === 'state') {
      item.dataset.state = String(body.state);
      text.textContent = 'stream ' + body.state + (body.detail ? ' (' + body.detail + ')' : '');
    } else {
      text.textContent = 'missed some events; showing what the server kept';
    }
    item.append(time, text);
    eventsList.prepend(item);
    while (eventsList.children.length > EVENTS_SHOWN) eventsList.lastElementChild.remove();
  }

  // -- state, overlay and stats -------------------------------------------------------------------

  function setState(state, message, overlayMessage) {
    stats.state = state;
    const [said, shown] = MESSAGES[state];
    status.dataset.state = state;
    const text = message || said;
    if (status.textContent !== text) status.textContent = text; // aria-live announces each change
    showOverlay(overlayMessage !== undefined ? overlayMessage : shown);
    if (!statsPanel.hidden) render(); // the panel's state row must not lag the overlay
  }

  function showOverlay(text) {
    overlay.hidden = !text;
    if (text && overlayText.textContent !== text) overlayText.textContent = text;
  }

  function tick() {
    const now = performance.now();
    const t = video.currentTime;
    // Progress: time moving with data to play, not a seek or a nudge a stalled player makes.
    if (video.paused || (t !== lastTime && video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA)) {
      lastProgressAt = now;
      if (stats.state === 'playing' && overlayText.textContent === 'Buffering…') showOverlay('');
    }
    lastTime = t;
    stats.buffer = bufferAhead();
    const stalled = now - lastProgressAt;
    if (stats.state === 'playing' && endlist && stalled > ENDED_STALL_MS && stats.buffer < 0.5) {
      waitForStream('offline'); // the last segment played but no "ended" event came
    } else if (stats.state === 'playing' && stalled > STALL_MS) {
      showOverlay('Buffering…');
    }
    readPlayer();
    updateGoLive();
    updateTimeline();
    if (!statsPanel.hidden) render();
  }

  function updateGoLive() {
    const details = hls && hls.latestLevelDetails;
    const live = hls ? Boolean(details && details.live) : video.duration === Infinity;
    // Behind for a few seconds in a row: a new player briefly reports nonsense before its first seek.
    const behindNow = live && stats.behindLive !== null && stats.behindLive > 2 * targetDuration();
    behindTicks = behindNow ? behindTicks + 1 : 0;
    goLive.hidden = behindTicks < BEHIND_TICKS;
  }

  function updateTimeline() {
    const range = seekableRange();
    stats.seekableStart = range ? range.start : null;
    stats.seekableEnd = range ? range.end : null;
    stats.playingDate = playingDate();
    stats.momentLink = stats.playingDate === null ? null : momentLink(stats.playingDate);
    const shown = stats.state === 'playing' && range !== null && range.end - range.start >= SEEK_MIN_WINDOW_S;
    timeline.hidden = !shown;
    if (!shown || dragging) return;
    seek.min = String(Math.floor(range.start - range.end));
    seek.value = String(Math.min(0, Math.round(video.currentTime - range.end)));
    showPosition(video.currentTime);
    if (stats.momentLink !== null) moment.href = stats.momentLink;
  }

  /** The time of day and the distance to live at `position` (the playhead, or the thumb while dragged). */
  function showPosition(position) {
    const range = seekableRange();
    const offset = position - video.currentTime;
    const date = stats.playingDate === null ? null : new Date(stats.playingDate + offset * 1000);
    const lag = range ? Math.max(0, livePosition(range) - position) : 0;
    const live = lag <= 2 * targetDuration(); // as the live button's rule, without its ticks of patience
    const time = date ? date.toLocaleTimeString([], { hour12: false }) : '';
    if (clock.textContent !== time) clock.textContent = time;
    if (date) clock.dateTime = date.toISOString();
    const text = live ? 'LIVE' : '-' + formatDuration(lag);
    if (behind.textContent !== text) behind.textContent = text;
    behind.dataset.live = String(live);
    const said = (time ? time + ', ' : '') + (live ? 'live' : formatDuration(lag) + ' behind live');
    seek.setAttribute('aria-valuetext', said);
  }

  function seekableRange() {
    const ranges = video.seekable;
    return ranges.length ? { start: ranges.start(0), end: ranges.end(ranges.length - 1) } : null;
  }

  /** Where the live button goes. */
  function livePosition(range) {
    if (hls && hls.liveSyncPosition !== null) return hls.liveSyncPosition;
    return Math.max(range.start, range.end - startMargin());
  }

  function startMargin() {
    return START_MARGIN_TDS * targetDuration();
  }

  function targetDuration() {
    const details = hls && hls.latestLevelDetails;
    return details ? details.targetduration : NATIVE_TARGET_S;
  }

  function playingDate() {
    if (hls) {
      const date = hls.playingDate;
      return date ? date.getTime() : null;
    }
    const origin = nativeOrigin();
    return origin === null || !video.src ? null : origin + video.currentTime * 1000;
  }

  /** ms since the epoch at the native player's time 0, from the playlist's PROGRAM-DATE-TIME (Safari). */
  function nativeOrigin() {
    const date = typeof video.getStartDate === 'function' ? video.getStartDate() : null;
    const ms = date ? date.getTime() : NaN;
    return Number.isFinite(ms) ? ms : null;
  }

  /** This page, starting at `ms` (keeps ?src and the rest). */
  function momentLink(ms) {
    const url = new URL(location.href);
    url.searchParams.set('start', new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z'));
    return url.href;
  }

  function showNotice(text) {
    clearTimeout(noticeTimer);
    notice.hidden = false;
    notice.textContent = text;
    noticeTimer = setTimeout(() => {
      notice.hidden = true;
    }, NOTICE_MS);
  }

  function readPlayer() {
    const level = hls && hls.currentLevel >= 0 ? hls.levels[hls.currentLevel] : null;
    const width = (level && level.width) || video.videoWidth;
    const height = (level && level.height) || video.videoHeight;
    stats.quality = width && height ? width + 'x' + height : null;
    stats.bitrate = level ? level.bitrate : null;
    stats.bandwidth = hls ? Math.round(hls.bandwidthEstimate) || null : null;
    const range = seekableRange();
    if (hls) {
      stats.latency = hls.latency > 0 ? hls.latency : null;
    } else if (stats.engine === 'native' && range) {
      stats.latency = Math.max(0, range.end - video.currentTime);
    } else {
      stats.latency = null;
    }
    const live = range && stats.latency !== null ? livePosition(range) : null;
    stats.behindLive = live === null ? null : Math.max(0, live - video.currentTime);
  }

  function bufferAhead() {
    const ranges = video.buffered;
    const t = video.currentTime;
    for (let i = 0; i < ranges.length; i += 1) {
      if (ranges.start(i) <= t + 0.1 && t <= ranges.end(i)) return ranges.end(i) - t;
    }
    return 0;
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

  function formatBitrate(bps) {
    return bps >= 1e6 ? (bps / 1e6).toFixed(2) + ' Mbit/s' : Math.round(bps / 1e3) + ' kbit/s';
  }

  function formatDuration(seconds) {
    const s = Math.round(seconds);
    const hours = Math.floor(s / 3600);
    const rest = String(Math.floor((s % 3600) / 60)).padStart(hours ? 2 : 1, '0') + ':'
      + String(s % 60).padStart(2, '0');
    return hours ? hours + ':' + rest : rest;
  }

  /** ?start: RFC 3339 (2026-11-23T14:00:00Z) or Unix seconds; ms since the epoch, or null. */
  function parseStart(text) {
    if (text === null || text === '') return null;
    const ms = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : Date.parse(text);
    if (Number.isFinite(ms)) return ms;
    showNotice('The start parameter is not a time (RFC 3339 or Unix seconds): playing live.');
    return null;
  }

  function formatBytes(n) {
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
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
      if (config && config.viewers) {
        import('./watching.js').then((m) => m.start(config, video, () => p2p !== null))
          .catch((err) => console.warn('viewer count off:', err));
      }
      if (config && typeof config.src === 'string' && playlistUrl(config.src)) return playlistUrl(config.src);
    } catch (err) {
      // no config (the page is hosted elsewhere) or not JSON: the service's default path
    }
    return playlistUrl('/live/master.m3u8');
  }

  if (given !== null && src === null) {
    setState('error', 'The src parameter is not an http(s) URL.', 'Bad src parameter');
  } else if (src !== null) {
    start();
  } else {
    configuredSource().then((found) => {
      src = found;
      stats.src = found;
      start();
    });
  }
})();
