"""StreamState: one type for /health's "stream" and the SSE state; StreamStatus: one transition point."""

from __future__ import annotations

import logging

import pytest

from broadcaster.status.stream import StreamState, StreamStatus


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


def test_the_transition_point_logs_and_notifies_each_change_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broadcaster.status.stream")
    status = StreamStatus()
    seen: list[tuple[StreamState, str]] = []
    status.subscribe(lambda state, detail: seen.append((state, detail)))
    assert status.state is None
    status.set(StreamState.LIVE, "ok")
    status.set(StreamState.LIVE, "ok")
    status.set(StreamState.DEGRADED, "uploads behind by 9s")
    status.set(StreamState.DEGRADED, "uploads behind by 10s")  # another reason: no transition
    status.set(StreamState.ENDED, "ended")
    assert seen == [(StreamState.LIVE, "ok"), (StreamState.DEGRADED, "uploads behind by 9s"),
                    (StreamState.ENDED, "ended")]
    assert status.state is StreamState.ENDED
    assert [r.getMessage() for r in caplog.records] == [
        "stream state: live (ok)", "stream state: degraded (uploads behind by 9s)", "stream state: ended (ended)"]
