"""A private stream's VOD playlists (clips and recordings), kept in STATE_DIR instead of the bucket, where
they would be a door around the gate: served only through the gated route (http/vod_route.py). It stands
in for the bucket under the same keys (`PREFIX/clips/<id>/...` kept as `clips/<id>/...`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath

from ..bucket.cleaner import DeletingStore as DeletingStore  # the bucket's, and the service's import
from ..files import write_whole

FOLDER = "vod"  # in STATE_DIR


class KeptPlaylists:
    def __init__(self, folder: Path, key_prefix: str, bucket: DeletingStore | None = None) -> None:
        """`bucket`: where a clip made while the stream was public has its playlists, deleted there too."""
        self._folder = folder
        self._prefix = f"{key_prefix}/" if key_prefix else ""
        self._bucket = bucket
        self.version = 0  # changes with every write and delete: what was read before may be stale

    def relative(self, key: str) -> str:
        """The path below PREFIX a key is kept at; ValueError for a key that is not one of ours."""
        rel = key[len(self._prefix):] if key.startswith(self._prefix) else None
        parts = PurePosixPath(rel).parts if rel else ()
        if not parts or rel is None or rel.startswith("/") or any(p in ("..", ".") for p in parts):
            raise ValueError(f"{key!r} is not a playlist key under the stream's prefix")
        return rel

    def path(self, relative: str) -> Path:
        return self._folder.joinpath(*PurePosixPath(relative).parts)

    async def upload_bytes(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> float:
        """Written whole and atomically (a reader sees the old body or the new one); 0 s in the bucket."""
        path = self.path(self.relative(key))
        await asyncio.to_thread(write_whole, path, body)
        self.version += 1
        return 0.0

    async def delete_many(self, keys: list[str]) -> list[str]:
        """The keys not deleted, here or in the bucket (StoreError: the bucket refused)."""
        failed = []
        for key in keys:
            try:
                self.path(self.relative(key)).unlink(missing_ok=True)
            except (OSError, ValueError):
                failed.append(key)
        self.version += 1
        if self._bucket is not None:
            failed += [key for key in await self._bucket.delete_many(keys) if key not in failed]
        return failed

    def read(self, relative: str) -> bytes | None:
        """A kept playlist's body, None when there is none (or it cannot be read)."""
        try:
            return self.path(relative).read_bytes()
        except (OSError, ValueError):
            return None

