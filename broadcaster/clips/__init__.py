"""Clips: moments of the rewind window kept as video on demand, made by the operator.

In: the live playlists' segments, already in the bucket, and the operator's request on the control socket.
Out: VOD playlists under PREFIX/clips/<id>/ listing those segments where they are, and the keys the cleaner
must keep; a private stream's kept in STATE_DIR instead (kept.py) and served behind the gate (served.py).
Never: copy video, reach the public port, let the cleaner delete a segment a clip lists, or put a private
stream's playlist where the gate does not stand.
"""
