// Which info hashes this tracker serves: those of the streams the service publishes, nothing else
// (as PeerTube refuses info hashes it does not publish). Any other announce is refused, so nobody can
// make swarms of their own here.
//
// P2P Media Loader 2.3.1 (viewer/p2p-media-loader-core.es.min.js: src/p2p/tracker-client.ts,
// src/utils/peer.ts, src/utils/stream.ts; p2p-media-loader-hlsjs: processMainManifest) announces, for
// each variant of the multivariant playlist as hls.js parses it (its hlsManifestLoaded levels),
//   info_hash = base64(SHA-1("v2-<swarmId>-main-<key>")[0:15])            20 ASCII characters
//   key       = base64(SHA-1("<bitrate>-<codecs>-<width>-<height>----<frameRate>-<videoRange>"))
// swarmId is /config.json's p2p.swarm (the service's p2p_swarm); bitrate is BANDWIDTH (else
// AVERAGE-BANDWIDTH, else 0), codecs the video codecs of CODECS (hls.js's split; avc1.P.L written
// avc1.PPCCLL, sorted), width and height RESOLUTION's, frameRate FRAME-RATE as a number, videoRange
// VIDEO-RANGE upper-cased; with a bitrate of 0 only the bitrate counts. Audio renditions ("secondary")
// would follow the same way; the service publishes none. A new version of the library may change all
// this: tests/test_tracker_hostile.py runs the vendored library's own functions against it, and fails.
//
// So the tracker reads, from the service on loopback, /config.json (the swarm) and /live/master.m3u8
// (the variants), every TRACKER_SERVICE_POLL_SECONDS; the info hashes of variants that went away are
// kept a while (viewers still playing them), at most KEPT of them.
import { createHash } from 'node:crypto'

const KEPT = 64 // info hashes remembered per service, newest first
const POLL_WAITING_MS = 3_000 // none known yet: the service is starting (or pollMs, if shorter)
const FETCH_TIMEOUT_MS = 5_000
const MAX_BYTES = 256 * 1024
const SWARM_ID = /^[\x21-\x7e]{1,200}$/ // printable ASCII, as the service makes them (hls-broadcaster-<hex>)
// hls.js's video codec prefixes (its sampleEntryCodesISO.video)
const VIDEO = new Set(['avc1', 'avc2', 'avc3', 'avc4', 'avcp', 'av01', 'dav1', 'drac', 'dva1', 'dvav', 'dvh1', 'dvhe',
  'encv', 'hev1', 'hvc1', 'mjp2', 'mp4v', 'mvc1', 'mvc2', 'mvc3', 'mvc4', 'resv', 'rv60', 's263', 'svc1', 'svc2',
  'vc-1', 'vp08', 'vp09'])

const sha1 = (text) => createHash('sha1').update(text, 'utf8').digest()

function attributes (line) {
  const attrs = {}
  const re = /([A-Z0-9-]+)=("[^"]*"|[^,]*)/g
  let m
  while ((m = re.exec(line)) !== null) attrs[m[1]] = m[2].startsWith('"') ? m[2].slice(1, -1) : m[2]
  return attrs
}

function codecKey (codecs) {
  return codecs.split(',').map((codec) => {
    codec = codec.trim().toLowerCase()
    const parts = codec.split('.')
    if (parts.length === 3 && (parts[0] === 'avc1' || parts[0] === 'avc')) {
      const profile = parseInt(parts[1], 10)
      const level = parseInt(parts[2], 10)
      if (!isNaN(profile) && !isNaN(level) && parts[1] === String(profile) && parts[2] === String(level)) {
        codec = `${parts[0]}.${profile.toString(16).padStart(2, '0')}00${level.toString(16).padStart(2, '0')}`
      }
    }
    return codec
  }).sort().join(',')
}

// The stream key of one #EXT-X-STREAM-INF line, as P2P Media Loader computes it from hls.js's level.
export function variantKey (line) {
  const a = attributes(line)
  const bitrate = parseInt(a.BANDWIDTH, 10) || parseInt(a['AVERAGE-BANDWIDTH'], 10) || 0
  let codecs = ''; let width = ''; let height = ''; let frameRate = ''; let range = ''
  if (bitrate !== 0) {
    const video = (a.CODECS || '').split(/[ ,]+/).filter((c) => c && VIDEO.has(c.slice(0, 4))).map((c) => c.split('/')[0])
    codecs = video.length ? codecKey(video.join(',')) : ''
    const resolution = /^(\d+)x(\d+)$/.exec(a.RESOLUTION || '')
    if (resolution) [width, height] = [String(Number(resolution[1])), String(Number(resolution[2]))]
    const rate = a['FRAME-RATE']
    frameRate = rate && !isNaN(Number(rate)) ? String(Number(rate)) : ''
    range = a['VIDEO-RANGE'] ? a['VIDEO-RANGE'].toUpperCase().trim() : ''
  }
  return sha1(`${bitrate}-${codecs}-${width}-${height}----${frameRate}-${range}`).toString('base64')
}

export function infoHash (swarmId, key, type = 'main') {
  return sha1(`v2-${swarmId}-${type}-${key}`).subarray(0, 15).toString('base64')
}

// Every variant's info hash in a multivariant playlist's text.
export function masterInfoHashes (swarmId, text) {
  return text.split(/\r?\n/).filter((line) => line.startsWith('#EXT-X-STREAM-INF:'))
    .map((line) => infoHash(swarmId, variantKey(line.slice('#EXT-X-STREAM-INF:'.length))))
}

async function fetchText (url) {
  const response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'error' })
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
  const body = await response.arrayBuffer()
  if (body.byteLength > MAX_BYTES) throw new Error(`larger than ${MAX_BYTES} bytes`)
  return Buffer.from(body).toString('utf8')
}

// The allowed info hashes, read from each service (TRACKER_SERVICE_URL). Fails closed: until a
// service's swarm and variants have been read, nothing of it is allowed; a service that stops
// answering keeps what it named last (its viewers may still be playing).
export class AllowedSwarms {
  constructor ({ serviceUrls, any, pollMs, log, access = null }) {
    this.any = any
    this.access = access // a private stream: the playlist is read with a token of the tracker's own
    this.serviceUrls = any ? [] : serviceUrls.map((url) => url.replace(/\/+$/, ''))
    this.pollMs = pollMs
    this.log = log
    this.known = new Map() // service url -> {swarm, hashes: [newest first]}
    this.hashes = new Set()
    this.problems = new Map() // url -> the last line logged (logged again only when it changes)
    this.timer = null
  }

  get ready () {
    return this.any || this.hashes.size > 0
  }

  has (infoHash) {
    return this.any || this.hashes.has(infoHash)
  }

  describe () {
    if (this.any) return 'any swarm (TRACKER_ANY_SWARM=1: for tests, never in production)'
    return `the variants of the streams of ${this.serviceUrls.join(', ')}`
  }

  start () {
    if (this.any) return
    const poll = async () => {
      await Promise.all(this.serviceUrls.map((url) => this.read(url)))
      const waiting = this.serviceUrls.some((url) => !this.known.has(url))
      this.timer = setTimeout(poll, waiting ? Math.min(this.pollMs, POLL_WAITING_MS) : this.pollMs)
      this.timer.unref()
    }
    poll()
  }

  stop () {
    clearTimeout(this.timer)
  }

  async read (url) {
    let swarm, fresh
    try {
      const config = JSON.parse(await fetchText(`${url}/config.json`))
      swarm = config && config.p2p && config.p2p.swarm
      if (swarm === undefined) return this.problem(url, 'its /config.json has no "p2p" (P2P_TRACKERS is empty there)', true)
      if (typeof swarm !== 'string' || !SWARM_ID.test(swarm)) throw new Error('its p2p.swarm is not a swarm id')
      let master
      try {
        const token = this.access ? `?access=${this.access.mint(Date.now())}` : ''
        master = await fetchText(`${url}/live/master.m3u8${token}`)
      } catch (err) {
        if (err.message === 'HTTP 404' || err.message === 'HTTP 503') return this.problem(url, 'no stream yet', false)
        throw err
      }
      fresh = masterInfoHashes(swarm, master)
      if (!fresh.length) return this.problem(url, 'its multivariant playlist lists no variant', false)
    } catch (err) {
      const why = err.name === 'TimeoutError' ? 'no answer' : (err.cause && err.cause.code) || err.message
      return this.problem(url, `cannot read it (${why})`, false)
    }
    this.problems.delete(url)
    const before = this.known.get(url)
    const kept = before && before.swarm === swarm ? before.hashes.filter((h) => !fresh.includes(h)) : []
    const hashes = [...fresh, ...kept].slice(0, KEPT)
    this.known.set(url, { swarm, hashes })
    this.rebuild()
    const added = fresh.filter((h) => !before || !before.hashes.includes(h))
    if (added.length) this.log(`tracker: serving swarm ${swarm}, ${fresh.length} variant${fresh.length === 1 ? '' : 's'} (from ${url})`)
  }

  problem (url, what, forget) {
    // forget: the service says it has no P2P: its swarm goes. One that does not answer keeps it.
    if (forget && this.known.delete(url)) this.rebuild()
    const known = this.known.get(url)
    const then = known ? `keeping swarm ${known.swarm} as it was` : 'refusing every announce for its stream until then'
    const line = `tracker: ${url}: ${what}; ${then}`
    if (this.problems.get(url) === line) return
    this.problems.set(url, line)
    this.log(line)
  }

  rebuild () {
    this.hashes = new Set([...this.known.values()].flatMap((k) => k.hashes))
  }
}
