// Who a connection comes from, and what each client may still do (connections open, announces).
//
// Behind the Cloudflare tunnel every connection comes from cloudflared on loopback, so the address
// that counts is Cloudflare's CF-Connecting-IP header. It is believed only when the TCP peer is a
// loopback address (cloudflared on this machine): a client reaching the port directly could name any
// address in it.
//
// An IPv6 client counts by its /48 (TRACKER_IPV6_PREFIX). Per /64 (one LAN) an attacker multiplied
// itself cheaply: a free tunnel broker account (Hurricane Electric's, for one) routes a whole /48, 65,536
// /64s, and 100 of them held all 2000 connection slots (I1). A /56 (what many ISPs delegate to a home)
// would still give that one free /48 256 clients. A /48 is one site (RFC 6177's assignment to an end
// site); the honest viewers who share one (a campus, a mobile operator's pool) share one client's
// connections, as viewers behind one IPv4 address (carrier-grade NAT) always have: past it they play from
// the bucket alone.
import net from 'node:net'

function loopback (address) {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.')
}

function expandV6 (address) {
  const [head, tail = ''] = address.split('::')
  const left = head ? head.split(':') : []
  const right = address.includes('::') ? (tail ? tail.split(':') : []) : []
  const groups = [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
  return groups.map((g) => g.padStart(4, '0').toLowerCase())
}

// The client an address counts as: an IPv4 address itself, an IPv6 address its first `prefix` bits.
export function addressKey (address, prefix = 48) {
  if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) return address.slice(7)
  if (!net.isIPv6(address) || address.includes('.')) return address
  const kept = expandV6(address).slice(0, Math.ceil(prefix / 16)).map((g, i) => {
    const bits = Math.min(16, prefix - 16 * i)
    return (parseInt(g, 16) & (0xffff << (16 - bits)) & 0xffff).toString(16).padStart(4, '0')
  })
  return `${kept.join(':')}${kept.length < 8 ? '::' : ''}/${prefix}`
}

// clientOf(req) for IPv6 clients counted by `prefix` bits.
export function clientKeys (prefix = 48) {
  return function clientOf (req) {
    const peer = req.socket.remoteAddress || 'unknown'
    if (loopback(peer)) {
      const header = req.headers['cf-connecting-ip']
      if (typeof header === 'string' && net.isIP(header.trim())) return addressKey(header.trim(), prefix)
    }
    return addressKey(peer, prefix)
  }
}

// `perMinute` tokens a minute, at most `perMinute` saved up.
export class Bucket {
  constructor (perMinute, now) {
    this.rate = perMinute / 60_000
    this.capacity = perMinute
    this.tokens = perMinute
    this.at = now
  }

  take (now) {
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.at) * this.rate)
    this.at = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  full (now) {
    return this.tokens + (now - this.at) * this.rate >= this.capacity
  }
}

export class Clients {
  constructor ({ maxConnections, perMinute }) {
    this.maxConnections = maxConnections
    this.perMinute = perMinute
    this.byKey = new Map() // key -> {connections, bucket}
  }

  get (key, now) {
    let client = this.byKey.get(key)
    if (!client) {
      client = { connections: 0, bucket: new Bucket(this.perMinute, now) }
      this.byKey.set(key, client)
    }
    return client
  }

  // A new connection: null if allowed (it is counted), else why not.
  open (key, now) {
    const client = this.get(key, now)
    if (client.connections >= this.maxConnections) return 'TRACKER_MAX_CLIENT_CONNECTIONS'
    if (!client.bucket.take(now)) return 'TRACKER_CLIENT_ANNOUNCES'
    client.connections += 1
    return null
  }

  close (key) {
    const client = this.byKey.get(key)
    if (client) client.connections -= 1
  }

  announce (key, now) {
    return this.get(key, now).bucket.take(now)
  }

  // Forget clients with nothing open and nothing owed, so the map stays as small as the crowd.
  sweep (now) {
    for (const [key, client] of this.byKey) {
      if (client.connections <= 0 && client.bucket.full(now)) this.byKey.delete(key)
    }
  }
}
