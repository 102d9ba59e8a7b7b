"""Owncast's playlists into ours: the stage between the watcher and the server.

In: Owncast's parsed playlists and finished segments (source/). Out: playlist versions the server
shows (visible.py), each saved (state/) before it is visible, then announced (the listing hook) and
mirrored to the bucket (release.py, which the publisher builds, starts and closes); segments that left
every playlist, for the cleaner. Segments are lined up across variants (slots.py, lanes.py), uploaded
(uploads.py), listed only once uploaded (lister.py) under the one target duration (target.py), numbered
so that no number is ever served twice (numbering.py, memory.py, playlist_memory.py,
docs/hls-rules.md#numbers-across-restarts). Each piece of state has one owner (variants.py,
numbering.py, lanes.py, uploads.py, target.py), built by the publisher (publisher.py, config.py).
Never: serve HTTP, or list a segment that is not in the bucket.
"""
