"""The edge token in segment URIs, as Cloudflare's WAF checks it with `is_timed_hmac_valid_v0`: a
timestamp and the base64 HMAC-SHA256 of the message followed by that timestamp, URL-encoded in the query
(`?verify=<ts>-<mac>`; developers.cloudflare.com/waf/custom-rules/use-cases/configure-token-authentication/).

Shared: it imports no stage (the bucket's URL maker signs with it, the VM's segment door checks with it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote


def sign(secret: str, message: str, ts: int) -> str:
    """The `verify=` query value for `message` at `ts` (Unix seconds): `<ts>-<URL-encoded base64 MAC>`."""
    digest = hmac.new(secret.encode(), f"{message}{ts}".encode(), hashlib.sha256).digest()
    return f"{ts}-{quote(base64.b64encode(digest).decode(), safe='')}"
