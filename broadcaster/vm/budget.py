"""The VM's segment bytes as budgets: a token bucket in all (ByteBudget), each client's share (ClientShares),
and two pools (VmBytes): steered viewers get all of VM_SEGMENT_MBPS; clients on their own page's report (a
claim anyone can make) a quarter together, so forged reporters leave the steered pool full."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

BURST_SECONDS = 10.0  # a budget lets this much of its rate go at once (a CDN fills several variants)
ACTIVE_SECONDS = 10.0  # a client asked for bytes within this many seconds: it has a share
MAX_CLIENTS = 4096  # clients with a share at once (about 220 bytes each)
REPORTED_PART = 0.25  # of VM_SEGMENT_MBPS, its burst and its answers in flight: reporters' together


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
    """Each client's share of `rate` (bytes a second) among the clients active within ACTIVE_SECONDS: a token
    bucket each, BURST_SECONDS of its share at most (a new client starts full). An answer larger than a burst
    goes once the bucket is full, leaving it in debt. `own` caps a client's rate lower (one stream's)."""

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
        if (share := shares.get(client)) is None:
            if len(shares) >= self.most:
                return False
            share = shares[client] = _Share(math.inf, now, now)
        else:
            shares.move_to_end(client)
        share.seen = now
        rate = self.rate / len(shares) if own is None else min(own, self.rate / len(shares))
        most = rate * self.burst_seconds
        share.tokens = min(most, share.tokens + (now - share.at) * rate)
        share.at = now
        if share.tokens < min(size, most):
            return False
        share.tokens -= size
        return True

    def give(self, client: str, size: int) -> None:
        if (share := self._shares.get(client)) is not None:
            share.tokens += size

    def _expire(self, now: float) -> None:
        shares = self._shares
        while shares and now - next(iter(shares.values())).seen >= self.active_for:
            shares.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Pool:
    """Bytes in all, each client's share of them, and how many answers may be sent from it at once."""

    budget: ByteBudget
    shares: ClientShares
    most_sending: int

    @classmethod
    def of(cls, budget: ByteBudget, most_sending: int) -> Pool:
        burst = budget.burst / budget.rate if budget.rate else BURST_SECONDS
        return cls(budget, ClientShares(budget.rate, burst_seconds=burst, clock=budget.clock), most_sending)


MAX_SENDING = 32  # answers being read or sent at once (each holds its segment in memory)


class VmBytes:
    """The VM's two pools: `steered`, all of `budget` (`shares`: a test's), and `reported`, REPORTED_PART."""

    def __init__(self, budget: ByteBudget, most_sending: int = MAX_SENDING, shares: ClientShares | None = None) -> None:
        self.steered = Pool.of(budget, most_sending) if shares is None else Pool(budget, shares, most_sending)
        self.reported = Pool.of(budget.part(REPORTED_PART), max(1, int(most_sending * REPORTED_PART)))

    def pool(self, reported: bool) -> Pool:
        return self.reported if reported else self.steered
