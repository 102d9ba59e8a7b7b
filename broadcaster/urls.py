"""The URL a playlist lists for an object in the bucket: public (R2_PUBLIC_URL) or presigned.

Whatever the kind, a URL is made once, when its segment enters the window, and then kept (also across
restarts, in the saved playlists): a different URI under the same media sequence number is a
different segment to a player (hls.js rejects it as a media sequence mismatch).
"""

from __future__ import annotations

from typing import Protocol


class SegmentUrls(Protocol):
    def segment(self, key: str) -> str:
        """The URL for a media segment, made when it enters the window."""

    def init(self, key: str) -> str:
        """The URL for an init section (EXT-X-MAP), shared by every segment of a transcoder run."""


class PublicUrls:
    """R2_PUBLIC_URL/key: the bucket (custom domain or r2.dev) serves the object to anyone."""

    def __init__(self, base: str) -> None:
        self._base = base.rstrip("/")

    def segment(self, key: str) -> str:
        return f"{self._base}/{key}"

    def init(self, key: str) -> str:
        return f"{self._base}/{key}"


def segment_urls(public_url: str) -> SegmentUrls:
    """The URL maker the settings ask for."""
    return PublicUrls(public_url)
