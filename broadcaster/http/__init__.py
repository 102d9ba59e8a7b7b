"""The HTTP side, split by concern: app.py builds the apps (every route, their keys in keys.py, the
background work they own); common.py is what every response shares; playlists.py, events.py,
health.py and viewer.py are the handlers."""

from .app import PlaylistOptions, ViewerOptions, create_app, create_metrics_app

__all__ = ["PlaylistOptions", "ViewerOptions", "create_app", "create_metrics_app"]
