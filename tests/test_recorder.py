"""Recorder: the VOD playlist names objects beside it, whatever URLs the live playlist used; a damaged or
crafted journal line, or a stray file, costs that line (or file), never the recording."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from broadcaster.playlist.segments import ListedSegment
from broadcaster.metrics import Metrics
from broadcaster.bucket.recorder import Recorder
from broadcaster.bucket.uploader import Uploader
from tests.support.fakes import FakeStore


async def test_recording_names_the_objects_of_presigned_urls(tmp_path: Path) -> None:
    metrics = Metrics()
    store = FakeStore()
    recorder = Recorder(Uploader(store, metrics, concurrency=1, attempt_timeout=1), tmp_path, "live")
    signed = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc"
    for i in range(2):
        recorder.record("run-a", 0, ListedSegment(
            uri=f"https://acct.r2.cloudflarestorage.com/bucket/live/0/s-{i}.m4s{signed}", duration=1.0,
            program_date_time=1.8e9 + i, init_uri=f"https://acct.r2.cloudflarestorage.com/bucket/live/0/a-init.mp4{signed}",
            key=f"live/0/s-{i}.m4s"))
    recorder.finish("run-a", 1, None)
    await recorder.close()
    [vod] = [p for p in store.puts if p.key == "live/0/recording-run-a.m3u8"]
    text = vod.body.decode()
    assert '#EXT-X-MAP:URI="a-init.mp4"' in text and "s-0.m4s\n" in text and "X-Amz" not in text


BAD_LINES = [
    "[1, 2]", '"text"', "{}", '{"name": "x.ts"}', "{not json",
    json.dumps({"name": "evil.ts\n#EXT-X-ENDLIST", "duration": 1.0, "pdt": None, "discontinuity": False,
                "init": None}),
    json.dumps({"name": "a.ts", "duration": "NaN", "pdt": None, "discontinuity": False, "init": None}),
    json.dumps({"name": "b.ts", "duration": 1.0, "pdt": 1e300, "discontinuity": False, "init": None}),
    json.dumps({"name": "c.ts", "duration": 1.0, "pdt": "soon", "discontinuity": False, "init": None}),
    json.dumps({"name": "d.ts", "duration": 1.0, "pdt": None, "discontinuity": False, "init": ['"']}),
    '{"name": "e.ts", "duration": 1e400, "pdt": null, "discontinuity": false, "init": null}',
]


async def test_bad_journal_lines_and_stray_files_cost_only_themselves(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    recorder = Recorder(Uploader(store, Metrics(), concurrency=1, attempt_timeout=1), tmp_path, "live")
    recorder.record("run-a", 0, ListedSegment("https://cdn/live/0/s-0.ts", 1.0, 1.8e9, key="live/0/s-0.ts"))
    journal = tmp_path / "recordings" / "run-a" / "0.jsonl"
    with open(journal, "a") as f:
        f.write("\n".join(BAD_LINES) + "\n")
    recorder.record("run-a", 0, ListedSegment("https://cdn/live/0/s-1.ts", 1.0, 1.8e9 + 1, key="live/0/s-1.ts"))
    (journal.parent / "notes.jsonl").write_text("{}\n")  # not a variant's journal
    with caplog.at_level(logging.WARNING):
        recorder.finish("run-a", 1, None)
        await recorder.close()
    [vod] = [p for p in store.puts if p.key == "live/0/recording-run-a.m3u8"]
    text = vod.body.decode()
    assert [line for line in text.splitlines() if not line.startswith("#")] == ["s-0.ts", "s-1.ts"]
    assert text.count("#EXT-X-ENDLIST") == 1
    assert any("live/recording-run-a.m3u8" == p.key for p in store.puts)  # the multivariant one too
    assert len(caplog.records) == 1 and f"{len(BAD_LINES)} unreadable" in caplog.messages[0]
