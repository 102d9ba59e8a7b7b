"""Viewers playing now: the viewer pages (each a random id) that sent a heartbeat within `timeout`. In
memory only, addresses as salted hashes; one address holds at most `per_client` ids, the table `limit`."""

from __future__ import annotations

import math
import os
import string
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

PER_CLIENT = 20  # ids one address may keep counted: a household, a small office behind one NAT
LIMIT = 50_000  # ids counted at once, whatever the addresses (bounds the memory: ~20 MB)
STALLED_WINDOW = 300.0  # /health's "stalled in the last 5 minutes"
STARTUP_EVERY = 60.0  # an address's start-up figure counts once in this many seconds
# Seconds a page's reports may hold more than the time between their arrivals: its first report also
# speaks for the time before its first beat, and a late report leaves its time to an early next one.
SLACK = 10.0
# A page's id: base64url, 16 to 64 characters (a set, not a regular expression: half the instructions).
_ID_CHARS = frozenset(string.ascii_letters + string.digits + "_-")


@dataclass(slots=True)
class _Viewer:
    seen: float  # monotonic time of its last beat
    p2p: bool
    client: int | None  # the keyed hash of its address, None when the address is unknown
    since: float  # monotonic time it was first counted
    reported: float = -math.inf  # monotonic time its last playback report was taken
    started: bool = False  # its start-up figure was taken (once per page)
    unused: float = SLACK  # seconds its reports may hold beyond the time since its last (at most SLACK)


class Recent:
    """Keys marked within the last `window` seconds, each once, at most `cap` of them."""

    __slots__ = ("window", "cap", "_marked")

    def __init__(self, window: float, cap: int) -> None:
        self.window, self.cap = window, cap
        self._marked: OrderedDict[object, float] = OrderedDict()

    def mark(self, key: object, now: float, again: bool = True) -> bool:
        """Whether `key` is marked at `now` (one marked already: anew, or with `again` False not at all)."""
        marked = self._marked
        self._expire(now)
        if key in marked:
            if not again:
                return False
            marked.move_to_end(key)
        elif len(marked) >= self.cap:
            return False
        marked[key] = now
        return True

    def count(self, now: float) -> int:
        self._expire(now)
        return len(self._marked)

    def discard(self, key: object) -> None:
        self._marked.pop(key, None)

    def _expire(self, now: float) -> None:
        marked = self._marked
        while marked and next(iter(marked.values())) <= now - self.window:
            marked.popitem(last=False)


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
        self._stalled = Recent(STALLED_WINDOW, limit)  # the pages that reported a stall (each counted)
        self._started = Recent(STARTUP_EVERY, limit)  # the clients whose start-up was taken
        # "other_site": a beat a browser says another site's page sent (http/watching.py).
        self.refused = {"per_client": 0, "limit": 0, "bad_id": 0, "other_site": 0}

    @property
    def watching(self) -> int:
        self._expire(self._clock())
        return len(self._viewers)

    @property
    def p2p(self) -> int:
        self._expire(self._clock())
        return self._p2p

    def beat(self, viewer_id: str, address: str | None, p2p: bool) -> bool:
        """A page playing now; False when it is not counted (a bad id, or past a cap)."""
        if not 16 <= len(viewer_id) <= 64 or not _ID_CHARS.issuperset(viewer_id):
            self.refused["bad_id"] += 1
            return False
        now = self._clock()
        self._expire(now)
        client = None if address is None else hash((self._salt, address))
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
        self._viewers[viewer_id] = _Viewer(now, p2p, client, now)
        if client is not None:
            self._per_client[client] = self._per_client.get(client, 0) + 1
        self._p2p += p2p
        return True

    def may_report(self, viewer_id: str, gap: float, startup: bool, needs: float) -> tuple[float, bool] | str:
        """A counted page's report, whose counts need `needs` seconds: "too_soon" within `gap` of its last,
        "out_of_bounds" past the time since plus what earlier ones left unused; else the seconds it speaks
        for, and whether its start-up counts (once per page, once per STARTUP_EVERY per address)."""
        viewer = self._viewers[viewer_id]
        now = viewer.seen
        # Conditionals, not the builtins max and min: each of those calls parses keyword arguments.
        elapsed = now - (viewer.reported if viewer.reported > viewer.since else viewer.since)
        if elapsed < gap:
            return "too_soon"
        has = viewer.unused + elapsed
        if needs > has:
            return "out_of_bounds"
        viewer.reported = now
        unused = has - needs
        viewer.unused = unused if unused < SLACK else SLACK
        take_startup = startup and not viewer.started and (
            viewer.client is None or self._started.mark(viewer.client, now, again=False))
        if take_startup:
            viewer.started = True
        return elapsed, take_startup

    def address(self, viewer_id: str) -> int | str:
        """The counted page's client hash, or its own id when its address is unknown."""
        client = self._viewers[viewer_id].client
        return viewer_id if client is None else client

    def now(self) -> float:
        return self._clock()

    def stalled(self, viewer_id: str) -> None:
        self._stalled.mark(viewer_id, self._viewers[viewer_id].seen)

    @property
    def stalled_recently(self) -> int:
        now = self._clock()
        self._expire(now)
        return self._stalled.count(now)

    def leave(self, viewer_id: str) -> None:
        if viewer_id in self._viewers:
            self._forget(viewer_id)

    def __len__(self) -> int:
        return len(self._viewers)

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
        self._stalled.discard(viewer_id)
        self._p2p -= viewer.p2p
        if viewer.client is not None:
            left = self._per_client[viewer.client] - 1
            if left:
                self._per_client[viewer.client] = left
            else:
                del self._per_client[viewer.client]
