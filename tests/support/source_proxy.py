"""An HTTP forward proxy that reaches its targets from a loopback address of its own (127.0.0.2, ...), so a
browser context given it as its proxy is another machine to a server that tells clients apart by address
(Owncast): Chromium connects from 127.0.0.1 whatever loopback address it reaches, and Linux routes all of
127.0.0.0/8 to loopback, so binding 127.0.0.N needs no set-up.

Plain HTTP only: the first request's target is connected to and the connection is then a pipe both ways,
so a context's proxy serves one origin (its `bypass` lists the others)."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit

HEAD_LIMIT = 64 * 1024


class SourceProxy:
    """Listens on 127.0.0.1 (`url`); connects to what it is asked for from `source`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._pipes.add(task)
        writers = [writer]
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = urlsplit(head.split(b" ", 2)[1].decode("ascii"))
            host = "127.0.0.1" if target.hostname == "localhost" else (target.hostname or "")
            up_reader, up_writer = await asyncio.open_connection(host, target.port or 80,
                                                                 local_addr=(self.source, 0))
            writers.append(up_writer)
            self.connections += 1
            up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, IndexError, UnicodeError):
            pass  # a client gone, or a request this proxy does not take: its connection closes
        finally:
            for each in writers:
                each.close()
                with contextlib.suppress(OSError):
                    await each.wait_closed()
            if task is not None:
                self._pipes.discard(task)

    async def __aenter__(self) -> SourceProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0, limit=HEAD_LIMIT)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        for task in list(self._pipes):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.write_eof()
