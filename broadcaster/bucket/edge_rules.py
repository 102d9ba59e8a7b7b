"""`hls-broadcaster edge-rules`: what the operator pastes into Cloudflare for a private stream, with the
prefix and tokens' life the service signs with (edge_urls.py)."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any
from urllib.parse import urlsplit

from .. import edge_token
from ..access.tokens import edge_key
from ..settings import Settings, SettingsError, load_settings
from .edge_urls import edge_prefix


def add_parser(sub: Any) -> None:
    sub.add_parser(
        "edge-rules", help="print the Cloudflare rules (or the Worker's values) that guard a private stream's "
                           "segments, and the edge key they check tokens with",
        description="The edge key, the WAF custom rule and Cache Rule (Pro plan and above) and the Worker's "
                    "values (Free plan) for PRIVATE=true, from the settings. The key is a secret: paste it "
                    "into Cloudflare only (docs/private-streams-edge.md).")


def ttl(s: Settings) -> int:
    """Seconds a token is accepted from its window's start: that window, then a listed URI's longest life."""
    return s.private_edge_window + math.ceil(s.segment_url_life)


def rules(s: Settings) -> list[str]:
    """The lines `edge-rules` prints; SettingsError naming the setting when there is nothing to guard."""
    if not s.private:
        raise SettingsError("PRIVATE is not true: edge rules guard a private stream's segments")
    if s.segment_urls == "presigned":
        raise SettingsError("SEGMENT_URLS=presigned: segments are listed with presigned URLs on the S3 API "
                            "host; no edge rule is needed (nor can one see them)")
    public = s.first_bucket.public_url
    host = urlsplit(public).hostname or ""
    prefix = edge_prefix(public, s.r2_key_prefix)
    if not edge_token.good_prefix(prefix):
        raise SettingsError(f"R2_PUBLIC_URL's path and R2_KEY_PREFIX give {prefix!r}: a rule can name path "
                            "characters only")
    key, life = edge_key(s.private_secret), ttl(s)
    return [
        f"Edge key (a secret, derived from PRIVATE_SECRET): {key}",
        f"Segments under {prefix} on {host}; a token is accepted for {life} s "
        f"(PRIVATE_EDGE_WINDOW {s.private_edge_window} + a listed URI's life {math.ceil(s.segment_url_life)}).",
        "",
        "Pro plan and above. Security > WAF > Custom rules > Create rule > Edit expression; action Block:",
        f"  {edge_token.waf_expression(host, prefix, key, life)}",
        "Caching > Cache Rules > Create rule > Edit expression; Eligible for cache, Cache key: Ignore query "
        "string, Browser TTL: respect origin:",
        f"  {edge_token.cache_rule_expression(host, prefix)}",
        "",
        "Free plan: the Worker (deploy/cloudflare-worker/). In wrangler.toml:",
        f"  routes = [{{ pattern = \"{host}\", custom_domain = true }}]",
        f"  bucket_name = \"{s.first_bucket.bucket}\"",
        f"  PREFIX = \"{prefix}\"",
        f"  TTL = \"{life}\"",
        f"  PUBLIC_PATH = \"{urlsplit(public).path.rstrip('/')}\"",
        "then: npx wrangler secret put EDGE_KEY (paste the edge key above), npx wrangler deploy",
    ]


def run(args: argparse.Namespace) -> int:
    try:  # from the environment and the env file: the command takes no setting's flag
        lines = rules(load_settings(env_file=args.env_file, make_state_dir=False))
    except SettingsError as err:
        for problem in err.problems:
            print(f"hls-broadcaster edge-rules: error: {problem}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
