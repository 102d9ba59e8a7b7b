/* Which pathway this page plays while one fails (content steering, PATHWAYS; docs/steering.md).
 *
 * When a segment fetch from a bucket's pathway (the first bucket, or a second: BACKUP_*) fails, the page
 * moves that pathway behind the others at once rather than after hls.js's retries, and keeps it there
 * for LEAVE_MS after its last failure, whatever the steering manifests it reloads meanwhile say (the
 * service hears of the failure with the next beat and steers everyone by then). The order of the rest
 * is the manifest's: with PATHWAYS=bucket,backup,vm a failing bucket puts the second bucket first, as the
 * service's policy will; with bucket,vm the VM. The VM's pathway is never moved: it is the last resort,
 * and its 503 (a bound reached) says to ask again.
 */

export const LEAVE_MS = 10000;
export const VM = 'vm';

/** `order` with each pathway that failed within LEAVE_MS of `now` (failedAt: pathway -> ms) behind the
 * others, each group in its own order; `order` itself when nothing moves. */
export function demoted(order, failedAt, now) {
  const failing = (p) => p !== VM && now - (failedAt.get(p) ?? -Infinity) < LEAVE_MS;
  const next = [...order.filter((p) => !failing(p)), ...order.filter(failing)];
  return next.every((p, i) => p === order[i]) ? order : next;
}
