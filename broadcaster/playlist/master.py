"""The multivariant playlist (4.4.6.2): Owncast's variants, each naming its media playlist here, on
every pathway when content steering is on (4.4.6.6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Pathway:
    """One pathway of the multivariant playlist: its ID and where its variant playlists are."""

    id: str
    folder: str = ""
    media_name: str = ""  # the variant playlists' own name there ("": the multivariant playlist's)

    def variant_uri(self, index: int, media_name: str) -> str:
        uri = hls.variant_uri(index, self.media_name or media_name)
        if not self.folder:
            return uri
        return self.folder + uri if self.folder.endswith("/") else f"{self.folder}/{uri}"


@dataclass(frozen=True, slots=True)
class Steering:
    """EXT-X-CONTENT-STEERING (4.4.6.6): the pathways offered, in order, and where the manifest is."""

    pathways: tuple[Pathway, ...]
    first: str  # PATHWAY-ID: applied until the first steering manifest is read
    server_uri: str = hls.STEERING_MANIFEST_NAME

    def __post_init__(self) -> None:
        ids = [p.id for p in self.pathways]
        if not ids or len(set(ids)) != len(ids) or not all(hls.is_pathway_id(i) for i in ids):
            raise ValueError(f"pathway IDs must be unique and of [A-Za-z0-9._-] (7.1): {ids}")
        if self.first not in ids:
            raise ValueError(f"the first pathway {self.first!r} is not one of {ids}")


def render_master(variants: Sequence[VariantStream], media_name: str = hls.MEDIA_PLAYLIST_NAME,
                  steering: Steering | None = None) -> Rendered:
    """The multivariant playlist (4.4.6.2), naming each variant's playlist `<index>/<media_name>`; with
    `steering`, each variant once per pathway, alike but for their URIs (4.4.6.6: a player without
    steering takes them for redundant streams)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    pathways: tuple[Pathway | None, ...] = (None,)
    if steering is not None:
        lines.append(f'#EXT-X-CONTENT-STEERING:SERVER-URI="{steering.server_uri}",PATHWAY-ID="{steering.first}"')
        pathways = steering.pathways
    for pathway in pathways:  # in Owncast's order: hls.js starts with the first
        for v in variants:
            attrs = [f"BANDWIDTH={v.bandwidth}"]
            if v.average_bandwidth:
                attrs.append(f"AVERAGE-BANDWIDTH={v.average_bandwidth}")
            if v.resolution:
                attrs.append(f"RESOLUTION={v.resolution[0]}x{v.resolution[1]}")
            if v.frame_rate:
                attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
            if v.codecs:
                attrs.append(f'CODECS="{v.codecs}"')
            if pathway is not None:
                attrs.append(f'STABLE-VARIANT-ID="{hls.stable_variant_id(v.index)}"')
                attrs.append(f'PATHWAY-ID="{pathway.id}"')
            lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
            lines.append(pathway.variant_uri(v.index, media_name) if pathway else hls.variant_uri(v.index, media_name))
    lines.append("")
    return Rendered("\n".join(lines).encode())
