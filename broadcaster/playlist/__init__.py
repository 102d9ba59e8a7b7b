"""The HLS rules and the playlists made from them: pure, no I/O, time passed in.

In: listed segments (segments.py: their URLs, durations, dates, discontinuities). Out: rendered
playlists (rendered.py), each version's bytes, ETag and gzip, and the segments that left a window
(segments.Removed).
`hls.py` holds every rule of docs/hls-rules.md in one place (target duration, media sequence, key
layout, hold-back, skip); `manifest.py` is the rolling window that applies them, the ManifestGenerator,
whose entries are a `window.py` of `entry.py`s (each listed segment's lines, rendered once), whose numbers
a `timeline.py`, whose departures a `leaving.py` (with `carry.py`, what a restart lists again) and whose
versions `renderer.py` renders; `chunks.py` and `deflate.py` make a long window's bytes in chunks and
their gzip; `master.py` and `vod.py` the multivariant and whole-stream playlists; `pathway.py` the
record of a delivery pathway (its id, kind, folder and segment URIs) and `views.py` one pathway's view of
a playlist (how far it lists, and at whose URIs), rendered from the same entries.
Never: read files, touch the network, look at a clock of its own, or save and restore itself
(publish/playlist_memory.py does); it imports no other stage.
"""
