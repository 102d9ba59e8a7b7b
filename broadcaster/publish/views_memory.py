"""How far each pathway lists a variant's playlist, and where it listed what, as the state file keeps it
(pathway_views.PathwayViews saves and restores its views through these)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..playlist.pathway import SegmentUris
from ..playlist.views import GAP, View
from ..state import validate

_MAX_MODES = 100_000  # modes a saved view may hold (a 4 h rewind of 1 s segments is 14,400)


def saved(views: Iterable[View], last: int) -> dict[str, object]:
    """Where each view ends and the modes it listed, for the views that do not list the playlist through
    `last` at their own URIs (most saves hold none: one line per segment stays as short as without
    pathways)."""
    out: dict[str, object] = {}
    for v in views:
        if v.through == last and not v.modes:
            continue
        modes = {"modes": {str(n): m for n, m in v.modes.items()}} if v.modes else {}
        out[v.pathway.id] = {"through": v.through, **modes}
    return out


def restore(data: object, views: Mapping[str, View], uris: Mapping[str, SegmentUris], last: int) -> None:
    """`saved`'s values into `views` (another pathway's are dropped; a view not saved listed the playlist
    whole, through `last`); `uris`: the pathways configured now. Raises ValueError when they do not add up."""
    raw = validate.mapping(data, "the pathways' views", 64)
    for whole in views.values():
        whole.through = last
    for pid, value in raw.items():
        view = views.get(pid)
        fields = validate.mapping(value, f"the {pid} pathway's view", 2)
        through = validate.integer(validate.field(fields, "through", "a view"), "through", -1)
        modes = validate.mapping(fields.get("modes", {}), "modes", _MAX_MODES)
        if view is None:
            continue
        view.through = min(through, last)
        if not view.pathway.is_bucket:
            continue  # the VM's pathway lists what it holds at its own URIs (PathwayViews._extend): no modes
        for n, mode in modes.items():
            number = validate.integer(int(n) if n.isdigit() and len(n) < 19 else -1, "a mode's number")
            text = validate.text(mode, "a mode", 64)
            if text != GAP and text not in uris:
                continue  # a pathway no longer configured: its URI cannot be written; listed at ours
            view.modes[number] = text
