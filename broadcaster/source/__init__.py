"""Owncast's side: reading what Owncast writes into HLS_DIR.

In: the folder (inotify on Linux, watchfiles elsewhere). Out: parsed playlists and finished segments,
handed to the publisher through the protocol the watcher declares, and what the kernel says of each
segment being written (writes.py). Owncast writes in place and wipes the folder on restart
(docs/owncast.md): a segment is finished only once its playlist lists it and Owncast has closed it.
Never: write into HLS_DIR, follow a symlink below it, or talk to the bucket.
"""
