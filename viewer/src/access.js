/* A private stream's viewer token: got from the service's POST /live/access for the pass-phrase or an
 * invite link, kept for this tab, renewed before it ends, and added to what the page asks of the service.
 *
 * The token travels as the query parameter `access=` (players cannot add headers, and a page embedded on
 * another site may have no cookies at all), on the multivariant playlist, /live/events, /live/watching
 * and the tracker; the service writes it into the playlist URIs it lists, and players follow those.
 * It is kept in sessionStorage (this tab only, gone with it) when the browser allows that, else in
 * memory: a page framed by another site with third-party storage blocked still works, it only asks again
 * after a reload. An invite link's token is kept too, so a tab that slept past the token's life (a
 * renewal needs a token still valid) asks the service again with the invite rather than the viewer.
 *
 * The service's clock says when a token ends (`expires`, Unix seconds); the device's may be off, so the
 * end is kept on the device's clock, shifted by the difference the answer's Date header shows.
 *
 * create(deps) returns { serve, token, withToken, refresh, passphrase, redeem, recover, forget, snapshot }:
 * - serve(playlist): the stream's multivariant playlist is at this URL: its service's /live/access (beside
 *   its /live/ or /hls/ folder) is asked from then on, and its stream URIs get the token. Until then, the
 *   page's own service (a page hosted elsewhere plays another's: ?src=);
 * - token(): the token held and still valid, or null;
 * - withToken(url): `url` with access=<token held> (unchanged without one);
 * - refresh(url): a URL the service wrote with an access= of an older token, with the current one; a URL
 *   of the service's stream doors without one (the VM's segments), with it; any other as it is;
 * - passphrase(text), redeem(invite): ask the service; a promise of { ok } or { ok: false, error } with
 *   the service's own words (wrong pass-phrase, the invite expired or was revoked, too many attempts);
 * - recover(): after a door refused the token held: renew it, or redeem the invite kept; { ok, error };
 * - forget(): drop what is held; snapshot(): { held, expiresAt, renewals }, read-only.
 * deps: onLost(error) when a renewal is refused (an invite revoked: the page asks again); and for tests
 * fetch, storage ({ get, set } of one string), now() (ms), setTimeout/clearTimeout, base (the page's
 * URL). */

import { snapshot as frozen } from './snapshot.js';

const KEY = 'hls-broadcaster.access';
const ENDPOINT = 'live/access';
const PARAM = 'access';
const RENEW_AT = 0.75; // renew once this share of the time left has passed: a life of 600 s, 150 s early
// The service's stream doors: a URI there without a token (a segment of the VM's pathway, listed in a
// media playlist that is the same for every viewer) is asked with it.
const STREAM_PATH = /\/(live|hls)\//;
const PLAYLIST_PATH = /\/(live|hls)\/[^/]+$/; // a multivariant playlist there: /live/access is beside it
const RETRY_MS = 10000; // a renewal that did not get through (offline for a moment): again this soon

export function create(deps = {}) {
  const http = deps.fetch || ((...args) => fetch(...args));
  const storage = deps.storage || sessionStore();
  const now = deps.now || Date.now;
  const later = deps.setTimeout || ((run, ms) => setTimeout(run, ms));
  const cancel = deps.clearTimeout || ((timer) => clearTimeout(timer));
  const base = deps.base || location.href;
  const onLost = deps.onLost || (() => {});
  let endpoint = new URL(ENDPOINT, base).href;
  let home = new URL(base).origin; // the service's
  const own = { held: false, expiresAt: null, renewals: 0 };
  let kept = read(); // { token, expiresAt (device ms), invite }
  let timer = null;
  show();
  schedule();

  function serve(playlist) {
    const url = new URL(playlist, base);
    if (!PLAYLIST_PATH.test(url.pathname)) return;
    endpoint = new URL('../' + ENDPOINT, url).href;
    home = url.origin;
  }

  function token() {
    return kept.token && kept.expiresAt > now() ? kept.token : null;
  }

  function withToken(url) {
    // The token held, even past the end this page expects: its renewal may be on its way (a busy
    // device), and the service judges it (a refusal makes the page renew). Never a door asked without.
    const held = kept.token;
    if (!held) return url;
    const u = new URL(url, base);
    u.searchParams.set(PARAM, held);
    return u.href;
  }

  function refresh(url) {
    const held = token();
    if (!held) return url;
    const u = new URL(url, base);
    if (u.searchParams.has(PARAM)) {
      if (u.searchParams.get(PARAM) === held) return url;
    } else if (u.origin !== home || !STREAM_PATH.test(u.pathname)) {
      return url; // the bucket's (segments carry their own edge token), or not a door
    }
    u.searchParams.set(PARAM, held);
    return u.href;
  }

  async function passphrase(text) {
    return ask({ passphrase: String(text) });
  }

  async function redeem(invite) {
    const result = await ask({ invite: String(invite) });
    if (result.ok) {
      kept.invite = String(invite);
      write();
    }
    return result;
  }

  /** A door refused the token held (expired while the tab slept, the secret rotated, revoked). */
  async function recover() {
    const held = token();
    let result = { ok: false, error: '' };
    if (held) result = await ask({ token: held });
    if (!result.ok && !result.retry && kept.invite) result = await ask({ invite: kept.invite });
    if (!result.ok && !result.retry) forget();
    return result;
  }

  function forget() {
    cancel(timer);
    timer = null;
    kept = {};
    write();
    show();
  }

  /** POSTs `body` to /live/access; a token answered is held from then on. */
  async function ask(body) {
    let response;
    try {
      // text/plain: a simple request, so a page hosted on another site asks without a preflight (the
      // service answers any origin, and reads the JSON whatever its type).
      response = await http(endpoint, {
        method: 'POST', cache: 'no-store', credentials: 'omit',
        headers: { 'Content-Type': 'text/plain;charset=UTF-8' }, body: JSON.stringify(body),
      });
    } catch (err) {
      return { ok: false, error: 'The server could not be reached. Try again.', retry: true };
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (err) {
      // not JSON: said below
    }
    if (response.status === 200 && answer && typeof answer.token === 'string' && Number.isFinite(answer.expires)) {
      const date = Date.parse(response.headers.get('Date') || '');
      const skew = Number.isFinite(date) ? now() - date : 0; // the device's clock less the service's
      kept = { ...kept, token: answer.token, expiresAt: answer.expires * 1000 + skew };
      write();
      show();
      schedule();
      return { ok: true };
    }
    const error = answer && typeof answer.error === 'string' && answer.error
      ? answer.error : `The server refused (HTTP ${response.status}). Try again.`;
    return { ok: false, error, retry: response.status === 429 || response.status >= 500 };
  }

  function schedule() {
    cancel(timer);
    timer = null;
    if (!token()) return;
    timer = later(renew, Math.max(0, (kept.expiresAt - now()) * RENEW_AT));
  }

  async function renew() {
    timer = null;
    const held = token();
    if (!held) return;
    let result = await ask({ token: held });
    if (!result.ok && !result.retry && kept.invite) result = await ask({ invite: kept.invite });
    if (result.ok) {
      own.renewals += 1;
      show();
    } else if (result.retry && token()) {
      timer = later(renew, Math.min(RETRY_MS, Math.max(0, kept.expiresAt - now())));
    } else {
      forget();
      onLost(result.error);
    }
  }

  function read() {
    try {
      const value = JSON.parse(storage.get() || '{}');
      return value && typeof value === 'object' ? value : {};
    } catch (err) {
      return {};
    }
  }

  function write() {
    storage.set(JSON.stringify(kept));
  }

  function show() {
    own.held = token() !== null;
    own.expiresAt = own.held ? kept.expiresAt : null;
  }

  return { serve, token, withToken, refresh, passphrase, redeem, recover, forget, snapshot: () => frozen(own) };
}

/** sessionStorage when this page may use it (a third-party frame may not: reading it throws), else a
 * variable: the token lasts as long as the page then. */
function sessionStore() {
  let memory = null;
  const store = () => {
    try {
      return window.sessionStorage;
    } catch (err) {
      return null;
    }
  };
  return {
    get() {
      try {
        const s = store();
        const value = s ? s.getItem(KEY) : null;
        return value !== null ? value : memory;
      } catch (err) {
        return memory;
      }
    },
    set(value) {
      memory = value;
      try {
        const s = store();
        if (s) s.setItem(KEY, value);
      } catch (err) {
        // full, or refused: the variable keeps it
      }
    },
  };
}
