// Who a connection counts as (T10, I1): an IPv6 site (/48) shares one cap of connections, each /64 in it
// (one network) has its own budget of announces; an IPv4 address is both.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { addressKey, clientKeys } from '../clients.mjs'
import { SWARM, Viewer, reached, startTracker } from './helpers.mjs'

const fromLoopback = (ip) => ({ socket: { remoteAddress: '127.0.0.1' }, headers: { 'cf-connecting-ip': ip } })

test('addresses as keys: IPv4 as it is, IPv6 by its prefix', () => {
  assert.equal(addressKey('198.51.100.7'), '198.51.100.7')
  assert.equal(addressKey('::ffff:198.51.100.7'), '198.51.100.7')
  assert.equal(addressKey('2001:db8:7:1::1', 48), '2001:0db8:0007::/48')
  assert.equal(addressKey('2001:db8:7:1::1', 64), '2001:0db8:0007:0001::/64')
})

test('a client is its site (the /48) and its network (the /64); the header only from loopback', () => {
  const clientOf = clientKeys(48)
  assert.deepEqual(clientOf(fromLoopback('2001:db8:7:1::1')), { site: '2001:0db8:0007::/48', network: '2001:0db8:0007:0001::/64' })
  assert.deepEqual(clientOf(fromLoopback('198.51.100.7')), { site: '198.51.100.7', network: '198.51.100.7' })
  assert.deepEqual(clientOf({ socket: { remoteAddress: '203.0.113.5' }, headers: { 'cf-connecting-ip': '198.51.100.7' } }),
    { site: '203.0.113.5', network: '203.0.113.5' })
  // A site prefix longer than 64 bits makes networks as long.
  assert.deepEqual(clientKeys(96)(fromLoopback('2001:db8:7:1::1')).network, '2001:0db8:0007:0001:0000:0000::/96')
})

test('T10: a neighbour in another /64 of the same /48 spends only its own announces', async (t) => {
  const tracker = await startTracker({ clientAnnounces: 10, maxClientConnections: 4 })
  const open = []
  t.after(async () => { for (const v of open) v.close(); await tracker.close() })
  const viewers = []
  for (const net of [1, 2]) {
    const v = await Viewer.open(tracker.url, `2001:db8:a:${net}::1`)
    open.push(v)
    assert.ok((await v.join()).interval)
    viewers.push(v)
  }
  const neighbour = await Viewer.open(tracker.url, '2001:db8:a:ff::1')
  open.push(neighbour)
  for (let i = 0; i < 12 && !neighbour.closedWith; i++) await neighbour.join(SWARM, { event: i ? null : 'started' })
  assert.match((await neighbour.closed()).reason, /from this client/)
  for (const v of viewers) {
    for (let i = 0; i < 5; i++) assert.ok((await v.join(SWARM, { event: null })).interval)
    assert.equal(v.closedWith, null)
  }
  assert.ok(await reached(tracker, viewers[0]))
})

test('I1: the /48 shares one cap of connections, whatever its /64s', async (t) => {
  const tracker = await startTracker({ maxClientConnections: 3 })
  const open = []
  t.after(async () => { for (const v of open) v.close(); await tracker.close() })
  for (const net of [1, 2, 3]) open.push(await Viewer.open(tracker.url, `2001:db8:c:${net}::1`))
  await assert.rejects(Viewer.open(tracker.url, '2001:db8:c:4::1'), (err) => err.status === 429)
  open.push(await Viewer.open(tracker.url, '2001:db8:d:1::1')) // another /48: another site
})
