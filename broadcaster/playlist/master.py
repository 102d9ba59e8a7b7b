"""The multivariant playlist (4.4.6.2): Owncast's variants, each naming its media playlist here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from . import hls
from .rendered import Rendered


class VariantStream(Protocol):
    """A variant as the multivariant playlist announces it (source.owncast.SourceVariant is one)."""

    @property
    def index(self) -> int: ...
    @property
    def bandwidth(self) -> int: ...
    @property
    def average_bandwidth(self) -> int | None: ...
    @property
    def resolution(self) -> tuple[int, int] | None: ...
    @property
    def codecs(self) -> str | None: ...
    @property
    def frame_rate(self) -> float | None: ...


def render_master(variants: Sequence[VariantStream], media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered:
    """The multivariant playlist (4.4.6.2), naming each variant's playlist `<index>/<media_name>`."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    for v in variants:  # Owncast's order: hls.js starts with the first listed
        attrs = [f"BANDWIDTH={v.bandwidth}"]
        if v.average_bandwidth:
            attrs.append(f"AVERAGE-BANDWIDTH={v.average_bandwidth}")
        if v.resolution:
            attrs.append(f"RESOLUTION={v.resolution[0]}x{v.resolution[1]}")
        if v.frame_rate:
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        if v.codecs:
            attrs.append(f'CODECS="{v.codecs}"')
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(hls.variant_uri(v.index, media_name))
    lines.append("")
    return Rendered("\n".join(lines).encode())
