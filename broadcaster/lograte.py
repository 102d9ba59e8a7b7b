"""Log lines for errors that can repeat: one line per kind per interval, the next saying how many more."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

DEFAULT_INTERVAL = 30.0  # seconds: one line per kind per half minute is readable at 3 a.m.
MAX_KINDS = 256  # kinds come from code, but a key built from input must not grow memory for ever
OTHER = "other"


class RateLimitedLog:
    """`log(level, kind, msg, *args)`: logged now, or counted and reported with the next line of `kind`."""

    def __init__(self, logger: logging.Logger, *, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, max_kinds: int = MAX_KINDS) -> None:
        self._log = logger
        self._interval = interval
        self._clock = clock
        self._max_kinds = max_kinds
        self._last: dict[str, float] = {}  # kind -> when its last line was written
        self._held: dict[str, int] = {}  # kind -> occurrences not written since that line

    def log(self, level: int, kind: str, msg: str, *args: object) -> bool:
        """Write the line (True), or count it for later (False)."""
        if not self._log.isEnabledFor(level):
            return False
        if kind not in self._last and len(self._last) >= self._max_kinds:
            kind = OTHER
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        held = self._held.pop(kind, 0)
        self._last[kind] = now
        if held:
            self._log.log(level, msg + " (and %d more like it since the last such line)", *args, held)
        else:
            self._log.log(level, msg, *args)
        return True

    def warning(self, kind: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, kind, msg, *args)

    def error(self, kind: str, msg: str, *args: object) -> bool:
        return self.log(logging.ERROR, kind, msg, *args)

    def info(self, kind: str, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, kind, msg, *args)

    def held(self, kind: str) -> int:
        return self._held.get(kind, 0)
