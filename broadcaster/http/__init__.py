"""The HTTP side: the public app (playlists, event streams, health, metrics, the viewer and its
heartbeat), a private metrics app, and the operator's control socket.

In: the visible playlists and their waiters (publish/visible.py), the health and the event hub
(status/), the viewer's files, the viewers' heartbeats, and requests from anyone the tunnel lets in.
Out: answers, each bounded in what one client can cost (limits.py, connections.py), and on shutdown
every held request and event stream released. app.py builds the apps; the handlers are playlists.py
(with canonical.py and answers.py), events.py, health.py, viewer.py, watching.py and the VM pathway's
(steered.py); quick.py answers plain playlist requests before aiohttp, steering_quick.py the steering
manifest's; control.py is the operator's socket.
Never: change a playlist, the bucket or the state (clips are made on the control socket, by clips/),
or let one client cost more than the caps allow.
"""

from .app import (LiveEvents, Pathways, PlaylistOptions, Running, ViewerOptions, Viewers, create_app,
                  create_metrics_app)

__all__ = ["LiveEvents", "Pathways", "PlaylistOptions", "Running", "ViewerOptions", "Viewers", "create_app",
           "create_metrics_app"]
