"""An SSE client for tests: text/event-stream parsed by the WHATWG rules a browser's EventSource follows."""

from __future__ import annotations

import asyncio
import codecs
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.waiting import WAIT


@dataclass
class Event:
    type: str
    data: str
    last_id: str  # the stream's last event id once this event is dispatched (EventSource.lastEventId)
    id_field: bool  # the frame itself carried an id field

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseReader:
    """Parses text/event-stream as a browser does (html.spec.whatwg.org, "Event stream interpretation"):
    lines end in CRLF, LF or CR; a blank line dispatches; a field's value loses one leading space;
    data lines join with LF; an event with no data is not dispatched; `:` starts a comment."""

    response: aiohttp.ClientResponse
    last_id: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)
    eof: bool = False
    _decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())
    _text: str = ""
    _lines: list[str] = field(default_factory=list)
    _type: str = ""
    _data: list[str] = field(default_factory=list)
    _id_field: bool = False
    _first: bool = True

    async def _line(self) -> str | None:
        """The next complete line; None at the end (a last line without its end is discarded)."""
        while not self._lines:
            chunk = await self.response.content.readany()
            if not chunk:
                self.eof = True
                return None
            text = self._text + self._decoder.decode(chunk)
            if self._first and text:  # one leading BOM is ignored
                text, self._first = text.removeprefix("\ufeff"), False
            # A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
            cut = len(text) - 1 if text.endswith("\r") else len(text)
            parts = text[:cut].replace("\r\n", "\n").replace("\r", "\n").split("\n")
            self._text = parts.pop() + text[cut:]
            self._lines.extend(parts)
        return self._lines.pop(0)

    async def _step(self) -> Event | str | None | bool:
        """One line: an event it dispatched, a comment (str), None at the end, or False."""
        line = await self._line()
        if line is None:
            return None  # an event not ended by a blank line is not dispatched
        if line == "":
            if not self._data:
                self._type, self._id_field = "", False
                return False
            event = Event(self._type or "message", "\n".join(self._data), self.last_id, self._id_field)
            self._type, self._data, self._id_field = "", [], False
            return event
        if line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
            return line[1:].removeprefix(" ")
        name, colon, value = line.partition(":")
        value = value.removeprefix(" ") if colon else ""
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id, self._id_field = value, True
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return False

    async def next(self) -> Event | str | None:
        """The next event, or a comment (str), or None at the end of the stream."""
        while (item := await self._step()) is False:
            pass
        assert not isinstance(item, bool)
        return item

    async def event(self, timeout: float = WAIT) -> Event:
        """The next event, skipping comments."""
        async with asyncio.timeout(timeout):
            while True:
                item = await self.next()
                assert item is not None, "the stream ended"
                if isinstance(item, Event):
                    return item

    async def events(self, n: int, timeout: float = WAIT) -> list[Event]:
        async with asyncio.timeout(timeout):
            return [await self.event(timeout) for _ in range(n)]

    async def started(self, timeout: float = WAIT) -> None:
        """Reads up to the `retry` field, which the server sends once the stream's position is set."""
        async with asyncio.timeout(timeout):
            while self.retry is None:
                item = await self._step()
                assert not isinstance(item, Event), f"an event before retry: {item}"
                assert item is not None, "the stream ended before it began"

    async def ended(self, timeout: float = WAIT) -> list[Event]:
        """Everything up to the end of the stream."""
        seen: list[Event] = []
        async with asyncio.timeout(timeout):
            while (item := await self.next()) is not None:
                if isinstance(item, Event):
                    seen.append(item)
        return seen
