"""What the settings imply, read from them: the Settings record's own properties (record.py's Settings
is this class's one subclass, whose fields these read)."""

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
        """How much of the stream the live playlists list: the live window, or the rewind window."""
        return max(self.window_seconds, float(self.rewind_seconds))

    @property
    def segment_url_life(self) -> float:
        """The longest a listed segment's URL may still be fetched: about a window listed, then held by
        a player's copy of the playlist (6.2.2), plus CLEANUP_MARGIN. Presigned URLs must outlive it."""
        return 3 * self.listed_seconds + self.cleanup_margin

    @property
    def p2p_swarm(self) -> str:
        """The viewers' P2P swarm id: one per stream (endpoint, bucket and prefix), so another stream
        announced to the same tracker never shares segments with this one (their media sequence
        numbers, P2P Media Loader's segment ids, would collide)."""
        first = self.first_bucket
        stream = "\n".join((first.endpoint_url, first.bucket, self.r2_key_prefix))
        return "hls-broadcaster-" + hashlib.sha256(stream.encode()).hexdigest()[:32]

    @property
    def steering(self) -> bool:
        """Content steering on: more than the bucket's pathway is offered."""
        return len(self.pathways) > 1

    @property
    def first_bucket(self) -> BucketSettings:
        return self.buckets[0]

    @property
    def extra_buckets(self) -> tuple[BucketSettings, ...]:
        """Every bucket PATHWAYS names besides the first, in its order."""
        return self.buckets[1:]

    @property
    def invites_file(self) -> Path:
        """Where the named invites are kept (PRIVATE_INVITES, else STATE_DIR/invites.json)."""
        return self.private_invites or self.state_dir / "invites.json"
