"""What a viewer page's heartbeat says of the pathways (`Hb-Pathway`, viewer/playback.js): the pathway it
plays now and its segment fetches that failed on each pathway since its previous beat.

`Hb-Pathway: <pathway> <failed on bucket> <failed on vm> <failed on backup>`: a pathway ID of
hls.PATHWAYS (or "-": not known, e.g. Safari's own player), then three whole numbers, each at most 255
(more is taken as 255: one page weighs one page in the policy, however many failures it claims).
Anything else is ignored and counted (`malformed`): the header rides on a beat the count already took.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..numbers import whole_number
from ..playlist import hls

MOST = 255
_NOT_KNOWN = "-"


def parse(text: str) -> tuple[str | None, dict[str, int]] | None:
    """(pathway or None, failed fetches by pathway), or None when it is not of that form."""
    words = text.split(" ")
    if len(words) != 1 + len(hls.PATHWAYS):
        return None
    pathway = words[0]
    if pathway != _NOT_KNOWN and pathway not in hls.PATHWAYS:
        return None
    failed: dict[str, int] = {}
    for name, word in zip(hls.PATHWAYS, words[1:], strict=True):
        n = whole_number(word, 6)
        if n is None:
            return None
        if n:
            failed[name] = min(n, MOST)
    return (None if pathway == _NOT_KNOWN else pathway), failed


class PathwayReports:
    """The heartbeat route's `pathway` hook: each page's word, parsed and told to the policy."""

    def __init__(self, tell: Callable[[str, str | None, Mapping[str, int]], None]) -> None:
        self._tell = tell
        self.heard = 0
        self.malformed = 0

    def __call__(self, viewer: str, text: str) -> None:
        said = parse(text)
        if said is None:
            self.malformed += 1
            return
        self.heard += 1
        self._tell(viewer, *said)
