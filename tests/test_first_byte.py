"""The steering probe's client (broadcaster/steering/first_byte.py) against real servers on 127.0.0.1: an
aiohttp app, raw asyncio servers for what aiohttp would not answer, and TLS with a certificate made here.
What it answers is evidence that moves every viewer, so each way a server can answer is tried."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from broadcaster.steering.first_byte import FirstByte
from broadcaster.steering.probe import PROBE_HEADERS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class App:
    """An aiohttp server answering every path with `handler`, and the requests it saw."""

    def __init__(self) -> None:
        self.seen: list[web.Request] = []
        self.handler: Handler | None = None
        self.url = ""

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        assert self.handler is not None
        return await self.handler(request)


@pytest.fixture
async def app(aiohttp_server: AiohttpServer) -> App:
    served = App()
    application = web.Application()
    application.router.add_get("/{key:.*}", served._answer)
    served.url = str((await aiohttp_server(application)).make_url("")).rstrip("/")
    return served


@pytest.fixture
async def probe() -> AsyncIterator[FirstByte]:
    """The probe's client, closed after the test."""
    made = FirstByte(PROBE_HEADERS)
    yield made
    await made.close()


@contextlib.asynccontextmanager
async def raw_server(answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
                     tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A server on 127.0.0.1 answering each connection with `answer`; its URL (all closed at the end)."""
    handlers: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            await answer(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        for task in handlers:
            task.cancel()
        for task in handlers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()


async def test_a_206_is_an_answer_and_its_connection_is_used_again(app: App, probe: FirstByte) -> None:
    async def first(request: web.Request) -> web.Response:
        return web.Response(body=b"\x47", status=206, headers={"Content-Range": "bytes 0-0/1880"})

    app.handler = first
    for n in range(3):
        assert await probe(f"{app.url}/live/0/stream-{n}.ts", 2.0) == (True, "HTTP 206")
    assert probe.connections == 1
    assert [r.path for r in app.seen] == [f"/live/0/stream-{n}.ts" for n in range(3)]
    assert all(r.headers["Range"] == "bytes=0-0" and r.headers["User-Agent"] == PROBE_HEADERS["User-Agent"]
               for r in app.seen)


async def test_an_error_or_a_redirect_is_no_answer_and_is_not_followed(app: App, probe: FirstByte) -> None:
    async def refuse(request: web.Request) -> web.Response:
        if request.path.endswith("moved.ts"):
            return web.Response(status=302, headers={"Location": "/live/0/elsewhere.ts"})
        return web.Response(status=503, text="<Error><Code>SlowDown</Code></Error>")

    app.handler = refuse
    assert await probe(f"{app.url}/live/0/stream-1.ts", 2.0) == (False, "HTTP 503")
    assert await probe(f"{app.url}/live/0/moved.ts", 2.0) == (False, "HTTP 302")
    assert [r.path for r in app.seen] == ["/live/0/stream-1.ts", "/live/0/moved.ts"]  # nothing followed
    assert probe.connections == 1  # an error's short page is read: the connection kept


async def test_a_whole_segment_or_a_chunked_answer_closes_the_connection(app: App, probe: FirstByte) -> None:
    """A server that ignores Range sends the whole segment (200): an answer, its body not read, the
    connection closed; a chunked one the same."""
    async def whole(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("chunked.ts"):
            response = web.StreamResponse(status=200)
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b"\x47" * 1000)
            await response.write_eof()
            return response
        return web.Response(body=b"\x47" * 200_000, status=200)

    app.handler = whole
    assert await probe(f"{app.url}/live/0/stream-1.ts", 2.0) == (True, "HTTP 200")
    assert await probe(f"{app.url}/live/0/chunked.ts", 2.0) == (True, "HTTP 200")
    assert await probe(f"{app.url}/live/0/stream-2.ts", 2.0) == (True, "HTTP 200")
    assert probe.connections == 3


async def test_a_presigned_urls_query_is_sent_as_it_was_listed(probe: FirstByte) -> None:
    targets: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        targets.append(head.split(b" ")[1])
        writer.write(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 1\r\n\r\nG")
        await writer.drain()
        writer.close()

    query = "X-Amz-Credential=AKIA%2F20261127%2Fauto%2Fs3%2Faws4_request&X-Amz-Signature=ab%2Bcd"
    async with raw_server(answer) as url:
        assert await probe(f"{url}/live/0/stream%201.ts?{query}", 2.0) == (True, "HTTP 206")
        assert await probe(f"{url}/live/0/été.ts", 2.0) == (True, "HTTP 206")  # encoded as a browser does
    assert targets == [f"/live/0/stream%201.ts?{query}".encode(), b"/live/0/%C3%A9t%C3%A9.ts"]


async def test_a_kept_connection_the_server_closed_while_idle_is_opened_again_once(probe: FirstByte) -> None:
    """A server (or R2's edge) closes an idle kept connection without saying so: the next probe's request
    fails on it before any answer, and goes once more on a new connection, as a browser's would. A
    server that closes every new connection too is no answer."""
    opened: list[int] = []
    answering = True

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened.append(1)
        if answering:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 1\r\n\r\nG")  # kept, it says
            await writer.drain()
        writer.close()  # ... and closed

    async with raw_server(answer_once) as url:
        assert await probe(f"{url}/a.ts", 2.0) == (True, "HTTP 206")
        assert await probe(f"{url}/b.ts", 2.0) == (True, "HTTP 206")
        assert probe.connections == 2 and len(opened) == 2
        answering = False
        ok, detail = await probe(f"{url}/c.ts", 2.0)
        assert not ok and detail in ("IncompleteReadError", "ConnectionResetError", "BrokenPipeError"), detail
        assert len(opened) == 3  # the kept one failed, one new one, no more


async def test_no_server_a_silent_one_or_one_not_speaking_http_is_no_answer(probe: FirstByte) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(garbage) as closed_url:
        pass  # closed: nothing listens there now
    async with raw_server(silent) as quiet_url, raw_server(garbage) as other_url:
        assert await probe(f"{quiet_url}/a.ts", 1.0) == (False, "no answer in 1s")
        assert await probe(f"{other_url}/a.ts", 2.0) == (False, "ValueError")
        assert await probe(f"{closed_url}/a.ts", 2.0) == (False, "ConnectionRefusedError")
        assert (await probe("ftp://example.com/a.ts", 2.0))[0] is False
        assert (await probe("http://127.0.0.1:99999/a.ts", 2.0))[0] is False


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_https_is_verified_as_a_browser_verifies_it(tmp_path: Path, probe: FirstByte) -> None:
    """A certificate the system does not trust (a custom domain's broken certificate) is no answer, named;
    trusted, the same server answers over a kept TLS connection."""
    cert, key = _certificate(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 1\r\n\r\nG")
            await writer.drain()

    trusting = FirstByte(PROBE_HEADERS, ssl.create_default_context(cafile=str(cert)))
    async with raw_server(answer, served) as url:
        port = url.rsplit(":", 1)[1]
        try:
            ok, detail = await probe(f"https://127.0.0.1:{port}/a.ts", 2.0)  # the system's trust alone
            assert not ok and detail.startswith("TLS: ") and "CERTIFICATE_VERIFY_FAILED" in detail, detail
            for name in ("a", "b"):
                assert await trusting(f"https://localhost:{port}/{name}.ts", 2.0) == (True, "HTTP 206")
            assert trusting.connections == 1
        finally:
            await trusting.close()
