"""The web apps: every route they serve, their typed keys (keys.py) and the background work they own.

Following aiohttp's examples/background_tasks.py: dependencies come in as arguments and go into the
app under typed AppKeys; what runs beside the routes (the StatusWatcher that turns /health into state
events) is started and stopped by the app's cleanup_ctx, so a runner's setup arms it and its cleanup
stops it at the latest. The service's stop order holds: closing the hub (its first step) ends the
streams and the watcher at once; the runner's cleanup, last, finds nothing left to wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from ..metrics import ConnectionMetrics, Metrics
from ..playlist import hls
from ..status.hub import WRITE_TIMEOUT, EventHub, StatusWatcher
from . import events as sse
from . import health as readings
from . import viewer
from .common import CLIENT_MAX_SIZE, CONNECTION_LOG, elsewhere
from .keys import (
    DEFAULT_VARIANT,
    EVENTS,
    HEALTH,
    METRICS,
    PIPELINE_RUNNING,
    STATE_EVENTS,
    VIEWER_CONFIG,
    VIEWER_FILES,
    HealthSource,
)
from .playlists import MAX_HELD, PlaylistRoutes, PlaylistSource
from .viewer_files import ViewerFiles

VIEWER_FILES_OPEN = 8  # viewer files sent from disk at once when no cap is given (limits.VIEWER_FILES)


def create_app(
    playlists: PlaylistSource,
    health: HealthSource,
    metrics: Metrics,
    *,
    events: EventHub | None = None,
    state_events: StatusWatcher | None = None,
    pipeline_running: asyncio.Event | None = None,
    viewer_dir: Path | None = None,
    default_variant: int = 0,
    expose_metrics: bool = True,
    stream_url: str = "live/master.m3u8",
    blocking_reload: bool = True,
    max_held: int = MAX_HELD,
    connection_metrics: ConnectionMetrics | None = None,
    trust_cf_connecting_ip: bool = False,
    viewer_files: int = VIEWER_FILES_OPEN,
    write_timeout: float = WRITE_TIMEOUT,
) -> web.Application:
    """The public web app. Without `events` there is no /live/events. `state_events` (publishing into
    `events`) runs from the runner's setup, or from when `pipeline_running` is set, until the hub
    closes: a state read before the pipeline's first scan of Owncast's folder would say offline.

    Run it with handler_cancellation=True, as the service does (aiohttp's test server does too): a handler
    whose client hangs up is then cancelled, so a held blocking request or an event stream gives its
    slot back at once and requests nobody waits for cannot fill the caps (issue 18)."""
    if state_events is not None and events is None:
        raise ValueError("state_events publish into an event hub: pass events too")
    # No middleware (common.py says why): the playlist handlers are the hot path.
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, handler_args={"logger": CONNECTION_LOG})
    app[HEALTH] = health
    app[METRICS] = metrics
    app[DEFAULT_VARIANT] = default_variant
    playlist_routes = PlaylistRoutes(playlists, metrics, default_variant, blocking_reload,
                                     max_held=max_held, connection_metrics=connection_metrics,
                                     trust_cf_connecting_ip=trust_cf_connecting_ip)
    r = app.router
    r.add_get("/live/master.m3u8", playlist_routes.master)
    r.add_get("/live/playlist.m3u8", playlist_routes.default_media)
    r.add_get(r"/live/{n:\d+}/playlist.m3u8", playlist_routes.media)
    # Owncast's own paths, the same playlists: its web page plays them unchanged when a tunnel sends
    # these two paths here and everything else on that hostname to Owncast (cloudflared.yml.example).
    r.add_get(f"/hls/{hls.OWNCAST_PLAYLIST_NAME}", playlist_routes.owncast_master)
    r.add_get(rf"/hls/{{n:\d+}}/{hls.OWNCAST_PLAYLIST_NAME}", playlist_routes.media)
    if events is not None:
        app[EVENTS] = events
        r.add_get("/live/events", sse.events)
        # Streams end before the runner waits on its handlers (the service closes the hub even earlier).
        app.on_shutdown.append(_close_events)
        if state_events is not None:
            app[STATE_EVENTS] = state_events
            app[PIPELINE_RUNNING] = pipeline_running or _already_set()
            app.cleanup_ctx.append(_state_events)
    r.add_get("/health", readings.health)
    if expose_metrics:
        r.add_get("/metrics", readings.metrics)
    if viewer_dir is None:
        r.add_get("/", viewer.index_text)
    else:
        root = viewer_dir.resolve()
        if not root.is_dir():
            raise ValueError(f"viewer_dir {viewer_dir} is not a directory")
        on_timeout = (functools.partial(connection_metrics.rejected, "write_timeout")
                      if connection_metrics is not None else None)
        app[VIEWER_FILES] = ViewerFiles(root, max_open=viewer_files, write_timeout=write_timeout,
                                                    on_write_timeout=on_timeout)
        # The viewer asks where to play from: here, or the bucket when playlists are published there.
        app[VIEWER_CONFIG] = json.dumps({"src": stream_url}).encode()
        r.add_get("/config.json", viewer.viewer_config)
        r.add_get("/", viewer.viewer_file)
        r.add_get("/{file}", viewer.viewer_file)
    # Last: every path no route above takes ([\s\S]: a %0A in the path as well).
    r.add_route("*", r"/{tail:[\s\S]*}", elsewhere)
    return app


def create_metrics_app(metrics: Metrics) -> web.Application:
    """/metrics alone, for a listener of its own (METRICS_LISTEN), away from the public tunnel."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, handler_args={"logger": CONNECTION_LOG})
    app[METRICS] = metrics
    app.router.add_get("/metrics", readings.private_metrics)  # no CORS: no web page has any business here
    return app


async def _close_events(app: web.Application) -> None:
    app[EVENTS].close()


def _already_set() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@contextlib.asynccontextmanager
async def _state_events(app: web.Application) -> AsyncIterator[None]:
    """The StatusWatcher, from when the pipeline runs until the hub closes: stopping starts with that
    (Service.stop's first step), so no state is read, published or logged while uploads drain."""
    watcher = app[STATE_EVENTS]
    task = asyncio.create_task(_watch(watcher, app[PIPELINE_RUNNING], app[EVENTS]), name="state-events-lifetime")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await watcher.stop()


async def _watch(watcher: StatusWatcher, pipeline_running: asyncio.Event, hub: EventHub) -> None:
    await pipeline_running.wait()
    if not hub.closed:
        await watcher.start()
        await hub.wait_closed()
    await watcher.stop()
