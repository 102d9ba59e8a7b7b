"""StateFile: atomic, and a bad file is set aside; Publisher and generator state round-trips."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from broadcaster.manifest import ListedSegment, ManifestGenerator
from broadcaster.state import StateFile
from tests.support.world import World


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


@pytest.mark.parametrize(("content", "kind"), [(b"\x00garbage", "corrupt"), (b"[1, 2]", "foreign"),
                                               (b'{"format": "hls-broadcaster/state", "version": 99}', "foreign")])
def test_bad_file_is_set_aside_once(tmp_path: Path, content: bytes, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "state.json").write_bytes(content)
    with caplog.at_level(logging.ERROR):
        assert StateFile(tmp_path).load() is None
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(f"state.json.{kind}-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert len(caplog.records) == 1 and "moved it to" in caplog.records[0].getMessage()


def test_generator_restore_rejects_inconsistent_numbers() -> None:
    gen = ManifestGenerator(1, 3)
    for i in range(3):
        gen.append(ListedSegment(f"u{i}", 1.0, 1e9 + i), 10.0 + i)
    snap = gen.snapshot(20.0)
    snap["media_sequence"] = 5
    with pytest.raises(ValueError):
        ManifestGenerator.restore(snap, 0.0, 3)


async def test_publisher_restores_and_continues_numbering(tmp_path: Path) -> None:
    a = World(tmp_path)
    for v in (0, 1):
        a.owncast_lists(v, "stream-a-0.ts", "stream-a-1.ts")
    await a.settle()
    saved = json.loads(json.dumps(a.pub.snapshot()))  # through JSON, as on disk
    before = {v: a.text(v) for v in (0, 1)}
    await a.pub.close()

    b = World(tmp_path)
    b.checker = a.checker  # the restart must be invisible to the checker
    b.pub.restore(saved)
    assert {v: b.text(v) for v in (0, 1)} == before
    b.segments = a.segments
    for v in (0, 1):
        b.owncast_lists(v, "stream-a-1.ts", "stream-a-2.ts", media_sequence=1)  # a-1 already listed
    await b.settle()
    assert b.uris(0) == b.uris(1) == ["stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts"]
    assert sorted(b.store.keys()) == ["live/0/stream-a-2.ts", "live/1/stream-a-2.ts"]  # only the new one
    await b.pub.close()


async def test_publisher_restore_rejects_garbage_without_changing_anything(tmp_path: Path) -> None:
    w = World(tmp_path)
    with pytest.raises(ValueError):
        w.pub.restore({"variants": {"0": {"generator": None}}})
    assert w.pub.variants() == [] and w.pub.target_duration is None
    await w.pub.close()
