"""Owncast's playlists into ours: the stage between the watcher and the server.

In: Owncast's parsed playlists and finished segments (source/), and the pathway plan (pathways.py).
Out: playlist versions the server shows on each pathway (visible.py), each saved (state/) before it is
visible, then announced and mirrored to the bucket (release.py); segments that left every playlist, for
the cleaner. docs/how-it-works.md ("Publisher") names the modules, one job each.

Each variant's playlist is held by variant_playlist.VariantPlaylist, which alone changes its
ManifestGenerator, through intents; every other piece of state has one owner, built by publisher.py.
Never: serve HTTP, list a segment on a bucket's pathway before it is in that bucket, show a pathway a
number another pathway gave another segment, or serve a number twice
(docs/hls-rules.md#numbers-across-restarts).
"""
