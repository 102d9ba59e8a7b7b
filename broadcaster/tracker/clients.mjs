// Who a connection comes from, and what each client may still do (connections open, announces).
//
// Behind the Cloudflare tunnel every connection comes from cloudflared on loopback, so the address
// that counts is Cloudflare's CF-Connecting-IP header. It is believed only when the TCP peer is a
// loopback address (cloudflared on this machine): a client reaching the port directly could name any
// address in it.
//
// A client is two keys. Its site holds at most TRACKER_MAX_CLIENT_CONNECTIONS connections at once and
// opens at most TRACKER_CLIENT_ANNOUNCES a minute; its network makes at most TRACKER_CLIENT_ANNOUNCES
// new connections and announces a minute. An IPv4 address is both. For IPv6 the site is the /48
// (TRACKER_IPV6_PREFIX) and the network the /64 (one LAN, what SLAAC gives a link). Connections per
// /64 let an attacker multiply itself cheaply: a free tunnel broker account (Hurricane Electric's, for
// one) routes a whole /48, 65,536 /64s, and 100 of them held all 2000 connection slots (I1). A /56
// (what many ISPs delegate to a home) would still give that one free /48 256 clients. A /48 is one site
// (RFC 6177's assignment to an end site); the honest viewers who share one (a campus, a mobile
// operator's pool) share one client's connections, as viewers behind one IPv4 address (carrier-grade
// NAT) always have: past it they play from the bucket alone. Announces are the network's own (T10): with
// the site's, one neighbour in the /48 spent every viewer's budget there and had them closed.
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

export const NETWORK_BITS = 64 // an IPv6 network: one LAN

// clientOf(req) -> { site, network }: an IPv6 site is its first `prefix` bits, its network its first
// max(64, prefix); an IPv4 address is both.
export function clientKeys (prefix = 48) {
  const networkBits = Math.max(NETWORK_BITS, prefix)
  return function clientOf (req) {
    let address = req.socket.remoteAddress || 'unknown'
    if (loopback(address)) {
      const header = req.headers['cf-connecting-ip']
      if (typeof header === 'string' && net.isIP(header.trim())) address = header.trim()
    }
    return { site: addressKey(address, prefix), network: addressKey(address, networkBits) }
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

  ready (now) {
    return this.tokens + (now - this.at) * this.rate >= 1
  }

  // When a token will be there, in ms from `now` (0: now).
  wait (now) {
    return Math.max(0, Math.ceil((1 - this.tokens - (now - this.at) * this.rate) / this.rate))
  }

  full (now) {
    return this.tokens + (now - this.at) * this.rate >= this.capacity
  }
}

export class Clients {
  constructor ({ maxConnections, perMinute }) {
    this.maxConnections = maxConnections
    this.perMinute = perMinute
    this.sites = new Map() // site -> {connections, opens: Bucket}
    this.networks = new Map() // network -> Bucket: its new connections and announces
  }

  site (key, now) {
    let site = this.sites.get(key)
    if (!site) {
      site = { connections: 0, opens: new Bucket(this.perMinute, now) }
      this.sites.set(key, site)
    }
    return site
  }

  budget (key, now) {
    let bucket = this.networks.get(key)
    if (!bucket) {
      bucket = new Bucket(this.perMinute, now)
      this.networks.set(key, bucket)
    }
    return bucket
  }

  // A new connection from `client` ({site, network}): null if allowed (it is counted), else why not.
  open (client, now) {
    const site = this.site(client.site, now)
    if (site.connections >= this.maxConnections) return 'TRACKER_MAX_CLIENT_CONNECTIONS'
    const budget = this.budget(client.network, now)
    if (!site.opens.ready(now) || !budget.ready(now)) return 'TRACKER_CLIENT_ANNOUNCES'
    site.opens.take(now)
    budget.take(now)
    site.connections += 1
    return null
  }

  close (client) {
    const site = this.sites.get(client.site)
    if (site) site.connections -= 1
  }

  announce (client, now) {
    return this.budget(client.network, now).take(now)
  }

  // Forget clients with nothing open and nothing owed, so the maps stay as small as the crowd.
  sweep (now) {
    for (const [key, site] of this.sites) {
      if (site.connections <= 0 && site.opens.full(now)) this.sites.delete(key)
    }
    for (const [key, bucket] of this.networks) {
      if (bucket.full(now)) this.networks.delete(key)
    }
  }
}
