"""What the service remembers across restarts, in one JSON file in STATE_DIR.

Written atomically (write a temporary file, fsync, rename over, fsync the folder), so a crash leaves
either the old state or the new one. A file that is corrupt or belongs to something else is moved
aside and reported, never a crash loop.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = "hls-broadcaster/state"
VERSION = 1


class StateFile:
    def __init__(self, directory: Path, name: str = "state.json") -> None:
        self.path = directory / name
        self._tmp = directory / f".{name}.tmp"
        self._lock = threading.Lock()

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none (or it had to be set aside)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            self.set_aside("corrupt", f"not valid JSON ({err})")
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            self.set_aside("foreign", "not a hls-broadcaster state file")
            return None
        if data.get("version") != VERSION:
            self.set_aside("foreign", f"state version {data.get('version')!r}, this release reads {VERSION}")
            return None
        return data

    def save(self, data: dict[str, Any]) -> None:
        body = json.dumps({"format": FORMAT, "version": VERSION, "saved_at": time.time(), **data},
                          separators=(",", ":")).encode()
        # Saves run in a worker thread and, at shutdown, in the caller's: one temporary file, one at a time.
        with self._lock:
            self._write(body)

    def _write(self, body: bytes) -> None:
        with open(self._tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(self._tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself must survive a power cut
        finally:
            os.close(fd)

    def set_aside(self, kind: str, why: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.{kind}-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            os.replace(self.path, aside)
        except OSError as err:
            log.error("state file %s is unusable (%s) and could not be moved aside: %s", self.path, why, err)
            return
        log.error("state file %s is unusable (%s); moved it to %s and starting afresh", self.path, why, aside)
