"""Owncast's side: reading what Owncast writes into HLS_DIR (docs/owncast.md).

In: the folder (inotify on Linux, watchfiles elsewhere). Out: parsed playlists, handed to the publisher,
and whether each listed segment is finished (writes.py).
Never: write into HLS_DIR, follow a symlink below it, or talk to the bucket.
"""
