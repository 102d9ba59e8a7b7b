"""What the player tests that play pages side by side (tests/test_steering_browser.py,
tests/test_independent_players.py, tests/test_players_empty_end.py) read from any page, whatever its
player: WATCH_JS, an init script watching the video element, and PAGE_STATE_JS, what the page and its
player said (the probe of tests/support/player_pages.py, or the viewer page's own stats).
"""

from __future__ import annotations

from typing import Any

STALL_MS = 250
STUCK_MS = 8000

# On window.watch, polled every 50 ms (an init script: it runs before the page's own):
# - `stalls`: the video's time standing still for more than STALL_MS while it is neither paused nor
#   seeking, once it has moved; `current`, the one going on; `played`, the seconds it played since.
# - the video element's events, how far it got (`furthest`), how long it has not moved (`stillMs`, paused or
#   not: a player that gave up may pause), and `stuck` once it has played to `LAST` and then not moved for
#   STUCK_MS without an 'ended'. Standing still before LAST is no verdict: a starved browser on a busy
#   machine holds a video seconds at a time and then plays on.
# - `errors`, `levels` and `frags`: for hooks a page adds (tests/support/empty_end_players.py's).
WATCH_JS = """
(() => {
  const STALL_MS = %d, STUCK_MS = %d, LAST = %s;
  const w = window.watch = {
    started: false, moved: false, ended: false, stuck: false, furthest: 0, stillMs: 0, stalls: [], current: 0,
    played: 0, events: [], errors: [], levels: [], frags: [], mediaError: null,
  };
  const now = () => Math.round(performance.now());
  let hooked = null, last = -1, lastMove = performance.now(), lastPlay = lastMove;
  const hook = (v) => {
    for (const kind of ['playing', 'waiting', 'ended', 'error', 'pause', 'seeking']) {
      v.addEventListener(kind, () => {
        w.events.push([kind, Math.round(v.currentTime * 1000) / 1000, now()]);
        if (kind === 'ended') w.ended = true;
        if (kind === 'playing') w.started = true;
        if (kind === 'error') w.mediaError = v.error ? v.error.code + ' ' + v.error.message : '?';
      });
    }
  };
  setInterval(() => {
    const v = document.querySelector('video');
    if (!v) return;
    if (v !== hooked) { hook(v); hooked = v; }
    const t = v.currentTime, ms = performance.now();
    if (t !== last) {
      const still = ms - lastPlay;
      if (w.moved && last >= 0 && still > STALL_MS) {
        w.stalls.push({ at: Math.round(lastPlay), ms: Math.round(still) });
      }
      if (w.moved && t > last && t - last < 1) w.played += t - last;
      if (!v.paused && t > 0) w.moved = true;
      last = t;
      lastMove = lastPlay = ms;
      w.current = 0;
    } else if (v.paused || v.seeking) {
      lastPlay = ms;
    } else {
      w.current = Math.round(ms - lastPlay);
    }
    if (w.started) w.furthest = Math.max(w.furthest, t);
    w.stillMs = Math.round(ms - lastMove);
    if (w.started && !w.ended && t >= LAST && ms - lastMove > STUCK_MS) w.stuck = true;
  }, 50);
})();
"""


def watch_js(last: float | None = None) -> str:
    """WATCH_JS, `stuck` judged from `last` (seconds of media) on; None: never."""
    return WATCH_JS % (STALL_MS, STUCK_MS, "Infinity" if last is None else f"{last:g}")


# What the page says: window.watch's, and its player's name, version, fatal errors (the probe's, or the
# viewer page's errors when it counted one it had to make a new player for: viewerStats.errorKinds) and
# the last errors it reported, fatal or not (`said`).
PAGE_STATE_JS = """() => {
  const w = window.watch || {}, p = window.probe || null, s = window.viewerStats || null;
  const kinds = s && s.errorKinds ? Object.values(s.errorKinds) : [];
  const viewerFatal = kinds.some((k) => k.fatal) ? (s.errors.length ? s.errors : ['a fatal error']) : [];
  return JSON.parse(JSON.stringify({
    started: !!w.started, ended: !!w.ended, stuck: !!w.stuck, stillMs: w.stillMs || 0,
    furthest: w.furthest || 0, played: w.played || 0, errors: w.errors || [], levels: w.levels || [],
    frags: w.frags || [], events: (w.events || []).slice(-12), mediaError: w.mediaError || null,
    player: p ? p.player : 'viewer', version: p ? p.version : null,
    fatal: (p ? p.errors.filter((e) => e.fatal).map((e) => e.details) : viewerFatal).map(String),
    said: (p ? p.errors.map((e) => e.details) : s ? s.errors : []).map(String).slice(-50),
    viewer: s ? { state: s.state, engine: s.engine } : null,
  }));
}"""


async def page_state(page: Any) -> dict[str, Any]:
    """PAGE_STATE_JS's answer."""
    state: dict[str, Any] = await page.evaluate(PAGE_STATE_JS)
    return state
