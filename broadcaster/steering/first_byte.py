"""The probe's one request: a GET of a segment's first byte (`Range: bytes=0-0`) where viewers fetch it:
HTTP/1.1, TLS verified, no proxy, no redirect, the connection kept. On asyncio's streams: half aiohttp's
CPU per GET (bench/probe_cost.py), and the probe runs every second while live.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

MAX_KEPT = 64 * 1024  # the longest body read to keep the connection (an error page); longer: closed
MAX_HEAD = 64 * 1024  # a status line and headers longer than this are no answer a viewer could use
_SAFE = "/:@!$&'()*+,;=?%~-._"  # what stays as it is in a request target: it is sent as it was listed


class FirstByte:
    """One pathway's probe client: `await fetch(url, timeout)` is (answered 200 or 206, what or why not)."""

    def __init__(self, headers: Mapping[str, str], ssl_context: ssl.SSLContext | None = None) -> None:
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._ssl = ssl_context
        self._origin: tuple[str, str, int] | None = None
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.connections = 0  # opened in all (tests: a kept connection is used again)

    async def __call__(self, url: str, timeout: float) -> tuple[bool, str]:
        try:
            origin, host, target = _parse(url)
        except ValueError as err:
            return False, f"not a URL it can fetch ({err})"
        request = (f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{self._headers}Range: bytes=0-0\r\n"
                   f"Accept: */*\r\n\r\n").encode("ascii")
        try:
            async with asyncio.timeout(timeout):
                return await self._get(origin, request)
        except TimeoutError:
            self._drop()
            return False, f"no answer in {timeout:.0f}s"
        except ssl.SSLError as err:
            self._drop()
            return False, f"TLS: {err.reason or type(err).__name__}"
        except (OSError, EOFError, ValueError) as err:  # refused, reset, closed early, not HTTP
            self._drop()
            return False, type(err).__name__

    async def close(self) -> None:
        streams = self._streams
        self._drop()
        if streams is not None:
            with contextlib.suppress(OSError, ssl.SSLError):  # closed already, or reset: nothing to wait for
                await streams[1].wait_closed()

    async def _get(self, origin: tuple[str, str, int], request: bytes) -> tuple[bool, str]:
        kept = self._streams is not None and self._origin == origin
        if not kept:
            await self._open(origin)
        try:
            status, keep = await self._exchange(request)
        except (ConnectionError, asyncio.IncompleteReadError):
            if not kept:
                raise
            await self._open(origin)  # the server closed it while idle: once more, on a new one
            status, keep = await self._exchange(request)
        if not keep:
            self._drop()
        return status in (200, 206), f"HTTP {status}"

    async def _open(self, origin: tuple[str, str, int]) -> None:
        self._drop()
        scheme, host, port = origin
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._ssl or ssl.create_default_context()
        self._streams = await asyncio.open_connection(host, port, ssl=context,
                                                      server_hostname=host if context else None)
        self._origin = origin
        self.connections += 1

    async def _exchange(self, request: bytes) -> tuple[int, bool]:
        """(status, whether the connection may be used again)."""
        assert self._streams is not None
        reader, writer = self._streams
        writer.write(request)
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as err:
            raise ValueError("headers too long") from err
        if len(head) > MAX_HEAD:
            raise ValueError("headers too long")
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
            raise ValueError("not an HTTP/1.1 answer")
        length: int | None = None
        keep = version == "HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length" and value.isdigit():
                length = int(value)
            elif name == "transfer-encoding":
                keep = False  # chunked: not read here
            elif name == "connection" and value.lower() == "close":
                keep = False
        if length is None or length > MAX_KEPT:
            return int(code), False
        await reader.readexactly(length)
        return int(code), keep

    def _drop(self) -> None:
        if self._streams is not None:
            self._streams[1].close()  # a close, not awaited: nothing waits on a probe's connection
        self._streams = self._origin = None


def _parse(url: str) -> tuple[tuple[str, str, int], str, str]:
    """((scheme, host, port), the Host header, the request target) of an http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not http(s)")
    default = 443 if scheme == "https" else 80
    port = parts.port or default  # raises ValueError on a bad port
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    header = shown if port == default else f"{shown}:{port}"
    target = quote(parts.path or "/", safe=_SAFE) + (f"?{quote(parts.query, safe=_SAFE)}" if parts.query else "")
    return (scheme, host, port), header, target
