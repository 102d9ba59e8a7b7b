"""A misbehaving S3 endpoint (moto behind the FaultProxy): an endless 500 body is not read whole, and
invented status codes invent no metric label values."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

from broadcaster.metrics import UPLOAD_FAILURE_REASONS, Metrics
from broadcaster.bucket.store import BucketAccess, S3Store, StoreError
from broadcaster.bucket.uploader import Backoff, Uploader
from tests.support.fault_proxy import FaultProxy
from tests.support.waiting import until

# Kernel socket buffers on loopback hold a few MB between the proxy and the client; reading an
# endless body whole would take hundreds of MB within the attempt's timeout.
SENT_BOUND = 16 * 1024 * 1024


@pytest.fixture
async def proxy(moto_url: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(moto_url, endless_limit=128 * 1024 * 1024) as p:
        yield p


@pytest.fixture
async def store(proxy: FaultProxy) -> AsyncIterator[S3Store]:
    s = S3Store(BucketAccess(proxy.url, "us-east-1", "k", "s", "bounds"), read_timeout=5)
    await s.start()
    await s.client.create_bucket(Bucket="bounds")
    yield s
    await s.close()


@pytest.mark.parametrize("operation", ["put", "probe", "delete_many"])
async def test_an_endless_error_body_fails_the_attempt_at_once_with_a_clear_reason(
        proxy: FaultProxy, store: S3Store, operation: str) -> None:
    await proxy.set_mode("endless_500")
    call: Coroutine[Any, Any, object]
    if operation == "put":
        call = store.put("k", b"x" * 1000, content_type="video/mp2t", cache_control="no-cache")
    elif operation == "probe":
        call = store.probe()
    else:
        call = store.delete_many(["a", "b"])
    with pytest.raises(StoreError) as raised:
        async with asyncio.timeout(3):  # the uploader's per-attempt timeout, in effect
            await call
    err = raised.value
    assert err.reason == "ResponseTooLarge", err
    assert "500" in str(err) and "bytes" in str(err)
    seen = proxy.seen("endless_500")
    assert len(seen) == 1
    # the proxy notices the client hung up
    await until(lambda: seen[0].ended is not None, "the upload ended", 5, every=0.01)
    assert seen[0].outcome == "client_gave_up", seen[0]
    assert seen[0].sent < SENT_BOUND, f"the client let the proxy send {seen[0].sent} bytes"
    print(f"\n[{operation}] {err}; the proxy sent {seen[0].sent} bytes before the client hung up")
    # The store still works afterwards (the connection that carried the endless body was dropped).
    await proxy.pass_through()
    await store.put("k", b"x" * 1000, content_type="video/mp2t", cache_control="no-cache")
    await store.probe()


async def test_invented_status_codes_are_counted_under_known_labels(
        tmp_path: Path, proxy: FaultProxy, store: S3Store) -> None:
    metrics = Metrics()
    up = Uploader(store, metrics, concurrency=4, attempt_timeout=3, backoff=Backoff(base=0.0, cap=0.0))
    path = tmp_path / "stream-a-1.ts"
    path.write_bytes(b"\x47" * 1880)
    await proxy.set_mode("random_status")

    async def pass_after_60_failures() -> None:
        await until(lambda: up.uploads_failed >= 60, "60 failed uploads", 30, every=0.01)
        await proxy.pass_through()

    async with asyncio.timeout(30):
        await asyncio.gather(up.upload_file(path, "live/0/stream-a-1.ts", "0"), pass_after_60_failures())
    statuses = {r.status for r in proxy.seen("random_status")}
    assert len(statuses) > 20  # the endpoint really did invent many codes
    labels = {
        s.labels["reason"]: s.value
        for family in metrics.registry.collect() if family.name == "hls_broadcaster_upload_failures"
        for s in family.samples if s.name.endswith("_total")
    }
    assert set(labels) <= UPLOAD_FAILURE_REASONS | {"other"}, sorted(labels)
    assert labels.get("other", 0) > 0
    assert sum(labels.values()) == up.uploads_failed
