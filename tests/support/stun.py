"""A minimal STUN server on 127.0.0.1 (RFC 8489 Binding only), for the P2P browser tests: it answers
each Binding request with the address it came from, and counts them, so a test sees that browsers
asked the STUN server the operator named (P2P_STUN_SERVERS) and no other."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from typing import cast

MAGIC = struct.pack("!I", 0x2112A442)  # the magic cookie: bytes 4-8 of every STUN message
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
XOR_MAPPED_ADDRESS = 0x0020


class StunServer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.requests = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance assert: in one full run the selector's datagram transport failed
        # isinstance(asyncio.DatagramTransport) inside this callback, and the server answered nothing.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 20 or struct.unpack("!H", data[:2])[0] != BINDING_REQUEST or data[4:8] != MAGIC:
            return
        self.requests += 1
        host, port = addr[0], addr[1]
        xored = bytes(a ^ b for a, b in zip(socket.inet_aton(host), MAGIC, strict=True))
        attribute = struct.pack("!HHBBH", XOR_MAPPED_ADDRESS, 8, 0, 1, port ^ 0x2112) + xored  # family 1: IPv4
        header = struct.pack("!HH", BINDING_SUCCESS, len(attribute)) + MAGIC + data[8:20]  # same transaction id
        if self.transport is not None:
            self.transport.sendto(header + attribute, addr)


@contextlib.asynccontextmanager
async def stun_server() -> AsyncIterator[tuple[str, StunServer]]:
    """A running StunServer on a free UDP port of 127.0.0.1: its stun: URL and the server."""
    transport, server = await asyncio.get_running_loop().create_datagram_endpoint(
        StunServer, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        yield f"stun:127.0.0.1:{port}", server
    finally:
        transport.close()
