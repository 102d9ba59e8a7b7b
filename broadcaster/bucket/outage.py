"""A bucket outage told in a few lines, not one per failed attempt: a WARNING when it starts, a summary at
most every `interval`, an INFO when it ends; a flapping bucket resumes quietly, not a pair per flap."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

SUMMARY_INTERVAL = 30.0  # seconds between summaries: lograte.py's rate, readable at 3 a.m.
LOST_WHY = {  # why an outage's lost segment exists nowhere, by its reason (segments_lost_total's label)
    "copy_dropped": "no copy of it is left (VM_COPIES_MB, or the disk's reserve under STATE_DIR) and Owncast "
                    "deleted its file",
    "deleted": "Owncast deleted its file before the bucket took it (copies are kept only with the VM's "
               "pathway)",
}

Waiting = Callable[[], tuple[int, float | None]]  # (uploads waiting, seconds the oldest has waited)


class OutageLog:
    """Fed every bucket operation's outcome: `failed(reason)` or `ok()`."""

    def __init__(self, logger: logging.Logger, *, waiting: Waiting,
                 clock: Callable[[], float] = time.monotonic, interval: float = SUMMARY_INTERVAL) -> None:
        self._log = logger
        self._waiting = waiting
        self._clock = clock
        self._interval = interval
        self._since: float | None = None  # when the current outage began; None when there is none
        self._quiet = False  # it began as a relapse, without a WARNING
        self._told = False  # a summary of it was written
        self._working = True  # the last outcome
        self._reason = ""
        self._failed = 0  # attempts failed in this outage
        self._flaps = 0  # times the bucket worked briefly in this outage
        self._lost: dict[str, int] = {}  # segments lost in this outage, by reason: they exist nowhere
        self._tail_told = False  # a loss after the "back" line was said
        self._last_line: float | None = None  # when this component last wrote a line
        self._back_at: float | None = None  # when the last "back" line was written

    def failed(self, reason: str) -> None:
        now = self._clock()
        self._reason = reason
        if self._since is None:
            self._since, self._failed, self._flaps, self._working = now, 1, 0, False
            self._lost, self._tail_told, self._told = {}, False, False
            self._quiet = self._back_at is not None and now - self._back_at < self._interval
            if not self._quiet:
                self._write(logging.WARNING, now, "bucket unreachable (%s): uploads wait and are retried; a "
                            "summary follows every %.0fs while it lasts", reason, self._interval)
            return  # else a relapse, told by the next summary
        if self._working:
            self._flaps += 1
            self._working = False
        self._failed += 1
        if self._last_line is None or now - self._last_line >= self._interval:  # a summary
            count, oldest = self._waiting()
            self._told = True
            self._write(logging.WARNING, now, "bucket %s unreachable (%s) for %.0fs: %d attempts failed, "
                        "%d uploads waiting%s%s%s", "again" if self._quiet else "still", self._reason,
                        now - self._since, self._failed, count,
                        "" if oldest is None else f", the oldest for {oldest:.0f}s",
                        self._flapped(), self._lost_text())

    def down_for(self) -> float | None:
        """Seconds the outage being told has lasted (a relapse whose end is not yet written too), or None."""
        return None if self._since is None else self._clock() - self._since

    @property
    def lost_count(self) -> int:
        """Segments lost in the outage being told (or the last one)."""
        return sum(self._lost.values())

    def lost(self, reason: str) -> bool:
        """A segment whose upload waited on the bucket is lost: True when this outage tells it."""
        now = self._clock()
        ago = None if self._since is not None or self._back_at is None else now - self._back_at
        tail = ago is not None and ago < self._interval
        if self._since is None and not tail:
            return False
        self._lost[reason] = self._lost.get(reason, 0) + 1
        why = LOST_WHY.get(reason, reason)
        if tail and not self._tail_told:
            self._tail_told = True
            self._write(logging.WARNING, now, "a segment of the outage that ended %.0fs ago is lost as its "
                        "upload resumed: %s%s", ago, why, self._lost_text())
        elif not tail and self.lost_count == 1:
            self._write(logging.WARNING, now, "a segment waiting on the bucket is lost: %s; the playlists "
                        "list a gap for it. More are counted in the summaries", why)
        return True

    def _lost_text(self) -> str:
        return "; segments lost (they exist nowhere): " + ", ".join(
            f"{count} {reason}" for reason, count in sorted(self._lost.items())) if self._lost else ""

    def ok(self) -> None:
        self._working = True
        if self._since is None:
            return
        now = self._clock()
        if self._quiet and self._last_line is not None and now - self._last_line < self._interval:
            return  # written with a later outcome, once `interval` has passed since the last line
        down = now - self._since
        if self._quiet and not self._told:
            self._write(logging.INFO, now, "bucket reachable again; it had failed again for %.0fs after "
                        "it came back (%d attempts)%s%s", down, self._failed, self._flapped(), self._lost_text())
        else:
            self._write(logging.INFO, now, "bucket reachable again after %.0fs down; %d attempts failed%s%s",
                        down, self._failed, self._flapped(), self._lost_text())
        self._since, self._back_at = None, now

    def _flapped(self) -> str:
        return f"; it worked briefly {self._flaps} times meanwhile" if self._flaps else ""

    def _write(self, level: int, now: float, msg: str, *args: object) -> None:
        self._last_line = now
        self._log.log(level, msg, *args)
