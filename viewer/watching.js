// While the video plays: tells the service this page is watching (its viewer count, issue 34), shows
// "N watching" when the service says to, and pings Owncast so its own count includes this page.
//
// The service counts a random id made up here, never stored anywhere else: a heartbeat every
// config.viewers.beat seconds (a third of VIEWER_TIMEOUT), a goodbye (sendBeacon) on pause and when
// the page closes. Owncast counts a viewer per address and User-Agent (its /api/ping, as its own page
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
  const base = `live/watching?id=${id}`;
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
      const response = await fetch(base + (p2pOn() ? '&p2p=1' : ''),
        { method: 'POST', cache: 'no-store', credentials: 'omit' });
      if (beatTimer === null) {
        // Paused or closed while this beat was on its way: its goodbye may have gone first.
        if (response.ok) navigator.sendBeacon(`${base}&leave=1`);
        return;
      }
      counted = response.ok;
      const body = viewers.show && response.status === 200 ? await response.json() : null;
      if (body && beatTimer !== null) show(body.watching);
    } catch (err) {
      // offline for a moment: the next beat counts again
    }
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
    if (counted) navigator.sendBeacon(`${base}&leave=1`);
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
