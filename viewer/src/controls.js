/* The viewer's controls: quality (kept across player restarts), unmute (offered when the browser
 * allowed only muted autoplay) and "Go live" (offered while behind the live edge).
 *
 * create({ video, hls, position, state, behindLive, play }): hls() is the current hls.js player or null;
 * state() is the page's (status.js); behindLive() the seconds behind where the live button goes, or null
 * (stats.js); play() starts the video (the player's, with its autoplay fallback). */

import { formatBitrate } from './stats.js';

const BEHIND_TICKS = 3; // seconds behind the live edge before "Go live" is offered

export function create({ video, hls, position, state, behindLive, play }) {
  const quality = document.getElementById('quality');
  const unmute = document.getElementById('unmute');
  const goLive = document.getElementById('go-live');
  let preferredLevel = -1; // the viewer's quality choice, kept across player restarts
  let behindTicks = 0;
  let catchUp = false; // a player started live: one look, once it plays, that it is at the live edge

  // A seek once the video plays is the viewer's (the seek bar, a key) or the live button's: the start's
  // catch-up must never undo it. hls.js's own first seek comes before it plays.
  video.addEventListener('seeking', () => {
    if (state() === 'playing') catchUp = false;
  });

  video.addEventListener('volumechange', () => {
    if (!video.muted) unmute.hidden = true;
  });
  unmute.addEventListener('click', () => {
    video.muted = false;
    unmute.hidden = true;
  });
  goLive.addEventListener('click', toLive);
  quality.addEventListener('change', () => {
    preferredLevel = Number(quality.value);
    const h = hls();
    if (h) h.nextLevel = preferredLevel; // -1: automatic; switches at the next segment
  });

  /** The variants of a new hls.js player `h`: listed, and the viewer's choice applied to it. */
  function fillQualities(levels, h) {
    quality.replaceChildren(new Option('Auto', '-1'));
    levels.forEach((level, i) => {
      const name = level.height ? level.height + 'p' : 'Variant ' + (i + 1);
      quality.add(new Option(level.bitrate ? name + ' · ' + formatBitrate(level.bitrate) : name, String(i)));
    });
    quality.disabled = levels.length < 2;
    if (preferredLevel >= levels.length) preferredLevel = -1;
    quality.value = String(preferredLevel);
    if (preferredLevel >= 0) h.nextLevel = preferredLevel;
  }

  /** The browser played muted (autoplay with sound refused): offer the sound back. */
  function offerUnmute() {
    unmute.hidden = false;
  }

  function toLive() {
    const h = hls();
    const range = position.seekableRange();
    if (h && h.liveSyncPosition !== null) {
      video.currentTime = h.liveSyncPosition;
    } else if (!h && range) {
      video.currentTime = position.livePosition(range);
    }
    reset();
    play();
  }

  /** Each second: "Go live" once behind the live edge for a few seconds in a row. */
  function update() {
    const h = hls();
    const details = h && h.latestLevelDetails;
    const live = h ? Boolean(details && details.live) : video.duration === Infinity;
    // Behind for a few seconds in a row: a new player briefly reports nonsense before its first seek.
    const lag = behindLive();
    const playing = state() === 'playing';
    const behindNow = live && lag !== null && lag > 2 * position.targetDuration();
    // Seen at the edge once playing: nothing to catch up (a later seek back is the viewer's own).
    if (catchUp && playing && lag !== null && !behindNow) catchUp = false;
    if (catchUp && playing && !video.seeking && video.readyState >= 3 && lag !== null) {
      catchUp = false;
      // hls.js picks the live edge on its first playlist; a start slower than a couple of target
      // durations (a busy device) plays from behind it, and with liveMaxLatencyDuration left at Infinity
      // (for rewind) nothing ever brings it back: once, as the live button would.
      if (behindNow) {
        toLive();
        return;
      }
    }
    behindTicks = behindNow ? behindTicks + 1 : 0;
    goLive.hidden = behindTicks < BEHIND_TICKS;
  }

  /** A player starts: `live`, or at a time (?start, or a rewound viewer's player made anew). */
  function starting(live) {
    catchUp = live;
  }

  /** The player stopped: no "Go live" until the next one is behind. */
  function reset() {
    behindTicks = 0;
    goLive.hidden = true;
  }

  /** "Go live" is offered: the viewer watches behind the live edge. */
  function behind() {
    return !goLive.hidden;
  }

  return { fillQualities, offerUnmute, toLive, update, starting, reset, behind };
}
