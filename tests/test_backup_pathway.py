"""A second bucket as a pathway, at its seams: its signals read as the first bucket's (one Bucket class,
one uploader) and the policy's order (a healthy second bucket before the VM)."""

from __future__ import annotations

import asyncio

import pytest

from broadcaster.bucket.uploader import Backoff, Uploader
from broadcaster.metrics import Metrics
from broadcaster.steering.policy import BucketSignals, SteeringPolicy
from tests.support.fakes import Clock, FakeStore
from tests.support.policy_world import PolicyWorld
from tests.support.waiting import until

WAIT = 5.0  # seconds any one condition may take


async def test_the_second_buckets_signals_are_read_as_the_first_buckets() -> None:
    """A slow upload there that succeeds is no outage before SLOW_TARGETS target durations; one it refused
    is failing at once, and says why (with a failed probe: down)."""
    clock = Clock()
    store = FakeStore(refusal="SlowDown")  # a second bucket
    uploader = Uploader(store, Metrics(), concurrency=4, attempt_timeout=1.0,
                        backoff=Backoff(base=0.01, cap=0.05, clock=clock), pathway="backup")
    # As bucket/bucket.py reads every bucket, the first one included.
    signals = BucketSignals.of_uploads(lambda: uploader.waiting()[1] or 0.0,
                                       lambda: (uploader.storage_ok, uploader.last_error))
    first_behind = [0.0]
    policy = SteeringPolicy(("bucket", "vm", "backup"), {"bucket": BucketSignals(behind=lambda: first_behind[0]),
                                                         "backup": signals}, lambda: 1, interval=1.0, clock=clock)
    await uploader.upload_bytes("live/0/seg0.ts", b"bytes 0", content_type="video/mp2t", cache_control="x")
    assert signals.failing() is False and signals.refused() is None
    policy.evaluate()
    assert policy.priority == ("bucket", "backup", "vm")
    store.down = True
    put = asyncio.ensure_future(uploader.upload_bytes("live/0/seg1.ts", b"bytes 1", content_type="video/mp2t",
                                                      cache_control="x"))
    try:
        await until(lambda: uploader.uploads_failed >= 1, "a refused attempt", WAIT, every=0.01)
        assert signals.failing() is True and signals.refused() == "SlowDown"
        policy.probed("backup", False, "HTTP 503")
        first_behind[0] = 10.0  # the first bucket fails too: /health tells why of both
        policy.evaluate()
        assert policy.priority == ("vm", "bucket", "backup")
        assert (policy.health_reason() or "").endswith(
            "; the backup pathway: uploads to it are refused (SlowDown) and its public URL does not answer "
            "the service (HTTP 503)"), policy.health_reason()
    finally:
        put.cancel()


@pytest.mark.parametrize("pathways", [("bucket", "vm", "backup"), ("bucket", "backup", "vm")])
def test_named_before_or_after_the_vm_a_healthy_second_bucket_comes_first(pathways: tuple[str, ...]) -> None:
    """PATHWAYS=bucket,vm,backup as bucket,backup,vm: when the first bucket fails the healthy second comes
    before the VM (which sends no segment bytes then); when it fails too, the VM; back in that order."""
    world = PolicyWorld(pathways)
    policy, run = world.policy, world.run
    run(2)
    assert policy.priority == ("bucket", "backup", "vm")
    world.behind = 10
    run(0.5)
    assert policy.priority == ("backup", "vm", "bucket") and policy.reason == "uploads"
    reason = policy.health_reason()
    assert reason is not None and reason.startswith("players steered to the backup pathway")
    world.others_behind["backup"] = 10
    run(0.5)
    assert policy.priority == ("vm", "bucket", "backup")
    reason = policy.health_reason()
    assert reason is not None and "the backup pathway: uploads to it have waited 10s" in reason
    assert policy.switches == {("backup", "uploads"): 1, ("vm", "uploads"): 1}
    # The second bucket caught up: back before the VM at the next evaluation.
    world.others_behind["backup"] = 0.0
    run(0.5)
    assert policy.priority == ("backup", "vm", "bucket")
