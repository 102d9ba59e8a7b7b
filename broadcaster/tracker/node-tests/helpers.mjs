// The tracker in this process (createTracker) and scripted WebTorrent clients for its tests: a viewer
// names its address in CF-Connecting-IP from loopback, as cloudflared does. No fixed sleeps: each wait
// is on a condition, with a timeout.
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'

import { createTracker } from '../server.mjs'

export const SWARM = 'swarm-of-the-stream!' // 20 characters, as the protocol carries info hashes
export const OTHER_SWARM = 'another-variant-here'
const WAIT_MS = 5_000

/** A clock the test moves: now() for the tracker, advance(ms) for the test. */
export function clock (start = 1_000_000) {
  let t = start
  return { now: () => t, advance: (ms) => { t += ms } }
}

/** A tracker on a free loopback port serving SWARM and OTHER_SWARM; close it with `await t.close()`. */
export async function startTracker (options = {}) {
  const lines = []
  const time = options.clock ?? clock()
  const allowed = new Set([SWARM, OTHER_SWARM])
  const swarms = { has: (h) => allowed.has(h), ready: true, describe: () => 'the test swarms', start () {}, stop () {} }
  const tracker = createTracker({ port: 0, swarms, log: (line) => lines.push(line), now: time.now, sweepMs: 20, ...options })
  const { port } = await tracker.listen()
  return Object.assign(tracker, { url: `ws://127.0.0.1:${port}`, lines, clock: time })
}

export function randomId () {
  return randomBytes(15).toString('base64') // 20 ASCII characters
}

export async function until (condition, what, ms = WAIT_MS) {
  const end = Date.now() + ms
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** One page's WebSocket to the tracker. */
export class Viewer {
  static async open (url, ip, { peerId = randomId(), autoPong = true } = {}) {
    const ws = new WebSocket(url, { headers: { 'CF-Connecting-IP': ip }, autoPong })
    const viewer = new Viewer(ws, ip, peerId)
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('unexpected-response', (req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })))
      ws.once('error', reject)
    })
    return viewer
  }

  constructor (ws, ip, peerId) {
    this.ws = ws
    this.ip = ip
    this.peerId = peerId
    this.received = []
    this.closedWith = null
    ws.on('message', (data) => this.received.push(JSON.parse(data.toString())))
    ws.on('close', (code, reason) => { this.closedWith = { code, reason: reason.toString() } })
    ws.on('error', () => {})
  }

  send (message) {
    this.ws.send(JSON.stringify(message))
  }

  announce (infoHash = SWARM, { offers = 0, event = 'started', peerId = this.peerId } = {}) {
    const message = { action: 'announce', info_hash: infoHash, peer_id: peerId, numwant: offers, uploaded: 0, downloaded: 0 }
    if (event) message.event = event
    message.offers = Array.from({ length: offers }, () => ({ offer: { type: 'offer', sdp: 'v=0\r\noffer' }, offer_id: randomId() }))
    this.send(message)
    return message
  }

  answer (offer, { infoHash = offer.info_hash, to = offer.peer_id, offerId = offer.offer_id } = {}) {
    this.send({ action: 'announce', info_hash: infoHash, peer_id: this.peerId, to_peer_id: to, offer_id: offerId,
      answer: { type: 'answer', sdp: 'v=0\r\nanswer' } })
  }

  /** The first message from `start` on that matches, or null once closed or after the wait. */
  async next (match, { start = 0, ms = WAIT_MS } = {}) {
    const end = Date.now() + ms
    for (;;) {
      const found = this.received.slice(start).find(match)
      if (found) return found
      if (this.closedWith || Date.now() > end) return null
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  /** Announces and waits for the tracker's reply to it: { interval } when taken, { 'failure reason' } not. */
  async join (infoHash = SWARM, options = {}) {
    const start = this.received.length
    this.announce(infoHash, options)
    return this.next((m) => m.info_hash === infoHash && ('interval' in m || 'failure reason' in m), { start })
  }

  offers (from) {
    return this.received.filter((m) => 'offer' in m && (from === undefined || m.peer_id === from))
  }

  async closed (ms = WAIT_MS) {
    await until(() => this.closedWith, 'the connection to close', ms).catch(() => {})
    return this.closedWith
  }

  close () {
    this.ws.terminate()
  }
}

/** A new viewer's offers reach `viewer`, whose answer comes back to the new one: they meet. */
export async function reached (tracker, viewer, ip = '192.0.2.200', infoHash = SWARM) {
  const newcomer = await Viewer.open(tracker.url, ip)
  try {
    const start = viewer.received.length
    newcomer.announce(infoHash, { offers: 5 })
    const got = await viewer.next((m) => 'offer' in m && m.peer_id === newcomer.peerId, { start })
    if (!got) return false
    viewer.answer(got)
    const back = await newcomer.next((m) => 'answer' in m && m.peer_id === viewer.peerId)
    return Boolean(back && back.offer_id === got.offer_id)
  } finally {
    newcomer.close()
  }
}
