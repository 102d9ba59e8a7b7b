// Who a connection counts as (I1): an IPv6 client by its /48, an IPv4 address as it is.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { addressKey } from '../clients.mjs'
import { Viewer, startTracker } from './helpers.mjs'

test('addresses as keys: IPv4 as it is, IPv6 by its prefix', () => {
  assert.equal(addressKey('198.51.100.7'), '198.51.100.7')
  assert.equal(addressKey('::ffff:198.51.100.7'), '198.51.100.7')
  assert.equal(addressKey('2001:db8:7:1::1', 48), '2001:0db8:0007::/48')
  assert.equal(addressKey('2001:db8:7:1::1', 64), '2001:0db8:0007:0001::/64')
})

test('I1: the /48 shares one cap of connections, whatever its /64s', async (t) => {
  const tracker = await startTracker({ maxClientConnections: 3 })
  const open = []
  t.after(async () => { for (const v of open) v.close(); await tracker.close() })
  for (const net of [1, 2, 3]) open.push(await Viewer.open(tracker.url, `2001:db8:c:${net}::1`))
  await assert.rejects(Viewer.open(tracker.url, '2001:db8:c:4::1'), (err) => err.status === 429)
  open.push(await Viewer.open(tracker.url, '2001:db8:d:1::1')) // another /48: another site
})
