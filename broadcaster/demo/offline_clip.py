"""Owncast's offline clip (8 s of colour bars, silent), made once per process with ffmpeg and cached."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.demo.owncast_files import OFFLINE_SECONDS as _OFFLINE_SECONDS
from broadcaster.demo.owncast_settings import AUDIO_KBPS, FPS, SegmentType
from broadcaster.demo.transcoder import run_once as _run_once


@dataclass(frozen=True)
class OfflineClip:
    segment: Path
    init: Path | None  # fMP4 only


_clip_dir: Path | None = None


def _clip_cache_dir() -> Path:
    global _clip_dir
    if _clip_dir is None:
        _clip_dir = Path(tempfile.mkdtemp(prefix="owncast-emulator-clips-"))
        atexit.register(shutil.rmtree, _clip_dir, True)
    return _clip_dir


async def offline_clip(segment_type: SegmentType) -> OfflineClip:
    """Owncast's offline clip (8 s of colour bars, silent), made once per process."""
    cache = _clip_cache_dir()
    exe = ffmpeg_exe()
    source = [
        "-f", "lavfi", "-i",
        f"smptebars=size=640x360:rate={FPS}[out0];anullsrc=channel_layout=stereo:sample_rate=48000[out1]",
        "-t", str(_OFFLINE_SECONDS), "-map", "0:v", "-map", "0:a",
        "-c:v", "libx264", "-preset", "veryfast", "-g", str(FPS * _OFFLINE_SECONDS), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k",
    ]  # fmt: skip
    base = [exe, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y"]
    if segment_type == "mpegts":
        clip = OfflineClip(cache / "offline.ts", None)
        if not clip.segment.exists():
            work = Path(tempfile.mkdtemp(dir=cache))
            await _run_once([*base, *source, "-f", "mpegts", str(work / "offline.ts")])
            os.replace(work / "offline.ts", clip.segment)  # atomic: concurrent makers are harmless
            shutil.rmtree(work, ignore_errors=True)
        return clip
    clip = OfflineClip(cache / "offline-v2.m4s", cache / "offline-init.mp4")
    assert clip.init is not None
    if not (clip.segment.exists() and clip.init.exists()):
        work = Path(tempfile.mkdtemp(dir=cache))
        await _run_once([
            *base, *source, "-f", "hls", "-hls_time", str(_OFFLINE_SECONDS * 2), "-hls_list_size", "0",
            "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "offline-init.mp4",
            "-hls_segment_filename", str(work / "offline-v2-%d.m4s"), str(work / "offline.m3u8"),
        ])  # fmt: skip
        os.replace(work / "offline-init.mp4", clip.init)
        os.replace(work / "offline-v2-0.m4s", clip.segment)
        shutil.rmtree(work, ignore_errors=True)
    return clip


