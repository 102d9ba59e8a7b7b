// The tracker as a type: createTracker(options) returns { listen, close }; tracker.mjs builds the options
// from the environment, and the tests (test/*.test.mjs) build their own, in-process.
//
// It only introduces viewers to each other: a viewer announces the swarm of the stream it plays, with
// WebRTC offers, and the tracker relays offers and answers between viewers of that swarm. No video
// passes through it. WebSocket only (no HTTP or UDP tracker), on loopback: the Cloudflare tunnel is
// its only way in (cloudflared.yml.example, tracker.example.com). Anyone on the internet can reach it,
// so (docs/p2p.md#the-tracker-facing-the-public):
//   - every message is checked (messages.mjs) before bittorrent-tracker sees it, re-serialised with
//     only the fields checked; anything a viewer does not send closes that connection (code 1008);
//   - only the swarms of the service's own stream(s) exist (swarms.mjs), learnt from the service;
//   - one connection holds at most one peer per swarm, and only those leave when it closes; a peer id
//     belongs to the client that announced it first (another client's announce of it is refused);
//   - an answer to an offer relayed to that connection costs nothing, even when the offer is gone;
//   - a connection that does not read what it is sent is dropped, one that says nothing is closed, a
//     socket that has not become a WebSocket within seconds is closed;
//   - connections and announces are capped per client (clients.mjs: CF-Connecting-IP behind the tunnel).
// bittorrent-tracker (as PeerTube runs it) keeps the swarms and relays; it gets its messages from
// here, never from the socket.
import EventEmitter from 'node:events'
import http from 'node:http'
import Server from 'bittorrent-tracker/server'
import { WebSocketServer, WebSocket } from 'ws'

import { Bucket, Clients, clientKeys } from './clients.mjs'
import { MAX_OFFERS, Refused, parse } from './messages.mjs'

// What tracker.mjs documents as TRACKER_*; a test passes only what it changes.
export const DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 8000,
  maxConnections: 2000, // WebSocket connections at once
  maxClientConnections: 20, // from one client
  ipv6Prefix: 48, // an IPv6 client is its first this-many bits
  clientAnnounces: 120, // new connections and announces a minute from one client
  socketAnnounces: 20, // announces a minute on one connection
  maxPeers: 1000, // peers remembered per swarm
  maxMessage: 65536, // bytes of one WebSocket message
  maxBuffered: 65536, // bytes waiting to be sent to one connection
  idleMs: 300_000 // a connection that sends nothing this long is closed
})

const OFFER_MS = 50_000 // the client gives up an offer after 50 s: an answer later goes nowhere
const OFFERS_KEPT = 4 * MAX_OFFERS // per connection, for the answers still to come
const CLOSE_GRACE_MS = 2_000 // a closed connection's peer gets this long to acknowledge, then it is cut
const RECEIVED_KEPT = 64 // offers relayed to one connection, remembered for its answers (within OFFER_MS)
// A peer id stays its client's this long after its last use: longer than a page's tracker client takes to
// come back after its connection closed (10 s, then up to 300 s), so nobody takes it meanwhile (T9).
const PEER_ID_MS = 15 * 60_000
const MAX_PEER_IDS = 100_000 // peer ids remembered at most, the least recently used forgotten first
const PENDING_MS = 5_000 // a socket that has not asked for a WebSocket within this is closed...
const PENDING_MAX = 256 // ...and past this many such sockets the oldest is closed at once
const RELAYED_OFFER = '{"action":"announce","offer":' // how the library serialises an offer it relays

/**
 * options: DEFAULTS' fields, and
 *   swarms   which info hashes exist: { has(binaryInfoHash), ready, describe(), start(), stop() }
 *            (swarms.mjs's AllowedSwarms)
 *   log      one line at a time (console.log)
 *   now      the clock, in ms (Date.now; a test's own to move time on)
 *   sweepMs  how often idle connections, old offers and forgotten clients are swept (a few times per
 *            idle period, at most every 5 s)
 * listen() resolves with the address bound ({ address, port }: port 0 takes a free one) or rejects
 * with the server's error; close() ends every connection and resolves once the server is closed;
 * snapshot() says what it holds now (a copy: for tests and for looking, never for changing it).
 */
export function createTracker (options) {
  const o = { ...DEFAULTS, ...options }
  const { swarms } = o
  const log = o.log ?? ((line) => console.log(line))
  const now = o.now ?? Date.now
  const firstAnnounceMs = Math.min(10_000, o.idleMs)
  const sweepMs = o.sweepMs ?? Math.min(5_000, Math.max(250, o.idleMs / 4))
  const clients = new Clients({ maxConnections: o.maxClientConnections, perMinute: o.clientAnnounces })
  const clientOf = clientKeys(o.ipv6Prefix)

  // -- refusals, counted and logged once a minute (an attack must not flood the journal) -------------
  const refusals = new Map() // reason -> count
  const refusedBy = new Map() // client -> count
  function refused (reason, client) {
    refusals.set(reason, (refusals.get(reason) || 0) + 1)
    refusedBy.set(client, (refusedBy.get(client) || 0) + 1)
  }
  function logRefusals () {
    if (!refusals.size) return
    const total = [...refusals.values()].reduce((a, b) => a + b, 0)
    const reasons = [...refusals].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([r, n]) => `${n} ${r}`).join(', ')
    const [top, most] = [...refusedBy].sort((a, b) => b[1] - a[1])[0]
    log(`tracker: refused ${total} in the last minute (${reasons}); most from ${top} (${most}), ` +
      `${refusedBy.size} client${refusedBy.size === 1 ? '' : 's'} in all; ${sockets.size} connections open`)
    refusals.clear()
    refusedBy.clear()
  }

  // -- the library: swarms and relaying, fed only checked messages -----------------------------------
  const server = new Server({
    http: false,
    udp: false,
    ws: false, // our own WebSocket server below hands it connections
    stats: false,
    peersCacheLength: o.maxPeers,
    filter (infoHash, params, cb) { // already checked; kept so nothing else can ever make a swarm
      cb(allowedHex(infoHash) ? null : new Error('unknown swarm'))
    }
  })
  function allowedHex (hex) {
    return swarms.has(Buffer.from(hex, 'hex').toString('latin1'))
  }
  // One swarm per info hash even for two announces in one tick (the library's own would make two).
  server.createSwarm = (infoHash, cb) => {
    process.nextTick(() => {
      if (!server.torrents[infoHash]) server.torrents[infoHash] = new Server.Swarm(infoHash, server)
      cb(null, server.torrents[infoHash])
    })
  }
  server.on('warning', (err) => {
    if (process.env.TRACKER_DEBUG) console.warn(`tracker: warning: ${err.message}`)
  })
  function dropEmptySwarms () {
    for (const [infoHash, swarm] of Object.entries(server.torrents)) {
      if (swarm.peers.length === 0) delete server.torrents[infoHash]
    }
  }

  // What the library holds as a socket: sends go through the limit on what may wait unsent, and the
  // offers it relays to this connection are noted (its answers to them are the only ones it may send for
  // free).
  class Conduit extends EventEmitter {
    constructor (conn) {
      super()
      this.conn = conn
    }

    send (data, cb) {
      const ws = this.conn.ws
      if (ws.readyState !== WebSocket.OPEN) return
      if (ws.bufferedAmount > o.maxBuffered) return drop(this.conn, 'not reading (TRACKER_MAX_BUFFERED)')
      if (data.startsWith(RELAYED_OFFER)) this.conn.relayed(JSON.parse(data), now())
      ws.send(data, cb)
    }
  }

  // -- connections -----------------------------------------------------------------------------------
  const sockets = new Set() // every Connection open
  const owners = new Map() // binary info hash -> Map(binary peer_id -> Connection)
  // binary peer_id -> {client, until}: whose it is (the client that announced it first), until
  // PEER_ID_MS after its last use; the Map's order is the order of last use.
  const peerIds = new Map()

  function claim (peerId, client, until) {
    peerIds.delete(peerId)
    peerIds.set(peerId, { client, until })
    if (peerIds.size > MAX_PEER_IDS) peerIds.delete(peerIds.keys().next().value)
  }

  class Connection {
    constructor (ws, client, at) {
      this.ws = ws
      this.client = client
      this.opened = at
      this.lastMessage = at
      this.announced = false
      this.closed = false
      this.peers = new Map() // binary info hash -> its one binary peer_id on this connection
      this.offers = new Map() // `${info_hash}\n${offer_id}` -> time sent, for the answers to come
      this.received = new Map() // `${info_hash}\n${offer_id}` -> {at, from}: offers relayed to it, to answer
      this.socketBucket = new Bucket(o.socketAnnounces, at)
      this.conduit = new Conduit(this)
    }

    relayed (offer, at) {
      const key = `${offer.info_hash}\n${offer.offer_id}`
      this.received.delete(key) // set again last: the map keeps the order they came in
      this.received.set(key, { at, from: offer.peer_id })
      while (this.received.size > RECEIVED_KEPT) this.received.delete(this.received.keys().next().value)
    }
  }

  function close (conn, code, reason) {
    if (conn.closed) return
    refused(reason, conn.client)
    conn.ws.close(code, reason.slice(0, 120))
    setTimeout(() => conn.ws.terminate(), CLOSE_GRACE_MS).unref()
    forget(conn) // it leaves its swarms now, not when the peer acknowledges
  }

  function drop (conn, reason) {
    if (conn.closed) return
    refused(reason, conn.client)
    conn.ws.terminate()
    forget(conn)
  }

  function forget (conn) {
    if (conn.closed) return
    conn.closed = true
    sockets.delete(conn)
    clients.close(conn.client)
    // The library would send "stopped" for the first peer id this connection used, in every swarm it
    // joined, whosever that id is there (E1): it is told none, and the loop below removes this
    // connection's own peers, each in its swarm.
    conn.conduit.peerId = null
    conn.conduit.emit('close') // the library forgets the connection first, then every peer of it leaves
    const peers = [...conn.peers]
    conn.peers.clear()
    conn.offers.clear()
    conn.received.clear()
    const until = now() + PEER_ID_MS
    for (const [, peerId] of peers) {
      if (peerIds.get(peerId)?.client === conn.client) claim(peerId, conn.client, until)
    }
    // After the library's pending work: an announce handed to it in the same read as the one that
    // closed the connection adds its peer on a later tick (process.nextTick), which runs before this.
    setImmediate(() => {
      for (const [infoHash, peerId] of peers) {
        const swarm = server.torrents[Buffer.from(infoHash, 'latin1').toString('hex')]
        const hexId = Buffer.from(peerId, 'latin1').toString('hex')
        const entry = swarm && Object.hasOwn(swarm.peers.cache, hexId) ? swarm.peers.cache[hexId].value : null
        if (entry && entry.socket === conn.conduit) { // not the same viewer's peer on its new connection
          swarm.announce({ type: 'ws', event: 'stopped', numwant: 0, peer_id: hexId })
        }
        const ours = owners.get(infoHash)
        if (ours && ours.get(peerId) === conn) ours.delete(peerId)
        if (ours && !ours.size) owners.delete(infoHash)
      }
      dropEmptySwarms()
    })
  }

  function onMessage (conn, data, isBinary) {
    if (conn.closed) return
    const at = now()
    conn.lastMessage = at
    if (isBinary) return close(conn, 1003, 'binary message')
    let message
    try {
      message = parse(data.toString('utf8'))
    } catch (err) {
      if (err instanceof Refused) return close(conn, 1008, err.message)
      throw err
    }
    const infoHash = message.info_hash
    if (message.answer) {
      // Only an answer to an offer the tracker relayed to this very connection goes on (offer ids are
      // random and only the peer they were sent to sees them). One to an offer it was sent whose sender
      // has gone, or that expired, is dropped and costs nothing: a page answers every offer it gets, and
      // an attacker's offers that leave at once must not use up its budget (T8). One to an offer this
      // connection was never sent is made up: it costs a token.
      const key = `${infoHash}\n${message.offer_id}`
      const sent = conn.received.get(key)
      if (!sent || sent.from !== message.to_peer_id) {
        if (!conn.socketBucket.take(at)) close(conn, 1008, 'too many answers to no offer (TRACKER_SOCKET_ANNOUNCES)')
        return
      }
      conn.received.delete(key)
      const from = owners.get(infoHash)?.get(message.to_peer_id)
      if (!from || !from.offers.delete(key)) return
    } else {
      if (!conn.socketBucket.take(at)) return close(conn, 1008, 'announces too often (TRACKER_SOCKET_ANNOUNCES)')
      if (!clients.announce(conn.client, at)) return close(conn, 1008, 'announces too often from this client (TRACKER_CLIENT_ANNOUNCES)')
    }
    if (!swarms.has(infoHash)) {
      refused('unknown swarm', conn.client)
      const why = swarms.ready ? 'unknown swarm: this tracker serves its own streams only' : 'tracker not ready: it does not know its swarms yet'
      return conn.conduit.send(JSON.stringify({ action: 'announce', 'failure reason': why, info_hash: infoHash }))
    }
    const mine = conn.peers.get(infoHash)
    if (mine === undefined) {
      // A peer id is its client's (T9): an attacker learns viewers' ids from their offers, and a page
      // keeps its id for life, so one that took a viewer's id would keep it out. Another client's
      // announce of it is refused, that announce only (the connection may hold other ids).
      const owner = peerIds.get(message.peer_id)
      if (owner && owner.client !== conn.client && at < owner.until) {
        const why = 'peer_id is another client\'s'
        refused(why, conn.client)
        const reply = { action: 'announce', 'failure reason': why, info_hash: infoHash }
        return conn.conduit.send(JSON.stringify(reply))
      }
      const holder = owners.get(infoHash)?.get(message.peer_id)
      if (holder && holder !== conn && !holder.closed) takeOver(holder, infoHash, message.peer_id)
      conn.peers.set(infoHash, message.peer_id)
      if (!owners.has(infoHash)) owners.set(infoHash, new Map())
      owners.get(infoHash).set(message.peer_id, conn)
    } else if (mine !== message.peer_id) {
      return close(conn, 1008, 'one peer per swarm on a connection')
    }
    claim(message.peer_id, conn.client, at + PEER_ID_MS)
    if (message.offers) {
      for (const offer of message.offers) conn.offers.set(`${infoHash}\n${offer.offer_id}`, at)
      while (conn.offers.size > OFFERS_KEPT) conn.offers.delete(conn.offers.keys().next().value)
    }
    conn.announced = true
    conn.conduit.emit('message', JSON.stringify(message))
  }

  // The same client's new connection announces a peer id an older one holds in this swarm: the same page
  // back on a new connection while the tracker has not yet seen the old one go. The new one takes it;
  // the library's entry (which relays offers to the old connection) is removed first.
  function takeOver (holder, infoHash, peerId) {
    holder.peers.delete(infoHash)
    const swarm = server.torrents[Buffer.from(infoHash, 'latin1').toString('hex')]
    const hexId = Buffer.from(peerId, 'latin1').toString('hex')
    const entry = swarm && Object.hasOwn(swarm.peers.cache, hexId) ? swarm.peers.cache[hexId].value : null
    if (entry && entry.socket === holder.conduit) {
      swarm.announce({ type: 'ws', event: 'stopped', numwant: 0, peer_id: hexId })
    }
  }

  function onConnection (ws, client) {
    const conn = new Connection(ws, client, now())
    sockets.add(conn)
    server.onWebSocketConnection(conn.conduit)
    ws.on('message', (data, isBinary) => onMessage(conn, data, isBinary))
    ws.on('error', () => drop(conn, 'connection error'))
    ws.on('close', () => forget(conn))
  }

  // Idle connections, old offers and forgotten clients, a few times per idle period.
  function sweep () {
    const at = now()
    for (const conn of sockets) {
      if (at - conn.lastMessage > o.idleMs) close(conn, 1000, 'idle (TRACKER_IDLE_SECONDS)')
      else if (!conn.announced && at - conn.opened > firstAnnounceMs) close(conn, 1000, 'no announce (TRACKER_IDLE_SECONDS)')
      else {
        for (const [key, sentAt] of conn.offers) {
          if (at - sentAt <= OFFER_MS) break // in the order sent
          conn.offers.delete(key)
        }
        for (const [key, { at: relayedAt }] of conn.received) {
          if (at - relayedAt <= OFFER_MS) break
          conn.received.delete(key)
        }
      }
    }
    clients.sweep(at)
    for (const [peerId, { until }] of peerIds) { // in the order of last use: the expired ones come first
      if (until > at) break
      peerIds.delete(peerId)
    }
    dropEmptySwarms()
  }

  // -- the HTTP server the WebSockets ride on --------------------------------------------------------
  const wss = new WebSocketServer({ noServer: true, maxPayload: o.maxMessage, perMessageDeflate: false, clientTracking: false })
  const web = http.createServer((req, res) => {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 Not Found: a WebTorrent tracker (WebSocket)\n')
  })
  web.headersTimeout = 10_000
  web.requestTimeout = 15_000
  // A backstop only: WebSockets are counted below, and sockets that have not become one are few and
  // short-lived (`pending`). Node counts a socket here until it closes, upgraded or not.
  web.maxConnections = o.maxConnections + PENDING_MAX + 64

  // Sockets that have not (yet) asked for a WebSocket. Behind the tunnel they all come from cloudflared
  // on loopback, so they cannot be told apart per client before their headers: each gets PENDING_MS to
  // upgrade, and past PENDING_MAX of them the oldest goes. A page's upgrade comes at once, so sockets
  // that say nothing cannot hold the server (I1: 2064 of them used to fill it until Node's header
  // timeout, up to 45 s).
  const pending = new Set() // in the order they came
  web.on('connection', (socket) => {
    pending.add(socket)
    socket.pendingTimer = setTimeout(() => socket.destroy(), PENDING_MS)
    socket.pendingTimer.unref()
    socket.once('close', () => settled(socket))
    if (pending.size > PENDING_MAX) {
      const oldest = pending.values().next().value
      settled(oldest)
      refused('no WebSocket (too many sockets waiting)', oldest.remoteAddress || 'unknown')
      oldest.destroy()
    }
  })
  function settled (socket) {
    pending.delete(socket)
    clearTimeout(socket.pendingTimer)
  }

  function refuse (socket, status, text) {
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${text}\n`)
    socket.destroy()
  }

  web.on('upgrade', (req, socket, head) => {
    settled(socket)
    socket.on('error', () => {})
    const client = clientOf(req)
    if (sockets.size >= o.maxConnections) {
      refused('TRACKER_MAX_CONNECTIONS', client)
      return refuse(socket, '503 Service Unavailable', 'too many connections (TRACKER_MAX_CONNECTIONS)')
    }
    const why = clients.open(client, now())
    if (why) {
      refused(why, client)
      return refuse(socket, '429 Too Many Requests', `too many connections from one client (${why})`)
    }
    let handed = false // a handshake ws refuses (400) never becomes a connection: it is not counted then
    socket.once('close', () => { if (!handed) clients.close(client) })
    wss.handleUpgrade(req, socket, head, (ws) => {
      handed = true
      onConnection(ws, client)
    })
  })

  let timers = []
  return {
    listen () {
      return new Promise((resolve, reject) => {
        web.once('error', reject)
        web.listen(o.port, o.host, () => {
          web.off('error', reject)
          web.on('error', (err) => log(`tracker: ${err.message}`))
          timers = [setInterval(sweep, sweepMs), setInterval(logRefusals, 60_000)]
          for (const timer of timers) timer.unref()
          const { address, port } = web.address()
          resolve({ address, port })
          swarms.start()
        })
      })
    },

    snapshot () {
      return {
        connections: [...sockets].map((conn) => ({
          client: conn.client,
          peers: [...conn.peers.values()],
          offersSent: conn.offers.size,
          offersReceived: conn.received.size,
          paused: conn.ws.isPaused
        })),
        peerIds: peerIds.size,
        swarms: Object.keys(server.torrents).length
      }
    },

    close () {
      swarms.stop()
      for (const timer of timers) clearInterval(timer)
      for (const conn of sockets) conn.ws.terminate()
      for (const socket of pending) socket.destroy()
      return new Promise((resolve) => {
        if (!web.listening) return resolve()
        web.close(() => resolve())
        web.closeAllConnections()
      })
    }
  }
}
