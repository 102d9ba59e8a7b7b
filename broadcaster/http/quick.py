"""Plain playlist GETs answered from bytes made once per version, before aiohttp parses them (aiohttp
spends most of such a request on what every request shares). Only one strict, whole, bodiless GET answered
200, on a connection aiohttp holds nothing of; anything else goes to aiohttp, whose answer stays the
reference. A private stream's media playlists only with a token its gate admits."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from .answers import dated

# The route's (head up to the Date, body) given the Accept-Encoding; None: not a 200, aiohttp's to answer.
Answer = Callable[[str], "tuple[bytes, bytes] | None"]
Numbered = Callable[[int, str], "tuple[bytes, bytes] | None"]  # the same for variant n
# A path that reads its request itself (steering_route.QuickSteering): given its bytes, query and peer.
Whole = Callable[[bytes, bytes, Callable[[], str]], "bytes | None"]

_MAX_HEAD = 4096  # a player's head is a few hundred bytes; aiohttp reads longer ones
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # a field name (RFC 9110 5.6.2)
# One whole head and nothing after it, read from the end of its target on: HTTP/1.1, at most 64 fields
# of printable ASCII (obs-text and bare LFs go to aiohttp). Each field is taken with the LF before it, so
# a search for a field name starts with that literal, which the regex engine skips to.
_HEAD = re.compile(rb" HTTP/1\.1\r(\n(?:" + _TOKEN + rb":[\t -~]*\r\n){0,64})\r\n")
# Fields (lowercased) that change how the request is read (_READ) or answered too (_REFUSED).
_CHANGES = rb"content-length|transfer-encoding|upgrade|expect|connection(?!:[\t ]*keep-alive[\t ]*\r)"
_REFUSED = re.compile(rb"\n(?:" + _CHANGES + rb"|if-none-match):")
_READ = re.compile(rb"\n(?:" + _CHANGES + rb"):")
_ACCEPT_ENCODING = re.compile(rb"\naccept-encoding:[\t ]*([^\r]*?)[\t ]*\r")
# A private stream's viewer token as the gate reads it (gate.token_of), judged by its bytes as sent:
# one with anything around it that aiohttp would strip goes to the gate.
ACCESS_QUERY = b"?access="  # gate.ACCESS as a target's whole query starts
_BEARER = re.compile(rb"\nauthorization:[\t ]*bearer +([^\r]*)\r", re.IGNORECASE)
_TARGET = re.compile(rb"/[!-~]*")  # origin-form, printable ASCII
_BODY_FIELDS = (b"content-length", b"transfer-encoding", b"upgrade")
_PUBLIC, _PRIVATE = b"\r\nCache-Control: public,", b"\r\nCache-Control: private,"  # as answers.raw_head writes it
_PRIVATE_HEADS_KEPT = 64  # a few versions' heads, per variant and encoding
_MAX_VARIANT_DIGITS = 4  # as the route: a longer number cannot be a variant of ours


class QuickAnswers:
    """The playlist paths answered before aiohttp, and the answering."""

    def __init__(self, admit: Callable[[bytes], bool] | None = None) -> None:
        """`admit`: a private stream's gatekeeper, given the token as sent (None: public, no query at all)."""
        self._admit = admit
        self._exact: dict[bytes, Answer] = {}
        self._numbered: dict[tuple[bytes, bytes], Numbered] = {}  # /<folder>/<n>/<name>
        self._whole: dict[bytes, Whole] = {}
        self.answered = 0  # requests answered here (not through aiohttp)

    def exact(self, path: str, answer: Answer) -> None:
        self._exact[path.encode()] = answer

    def numbered(self, folder: str, name: str, answer: Numbered) -> None:
        """/<folder>/<n>/<name>, n in plain digits; `folder` may hold a "/" (another pathway's: live/vm)."""
        self._numbered[(folder.encode(), name.encode())] = answer

    def whole(self, path: str, answer: Whole) -> None:
        """`path` answered by `answer` whatever its query: it reads the request itself (plain_fields)."""
        self._whole[path.encode()] = answer

    def answer(self, data: bytes, peer: Callable[[], str] = str) -> bytes | None:
        """The whole answer to `data` when it is one plain GET of a path here answered 200; else None."""
        if len(data) > _MAX_HEAD or not data.startswith(b"GET /"):
            return None
        end = data.find(b" ", 4)
        if end < 0:
            return None
        if self._whole:
            path, _, query = data[4:end].partition(b"?")
            whole = self._whole.get(path)
            if whole is not None:
                taken = whole(data, query, peer)
                if taken is not None:
                    self.answered += 1
                return taken
        # Any other query stays in `path`, which then is no path answered here.
        path, asks, token = data[4:end].partition(ACCESS_QUERY)
        route = self._route(path)
        if route is None:
            return None
        head = _HEAD.fullmatch(data, end)
        if head is None:
            return None
        raw = head.group(1)
        fields = raw.lower()
        if _REFUSED.search(fields) is not None:
            return None
        if self._admit is None:
            if asks:
                return None
        else:
            bearer = None if asks else _BEARER.search(raw)  # the first Authorization field, if a Bearer one
            if not self._admit(token if asks else b"" if bearer is None else bearer.group(1)):
                return None  # a private stream's door without a token it admits: the gate's to refuse
        coding = _ACCEPT_ENCODING.search(fields)
        try:
            found = route(coding.group(1).decode("ascii") if coding is not None else "")
        except Exception:  # noqa: BLE001 (aiohttp's route answers it, and logs what fails there)
            return None
        if found is None:
            return None
        self.answered += 1
        if self._admit is not None:  # what a token opened: no cache in front keeps it (gate.kept_private)
            return dated(_private(found[0]), found[1])
        return dated(*found)

    def _route(self, path: bytes) -> Answer | None:
        """What answers `path` (given the request's Accept-Encoding), or None."""
        exact = self._exact.get(path)
        if exact is not None:
            return exact
        folder, _, rest = path[1:].rpartition(b"/")  # <folder>/<n>/<name>: a pathway's folder holds a "/"
        folder, _, digits = folder.rpartition(b"/")
        numbered = self._numbered.get((folder, rest)) if folder else None
        if (numbered is None or not digits.isdigit() or len(digits) > _MAX_VARIANT_DIGITS
                or (digits[0] == 0x30 and digits != b"0")):
            return None
        return functools.partial(numbered, int(digits))


@functools.lru_cache(maxsize=_PRIVATE_HEADS_KEPT)
def _private(head: bytes) -> bytes:
    """`head` saying `private`, made once a version."""
    return head.replace(_PUBLIC, _PRIVATE, 1)


def plain_fields(data: bytes) -> bytes | None:
    """The header fields of `data` as sent when it is one whole GET head this strict reading takes."""
    end = data.find(b" ", 4)
    if not data.startswith(b"GET /") or end < 0 or _TARGET.fullmatch(data, 4, end) is None:
        return None
    head = _HEAD.fullmatch(data, end)
    if head is None:
        return None
    fields = head.group(1)  # each field after an LF
    return None if _READ.search(fields.lower()) is not None else fields[1:]


def whole_heads(data: bytes) -> bool:
    """Whether bytes given to aiohttp leave its parser holding nothing (a head's end, no body)."""
    if not data.endswith(b"\r\n\r\n"):
        return False
    lowered = data.lower()
    return not any(name in lowered for name in _BODY_FIELDS)


# aiohttp's RequestHandler keeps these privately (aiohttp 3.14): without them, nothing is answered here.

def idle(handler: Any) -> bool:
    """aiohttp waits for the connection's next request: nothing in hand, queued or being closed."""
    try:
        waiter = handler._waiter
        handler._next_keepalive_close_time  # noqa: B018 (kept_alive's: an older aiohttp has none)
        return (waiter is not None and not waiter.done() and not handler._messages
                and handler._keepalive_handle is not None and not handler._close and not handler._force_close
                and handler._payload_parser is None and not handler._upgraded)
    except AttributeError:
        return False


def kept_alive(handler: Any, now: float) -> None:
    """After an answer given here: the idle connection is closed a keep-alive timeout from now."""
    handler._next_keepalive_close_time = now + handler._keepalive_timeout
