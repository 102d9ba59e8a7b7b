"""What a playlist lists by key (publish/listed_keys.py): the window's index behind VariantPlaylist.found,
rebuilt once per change, and the VM's pathway's record, kept a while after its entries leave."""

from __future__ import annotations

from broadcaster.playlist.manifest import ManifestGenerator
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish.listed_keys import SLACK, KeyIndex, VmListed

T0 = 1_795_000_000.0


def seg(i: int, gap: bool = False) -> ListedSegment:
    key = f"live/0/s-{i}.m4s"
    return ListedSegment(f"https://cdn.example/{key}", 1.0, T0 + i, key=key, gap=gap,
                         init_uri="https://cdn.example/live/0/init.mp4")


def test_the_index_answers_the_window_as_it_is_now() -> None:
    gen = ManifestGenerator(1, WindowOptions(3.0))
    index = KeyIndex()
    gen.append(seg(0), T0, 0)
    assert index.at(gen.window, gen.changes, "live/0/s-0.m4s") == (0, "https://cdn.example/live/0/s-0.m4s",
                                                                   "live/0/s-0.m4s")
    assert index.at(gen.window, gen.changes, "live/0/s-1.m4s") is None
    gen.append(seg(1), T0 + 1, 1)
    gen.append(seg(2, gap=True), T0 + 2, 2)
    assert index.at(gen.window, gen.changes, "live/0/s-1.m4s") is not None  # a new change: rebuilt
    assert index.at(gen.window, gen.changes, "live/0/s-2.m4s") is None  # a gap: nothing to answer
    init = index.at(gen.window, gen.changes, "live/0/init.mp4")
    assert init is not None and init[0] == 0  # an init section: its first segment's number


def test_the_vm_record_keeps_twice_the_window_and_some() -> None:
    listed = VmListed()
    gen = ManifestGenerator(1, WindowOptions(3.0))
    for i in range(60):  # the VM's pathway lists each at once
        gen.append(seg(i, gap=i == 50), T0 + i, i)
        listed.add(next(reversed(gen.window)), len(gen.window))
    most = 2 * len(gen.window) + SLACK
    assert len(gen.window) < 10 < most < 59  # the record outlives the window, and is trimmed
    kept = [i for i in range(60) if listed.get(f"live/0/s-{i}.m4s") is not None]
    assert kept == [i for i in range(kept[0], 60) if i != 50]  # the oldest dropped; a gap never kept
    init = listed.get("live/0/init.mp4")  # dropped with the oldest, recorded again by the next listed
    assert init is not None and init[0] > kept[0] and len(kept) + 1 == most
    listed.clear()
    assert listed.get("live/0/s-59.m4s") is None
