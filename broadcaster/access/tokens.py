"""Viewer tokens: `v1.<expires>.<who>.<base64url HMAC-SHA256(key("viewer"), "v1.<expires>.<who>")>`.

Every key is derived from PRIVATE_SECRET by purpose (`key(purpose) = HMAC-SHA256(secret, purpose)`), so
one secret serves viewer tokens, edge tokens and invite links without one standing in for another, and
rotating it ends them all. A token names who it was given to (an invite's name, or a mark of the
pass-phrase), so it is re-checked against the invites file or the pass-phrase now set; nothing is stored.
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
# An invite's name: what `invite add` takes (no dot: it separates a token's fields; no leading `-`: that
# is a pass-phrase's).
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,39}")
MAX_TOKEN_CHARS = 200  # a longer one is not ours: judged without hashing it


def derive(secret: str, purpose: str) -> bytes:
    """The key for one purpose (design: HMAC-SHA256(PRIVATE_SECRET, purpose))."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def passphrase_who(secret: str, passphrase: str) -> str:
    """Who a token given for `passphrase` names: it changes when the pass-phrase does."""
    return PASSPHRASE + mac(derive(secret, PASSPHRASE_MARK), passphrase)[:8]


def edge_key(secret: str) -> str:
    """The edge token's secret as the operator pastes it into the WAF rule or the Worker: hex."""
    return derive(secret, EDGE).hex()


def mac(key: bytes, message: str) -> str:
    """base64url (no padding) of HMAC-SHA256(key, message)."""
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
    """Mints and reads viewer tokens under one secret. Reading checks the form and the signature (in
    constant time) only; whether it has expired, or its invite is still good, is the caller's to judge."""

    def __init__(self, secret: str) -> None:
        self._key = derive(secret, VIEWER)

    def mint(self, who: str, expires: int) -> str:
        body = f"{VERSION}.{expires}.{who}"
        return f"{body}.{mac(self._key, body)}"

    def read(self, text: str) -> Token | None:
        """The token `text` is, or None: not one of ours (malformed, or signed with another secret)."""
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
