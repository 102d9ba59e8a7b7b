"""The URL a playlist lists for an object in the bucket: public (R2_PUBLIC_URL) or presigned. A URL is made
once, when its segment enters the window, and then kept: another URI under the same media sequence number
is another segment to a player."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from botocore.config import Config

from ..settings import Settings
from .edge_urls import EdgeUrls, edge_prefix, edge_tokens
from .sessions import sync_session
from .store import BucketAccess

_INITS_KEPT = 64  # init sections whose signed URL is remembered (a few are in use at once)
Signer = Callable[[str, int], str]  # (key, expires_in): a GET URL for `key` that works that long


class SegmentUrls(Protocol):
    def segment(self, key: str) -> str:
        """The URL for a media segment, made when it enters the window."""

    def init(self, key: str) -> str:
        """The URL for an init section (EXT-X-MAP), shared by every segment of a transcoder run."""


class PublicUrls:
    """R2_PUBLIC_URL/key: the bucket serves the object to anyone. `base` has no trailing "/"."""

    def __init__(self, base: str) -> None:
        self._base = base

    def segment(self, key: str) -> str:
        return f"{self._base}/{key}"

    init = segment

    def __repr__(self) -> str:
        return f"PublicUrls({self._base!r})"


class S3Signer:
    """Presigned GET URLs for one bucket, signed locally (R2 takes them on its S3 API host, not the CDN)."""

    def __init__(self, access: BucketAccess) -> None:
        self._endpoint = access.endpoint_url
        self._bucket = access.bucket
        self._client: Any = sync_session().create_client(
            "s3",
            **access.client_args(),
            # Path style: the bucket in the path works on R2, SeaweedFS and any custom endpoint.
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def __call__(self, key: str, expires_in: int) -> str:
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
        )
        return url

    def __repr__(self) -> str:  # the client holds the secret; never show more than where it signs for
        return f"S3Signer(endpoint={self._endpoint!r}, bucket={self._bucket!r})"


class PresignedUrls:
    """Presigned GET URLs; an init section's is reused until half its life, or `keep_valid`, is left."""

    def __init__(self, sign: Signer, *, expiry: int, keep_valid: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sign = sign
        self._expiry = expiry
        self._reuse_for = max(0.0, expiry - max(expiry / 2, keep_valid))
        self._clock = clock  # monotonic: a wall-clock step must not keep an expired URL in use
        self._inits: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def segment(self, key: str) -> str:
        return self._sign(key, self._expiry)

    def init(self, key: str) -> str:
        now = self._clock()
        if (cached := self._inits.get(key)) is not None and now - cached[1] < self._reuse_for:
            self._inits.move_to_end(key)
            return cached[0]
        url = self._sign(key, self._expiry)
        self._inits[key] = (url, now)
        self._inits.move_to_end(key)
        if len(self._inits) > _INITS_KEPT:
            self._inits.popitem(last=False)
        return url

    def __repr__(self) -> str:
        return f"PresignedUrls({self._sign!r}, expiry={self._expiry})"


def segment_urls(s: Settings) -> SegmentUrls:
    """The URL maker SEGMENT_URLS asks for."""
    if s.segment_urls == "presigned":
        return PresignedUrls(S3Signer(BucketAccess.of(s.first_bucket)), expiry=s.presign_expiry, keep_valid=s.segment_url_life)
    if s.private:  # the edge token Cloudflare checks, in every segment URI
        return EdgeUrls(s.first_bucket.public_url, edge_tokens(s, edge_prefix(s.first_bucket.public_url,
                                                                              s.r2_key_prefix)))
    return PublicUrls(s.first_bucket.public_url)
