"""The VM's segment bytes as budgets (vm/budget.py) on a fake clock: a token bucket, each client's share,
and two pools (steered viewers all of VM_SEGMENT_MBPS, reporters a quarter together), neither spending
the other's."""

from __future__ import annotations

from broadcaster.vm.budget import REPORTED_PART, ByteBudget, ClientShares, VmBytes
from tests.support.fakes import Clock


def test_each_client_has_a_share_of_the_rate_among_those_asking() -> None:
    clock = Clock()
    shares = ClientShares(1000.0, burst_seconds=10, active_for=10, most=3, clock=clock)
    assert shares.take("a", 10_000) and not shares.take("a", 1)  # alone: the whole rate, ten seconds of it
    assert shares.take("b", 5_000) and not shares.take("b", 1)  # two: half each
    assert shares.fair() == 500
    clock.t += 1
    assert shares.take("a", 500) and not shares.take("a", 1)
    assert shares.take("c", 1) and not shares.take("d", 1)  # three at most
    clock.t += 10  # a, b and c quiet for ten seconds: gone
    assert shares.active == 0 and shares.take("d", 10_000)
    # A client capped lower (one stream's bitrate, while the bucket serves): its own rate.
    assert shares.take("e", 500, own=50) and not shares.take("e", 1, own=50)
    clock.t += 1
    assert shares.take("e", 50, own=50) and not shares.take("e", 1, own=50)
    # An answer larger than a whole burst goes when the share is full, and leaves it in debt.
    small = ClientShares(100.0, burst_seconds=1, clock=clock)
    assert small.take("f", 1_000) and not small.take("f", 1)
    clock.t += 9
    assert not small.take("f", 1)
    clock.t += 0.5
    assert small.take("f", 1)


def test_a_byte_budget_gives_its_rate_and_at_most_its_burst() -> None:
    clock = Clock()
    budget = ByteBudget(100.0, 1000.0, clock)
    assert budget.take(1000) and not budget.take(1)  # the burst at once, then nothing
    clock.t += 2
    assert budget.take(200) and not budget.take(1)  # its rate since
    clock.t += 100
    assert not budget.take(1001) and budget.take(1000)  # never more than the burst saved up
    budget.give(400)
    assert budget.take(400) and not budget.take(1)


def test_reporters_spend_a_quarter_of_the_bytes_together_and_never_the_steered_pool() -> None:
    """Reporters (any number of addresses) share a quarter of rate and burst; the steered pool stays whole."""
    clock = Clock()
    rate = 1_000_000.0
    pools = VmBytes(ByteBudget(rate, 10 * rate, clock), most_sending=32)
    reported = pools.pool(reported=True)
    assert (reported.budget.rate, reported.budget.burst) == (rate / 4, 10 * rate / 4)
    assert reported.most_sending == 8
    assert REPORTED_PART == 0.25
    chunk = 10_000
    # 60 addresses asking as fast as they can for 20 s, each capped at one stream (its `own` rate) far
    # above what a quarter divided among them gives it: together a quarter and its burst, no more.
    taken = 0
    for _ in range(200):  # 20 s by tenths
        for n in range(60):
            address = f"198.51.100.{n}"
            while reported.shares.take(address, chunk, own=rate):
                if not reported.budget.take(chunk):
                    reported.shares.give(address, chunk)
                    break
                taken += chunk
        clock.t += 0.1
    assert taken <= rate / 4 * (20 + 10) + chunk, taken
    assert taken >= rate / 4 * 20 * 0.9, taken  # and they do get their quarter
    # The bucket fails now: the steered pool is untouched, its burst there for the first second.
    steered = pools.pool(reported=False)
    assert steered.shares.active == 0
    assert steered.budget.take(int(10 * rate)) and not steered.budget.take(1)


def test_a_test_may_give_the_steered_pool_its_own_shares() -> None:
    clock = Clock()
    shares = ClientShares(50.0, clock=clock)
    pools = VmBytes(ByteBudget(100.0, 1000.0, clock), most_sending=3, shares=shares)
    assert pools.steered.shares is shares and pools.reported.shares is not shares
    assert pools.reported.most_sending == 1  # at least one answer in flight, however small the bound
