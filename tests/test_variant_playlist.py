"""VariantPlaylist across a new target with the VM's pathway ahead (content steering): the bucket's
playlist shows the former playlist as far as the VM's pathway showed it before any version of the new
one. Driven by hand, as the lister and the Release drive it: list, render, tell what was shown."""

from __future__ import annotations

import asyncio

from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish.variant_playlist import VariantPlaylist

T0 = 1_795_000_000.0


def seg(i: int, duration: float = 1.0) -> ListedSegment:
    key = f"live/0/stream-a-{i}.ts"
    return ListedSegment(f"https://cdn.example/{key}", duration, T0 + i, key=key)


def names(rendered: Rendered | None) -> list[str]:
    assert rendered is not None
    return [line.rsplit("/", 1)[1] for line in rendered.body.decode().splitlines() if line.startswith("https://")]


def target(rendered: Rendered | None) -> int:
    assert rendered is not None
    line = next(x for x in rendered.body.decode().splitlines() if x.startswith("#EXT-X-TARGETDURATION:"))
    return int(line.split(":")[1])


def show(p: VariantPlaylist) -> tuple[Rendered | None, Rendered | None, bool]:
    """One push and one show, as the lister and the Release do: (the VM's, the bucket's, caught up)."""
    vm, bucket = p.visible(), p.bucket_visible(now=0.0)
    assert vm is not None
    if bucket is None:
        p.shown_ahead(vm)
        return vm, bucket, False
    return vm, bucket, p.shown(vm, bucket)


async def test_a_segment_landed_but_not_yet_shown_in_the_bucket_is_shown_there_before_the_new_target() -> None:
    """The race the publisher test cannot time: the upload of what the VM's pathway showed landed, but
    the bucket's version listing it was not shown yet (the Release saves first) when the target rose."""
    loop = asyncio.get_running_loop()
    p = VariantPlaylist(0, WindowOptions(10), lambda _removed: None)
    p.open(1, True, 0.0)
    for i in range(2):
        p.list(seg(i), 0, float(i), p.next_sequence, T0 + i)
    show(p)
    upload: asyncio.Future[None] = loop.create_future()
    p.list(seg(2), 0, 2.0, p.next_sequence, T0 + 2, upload=upload)
    vm, bucket, _ = show(p)
    assert names(vm)[-1] == "stream-a-2.ts" and names(bucket)[-1] == "stream-a-1.ts"
    upload.set_result(None)
    assert names(p.bucket_visible(now=0.0))[-1] == "stream-a-2.ts"  # pushed, not shown: a save is on its way
    assert p.retarget(3, 3.0, new_timeline=True) == []
    assert p.owes_former
    p.list(seg(3, 3.0), 0, 3.0, p.next_sequence, T0 + 3)
    vm, bucket, due = show(p)
    assert names(vm) == ["stream-a-3.ts"] and target(vm) == 3
    assert names(bucket)[-1] == "stream-a-2.ts" and target(bucket) == 1
    assert due and p.bucket_retargets  # the bucket still shows the former target
    vm, bucket, due = show(p)
    assert not p.owes_former and not due
    assert names(bucket) == ["stream-a-3.ts"] and target(bucket) == 3


async def test_nothing_is_owed_when_the_bucket_showed_as_far_as_the_vm() -> None:
    loop = asyncio.get_running_loop()
    p = VariantPlaylist(0, WindowOptions(10), lambda _removed: None)
    p.open(1, True, 0.0)
    upload: asyncio.Future[None] = loop.create_future()
    p.list(seg(0), 0, 0.0, p.next_sequence, T0, upload=upload)
    upload.set_result(None)
    show(p)
    p.retarget(3, 1.0, new_timeline=True)
    assert not p.owes_former
    p.list(seg(1, 3.0), 0, 1.0, p.next_sequence, T0 + 1)
    _vm, bucket, due = show(p)
    assert names(bucket) == ["stream-a-1.ts"] and not due
