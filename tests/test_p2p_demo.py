"""`hls-broadcaster demo --p2p`: its switch, and what it says without Node.js. The demo with the tracker
running is tested from the installed wheel (test_package), which ships the tracker's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.cli import build_parser
from broadcaster.demo import tracker as tracker_module
from broadcaster.demo.tracker import TrackerUnavailable, install


def test_the_demo_has_a_p2p_switch() -> None:
    args = build_parser().parse_args(["demo", "--p2p"])
    assert args.p2p is True
    assert build_parser().parse_args(["demo"]).p2p is False


def test_without_node_the_tracker_says_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tracker_module, "which", lambda name: None)
    with pytest.raises(TrackerUnavailable, match="Node.js .* is not installed; apt install nodejs npm"):
        install(tmp_path)
