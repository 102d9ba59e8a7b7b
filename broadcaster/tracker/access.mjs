// A private stream's viewer tokens (PRIVATE=true; broadcaster/access/tokens.py is the service's half):
// `v1.<expires>.<who>.<base64url HMAC-SHA256(viewer key, "v1.<expires>.<who>")>`. The tracker gets the
// viewer key (TRACKER_VIEWER_KEY, hex: `hls-broadcaster invite tracker-key` prints it), checks the token a
// page sends on its WebSocket URL (`?access=`) before it lets it announce, and mints one for itself to
// read the service's gated multivariant playlist. It cannot see the invites file: a revoked invite's
// token is refused once it expires (within PRIVATE_TOKEN_LIFE), as the service's renewal refuses it.
import { createHmac, timingSafeEqual } from 'node:crypto'

const MAX_TOKEN = 200
const NAME = /^(?:-|[A-Za-z0-9_-]{1,40})$/
const SELF_LIFE_S = 60 // the tracker's own token, minted for each read of the service

export const NO_TOKEN = 'this stream is private: a viewer token is needed (access=)'
export const BAD_TOKEN = 'the viewer token is not valid'
export const EXPIRED = 'the viewer token has expired'

export class ViewerTokens {
  constructor (keyHex) {
    if (!/^[0-9a-f]{64}$/i.test(keyHex)) throw new Error('the viewer key is 64 hex digits')
    this.key = Buffer.from(keyHex, 'hex')
  }

  mac (body) {
    return createHmac('sha256', this.key).update(body, 'utf8').digest('base64url')
  }

  mint (nowMs, lifeS = SELF_LIFE_S, who = '-') {
    const body = `v1.${Math.floor(nowMs / 1000) + lifeS}.${who}`
    return `${body}.${this.mac(body)}`
  }

  /** null: the token lets in now; else why not (one line for the close reason). */
  refusal (token, nowMs) {
    if (!token) return NO_TOKEN
    if (token.length > MAX_TOKEN) return BAD_TOKEN
    const parts = token.split('.')
    if (parts.length !== 4 || parts[0] !== 'v1' || !/^\d{1,12}$/.test(parts[1]) || !NAME.test(parts[2])) return BAD_TOKEN
    const expected = Buffer.from(this.mac(parts.slice(0, 3).join('.')))
    const given = Buffer.from(parts[3])
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return BAD_TOKEN
    return nowMs / 1000 >= Number(parts[1]) ? EXPIRED : null
  }
}

/** The `access` query parameter of a request's target (`/?access=...`), or null. */
export function accessOf (target) {
  try {
    return new URL(target || '/', 'http://tracker').searchParams.get('access')
  } catch {
    return null
  }
}
