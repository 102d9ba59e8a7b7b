"""The file-handle budget's arithmetic (broadcaster/http/limits.py), and raising the soft limit."""

from __future__ import annotations

import logging
import resource
import subprocess
import sys

import pytest

from broadcaster.http import limits
from broadcaster.http.limits import Budget, compute


def budget(limit: int, concurrency: int = 8, metrics_listener: bool = False) -> Budget:
    return compute(limit, limit, upload_concurrency=concurrency, metrics_listener=metrics_listener)


def test_systemd_default_of_1024_is_split_with_room_for_plain_requests() -> None:
    b = budget(1024)
    # 3 stdio + 6 loops + 16 watcher + 16 uploads + 4 state + 2 logs + 2 listeners + 8 viewer files
    # + 3 x 64 accepted + 48
    assert b.reserved == 297
    assert b.connections == 1024 - 297
    assert b.files == limits.VIEWER_FILES == 8
    assert b.events == b.connections // 4 and b.held == b.connections // 4
    # Event streams and held requests together leave half of the connections to everything else.
    assert b.connections - b.events - b.held >= b.connections // 2
    assert not b.tight


def test_everything_fits_in_the_limit() -> None:
    for limit in (256, 512, 1024, 4096, 65536):
        b = budget(limit, concurrency=32, metrics_listener=True)
        # reserved includes the metrics listener and its scrapers
        assert b.reserved + b.connections <= limit or b.connections == limits.CONNECTIONS_MIN


def test_more_uploads_and_a_metrics_listener_reserve_more() -> None:
    base = budget(1024)
    assert budget(1024, concurrency=16).reserved == base.reserved + 16  # a connection and a file per upload
    with_metrics = budget(1024, metrics_listener=True)
    assert with_metrics.reserved == base.reserved + 1 + limits.METRICS_CONNECTIONS
    assert with_metrics.metrics_connections == limits.METRICS_CONNECTIONS and base.metrics_connections == 0


def test_a_high_limit_is_capped_by_the_ceilings() -> None:
    b = budget(65536)
    assert b.reserved == 249 + 65536 // limits.MARGIN_SHARE  # the margin grows with the limit
    assert b.connections == limits.CONNECTIONS_CEILING
    assert b.events == limits.EVENTS_CEILING and b.held == limits.CONNECTIONS_CEILING // 4


def test_a_tiny_limit_still_serves_a_few_and_is_tight() -> None:
    b = budget(64)
    assert b.connections == limits.CONNECTIONS_MIN and b.events >= 1 and b.held >= 1
    assert b.tight and budget(256).tight


def test_describe_names_every_cap() -> None:
    text = budget(1024).describe()
    assert "limit 1024" in text and "727 client connections" in text and "181 event streams" in text
    assert "181 held blocking requests" in text


def test_for_process_logs_one_info_line_and_warns_when_tight(caplog: pytest.LogCaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "raise_nofile", lambda: (300, 300))
    with caplog.at_level(logging.INFO, logger="broadcaster.http.limits"):
        b = limits.for_process(upload_concurrency=8, metrics_listener=False)
    assert b.limit == 300
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(infos) == 1 and "file handles: limit 300" in infos[0].getMessage()
    assert len(warnings) == 1 and "LimitNOFILE" in warnings[0].getMessage()


def test_raise_nofile_lifts_the_soft_limit_to_the_hard_one() -> None:
    # In a child: the test process's own limit stays as it is.
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 2048))\n"
        "from broadcaster.http.limits import raise_nofile\n"
        "print(raise_nofile(), resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"hard limit {hard} is below 2048")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(2048, 2048) (2048, 2048)"
