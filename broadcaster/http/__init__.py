"""The HTTP side: the public app (playlists, event streams, health, metrics, the viewer and its
heartbeat), a private metrics app, and the operator's control socket.

In: the visible playlists and their waiters (publish/visible.py), the health and the event hub
(status/), the viewer's files, the viewers' heartbeats, and requests from anyone the tunnel lets in.
Out: answers, each bounded in what one client can cost (limits.py, connections.py), and on shutdown
every held request and event stream released.
app.py builds the apps (every route, their keys in keys.py, and what is tied to the public app's life:
the state events it starts with, the event streams and held requests it releases on shutdown);
serving.py runs an app on a site and cleans it up however that ends; common.py is what every response
shares; playlists.py (with canonical.py, its URLs, and answers.py, its answers' bytes), events.py, health.py, viewer.py (with viewer_files.py and viewer_page.py), watching.py
and pathway.py (the steering manifest and the VM pathway's segments; steered.py wires them) are
the handlers; connections.py bounds the connections (and answers plain playlist requests before
aiohttp parses them: quick.py; the steering manifest's: steering_quick.py), control.py is the operator's
socket.
Never: change a playlist, the bucket or the state (it reads what the other stages made; clips are made
on the control socket, by clips/), or let one client cost more than the caps allow.
"""

from .app import (LiveEvents, Pathways, PlaylistOptions, Running, ViewerOptions, Viewers, create_app,
                  create_metrics_app)

__all__ = ["LiveEvents", "Pathways", "PlaylistOptions", "Running", "ViewerOptions", "Viewers", "create_app",
           "create_metrics_app"]
