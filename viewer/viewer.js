/* Live viewer: hls.js (or Safari's native HLS where MSE is missing), recovery from player errors,
 * an offline/waiting screen that resumes by itself, and stats for the streamer.
 *
 * Test hook: window.viewerStats, updated in place (see `stats` below). `errors` lists fatal player
 * errors; a playlist answering 503/404 is not one: that is the "waiting" state.
 *
 * While the stats panel is open, an EventSource on /live/events shows the server's latest events
 * (segments listed, stream state). It is opened only then, so ordinary viewers hold no connection.
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

  const pageHost = location.host;
  const given = new URLSearchParams(location.search).get('src') || null;
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
    const config = { liveDurationInfinity: true, backBufferLength: 30 };
    const h = p2p ? p2p.createHls(config) : new Hls(config);
    hls = h;
    stats.engine = 'hls.js ' + Hls.version;
    h.on(Hls.Events.MANIFEST_PARSED, (event, data) => {
      fillQualities(data.levels);
      play();
    });
    h.on(Hls.Events.LEVEL_UPDATED, (event, data) => onPlaylist(data.details));
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
  video.addEventListener('volumechange', () => {
    if (!video.muted) unmute.hidden = true;
  });

  // -- controls -----------------------------------------------------------------------------------

  unmute.addEventListener('click', () => {
    video.muted = false;
    unmute.hidden = true;
  });

  goLive.addEventListener('click', () => {
    if (hls && hls.liveSyncPosition !== null) video.currentTime = hls.liveSyncPosition;
    play();
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
    if (!statsPanel.hidden) render();
  }

  function updateGoLive() {
    const details = hls && hls.latestLevelDetails;
    const behind = details && stats.latency !== null ? stats.latency - (hls.targetLatency || 0) : 0;
    // Behind for a few seconds in a row: a new player briefly reports nonsense before its first seek.
    behindTicks = details && details.live && behind > 2 * details.targetduration ? behindTicks + 1 : 0;
    goLive.hidden = behindTicks < BEHIND_TICKS;
  }

  function readPlayer() {
    const level = hls && hls.currentLevel >= 0 ? hls.levels[hls.currentLevel] : null;
    const width = (level && level.width) || video.videoWidth;
    const height = (level && level.height) || video.videoHeight;
    stats.quality = width && height ? width + 'x' + height : null;
    stats.bitrate = level ? level.bitrate : null;
    stats.bandwidth = hls ? Math.round(hls.bandwidthEstimate) || null : null;
    if (hls) {
      stats.latency = hls.latency > 0 ? hls.latency : null;
    } else if (stats.engine === 'native' && video.seekable.length) {
      stats.latency = Math.max(0, video.seekable.end(video.seekable.length - 1) - video.currentTime);
    } else {
      stats.latency = null;
    }
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
        // Peer-to-peer segments, the bucket as the fallback; if it cannot load, play without it.
        p2p = await import('./p2p.js').then((m) => m.create(config.p2p, stats)).catch(() => null);
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
