"""How many failed access attempts a client may make: a token bucket per client (clients.client_address),
so a wrong pass-phrase costs and guessing one is slow.

A client whose bucket is empty is refused everything (429) until it refills, the right pass-phrase too:
otherwise guessing would simply go on. Unknown clients (behind the tunnel without
TRUST_CF_CONNECTING_IP, every viewer is one) share one larger bucket. At most MOST_CLIENTS are
remembered, the least recently seen forgotten first (a forgotten client starts full, as a new one).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

PER_MINUTE = 6  # failed attempts a client may make a minute, and at once
UNKNOWN_PER_MINUTE = 60  # ... for all the clients the service cannot tell apart
MOST_CLIENTS = 10_000


class Attempts:
    def __init__(self, per_minute: int = PER_MINUTE, unknown_per_minute: int = UNKNOWN_PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sizes = (float(per_minute), float(unknown_per_minute))
        self._clock = clock
        self._buckets: OrderedDict[str | None, tuple[float, float]] = OrderedDict()  # client -> (left, when)

    def _left(self, client: str | None) -> float:
        size = self._sizes[client is None]
        left, when = self._buckets.get(client, (size, 0.0))
        now = self._clock()
        return min(size, left + (now - when) * size / 60.0) if client in self._buckets else size

    def allowed(self, client: str | None) -> bool:
        """Whether this client may try now (at least one attempt left)."""
        return self._left(client) >= 1.0

    def failed(self, client: str | None) -> None:
        """One attempt failed: it costs one."""
        left = self._left(client) - 1.0
        self._buckets[client] = (left, self._clock())
        self._buckets.move_to_end(client)
        if len(self._buckets) > MOST_CLIENTS:
            self._buckets.popitem(last=False)
