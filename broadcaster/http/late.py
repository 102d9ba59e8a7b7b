"""What answering a late blocking request may cost, per client: a late `_HLS_msn` is answered at once in
full (6.2.5.2), but each number is a URL a cache passes to the origin. So a client gets a few per target
duration (a token bucket; unknown clients share one), then the small redirect to the plain URL."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

# Late answers a client may get at once, and per target duration (a player asks one playlist per one).
BURST = 4
PER_TARGET_DURATION = 2
# Clients the service cannot tell apart: one bucket for all, this many times larger.
UNKNOWN_SHARE = 16
# Clients remembered at once; the least recently seen is forgotten first (it comes back with a full bucket).
MAX_CLIENTS = 4096


class LateAnswers:
    """A token bucket per client address for answers to a late `_HLS_msn`."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_clients: int = MAX_CLIENTS) -> None:
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str | None, tuple[float, float]] = OrderedDict()  # client: (tokens, at)

    def take(self, client: str | None, target_duration: int) -> bool:
        """True: answer this one in full. False: over the client's budget, redirect it."""
        share = UNKNOWN_SHARE if client is None else 1
        burst = BURST * share
        now = self._clock()
        buckets = self._buckets
        tokens, at = buckets.pop(client, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * PER_TARGET_DURATION * share / max(target_duration, 1))
        took = tokens >= 1.0
        buckets[client] = (tokens - 1.0 if took else tokens, now)  # the most recently seen last
        if len(buckets) > self._max_clients:
            buckets.popitem(last=False)
        return took
