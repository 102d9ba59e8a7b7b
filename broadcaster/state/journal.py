"""state.json plus state.journal: what a new segment costs to save does not grow with the window.

A save appends one line to state.journal, its long lists (Tails) holding only the items added since the
line before; once the journal reaches half the last full snapshot (or 1 MB), a save writes state.json
whole and starts an empty journal. On start the lines that follow state.json (`base`) are applied in order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from .. import files
from ..tails import Tail
from . import validate
from .disk import Prepared, RawJSON, Replaced, StateFile, dumps, header, read_capped, write_all

log = logging.getLogger(__name__)

JOURNAL = "state.journal"
TAILS = "$tails"  # state.json's key: where each Tail starts ([path..., first id])
_TAIL = "$tail"  # a line's value for a Tail: [first id, id of the first item given, [items...]]
BASE = "$base"  # state.json's id, named by each line that follows it
MIN_COMPACT = 1 << 20  # a journal this large is compacted even when the full snapshot is smaller
MAX_LINES = 100_000  # and one with this many lines (each line is read back at start)
RETRY_LINES = 100  # lines between tries of a compaction that failed
# While compactions fail (a STATE_DIR out of inodes still takes lines), lines go on up to this many times
# the threshold (at least MAX_JOURNAL bytes, MAX_LINES * 2 lines); past it every save tries to compact.
LIMIT_FACTOR = 4
MAX_JOURNAL = 16 << 20
_CUT_SHORT = ("%s: its last line was cut short by a crash (its save never returned, so its version was never "
              "shown); dropped it")


class JournaledState(StateFile):
    """state.json and state.journal in STATE_DIR, written and read as one state."""

    def __init__(self, directory: Path, name: str = "state.json") -> None:
        super().__init__(directory, name)
        self.journal = directory / JOURNAL
        self._base: str | None = None  # state.json's base id once this process wrote it
        self._marks: dict[tuple[str, ...], int] = {}  # Tail path -> end id the journal holds
        self._journal_size = 0
        self._lines = 0
        self._full_size = 0  # bytes of the last state.json written
        self._fd: int | None = None
        self._retry_at = 0  # the line count from which a compaction that failed is tried again
        self.compactions = 0

    def prepare(self, data: dict[str, Any]) -> Prepared:
        """On the event loop: a line with only the Tails' new items, or the full snapshot when due."""
        marks: dict[tuple[str, ...], int] = {}
        grown = self._journal_size >= self.threshold or self._lines >= MAX_LINES
        due = (grown and self._lines >= self._retry_at) or self.full
        if self._base is None or due:
            base = secrets.token_hex(8)
            starts: list[list[object]] = []
            full = _encoded(data, (), marks, starts, {})
            body = dumps({**header(), **full, BASE: base, TAILS: starts}).encode()
            return Prepared(body, "full", marks, base)
        line = _encoded(data, (), marks, None, self._marks)
        return Prepared(dumps({BASE: self._base, "doc": line}).encode() + b"\n", "line", marks, self._base)

    def compact_next(self) -> None:
        """The next save writes the full snapshot."""
        self._base = None

    @property
    def threshold(self) -> int:
        """The journal's size at which a save compacts: half the full snapshot's (at least MIN_COMPACT)."""
        return max(MIN_COMPACT, self._full_size // 2)

    @property
    def full(self) -> bool:
        """The journal took all the lines it may while compactions fail: no more before one works."""
        return (self._journal_size >= max(MAX_JOURNAL, LIMIT_FACTOR * self.threshold)
                or self._lines >= 2 * MAX_LINES)

    def write_prepared(self, prepared: Prepared) -> None:
        """In a worker thread. Raises OSError: nothing changed; or Replaced: the files hold this save."""
        with self._lock:
            if prepared.kind == "full":
                self._compact(prepared)
            elif prepared.base != self._base:
                raise OSError("the journal was started again since this line was made")
            else:
                self._append(prepared.body)
                self._journal_size += len(prepared.body)
                self._lines += 1
            self._marks = prepared.marks or {}

    def _compact(self, prepared: Prepared) -> None:
        try:
            self._write(prepared.body)
        except OSError as err:
            self.trouble = str(err.strerror or err)
            if isinstance(err, Replaced):
                self._renamed(prepared)
            else:  # nothing changed on disk: lines go on, the compaction tried again RETRY_LINES later
                self._retry_at = self._lines + RETRY_LINES
            raise
        self._renamed(prepared)
        try:
            self._reset_journal()
        except OSError as err:
            self.trouble = str(err.strerror or err)
            raise Replaced(err) from err
        self.trouble = None
        self._base = prepared.base  # lines follow the new state.json in an empty journal
        self._journal_size, self._lines = 0, 0

    def _renamed(self, prepared: Prepared) -> None:
        """state.json is `prepared` now: the journal's lines follow the one before, so none is written after
        them; the next save writes state.json again unless the journal is emptied (_compact)."""
        self._base = None
        self._retry_at = 0
        self._full_size = len(prepared.body)
        self.compactions += 1

    def close(self) -> None:
        """The journal's file handle closed (a later line opens it again)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _reset_journal(self) -> None:
        """An empty journal after a new state.json."""
        self.close()
        fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _append(self, line: bytes) -> None:
        if self._fd is None:
            self._fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        size, whole = self._journal_size, False
        try:
            write_all(self._fd, line)
            whole = True
            os.fdatasync(self._fd)
        except OSError as err:
            try:
                os.ftruncate(self._fd, size)  # never a half line before the next one
            except OSError:
                self._base = None  # the next save writes state.json and a new journal
                if whole:  # the whole line stays, and every start applies it
                    raise Replaced(err) from err
            raise

    def load(self) -> dict[str, Any] | None:
        data = super().load()
        if data is None:
            return None
        try:
            return self._replay(data)
        except ValueError as err:
            why = str(err)
        except RecursionError:
            why = "nested too deep"
        except Exception as err:  # noqa: BLE001 (a check missed in the replay: still a bad file, not a crash)
            why = f"unexpected {validate.describe(err)}"
        self.set_aside("corrupt", f"{self.journal.name}: {why}")
        return None

    def _replay(self, data: dict[str, Any]) -> dict[str, Any]:
        base = data.pop(BASE, None)
        starts = data.pop(TAILS, None)
        if base is None:  # written by an older release, or by a plain StateFile: no journal follows
            return data
        tails: dict[tuple[str, ...], _Rebuilt] = {}
        for raw in validate.array(starts, TAILS, 100_000):
            entry = validate.array(raw, "a tail", 20)
            if len(entry) < 2:
                raise ValueError(f"a tail is {validate.describe(entry)}")
            path = tuple(validate.text(k, "a tail's path", 100) for k in entry[:-1])
            items = validate.array(_at(data, path), "a tail", 10_000_000)
            tails[path] = _Rebuilt(validate.integer(entry[-1], "a tail's first id"), items)
        applied = 0
        placed: list[tuple[str, ...]] = []  # where the last line applied holds a Tail
        # A last line without its newline: its save never returned, dropped whatever it holds.
        *lines, last = (read_capped(self.journal) or b"").split(b"\n")
        torn = bool(last)
        for n, raw_line in enumerate(lines):
            try:
                line = RawJSON(raw_line.decode()).decode()
            except (ValueError, RecursionError) as err:
                if n == len(lines) - 1 and not torn:
                    log.warning(_CUT_SHORT, self.journal)
                    break
                raise ValueError(f"line {n + 1} is not valid JSON ({validate.describe(str(err))})") from None
            line = validate.mapping(line, f"line {n + 1}", 10)
            if line.get(BASE) != base:
                if n == 0:  # a crash between a compaction's two writes: the lines of the one before
                    log.info("%s follows an older state.json; ignored", self.journal)
                    break
                raise ValueError(f"line {n + 1} follows another state.json")
            placed = []
            data = _apply(validate.mapping(validate.field(line, "doc", "a line"), "a line", 1000), (), tails,
                          placed)
            applied += 1
        else:
            if torn:
                log.warning(_CUT_SHORT, self.journal)
        # Each Tail the last line holds, rebuilt through every line (one it does not hold is gone).
        for path in placed:
            _at(data, path[:-1])[path[-1]] = tails[path].items()
        if applied:
            log.info("state: %s, then %d journal line(s)", self.path.name, applied)
        self._base = None  # this process starts with a full snapshot: its own ids
        return data

    def set_aside(self, kind: str, why: str) -> None:
        super().set_aside(kind, why)
        with contextlib.suppress(OSError):  # gone, or stuck: its lines name the state.json set aside
            files.set_aside(self.journal, kind)


def _encoded(data: Any, path: tuple[str, ...], marks: dict[tuple[str, ...], int],
             starts: list[list[object]] | None, written: dict[tuple[str, ...], int]) -> Any:
    """`data` with each Tail whole, its start noted in `starts` (a full snapshot), or (`starts` None: a
    line) as the items past what the journal holds (`written`); each Tail's end noted in `marks`."""
    if isinstance(data, Tail):
        marks[path] = data.end
        if starts is not None:
            starts.append([*path, data.first])
            return RawJSON(data.text())
        start = max(data.first, min(written.get(path, data.first), data.end))
        return {_TAIL: RawJSON(f"[{data.first},{start},[" + ",".join(data.since(start)) + "]]")}
    if isinstance(data, dict):
        return {k: _encoded(v, (*path, k), marks, starts, written) for k, v in data.items()}
    return data


def _at(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            raise ValueError(f"a tail at {'/'.join(path)} is missing")
        data = data[key]
    return data


class _Rebuilt:
    """A Tail read back line by line: ids `first` .. `end` - 1, in `_items` from id `_base` on; ids below
    `first` are deleted once they are half of `_items`, so a line costs its own items."""

    __slots__ = ("first", "_base", "_items")

    def __init__(self, first: int, items: list[Any]) -> None:
        self.first = self._base = first
        self._items = items

    @property
    def end(self) -> int:
        return self._base + len(self._items)

    def follow(self, first: int, start: int, added: list[Any], where: str) -> None:
        """A line's value: the list now starts at id `first`, its items from id `start` on are `added`."""
        if start != first and not (self.first <= first and start <= self.end):
            raise ValueError(f"the list at {where} does not follow the line before")
        if start == first:  # given whole
            self._items, self._base = [], first
        else:
            del self._items[start - self._base:]  # what the line gives again (none, when start is the end)
        self._items.extend(added)
        self.first = first
        dead = first - self._base
        if dead > len(self._items) // 2:
            del self._items[:dead]
            self._base = first

    def items(self) -> list[Any]:
        return self._items[self.first - self._base:]


def _apply(line: Any, path: tuple[str, ...], tails: dict[tuple[str, ...], _Rebuilt],
           placed: list[tuple[str, ...]]) -> Any:
    """A line's doc, each Tail followed on from the line before and its path noted in `placed`."""
    if isinstance(line, dict):
        if _TAIL in line:
            value = validate.array(line[_TAIL], "a tail", 3)
            if len(value) != 3:
                raise ValueError(f"a tail is {validate.describe(value)}")
            first = validate.integer(value[0], "a tail's first id")
            start = validate.integer(value[1], "a tail's start", first)
            added = validate.array(value[2], "a tail's items", 10_000_000)
            if path not in tails:  # a new Tail: it follows only given whole (start == first)
                tails[path] = _Rebuilt(first, [])
            tails[path].follow(first, start, added, "/".join(path))
            placed.append(path)
            return None
        return {k: _apply(v, (*path, k), tails, placed) for k, v in line.items()}
    return line
