"""Clips' world at the seam: each variant's live playlist with segments shown to clients (what a clip is cut
from), and a bucket that keeps what is uploaded in memory (what a clip's playlists are written to)."""

from __future__ import annotations

from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish.variant_playlist import VariantPlaylist

T0 = 1_795_000_000.0
PREFIX = "live"


def seg(v: int, i: int) -> ListedSegment:
    key = f"{PREFIX}/{v}/stream-a-{i}.ts"
    return ListedSegment(f"https://cdn.example/{key}", 1.0, T0 + i, key=key)


class Source:
    """Each variant's live playlist with `count` segments listed, every one of them shown to clients."""

    def __init__(self, count: int = 20, variants: tuple[int, ...] = (0, 1)) -> None:
        self.playlists = {v: VariantPlaylist(v, WindowOptions(60), lambda _removed: None) for v in variants}
        for p in self.playlists.values():
            p.open(1, True, 0.0)
        for i in range(count):
            self.add(i)
        self.show()

    def add(self, i: int) -> None:
        for v, p in self.playlists.items():
            p.list(seg(v, i), 0, float(i), p.next_sequence, T0 + i)

    def show(self) -> None:
        """The Release made every playlist's current version visible."""
        for p in self.playlists.values():
            for pathway, rendered in p.versions(0.0).items():
                p.shown(pathway, rendered)

    def variants(self) -> list[int]:
        return sorted(self.playlists)

    def playlist(self, index: int) -> VariantPlaylist | None:
        return self.playlists.get(index)

    async def landed(self, keys: list[str], timeout: float) -> set[str]:
        return set()  # no gap here


class Bucket:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.deleted: list[str] = []

    async def upload_bytes(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> float:
        assert content_type == "application/vnd.apple.mpegurl"
        self.objects[key] = body
        return 0.0

    async def delete_many(self, keys: list[str]) -> list[str]:
        self.deleted += keys
        for key in keys:
            self.objects.pop(key, None)
        return []
