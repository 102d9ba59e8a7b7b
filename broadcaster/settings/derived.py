"""What the settings imply: the Settings record's own properties (record.py's Settings subclasses this)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .buckets import BucketSettings


class Derived:
    """Values worked out from the settings, as properties of the record (`s.segment_url_life`)."""

    window_seconds: float
    rewind_seconds: int
    cleanup_margin: float
    r2_key_prefix: str
    pathways: tuple[str, ...]
    buckets: tuple[BucketSettings, ...]
    private_invites: Path | None
    state_dir: Path

    @property
    def listed_seconds(self) -> float:
        return max(self.window_seconds, float(self.rewind_seconds))

    @property
    def segment_url_life(self) -> float:
        """The longest a listed segment's URL may still be fetched (6.2.2), plus CLEANUP_MARGIN."""
        return 3 * self.listed_seconds + self.cleanup_margin

    @property
    def p2p_swarm(self) -> str:
        """The viewers' P2P swarm id: one per stream, so no other stream's segments on a tracker collide."""
        first = self.first_bucket
        stream = "\n".join((first.endpoint_url, first.bucket, self.r2_key_prefix))
        return "hls-broadcaster-" + hashlib.sha256(stream.encode()).hexdigest()[:32]

    @property
    def steering(self) -> bool:
        return len(self.pathways) > 1

    @property
    def first_bucket(self) -> BucketSettings:
        return self.buckets[0]

    @property
    def extra_buckets(self) -> tuple[BucketSettings, ...]:
        return self.buckets[1:]

    @property
    def invites_file(self) -> Path:
        return self.private_invites or self.state_dir / "invites.json"
