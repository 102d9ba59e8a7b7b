/* A module's state as others may read it: a copy, frozen all the way down, so no reader can change the
 * module's own (issue 49: each module keeps its state and hands out snapshots; stats.js composes them). */

export function snapshot(state) {
  return deepFreeze(structuredClone(state));
}

function deepFreeze(value) {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
