"""The tunnel as `cloudflared.yml.example` declares it: its ingress rules, and where cloudflared sends a
request (the first rule whose hostname and path match, the path matched as Go's regexp does, with RE2)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import re2

from tests.support.strict_yaml import strict_yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "http://127.0.0.1:3000"
# Layout B: Owncast and the playlists on the same hostname. Owncast's two playlist paths go to the
# service, everything else on the hostname to Owncast (its page, API, chat, its own /hls/ files).
OWNCAST_HOST = "owncast.example.com"
OWNCAST = "http://127.0.0.1:8080"
OWNCAST_PLAYLISTS = r"^/hls/(stream|[0-9]+/stream)\.m3u8$"
# The viewers' WebTorrent tracker (P2P_TRACKERS, deploy/tracker/): WebSockets on a hostname of its own.
TRACKER_HOST = "tracker.example.com"
TRACKER = "http://127.0.0.1:8000"


def tunnel_rules() -> list[dict[str, Any]]:
    return [dict(rule) for rule in _read_rules(ROOT / "cloudflared.yml.example")]


@functools.cache
def _read_rules(path: Path) -> tuple[dict[str, Any], ...]:
    """The file read once per process (route() asks for every path it routes: hypothesis asks hundreds)."""
    config = strict_yaml(path)
    assert config["tunnel"] and config["credentials-file"]
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", config["tunnel"]), config["tunnel"]
    return tuple(config["ingress"])


def go_search(pattern: str, text: str) -> bool:
    """Go's regexp.MatchString, which cloudflared applies to the request's path (ingress/rule.go), with
    RE2's own engine (google-re2): Go's regexp is a port of RE2, with its syntax (no lookaround, no
    backreferences) and its meaning where Python's re differs: $ (without the m flag) is the end of
    the text only, never before a final newline (a path with %0A), and \\d, \\w are ASCII only."""
    return re2.search(pattern, text) is not None


def route(path: str, host: str = "live.example.com") -> str:
    """cloudflared's matching: the first rule whose hostname and (unanchored) path regex match. `path` is
    the request's path as Go's net/url decodes it (req.URL.Path: %2e%2e is already .., %0A a newline)."""
    for rule in tunnel_rules():
        if "hostname" in rule and rule["hostname"].lower() != host.lower():
            continue
        if "path" in rule and not go_search(rule["path"], path):
            continue
        return str(rule["service"])
    raise AssertionError("no catch-all rule")
