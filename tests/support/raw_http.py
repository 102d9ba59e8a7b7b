"""HTTP/1.1 spoken by hand over one connection: a request's bytes written, its answer read whole (head
and Content-Length body), as a player's reloads reach the listener."""

from __future__ import annotations

import asyncio


async def answer(reader: asyncio.StreamReader) -> bytes:
    """The next answer: its head, and its body by Content-Length (none without one, as a 304)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [int(line.partition(b":")[2]) for line in head.split(b"\r\n")
               if line.lower().startswith(b"content-length:")]
    return head + await reader.readexactly(lengths[0] if lengths else 0)


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    return await answer(reader)


def undated(answer: bytes) -> bytes:
    """An answer without its Date field: two answers a second apart compare equal."""
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(b"Date: "))
