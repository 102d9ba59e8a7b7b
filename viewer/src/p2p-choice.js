/* The viewer's say over P2P (with config.json "p2p" only): one line, shown before any peer connection,
 * saying that the page shares the video with other viewers and that they can see this viewer's address,
 * with a box the viewer ticks or unticks at any time. The choice is kept in this browser (localStorage)
 * and starts, until the viewer makes one, as the operator set it (P2P_START_ON: config.p2p.start).
 *
 * P2P runs only when the viewer said yes AND enough viewers who said yes are watching (P2P_MIN_VIEWERS:
 * config.p2p.minViewers; the service's heartbeat answer counts them, `sharing`): with N viewers at most
 * (N-1)/N of the bytes can come from peers, so a small audience would expose every address for little.
 * `onChange(on)` is called whenever that verdict changes; the page starts with it false.
 */
const KEY = 'hb-p2p'; // 'yes' | 'no': this browser's choice, on every page of this site (the embed too)

export function create({ config, onChange }) {
  const minViewers = Number.isInteger(config.minViewers) && config.minViewers > 0 ? config.minViewers : 1;
  let chosen = stored();
  let yes = chosen === null ? config.start === true : chosen === 'yes';
  let sharing = 0; // viewers who said yes, the service's last count
  let on = false;

  const line = document.getElementById('p2p-choice');
  const box = document.getElementById('p2p-choice-box');
  if (line && box) {
    box.checked = yes;
    box.addEventListener('change', () => {
      yes = box.checked;
      chosen = yes ? 'yes' : 'no';
      try {
        localStorage.setItem(KEY, chosen);
      } catch (err) {
        // storage refused (private mode, an embed's partitioned storage): the choice lasts this visit
      }
      decide();
    });
    line.hidden = false;
  }

  function decide() {
    const now = yes && sharing >= minViewers;
    if (now === on) return;
    on = now;
    onChange(on);
  }

  return {
    /** Whether the viewer said yes (the heartbeat counts this page as willing to share). */
    willing: () => yes,
    /** The service's count of willing viewers, this page included when it is one. */
    counted(n) {
      sharing = n;
      decide();
    },
    snapshot: () => Object.freeze({ chosen, yes, sharing, minViewers, on }),
  };
}

function stored() {
  try {
    const value = localStorage.getItem(KEY);
    return value === 'yes' || value === 'no' ? value : null;
  } catch (err) {
    return null;
  }
}
