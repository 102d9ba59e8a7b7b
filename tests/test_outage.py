"""OutageLog: a bucket outage told in a few lines, on a fake clock."""

from __future__ import annotations

import logging

import pytest

from broadcaster.bucket.outage import OutageLog
from tests.support.fakes import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "outage-test"]


def outage_log(clock: Clock, waiting: tuple[int, float | None] = (12, 41.0)) -> OutageLog:
    return OutageLog(logging.getLogger("outage-test"), waiting=lambda: waiting, clock=clock)


@pytest.fixture
def out(clock: Clock, caplog: pytest.LogCaptureFixture) -> OutageLog:
    caplog.set_level(logging.DEBUG, "outage-test")
    return outage_log(clock)


def test_an_hour_long_outage_is_one_warning_summaries_and_one_info(
        clock: Clock, caplog: pytest.LogCaptureFixture, out: OutageLog) -> None:
    for _ in range(3600 * 11):  # 11 failed attempts a second, as in a real 12 s outage
        out.failed("SlowDown")
        clock.t += 1 / 11
    assert out.down_for() is not None
    out.ok()
    assert out.down_for() is None
    got = lines(caplog)
    levels = [level for level, _ in got]
    assert levels[0] == "WARNING" and levels[-1] == "INFO"
    assert levels.count("WARNING") <= 1 + 120 and levels.count("INFO") == 1
    assert levels.count("WARNING") >= 100  # a summary every 30 s while it lasts
    assert "bucket unreachable (SlowDown)" in got[0][1]
    assert got[1][1].startswith("bucket still unreachable (SlowDown) for 30s: 331 attempts failed, "
                                "12 uploads waiting, the oldest for 41s"), got[1]
    assert got[-1][1] == "bucket reachable again after 3600s down; 39600 attempts failed"


def test_a_short_outage_is_one_warning_and_one_info(
        clock: Clock, caplog: pytest.LogCaptureFixture, out: OutageLog) -> None:
    out.ok()  # working: nothing to say
    for _ in range(139):
        out.failed("ConnectTimeoutError")
        clock.t += 12 / 139
    out.ok()
    out.ok()
    assert lines(caplog) == [
        ("WARNING", "bucket unreachable (ConnectTimeoutError): uploads wait and are retried; a summary "
                    "follows every 30s while it lasts"),
        ("INFO", "bucket reachable again after 12s down; 139 attempts failed"),
    ]


def test_a_flapping_bucket_writes_at_most_two_lines_per_interval(
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "outage-test")
    out = outage_log(clock, waiting=(0, None))
    for i in range(10 * 60 * 4):  # ten minutes: fails, works, fails... four outcomes a second
        if i % 2:
            out.ok()
        else:
            out.failed("SlowDown")
        clock.t += 0.25
    out.ok()
    clock.t += 30
    out.ok()  # the end of the last relapse, held until 30 s after the last line
    got = lines(caplog)
    assert len(got) <= 2 * (10 * 60 / 30) + 2, got
    assert got[0][0] == "WARNING" and got[1][0] == "INFO"
    assert any("it worked briefly" in msg for _, msg in got), got
    assert got[-1][0] == "INFO" and out.down_for() is None


def test_a_new_outage_long_after_the_last_is_told_again(
        clock: Clock, caplog: pytest.LogCaptureFixture, out: OutageLog) -> None:
    out.failed("Timeout")
    clock.t += 5
    out.ok()
    clock.t += 60
    out.failed("SlowDown")
    clock.t += 1
    out.ok()
    assert [(level, msg.split(" (")[0].split(" after")[0]) for level, msg in lines(caplog)] == [
        ("WARNING", "bucket unreachable"), ("INFO", "bucket reachable again"),
        ("WARNING", "bucket unreachable"), ("INFO", "bucket reachable again"),
    ]


def test_a_brief_relapse_is_told_once_the_interval_has_passed(
        clock: Clock, caplog: pytest.LogCaptureFixture, out: OutageLog) -> None:
    out.failed("SlowDown")
    clock.t += 2
    out.ok()  # INFO
    clock.t += 5
    out.failed("SlowDown")  # a relapse within 30 s: quiet
    out.failed("SlowDown")
    clock.t += 3
    out.ok()  # held: the INFO was 8 s ago
    assert len(lines(caplog)) == 2
    clock.t += 30
    out.ok()
    assert lines(caplog)[-1] == ("INFO", "bucket reachable again; it had failed again for 33s after it came "
                                         "back (2 attempts)")


def test_segments_an_outage_loses_are_said_once_and_counted_by_reason(
        clock: Clock, caplog: pytest.LogCaptureFixture, out: OutageLog) -> None:
    """An outage's losses: one WARNING, counts by reason; one just after is said once with it."""
    assert out.lost("deleted") is False  # no outage: not this log's to tell
    out.failed("ServiceUnavailable")
    for n in range(300):
        clock.t += 1
        out.failed("ServiceUnavailable")
        assert out.lost("copy_dropped" if n % 3 else "deleted") is True
    out.ok()
    got = lines(caplog)
    lost_lines = [m for _, m in got if "is lost" in m]
    assert lost_lines == ["a segment waiting on the bucket is lost: Owncast deleted its file before the "
                          "bucket took it (copies are kept only with the VM's pathway); the playlists list a "
                          "gap for it. More are counted in the summaries"], got
    assert got[-1][0] == "INFO", got[-1]
    assert got[-1][1].endswith("segments lost (they exist nowhere): 200 copy_dropped, 100 deleted"), got[-1]
    assert any("segments lost (they exist nowhere)" in m for level, m in got if level == "WARNING"
               and m.startswith("bucket still unreachable")), got
    clock.t += 2
    assert out.lost("copy_dropped") and out.lost("copy_dropped")
    tail = [m for _, m in lines(caplog)[len(got):]]
    assert tail == ["a segment of the outage that ended 2s ago is lost as its upload resumed: no copy of it "
                    "is left (VM_COPIES_MB, or the disk's reserve under STATE_DIR) and Owncast deleted its "
                    "file; segments lost (they exist nowhere): 201 copy_dropped, 100 deleted"], tail
    assert out.lost_count == 302
    clock.t += 60
    assert out.lost("deleted") is False and out.lost_count == 302
