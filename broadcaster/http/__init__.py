"""The HTTP side, split by concern: app.py builds the apps (every route, their keys in keys.py, and
what is tied to the public app's life: the state events it starts with, the event streams and held
requests it releases on shutdown); serving.py runs an app on a site and cleans it up however that ends;
common.py is what every response shares; playlists.py, events.py, health.py and viewer.py are the
handlers; connections.py bounds the connections, control.py is the operator's socket."""

from .app import LiveEvents, PlaylistOptions, ViewerOptions, create_app, create_metrics_app

__all__ = ["LiveEvents", "PlaylistOptions", "ViewerOptions", "create_app", "create_metrics_app"]
