"""Held's bookkeeping alone (broadcaster/vm/held_index.py): no file, time passed in. A version held once,
a rewrite replacing it (its copy to remove), a copy let go once every bucket has the key, the oldest copy
dropped first, and what is past its time forgotten with its copy."""

from __future__ import annotations

from broadcaster.files import Stamp
from broadcaster.vm.held_index import SETTLED_FOR, HeldFile, HeldIndex


def held(key: str, inode: int, at: float, size: int = 188) -> HeldFile:
    return HeldFile(key, ("0", key), Stamp(inode, size, 0), size, 0.0, "video/mp2t", at)


def test_a_version_is_held_once_and_a_rewrite_replaces_it_and_its_copy() -> None:
    index, gone = HeldIndex(600.0, ["bucket"]), list[str]()
    first = index.put(held("a.ts", 1, 0.0), 0.0, gone)
    assert index.copied(first, "1.seg", 188) and index.bytes == 188
    again = index.put(held("a.ts", 1, 5.0), 5.0, gone)  # the same version: the one held, with its copy
    assert again.copy == "1.seg" and again.held_at == 0.0 and gone == []
    assert not index.copied(first, "2.seg", 188)  # kept already: the caller removes its new one
    index.put(held("a.ts", 2, 6.0), 6.0, gone)  # Owncast rewrote it
    assert gone == ["1.seg"] and index.bytes == 0 and not index.copies


def test_a_copy_goes_once_every_bucket_has_the_key_and_the_key_once_settled_long_enough() -> None:
    index, gone = HeldIndex(600.0, ["bucket", "backup"]), list[str]()
    index.copied(index.put(held("a.ts", 1, 0.0), 0.0, gone), "1.seg", 188)
    assert index.landed("a.ts", "bucket", 1.0) is None  # the backup has it not yet
    assert index.landed("a.ts", "backup", 2.0) == "1.seg" and index.bytes == 0
    assert index.landed("a.ts", "backup", 3.0) is None  # uploaded again: settled already
    index.put(held("b.ts", 3, 2.0 + SETTLED_FOR + 1), 2.0 + SETTLED_FOR + 1, gone)
    assert list(index.files) == ["b.ts"]  # a.ts settled long enough ago: forgotten


def test_the_oldest_copy_is_dropped_first_and_expiry_returns_the_copies_left() -> None:
    index, gone = HeldIndex(60.0, ["bucket"]), list[str]()
    for n, key in enumerate(("a.ts", "b.ts")):
        index.copied(index.put(held(key, n, float(n)), float(n), gone), f"{n}.seg", 100)
    dropped = index.drop_oldest_copy()
    assert dropped is not None and (dropped.key, dropped.copy) == ("a.ts", "0.seg")
    assert index.evicted == 1 and index.bytes == 100 and index.files["a.ts"].copy is None
    assert index.expire(1.0 + 60.0 + 1) == ["1.seg"] and not index.files and index.bytes == 0
