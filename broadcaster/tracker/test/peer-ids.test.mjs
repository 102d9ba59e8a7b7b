// Peers and their ids: one connection is one peer per swarm (T2).
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { SWARM, Viewer, startTracker } from './helpers.mjs'

async function setUp (t, options = {}) {
  const tracker = await startTracker({ ...options })
  const open = []
  t.after(async () => { for (const v of open) v.close(); await tracker.close() })
  const viewer = async (ip, opts) => {
    const v = await Viewer.open(tracker.url, ip, opts)
    open.push(v)
    return v
  }
  return { tracker, viewer }
}

test('one connection, one peer per swarm; the same id in two swarms', async (t) => {
  const { viewer } = await setUp(t)
  const v = await viewer('192.0.2.5')
  assert.ok((await v.join()).interval)
  assert.ok((await v.join('another-variant-here')).interval)
  v.announce(SWARM, { peerId: 'a-different-peer-id!' })
  assert.match((await v.closed()).reason, /one peer per swarm/)
})
