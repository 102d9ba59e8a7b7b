"""The steering manifest (7.1; Apple's "HLS Content Steering Specification"): the JSON a player
reloads every TTL seconds to learn which pathway to play, best first. Pure: rendered once per change."""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

from . import hls


def render_steering(priority: Sequence[str], ttl: int, reload_uri: str | None = None) -> bytes:
    """The manifest's bytes: VERSION, TTL, RELOAD-URI (when given) and PATHWAY-PRIORITY (unique IDs, at
    least one), in the order 7.1 lists them."""
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
    """`manifest` as served at `base` (`https://host/folder/`): its RELOAD-URI resolved there (RFC 3986
    5.2), or left out when that gives no absolute URI (no base, or a network-path one): Shaka 5 appends
    its _HLS_pathway with `new URL(uri)` and no base, which throws on a relative RELOAD-URI (it never
    read a priority after its first manifest), and without one every player reloads the URI it had."""
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
