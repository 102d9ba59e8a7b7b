"""The transcoder's encoding made once and replayed (tests): a folder of recordings, one per set of
encoding settings, each made by recording_command the first time a stream with those settings starts,
shared by every process that uses the folder (an xdist worker each: a lock file says who makes it).

A replayed stream is the same ffmpeg, the same hls muxer and the same PUTs to Owncast's receiver as a
live one (transcoder_args.replay_command); only the encoding, which cost about 15 % of a core per
stream for as long as it ran, happens once per run. The demo encodes live: it passes no Recordings.
What differs: the picture and sound repeat every SECONDS (their timestamps go on), and the multivariant
playlist's BANDWIDTH is measured from the recording (MP4, whose reader knows each stream's bitrate:
from Matroska the muxer wrote a master with no variant at all) where the live one takes it from the
encoder's settings.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
from pathlib import Path

from broadcaster.demo.owncast_settings import Variant
from broadcaster.demo.transcoder import run_once
from broadcaster.demo.transcoder_args import recording_command

log = logging.getLogger("broadcaster.demo.emulator")

SECONDS = 30  # a recording's length: replayed in a loop (-stream_loop), its timestamps going on
_ENCODE_TIMEOUT = 600.0  # a 30 s encoding takes 3-4 s of CPU; a loaded machine gives it little


class Recordings:
    """`await recordings.get(exe, variants, segment_seconds)`: the recording of the test picture encoded
    as the transcoder would, made if it is not in `folder` yet."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made = 0  # recordings this object made (the others were there already)

    async def get(self, exe: str, variants: tuple[Variant, ...], segment_seconds: int) -> Path:
        key = hashlib.sha256(repr(recording_command("ffmpeg", "out", variants, segment_seconds=segment_seconds,
                                                    seconds=SECONDS)).encode()).hexdigest()[:20]
        path = self.folder / f"{key}.mp4"
        if path.is_file():
            return path
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = await asyncio.to_thread(_locked, self.folder / f"{key}.lock")
        try:
            if not path.is_file():  # another process made it while this one waited for the lock
                partial = self.folder / f"{key}.{os.getpid()}.partial.mp4"
                log.info("recording %d s of the transcoder's output for %s once (%s)", SECONDS,
                         ", ".join(f"{v.width}x{v.height}" for v in variants), path.name)
                try:
                    await run_once(recording_command(exe, str(partial), variants, segment_seconds=segment_seconds,
                                                     seconds=SECONDS), timeout=_ENCODE_TIMEOUT)
                    partial.rename(path)
                finally:
                    partial.unlink(missing_ok=True)
                self.made += 1
        finally:
            os.close(lock)
        return path


def _locked(path: Path) -> int:
    """An open descriptor holding `path`'s lock (waits for whoever holds it)."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd
