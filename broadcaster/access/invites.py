"""Named invites: the file `hls-broadcaster invite` manages (`{name: {"expires", "revoked"}}`), and the
links it prints (`<name>.<HMAC>`): the signature says the service made it, the file whether it still holds.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..files import write_whole
from .tokens import INVITE, NAME, derive, mac

MAX_INVITES = 10_000  # a file with more is not one `invite add` wrote
MAX_FILE_BYTES = 2_000_000
DAY = 86_400
# Seconds between looks at the file: a revoke takes effect within this (twice this in admitted.py).
LOOK_EVERY = 0.5

log = logging.getLogger(__name__)


class InviteError(Exception):
    """One line naming the file or the invite, for the operator."""


@dataclass(frozen=True, slots=True)
class Invite:
    name: str
    expires: int  # Unix seconds
    revoked: bool = False

    def refusal(self, now: float) -> str | None:
        """Why this invite lets no one in now (the words a viewer reads), or None."""
        if self.revoked:
            return "this invite was revoked"
        if now >= self.expires:
            return f"this invite expired on {shown_date(self.expires)}"
        return None


def shown_date(unix: int) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class InviteLinks:
    """The token an invite link carries, and the name a link's token names when its signature holds."""

    def __init__(self, secret: str) -> None:
        self._key = derive(secret, INVITE)

    def token(self, name: str) -> str:
        return f"{name}.{mac(self._key, 'invite ' + name)}"

    def name_of(self, token: str) -> str | None:
        name, dot, signature = token.partition(".")
        if not dot or len(token) > 200 or NAME.fullmatch(name) is None:
            return None
        return name if hmac.compare_digest(mac(self._key, "invite " + name).encode(), signature.encode()) else None


def read_invites(path: Path) -> dict[str, Invite]:
    """The invites in `path` (none when it does not exist); InviteError naming the file when unreadable."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InviteError(f"{path}: larger than {MAX_FILE_BYTES} bytes: not an invites file")
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise InviteError(f"{path}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    except ValueError as err:
        raise InviteError(f"{path}: not JSON ({err})") from None
    if not isinstance(raw, dict) or len(raw) > MAX_INVITES:
        raise InviteError(f"{path}: expected an object of at most {MAX_INVITES} invites by name")
    invites = {}
    for name, entry in raw.items():
        if (NAME.fullmatch(name) is None or not isinstance(entry, dict)
                or not isinstance(entry.get("expires"), int) or isinstance(entry.get("expires"), bool)
                or not isinstance(entry.get("revoked", False), bool)):
            raise InviteError(f"{path}: invite {name[:40]!r} is not {{\"expires\": <Unix s>, \"revoked\": bool}}")
        invites[name] = Invite(name, entry["expires"], entry.get("revoked", False))
    return invites


def write_invites(path: Path, invites: Mapping[str, Invite]) -> None:
    text = json.dumps({i.name: {"expires": i.expires, "revoked": i.revoked} for i in invites.values()}, indent=1)
    try:
        write_whole(path, f"{text}\n".encode())
    except OSError as err:
        raise InviteError(f"{path}: cannot write it ({err.strerror or err})") from None


class InvitesFile:
    """The invites as the service reads them: read again when the file changed, at most every LOOK_EVERY."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._clock = clock
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of what was read
        self._looked = float("-inf")
        self._invites: dict[str, Invite] = {}
        self._version = 0  # how many times what was read changed

    def get(self, name: str) -> Invite | None:
        self._look()
        return self._invites.get(name)

    def current(self, name: str) -> Invite | None:
        """get(), the file looked at now (POST /live/access: a link opened at once after `invite add`)."""
        self._looked = self._clock()
        self._refresh()
        return self._invites.get(name)

    def version(self) -> int:
        """A number that changes whenever the invites read change."""
        self._look()
        return self._version

    def _look(self) -> None:
        now = self._clock()
        if now - self._looked >= LOOK_EVERY:
            self._looked = now
            self._refresh()

    def _refresh(self) -> None:
        try:
            st = self._path.stat()
            seen: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            seen = None
        if seen == self._seen:
            return
        try:
            self._invites = read_invites(self._path) if seen is not None else {}
        except InviteError as err:
            log.warning("%s: no invite lets anyone in until it is fixed", err)
            self._invites = {}
        self._seen = seen
        self._version += 1
