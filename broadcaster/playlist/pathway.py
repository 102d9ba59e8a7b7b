"""A delivery pathway (content steering, 4.4.6.6 and 7): one whole copy of the variants at other URIs,
and the URI at which it lists each segment (a function of the listed segment). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol
from urllib.parse import urlsplit

from . import hls
from .segments import ListedSegment

BUCKET = "bucket"  # a pathway whose segments are in a bucket (the first, or another: BACKUP_*)
VM = "vm"  # the pathway the service serves itself
EDGE_QUERY = "verify="  # a private stream's edge token in a segment's URI (bucket/edge_urls.py)


class SegmentUris(Protocol):
    """Where a pathway lists a segment and its init section (EXT-X-MAP)."""

    def segment(self, segment: ListedSegment) -> str: ...
    def init(self, segment: ListedSegment) -> str | None: ...


class ListedUris:
    """The URIs the segment was listed with: the first bucket's (public, or presigned per segment)."""

    def segment(self, segment: ListedSegment) -> str:
        return segment.uri

    def init(self, segment: ListedSegment) -> str | None:
        return segment.init_uri


LISTED = ListedUris()


def init_key(segment: ListedSegment) -> str | None:
    """The object key of a segment's init section: beside the segment, under its listed URI's name."""
    if segment.init_uri is None or segment.key is None:
        return None
    folder = segment.key.rpartition("/")[0]
    name = PurePosixPath(urlsplit(segment.init_uri).path).name
    return f"{folder}/{name}" if folder else name


def with_edge_token(uri: str, listed: str) -> str:
    """`uri` with the edge token (`verify=`) of the URI the first bucket lists, if it has one."""
    if EDGE_QUERY not in listed:
        return uri
    edge = [item for item in urlsplit(listed).query.split("&") if item.startswith(EDGE_QUERY)]
    return f"{uri}?{edge[0]}" if edge else uri


@dataclass(frozen=True, slots=True)
class BaseUris:
    """A bucket's public base URL and each object's key, with a private stream's edge token."""

    base: str

    def segment(self, segment: ListedSegment) -> str:
        return with_edge_token(f"{self.base.rstrip('/')}/{segment.key}", segment.uri)

    def init(self, segment: ListedSegment) -> str | None:
        key = init_key(segment)
        return None if key is None else with_edge_token(f"{self.base.rstrip('/')}/{key}", segment.init_uri or "")


@dataclass(frozen=True, slots=True)
class VmUris:
    """The VM's: hls.vm_segment_uri, under `base` (VM_PATHWAY_URL) if any, with the edge token."""

    base: str = ""

    def segment(self, segment: ListedSegment) -> str:
        return self._uri(segment.key, segment.uri)

    def init(self, segment: ListedSegment) -> str | None:
        key = init_key(segment)
        return None if key is None else self._uri(key, segment.init_uri or "")

    def _uri(self, key: str | None, listed: str) -> str:
        path = PurePosixPath(key or "")
        try:
            variant = int(path.parent.name)
        except ValueError:
            variant = 0
        return with_edge_token(self.base.rstrip("/") + hls.vm_segment_uri(variant, path.name), listed)


@dataclass(frozen=True, slots=True)
class Pathway:
    """One pathway as configured: whether a bucket or the VM holds its segments, where the service serves
    its media playlists (`folder`: "" at /live/<n>/, else /live/<folder>/<n>/), and its segment URIs."""

    id: str
    kind: str  # BUCKET or VM
    folder: str
    uris: SegmentUris

    def __post_init__(self) -> None:
        if not hls.is_pathway_id(self.id) or self.kind not in (BUCKET, VM):
            raise ValueError(f"not a pathway: {self.id!r} ({self.kind})")

    @property
    def is_bucket(self) -> bool:
        return self.kind == BUCKET
