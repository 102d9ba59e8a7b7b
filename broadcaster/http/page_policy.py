"""The viewer page's Content-Security-Policy header (/ and /embed): what the page may load and where it may
connect, so that a script injected through any bug runs nowhere; frame-ancestors (FRAME_ANCESTORS) only a
header can say. The page's own <meta> policy stays for a copy hosted elsewhere; a browser enforces both."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from ..settings import Settings


def origin(url: str) -> str:
    """scheme://host[:port] of `url` (a ws:// or wss:// tracker too), lowercased as browsers compare."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower().rsplit('@', 1)[-1]}"


def media_origins(s: Settings) -> tuple[str, ...]:
    """Where the page's player fetches segments (and playlists at the edge) besides this service."""
    urls = [s.first_bucket.endpoint_url if s.segment_urls == "presigned" else s.first_bucket.public_url]
    urls += [bucket.public_url for bucket in s.extra_buckets]  # every other bucket PATHWAYS names
    if "vm" in s.pathways and s.vm_pathway_url:  # the VM's pathway on a hostname of its own
        urls.append(s.vm_pathway_url)
    return _unique(origin(u) for u in urls if u)


def page_policy(*, frame_ancestors: str, media: Iterable[str] = (), trackers: Iterable[str] = (),
                owncast_url: str = "", sources: Iterable[str] = ()) -> str:
    """The header's value. `media`: media_origins; `trackers`: P2P_TRACKERS; `sources`: VIEWER_SOURCES."""
    media = _unique(media)
    elsewhere = list(sources)
    anywhere: tuple[str, ...] = ()
    if elsewhere:  # another site's playlists: their segments may be on any host
        plain = "*" in elsewhere or any(s.startswith("http://") for s in elsewhere)
        anywhere = ("https:", "http:") if plain else ("https:",)
    connect = _unique(["'self'", *media, *(origin(t) for t in trackers),
                       *((origin(owncast_url),) if owncast_url else ()),
                       *(s for s in elsewhere if s != "*"), *anywhere])
    played = _unique(["'self'", "blob:", *media, *anywhere])
    return "; ".join(["default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
                      f"connect-src {' '.join(connect)}", f"media-src {' '.join(played)}",
                      "worker-src 'self' blob:", "object-src 'none'", "base-uri 'none'", "form-action 'none'",
                      f"frame-ancestors {frame_ancestors}"])


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
