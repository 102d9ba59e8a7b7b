/* Where the playhead is in the stream, for either engine: hls.js, or the browser's own HLS (Safari).
 * Reads only: nothing here moves the video or changes the player.
 *
 * create({ video, hls }): hls() is the current hls.js player, or null with the native one. */

export const START_MARGIN_TDS = 3; // the window slides on: stay this many target durations inside its start
export const NATIVE_TARGET_S = 2; // the native player does not tell the target duration: assume this

export function create({ video, hls }) {
  /** The window one can seek in, in the video's seconds, or null. */
  function seekableRange() {
    const ranges = video.seekable;
    return ranges.length ? { start: ranges.start(0), end: ranges.end(ranges.length - 1) } : null;
  }

  /** Where the live button goes. */
  function livePosition(range) {
    const h = hls();
    if (h && h.liveSyncPosition !== null) return h.liveSyncPosition;
    return Math.max(range.start, range.end - startMargin());
  }

  function startMargin() {
    return START_MARGIN_TDS * targetDuration();
  }

  function targetDuration() {
    const h = hls();
    const details = h && h.latestLevelDetails;
    return details ? details.targetduration : NATIVE_TARGET_S;
  }

  /** ms since the epoch of the picture shown (EXT-X-PROGRAM-DATE-TIME), or null. */
  function playingDate() {
    const h = hls();
    if (h) {
      const date = h.playingDate;
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

  /** Seconds buffered ahead of the playhead. */
  function bufferAhead() {
    const ranges = video.buffered;
    const t = video.currentTime;
    for (let i = 0; i < ranges.length; i += 1) {
      if (ranges.start(i) <= t + 0.1 && t <= ranges.end(i)) return ranges.end(i) - t;
    }
    return 0;
  }

  return { seekableRange, livePosition, startMargin, targetDuration, playingDate, nativeOrigin, bufferAhead };
}
