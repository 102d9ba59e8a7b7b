"""Clips: moments of the rewind window kept as video on demand, made by the operator.

In: the live playlists' segments (publish/), already in the bucket, and the operator's request on the
control socket (http/control.py, `hls-broadcaster clip`). Out: VOD playlists in the bucket under
PREFIX/clips/<id>/, listing those segments where they are, and the keys the cleaner must keep.
Never: copy video, reach the public port, or let the cleaner delete a segment a clip lists.
"""
