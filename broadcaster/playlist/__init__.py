"""The HLS rules and the playlists made from them: pure, no I/O, time passed in.

In: listed segments (segments.py). Out: rendered playlists (rendered.py: each version's bytes, ETag and
gzip) and the segments that left a window (segments.Removed). `hls.py` holds every rule of
docs/hls-rules.md; `manifest.py` is the rolling window that applies them (entries in `window.py`, numbers
in `timeline.py`, departures in `leaving.py`, rendering in `renderer.py`, `chunks.py` and `deflate.py`);
`master.py` and `vod.py` the multivariant and whole-stream playlists; `pathway.py` a delivery pathway's
record and `views.py` one pathway's view of a playlist.
Never: read files, touch the network, look at a clock of its own, or save and restore itself
(publish/playlist_memory.py does); it imports no other stage.
"""
