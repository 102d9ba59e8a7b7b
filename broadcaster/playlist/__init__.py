"""The HLS rules and the playlists made from them: pure, no I/O, time passed in.

In: listed segments (their durations, dates, discontinuities). Out: rendered playlist text.
`hls.py` holds every rule of docs/hls-rules.md in one place (target duration, media sequence, key
layout, hold-back, skip); `manifest.py` is the rolling window, the ManifestGenerator.
Never: read files, touch the network, look at a clock of its own, or save and restore itself
(publish/playlist_memory.py does); it imports no other stage.
"""
