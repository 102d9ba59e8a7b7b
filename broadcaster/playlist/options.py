"""WindowOptions: how every live playlist's window is kept and what it offers players. Made from the
settings, never saved: a restart under other settings applies them to the playlists it continues."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowOptions:
    seconds: float  # Settings.listed_seconds (raised to three target durations by the playlist, 6.2.2)
    can_block_reload: bool = False  # the origin holds _HLS_msn (6.2.5.2) and answers _HLS_skip
    start_at_edge: bool = False  # a rewind window: players start at the live edge (hls.start_at_edge)
