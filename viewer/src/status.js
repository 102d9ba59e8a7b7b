/* What the page says about playback: the status line (announced by screen readers) and the overlay
 * on the video. Keeps the page's state ('loading' | 'playing' | 'offline' | 'waiting' | 'error').
 *
 * create({ onChange }): onChange() after every state change (the stats panel's state row must not lag
 * the overlay). Returns { set, state, overlay, overlayText, snapshot }. */

import { snapshot as frozen } from './snapshot.js';

const MESSAGES = { // [the status line, the overlay]
  loading: ['Loading the stream…', 'Loading the stream…'],
  playing: ['Live', ''],
  waiting: ['Waiting for the stream to start. It will play by itself.', 'Waiting for the stream'],
  offline: ['Stream offline. It will play again by itself when the stream is back.', 'Stream offline'],
  error: ['Playback error. Reconnecting…', 'Reconnecting…'],
};

export function create({ onChange }) {
  const status = document.getElementById('status');
  const overlayBox = document.getElementById('overlay');
  const overlayLine = document.getElementById('overlay-text');
  let current = 'loading';

  /** state: a key of MESSAGES; message and overlayMessage replace its words. */
  function set(state, message, overlayMessage) {
    current = state;
    const [said, shown] = MESSAGES[state];
    status.dataset.state = state;
    const text = message || said;
    if (status.textContent !== text) status.textContent = text; // aria-live announces each change
    overlay(overlayMessage !== undefined ? overlayMessage : shown);
    onChange();
  }

  /** Shows `text` over the video; '' hides the overlay. */
  function overlay(text) {
    overlayBox.hidden = !text;
    if (text && overlayLine.textContent !== text) overlayLine.textContent = text;
  }

  function overlayText() {
    return overlayLine.textContent;
  }

  return { set, state: () => current, overlay, overlayText, snapshot: () => frozen({ state: current }) };
}
