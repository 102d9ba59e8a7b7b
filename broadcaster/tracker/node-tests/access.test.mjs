// A private stream's tracker: a page whose WebSocket URL carries no valid viewer token (access=) is
// closed with the reason before it can announce, so no stranger joins or serves the swarm; one with a
// token joins and meets the others, and is closed at its next announce once its token has expired.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { BAD_TOKEN, EXPIRED, NO_TOKEN, ViewerTokens, accessOf } from '../access.mjs'
import { SWARM, Viewer, reached, startTracker } from './helpers.mjs'

// The service's own tokens (broadcaster/access/tokens.py) under PRIVATE_SECRET='k' * 40: the same form.
const KEY = 'fb3fbfcb5a12bf239e7a113a796e624ac469a072540a6f26021814713079f980'
const SERVICE_TOKEN = 'v1.4102444800.-.gnzdsFJtHDIt90YDxAtNinshudCbdWL2vgXKfO5SRwI'
const INVITE_TOKEN = 'v1.4102444800.alice.MG01s__FgGA7QPHdgcIr-RDKE-A8MsJ9sKtFHDx09zw'

test("the service's tokens are read as the service reads them", () => {
  const tokens = new ViewerTokens(KEY)
  const now = 4102444800_000 - 1000
  assert.equal(tokens.refusal(SERVICE_TOKEN, now), null)
  assert.equal(tokens.refusal(INVITE_TOKEN, now), null)
  assert.equal(tokens.refusal(SERVICE_TOKEN, 4102444800_000), EXPIRED)
  assert.equal(tokens.refusal(SERVICE_TOKEN.replace('.-.', '.bob.'), now), BAD_TOKEN)
  assert.equal(tokens.refusal(SERVICE_TOKEN.slice(0, -1) + 'A', now), BAD_TOKEN)
  assert.equal(tokens.refusal(new ViewerTokens('0'.repeat(64)).mint(now, 60), now), BAD_TOKEN)
  assert.equal(tokens.refusal(null, now), NO_TOKEN)
  assert.equal(tokens.refusal(tokens.mint(now, 60), now), null)
  assert.equal(accessOf('/?access=abc'), 'abc')
  assert.equal(accessOf('/'), null)
  assert.throws(() => new ViewerTokens('short'))
})

test('no stranger joins the swarm: a page without a valid token is closed with the reason', async (t) => {
  const access = new ViewerTokens(KEY)
  // Idle far longer than the token's life: the sweep (every 20 ms, on the test's clock) must not close
  // the viewer as idle once the clock jumps past its token's end, before its announce is read.
  const tracker = await startTracker({ access, idleMs: 3600_000 })
  const open = []
  t.after(async () => { for (const v of open) v.close(); await tracker.close() })
  const good = () => `${tracker.url}/?access=${access.mint(tracker.clock.now(), 600)}`
  for (const [url, reason] of [[tracker.url, NO_TOKEN], [`${tracker.url}/?access=v1.9.-.x`, BAD_TOKEN]]) {
    const stranger = await Viewer.open(url, '198.51.100.9')
    open.push(stranger)
    stranger.announce(SWARM, { offers: 1 })
    const closed = await stranger.closed()
    assert.equal(closed.code, 1008)
    assert.equal(closed.reason, reason)
  }
  const viewer = await Viewer.open(good(), '198.51.100.1')
  open.push(viewer)
  assert.ok((await viewer.join()).interval)
  // A newcomer with its own token meets the viewer (reached opens it at the URL given).
  assert.ok(await reached({ ...tracker, url: good() }, viewer))
  // Its token expires: its next announce closes it.
  tracker.clock.advance(601_000)
  viewer.announce(SWARM, { event: null })
  assert.equal((await viewer.closed()).reason, EXPIRED)
})
