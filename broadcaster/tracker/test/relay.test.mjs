// Offers and answers (T8, T8b): a viewer answers every offer it gets, and answering never costs it
// anything; only answers to offers relayed to that very connection, within 50 s, go on.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { SWARM, Viewer, reached, startTracker, until } from './helpers.mjs'

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
