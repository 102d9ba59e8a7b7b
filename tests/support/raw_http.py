"""HTTP/1.1 spoken by hand over one connection: a request's bytes written, its answer read whole (head
and Content-Length body), as a player's reloads reach the listener; and the answers in the bytes a
connection received, parsed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


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


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes  # unchunked


def responses(data: bytes) -> list[Response]:
    """Every HTTP/1.1 answer in `data`, in order, framed by its Content-Length (none: no body) or chunked."""
    out: list[Response] = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"truncated response: {head[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1."), lines[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if headers.get("transfer-encoding") == "chunked":
            body, data = _unchunked(data)
        else:
            length = int(headers.get("content-length", "0"))
            body, data = data[:length], data[length:]
        out.append(Response(int(lines[0].split()[1]), headers, body))
    return out


def _unchunked(data: bytes) -> tuple[bytes, bytes]:
    """A chunked body's bytes, and what follows it."""
    body = bytearray()
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(body), data.partition(b"\r\n")[2]  # past the trailer's empty line
        body += data[:size]
        data = data[size + 2:]
