"""Content steering: the VM as a second delivery pathway, and the service telling players which to use.

In: every finished segment's bytes as the uploader reads them (copies.py keeps them, bounded in bytes),
the playlists each pathway lists, how the bucket's uploads fare (bucket/uploader.py) and what viewers'
playback reports say of their segment fetches (status/playback.py). Out: the VM's copies of the segments
its playlists list (served by http/pathway.py), the pathway priority (policy.py) rendered into the
steering manifest players reload (playlist/steering.py), and one log line, metric and /health reason
per switch.
Never: serve a byte it did not copy from a finished segment, name a file from a URL, keep more than its
byte cap, or put the VM first while the bucket serves viewers well.
"""
