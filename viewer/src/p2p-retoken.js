/* A private stream's tracker connections keep up with the page's token (access.js).
 *
 * The tracker checks the token on a connection's URL at each announce, and closes the connection once it
 * has ended; P2P Media Loader opens a tracker connection with the URL it was made with, and opens it
 * again with that same URL, older token and all, after it closes: refused from then on, the page would
 * share with no one for the rest of its visit. So whenever the page holds a newer token than a tracker
 * connection's URL carries (it renewed it), that connection is closed and opened again at once with the
 * newer one, and a connection waiting to reopen reopens with it.
 *
 * P2P Media Loader offers no way to change a tracker's URL: the connections are reached through the
 * engine's own fields (core, the stream loaders, their P2P loaders' tracker client, bittorrent-tracker's
 * Client and its WebSocketTracker objects: announceUrl, socket, destroy(), _openSocket()), as p2p.js
 * reaches its peers. If they are not there, nothing is changed (P2P then stops once the first token ends;
 * the video plays on from the bucket).
 */

const PARAM = 'access';

/** Every WebSocketTracker of the engine's stream loaders. */
export function trackersOf(engine) {
  const core = engine && engine.core;
  const found = [];
  for (const streamLoader of [core && core.mainStreamLoader, core && core.secondaryStreamLoader]) {
    const loaders = streamLoader && streamLoader.p2pLoaders && streamLoader.p2pLoaders.loaders;
    if (!loaders || typeof loaders.values !== 'function') continue;
    for (const item of loaders.values()) {
      const wrapper = item && item.loader && item.loader.trackerClient;
      const client = wrapper && wrapper.client;
      if (client && Array.isArray(client._trackers)) found.push(...client._trackers);
    }
  }
  return found;
}

/** Brings the engine's tracker connections to the token `access` holds; returns how many it moved. */
export function retoken(engine, access) {
  const token = access.token();
  if (!token) return 0;
  let moved = 0;
  for (const tracker of trackersOf(engine)) {
    if (typeof tracker.announceUrl !== 'string' || typeof tracker._openSocket !== 'function') continue;
    let carried;
    try {
      carried = new URL(tracker.announceUrl).searchParams.get(PARAM);
    } catch (err) {
      continue;
    }
    if (carried === null || carried === token) continue; // a tracker the page gave no token, or current
    const fresh = access.withToken(tracker.announceUrl);
    if (tracker.socket && !tracker.destroyed) {
      // Its socket is pooled under the URL it was opened with: closed under that one, opened under the new.
      tracker.destroy();
      tracker.announceUrl = fresh;
      tracker.reconnecting = true; // announce again once connected, as after any reconnection
      tracker._openSocket();
    } else {
      tracker.announceUrl = fresh; // closed, its reconnection pending: it opens with this one
    }
    moved += 1;
  }
  return moved;
}
