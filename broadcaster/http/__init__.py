"""The HTTP side: the public app (playlists, event streams, health, metrics, the viewer and its
heartbeat), a private metrics app, and the operator's control socket (control.py).

In: the visible playlists and their waiters (publish/visible.py), the health and the event hub
(status/), the viewer's files, the viewers' heartbeats, and requests from anyone the tunnel lets in.
Out: answers, each bounded in what one client can cost (limits.py, connections.py), and on shutdown
every held request and event stream released. app.py builds the apps from the handlers.
Never: change a playlist, the bucket or the state (clips are made on the control socket, by clips/),
or let one client cost more than the caps allow."""

from .app import (LiveEvents, Pathways, PlaylistOptions, Running, ViewerOptions, Viewers, create_app,
                  create_metrics_app)

__all__ = ["LiveEvents", "Pathways", "PlaylistOptions", "Running", "ViewerOptions", "Viewers", "create_app",
           "create_metrics_app"]
