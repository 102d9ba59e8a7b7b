"""When a copy the VM holds may be listed (publish/uploads.py's _Ready): it waits in the uploads' set of held
copies only until its `ready` is settled, by whichever comes first (a pathway listing what the VM holds, its
upload landing, every upload failing), so the set never keeps a copy that was listed (a long stream's leak)."""

from __future__ import annotations

import asyncio
import gc

from broadcaster.bucket.uploader import Kept, SegmentLost, Uploaded
from broadcaster.publish.uploads import _first_read_failed, _first_read_told, _Ready

HELD = Kept(None, b"h" * 32, True)


async def _readiness(lists_held: bool) -> tuple[_Ready, set[_Ready], asyncio.Future[Uploaded]]:
    loop = asyncio.get_running_loop()
    waiting: set[_Ready] = set()
    readiness = _Ready(loop.create_future(), lambda: lists_held, waiting)
    task: asyncio.Future[Uploaded] = loop.create_future()
    readiness.track(task)
    return readiness, waiting, task


async def test_a_held_copy_waits_while_no_pathway_lists_what_the_vm_holds_and_leaves_once_uploaded() -> None:
    readiness, waiting, task = await _readiness(lists_held=False)
    readiness.kept(HELD)
    assert waiting == {readiness} and not readiness.ready.done()
    task.set_result(Uploaded(0.01, None))
    await asyncio.sleep(0)  # the task's done-callbacks
    assert readiness.ready.result() == HELD.sha256
    assert waiting == set()


async def test_a_held_copy_released_is_ready_at_once_and_leaves() -> None:
    readiness, waiting, task = await _readiness(lists_held=False)
    readiness.kept(HELD)
    readiness.release()
    assert readiness.ready.result() == HELD.sha256 and waiting == set()
    task.set_result(Uploaded(0.01, None))
    await asyncio.sleep(0)
    assert readiness.ready.result() == HELD.sha256 and waiting == set()


async def test_a_held_copy_whose_every_upload_failed_leaves_with_the_error() -> None:
    readiness, waiting, task = await _readiness(lists_held=False)
    readiness.kept(HELD)
    task.set_exception(RuntimeError("refused"))
    await asyncio.sleep(0)
    assert isinstance(readiness.ready.exception(), RuntimeError) and waiting == set()


async def test_a_copy_held_while_a_pathway_lists_what_the_vm_holds_is_ready_and_never_waits() -> None:
    readiness, waiting, _task = await _readiness(lists_held=True)
    readiness.kept(HELD)
    assert readiness.ready.result() == HELD.sha256 and waiting == set()


async def test_the_first_read_is_told_at_once_and_its_future_takes_no_turn_of_the_loop() -> None:
    readiness, waiting, _task = await _readiness(lists_held=False)
    loop = asyncio.get_running_loop()
    kept: asyncio.Future[Kept] = loop.create_future()
    _first_read_told(kept, readiness, HELD)
    # Told in the call: no done-callback on the future, so nothing is left for a turn of the loop of its own
    # (a turn a segment was most of what a calm steering service added).
    assert waiting == {readiness} and kept.result() == HELD
    assert not loop._ready  # type: ignore[attr-defined]  # asyncio's queue of callbacks to run
    # A first read that never came: the future holds the upload's error, marked retrieved (the upload's
    # outcome says it), and the readiness is not told.
    readiness2, waiting2, _task2 = await _readiness(lists_held=False)
    failed: asyncio.Future[Kept] = loop.create_future()
    upload: asyncio.Future[Uploaded] = loop.create_future()
    upload.set_exception(SegmentLost("deleted", "gone before its first read"))
    _first_read_failed(failed, upload)
    assert failed.done() and not failed.cancelled() and waiting2 == set()  # its error not read here
    told: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: told.append(context))
    try:
        del failed, upload, readiness2, waiting2, _task2
        gc.collect()
        assert not [c for c in told if "never retrieved" in str(c.get("message"))], told
    finally:
        loop.set_exception_handler(None)


async def test_an_upload_lost_for_good_is_no_never_retrieved_error_when_nobody_reads_its_readiness() -> None:
    loop = asyncio.get_running_loop()
    told: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: told.append(context))
    try:
        readiness, _waiting, task = await _readiness(lists_held=False)
        task.set_exception(SegmentLost("deleted", "gone before it was uploaded"))
        task.exception()
        await asyncio.sleep(0)
        assert isinstance(readiness.ready.exception(), SegmentLost)  # what the lister reads
        readiness2, _w, task2 = await _readiness(lists_held=False)
        task2.set_exception(SegmentLost("deleted", "gone, and the publisher closed before its slot"))
        task2.exception()
        await asyncio.sleep(0)
        del readiness2, _w, task2
        gc.collect()
        assert not [c for c in told if "never retrieved" in str(c.get("message"))], told
    finally:
        loop.set_exception_handler(None)
