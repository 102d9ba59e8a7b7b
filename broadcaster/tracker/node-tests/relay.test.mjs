// Offers and answers (T8, T8b): a viewer answers every offer it gets, and answering never costs it
// anything; only answers to offers relayed to that very connection, within 50 s, go on.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { SWARM, Viewer, randomId, reached, startTracker, until } from './helpers.mjs'

async function setUp (t, options) {
  const tracker = await startTracker(options)
  const open = []
  t.after(async () => {
    for (const v of open) v.close()
    await tracker.close()
  })
  const viewer = async (ip, opts) => {
    const v = await Viewer.open(tracker.url, ip, opts)
    open.push(v)
    return v
  }
  return { tracker, viewer }
}

test('two viewers meet: one\'s offer reaches the other, whose answer comes back', async (t) => {
  const { tracker, viewer } = await setUp(t)
  const a = await viewer('192.0.2.1')
  assert.ok((await a.join()).interval)
  assert.ok(await reached(tracker, a))
})

test('T8b: a burst of offers from many connections; the viewer answers every one and stays, and an answer to the oldest still reaches its sender', async (t) => {
  const { tracker, viewer } = await setUp(t)
  const a = await viewer('192.0.2.1')
  const sender = await viewer('192.0.2.2') // stays connected: its offer is the oldest the viewer answers
  assert.ok((await a.join()).interval)
  sender.announce(SWARM, { offers: 1 })
  const first = await a.next((m) => 'offer' in m && m.peer_id === sender.peerId)
  assert.ok(first)
  // Six connections, one after the other, each with 19 announces of 5 offers, each leaving after them:
  // over a hundred offers reach the viewer within seconds (the tracker used to remember 64).
  for (let i = 0; i < 6; i++) {
    const attacker = await viewer(`198.51.100.${i + 1}`)
    for (let j = 0; j < 19; j++) attacker.announce(SWARM, { offers: 5, event: j ? null : 'started' })
    await until(() => attacker.received.filter((m) => 'interval' in m).length === 19, 'the attacker\'s replies')
    attacker.close()
  }
  const offers = a.offers()
  assert.ok(offers.length > 100, `${offers.length} offers`)
  a.answer(first)
  for (const offer of offers.slice(1)) a.answer(offer)
  const back = await sender.next((m) => 'answer' in m && m.offer_id === first.offer_id)
  assert.ok(back, 'the answer to the oldest offer never reached its sender')
  assert.ok((await a.join()).interval) // read after every answer: the tracker has judged them all
  assert.equal(a.closedWith, null)
  assert.ok(await reached(tracker, a))
})

test('an answer to an offer older than 50 s goes nowhere, and costs nothing', async (t) => {
  const { tracker, viewer } = await setUp(t)
  const a = await viewer('192.0.2.1')
  const sender = await viewer('192.0.2.2')
  assert.ok((await a.join()).interval)
  sender.announce(SWARM, { offers: 1 })
  const old = await a.next((m) => 'offer' in m)
  tracker.clock.advance(51_000)
  await until(() => tracker.snapshot().connections.every((c) => c.offersReceived === 0), 'the sweep')
  a.answer(old)
  const start = a.received.length
  sender.announce(SWARM, { offers: 1, event: null })
  const fresh = await a.next((m) => 'offer' in m, { start })
  a.answer(fresh)
  // Answers are relayed in the order sent: the fresh one arrives, the old one never did.
  assert.ok(await sender.next((m) => 'answer' in m && m.offer_id === fresh.offer_id))
  assert.deepEqual(sender.received.filter((m) => 'answer' in m).map((m) => m.offer_id), [fresh.offer_id])
  assert.equal(a.closedWith, null)
})

test('answers to offers a connection was never sent are dropped, not relayed, and never close it; a flood of them is read at a bounded pace', async (t) => {
  const { tracker, viewer } = await setUp(t, { socketMessages: 30 })
  const victim = await viewer('192.0.2.1')
  assert.ok((await victim.join()).interval)
  const liar = await viewer('192.0.2.66')
  assert.ok((await liar.join()).interval)
  for (let i = 0; i < 60; i++) liar.answer({ info_hash: SWARM, peer_id: victim.peerId, offer_id: randomId() })
  const start = liar.received.length
  liar.announce(SWARM, { event: null })
  // Past its 30 messages the tracker stops reading it (it is not closed), until the clock moves on.
  await until(() => tracker.snapshot().connections.some((c) => c.paused), 'the liar to be paused')
  assert.equal(liar.closedWith, null)
  tracker.clock.advance(60_000)
  assert.ok(await liar.next((m) => 'interval' in m, { start }), 'its announce was never read')
  assert.equal(liar.closedWith, null)
  assert.equal(victim.received.filter((m) => 'answer' in m).length, 0)
  assert.ok(await reached(tracker, victim))
})
