/* Live viewer: composes the page's parts, each an ES module of its own:
 *
 *   player.js    the player's life: hls.js or native, errors and backoff, waiting for the stream
 *   status.js    the status line and the overlay on the video
 *   position.js  where the playhead is in the stream (the seekable window, the live edge, the date)
 *   controls.js  quality, unmute, "Go live"
 *   rewind.js    the seek bar, the clock, moment links and ?start=
 *   stats.js     the stats panel, the sharing line and window.viewerStats, composed from the others
 *   events.js    the server's events (/live/events) while the stats panel is open
 *   playback.js  how playback fares (stalls, latency, errors, downloads), reported with the heartbeat
 *   p2p.js       viewer-to-viewer segments, imported only when /config.json has "p2p"
 *   p2p-choice.js  the viewer's notice and choice about P2P, and whether enough viewers share
 *   access.js    a private stream's token: asked for, kept, renewed, added to what the page asks
 *   gate.js      a private stream's pass-phrase form, shown alone while the page has no token
 *
 * Each exports create(deps): values and callbacks in, a few functions out, and snapshot(): a read-only
 * copy of the state it keeps (issue 49: no module writes another's; stats.js composes the snapshots for
 * the panel and the test hook window.viewerStats). No globals but hls.min.js's window.Hls (a classic
 * script that runs before this one) and that hook. A part that needs one created after it (the player is
 * at the centre of a few such loops) gets a callback, called only once the page runs.
 *
 * scripts/build-viewer builds this file with every module it imports statically into viewer.min.js
 * (esbuild), and the two it imports later, import('./watching.js') and import('./p2p.js'), into files of
 * their own that it names by version: keep those two as plain import('./x.js') calls.
 */

import * as Access from './access.js';
import * as Controls from './controls.js';
import * as Gate from './gate.js';
import * as P2PChoice from './p2p-choice.js';
import * as Events from './events.js';
import * as Playback from './playback.js';
import * as Player from './player.js';
import * as Position from './position.js';
import * as Rewind from './rewind.js';
import * as Stats from './stats.js';
import * as Status from './status.js';

const video = document.getElementById('video');
const params = new URLSearchParams(location.search);
const given = params.get('src') || null;
// Without ?src, config.json (from the service) says where the stream is: the service's own
// playlists, or the bucket's when playlists are published there. Resolved before the player starts.
const src = given === null ? null : playlistUrl(given);

const hls = () => player.hls();
// A private stream (config.json "private", or a playlist answering 401): the form until the viewer has a
// token; a renewal refused (an invite revoked) stops the player and asks again.
const access = Access.create({ onLost: (why) => refused(why) });
const gate = Gate.create({ access });
let p2p = null; // p2p.js's { createHls, snapshot } once config.json turned it on and it loaded
let sharing = null; // ...when it can share here (createHls is null without WebCrypto)
let choice = null; // p2p-choice.js: the viewer's say, shown with config.json "p2p" before any peer
const position = Position.create({ video, hls });
const stats = Stats.create({ video, hls, position, onToggle: (open) => (open ? events.open() : events.close()) });
const status = Status.create({ onChange: stats.refresh });
const rewind = Rewind.create({ video, state: status.state, position, play: () => player.play(),
  toLive: () => controls.toLive() });
const player = Player.create({
  video, status, position, rewind,
  countSegment: stats.countSegment, refresh: stats.refresh,
  onPlayer: (h) => playback.attach(h),
  onLevels: (levels, h) => controls.fillQualities(levels, h),
  onMutedAutoplay: () => controls.offerUnmute(),
  onStart: (live) => controls.starting(live),
  onStop: () => controls.reset(),
  behind: () => controls.behind(),
  access,
  denied: () => refused(null),
});
// After the player: its snapshot is where playback.js starts counting errors from.
const playback = Playback.create({ video, hls, position, player: player.snapshot,
  p2p: () => (p2p ? p2p.snapshot() : null), behindLive: stats.behindLive });
const controls = Controls.create({ video, hls, position, state: status.state, behindLive: stats.behindLive,
  play: player.play });
const events = Events.create({ isOpen: stats.isOpen, address: access.withToken });
stats.attach({ status, player, rewind, events, playback, access });

video.addEventListener('timeupdate', () => {
  // The clock and the test hooks, between ticks (a seek shows at once, not up to a second later).
  stats.read();
  rewind.update();
});

function tick() {
  player.tick();
  stats.read();
  controls.update();
  rewind.update();
  stats.refresh();
}

/**
 * config.json: in the page, where the service writes it (issue 42: the player starts without asking
 * for it), else fetched, once (a private stream's page reads it before anything else too); null when
 * there is none (the page is hosted elsewhere).
 */
let configRead = null;
function readConfig() {
  if (configRead === null) configRead = configOnce();
  return configRead;
}

async function configOnce() {
  const inline = document.querySelector('meta[name="viewer-config"]');
  if (inline && inline.content) {
    try {
      return JSON.parse(inline.content);
    } catch (err) {
      // not JSON: ask the service
    }
  }
  const response = await fetch('config.json', { cache: 'no-cache' });
  return response.ok ? response.json() : null;
}

/** config.json's playlist URL (or the service's own); p2p.js loaded first when it has "p2p". */
async function configuredSource() {
  try {
    const config = (await readConfig()) || {};
    if (config && config.p2p && window.Hls && window.Hls.isSupported()) {
      // The notice first: the engine below starts with peers off, until the choice and the count allow.
      choice = P2PChoice.create({ config: config.p2p, onChange: (on) => { if (sharing) sharing.allow(on); } });
      // Peer-to-peer segments, the bucket as the fallback; if it cannot load, play without it, and say
      // why in the console (a file missing, a config.json p2p.js refuses).
      p2p = await import('./p2p.js').then((m) => m.create(config.p2p, access)).catch((err) => {
        console.warn('P2P off:', err);
        return null;
      });
      sharing = p2p && p2p.createHls ? p2p : null;
      // The stats panel and window.viewerStats.p2p: the engine's counts with the viewer's choice.
      const engine = p2p;
      if (engine) stats.attach({ p2p: { snapshot: () => ({ ...engine.snapshot(), choice: choice.snapshot() }) } });
    }
    if (config && config.viewers) {
      // "N watching" and the heartbeat that counts this page (watching.js; SHOW_VIEWER_COUNT, OWNCAST_URL).
      // A page counts as sharing when it could and its viewer said yes; the answer counts those pages.
      const willing = () => sharing !== null && choice !== null && choice.willing();
      const counted = (n) => { if (choice) choice.counted(n); };
      // Imported once the video plays (its first beat waits for that anyway): one request fewer
      // before the first frame.
      afterFirstFrame(() => import('./watching.js').then((m) => {
        const watching = m.start(config, video, willing, playback, counted, access.withToken);
        if (watching.owncast) stats.attach({ owncast: watching.owncast }); // viewerStats.owncast
      })
        .catch((err) => console.warn('viewer count off:', err)));
    }
    if (config && typeof config.src === 'string' && playlistUrl(config.src)) return playlistUrl(config.src);
  } catch (err) {
    // no config (the page is hosted elsewhere) or not JSON: the service's default path
  }
  return playlistUrl('/live/master.m3u8');
}

/**
 * The stream's title and description from Owncast's /api/config (its server name and summary, served
 * to any origin), where config.json says to ("details": OWNCAST_URL is set and a setting is not): the
 * service wrote the settings' words into the page already.
 */
async function owncastWords() {
  const config = await readConfig().catch(() => null);
  const details = config && config.details;
  if (!details || typeof details.url !== 'string') return;
  try {
    const response = await fetch(details.url, { cache: 'no-store', credentials: 'omit' });
    const body = response.ok ? await response.json() : null;
    const name = body && typeof body.name === 'string' ? body.name.trim().slice(0, 200) : '';
    const summary = body && typeof body.summary === 'string' ? body.summary.trim().slice(0, 1000) : '';
    if (details.title && name) {
      document.getElementById('title').textContent = name;
      document.title = name;
    }
    const line = document.getElementById('description');
    if (details.description && summary && line) {
      line.textContent = summary;
      line.hidden = false;
    }
  } catch (err) {
    console.warn('Owncast\'s title and description not read:', err); // the page's own words stay
  }
}

/**
 * Whether ?src= may play here (issue 41): a link to this site must not make it play someone else's
 * stream. Allowed: this service's playlists (this origin, /live/ or /hls/), where config.json plays
 * from (the bucket's copies, and its folder), and the origins the operator lists (VIEWER_SOURCES:
 * config.sources, '*' for any). A page with no config.json is hosted elsewhere, by its operator: any.
 */
async function allowedSource(url) {
  let config;
  try {
    config = await readConfig();
    if (config === null) return true;
  } catch (err) {
    return true;
  }
  const wanted = new URL(url);
  if (wanted.origin === location.origin && /^\/(live|hls)\//.test(wanted.pathname)) return true;
  const home = config && typeof config.src === 'string' ? playlistUrl(config.src) : null;
  if (home) {
    const base = new URL('.', home);
    if (wanted.origin === base.origin && wanted.pathname.startsWith(base.pathname)) return true;
  }
  const sources = config && Array.isArray(config.sources) ? config.sources : [];
  return sources.includes('*') || sources.includes(wanted.origin);
}

/** `run` once the video first plays, or WORDS_WAIT_MS after the page started if it has not (an offline
 * stream): what the first frame does not need waits for it, so it does not compete with the stream's
 * requests on a slow link. */
const WORDS_WAIT_MS = 5000;
function afterFirstFrame(run, wait = Infinity) {
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    run();
  };
  if (!video.paused && video.readyState > 2) once();
  else video.addEventListener('playing', once, { once: true });
  if (Number.isFinite(wait)) setTimeout(once, wait);
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

/**
 * Before the stream is asked for: an invite link (?invite=) is exchanged for a token, and taken out of
 * the address bar (a moment link copied from the page must not pass it on); a stream config.json says is
 * private waits for a token (the form). Otherwise the player starts, and a playlist answering 401 is how
 * the page learns (refused below).
 */
async function admitted() {
  const invite = params.get('invite');
  let said = '';
  if (invite !== null) {
    const url = new URL(location.href);
    url.searchParams.delete('invite');
    history.replaceState(history.state, '', url.href);
    const result = await access.redeem(invite);
    if (result.ok) return;
    said = result.error;
  }
  if (access.token()) return;
  const config = await readConfig().catch(() => null);
  if (said || (config && config.private)) await gate.ask(said);
}

let recovered = -Infinity; // when a refused token was last renewed or exchanged again (performance.now())
const RECOVER_AGAIN_MS = 15000; // refused again this soon after: the form rather than a loop

/** A door refused the page (a playlist's 401/403, `why` null; or a renewal refused, `why` the service's
 * words): the player stops; the token is renewed, or the invite kept exchanged again, else the viewer is
 * asked. Then the player starts again, with the token. */
let refusing = false; // one at a time: the player's refusal and a renewal's may come together
async function refused(why) {
  if (gate.locked() || refusing) return;
  refusing = true;
  player.stop();
  let said = why;
  if (why === null && performance.now() - recovered > RECOVER_AGAIN_MS) {
    const result = await access.recover();
    if (result.ok) recovered = performance.now();
    else said = result.error;
  } else if (why === null) {
    access.forget();
    said = '';
  }
  if (!access.token()) await gate.ask(said || '');
  refusing = false;
  player.restart();
}

// -- go -------------------------------------------------------------------------------------------

setInterval(tick, 1000);
admitted().then(() => {
  if (params.get('stats') === '1') stats.show(true); // its event stream is a door too: after the token
  if (given !== null && src === null) {
    status.set('error', 'The src parameter is not an http(s) URL.', 'Bad src parameter');
  } else if (src !== null) {
    allowedSource(src).then((allowed) => {
      access.serve(src);
      if (allowed) player.start(src, null);
      else {
        const why = "This page plays only this site's own stream: the src parameter names another site.";
        status.set('error', why, 'Not this site\'s stream');
      }
    });
  } else {
    configuredSource().then((found) => {
      access.serve(found);
      player.start(found, sharing);
    });
  }
  // The stream's words (Owncast's title) only to a page let in.
  afterFirstFrame(() => gate.after(owncastWords), WORDS_WAIT_MS);
});
