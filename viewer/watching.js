// While the video plays: tells the service this page is watching (its viewer count, issue 34), shows
// "N watching" when the service says to, and pings Owncast so its own count includes this page.
//
// The service counts a random id made up here, never stored anywhere else: a heartbeat every
// config.viewers.beat seconds (a third of VIEWER_TIMEOUT), a goodbye on pause and when the page closes
// (keepalive: it outlives the page). The id goes in a header, not the URL: the cheaper request for the
// service (bench/heartbeat.py). Owncast counts a viewer per address and User-Agent (its /api/ping, as its own page
// pings it); the ping needs no answer (no-cors: Owncast sends no CORS headers), only to arrive.

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function start(config, video, p2pOn) {
  const viewers = config.viewers || {};
  const owncast = config.owncast;
  const shown = document.getElementById('watching');
  const id = randomId();
  const url = 'live/watching';
  let beatTimer = null;
  let pingTimer = null;
  let counted = false;

  const playing = () => !video.paused && !video.ended;

  function show(n) {
    if (!shown) return;
    shown.textContent = `${n} watching`;
    shown.hidden = false;
  }

  async function beat() {
    if (!playing()) return stopped();
    try {
      const response = await send(p2pOn() ? `${id} p2p` : id);
      if (beatTimer === null) {
        // Paused or closed while this beat was on its way: its goodbye may have gone first.
        if (response.ok) leave();
        return;
      }
      counted = response.ok;
      const body = viewers.show && response.status === 200 ? await response.json() : null;
      if (body && beatTimer !== null) show(body.watching);
    } catch (err) {
      // offline for a moment: the next beat counts again
    }
  }

  function send(value, keepalive = false) {
    return fetch(url, { method: 'POST', cache: 'no-store', credentials: 'omit', keepalive,
      headers: { 'Hb-Watching': value } });
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
  }

  function stopped() {
    clearInterval(beatTimer);
    clearInterval(pingTimer);
    beatTimer = pingTimer = null;
    if (counted) leave();
    counted = false;
    if (shown) shown.hidden = true;
  }

  video.addEventListener('playing', started);
  video.addEventListener('pause', stopped);
  video.addEventListener('ended', stopped);
  window.addEventListener('pagehide', stopped);
  if (playing() && video.readyState > 2) started();
  return { id };
}
