"""The edge token in segment URIs (`?verify=<ts>-<mac>`), as Cloudflare's WAF checks it with
`is_timed_hmac_valid_v0` (developers.cloudflare.com/ruleset-engine/rules-language/functions/#hmac-validation).
The message is the stream's path prefix (`/live/`), so one value covers every segment in a window; the
Free plan's Worker (deploy/cloudflare-worker/worker.js) checks the same text the same way (`valid`).
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
    """The `verify=` value for `message` at `ts` (Unix seconds): `<ts>-<URL-encoded base64 MAC>`."""
    digest = hmac.new(secret.encode(), f"{message}{ts}".encode(), hashlib.sha256).digest()
    return f"{ts}-{quote(base64.b64encode(digest).decode(), safe='')}"


def parts(message_and_token: str, separator_len: int) -> tuple[str, int, bytes] | None:
    """The message, timestamp and MAC of `<message><separator><timestamp>-<mac>`, or None."""
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
    """What `is_timed_hmac_valid_v0` answers: valid while `now < timestamp + ttl`."""
    found = parts(message_and_token, separator_len)
    if found is None:
        return False
    message, stamp, mac = found
    signed = f"{message}{stamp:0{TIMESTAMP_DIGITS}d}".encode()
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return hmac.compare_digest(mac, expected) and now < stamp + ttl


def checked_text(prefix: str, query: str) -> str:
    """The text the WAF rule (and the Worker) checks for a request under `prefix` with this query string."""
    return f"{prefix}?{query}"


def _literal(text: str) -> str:
    return json.dumps(text)  # JSON's escaping is the Rules language's for `"` and `\\`


def good_prefix(prefix: str) -> bool:
    """Whether `prefix` is `/`, or `/a/b/`, path characters only."""
    return _PREFIX.fullmatch(prefix) is not None


def waf_expression(host: str, prefix: str, secret: str, ttl: int) -> str:
    """The WAF custom rule's expression (action: Block; it runs before the cache, so hits are checked)."""
    return (f"(http.host eq {_literal(host)} and starts_with(http.request.uri.path, {_literal(prefix)}) "
            f"and not is_timed_hmac_valid_v0({_literal(secret)}, concat({_literal(prefix)}, \"?\", "
            f"http.request.uri.query), {ttl}, http.request.timestamp.sec, {len(SEPARATOR)}))")


def cache_rule_expression(host: str, prefix: str) -> str:
    """The Cache Rule's expression (cache key ignoring the query: one entry per segment for every token)."""
    return f"(http.host eq {_literal(host)} and starts_with(http.request.uri.path, {_literal(prefix)}))"
