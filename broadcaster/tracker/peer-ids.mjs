// Whose a peer id is (T9, T9b). An attacker learns viewers' ids from their offers (every offer names its
// sender), and a page keeps its id for life, so one that took a viewer's id would keep it out, or get
// the offers meant for it. So an id is bound to the connection that announced it first, whatever the
// address: nobody else's announce of it is taken while that connection lives (server.mjs asks a silent
// one with a ping first: the page back on a new connection while the tracker has not yet seen the old
// one go). Once the connection is gone, the id stays its network's (clients.mjs: an IPv4 address, an
// IPv6 /64) for `keepMs` after, longer than a page takes to come back (10 s, then up to 300 s).
//
// A holder is any object with `closed` and `client.network` (server.mjs's Connection).
export class PeerIds {
  constructor ({ keepMs, max }) {
    this.keepMs = keepMs
    this.max = max // ids remembered at most; past it the least recently used is forgotten
    this.ids = new Map() // binary peer_id -> {holder, network, until}; in the order of last use
  }

  // The open connection holding `id`, or null.
  holder (id) {
    const entry = this.ids.get(id)
    return entry && entry.holder && !entry.holder.closed ? entry.holder : null
  }

  // True when `id` is kept for another network than `network` (no connection holds it now).
  kept (id, network, now) {
    const entry = this.ids.get(id)
    return Boolean(entry && !this.holder(id) && entry.network !== network && now < entry.until)
  }

  // `holder` announced `id` (and may: see holder() and kept()).
  bind (id, holder) {
    this.ids.delete(id) // set again last: the map keeps the order of last use
    this.ids.set(id, { holder, network: holder.client.network, until: Infinity })
    if (this.ids.size > this.max) this.ids.delete(this.ids.keys().next().value)
  }

  // `holder` is gone: each of its ids stays its network's for keepMs.
  release (holder, ids, now) {
    for (const id of ids) {
      const entry = this.ids.get(id)
      if (entry && entry.holder === holder) {
        entry.holder = null
        entry.until = now + this.keepMs
      }
    }
  }

  sweep (now) {
    for (const [id, entry] of this.ids) {
      if (entry.holder && entry.holder.closed) { // gone without release(): kept from now on
        entry.holder = null
        entry.until = now + this.keepMs
      }
      if (!entry.holder && entry.until <= now) this.ids.delete(id)
    }
  }

  get size () {
    return this.ids.size
  }
}
