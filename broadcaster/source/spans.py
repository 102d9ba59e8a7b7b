"""How many seconds of media an MPEG-TS file holds, read from its PES timestamps (ISO/IEC 13818-1 2.4.3.7):
a segment closed, listed and of whole packets may still be half of one, and a whole one spans its #EXTINF
to within a frame. Only the head and the tail are read.
"""

from __future__ import annotations

import os

TS_PACKET = 188
HEAD = 128 * 1024  # bytes read at each end: many frames of every stream at any bitrate Owncast makes
_CLOCK = 90_000  # PTS ticks per second
_WRAP = 1 << 33
# A file short of its #EXTINF by more than this share (and SLACK seconds) has its rest still to come.
SHORT_SHARE = 0.1
SLACK = 0.05


def _pts(packet: bytes | memoryview) -> tuple[int, int] | None:
    """(PID, PTS) of a packet starting a PES packet that carries a PTS; else None."""
    if packet[0] != 0x47 or not packet[1] & 0x40:  # sync byte; payload_unit_start_indicator
        return None
    control = packet[3] >> 4 & 3
    if not control & 1:
        return None  # adaptation field only
    at = 4 + (1 + packet[4] if control & 2 else 0)
    pes = packet[at:at + 14]
    if len(pes) < 14 or pes[0] != 0 or pes[1] != 0 or pes[2] != 1 or not pes[7] & 0x80:
        return None  # not a PES start, or no PTS (PTS_DTS_flags '10' or '11')
    b = pes[9:14]
    pts = (b[0] >> 1 & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
    return (packet[1] & 0x1F) << 8 | packet[2], pts


def _stamps(data: bytes) -> dict[int, list[int]]:
    view = memoryview(data)
    found: dict[int, list[int]] = {}
    for at in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
        got = _pts(view[at:at + TS_PACKET])
        if got is not None:
            found.setdefault(got[0], []).append(got[1])
    return found


def seconds(head: bytes, tail: bytes) -> float | None:
    """The media `head` (the file's first bytes) and `tail` (its last, from a packet boundary) span: the
    longest stream's last timestamp less its first plus a frame. None when no stream has two timestamps."""
    first, last = _stamps(head), _stamps(tail)
    best: float | None = None
    for pid, ends in last.items():
        starts = first.get(pid)
        if not starts or len(ends) < 2:
            continue
        ordered = sorted(set(ends))
        steps = [b - a for a, b in zip(ordered, ordered[1:]) if b > a]
        if not steps or ordered[-1] - ordered[0] > _WRAP // 2:
            return None  # the 33-bit clock wrapped inside the tail: unknown
        span = (ordered[-1] - min(starts)) % _WRAP + min(steps)
        best = max(best or 0.0, span / _CLOCK)
    return best


def read_seconds(fd: int, size: int) -> float | None:
    """`seconds` of the MPEG-TS file open as `fd`, `size` bytes long (two preads)."""
    if size < 2 * TS_PACKET:
        return None
    head = os.pread(fd, min(size, HEAD), 0)
    if size <= HEAD:
        return seconds(head, head)
    start = (size - HEAD) // TS_PACKET * TS_PACKET
    return seconds(head, os.pread(fd, size - start, start))


def short_of(held: float | None, named: float) -> bool:
    """Whether a file spanning `held` seconds (None: unknown) is cut short of the `named` #EXTINF."""
    return held is not None and held < named * (1 - SHORT_SHARE) - SLACK
