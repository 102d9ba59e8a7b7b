"""One gzip member assembled from raw-deflate pieces compressed apart (RFC 1951, RFC 1952).

Pieces end on a byte boundary without BFINAL (a full flush) except the last, so their concatenation is
one deflate stream; the CRC-32 of the whole is combined from the pieces' (zlib's crc32_combine).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

# mtime 0, no name, unknown OS: the bytes are a pure function of the content.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

_POLY = 0xEDB88320  # CRC-32, reflected


def _multmodp(a: int, b: int) -> int:
    """a x b modulo the CRC-32 polynomial (reflected bit order; 1 << 31 is x^0), as zlib's multmodp."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


_X2N = [1 << 30]  # x^(2^n) modulo the polynomial, n = 0..31 (from x^1)
for _ in range(31):
    _X2N.append(_multmodp(_X2N[-1], _X2N[-1]))


def crc_shift(length: int) -> int:
    """x^(8 x length) modulo the polynomial: what moves a CRC past `length` bytes (shift_crc)."""
    p, k = 1 << 31, 3
    while length:
        if length & 1:
            p = _multmodp(_X2N[k & 31], p)
        length >>= 1
        k += 1
    return p


def shift_crc(shift: int, crc: int) -> int:
    """With shift = crc_shift(len(B)): crc32(A + B) = shift_crc(shift, crc32(A)) ^ crc32(B)."""
    return _multmodp(shift, crc)


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """crc32(A + B) from crc32(A), crc32(B) and len(B). Also crc32(B) = crc32_combine(crc32(A),
    crc32(A + B), len(B)): a piece removed from the front."""
    return _multmodp(crc_shift(length2), crc1) ^ crc2


def deflate_piece(data: bytes, level: int, *, after: bytes = b"", last: bool = False) -> bytes:
    """Raw deflate of `data`, final when `last`. `after`: the bytes just before it in every stream it is
    put in, which it may refer back into."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=after[-32768:])  # b"": no dictionary
    return c.compress(data) + c.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)


def gzip_member(pieces: Iterable[bytes], crc: int, size: int) -> bytes:
    """A gzip file of deflate `pieces` (the last one final) whose content has this CRC-32 and size."""
    return b"".join((GZIP_HEADER, *pieces, struct.pack("<II", crc, size & 0xFFFFFFFF)))
