"""The uploads of Owncast's segments: one task per copy, an init section once per run and variant, and
nothing uploaded again that a state restored says is in the bucket already."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..bucket.uploader import SegmentLost, Uploaded, Uploader
from ..playlist import hls
from ..source.owncast import SourceSegment, stream_id
from .slots import Variant


async def _already(done: Uploaded) -> Uploaded:
    return done


class Uploads:
    def __init__(self, uploader: Uploader, hls_dir: Path, key_prefix: str, segment_hashes: bool) -> None:
        self._uploader = uploader
        self._hls_dir = hls_dir
        self._prefix = key_prefix
        self._hashes = segment_hashes  # P2P on: the SHA-256 of each segment's bytes, for viewers to check
        self.restored: set[str] = set()  # keys uploaded before a restart, not listed then

    def key(self, index: int, name: str) -> str:
        return hls.object_key(self._prefix, index, name)

    def start(self, v: Variant, seg: SourceSegment, run: int) -> tuple[asyncio.Task[Uploaded], str, str | None]:
        """The upload of `seg` (after its init section's): the task, its key and the init section's."""
        folder = self._hls_dir / str(v.index)
        init_key: str | None = None
        init_task: asyncio.Task[Uploaded] | None = None
        if seg.init_name is not None:
            # Init sections keep their name across transcoder runs; the run keeps keys unique.
            init_key = self.key(v.index, f"{stream_id(seg.name) or f'run{run}'}-{seg.init_name}")
            init_task = v.inits.get(init_key)
            if init_task is None:
                init_task = asyncio.ensure_future(
                    self._uploader.upload_file(folder / seg.init_name, init_key, str(v.index),
                                               root=self._hls_dir, hashed=False)  # never shared by peers
                )
                v.inits[init_key] = init_task
        seg_key = self.key(v.index, seg.name)
        if seg_key in self.restored:  # uploaded before a restart, not yet listed then
            self.restored.discard(seg_key)
            # Its bytes are not at hand: no hash, so viewers take it from the bucket, never from peers.
            task: asyncio.Task[Uploaded] = asyncio.ensure_future(_already(Uploaded(0.0, None)))
        else:
            task = asyncio.ensure_future(self._upload(folder / seg.name, seg_key, v.index, init_task))
        return task, seg_key, init_key

    async def _upload(self, path: Path, key: str, index: int, init: asyncio.Task[Uploaded] | None) -> Uploaded:
        if init is not None:
            try:
                await asyncio.shield(init)  # shared by every segment of the run
            except SegmentLost as err:
                raise SegmentLost("init_lost", f"its init section could not be uploaded: {err}") from err
        return await self._uploader.upload_file(path, key, str(index), root=self._hls_dir, hashed=self._hashes)
