"""Clips: moments of the rewind window kept as video on demand, made by the operator.

In: the live playlists' segments (publish/), already in the bucket, and the operator's request on the
control socket (http/control.py, `hls-broadcaster clip`). Out: VOD playlists in the bucket under
PREFIX/clips/<id>/, listing those segments where they are, and the keys the cleaner must keep; for a
private stream, its clips' and recordings' playlists kept in STATE_DIR instead (kept.py) and rendered
with each segment's signed URL for the gated route that serves them (served.py, http/vod_route.py).
Never: copy video, reach the public port, let the cleaner delete a segment a clip lists, or put a
private stream's playlist where the gate does not stand.
"""
