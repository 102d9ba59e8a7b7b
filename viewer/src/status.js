/* What the page says about playback: the status line (announced by screen readers) and the overlay
 * on the video. The state is also stats.state.
 *
 * create({ stats, onChange }): onChange() after every state change (the stats panel's state row must
 * not lag the overlay). Returns { set, overlay, overlayText }. */

const MESSAGES = { // [the status line, the overlay]
  loading: ['Loading the stream…', 'Loading the stream…'],
  playing: ['Live', ''],
  waiting: ['Waiting for the stream to start. It will play by itself.', 'Waiting for the stream'],
  offline: ['Stream offline. It will play again by itself when the stream is back.', 'Stream offline'],
  error: ['Playback error. Reconnecting…', 'Reconnecting…'],
};

export function create({ stats, onChange }) {
  const status = document.getElementById('status');
  const overlayBox = document.getElementById('overlay');
  const overlayLine = document.getElementById('overlay-text');

  /** state: a key of MESSAGES; message and overlayMessage replace its words. */
  function set(state, message, overlayMessage) {
    stats.state = state;
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

  return { set, overlay, overlayText };
}
