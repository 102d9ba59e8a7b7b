"""Segment URLs for PRIVATE=true with SEGMENT_URLS=public: `R2_PUBLIC_URL/key?verify=...`, the edge token
Cloudflare checks before its cache answers (access/edge_tokens.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..access.edge_tokens import EdgeTokens
from ..access.tokens import edge_key
from ..settings import Settings


class EdgeUrls:
    def __init__(self, base: str, tokens: EdgeTokens) -> None:
        self._base = base
        self._tokens = tokens

    def segment(self, key: str) -> str:
        return f"{self._base}/{key}?verify={self._tokens.current()}"

    init = segment  # an init section listed again gets a later window's token in a new URI (4.4.4.5)

    def window(self) -> str:
        """The token written now: it changes exactly when the URLs made for a key do."""
        return self._tokens.current()

    def __repr__(self) -> str:  # the URL maker, never the key
        return f"EdgeUrls({self._base!r}, prefix={self._tokens.message!r})"


def edge_prefix(public_url: str, key_prefix: str) -> str:
    """The path every segment's public URL starts with: R2_PUBLIC_URL's path, then the bucket prefix."""
    return urlsplit(public_url).path.rstrip("/") + "/" + (f"{key_prefix}/" if key_prefix else "")


def edge_tokens(s: Settings, message: str) -> EdgeTokens:
    """The edge tokens for a path prefix under PRIVATE_SECRET's edge key."""
    return EdgeTokens(edge_key(s.private_secret), message, s.private_edge_window,
                      s.private_edge_window + s.segment_url_life)
