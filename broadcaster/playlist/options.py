"""WindowOptions: how every live playlist's window is kept and what it offers players.

One record, made once from the settings (PublisherConfig.window) and handed to every playlist the
service makes or restores: state.json saves none of it, so a restart under other settings (a longer
REWIND_SECONDS, blocking reload turned off) applies them to the playlists it continues.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowOptions:
    # How much a playlist lists, in seconds: WINDOW_SECONDS, or REWIND_SECONDS when that is longer
    # (Settings.listed_seconds); never less than three target durations (6.2.2, raised by the playlist).
    seconds: float
    # The origin holds `_HLS_msn` requests (6.2.5.2) and answers `_HLS_skip`: only its own playlists say
    # so; the bucket's copy never does (ManifestGenerator.render_edge).
    can_block_reload: bool = False
    # A rewind window longer than players keep behind the edge: the playlist tells them to start at
    # the live edge (EXT-X-START, hls.start_at_edge).
    start_at_edge: bool = False
