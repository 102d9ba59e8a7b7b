// Which info hashes this tracker serves: those of the streams the service publishes, nothing else
// (as PeerTube refuses info hashes it does not publish). Any other announce is refused, so nobody can
// make swarms of their own here.
//
// P2P Media Loader 2.3.1 (viewer/p2p-media-loader-core.es.min.js, src/p2p/tracker-client.ts and
// src/utils/peer.ts) announces, for each stream of the player, the info hash
//   base64(SHA-1(UTF-8 "v2-<swarmId>-<type>-<index>")[0:15])   (20 ASCII characters)
// where swarmId is /config.json's p2p.swarm (the service's p2p_swarm), type is "main" (a variant,
// index = its place in the multivariant playlist) or "secondary" (an audio rendition). A new version of
// the library may change this: scripts/update-p2p-media-loader.sh says to check it, and the browser
// tests (viewers meeting through this tracker) fail if it no longer matches.
import { createHash } from 'node:crypto'

export const STREAMS_PER_TYPE = 32 // variants (and audio renditions) per stream that may share

export function infoHashes (swarmId) {
  const hashes = []
  for (const type of ['main', 'secondary']) {
    for (let index = 0; index < STREAMS_PER_TYPE; index++) {
      const digest = createHash('sha1').update(`v2-${swarmId}-${type}-${index}`, 'utf8').digest()
      hashes.push(digest.subarray(0, 15).toString('base64'))
    }
  }
  return hashes
}

const SWARM_ID = /^[\x21-\x7e]{1,200}$/ // printable ASCII, as the service makes them (hls-broadcaster-<hex>)
const POLL_WAITING_MS = 3_000 // none known yet: the service is starting (or pollMs, if shorter)
const FETCH_TIMEOUT_MS = 5_000
const MAX_CONFIG_BYTES = 64 * 1024

// The allowed info hashes, from fixed swarm ids (TRACKER_SWARMS) or read from the services'
// /config.json (TRACKER_SERVICE_URL). Fails closed: until a config has been read, nothing is allowed;
// a service that stops answering keeps the swarms it named last (its viewers may still be playing).
export class AllowedSwarms {
  constructor ({ swarms, serviceUrls, pollMs, log }) {
    this.pollMs = pollMs
    this.any = swarms.length === 1 && swarms[0] === '*'
    this.serviceUrls = swarms.length ? [] : serviceUrls
    this.log = log
    this.hashes = new Set()
    this.bySource = new Map() // url -> swarm id it named
    this.problems = new Map() // url -> the last problem logged (logged again only when it changes)
    this.timer = null
    if (!this.any) {
      for (const swarm of swarms) {
        if (!SWARM_ID.test(swarm)) throw new Error(`TRACKER_SWARMS: ${JSON.stringify(swarm)} is not a swarm id`)
        for (const hash of infoHashes(swarm)) this.hashes.add(hash)
      }
    }
  }

  get ready () {
    return this.any || this.hashes.size > 0
  }

  has (infoHash) {
    return this.any || this.hashes.has(infoHash)
  }

  describe () {
    if (this.any) return 'any swarm (TRACKER_SWARMS=*: for tests, never in production)'
    if (this.serviceUrls.length) return `the swarms named by ${this.serviceUrls.join(', ')}`
    return 'the swarms in TRACKER_SWARMS'
  }

  start () {
    if (!this.serviceUrls.length) return
    const poll = async () => {
      await Promise.all(this.serviceUrls.map((url) => this.read(url)))
      this.timer = setTimeout(poll, this.bySource.size === this.serviceUrls.length ? this.pollMs : Math.min(this.pollMs, POLL_WAITING_MS))
      this.timer.unref()
    }
    poll()
  }

  stop () {
    clearTimeout(this.timer)
  }

  async read (url) {
    let swarm
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'error' })
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      const body = await response.arrayBuffer()
      if (body.byteLength > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`)
      const config = JSON.parse(Buffer.from(body).toString('utf8'))
      swarm = config && config.p2p && config.p2p.swarm
      if (swarm === undefined) {
        return this.problem(url, 'it has no "p2p" (P2P_TRACKERS is empty on that service)', true)
      }
      if (typeof swarm !== 'string' || !SWARM_ID.test(swarm)) throw new Error('its p2p.swarm is not a swarm id')
    } catch (err) {
      const why = err.name === 'TimeoutError' ? 'no answer' : (err.cause && err.cause.code) || err.message
      return this.problem(url, `cannot read it (${why})`, false)
    }
    this.problems.delete(url)
    if (this.bySource.get(url) === swarm) return
    this.bySource.set(url, swarm)
    this.rebuild()
    this.log(`tracker: serving swarm ${swarm} (from ${url})`)
  }

  problem (url, what, forget) {
    // forget: the service says it has no P2P: its old swarm goes. A service that does not answer keeps it.
    if (forget && this.bySource.delete(url)) this.rebuild()
    const known = this.bySource.get(url)
    const then = known ? `keeping swarm ${known} it named before` : 'refusing every announce for its swarm until it answers'
    const line = `tracker: ${url}: ${what}; ${then}`
    if (this.problems.get(url) === line) return
    this.problems.set(url, line)
    this.log(line)
  }

  rebuild () {
    this.hashes = new Set([...this.bySource.values()].flatMap(infoHashes))
  }
}
