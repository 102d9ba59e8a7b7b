// The tracker as a type: createTracker(options) returns { listen, close }; tracker.mjs builds the options
// from the environment, and the tests (node-tests/*.test.mjs) build their own, in-process.
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
//     is the connection's that announced it first, whatever the address, then its network's a while
//     (peer-ids.mjs);
//   - answering never costs a viewer anything: an answer to an offer relayed to that connection in the
//     last 50 s goes on, any other is dropped; past `socketMessages` messages a minute the tracker
//     reads a connection more slowly (it pauses it), never closes it for that;
//   - a connection that does not read what it is sent is dropped, one that says nothing is closed, a
//     socket that has not become a WebSocket within seconds is closed;
//   - connections are capped per site (an IPv4 address, an IPv6 /48), announces per network (an IPv4
//     address, an IPv6 /64; clients.mjs: CF-Connecting-IP behind the tunnel).
// bittorrent-tracker (as PeerTube runs it) keeps the swarms and relays; it gets its messages from
// here, never from the socket.
import EventEmitter from 'node:events'
import http from 'node:http'
import Server from 'bittorrent-tracker/server'
import { WebSocketServer, WebSocket } from 'ws'

import { accessOf } from './access.mjs'
import { Bucket, Clients, clientKeys } from './clients.mjs'
import { Refused, parse } from './messages.mjs'
import { PeerIds } from './peer-ids.mjs'

// What tracker.mjs documents as TRACKER_*; a test passes only what it changes.
export const DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 8000,
  maxConnections: 2000, // WebSocket connections at once
  maxClientConnections: 20, // from one client
  ipv6Prefix: 48, // an IPv6 client is its first this-many bits
  clientAnnounces: 120, // new connections and announces a minute from one client
  socketAnnounces: 20, // announces a minute on one connection
  // Messages a minute read from one connection at most (answers and pings included; not a setting): a
  // page sends an announce a swarm every 2 minutes and answers the offers it gets, a few a minute.
  // Past it the connection is read more slowly, so that answers, which cost nothing, cannot be sent
  // without bound; a burst of offers from one client (at most TRACKER_CLIENT_ANNOUNCES) is answered
  // without it.
  socketMessages: 120,
  pongMs: 5_000, // a connection holding a peer id another announces is pinged; no pong within this, it is
  //                dropped and the newcomer judged again (peer-ids.mjs)
  maxPeers: 1000, // peers remembered per swarm
  maxMessage: 65536, // bytes of one WebSocket message
  maxBuffered: 65536, // bytes waiting to be sent to one connection
  idleMs: 300_000 // a connection that sends nothing this long is closed
})

// The client gives up an offer after 50 s: an answer later goes nowhere. Offers are remembered this long
// and no fewer (T8b: by count, 64 a connection, a burst of 110 pushed out the ones its answers were
// for). What that holds is bounded by the announces that send them: at most 5 offers an announce,
// TRACKER_SOCKET_ANNOUNCES a connection (100 a minute each way at the unit's settings, ~100 B each).
const OFFER_MS = 50_000
const CLOSE_GRACE_MS = 2_000 // a closed connection's peer gets this long to acknowledge, then it is cut
// A peer id stays its network's this long after its connection went: longer than a page's tracker client
// takes to come back (10 s, then up to 300 s), so nobody takes it meanwhile (T9).
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
 *   access   a private stream's viewer tokens (access.mjs's ViewerTokens), or none: a connection whose
 *            URL carries no valid `access=` token is closed (1008, the reason) before it announces, and
 *            one whose token has expired at its next announce
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
  const refusedBy = new Map() // client's site -> count
  function refused (reason, client) {
    const who = typeof client === 'string' ? client : client.site
    refusals.set(reason, (refusals.get(reason) || 0) + 1)
    refusedBy.set(who, (refusedBy.get(who) || 0) + 1)
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
  const peerIds = new PeerIds({ keepMs: PEER_ID_MS, max: MAX_PEER_IDS })

  class Connection {
    constructor (ws, client, at, token) {
      this.ws = ws
      this.token = token // its viewer token (`access=` on its URL), for a private stream
      this.client = client // {site, network}
      this.opened = at
      this.lastMessage = at
      this.announced = false
      this.closed = false
      this.peers = new Map() // binary info hash -> its one binary peer_id on this connection
      this.offers = new Map() // `${info_hash}\n${offer_id}` -> time sent, for the answers to come
      this.received = new Map() // `${info_hash}\n${offer_id}` -> {at, from}: offers relayed to it, to answer
      this.socketBucket = new Bucket(o.socketAnnounces, at)
      this.reads = new Bucket(o.socketMessages, at)
      this.holds = new Set() // why its reading is paused: 'reads', 'waiting'
      this.waiting = null // while an announce of it waits on a peer id's holder: what it sent since, in order
      this.pinged = null // a ping in flight: Promise<heard back>
      this.heard = null // while it is in flight: called on its pong or any message
      this.conduit = new Conduit(this)
    }

    relayed (offer, at) {
      const key = `${offer.info_hash}\n${offer.offer_id}`
      this.received.delete(key) // set again last: the map keeps the order they came in
      this.received.set(key, { at, from: offer.peer_id })
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
    conn.waiting = null
    peerIds.release(conn, peers.map(([, peerId]) => peerId), now())
    // After the library's pending work: an announce handed to it in the same read as the one that
    // closed the connection adds its peer on a later tick (process.nextTick), which runs before this.
    setImmediate(() => {
      for (const [infoHash, peerId] of peers) {
        unlist(conn, infoHash, peerId)
        const ours = owners.get(infoHash)
        if (ours && ours.get(peerId) === conn) ours.delete(peerId)
        if (ours && !ours.size) owners.delete(infoHash)
      }
      dropEmptySwarms()
    })
  }

  // The library's entry for `peerId` in that swarm goes, if it is still `conn`'s (not the same viewer's
  // peer on a new connection).
  function unlist (conn, infoHash, peerId) {
    const swarm = server.torrents[Buffer.from(infoHash, 'latin1').toString('hex')]
    const hexId = Buffer.from(peerId, 'latin1').toString('hex')
    const entry = swarm && Object.hasOwn(swarm.peers.cache, hexId) ? swarm.peers.cache[hexId].value : null
    if (entry && entry.socket === conn.conduit) swarm.announce({ type: 'ws', event: 'stopped', numwant: 0, peer_id: hexId })
  }

  // Reading a connection pauses while any reason holds, and goes on when none does.
  function hold (conn, why) {
    conn.holds.add(why)
    conn.ws.pause()
  }
  function release (conn, why) {
    conn.holds.delete(why)
    if (!conn.holds.size && !conn.closed) conn.ws.resume()
  }

  // Every message and ping takes one of the connection's reads; with none left, its reading pauses until
  // there is one (what was already read is still handled: at most one read's worth).
  function counted (conn, at) {
    if (conn.reads.take(at) || conn.holds.has('reads')) return
    hold(conn, 'reads')
    const later = () => {
      if (conn.closed) return
      if (conn.reads.ready(now())) return release(conn, 'reads')
      setTimeout(later, Math.max(10, conn.reads.wait(now()))).unref()
    }
    setTimeout(later, Math.max(10, conn.reads.wait(at))).unref()
  }

  function onMessage (conn, data, isBinary) {
    if (conn.closed) return
    const at = now()
    conn.lastMessage = at
    conn.heard?.()
    counted(conn, at)
    if (conn.waiting) return conn.waiting.push([data, isBinary])
    handle(conn, data, isBinary, at)
  }

  function handle (conn, data, isBinary, at) {
    if (isBinary) return close(conn, 1003, 'binary message')
    let message
    try {
      message = parse(data.toString('utf8'))
    } catch (err) {
      if (err instanceof Refused) return close(conn, 1008, err.message)
      throw err
    }
    if (message.answer) return answer(conn, message)
    const denied = o.access?.refusal(conn.token, at)
    if (denied) return close(conn, 1008, denied) // no stranger joins the swarm, nor serves it
    if (!conn.socketBucket.take(at)) return close(conn, 1008, 'announces too often (TRACKER_SOCKET_ANNOUNCES)')
    if (!clients.announce(conn.client, at)) return close(conn, 1008, 'announces too often from this client (TRACKER_CLIENT_ANNOUNCES)')
    announce(conn, message, at)
  }

  // Only an answer to an offer the tracker relayed to this very connection in the last OFFER_MS, from
  // that connection's own peer in the swarm, goes on (offer ids are random and only the peer they were
  // sent to sees them), and only while the offer's sender is still there. Any other answer is dropped
  // and costs nothing: a page answers every offer it gets, and an attacker's offers that leave at once
  // (T8) or come in bursts (T8b) must not cost the viewers their budget; answers are merely read at a
  // bounded pace (counted()).
  function answer (conn, message) {
    const infoHash = message.info_hash
    const key = `${infoHash}\n${message.offer_id}`
    const sent = conn.received.get(key)
    if (!sent || sent.from !== message.to_peer_id || conn.peers.get(infoHash) !== message.peer_id) {
      return refused('answer to no offer relayed to it (dropped)', conn.client)
    }
    conn.received.delete(key)
    const from = owners.get(infoHash)?.get(message.to_peer_id)
    if (!from || from.closed || !from.offers.delete(key) || !swarms.has(infoHash)) return
    conn.conduit.emit('message', JSON.stringify(message))
  }

  function announce (conn, message, at) {
    const infoHash = message.info_hash
    if (!swarms.has(infoHash)) {
      refused('unknown swarm', conn.client)
      const why = swarms.ready ? 'unknown swarm: this tracker serves its own streams only' : 'tracker not ready: it does not know its swarms yet'
      return conn.conduit.send(JSON.stringify({ action: 'announce', 'failure reason': why, info_hash: infoHash }))
    }
    const peerId = message.peer_id
    const mine = conn.peers.get(infoHash)
    if (mine !== undefined && mine !== peerId) return close(conn, 1008, 'one peer per swarm on a connection')
    if (mine === undefined) {
      const held = owners.get(infoHash)?.get(peerId)
      const holder = peerIds.holder(peerId) ?? (held && !held.closed ? held : null)
      if (holder && holder !== conn) return wait(conn, holder, message)
      if (peerIds.kept(peerId, conn.client.network, at)) return refuseAnnounce(conn, infoHash, 'peer_id is another client\'s')
      conn.peers.set(infoHash, peerId)
      if (!owners.has(infoHash)) owners.set(infoHash, new Map())
      owners.get(infoHash).set(peerId, conn)
    }
    peerIds.bind(peerId, conn)
    if (message.offers) {
      for (const offer of message.offers) conn.offers.set(`${infoHash}\n${offer.offer_id}`, at)
    }
    conn.announced = true
    conn.conduit.emit('message', JSON.stringify(message))
  }

  // That announce only is refused; the connection stays (it may hold other ids).
  function refuseAnnounce (conn, infoHash, why) {
    refused(why, conn.client)
    conn.conduit.send(JSON.stringify({ action: 'announce', 'failure reason': why, info_hash: infoHash }))
  }

  // Another connection holds the peer id `conn` announces. If it is there (within pongMs it answers a
  // ping or sends anything: a connection read slowly has its pong behind what it sent before), the id
  // is its own: refused. If not, it is the same page's old connection, gone on the page's
  // side but not yet on ours: it is dropped, and the announce judged again (the id is then its
  // network's: the page back from there takes it, nobody else does). Meanwhile nothing more is read from
  // `conn`, and what it already sent waits, in order.
  function wait (conn, holder, message) {
    conn.waiting = []
    hold(conn, 'waiting')
    alive(holder).then((there) => {
      if (conn.closed) return
      const queued = conn.waiting
      conn.waiting = null
      release(conn, 'waiting')
      if (there && !holder.closed) {
        refuseAnnounce(conn, message.info_hash, 'peer_id is another connection\'s')
      } else {
        const ids = [...holder.peers].filter(([, peerId]) => peerId === message.peer_id)
        drop(holder, 'no pong (another connection announced its peer id)')
        for (const [infoHash, peerId] of ids) unlist(holder, infoHash, peerId) // now: before the new one's
        announce(conn, message, now())
      }
      for (const [data, isBinary] of queued) {
        if (conn.closed) return
        if (conn.waiting) conn.waiting.push([data, isBinary])
        else handle(conn, data, isBinary, now())
      }
    })
  }

  function alive (conn) {
    if (conn.closed) return Promise.resolve(false)
    if (!conn.pinged) {
      conn.pinged = new Promise((resolve) => {
        const done = (there) => {
          clearTimeout(timer)
          conn.ws.off('pong', conn.heard)
          conn.heard = conn.pinged = null
          resolve(there && !conn.closed)
        }
        conn.heard = () => done(true)
        const timer = setTimeout(() => done(false), o.pongMs)
        conn.ws.on('pong', conn.heard)
        try {
          conn.ws.ping()
        } catch {
          done(false)
        }
      })
    }
    return conn.pinged
  }

  function onConnection (ws, client, token) {
    const conn = new Connection(ws, client, now(), token)
    sockets.add(conn)
    server.onWebSocketConnection(conn.conduit)
    ws.on('message', (data, isBinary) => onMessage(conn, data, isBinary))
    ws.on('ping', () => counted(conn, now())) // ws answers each with a pong: read at the same pace
    ws.on('error', () => drop(conn, 'connection error'))
    ws.on('close', () => forget(conn))
    const denied = o.access?.refusal(token, now())
    if (denied) close(conn, 1008, denied) // told why at once, not at its first announce
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
    peerIds.sweep(at)
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
      onConnection(ws, client, accessOf(req.url))
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
