// What a viewer may send the tracker, checked before bittorrent-tracker sees any of it.
//
// The WebTorrent tracker protocol as P2P Media Loader 2.3.1's client (bittorrent-tracker's
// lib/client/websocket-tracker.js, bundled in viewer/p2p-media-loader-core.es.min.js) speaks it:
//   announce  {action, info_hash, peer_id, numwant, uploaded, downloaded, [event], offers: [{offer, offer_id}]}
//   stop      {action, info_hash, peer_id, numwant, uploaded, downloaded, event: "stopped"|"completed"}
//   answer    {action, info_hash, peer_id, to_peer_id, answer, offer_id}
// It never scrapes (the viewer's code has no call to it), sends at most 5 offers (min(numwant, 5)),
// and every offer and answer is one SDP (trickle off). Anything else is refused: the library would
// throw on some of it outside any try (an `offers: [null]` announce ends the process) and store the rest.

export const MAX_OFFERS = 5 // the client's own maximum per announce
export const MAX_SDP = 16 * 1024 // a data-channel SDP with its candidates is 1-3 kB
const EVENTS = new Set(['started', 'stopped', 'completed', 'update'])
const KEYS = new Set(['action', 'info_hash', 'peer_id', 'numwant', 'uploaded', 'downloaded', 'left', 'event',
  'offers', 'to_peer_id', 'answer', 'offer_id'])

export class Refused extends Error {} // the message is not one a viewer sends: close with this reason

function isObject (value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

// A 20-character "binary string" (one char per byte), as the protocol carries ids and hashes.
function id20 (value, name) {
  if (typeof value !== 'string' || value.length !== 20) throw new Refused(`${name}: expected 20 characters`)
  for (let i = 0; i < 20; i++) {
    if (value.charCodeAt(i) > 0xff) throw new Refused(`${name}: expected bytes`)
  }
  return value
}

function count (value, name, high) {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > high) {
    throw new Refused(`${name}: expected a number from 0 to ${high}`)
  }
  return value
}

function sdp (value, type, name) {
  if (!isObject(value) || value.type !== type || typeof value.sdp !== 'string' ||
      value.sdp.length === 0 || value.sdp.length > MAX_SDP || Object.keys(value).length !== 2) {
    throw new Refused(`${name}: expected {type: "${type}", sdp} of at most ${MAX_SDP} characters`)
  }
  return { type, sdp: value.sdp }
}

// The message as the library will see it (only the fields checked here, re-serialised), or Refused.
export function parse (text) {
  let message
  try {
    message = JSON.parse(text)
  } catch {
    throw new Refused('not JSON')
  }
  if (!isObject(message)) throw new Refused('expected a JSON object')
  if (message.action === 'scrape') throw new Refused('scrape is not served')
  if (message.action !== 'announce') throw new Refused('action: expected "announce"')
  for (const key of Object.keys(message)) {
    if (!KEYS.has(key)) throw new Refused(`unexpected field ${JSON.stringify(key.slice(0, 20))}`)
  }
  const out = {
    action: 'announce',
    info_hash: id20(message.info_hash, 'info_hash'),
    peer_id: id20(message.peer_id, 'peer_id')
  }
  const numwant = count(message.numwant, 'numwant', 100)
  if (numwant !== undefined) out.numwant = numwant
  for (const name of ['uploaded', 'downloaded', 'left']) {
    const value = count(message[name], name, Number.MAX_SAFE_INTEGER)
    if (value !== undefined) out[name] = value
  }
  if (message.answer !== undefined) {
    if (message.offers !== undefined || message.event !== undefined) throw new Refused('an answer carries no offers or event')
    out.to_peer_id = id20(message.to_peer_id, 'to_peer_id')
    out.offer_id = id20(message.offer_id, 'offer_id')
    out.answer = sdp(message.answer, 'answer', 'answer')
    return out
  }
  if (message.to_peer_id !== undefined || message.offer_id !== undefined) throw new Refused('to_peer_id and offer_id go with an answer')
  if (message.event !== undefined) {
    if (!EVENTS.has(message.event)) throw new Refused('event: expected started, stopped, completed or update')
    out.event = message.event
  }
  if (message.offers !== undefined) {
    if (out.event === 'stopped' || out.event === 'completed') throw new Refused(`a ${out.event} announce carries no offers`)
    if (!Array.isArray(message.offers) || message.offers.length > MAX_OFFERS) {
      throw new Refused(`offers: expected a list of at most ${MAX_OFFERS}`)
    }
    const ids = new Set()
    out.offers = message.offers.map((offer, i) => {
      if (!isObject(offer) || Object.keys(offer).length !== 2) throw new Refused(`offers[${i}]: expected {offer, offer_id}`)
      const offerId = id20(offer.offer_id, `offers[${i}].offer_id`)
      if (ids.has(offerId)) throw new Refused(`offers[${i}].offer_id: repeated`)
      ids.add(offerId)
      return { offer: sdp(offer.offer, 'offer', `offers[${i}].offer`), offer_id: offerId }
    })
  }
  return out
}
