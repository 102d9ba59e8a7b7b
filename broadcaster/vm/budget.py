"""The VM's segment bytes as budgets (segments.py spends them): a token bucket of bytes in all
(ByteBudget), each client's share of it (ClientShares), and the two pools they make (VmBytes).

Viewers steered to the VM by the service's own evidence get `steered`: all of VM_SEGMENT_MBPS. While the
bucket serves, only a client whose own page reports failed fetches gets bytes, and a report is a claim
anyone can make: those clients take from `reported`, a quarter of the rate and burst, together. So a
crowd of forged reporters leaves the steered pool full for the first second of a real outage.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

BURST_SECONDS = 10.0  # a budget lets this much of its rate go at once (a CDN fills several variants)
# A client asked for bytes within this many seconds: it has a share (a steered player asks once a target
# duration per variant it plays; a CDN's data center when its cache misses).
ACTIVE_SECONDS = 10.0
# Clients with a share at once (about 220 bytes each): far past the few hundred that a share of
# VM_SEGMENT_MBPS can give a stream to; past it a new one waits for one to go quiet.
MAX_CLIENTS = 4096
# The part of VM_SEGMENT_MBPS (and of its burst, and of the answers in flight) that clients whose pages
# report failures take together while the bucket serves.
REPORTED_PART = 0.25


class ByteBudget:
    """A token bucket of bytes: `rate` a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self.clock = clock
        self._at = clock()

    def take(self, size: int) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if size > self._tokens:
            return False
        self._tokens -= size
        return True

    def give(self, size: int) -> None:
        """Put back what take() took for an answer that is not sent after all."""
        self._tokens = min(self.burst, self._tokens + size)

    def part(self, fraction: float) -> ByteBudget:
        """A budget of its own with `fraction` of this one's rate and burst, on the same clock."""
        return ByteBudget(self.rate * fraction, self.burst * fraction, self.clock)


@dataclass(slots=True)
class _Share:
    tokens: float
    at: float  # when its tokens were last counted
    seen: float  # its last request for bytes


class ClientShares:
    """Each client's share of the VM's segment bytes: `rate` (bytes a second) divided among the clients that
    asked within ACTIVE_SECONDS, a token bucket each with BURST_SECONDS of its share saved up at most (a
    new client starts with that much: a player steered to the VM fills its buffer). An answer larger than
    a whole burst goes once the bucket is full, leaving it in debt: a share smaller than one segment still
    gets segments, at its rate. `own` caps a client's rate lower (one stream's bitrate)."""

    def __init__(self, rate: float, *, burst_seconds: float = BURST_SECONDS,
                 active_for: float = ACTIVE_SECONDS, most: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst_seconds = burst_seconds
        self.active_for = active_for
        self.most = most
        self._clock = clock
        self._shares: OrderedDict[str, _Share] = OrderedDict()  # the least recently active first

    @property
    def active(self) -> int:
        self._expire(self._clock())
        return len(self._shares)

    def fair(self) -> float:
        """One client's rate now (bytes a second), counting one more when none is active."""
        return self.rate / max(1, self.active)

    def take(self, client: str, size: int, own: float | None = None) -> bool:
        now = self._clock()
        self._expire(now)
        shares = self._shares
        share = shares.get(client)
        if share is None:
            if len(shares) >= self.most:
                return False
            share = shares[client] = _Share(math.inf, now, now)
        else:
            shares.move_to_end(client)
        share.seen = now
        rate = self.rate / len(shares)
        if own is not None and own < rate:
            rate = own
        most = rate * self.burst_seconds
        share.tokens = min(most, share.tokens + (now - share.at) * rate)
        share.at = now
        if share.tokens < min(size, most):
            return False
        share.tokens -= size
        return True

    def give(self, client: str, size: int) -> None:
        share = self._shares.get(client)
        if share is not None:
            share.tokens += size

    def _expire(self, now: float) -> None:
        shares = self._shares
        while shares and now - next(iter(shares.values())).seen >= self.active_for:
            shares.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Pool:
    """Bytes in all (`budget`) and each client's share of them (`shares`, of the same rate), and how many
    answers may be sent from it at once (`most_sending`)."""

    budget: ByteBudget
    shares: ClientShares
    most_sending: int

    @classmethod
    def of(cls, budget: ByteBudget, most_sending: int) -> Pool:
        burst = budget.burst / budget.rate if budget.rate else BURST_SECONDS
        return cls(budget, ClientShares(budget.rate, burst_seconds=burst, clock=budget.clock), most_sending)


# Answers being read or sent at once (each holds its segment in memory, up to a few MB): a crowd without a
# CDN in front is bounded here.
MAX_SENDING = 32


class VmBytes:
    """The VM's two pools (the module docstring): `steered`, all of `budget` (VM_SEGMENT_MBPS), and
    `reported`, REPORTED_PART of its rate, burst and answers in flight, for clients served on their own
    page's report while the bucket serves. `shares`: the steered pool's, when a test gives its own."""

    def __init__(self, budget: ByteBudget, most_sending: int = MAX_SENDING, shares: ClientShares | None = None) -> None:
        self.steered = Pool.of(budget, most_sending) if shares is None else Pool(budget, shares, most_sending)
        self.reported = Pool.of(budget.part(REPORTED_PART), max(1, int(most_sending * REPORTED_PART)))

    def pool(self, reported: bool) -> Pool:
        return self.reported if reported else self.steered
