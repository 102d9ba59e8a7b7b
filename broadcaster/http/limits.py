"""The file-handle budget: clients that take the last handle would stop the watcher and the uploads. So
the soft RLIMIT_NOFILE is raised to the hard limit, the service's own work reserved, and the rest cut into
caps on client connections and, within it, on event streams and held requests (leaving room for others)."""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# -- what the service's own work holds at most (file handles) ------------------------------------------
STDIO = 3
EVENT_LOOPS = 2 * 3  # the serving loop and the store thread's: an epoll handle and a self-pipe pair each
WATCHER = 16  # inotify and its stop pipe, HLS_DIR and a variant folder scanned, a playlist read, slack
STATE = 4  # the lock file, state.journal (kept open), one of state.json's temp file, its folder (fsync) or served (one at a time), a recording's playlist
LOGS = 2  # a log file or syslog socket, beyond stderr
LISTENERS = 2  # PORT (an IPv4 and an IPv6 socket when HOST names both)
METRICS_CONNECTIONS = 8  # METRICS_LISTEN: its socket plus this many scrapers at once
VIEWER_FILES = 8  # large viewer files sent from disk at once, each holding its file too (http/viewer.py)
# The loop accepts up to ACCEPT_BACKLOG connections before any reaches the cap's check, and a connection
# closed to make room lets go a turn later: three batches may hold handles (closing, created, accepted).
ACCEPT_BACKLOG = 64
ACCEPT_BATCHES = 3
MARGIN_MIN = 48  # slack: 503'd connections lingering (16), requests just past the cap (16), DNS lookups
MARGIN_SHARE = 32  # ... or 1/32 of the limit, whichever is more

# -- how the client share is split ----------------------------------------------------------------------
CONNECTIONS_CEILING = 16384  # one loop serves ~2,000 blocking viewers on 2 cores: more only cost memory
EVENTS_SHARE = 4  # event streams: at most a quarter of the connections ...
EVENTS_CEILING = 1000  # ... and never more than this many dashboards
HELD_SHARE = 4  # held requests: a quarter (they all wake at a segment, and others wait behind them)
CONNECTIONS_MIN = 16  # below the budget's arithmetic, still serve a handful (and warn)
TIGHT = 256  # fewer connections than this: WARNING at start-up (a small audience fills it)


@dataclass(frozen=True)
class Budget:
    """What the file-handle limit allows. Every count is of file handles, one per connection."""

    limit: int  # the soft RLIMIT_NOFILE the budget is cut from
    hard: int  # the hard limit (the most the soft one could be raised to)
    reserved: int  # kept for the service's own work (see reserved_handles)
    connections: int  # client connections on PORT at once; past it: 503 at accept
    events: int  # /live/events streams at once; past it: 503
    held: int  # blocking playlist requests (_HLS_msn) held at once; past it: 503
    files: int  # viewer files sent from disk at once (each holds its file too); past it: a short wait
    metrics_connections: int  # connections on METRICS_LISTEN at once (0 without that listener)

    @property
    def tight(self) -> bool:
        return self.connections < TIGHT

    def describe(self) -> str:
        return (f"file handles: limit {self.limit} (hard {_limit_text(self.hard)}), {self.reserved} reserved "
                f"for the service; at most {self.connections} client connections, of which {self.events} "
                f"event streams and {self.held} held blocking requests")


def reserved_handles(limit: int, *, upload_concurrency: int, metrics_listener: bool) -> int:
    """Handles the service's own work may hold: never given to clients."""
    uploads = 2 * upload_concurrency  # a pooled connection to the bucket and the file being read, each
    metrics = 1 + METRICS_CONNECTIONS if metrics_listener else 0
    margin = max(MARGIN_MIN, limit // MARGIN_SHARE)
    accepting = ACCEPT_BATCHES * ACCEPT_BACKLOG
    return (STDIO + EVENT_LOOPS + WATCHER + uploads + STATE + LOGS + LISTENERS + metrics + VIEWER_FILES
            + accepting + margin)


def compute(limit: int, hard: int, *, upload_concurrency: int, metrics_listener: bool) -> Budget:
    """The budget at a soft RLIMIT_NOFILE of `limit`."""
    reserved = reserved_handles(limit, upload_concurrency=upload_concurrency, metrics_listener=metrics_listener)
    connections = min(max(limit - reserved, CONNECTIONS_MIN), CONNECTIONS_CEILING)
    return Budget(limit=limit, hard=hard, reserved=reserved, connections=connections,
                  events=max(1, min(connections // EVENTS_SHARE, EVENTS_CEILING)),
                  held=max(1, connections // HELD_SHARE), files=VIEWER_FILES,
                  metrics_connections=METRICS_CONNECTIONS if metrics_listener else 0)


def raise_nofile() -> tuple[int, int]:
    """Raises the soft RLIMIT_NOFILE to the hard limit (at most fs.nr_open); returns (soft, hard) then."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(_nr_open(), hard) if hard != resource.RLIM_INFINITY else _nr_open()
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as err:  # a sandbox may refuse; the budget then uses what there is
        log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, err)
        return soft, hard
    return target, hard


def for_process(*, upload_concurrency: int, metrics_listener: bool) -> Budget:
    """Raise the limit, compute the budget, and say it: one INFO line, and a WARNING if it is tight."""
    soft, hard = raise_nofile()
    limit = soft if soft != resource.RLIM_INFINITY else _nr_open()
    budget = compute(limit, hard, upload_concurrency=upload_concurrency, metrics_listener=metrics_listener)
    log.info("%s", budget.describe())
    if budget.tight:
        log.warning("the open-file limit (hard limit %s) leaves room for only %d client connections: raise "
                    "it (LimitNOFILE= in the systemd unit, `ulimit -n` before pm2)", _limit_text(hard),
                    budget.connections)
    return budget


def _nr_open() -> int:
    """The kernel's ceiling for RLIMIT_NOFILE (Linux: fs.nr_open)."""
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return 1 << 20


def _limit_text(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)
