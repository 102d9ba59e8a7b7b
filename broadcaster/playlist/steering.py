"""The steering manifest (7.1): the JSON a player reloads every TTL seconds, its pathways best first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

from . import hls


def render_steering(priority: Sequence[str], ttl: int, reload_uri: str | None = None) -> bytes:
    """VERSION, TTL, RELOAD-URI (when given) and PATHWAY-PRIORITY, in the order 7.1 lists them."""
    ids = list(priority)
    if not ids or len(set(ids)) != len(ids) or not all(hls.is_pathway_id(i) for i in ids):
        raise ValueError(f"PATHWAY-PRIORITY needs unique pathway IDs of [A-Za-z0-9._-] (7.1): {ids}")
    if ttl < 1:
        raise ValueError("TTL is a whole number of seconds, at least 1")
    manifest: dict[str, object] = {"VERSION": hls.STEERING_VERSION, "TTL": ttl}
    if reload_uri:
        manifest["RELOAD-URI"] = reload_uri
    manifest["PATHWAY-PRIORITY"] = ids
    return json.dumps(manifest, separators=(",", ":")).encode()


def reloaded_from(manifest: bytes, base: str | None) -> bytes:
    """`manifest` as served at `base`: its RELOAD-URI resolved there (RFC 3986 5.2), or left out when that
    gives no absolute URI (Shaka 5 throws on a relative one; without one, players reload the URI they had)."""
    parsed = json.loads(manifest)
    reload_uri = parsed.get("RELOAD-URI")
    if reload_uri is None:
        return manifest
    resolved = urljoin(base, reload_uri) if base else reload_uri
    if urlsplit(resolved).scheme:
        parsed["RELOAD-URI"] = resolved
    else:
        del parsed["RELOAD-URI"]
    return json.dumps(parsed, separators=(",", ":")).encode()
