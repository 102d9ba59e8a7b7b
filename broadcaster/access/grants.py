"""Who may in, and the token they get: the one judgement every door and POST /live/access share.
`admit` answers a door (a dict lookup for a token seen before); `grant` gives a token for a pass-phrase,
an invite link's token or a still-valid token (renewal re-checks the invite).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .invites import InviteLinks, InvitesFile
from .tokens import PASSPHRASE, Token, ViewerTokens, passphrase_who

NO_TOKEN = "this stream is private: enter the pass-phrase or open your invite link on the stream's page"
BAD_TOKEN = "this access token is not valid: enter the pass-phrase or open your invite link again"
EXPIRED = "this access token has expired: enter the pass-phrase or open your invite link again"
CHANGED = "the pass-phrase has changed: enter the new one"
_SEEN_KEPT = 4096  # tokens whose signature was checked already (each viewer holds one for a token life)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 401: no token; 403: one that does not let in
    message: str


@dataclass(frozen=True, slots=True)
class Grant:
    token: str
    expires: int  # Unix seconds


@dataclass(frozen=True)
class Keys:
    """What a private stream is opened with (PRIVATE_SECRET, PRIVATE_PASSPHRASE: "" = invites only)."""

    secret: str
    passphrase: str = ""
    life: int = 600  # PRIVATE_TOKEN_LIFE


class Gatekeeper:
    def __init__(self, keys: Keys, invites: InvitesFile, clock: Callable[[], float] = time.time) -> None:
        self._tokens = ViewerTokens(keys.secret)
        self._links = InviteLinks(keys.secret)
        # Compared as digests: equal lengths, so compare_digest's time says nothing of the pass-phrase.
        self._passphrase = hashlib.sha256(keys.passphrase.encode()).digest() if keys.passphrase else None
        self._passphrase_who = passphrase_who(keys.secret, keys.passphrase) if keys.passphrase else None
        self._life = keys.life
        self._invites = invites
        self._clock = clock
        self._seen: dict[str, Token] = {}

    def admit(self, text: str | None) -> Refusal | None:
        """None: the request may in; else why not."""
        judged = self._judged(text)
        return judged if isinstance(judged, Refusal) else None

    def lets_in(self, text: str) -> float | None:
        """None: `text` does not let in now; else for how many seconds it does (unless the invites change)."""
        judged = self._judged(text)
        if isinstance(judged, Refusal):
            return None
        invite = self._invites.get(judged.who) if judged.who[0] != PASSPHRASE else None
        return min(judged.expires, invite.expires if invite is not None else judged.expires) - self._clock()

    def invites_version(self) -> int:
        return self._invites.version()

    def _judged(self, text: str | None) -> Token | Refusal:
        if not text:
            return Refusal(401, NO_TOKEN)
        token = self._seen.get(text)
        if token is None:
            token = self._tokens.read(text)
            if token is None:
                return Refusal(403, BAD_TOKEN)
            if len(self._seen) >= _SEEN_KEPT:
                self._seen.clear()
            self._seen[text] = token
        if self._clock() >= token.expires:
            return Refusal(403, EXPIRED)
        if token.who[0] != PASSPHRASE:  # an invite's (not the property: this is every door's path)
            invite = self._invites.get(token.who)
            why = "this invite is no longer valid" if invite is None else invite.refusal(self._clock())
            if why is not None:
                return Refusal(403, why)
        elif token.who != PASSPHRASE and token.who != self._passphrase_who:
            return Refusal(403, CHANGED)  # given for a pass-phrase since changed (or, with none now, dropped)
        return token

    def grant(self, asked: Mapping[str, object]) -> Grant | Refusal:
        """A token for a pass-phrase, an invite link's token, or a valid token to renew."""
        now = self._clock()
        passphrase, invite, token = asked.get("passphrase"), asked.get("invite"), asked.get("token")
        if isinstance(passphrase, str):
            if self._passphrase is None:
                return Refusal(403, "this stream takes invite links only")
            # Stripped, as the setting is: a space typed or pasted around it is no other pass-phrase.
            given = hashlib.sha256(passphrase.strip().encode()).digest()
            if not hmac.compare_digest(given, self._passphrase):
                return Refusal(403, "wrong pass-phrase")
            assert self._passphrase_who is not None  # set with the pass-phrase
            return self._mint(self._passphrase_who, now)
        if isinstance(invite, str):
            name = self._links.name_of(invite)
            return Refusal(403, "this invite is not valid") if name is None else self._invited(name, now)
        if isinstance(token, str):
            held = self._judged(token)
            if isinstance(held, Refusal):
                return held
            if held.who == PASSPHRASE:  # the tracker's own (or one from before pass-phrases were marked)
                return Refusal(403, CHANGED if self._passphrase_who else "this stream takes invite links only")
            return self._mint(held.who, now) if not held.invited else self._invited(held.who, now)
        return Refusal(400, 'send {"passphrase": "..."}, {"invite": "..."} or {"token": "..."}')

    def _invited(self, name: str, now: float) -> Grant | Refusal:
        invite = self._invites.current(name)
        why = "this invite is not valid" if invite is None else invite.refusal(now)
        if why is not None or invite is None:
            return Refusal(403, why or "this invite is not valid")
        return self._mint(name, now, invite.expires)

    def _mint(self, who: str, now: float, until: int | None = None) -> Grant:
        expires = int(now) + self._life
        if until is not None:
            expires = min(expires, until)  # no token outlives its invite
        return Grant(self._tokens.mint(who, expires), expires)
