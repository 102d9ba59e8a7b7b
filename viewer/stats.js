/* The formatting the page shares (the stats panel, the quality menu, the seek bar's clock). */

export function formatBitrate(bps) {
  return bps >= 1e6 ? (bps / 1e6).toFixed(2) + ' Mbit/s' : Math.round(bps / 1e3) + ' kbit/s';
}

export function formatBytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

/** 75 → '1:15', 3725 → '1:02:05'. */
export function formatDuration(seconds) {
  const s = Math.round(seconds);
  const hours = Math.floor(s / 3600);
  const rest = String(Math.floor((s % 3600) / 60)).padStart(hours ? 2 : 1, '0') + ':'
    + String(s % 60).padStart(2, '0');
  return hours ? hours + ':' + rest : rest;
}
