"""Viewer tokens: `v1.<expires>.<who>.<base64url HMAC-SHA256(key("viewer"), "v1.<expires>.<who>")>`.
Every key is derived from PRIVATE_SECRET by purpose, so no kind stands in for another; nothing is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

VERSION = "v1"
VIEWER, EDGE, INVITE, PASSPHRASE_MARK = "viewer", "edge", "invite", "passphrase"  # purposes keys serve
# Who a pass-phrase's token was given to: `-` and 8 characters of a MAC of the pass-phrase (so changing
# PRIVATE_PASSPHRASE ends its tokens), or `-` alone (the P2P tracker's own, which knows no pass-phrase).
PASSPHRASE = "-"
_PASSPHRASE_WHO = re.compile(r"-[A-Za-z0-9_-]{0,8}")
# An invite's name: no dot (it separates a token's fields), no leading `-` (a pass-phrase's).
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,39}")
MAX_TOKEN_CHARS = 200  # a longer one is not ours: judged without hashing it


def derive(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def passphrase_who(secret: str, passphrase: str) -> str:
    return PASSPHRASE + mac(derive(secret, PASSPHRASE_MARK), passphrase)[:8]


def edge_key(secret: str) -> str:
    """The edge token's secret as the operator pastes it into the WAF rule or the Worker: hex."""
    return derive(secret, EDGE).hex()


def mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Token:
    """A viewer token whose signature holds: until when, and for whom."""

    expires: int  # Unix seconds
    who: str  # an invite's name, or a pass-phrase's mark (PASSPHRASE first)

    @property
    def invited(self) -> bool:
        return not self.who.startswith(PASSPHRASE)


class ViewerTokens:
    """Mints and reads viewer tokens; reading checks the form and the signature only."""

    def __init__(self, secret: str) -> None:
        self._key = derive(secret, VIEWER)

    def mint(self, who: str, expires: int) -> str:
        body = f"{VERSION}.{expires}.{who}"
        return f"{body}.{mac(self._key, body)}"

    def read(self, text: str) -> Token | None:
        if len(text) > MAX_TOKEN_CHARS:
            return None
        parts = text.split(".")
        if len(parts) != 4 or parts[0] != VERSION or not parts[1].isdigit() or len(parts[1]) > 12:
            return None
        who = parts[2]
        if _PASSPHRASE_WHO.fullmatch(who) is None and NAME.fullmatch(who) is None:
            return None
        body = text.rpartition(".")[0]
        if not hmac.compare_digest(mac(self._key, body).encode(), parts[3].encode()):
            return None
        return Token(int(parts[1]), who)
