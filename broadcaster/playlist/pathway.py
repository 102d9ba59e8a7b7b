"""A delivery pathway (content steering, 4.4.6.6 and 7): one whole copy of the variants at other URIs,
and the URI at which it lists each segment. Pure: what a pathway is, not what has landed there.

Every pathway renders its media playlists from the same entries (the one model: playlist/entry.py),
with its own URIs; nothing rewrites a rendered playlist. A pathway's URIs are a function of a listed
segment: the bucket's are the ones the segment was listed with (its public or presigned URL), another
bucket's are its public base and the segment's key (the same key in every bucket), the VM's are the
path the service answers (/live/vm/<n>/<file>) under an optional base (VM_PATHWAY_URL: a hostname
Cloudflare does not proxy).
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
    """The object key of a segment's init section: beside the segment, under the name its listed URI
    ends with (keys are PREFIX/<n>/<file> in every bucket: hls.object_key)."""
    if segment.init_uri is None or segment.key is None:
        return None
    folder = segment.key.rpartition("/")[0]
    name = PurePosixPath(urlsplit(segment.init_uri).path).name
    return f"{folder}/{name}" if folder else name


def with_edge_token(uri: str, listed: str) -> str:
    """`uri` with the edge token (`verify=`) of the URI the first bucket lists, if it has one: the token
    covers the path prefix, so it opens the same object on another pathway."""
    if EDGE_QUERY not in listed:
        return uri
    edge = [item for item in urlsplit(listed).query.split("&") if item.startswith(EDGE_QUERY)]
    return f"{uri}?{edge[0]}" if edge else uri


@dataclass(frozen=True, slots=True)
class BaseUris:
    """A bucket's public base URL and each object's key, with a private stream's edge token (its public
    URL's path must then be the first bucket's, the path the token signs)."""

    base: str

    def segment(self, segment: ListedSegment) -> str:
        return with_edge_token(f"{self.base.rstrip('/')}/{segment.key}", segment.uri)

    def init(self, segment: ListedSegment) -> str | None:
        key = init_key(segment)
        return None if key is None else with_edge_token(f"{self.base.rstrip('/')}/{key}", segment.init_uri or "")


@dataclass(frozen=True, slots=True)
class VmUris:
    """The VM's: /live/vm/<n>/<file> (hls.vm_segment_uri), on the host the player asked (`base` empty) or
    under `base` (VM_PATHWAY_URL), with a private stream's edge token from the URI the first bucket lists
    (the VM's segment door checks the same token)."""

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
    """One pathway as the settings configure it: its PATHWAY-ID, whether a bucket or the VM holds its
    segments, where the service serves its media playlists (`folder`: "" for the first bucket's, at
    /live/<n>/; else /live/<folder>/<n>/), and the URIs it lists segments at."""

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
