"""StreamState: one type for /health's "stream" and the SSE state; StatusWatcher: one transition point."""

from __future__ import annotations

import logging

import pytest

from broadcaster.status.assessment import Assessment
from broadcaster.status.hub import EventHub, StatusWatcher
from broadcaster.status.stream import StreamState


@pytest.mark.parametrize(("stream", "ok", "state", "shown", "event"), [
    ("idle", True, StreamState.IDLE, "idle", "offline"),
    ("idle", False, StreamState.IDLE, "idle", "offline"),
    ("live", True, StreamState.LIVE, "live", "online"),
    ("live", False, StreamState.DEGRADED, "live", "degraded"),
    ("ended", False, StreamState.ENDED, "ended", "offline"),
])
def test_each_state_reads_as_health_and_as_an_event(stream: str, ok: bool, state: StreamState, shown: str,
                                                    event: str) -> None:
    assert StreamState.of(stream, ok) is state
    assert state.stream == shown and state.event == event
    assert StreamState.of(state.stream, ok) is state  # what /health shows reads back as the same state


def test_the_transition_point_logs_each_change_and_publishes_each_state_once(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="broadcaster.status.hub")
    hub = EventHub()
    published: list[tuple[str, str]] = []
    monkeypatch.setattr(hub, "state_changed", lambda event, detail: published.append((event, detail)))
    readings = iter([(StreamState.LIVE, "ok"), (StreamState.LIVE, "ok"),
                     (StreamState.DEGRADED, "uploads behind by 9s"),
                     (StreamState.DEGRADED, "uploads behind by 10s"),  # another reason: no transition
                     (StreamState.ENDED, "ok"),
                     (StreamState.IDLE, "ok")])  # a transition, but offline both times: no event
    watcher = StatusWatcher(hub, lambda: Assessment(True, *next(readings), {}))
    assert watcher.state is None
    for _ in range(6):
        watcher.check()
    assert published == [("online", "ok"), ("degraded", "uploads behind by 9s"), ("offline", "ended")]
    assert watcher.state == "offline"
    assert [r.getMessage() for r in caplog.records] == [
        "stream state: live (ok)", "stream state: degraded (uploads behind by 9s)", "stream state: ended (ended)",
        "stream state: idle (idle)"]
