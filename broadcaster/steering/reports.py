"""A viewer page's `Hb-Pathway: <pathway> [<pathway>=<count> ...]`: the pathway it plays ("-": not known)
and its failed segment fetches on each since its previous beat (at most MOST). Words not understood are
ignored and counted, the rest heard. A claim anyone can make: it never moves players.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..numbers import whole_number
from ..playlist import hls

MOST = 255
MAX_WORDS = 8  # a pathway and a count for each of a few pathways; the rest of a longer header is ignored
COUNT_DIGITS = 6
_NOT_KNOWN = "-"


def parse(text: str, known: tuple[str, ...] = hls.PATHWAYS) -> tuple[str | None, dict[str, int], int]:
    """(the pathway played or None, failed fetches by pathway, words ignored)."""
    words = text.split(" ", MAX_WORDS)
    ignored = 0
    if len(words) > MAX_WORDS:
        words.pop()
        ignored += 1
    first = words[0]
    pathway = first if first in known else None
    if pathway is None and first != _NOT_KNOWN:
        ignored += 1
    failed: dict[str, int] = {}
    for word in words[1:]:
        name, equals, count = word.partition("=")
        n = whole_number(count, COUNT_DIGITS) if equals else None
        if n is None or name not in known or name in failed:
            ignored += 1
            continue
        failed[name] = min(n, MOST)
    return pathway, {p: n for p, n in failed.items() if n}, ignored


@dataclass(eq=False)
class PathwayReports:
    """The heartbeat route's `pathway` hook: each page's word, parsed and told to the policy, and counted."""

    tell: Callable[[str, str | None, Mapping[str, int], str | None], None]
    known: tuple[str, ...] = hls.PATHWAYS
    heard: int = 0
    failing: int = 0
    ignored: int = 0

    def __call__(self, viewer: str, client: str | None, text: str) -> None:
        pathway, failed, ignored = parse(text, self.known)
        self.heard += 1
        self.failing += bool(failed)
        self.ignored += ignored
        self.tell(viewer, pathway, failed, client)
