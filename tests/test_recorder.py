"""Recorder: the VOD playlist names objects beside it, whatever kind of URL the live playlist used."""

from __future__ import annotations

from pathlib import Path

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
