"""Viewers playing now: the viewer pages that sent a heartbeat within `timeout` (issue 34).

Each page makes up a random id when it loads and beats with it while its video plays (http/watching.py).
What is kept, in memory only, per id: when it last beat, whether its P2P was on, and which client it
came from as a keyed hash (Python's SipHash of the address paired with a random salt made at start and
never written): addresses are never stored, logged or exported, and the table alone does not name one.

A hostile client cannot inflate the count beyond a stated bound nor cost more than a playlist request:

- one client address (an IPv6 client: its /64) holds at most `per_client` ids at once; beats for more
  are refused (not counted) until some expire. So N addresses add at most N x per_client.
- the table holds at most `limit` ids (about 340 bytes each: 265 measured with tracemalloc for the
  table's entry, plus the id's string); past it new ids are refused
  and the ones already counted keep beating. When the address is unknown (behind the tunnel without
  TRUST_CF_CONNECTING_IP every request comes from loopback) only this cap applies.
- each beat is O(1): a hash, a dict lookup, a move to the end of an ordered dict, and expiry popping
  from its front (ids expire in the order they last beat), nothing else (bench/heartbeat.py).
"""

from __future__ import annotations

import os
import string
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

PER_CLIENT = 20  # ids one address may keep counted: a household, a small office behind one NAT
LIMIT = 50_000  # ids counted at once, whatever the addresses (bounds the memory: ~17 MB)
# What the page makes up: 128 random bits, base64url (16 to 64 of these characters). A set, not a
# regular expression: half the instructions, on the one path every heartbeat takes.
_ID_CHARS = frozenset(string.ascii_letters + string.digits + "_-")


@dataclass(slots=True)
class _Viewer:
    seen: float  # monotonic time of its last beat
    p2p: bool
    client: int | None  # the keyed hash of its address, None when the address is unknown


class Audience:
    """The count of viewer pages playing now. One event loop's: not thread-safe, and needs not be."""

    def __init__(self, timeout: float, *, per_client: int = PER_CLIENT, limit: int = LIMIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not timeout > 0 or per_client < 1 or limit < 1:
            raise ValueError("timeout > 0, per_client and limit >= 1")
        self.timeout = timeout
        self.per_client = per_client
        self.limit = limit
        self._clock = clock
        self._salt = os.urandom(16)  # for the clients' hashes: in memory only, new at every start
        self._viewers: OrderedDict[str, _Viewer] = OrderedDict()  # least recently beaten first
        self._per_client: dict[int, int] = {}
        self._p2p = 0
        # "other_site": a beat a browser says another site's page sent (http/watching.py).
        self.refused = {"per_client": 0, "limit": 0, "bad_id": 0, "other_site": 0}

    @property
    def watching(self) -> int:
        """Viewer pages playing now (expired ones dropped first)."""
        self._expire(self._clock())
        return len(self._viewers)

    @property
    def p2p(self) -> int:
        """Of those, the pages that share segments peer to peer."""
        self._expire(self._clock())
        return self._p2p

    def beat(self, viewer_id: str, address: str | None, p2p: bool) -> bool:
        """A page playing now; False when it is not counted (a bad id, or past a cap)."""
        if not 16 <= len(viewer_id) <= 64 or not _ID_CHARS.issuperset(viewer_id):
            self.refused["bad_id"] += 1
            return False
        now = self._clock()
        self._expire(now)
        client = self._hash(address)
        known = self._viewers.get(viewer_id)
        if known is not None and known.client == client:  # the usual case: the same page again
            self._viewers.move_to_end(viewer_id)
            known.seen = now
            if known.p2p != p2p:
                self._p2p += 1 if p2p else -1
                known.p2p = p2p
            return True
        if known is None and len(self._viewers) >= self.limit:
            self.refused["limit"] += 1
            return False
        if client is not None and self._per_client.get(client, 0) >= self.per_client:
            self.refused["per_client"] += 1
            return False
        if known is not None:  # the page moved to another network: counted there from now
            self._forget(viewer_id)
        self._viewers[viewer_id] = _Viewer(now, p2p, client)
        if client is not None:
            self._per_client[client] = self._per_client.get(client, 0) + 1
        self._p2p += p2p
        return True

    def leave(self, viewer_id: str) -> None:
        """The page stopped playing or closed: out of the count at once (whoever knows its id)."""
        if viewer_id in self._viewers:
            self._forget(viewer_id)

    def __len__(self) -> int:
        """Pages counted as of the last beat or reading (no expiry run: the beat just ran it)."""
        return len(self._viewers)

    def _hash(self, address: str | None) -> int | None:
        # SipHash (str's hash, keyed per process) of the address with our salt: cheap, and 64 bits, so
        # two addresses sharing a key (and a cap) is a 1 in 2**64 chance.
        return None if address is None else hash((self._salt, address))

    def _expire(self, now: float) -> None:
        viewers = self._viewers
        deadline = now - self.timeout
        while viewers:
            viewer_id, viewer = next(iter(viewers.items()))
            if viewer.seen > deadline:
                return
            self._forget(viewer_id)

    def _forget(self, viewer_id: str) -> None:
        viewer = self._viewers.pop(viewer_id)
        self._p2p -= viewer.p2p
        if viewer.client is not None:
            left = self._per_client[viewer.client] - 1
            if left:
                self._per_client[viewer.client] = left
            else:
                del self._per_client[viewer.client]
