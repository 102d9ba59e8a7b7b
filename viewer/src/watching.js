// While the video plays: tells the service this page is watching (its viewer count, issue 34), shows
// "N watching" when the service says to, and pings Owncast so its own count includes this page.
//
// The service counts a random id made up here, never stored anywhere else: a heartbeat every
// config.viewers.beat seconds (a third of VIEWER_TIMEOUT), a goodbye on pause and when the page closes
// (keepalive: it outlives the page). The id goes in a header, not the URL: the cheaper request for the
// service (bench/heartbeat.py). Owncast counts a viewer per address and User-Agent (its /api/ping, as its own page
// pings it); the ping needs no answer (no-cors: Owncast sends no CORS headers), only to arrive.
//
// With config.viewers.report (issue 42), a beat also carries this page's playback report (playback.js) in
// the header Hb-Report, at most once per beat interval; the answer's "now" (the service's clock) is how
// playback.js corrects this device's clock. With content steering (PATHWAYS) every beat also says which
// pathway the page plays and its failed segment fetches (Hb-Pathway, playback.js), and a fetch from a
// bucket that fails makes the page beat at once (once per half interval at most): the service then looks
// at the bucket itself, and sends this page's address the VM's bytes while the bucket serves the others.
// With OWNCAST_URL, the page also reports its playback to Owncast's Stream Health (owncast-health.js).

import * as OwncastHealth from './owncast-health.js';

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function start(config, video, p2pOn, playback = null, onSharing = null, address = (url) => url) {
  const viewers = config.viewers || {};
  const owncast = config.owncast;
  const shown = document.getElementById('watching');
  const id = randomId();
  const url = 'live/watching';
  const reporting = playback !== null && viewers.report === 1;
  const health = playback !== null && owncast && (owncast.cmcd || owncast.metrics)
    ? OwncastHealth.create({ owncast, playback, video }) : null;
  let beatTimer = null;
  let pingTimer = null;
  let counted = false;
  let lastBeat = -Infinity;

  const playing = () => !video.paused && !video.ended;

  function show(n) {
    if (!shown) return;
    shown.textContent = `${n} watching`;
    shown.hidden = false;
  }

  async function beat(urgent = false) {
    if (!playing()) return stopped();
    lastBeat = performance.now();
    const report = reporting && !urgent ? playback.report(viewers.beat * 1000) : null;
    let answered = false;
    try {
      const sentAt = performance.now();
      const response = await send(p2pOn() ? `${id} p2p` : id, false, report, playback ? playback.pathwayWord() : null);
      const receivedAt = performance.now();
      const body = response.status === 200 ? await response.json() : null;
      answered = true;
      if (report !== null) playback.answered(report, sentAt, receivedAt, body);
      if (beatTimer === null) {
        // Paused or closed while this beat was on its way: its goodbye may have gone first.
        if (response.ok) leave();
        return;
      }
      counted = response.ok;
      if (viewers.show && body && typeof body.watching === 'number') show(body.watching);
      // With P2P on: how many pages share (P2P_MIN_VIEWERS is compared with it, p2p-choice.js).
      if (onSharing && body && typeof body.sharing === 'number') onSharing(body.sharing);
    } catch (err) {
      // offline for a moment: the next beat counts again, and carries this one's report
      if (report !== null && !answered) playback.answered(report, 0, 0, null);
    }
  }

  function send(value, keepalive = false, report = null, pathway = null) {
    const headers = { 'Hb-Watching': value };
    if (report !== null) headers['Hb-Report'] = report.text;
    if (pathway !== null) headers['Hb-Pathway'] = pathway;
    // A private stream's token (access.js) as the page holds it now: it is renewed while the page plays.
    return fetch(address(url), { method: 'POST', cache: 'no-store', credentials: 'omit', keepalive, headers });
  }

  function leave() {
    send(`${id} leave`, true).catch(() => {});
  }

  function ping() {
    fetch(owncast.ping, { mode: 'no-cors', cache: 'no-store', credentials: 'omit' }).catch(() => {});
  }

  function started() {
    if (beatTimer === null && viewers.beat > 0) {
      beat();
      beatTimer = setInterval(beat, viewers.beat * 1000);
    }
    if (owncast && pingTimer === null && owncast.every > 0) {
      ping();
      pingTimer = setInterval(ping, owncast.every * 1000);
    }
    if (health) health.start();
  }

  function stopped() {
    clearInterval(beatTimer);
    clearInterval(pingTimer);
    if (health) health.stop();
    beatTimer = pingTimer = null;
    if (counted) leave();
    counted = false;
    if (shown) shown.hidden = true;
  }

  if (playback !== null) {
    playback.onFailure(() => {
      if (beatTimer !== null && performance.now() - lastBeat > (viewers.beat * 1000) / 2) beat(true);
    });
  }
  video.addEventListener('playing', started);
  video.addEventListener('pause', stopped);
  video.addEventListener('ended', stopped);
  window.addEventListener('pagehide', stopped);
  if (playing() && video.readyState > 2) started();
  return { id, owncast: health };
}
