/* Rewind: when the playlists reach back far enough, a seek bar spans the seekable window and shows the
 * time of day being watched (EXT-X-PROGRAM-DATE-TIME), with a link to that moment.
 * ?start=<RFC 3339 or Unix seconds> starts there instead of at the live edge; the playlist URLs stay
 * the same (the CDN's cache and blocking reload still apply): the page picks the position once it has
 * the first playlist.
 *
 * create({ video, state, position, play, toLive }): state() is the page's (status.js); play() starts the
 * video; toLive() goes back to the live edge. Returns { pending, resumeAt, startHlsJsAt, startNative,
 * update, playingDate, snapshot }: the player asks pending() before it starts and calls startHlsJsAt or
 * startNative once it can seek; update() reads where the video is, which playingDate() and snapshot()
 * tell. */

import { NATIVE_TARGET_S, START_MARGIN_TDS } from './position.js';
import { snapshot as frozen } from './snapshot.js';
import { formatDuration } from './stats.js';

const SEEK_MIN_WINDOW_S = 45; // shorter windows (the default WINDOW_SECONDS is 30) get no seek bar
const NOTICE_MS = 8000;

export function create({ video, state, position, play, toLive }) {
  const $ = (id) => document.getElementById(id);
  const timeline = $('timeline');
  const seek = $('seek');
  const clock = $('clock');
  const behind = $('behind');
  const moment = $('moment');
  const notice = $('notice');
  const own = {
    playingDate: null, // ms since the epoch of the picture shown (EXT-X-PROGRAM-DATE-TIME), or null
    seekableStart: null, // the window one can seek in, in the video's seconds
    seekableEnd: null,
    momentLink: null, // this page with ?start= the picture shown
  };
  let dragging = false; // the viewer holds the seek bar's thumb: ticks must not move it
  let noticeTimer = null;
  // ms since the epoch: the next player starts there instead of at the live edge (?start, or where a
  // rewound viewer was when the player had to be recreated).
  let startAt = parseStart(new URLSearchParams(location.search).get('start'));

  // The seek bar's value is the offset from the end of the seekable window (<= 0): the thumb stays put
  // while the window slides on under a viewer watching at normal pace, as it should.
  seek.addEventListener('input', () => {
    dragging = true;
    const range = position.seekableRange();
    if (range) showPosition(range.end + Number(seek.value));
  });
  seek.addEventListener('change', () => {
    dragging = false;
    const range = position.seekableRange();
    if (!range) return;
    const target = range.end + Number(seek.value);
    if (target >= position.livePosition(range)) {
      toLive();
      return;
    }
    video.currentTime = Math.max(target, Math.min(range.start + position.startMargin(), position.livePosition(range)));
    play();
  });
  seek.addEventListener('blur', () => {
    dragging = false; // a drag that never ended in a change (the pointer left the window)
  });

  /** The next player starts away from the live edge. */
  function pending() {
    return startAt !== null;
  }

  /** The next player starts at `ms` since the epoch (a rewound viewer's player is recreated). */
  function resumeAt(ms) {
    startAt = ms;
  }

  /** hls.js `h` has its first playlist: starts at startAt, in the fragment whose PROGRAM-DATE-TIME
   * covers it. Returns whether it starts there (false: live). */
  function startHlsJsAt(h, details) {
    const at = startAt;
    startAt = null;
    if (!details.live) return false;
    const fragments = details.fragments.filter((f) => f.programDateTime !== null);
    const f = fragments.find((frag) => at < frag.programDateTime + frag.duration * 1000);
    if (!f) return false; // at or after the live edge (or no dates): live
    const td = details.targetduration;
    const live = h.liveSyncPosition !== null ? h.liveSyncPosition : details.edge - START_MARGIN_TDS * td;
    // Before f: in a gap between dates (a discontinuity) start at f, before the first one is too early.
    const wanted = f === fragments[0] ? f.start + (at - f.programDateTime) / 1000
      : f.start + Math.max(0, at - f.programDateTime) / 1000;
    const chosen = startPosition(wanted, details.fragmentStart, live, START_MARGIN_TDS * td);
    if (chosen !== null) h.startLoad(chosen);
    return chosen !== null;
  }

  /** The native player has its metadata (current: it is still the newest player). Its timeline is
   * dated by getStartDate() (Safari). Returns whether it starts at startAt (false: live). */
  function startNative(current) {
    const at = startAt;
    startAt = null;
    const origin = position.nativeOrigin();
    const range = position.seekableRange();
    if (!current || origin === null || !range) return false;
    const chosen = startPosition((at - origin) / 1000, range.start, position.livePosition(range),
      START_MARGIN_TDS * NATIVE_TARGET_S);
    if (chosen !== null) video.currentTime = chosen;
    return chosen !== null;
  }

  /** Where to start for a wanted position: null to play live, else inside the window (and say so when
   * the time has already left it). */
  function startPosition(wanted, start, live, margin) {
    if (wanted >= live) return null;
    const earliest = Math.min(start + margin, live);
    if (wanted < start) {
      showNotice('That time is no longer available: playing from the earliest moment kept.');
    }
    return Math.max(wanted, earliest);
  }

  /** The seek bar, the clock and the moment link, from where the video is. */
  function update() {
    const range = position.seekableRange();
    own.seekableStart = range ? range.start : null;
    own.seekableEnd = range ? range.end : null;
    own.playingDate = position.playingDate();
    own.momentLink = own.playingDate === null ? null : momentLink(own.playingDate);
    const shown = state() === 'playing' && range !== null && range.end - range.start >= SEEK_MIN_WINDOW_S;
    timeline.hidden = !shown;
    if (!shown || dragging) return;
    seek.min = String(Math.floor(range.start - range.end));
    seek.value = String(Math.min(0, Math.round(video.currentTime - range.end)));
    showPosition(video.currentTime);
    if (own.momentLink !== null) moment.href = own.momentLink;
  }

  /** The time of day and the distance to live at `at` (the playhead, or the thumb while dragged). */
  function showPosition(at) {
    const range = position.seekableRange();
    const offset = at - video.currentTime;
    const date = own.playingDate === null ? null : new Date(own.playingDate + offset * 1000);
    const lag = range ? Math.max(0, position.livePosition(range) - at) : 0;
    const live = lag <= 2 * position.targetDuration(); // as the live button's rule, without its ticks of patience
    const time = date ? date.toLocaleTimeString([], { hour12: false }) : '';
    if (clock.textContent !== time) clock.textContent = time;
    if (date) clock.dateTime = date.toISOString();
    const text = live ? 'LIVE' : '-' + formatDuration(lag);
    if (behind.textContent !== text) behind.textContent = text;
    behind.dataset.live = String(live);
    const said = (time ? time + ', ' : '') + (live ? 'live' : formatDuration(lag) + ' behind live');
    seek.setAttribute('aria-valuetext', said);
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

  /** ?start: RFC 3339 (2026-11-23T14:00:00Z) or Unix seconds; ms since the epoch, or null. */
  function parseStart(text) {
    if (text === null || text === '') return null;
    const ms = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : Date.parse(text);
    if (Number.isFinite(ms)) return ms;
    showNotice('The start parameter is not a time (RFC 3339 or Unix seconds): playing live.');
    return null;
  }

  return { pending, resumeAt, startHlsJsAt, startNative, update, playingDate: () => own.playingDate,
    snapshot: () => frozen(own) };
}
