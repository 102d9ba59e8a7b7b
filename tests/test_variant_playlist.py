"""VariantPlaylist (and Variants) on two pathways across a new target: a pathway behind the other lists the
former playlist as far as any pathway showed it before any version of the new one, every variant's at once.
Driven by hand, as the lister and the Release drive it."""

from __future__ import annotations

import asyncio

from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.pathway import VM, Pathway, VmUris
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish.pathways import FIRST, PathwayPlan
from broadcaster.publish.variant_playlist import VariantPlaylist
from broadcaster.publish.variants import Variants

T0 = 1_795_000_000.0
PLAN = PathwayPlan((FIRST, Pathway("vm", VM, "vm", VmUris())), redirects=lambda: False)


def seg(i: int, duration: float = 1.0, index: int = 0) -> ListedSegment:
    key = f"live/{index}/stream-a-{i}.ts"
    return ListedSegment(f"https://cdn.example/{key}", duration, T0 + i, key=key)


def names(rendered: Rendered | None) -> list[str]:
    assert rendered is not None
    return [line.rsplit("/", 1)[1] for line in rendered.body.decode().splitlines() if line and not line.startswith("#")]


def target(rendered: Rendered | None) -> int:
    assert rendered is not None
    line = next(x for x in rendered.body.decode().splitlines() if x.startswith("#EXT-X-TARGETDURATION:"))
    return int(line.split(":")[1])


def playlist() -> VariantPlaylist:
    p = VariantPlaylist(0, WindowOptions(10), lambda _removed: None, plan=PLAN)
    p.open(1, True, 0.0)
    return p


def show(p: VariantPlaylist, shown: dict[str, Rendered]) -> tuple[Rendered | None, Rendered | None, bool]:
    """One push and one show: (the VM's, the bucket's, a former playlist caught up)."""
    versions = p.versions(0.0)
    due = False
    for pid, version in versions.items():
        shown[pid] = version.rendered
        due = p.shown(pid, version) or due
    return shown.get("vm"), shown.get("bucket"), due


async def test_a_segment_landed_but_not_yet_shown_in_the_bucket_is_shown_there_before_the_new_target() -> None:
    """The race the publisher test cannot time: landed, not yet shown in the bucket, when the target rose."""
    p, shown = playlist(), dict[str, Rendered]()
    for i in range(2):
        p.list(seg(i), 0, float(i), p.next_sequence, T0 + i)
    show(p, shown)
    upload: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    p.list(seg(2), 0, 2.0, p.next_sequence, T0 + 2, landings={"bucket": upload})
    vm, bucket, _ = show(p, shown)
    assert names(vm)[-1] == "stream-a-2.ts" and names(bucket)[-1] == "stream-a-1.ts"
    upload.set_result(None)
    assert names(p.versions(0.0)["bucket"].rendered)[-1] == "stream-a-2.ts"  # pushed, not shown: a save is on its way
    assert p.behind() == {"bucket"}
    assert p.retarget(3, 3.0, new_timeline=True, keep_former=frozenset({"bucket"})) == []
    assert p.on_former == {"bucket"}
    p.list(seg(3, 3.0), 0, 3.0, p.next_sequence, T0 + 3)
    vm, bucket, due = show(p, shown)
    assert names(vm) == ["stream-a-3.ts"] and target(vm) == 3
    assert names(bucket)[-1] == "stream-a-2.ts" and target(bucket) == 1
    assert due  # the bucket showed its former playlist as far as it went: the new one is next
    p.leave_former("bucket")
    vm, bucket, due = show(p, shown)
    assert not p.on_former and not due
    assert names(bucket) == ["stream-a-3.ts"] and target(bucket) == 3


async def test_nothing_is_owed_when_the_bucket_showed_as_far_as_the_vm() -> None:
    p, shown = playlist(), dict[str, Rendered]()
    upload: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    p.list(seg(0), 0, 0.0, p.next_sequence, T0, landings={"bucket": upload})
    upload.set_result(None)
    show(p, shown)
    assert p.behind() == set()
    p.retarget(3, 1.0, new_timeline=True)
    assert not p.on_former
    p.list(seg(1, 3.0), 0, 1.0, p.next_sequence, T0 + 1)
    _vm, bucket, due = show(p, shown)
    assert names(bucket) == ["stream-a-1.ts"] and not due


class Shown:
    """Variants pushed and shown as the lister and the Release do: what each pathway shows now."""

    def __init__(self, variants: Variants) -> None:
        self.variants = variants
        self.vm: dict[int, Rendered] = {}
        self.bucket: dict[int, Rendered] = {}
        self.due = 0
        variants.caught_up = self._caught_up

    def _caught_up(self) -> None:
        self.due += 1

    def push(self) -> None:
        versions = self.variants.versions(0.0)
        self.vm.update({i: v.rendered for i, v in versions["vm"].items()})
        self.bucket.update({i: v.rendered for i, v in versions["bucket"].items()})
        self.variants.shown(versions)
        # 6.2.4: one target per pathway, also with a variant whose new playlist is empty.
        for view in (self.bucket, self.vm):
            targets = {target(r) for i, r in view.items() if not self.variants[i].withdrawn}
            assert len(targets) <= 1, f"a pathway's playlists show targets {targets} at once"


def two_variants(removed: list[str] | None = None, plan: PathwayPlan = PLAN) -> tuple[Variants, Shown]:
    """`removed`: the keys handed on to the cleaner, as they go."""
    gone = removed if removed is not None else []
    variants = Variants(WindowOptions(10), lambda left: gone.extend(r.segment.key or "" for r in left), plan)
    for index in (0, 1):
        variants.add(index, 0.0).playlist.open(1, True, 0.0)
    return variants, Shown(variants)


def shown_ahead_in_variant_1(variants: Variants, shown: Shown) -> asyncio.Future[None]:
    """Segment 0 on both pathways; variant 1's segment 1 on the VM's only: its upload (returned) waits."""
    list_in(variants, (0, 1), 0)
    shown.push()
    upload: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    list_in(variants, 0, 1)
    list_in(variants, 1, 1, upload=upload)
    shown.push()
    assert names(shown.bucket[1])[-1] == "stream-a-0.ts"
    return upload


def list_in(variants: Variants, index: int | tuple[int, ...], i: int, duration: float = 1.0,
            upload: asyncio.Future[None] | None = None) -> None:
    for n in index if isinstance(index, tuple) else (index,):
        p = variants[n].playlist
        p.list(seg(i, duration, n), 0, float(i), p.next_sequence, T0 + i,
               landings={"bucket": upload} if upload is not None else None)


async def test_a_former_playlist_is_shown_though_the_new_one_is_still_empty() -> None:
    """The others' new target waits for that variant's next segment on each pathway (6.2.4)."""
    variants, shown = two_variants()
    upload = shown_ahead_in_variant_1(variants, shown)
    variants.retarget(3, 2.0, new_timeline=True)
    list_in(variants, 0, 2, duration=3.0)  # variant 1's new playlist stays empty for now
    shown.push()
    assert target(shown.vm[0]) == 1 and target(shown.bucket[0]) == 1
    upload.set_result(None)
    shown.push()
    assert names(shown.bucket[1])[-1] == "stream-a-1.ts" and shown.due == 1
    shown.push()
    assert target(shown.vm[0]) == target(shown.bucket[0]) == 1
    list_in(variants, 1, 2, duration=3.0)
    shown.push()
    for view in (shown.vm, shown.bucket):
        assert names(view[0]) == ["stream-a-2.ts"] and target(view[0]) == target(view[1]) == 3


async def test_a_second_new_target_before_the_bucket_caught_up_never_shows_two_targets() -> None:
    """One former at a time: the bucket's playlists go from the first target to the last together."""
    loop = asyncio.get_running_loop()
    variants, shown = two_variants()
    list_in(variants, (0, 1), 0)
    shown.push()
    first: asyncio.Future[None] = loop.create_future()
    list_in(variants, 0, 1, upload=first)
    list_in(variants, 1, 1)
    shown.push()
    variants.retarget(3, 2.0, new_timeline=True)
    second = [loop.create_future() for _ in (0, 1)]
    list_in(variants, 0, 2, duration=3.0, upload=second[0])
    list_in(variants, 1, 2, duration=3.0, upload=second[1])
    shown.push()
    assert variants[0].playlist.on_former == {"bucket"}
    variants.retarget(6, 5.0, new_timeline=True)
    list_in(variants, (0, 1), 3, duration=5.0)
    shown.push()
    first.set_result(None)
    for upload in second:
        upload.set_result(None)
    for _ in range(3):
        shown.push()
    assert {target(r) for r in shown.bucket.values()} == {6}
    assert names(shown.bucket[0]) == names(shown.bucket[1]) == ["stream-a-3.ts"]


async def test_a_withdrawn_variant_shows_its_former_playlist_and_holds_no_other() -> None:
    """What left its window goes on to the cleaner."""
    removed: list[str] = []
    variants, shown = two_variants(removed)
    upload = shown_ahead_in_variant_1(variants, shown)
    variants[1].withdrawn = True
    variants.retarget(3, 2.0, new_timeline=True)
    landing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    list_in(variants, 0, 2, duration=3.0, upload=landing)  # variant 0's bucket waits for it meanwhile
    shown.push()
    upload.set_result(None)
    shown.push()
    assert names(shown.bucket[1])[-1] == "stream-a-1.ts"
    landing.set_result(None)
    shown.push()
    shown.push()
    assert target(shown.bucket[0]) == 3  # not held by variant 1
    assert not variants[1].playlist.on_former
    assert {"live/1/stream-a-0.ts", "live/1/stream-a-1.ts"} <= set(removed)


async def test_a_variant_ended_empty_by_a_raise_shows_its_end_with_the_others_new_target() -> None:
    """On each pathway with variant 0's new playlist, variant 0's bucket behind by an upload."""
    variants, shown = two_variants()
    list_in(variants, (0, 1), 0)
    shown.push()
    upload: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    list_in(variants, 0, 1, upload=upload)
    assert variants[1].playlist.end()
    shown.push()
    variants.retarget(3, 2.0, new_timeline=False)
    assert variants[1].playlist.ended and variants[1].playlist.segment_count == 0
    list_in(variants, 0, 2, duration=3.0)
    shown.push()
    for view in (shown.vm, shown.bucket):
        assert {target(r) for r in view.values()} == ({3} if view is shown.vm else {1})
    assert names(shown.bucket[0])[-1] == "stream-a-0.ts" and names(shown.vm[1]) == []
    upload.set_result(None)
    shown.push()
    assert names(shown.bucket[0])[-1] == "stream-a-1.ts" and target(shown.bucket[1]) == 1 and shown.due
    shown.push()
    for view in (shown.vm, shown.bucket):
        assert names(view[0]) == ["stream-a-2.ts"] and names(view[1]) == []
        assert target(view[0]) == target(view[1]) == 3 and view[1].ended and not view[0].ended


async def test_a_variant_back_in_the_stream_says_what_it_listed_and_never_showed() -> None:
    """On rejoin, what it listed and never showed is returned (the lister counts it lost)."""
    variants, _ = two_variants(plan=PathwayPlan(PLAN.pathways, redirects=lambda: True))
    for i in (0, 1):
        list_in(variants, (0, 1), i)
    variants.shown(variants.versions(0.0))
    list_in(variants, 0, 2)  # listed, its version never shown
    playlist = variants[0].playlist
    unseen = playlist.rejoin(10, 1, 3.0)
    assert [s.key for s in unseen] == ["live/0/stream-a-2.ts"]
    assert playlist.next_sequence == 10 and variants[1].playlist.rejoin(10, 1, 3.0) == []
