// A peer id is the connection's that announced it first, whatever the address (T9, T9b): nobody else
// may announce it while that connection lives. One that no longer answers (gone on the page's side, not
// yet on the tracker's) is asked with a ping; failing it, the page back on a new connection from its
// network takes the id. A connection gone, its id stays its network's for 15 minutes.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { SWARM, Viewer, reached, startTracker, until } from './helpers.mjs'

async function setUp (t, options = {}) {
  const tracker = await startTracker({ pongMs: 300, ...options })
  const open = []
  t.after(async () => { for (const v of open) v.close(); await tracker.close() })
  const viewer = async (ip, opts) => {
    const v = await Viewer.open(tracker.url, ip, opts)
    open.push(v)
    return v
  }
  return { tracker, viewer }
}

test('T9b: while the viewer is connected its id is refused to everyone, its own address and /48 too', async (t) => {
  const { tracker, viewer } = await setUp(t)
  const victim = await viewer('2001:db8:b:1::10')
  assert.ok((await victim.join()).interval)
  for (const place of ['2001:db8:b:1::10', '2001:db8:b:1::99', '2001:db8:b:2::1', '198.51.100.20']) {
    const attacker = await viewer(place, { peerId: victim.peerId })
    const reply = await attacker.join()
    assert.match(reply['failure reason'] ?? '', /another/, place)
    assert.equal(attacker.closedWith, null) // that announce is refused, the connection stays
    assert.ok(await reached(tracker, victim), place)
    assert.deepEqual(attacker.offers(), [], place)
  }
})

test('T9b: a connected viewer answers the ping and keeps its id, however long it has said nothing', async (t) => {
  const { tracker, viewer } = await setUp(t)
  const victim = await viewer('198.51.100.10')
  assert.ok((await victim.join()).interval)
  tracker.clock.advance(120_000) // nothing said since: only a ping tells it is there
  const attacker = await viewer('198.51.100.10', { peerId: victim.peerId })
  assert.match((await attacker.join())['failure reason'] ?? '', /another/)
  assert.equal(victim.closedWith, null)
  assert.ok(await reached(tracker, victim))
})

test('a connection that answers no ping loses the id to the page back from its network, not to another', async (t) => {
  const { tracker, viewer } = await setUp(t)
  const lingering = await viewer('198.51.100.40', { autoPong: false })
  assert.ok((await lingering.join()).interval)
  tracker.clock.advance(120_000)
  const stranger = await viewer('198.51.100.41', { peerId: lingering.peerId })
  assert.match((await stranger.join())['failure reason'] ?? '', /another/)
  assert.ok(await lingering.closed(), 'the connection that answered no ping is still open')
  const back = await viewer('198.51.100.40', { peerId: lingering.peerId })
  assert.ok((await back.join()).interval)
  assert.ok(await reached(tracker, back))
})

test('T9: a connection gone, its id stays its network\'s for 15 minutes', async (t) => {
  const { tracker, viewer } = await setUp(t)
  const first = await viewer('2001:db8:e:1::1')
  assert.ok((await first.join()).interval)
  first.close()
  await first.closed()
  const neighbour = await viewer('2001:db8:e:2::1', { peerId: first.peerId }) // same /48, another /64
  assert.match((await neighbour.join())['failure reason'] ?? '', /another/)
  const back = await viewer('2001:db8:e:1::2', { peerId: first.peerId }) // its /64
  assert.ok((await back.join()).interval)
  back.close()
  await back.closed()
  tracker.clock.advance(15 * 60_000 + 1)
  const later = await viewer('203.0.113.9', { peerId: first.peerId })
  assert.ok((await later.join()).interval)
})

test('one connection, one peer per swarm; the same id in two swarms', async (t) => {
  const { viewer } = await setUp(t)
  const v = await viewer('192.0.2.5')
  assert.ok((await v.join()).interval)
  assert.ok((await v.join('another-variant-here')).interval)
  v.announce(SWARM, { peerId: 'a-different-peer-id!' })
  assert.match((await v.closed()).reason, /one peer per swarm/)
})

test('T9b: a viewer read slowly (flooded, its pong behind what it sent) is still there, and keeps its id', async (t) => {
  const { tracker, viewer } = await setUp(t, { clock: { now: Date.now }, socketMessages: 60, pongMs: 1_500 })
  const victim = await viewer('198.51.100.60')
  assert.ok((await victim.join()).interval)
  for (let i = 0; i < 100; i++) victim.answer({ info_hash: SWARM, peer_id: 'no-one-of-this-swarm', offer_id: 'no-offer-of-this-one' })
  await until(() => tracker.snapshot().connections.some((c) => c.paused), 'the victim to be read slowly')
  const attacker = await viewer('203.0.113.60', { peerId: victim.peerId })
  assert.match((await attacker.join())['failure reason'] ?? '', /another/)
  assert.equal(victim.closedWith, null)
})
