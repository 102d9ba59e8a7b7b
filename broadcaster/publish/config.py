"""PublisherConfig: where segments come from and go, and how playlists are numbered and kept."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..bucket.urls import SegmentUrls
from ..playlist.options import WindowOptions
from .pathways import PathwayPlan
from .uploads import UNFINISHED_LIMIT


@dataclass(frozen=True)
class PublisherConfig:
    hls_dir: Path
    key_prefix: str
    urls: SegmentUrls
    window: WindowOptions  # every playlist's: how much it lists, blocking reload, where players start
    target_duration: int | None = None  # None: from Owncast's first stream playlist
    first_sequence: int = 0  # the media sequence to start from without saved state
    segment_hashes: bool = False  # P2P on: each listed segment carries its SHA-256 (hls.SEGMENT_HASH_TAG)
    unfinished_limit: float = UNFINISHED_LIMIT
    pathways: PathwayPlan = field(default_factory=PathwayPlan)
    wall_clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
