"""StoreThread: the bucket's requests on a loop and thread of their own (moto as a real S3 server)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest
from botocore.exceptions import ClientError

from broadcaster.bucket.store import BucketAccess, S3Store, StoreError
from broadcaster.bucket.store_thread import StoreThread
from tests.support.waiting import until


class RecordingStore(S3Store):
    """Notes the thread each request runs in; put() of a key starting with "hold" waits forever."""

    def __init__(self, url: str, bucket: str = "live") -> None:
        super().__init__(BucketAccess(url, "us-east-1", "k", "s", bucket))
        self.threads: set[str] = set()
        self.cancelled = threading.Event()

    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
        self.threads.add(threading.current_thread().name)
        if key.startswith("hold"):
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        await super().put(key, body, content_type=content_type, cache_control=cache_control)

    def stored(self, key: str, loop: asyncio.AbstractEventLoop) -> bool:
        """Asked on the store's own loop, from any thread, blocking: is `key` in the bucket?"""
        async def head() -> bool:
            try:
                await self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError:  # 404: anything else fails the test
                return False
            return True

        return asyncio.run_coroutine_threadsafe(head(), loop).result(5)


@pytest.fixture
async def stores(moto_url: str) -> AsyncIterator[tuple[StoreThread, RecordingStore]]:
    inner = RecordingStore(moto_url)
    store = StoreThread(inner)
    await store.start()
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_bucket(inner), store._loop))  # type: ignore[arg-type]
    yield store, inner
    await store.close()


async def _bucket(inner: S3Store) -> None:
    buckets = await inner.client.list_buckets()
    if not any(b["Name"] == "live" for b in buckets["Buckets"]):
        await inner.client.create_bucket(Bucket="live")


async def test_requests_run_in_the_store_thread(stores: tuple[StoreThread, RecordingStore]) -> None:
    store, inner = stores
    await store.probe()
    await store.put("a.ts", b"x" * 1000, content_type="video/mp2t", cache_control="public, max-age=60")
    await store.put("b.ts", b"y", content_type="video/mp2t", cache_control="public, max-age=60")
    assert inner.threads == {"bucket-io"}
    assert store._loop is not None and inner.stored("a.ts", store._loop)
    assert await store.delete_many(["a.ts", "b.ts"]) == []
    await store.delete("a.ts")  # already gone: S3 says fine
    assert not inner.stored("a.ts", store._loop)


async def test_a_blocked_serving_loop_does_not_hold_a_request_up(stores: tuple[StoreThread, RecordingStore]) -> None:
    """The put is sent and done on the store's loop; only its result waits for this stuck one."""
    store, inner = stores
    assert store._loop is not None
    put = asyncio.ensure_future(store.put("stuck.ts", b"z" * 100_000, content_type="video/mp2t",
                                          cache_control="public, max-age=60"))
    await asyncio.sleep(0)  # submitted; from here on this loop is blocked until the object is there
    deadline = time.monotonic() + 10
    while not inner.stored("stuck.ts", store._loop):
        assert time.monotonic() < deadline, "the put did not complete while the serving loop was blocked"
    assert not put.done()  # its result is for this loop to pick up
    await asyncio.wait_for(put, 5)


async def test_errors_come_back_as_store_errors(moto_url: str) -> None:
    store = StoreThread(RecordingStore(moto_url, bucket="nope"))
    await store.start()
    try:
        with pytest.raises(StoreError) as err:
            await store.probe()
        assert err.value.setting == "AWS_BUCKET_NAME"
    finally:
        await store.close()


async def test_cancelling_a_call_cancels_the_request(stores: tuple[StoreThread, RecordingStore]) -> None:
    store, inner = stores
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(store.put("hold.ts", b"h", content_type="video/mp2t", cache_control="x"), 0.2)
    assert await asyncio.to_thread(inner.cancelled.wait, 5)


async def test_close_ends_the_thread_and_later_calls_fail_clearly(
        stores: tuple[StoreThread, RecordingStore]) -> None:
    store, _ = stores
    thread = store._thread
    assert thread is not None and thread.is_alive()
    await store.close()
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="not started"):
        await store.probe()
    await store.close()  # twice is fine


async def test_close_cancels_calls_still_running(stores: tuple[StoreThread, RecordingStore]) -> None:
    store, inner = stores
    held = asyncio.ensure_future(store.put("hold.ts", b"h", content_type="video/mp2t", cache_control="x"))
    await until(lambda: inner.threads, "a thread started on the store's loop", 5, every=0.01)
    await store.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(held, 5)
    assert inner.cancelled.is_set()


async def test_a_failed_start_leaves_no_thread(moto_url: str) -> None:
    class Failing(RecordingStore):
        async def start(self) -> None:
            raise StoreError("Boom")

    def io_threads() -> int:
        return sum(t.name == "bucket-io" for t in threading.enumerate())

    before = io_threads()
    store = StoreThread(Failing(moto_url))
    with pytest.raises(StoreError, match="Boom"):
        await store.start()
    assert store._thread is None and store._loop is None
    assert io_threads() == before
