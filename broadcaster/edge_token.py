"""The edge token in segment URIs, as Cloudflare's WAF checks it with `is_timed_hmac_valid_v0`: a
timestamp and the base64 HMAC-SHA256 of the message followed by that timestamp, URL-encoded in the query
(`?verify=<ts>-<mac>`; developers.cloudflare.com/waf/custom-rules/use-cases/configure-token-authentication/
and developers.cloudflare.com/ruleset-engine/rules-language/functions/#hmac-validation).

A PREFIX signature: the message is the stream's path prefix on the public URL (`/live/`), not a segment's
path, so one `verify=` value covers every segment listed in a window for every viewer. The WAF rule
rebuilds the signed text as `concat("<prefix>", "?", http.request.uri.query)`; the Free plan's Worker
(deploy/cloudflare-worker/worker.js) rebuilds the same text and checks it the same way (`valid` here is
what both do, and what the tests hold each to).

Shared: it imports no stage (the bucket's URL maker signs with it, the VM's segment door checks with it,
`hls-broadcaster edge-rules` prints the rules it writes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from urllib.parse import quote, unquote

PARAM = "verify"  # the query parameter carrying the token
SEPARATOR = f"?{PARAM}="  # between the signed prefix and the timestamp in the text the rule checks
TIMESTAMP_DIGITS = 10  # the function's MessageMAC: (.+)(.*)(\d{10})-(.{43,})
MAC_BYTES = 32  # SHA-256
MIN_MAC_CHARS = 43
MAX_TEXT_CHARS = 2048  # a longer MessageMAC is not ours: refused without hashing it
# A prefix written into a rule's string literal: path characters only (no quote, no backslash).
_PREFIX = re.compile(r"/(?:[A-Za-z0-9._~!$&'()*+,;=:@%-]+/)*")


def sign(secret: str, message: str, ts: int) -> str:
    """The `verify=` query value for `message` at `ts` (Unix seconds): `<ts>-<URL-encoded base64 MAC>`.
    `secret` is the edge key as the operator pastes it (its text is the HMAC key, as the rule's literal)."""
    digest = hmac.new(secret.encode(), f"{message}{ts}".encode(), hashlib.sha256).digest()
    return f"{ts}-{quote(base64.b64encode(digest).decode(), safe='')}"


def parts(message_and_token: str, separator_len: int) -> tuple[str, int, bytes] | None:
    """The message, timestamp and MAC of `<message><separator><10-digit timestamp>-<mac>` as the function
    reads it: the separator skipped by its length, whatever it holds; the MAC URL-decoded, then base64;
    None when the text is not of that form."""
    if len(message_and_token) > MAX_TEXT_CHARS or separator_len < 0:
        return None
    head, dash, encoded = message_and_token.rpartition("-")
    stamp = head[-TIMESTAMP_DIGITS:]
    message = head[: max(len(head) - TIMESTAMP_DIGITS - separator_len, 0)]
    if not dash or len(encoded) < MIN_MAC_CHARS or len(stamp) != TIMESTAMP_DIGITS or not stamp.isascii() \
            or not stamp.isdigit() or not message:
        return None
    try:
        mac = base64.b64decode(unquote(encoded), validate=True)
    except (binascii.Error, ValueError):
        return None
    return (message, int(stamp), mac) if len(mac) == MAC_BYTES else None


def valid(secret: str, message_and_token: str, ttl: int, now: int, separator_len: int) -> bool:
    """What `is_timed_hmac_valid_v0(secret, message_and_token, ttl, now, separator_len)` answers (without
    its `flags`: the MAC is standard base64, URL-encoded): the MAC compared in constant time with
    HMAC-SHA256(secret, message + timestamp), and valid while `now < timestamp + ttl` (the documented
    formula: a timestamp ahead of `now` is not refused; only the key's holder can write one)."""
    found = parts(message_and_token, separator_len)
    if found is None:
        return False
    message, stamp, mac = found
    signed = f"{message}{stamp:0{TIMESTAMP_DIGITS}d}".encode()
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return hmac.compare_digest(mac, expected) and now < stamp + ttl


def checked_text(prefix: str, query: str) -> str:
    """The text the WAF rule (and the Worker) checks for a request under `prefix` with this query string:
    the prefix, `?`, the query as sent (`verify=` must be its only parameter, as Cloudflare asks)."""
    return f"{prefix}?{query}"


def _literal(text: str) -> str:
    """A Rules language string literal (JSON's escaping is the language's for `"` and `\\`)."""
    return json.dumps(text)


def good_prefix(prefix: str) -> bool:
    """Whether `prefix` is a path prefix the rules can name: `/`, or `/a/b/`, path characters only."""
    return _PREFIX.fullmatch(prefix) is not None


def waf_expression(host: str, prefix: str, secret: str, ttl: int) -> str:
    """The WAF custom rule's expression (action: Block) for a stream whose segments are under `prefix` on
    `host`: a request there without a token the function accepts is blocked. WAF custom rules run before
    the cache, so a cache hit is checked too."""
    return (f"(http.host eq {_literal(host)} and starts_with(http.request.uri.path, {_literal(prefix)}) "
            f"and not is_timed_hmac_valid_v0({_literal(secret)}, concat({_literal(prefix)}, \"?\", "
            f"http.request.uri.query), {ttl}, http.request.timestamp.sec, {len(SEPARATOR)}))")


def cache_rule_expression(host: str, prefix: str) -> str:
    """The Cache Rule's expression (Eligible for cache; cache key: ignore query string): one cache entry
    per segment for every viewer and every window's token."""
    return f"(http.host eq {_literal(host)} and starts_with(http.request.uri.path, {_literal(prefix)}))"
