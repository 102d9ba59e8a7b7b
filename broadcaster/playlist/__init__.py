"""The HLS rules (hls.py) and the playlists made from them: pure, time passed in.

In: listed segments (segments.py). Out: rendered playlists (rendered.py) and the segments that left a
window (segments.Removed).
Never: read files, touch the network, look at a clock of its own, or save and restore itself
(publish/playlist_memory.py does); it imports no other stage.
"""
