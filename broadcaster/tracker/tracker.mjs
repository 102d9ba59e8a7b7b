// WebTorrent tracker for the viewer's peer-to-peer mode (P2P_TRACKERS; README, "Viewer-to-viewer").
//
// It only introduces viewers to each other: a viewer announces the swarm of the stream it plays, with
// WebRTC offers, and the tracker relays offers and answers between viewers of that swarm. No video
// passes through it. WebSocket only (no HTTP or UDP tracker), on loopback: the Cloudflare tunnel is
// its only way in (cloudflared.yml.example, tracker.example.com).
//
//   npm ci --ignore-scripts             # in its folder (package-lock.json pins every version)
//   TRACKER_PORT=8000 node tracker.mjs  # or the systemd unit / pm2 entry next to this file
//
// Environment (all optional):
//   TRACKER_HOST            listen address, 127.0.0.1 (keep it on loopback behind the tunnel)
//   TRACKER_PORT            listen port, 8000
//   TRACKER_MAX_CONNECTIONS WebSocket connections at once, 2000 (each viewer holds one per tracker;
//                           past it new ones are refused and those viewers play from the bucket alone)
//   TRACKER_MAX_SWARMS      swarms (info hashes) at once, 64; one stream is one swarm per variant
//   TRACKER_MAX_PEERS       peers remembered per swarm, 1000 (the least recently seen go first)
//   TRACKER_MAX_MESSAGE     bytes of one WebSocket message, 65536 (an announce with its 5 offers is
//                           a few kB; the library's default would be ws's 100 MiB)
//
// `--ignore-scripts`: bittorrent-tracker's client half depends on node-datachannel, whose install script
// downloads a native binary. The server half used here never loads it.
import Server from 'bittorrent-tracker/server'

function setting (name, fallback, low, high) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < low || value > high) {
    console.error(`tracker: ${name}=${JSON.stringify(raw)}: expected a whole number from ${low} to ${high}`)
    process.exit(2) // a bad setting: restarting cannot fix it (the unit and pm2 entry do not retry it)
  }
  return value
}

const host = process.env.TRACKER_HOST || '127.0.0.1'
const port = setting('TRACKER_PORT', 8000, 0, 65535)
const maxConnections = setting('TRACKER_MAX_CONNECTIONS', 2000, 1, 1_000_000)
const maxSwarms = setting('TRACKER_MAX_SWARMS', 64, 1, 100_000)
const maxPeers = setting('TRACKER_MAX_PEERS', 1000, 2, 100_000)
const maxMessage = setting('TRACKER_MAX_MESSAGE', 65536, 1024, 16 * 1024 * 1024)

const server = new Server({
  http: false,
  udp: false,
  ws: { maxPayload: maxMessage }, // a larger message closes that socket (1009), nothing else
  stats: false,
  trustProxy: false, // peer addresses are not used by WebRTC signalling; nothing to trust
  peersCacheLength: maxPeers,
  // A new swarm only while there is room; announces to existing swarms always pass.
  filter (infoHash, params, cb) {
    if (Object.hasOwn(server.torrents, infoHash) || Object.keys(server.torrents).length < maxSwarms) {
      cb(null)
    } else {
      cb(new Error('too many swarms on this tracker'))
    }
  }
})
// The WebSocket server rides on this HTTP server (any other request gets 404): cap its sockets.
server.http.maxConnections = maxConnections

server.on('error', (err) => {
  console.error(`tracker: ${err.message}`)
  process.exit(1)
})
server.on('warning', (err) => {
  if (process.env.TRACKER_DEBUG) console.warn(`tracker: warning: ${err.message}`)
})
server.on('listening', () => {
  const { address, port: bound } = server.http.address()
  console.log(`tracker: listening on ws://${address}:${bound} (max ${maxConnections} connections, ` +
    `${maxSwarms} swarms, ${maxPeers} peers a swarm, ${maxMessage} B a message)`)
})

function stop (signal) {
  console.log(`tracker: ${signal}, closing`)
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 3000).unref()
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))

server.listen(port, host)
