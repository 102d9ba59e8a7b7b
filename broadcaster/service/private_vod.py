"""A private stream's clips and recordings: their playlists in STATE_DIR (not the bucket), served gated."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..bucket.edge_urls import EdgeUrls
from ..bucket.urls import SegmentUrls, segment_urls
from ..clips.kept import FOLDER, DeletingStore, KeptPlaylists
from ..clips.served import ServedVod
from ..settings import Settings

GATED_AT = "/live"  # where the service serves them, behind its gate (http/vod_route.py)


def kept_playlists(s: Settings, bucket: DeletingStore) -> KeptPlaylists | None:
    """Where a private stream's VOD playlists go (None: a public stream's go to the bucket)."""
    return KeptPlaylists(s.state_dir / FOLDER, s.r2_key_prefix, bucket) if s.private else None


def served_vod(s: Settings, kept: KeptPlaylists | None) -> ServedVod | None:
    """The kept playlists as the gated route answers them (a URL maker of their own: it signs in a thread)."""
    if kept is None:
        return None
    urls = segment_urls(s)
    return ServedVod(kept, urls, s.r2_key_prefix, url_window(s, urls))


def url_window(s: Settings, urls: SegmentUrls) -> Callable[[], object]:
    """What changes when the URLs given for a key do: the edge token's window, or a PRIVATE_EDGE_WINDOW."""
    if isinstance(urls, EdgeUrls):
        return urls.window
    return lambda: int(time.time()) // s.private_edge_window
