// WebTorrent tracker for the viewer's peer-to-peer mode (P2P_TRACKERS; docs/p2p.md): this file reads the
// environment and runs the tracker; server.mjs is the tracker (what it does and why), clients.mjs,
// messages.mjs and swarms.mjs its parts, node-tests/*.test.mjs its rules tested in-process (node --test).
//
//   npm ci --ignore-scripts --omit=dev  # in its folder (package-lock.json pins every version)
//   node tracker.mjs                    # or the systemd unit / pm2 entry; TRACKER_PORT=8000 by default
//
// Environment (all optional):
//   TRACKER_HOST                    listen address, 127.0.0.1 (keep it on loopback behind the tunnel)
//   TRACKER_PORT                    listen port, 8000
//   TRACKER_SERVICE_URL             the service, on loopback: http://127.0.0.1:3000 (its own default);
//                                   comma-separated for several. Its /config.json names the swarm and its
//                                   /live/master.m3u8 the variants: the info hashes viewers announce (swarms.mjs)
//   TRACKER_SERVICE_POLL_SECONDS    how often they are read, 30 (a new variant or bucket: served this soon)
//   TRACKER_ANY_SWARM               1 = serve any info hash (tests of the viewer only; never in production)
//   TRACKER_MAX_CONNECTIONS         WebSocket connections at once, 2000 (each viewer holds one per tracker;
//                                   past it new ones are refused and those viewers play from the bucket alone)
//   TRACKER_MAX_CLIENT_CONNECTIONS  connections at once from one client's site (an IPv4 address, an IPv6
//                                   /48), 20
//   TRACKER_IPV6_PREFIX             an IPv6 client's site is its first this-many bits, 48; its network its
//                                   first 64 (or this, if longer; clients.mjs says why)
//   TRACKER_CLIENT_ANNOUNCES        new connections and announces a minute from one client's network (an
//                                   IPv4 address, an IPv6 /64), 120; new connections a minute from one site too
//   TRACKER_SOCKET_ANNOUNCES        announces a minute on one connection, 20 (a viewer sends one per swarm
//                                   every 2 minutes, one more per variant it switches to)
//   TRACKER_MAX_PEERS               peers remembered per swarm, 1000 (the least recently seen go first)
//   TRACKER_MAX_MESSAGE             bytes of one WebSocket message, 65536 (an announce with its 5 offers is
//                                   a few kB; the library's default would be ws's 100 MiB)
//   TRACKER_MAX_BUFFERED            bytes waiting to be sent to one connection, 65536; past it the
//                                   connection is dropped (it does not read)
//   TRACKER_VIEWER_KEY              a private stream's viewer key (64 hex digits: `hls-broadcaster invite
//                                   tracker-key`): a page's WebSocket URL must carry a valid token (access=),
//                                   and the tracker reads the service's playlist with one of its own
//   TRACKER_IDLE_SECONDS            a connection that sends nothing this long is closed, 300 (viewers
//                                   announce every 120 s); one that has not announced after
//                                   min(10, this) seconds too
//
// `--ignore-scripts`: bittorrent-tracker's client half depends on node-datachannel, whose install script
// downloads a native binary. The server half used here never loads it.
import { DEFAULTS, createTracker } from './server.mjs'
import { ViewerTokens } from './access.mjs'
import { AllowedSwarms } from './swarms.mjs'

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

function list (name, fallback) {
  return (process.env[name] ?? fallback).split(',').map((s) => s.trim()).filter(Boolean)
}

const options = {
  host: process.env.TRACKER_HOST || DEFAULTS.host,
  port: setting('TRACKER_PORT', DEFAULTS.port, 0, 65535),
  maxConnections: setting('TRACKER_MAX_CONNECTIONS', DEFAULTS.maxConnections, 1, 1_000_000),
  maxClientConnections: setting('TRACKER_MAX_CLIENT_CONNECTIONS', DEFAULTS.maxClientConnections, 1, 1_000_000),
  ipv6Prefix: setting('TRACKER_IPV6_PREFIX', DEFAULTS.ipv6Prefix, 16, 128),
  clientAnnounces: setting('TRACKER_CLIENT_ANNOUNCES', DEFAULTS.clientAnnounces, 1, 1_000_000),
  socketAnnounces: setting('TRACKER_SOCKET_ANNOUNCES', DEFAULTS.socketAnnounces, 1, 1_000_000),
  maxPeers: setting('TRACKER_MAX_PEERS', DEFAULTS.maxPeers, 2, 100_000),
  maxMessage: setting('TRACKER_MAX_MESSAGE', DEFAULTS.maxMessage, 1024, 16 * 1024 * 1024),
  maxBuffered: setting('TRACKER_MAX_BUFFERED', DEFAULTS.maxBuffered, 1024, 64 * 1024 * 1024),
  idleMs: setting('TRACKER_IDLE_SECONDS', DEFAULTS.idleMs / 1000, 1, 86_400) * 1000
}
let access = null
if (process.env.TRACKER_VIEWER_KEY) {
  try {
    access = new ViewerTokens(process.env.TRACKER_VIEWER_KEY.trim())
  } catch (err) {
    console.error(`tracker: TRACKER_VIEWER_KEY: ${err.message} (hls-broadcaster invite tracker-key prints it)`)
    process.exit(2)
  }
}
const swarms = new AllowedSwarms({
  access,
  serviceUrls: list('TRACKER_SERVICE_URL', 'http://127.0.0.1:3000'),
  any: process.env.TRACKER_ANY_SWARM === '1',
  pollMs: setting('TRACKER_SERVICE_POLL_SECONDS', 30, 1, 3600) * 1000,
  log: (line) => console.log(line)
})
const tracker = createTracker({ ...options, swarms, access })

tracker.listen().then(({ address, port }) => {
  // The first line: broadcaster/demo/tracker.py reads the URL from it.
  console.log(`tracker: listening on ws://${address}:${port} (max ${options.maxConnections} connections, ` +
    `${options.maxClientConnections} a client, IPv6 by /${options.ipv6Prefix}; ${options.maxPeers} peers a swarm; ` +
    `${options.maxMessage} B a message; ` +
    `${options.idleMs / 1000} s idle); serving ${swarms.describe()}${access ? ' to viewers with a token' : ''}`)
}, (err) => {
  console.error(`tracker: cannot listen on ${options.host}:${options.port} (TRACKER_HOST/TRACKER_PORT): ${err.message}`)
  // Taken, below 1024 or not this machine's address: a set-up mistake, exit 2 (the unit and the pm2 entry
  // do not restart it; a restart would meet the same); anything else 1.
  process.exit(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL'].includes(err.code) ? 2 : 1)
})

function stop (signal) {
  console.log(`tracker: ${signal}, closing`)
  tracker.close().then(() => process.exit(0))
  setTimeout(() => process.exit(0), 3000).unref()
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
