"""StateFile: atomic, and a bad file is set aside; Publisher and generator state round-trips."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from broadcaster.bucket.cleaner import Cleaner
from broadcaster.playlist.manifest import ManifestGenerator
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish import playlist_memory
from broadcaster.publish.release import Versions
from broadcaster.source.owncast import SourcePlaylist
from broadcaster.state.disk import StateFile, dumps
from broadcaster.state.journal import JournaledState
from tests.support.fakes import Bucket
from tests.support.saved_state import saved_state, stream
from tests.support.served import MakeWorld
from tests.support.world import World, snapshots_of


def test_save_then_load(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    assert state.load() is None
    state.save({"answer": 42})
    data = state.load()
    assert data is not None and data["answer"] == 42 and data["format"] == "hls-broadcaster/state"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = StateFile(tmp_path)
    state.save({"n": 1})

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", broken_fsync)
    with pytest.raises(OSError):
        state.save({"n": 2})
    monkeypatch.undo()
    data = state.load()
    assert data is not None and data["n"] == 1


@pytest.mark.parametrize(("content", "kind"), [
    (b"\x00garbage", "corrupt"), (b"[1, 2]", "foreign"),
    (b'{"format": "hls-broadcaster/state", "version": 99}', "foreign"),
    (b'{"format": "hls-broadcaster/state", "version": 1, "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
     "corrupt"),  # RecursionError in json.loads
])
def test_bad_file_is_set_aside_once(tmp_path: Path, content: bytes, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "state.json").write_bytes(content)
    with caplog.at_level(logging.ERROR):
        assert StateFile(tmp_path).load() is None
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(f"state.json.{kind}-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert len(caplog.records) == 1 and "moved it to" in caplog.records[0].getMessage()


def test_generator_restore_rejects_inconsistent_numbers() -> None:
    gen = ManifestGenerator(1, WindowOptions(3))
    for i in range(3):
        gen.append(ListedSegment(f"u{i}", 1.0, 1e9 + i), 10.0 + i)
    snap = playlist_memory.snapshot(gen, 20.0)
    snap["media_sequence"] = 5
    with pytest.raises(ValueError):
        playlist_memory.restore(snap, 0.0, WindowOptions(3))


async def test_publisher_restores_and_continues_numbering(make_world: MakeWorld) -> None:
    a = make_world()
    a.owncast_lists((0, 1), "stream-a-0.ts", "stream-a-1.ts")
    await a.settle()
    saved = json.loads(dumps({**a.pub.snapshot(), "clean_stop": True}))  # as on disk, after a clean stop
    before = {v: a.text(v) for v in (0, 1)}
    await a.pub.close()

    b = make_world()
    b.checker = a.checker  # the restart must be invisible to the checker
    b.pub.restore(saved)
    assert {v: b.text(v) for v in (0, 1)} == before
    b.segments = a.segments
    b.owncast_lists((0, 1), "stream-a-1.ts", "stream-a-2.ts", media_sequence=1)  # a-1 already listed
    await b.settle()
    assert b.uris(0) == b.uris(1) == ["stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts"]
    assert sorted(b.store.keys()) == ["live/0/stream-a-2.ts", "live/1/stream-a-2.ts"]  # only the new one


async def test_publisher_restore_rejects_garbage_without_changing_anything(make_world: MakeWorld) -> None:
    w = make_world()
    with pytest.raises(ValueError):
        w.pub.restore({"variants": {"0": {"generator": None}}})
    assert w.pub.variants() == [] and w.pub.target_duration is None


def restore_into_fresh(make_world: MakeWorld, tmp_path: Path, content: bytes) -> tuple[World, Cleaner, bool]:
    folder = tmp_path / "state"
    folder.mkdir(exist_ok=True)
    (folder / "state.json").write_bytes(content)
    (tmp_path / "hls2").mkdir(exist_ok=True)
    w = make_world(tmp_path / "hls2")
    cleaner = Cleaner(Bucket(), w.metrics, margin=5)
    return w, cleaner, snapshots_of(StateFile(folder), w.pub, cleaner).restore()


_GEN = ["variants", "0", "generator"]


@pytest.mark.parametrize(("path", "raw"), [
    (_GEN + ["media_sequence"], "1e400"),  # float("inf"): int() raised OverflowError
    (["target_duration"], "Infinity"),
    (_GEN + ["target_duration"], "Infinity"),
    (["variants", "0", "first"], "[]"),  # .items() raised AttributeError
    (_GEN + ["entries", 0, 2], "NaN"),
    (["next_sequence"], "9" * 30),  # beyond int64
    (["decided"], '["a", 1]'),
    (["cleaner"], '[[1, 2, 3]]'),
    (["variants", "0", "seen"], '"not a list"'),
    (["variants", "0", "leaving"], '[["live/0/a.ts", -1]]'),  # a negative time kept
    (["variants", "0", "leaving"], '[["live/0/a.ts"]]'),
    (_GEN + ["entries", 0, 1], '"https://x/a.ts\\n#EXT-X-ENDLIST"'),  # would be written into the playlist
])
async def test_a_crafted_value_sets_the_file_aside(
        tmp_path: Path, make_world: MakeWorld, path: list[str | int], raw: str,
        caplog: pytest.LogCaptureFixture) -> None:
    data = await saved_state(tmp_path)
    node: Any = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = "@@@"
    content = json.dumps(data).replace('"@@@"', raw).encode()
    with caplog.at_level(logging.WARNING):
        w, cleaner, restored = restore_into_fresh(make_world, tmp_path, content)
    assert not restored
    assert [r.levelno for r in caplog.records] == [logging.ERROR] and "moved it to" in caplog.messages[0]
    assert w.pub.variants() == [] and w.pub.target_duration is None and cleaner.pending == 0  # afresh
    aside = [p for p in (tmp_path / "state").iterdir() if p.name.startswith("state.json.")]
    assert len(aside) == 1 and aside[0].read_bytes() == content


@pytest.mark.parametrize("kind", ["directory", "fifo", "huge"])
def test_a_state_json_that_is_not_a_file_or_huge_is_set_aside_unread(
        tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer for ever
    else:
        with open(path, "wb") as f:
            f.truncate(2 << 30)  # 2 GB, sparse: nothing to read but zeros
    with caplog.at_level(logging.WARNING):
        assert StateFile(tmp_path).load() is None
    assert len(caplog.records) == 1 and "moved it to" in caplog.messages[0]
    assert not path.exists() and ("too large" in caplog.messages[0] or kind != "huge")


async def test_a_real_saved_state_restores(tmp_path: Path, make_world: MakeWorld,
                                           caplog: pytest.LogCaptureFixture) -> None:
    data = await saved_state(tmp_path)
    with caplog.at_level(logging.WARNING):
        w, cleaner, restored = restore_into_fresh(make_world, tmp_path, json.dumps(data).encode())
    assert restored and not caplog.records
    assert w.pub.variants() == [0, 1] and cleaner.pending == len(data["cleaner"])  # type: ignore[arg-type]


async def test_a_target_duration_set_above_owncasts_restores(make_world: MakeWorld) -> None:
    """TARGET_DURATION allows up to 60 s, more than the 30 s taken from Owncast's playlists."""
    a = make_world()
    a.pub.target.value = 60  # as TARGET_DURATION=60 sets it
    a.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await a.settle()
    saved = json.loads(dumps({**a.pub.snapshot(), "clean_stop": True}))
    await a.pub.close()
    b = make_world()
    b.pub.restore(saved)
    assert b.pub.target_duration == 60 and "#EXT-X-TARGETDURATION:60" in b.text(0)


async def test_names_owncast_listed_but_were_rejected_restore(make_world: MakeWorld) -> None:
    """Rejected names are remembered, escapes and all: such a state restores, not set aside."""
    a = make_world()
    a.owncast_lists(0, "stream-a-0.ts")
    a.pub.on_variant_playlist(0, SourcePlaylist(1, 0, (), False, True, rejected=(("evil\x1b[2J.ts", "escape"),)))
    await a.settle()
    saved = json.loads(dumps({**a.pub.snapshot(), "clean_stop": True}))
    assert "evil\x1b[2J.ts" in saved["variants"]["0"]["seen"]
    await a.pub.close()
    make_world().pub.restore(saved)


# The memory goes forward with each version (no back-call on a segment's walk).
_NOT_MEMORY = {"format", "version", "saved_at", "clean_stop", "lease"}  # what a save adds around it


def _memory_on_disk(file: StateFile) -> dict[str, Any]:
    data = file.load()
    assert data is not None
    return {k: v for k, v in data.items() if k not in _NOT_MEMORY}


async def test_a_save_writes_the_memory_pushed_with_the_version_never_asking_the_publisher(
        tmp_path: Path, make_world: MakeWorld) -> None:
    (tmp_path / "state").mkdir()
    file = StateFile(tmp_path / "state")
    w = make_world(state=file, stepped=True)

    def asked() -> dict[str, object]:
        raise AssertionError("a save asked the publisher for its memory")

    w.pub.snapshot = asked  # type: ignore[method-assign]
    pushed: list[dict[str, object] | None] = []
    changed = w.release.changed

    def spy(versions: Versions) -> None:
        pushed.append(versions.memory)
        changed(versions)

    w.release.changed = spy  # type: ignore[method-assign]
    await w.pub.start()
    await stream(w, 0, 8)
    assert pushed and all(m is not None for m in pushed)
    last = pushed[-1]
    assert last is not None
    assert _memory_on_disk(file) == json.loads(dumps(last))

    # Without a state file nothing is encoded: the versions carry no memory.
    (tmp_path / "bare").mkdir()
    bare = make_world(tmp_path / "bare")
    bare.owncast_lists(0, "stream-a-0.ts")
    await bare.settle()
    gen = bare.pub.playlist(0)
    assert gen is not None and gen.segment_count == 1
    assert bare.pub.lister.versions().memory is None


async def test_the_memory_saved_after_a_listing_is_the_publishers_memory_then(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """Through the journal and a sliding window."""
    (tmp_path / "state").mkdir()
    file = JournaledState(tmp_path / "state")
    w = make_world(state=file, stepped=True)
    await w.pub.start()
    for n in range(12):
        await stream(w, n, n + 1, (0,))
        assert _memory_on_disk(file) == json.loads(dumps(w.pub.snapshot())), f"after segment {n}"
    entries = json.loads(dumps(w.pub.snapshot()))["variants"]["0"]["generator"]["entries"]
    assert len(entries) < 12  # the window slid: the Tails lost items at the front


@pytest.mark.parametrize("slid", [False, True])
async def test_a_memory_read_after_more_listings_still_reads_as_it_was_taken(make_world: MakeWorld,
                                                                            slid: bool) -> None:
    """A version's memory is a value (tails.py): read later by a save, it leaves out what was listed since,
    and (`slid`: a 4 s window, the entries' log compacted) still holds what the window slid past."""
    w = make_world(stepped=True) if slid else make_world(window=60.0)
    await stream(w, 0, 3, (0,))
    taken = w.pub.snapshot()
    then = json.loads(dumps(taken))
    assert len(then["variants"]["0"]["generator"]["entries"]) == 3
    await stream(w, 3, 80 if slid else 6, (0,))
    now = json.loads(dumps(w.pub.snapshot()))
    assert now != then  # the lists moved on behind it...
    entries = [memory["variants"]["0"]["generator"]["entries"] for memory in (then, now)]
    assert entries[1][0][0] > entries[0][-1][0] or not slid  # (slid: every entry slid out)...
    assert json.loads(dumps(taken)) == then  # ...and the memory taken before still reads as it was
