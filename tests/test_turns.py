"""RetryTurns through the real Uploader: while the bucket fails, one upload retries per turn of its backoff
however many wait; all go once it works; a cancelled backlog leaves no timer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broadcaster.vm.held import Held
from broadcaster.bucket.uploader import Backoff, SegmentLost, Uploader
from broadcaster.metrics import Metrics
from tests.support.fakes import FakeStore
from tests.support.waiting import until

UPLOADS = 50


class SteppedSleep:
    """The bucket's backoff, stepped by the test: each sleep ends when the test gives it a step."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._steps: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await self._steps.get()

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self._steps.put_nowait(None)


def _uploads(tmp_path: Path, up: Uploader) -> list[asyncio.Future[object]]:
    tasks: list[asyncio.Future[object]] = []
    for n in range(UPLOADS):
        path = tmp_path / f"stream-a-{n}.ts"
        path.write_bytes(b"\x47" * 1880)
        tasks.append(asyncio.ensure_future(up.upload_file(path, f"live/0/{path.name}", "0")))
    return tasks


def stepped(fake: FakeStore, concurrency: int = 8,
            **uploader: Any) -> tuple[FakeStore, Uploader, SteppedSleep]:
    """An Uploader over `fake` whose backoff sleeps are stepped by the test (no jitter)."""
    sleep = SteppedSleep()
    backoff = Backoff(sleep=sleep, rng=lambda: 1.0)
    return fake, Uploader(fake, Metrics(), concurrency=concurrency, attempt_timeout=5, backoff=backoff,
                          **uploader), sleep


async def cancel_all(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_failing_bucket_is_retried_once_per_turn_however_many_uploads_wait(tmp_path: Path) -> None:
    fake, up, sleep = stepped(FakeStore(down=True))
    tasks = _uploads(tmp_path, up)
    # Each upload's first attempt fails, and each then waits for a turn: no timer of its own.
    await until(lambda: len(up._turns) == UPLOADS, "every upload waiting for its turn")
    assert len(fake.attempts) == UPLOADS and sleep.delays == [0.25]  # one timer, the bucket's
    sleep.step(5)
    # Five turns: five attempts, one upload each, then the sixth turn's timer; every upload waits again.
    await until(lambda: len(sleep.delays) == 6 and len(up._turns) == UPLOADS, "five turns taken")
    assert len(fake.attempts) == UPLOADS + 5, len(fake.attempts)
    assert len(set(fake.attempts[UPLOADS:])) == 5  # five uploads, each its turn (the longest waiting first)
    assert sleep.delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]  # the bucket's backoff, not one per upload
    # The bucket works again (an upload landed, or the bucket's own check): every upload goes at once.
    fake.down = False
    up.record(True)
    async with asyncio.timeout(10):
        await asyncio.gather(*tasks)
    assert sorted(fake.keys()) == sorted(f"live/0/stream-a-{n}.ts" for n in range(UPLOADS))
    assert up.waiting() == (0, None) and up._turns._giver is None
    assert up.uploads_failed == UPLOADS + 5


async def test_the_next_outage_backs_off_from_its_first_delay(tmp_path: Path) -> None:
    fake, up, sleep = stepped(FakeStore(fail={"k": 3}), concurrency=1)
    path = tmp_path / "stream-a-1.ts"
    path.write_bytes(b"\x47" * 1880)
    first = asyncio.ensure_future(up.upload_file(path, "k", "0"))
    sleep.step(3)
    await first
    assert sleep.delays == [0.25, 0.5, 1.0]
    fake.fail["k"] = 1
    second = asyncio.ensure_future(up.upload_file(path, "k", "0"))
    sleep.step()
    await second
    assert sleep.delays == [0.25, 0.5, 1.0, 0.25]


async def test_uploads_with_nothing_left_to_send_go_at_the_next_turn_and_a_cancelled_rest_leaves_no_timer(
        tmp_path: Path) -> None:
    """Uploads whose files Owncast deleted end, lost, at the next turn without an attempt each: what waits
    is bounded by what is on disk, not by the outage's length. The rest, cancelled, leave no timer."""
    fake, up, sleep = stepped(FakeStore(down=True))
    tasks = _uploads(tmp_path, up)
    await until(lambda: len(up._turns) == UPLOADS, "every upload waiting for its turn")
    for n in range(0, UPLOADS, 2):
        (tmp_path / f"stream-a-{n}.ts").unlink()
    sleep.step()  # one turn: one attempt, and the sweep
    await until(lambda: sum(t.done() for t in tasks) >= UPLOADS // 2, "the uploads with no file left gone")
    gone = [t for t in tasks if t.done()]
    assert len(gone) == UPLOADS // 2 and all(isinstance(t.exception(), SegmentLost) for t in gone)
    assert {t.exception().reason for t in gone} == {"deleted"}  # type: ignore[union-attr]
    assert len(fake.attempts) <= UPLOADS + 1  # their first attempts and the turn's: none for the lost
    assert up.waiting()[0] == UPLOADS // 2
    giver = up._turns._giver
    assert giver is not None
    await cancel_all(tasks)
    assert len(up._turns) == 0 and up._turns._giver is None
    await asyncio.gather(giver, return_exceptions=True)
    assert giver.cancelled()


async def test_held_copies_dropped_release_their_uploads(tmp_path: Path) -> None:
    """A copy dropped for VM_COPIES_MB, Owncast's file deleted: the upload ends at the next turn."""
    hls = tmp_path / "hls"
    (hls / "0").mkdir(parents=True)
    (tmp_path / "state").mkdir()
    held = Held(hls, tmp_path / "state", max_bytes=4 * 1880, keep_for=600)
    held.open()
    fake, up, sleep = stepped(FakeStore(down=True), holder=held)
    tasks = []
    for n in range(8):
        path = hls / "0" / f"stream-a-{n}.ts"
        path.write_bytes(bytes([n]) * 1880)
        tasks.append(asyncio.ensure_future(up.upload_file(path, f"live/0/{path.name}", "0", root=hls)))
    await until(lambda: len(up._turns) == 8, "every upload waiting for its turn")
    assert held.copies == 4  # the cap: the four newest kept, the oldest four dropped
    for path in (hls / "0").iterdir():
        path.unlink()  # Owncast's cleanup
    sleep.step()
    await until(lambda: sum(t.done() for t in tasks) >= 4, "the uploads whose copy was dropped gone")
    lost = [t for t in tasks if t.done()]
    assert [t.exception().reason for t in lost] == ["copy_dropped"] * 4  # type: ignore[union-attr]
    assert len(up._turns) == 4
    await cancel_all(tasks)
    held.close()
