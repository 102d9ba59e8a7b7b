"""RateLimitedLog: the first line of a kind at once, repeats counted, the count in the next line."""

from __future__ import annotations

import logging

import pytest

from broadcaster.lograte import OTHER, RateLimitedLog
from tests.support.fakes import Clock


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    log = logging.getLogger("test_lograte")
    log.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=log.name)
    return log


def test_one_line_per_kind_per_interval_with_the_count(logger: logging.Logger,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    rl = RateLimitedLog(logger, interval=30, clock=clock)
    assert rl.warning("accept", "accept failed: %s", "EMFILE")
    for _ in range(999):
        clock.t += 0.01
        assert not rl.warning("accept", "accept failed: %s", "EMFILE")
    assert rl.held("accept") == 999
    assert [r.getMessage() for r in caplog.records] == ["accept failed: EMFILE"]
    clock.t += 30
    assert rl.warning("accept", "accept failed: %s", "EMFILE")
    assert caplog.records[-1].getMessage() == (
        "accept failed: EMFILE (and 999 more like it since the last such line)")
    assert rl.held("accept") == 0


def test_kinds_are_independent(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    rl = RateLimitedLog(logger, interval=30, clock=Clock())
    assert rl.warning("a", "first a")
    assert rl.error("b", "first b")
    assert not rl.warning("a", "second a")
    assert [r.getMessage() for r in caplog.records] == ["first a", "first b"]


def test_kinds_are_bounded(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    rl = RateLimitedLog(logger, interval=30, clock=Clock(), max_kinds=3)
    for i in range(100):
        rl.warning(f"file-{i}", "bad file %d", i)
    # Three kinds of their own, then everything else shares one: four lines, not a hundred.
    assert len(caplog.records) == 4
    assert rl.held(OTHER) == 96


def test_a_level_that_is_off_costs_nothing(logger: logging.Logger) -> None:
    logger.setLevel(logging.ERROR)
    rl = RateLimitedLog(logger, interval=30, clock=Clock())
    assert not rl.warning("a", "quiet")
    assert rl.held("a") == 0
