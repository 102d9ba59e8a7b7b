"""The web apps: every route they serve. What runs beside the routes is tied to the app's life
(cleanup_ctx); on shutdown, before the runner waits for its handlers, the app stops its StatusWatcher, ends
every event stream and answers every held blocking request, so no long-lived request holds a stop up."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web

from ..clips.served import ServedVod
from ..edge import SERVER_NAME
from ..metrics import ConnectionMetrics, Metrics
from ..playlist import hls
from ..status.audience import Audience
from ..status.playback import VERSION as REPORT_VERSION, Playback
from ..status.hub import WRITE_TIMEOUT, EventHub, StatusWatcher
from ..vm.segments import VmSegments
from . import events as sse, health as readings, limits, viewer
from .clients import Clients, Network, Proxies
from .common import CLIENT_MAX_SIZE, CONNECTION_LOG, elsewhere, guarded
from .gate import OPEN, AccessRoute, Gate, Open
from .health import HealthSource
from .keys import HEALTH, QUICK
from .page_policy import page_policy
from .playlists import MAX_HELD, MasterSource, PlaylistRoutes, PlaylistSource, RouteOptions
from .quick import QuickAnswers
from .steering_route import QuickSteering, SteeringRoute, SteeringSource
from .viewer import Words
from .vod_route import add_vod_routes
from .watching import WatchingRoute, preflight

# Owncast drops a viewer not seen for 15 s (activeViewerPurgeTimeout): two lost pings keep it counted.
OWNCAST_PING_EVERY = 5.0
# Owncast's own page reports its playback this often (its METRICS_SEND_INTERVAL).
OWNCAST_REPORT_EVERY = 10.0


@dataclass(frozen=True)
class ServedPathway:
    """A pathway whose media playlists are served under /live/<folder>/ and /hls/<folder>/ (not the first)."""

    id: str
    folder: str
    playlists: PlaylistSource
    away: Callable[[], bool] = lambda: False  # players are steered away from it now


@dataclass(frozen=True)
class Pathways:
    """Content steering (PATHWAYS): the masters naming every pathway, the others' playlists, the VM's
    segments (None without the VM's pathway), and the steering manifest."""

    masters: MasterSource
    steering: SteeringSource
    newest: Callable[[int], int | None]  # the newest number any pathway lists, per variant
    others: tuple[ServedPathway, ...] = ()
    segments: VmSegments | None = None
    count_steering: Callable[[str], None] = lambda pathway: None  # a manifest request, by _HLS_pathway
    away: Callable[[], bool] = lambda: False  # players are steered away from the first bucket's pathway now


@dataclass(frozen=True, slots=True)
class PlaylistOptions:
    """How the playlist routes answer."""

    default_variant: int = 0  # the variant /live/playlist.m3u8 is
    blocking_reload: bool = True  # off: _HLS_* parameters are ignored, as by a static host
    max_held: int = MAX_HELD  # blocking requests held at once (the file-handle budget's share)
    trust_cf_connecting_ip: bool = False  # count held requests per CF-Connecting-IP (behind the tunnel)
    pathways: Pathways | None = None  # content steering: the VM's pathway and the steering manifest
    forwarded_allow_ips: tuple[Network, ...] = ()  # proxies whose X-Forwarded-For names the client
    release_held: Callable[[], None] | None = None  # answers every held request at once, on shutdown
    gate: Gate | None = None  # PRIVATE=true: every stream door asks for a viewer token (gate.py)
    vod: ServedVod | None = None  # with `gate`: the clips and recordings kept off the bucket (vod_route.py)


@dataclass(frozen=True, slots=True)
class LiveEvents:
    """/live/events: the hub its streams read, and what publishes the state into it while the app runs."""

    hub: EventHub
    state: StatusWatcher | None = None


@dataclass(frozen=True)
class Viewers:
    """The viewer page's heartbeats: the count they keep, and the playback reports they carry."""

    audience: Audience
    playback: Playback | None = None
    # What a beat's Hb-Pathway says (content steering): (page id, its address, the header).
    pathway: Callable[[str, str | None, str], None] | None = None


@dataclass(frozen=True, slots=True)
class Running:
    """Where refused requests are counted, and whether /metrics is served here (not with METRICS_LISTEN)."""

    connection_metrics: ConnectionMetrics | None = None
    expose_metrics: bool = True


@dataclass(frozen=True, slots=True)
class ViewerOptions:
    """The viewer's page and files, served from `folder`."""

    folder: Path
    stream_url: str = "live/master.m3u8"  # where it plays from: here, or the bucket's copies
    max_open: int = limits.VIEWER_FILES  # files sent from disk at once (the file-handle budget's share)
    write_timeout: float = WRITE_TIMEOUT  # a client that accepts nothing this long is dropped
    p2p_trackers: tuple[str, ...] = ()  # WebTorrent trackers for viewer-to-viewer sharing; () = off
    p2p_swarm: str = ""  # the swarm id those viewers announce (one per stream)
    p2p_stun: tuple[str, ...] = ()  # STUN servers those viewers' browsers use; () = none
    p2p_start_on: bool = False  # a viewer's choice to share starts as yes (P2P_START_ON)
    p2p_min_viewers: int = 3  # peers only with this many willing viewers watching (P2P_MIN_VIEWERS)
    p2p_upload_mb: int = 500  # the most a page sends to peers per visit (P2P_UPLOAD_MB)
    viewer_timeout: float = 30.0  # a page counts this long after its heartbeat; it beats every third of it
    show_viewer_count: bool = True  # "N watching" on the page
    owncast_url: str = ""  # the page pings <this>/api/ping while playing; "" = off
    frame_ancestors: str = "'self'"  # the sites that may frame the page (a CSP frame-ancestors value)
    media_origins: tuple[str, ...] = ()  # where its player fetches segments besides here (page_policy.py)
    sources: tuple[str, ...] = ()  # origins ?src= may play besides this service's playlists; ("*",) = any
    title: str = ""  # the page's title and heading (STREAM_TITLE); "" = Owncast's name, else the page's own
    private: bool = False  # PRIVATE=true: the page asks for a pass-phrase first and names nothing of the stream
    description: str = ""  # the line under it (STREAM_DESCRIPTION); "" = Owncast's summary, else none
    viewers: Viewers | None = None  # the page's heartbeats are taken (POST /live/watching)

    def config(self, counting: bool = False, reporting: bool = False) -> dict[str, object]:
        """/config.json: where the viewer plays from, P2P when on, and when `counting` (the heartbeat is
        served) its heartbeat, Owncast's ping and playback report (`reporting`: the report's version)."""
        config: dict[str, object] = {"src": self.stream_url}
        if self.sources:  # without it the page plays only this service's playlists (viewer.js, ?src=)
            config["sources"] = list(self.sources)
        if self.p2p_trackers:
            config["p2p"] = {"trackers": list(self.p2p_trackers), "swarm": self.p2p_swarm,
                             "stun": list(self.p2p_stun), "start": self.p2p_start_on,
                             "minViewers": self.p2p_min_viewers, "uploadMb": self.p2p_upload_mb}
        if self.private:  # the page learns it before asking for anything; nothing names the stream
            config["private"] = True
        elif self.owncast_url and not (self.title and self.description):
            # The words no setting gives: the page asks Owncast's /api/config (CORS to any origin).
            config["details"] = {"url": f"{self.owncast_url}/api/config", "title": not self.title,
                                 "description": not self.description}
        if not counting:
            return config
        beat = round(self.viewer_timeout / 3, 3)  # two beats may be lost before the page drops out
        viewers: dict[str, object] = {"beat": beat, "show": self.show_viewer_count}
        if reporting:
            viewers["report"] = int(REPORT_VERSION)
        config["viewers"] = viewers
        if self.owncast_url:
            # Playback reports: CMCD to Owncast's collector (0.2), else its older endpoint.
            config["owncast"] = {"ping": f"{self.owncast_url}/api/ping",
                                 "every": min(OWNCAST_PING_EVERY, beat),
                                 "cmcd": f"{self.owncast_url}/api/metrics/cmcd",
                                 "metrics": f"{self.owncast_url}/api/metrics/playback",
                                 "report": min(OWNCAST_REPORT_EVERY, beat)}
        return config


def create_app(playlists: PlaylistSource, health: HealthSource, metrics: Metrics, *,
               events: LiveEvents | None = None, playlist_options: PlaylistOptions = PlaylistOptions(),
               viewer_options: ViewerOptions | None = None, running: Running = Running()) -> web.Application:
    """The public web app; app[QUICK]: what the connection gate answers before aiohttp. Run it with
    handler_cancellation=True: a client that hangs up frees its held request at once."""
    connection_metrics = running.connection_metrics
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, handler_args={"logger": CONNECTION_LOG})
    app[HEALTH] = health
    options = playlist_options
    proxies = Proxies(options.forwarded_allow_ips, options.trust_cf_connecting_ip)  # who names the client
    clients = Clients(proxies)  # one budget of late answers per client for every pathway's playlists
    pathways = options.pathways
    playlist_routes = PlaylistRoutes(playlists, metrics, options.default_variant, options.blocking_reload,
                                     RouteOptions(max_held=options.max_held, connection_metrics=connection_metrics,
                                                  clients=clients,
                                                  masters=pathways.masters if pathways else None,
                                                  newest=pathways.newest if pathways else None,
                                                  away=pathways.away if pathways else lambda: False))
    r = app.router
    doors = options.gate or OPEN  # every stream door wears one of its wrappers (none when public)
    # A private stream's multivariant playlists are each viewer's own: only aiohttp answers them.
    quick = app[QUICK] = QuickAnswers(options.gate.admits if options.gate is not None else None)
    r.add_get("/live/master.m3u8", doors.master(playlist_routes.master))
    r.add_get("/live/playlist.m3u8", doors.playlist(playlist_routes.media))
    quick.exact("/live/playlist.m3u8",
                functools.partial(playlist_routes.quick_media, options.default_variant))
    # Owncast's own paths, the same playlists, for its own page (cloudflared.yml.example).
    owncast_master = functools.partial(playlist_routes.master, name=hls.OWNCAST_PLAYLIST_NAME)
    r.add_get(f"/hls/{hls.OWNCAST_PLAYLIST_NAME}", doors.master(owncast_master))
    _media_routes(app, playlist_routes, doors)
    if options.gate is None:
        for path, name in (("/live/master.m3u8", hls.MEDIA_PLAYLIST_NAME),
                           (f"/hls/{hls.OWNCAST_PLAYLIST_NAME}", hls.OWNCAST_PLAYLIST_NAME)):
            quick.exact(path, functools.partial(playlist_routes.quick_master, name))
    else:
        r.add_post("/live/access", guarded(AccessRoute(options.gate.keeper, proxies).grant))
        if options.vod is not None:
            add_vod_routes(app, options.vod, options.gate)
    _add_pathways(app, options.pathways, metrics, options, clients)
    if events is not None:
        on_refused = (functools.partial(connection_metrics.rejected, "events_per_client")
                      if connection_metrics is not None else None)
        r.add_get("/live/events", doors.door(sse.EventStreams(events.hub, proxies, on_refused).handle))
        if events.state is not None:
            app.cleanup_ctx.append(functools.partial(_running_state_events, events.state))
    app.on_shutdown.append(functools.partial(_release, events, options.release_held))
    r.add_get("/health", readings.health(health))
    if running.expose_metrics:
        r.add_get("/metrics", readings.metrics(metrics.registry))
    if viewer_options is None:
        r.add_get("/", viewer.index_text(options.default_variant))
    else:
        root = viewer_options.folder.resolve()
        if not root.is_dir():
            raise ValueError(f"viewer folder {viewer_options.folder} is not a directory")
        on_timeout = (functools.partial(connection_metrics.rejected, "write_timeout")
                      if connection_metrics is not None else None)
        viewers = viewer_options.viewers
        config = json.dumps(viewer_options.config(counting=viewers is not None,
                                                  reporting=viewers is not None and viewers.playback is not None))
        files = viewer.ViewerFiles(
            root, max_open=viewer_options.max_open, write_timeout=viewer_options.write_timeout,
            on_write_timeout=on_timeout, config=config.encode(),
            # A private stream's page is served to anyone: it names nothing of the stream.
            words=Words("", "") if viewer_options.private else Words(viewer_options.title, viewer_options.description),
            policy=page_policy(frame_ancestors=viewer_options.frame_ancestors,
                               media=viewer_options.media_origins, trackers=viewer_options.p2p_trackers,
                               owncast_url=viewer_options.owncast_url, sources=viewer_options.sources))
        r.add_get("/config.json", guarded(files.config_json))
        if viewers is not None:
            watching = WatchingRoute(viewers.audience, show=viewer_options.show_viewer_count, proxies=proxies,
                                     playback=viewers.playback, pathway=viewers.pathway,
                                     sharing=bool(viewer_options.p2p_trackers))
            r.add_post("/live/watching", doors.door(watching.beat))
            r.add_route("OPTIONS", "/live/watching", preflight)  # never granted
        r.add_get("/", guarded(files.file))
        r.add_get("/embed", guarded(files.embed_page))
        r.add_get("/{file}", guarded(files.file))
    # Last: every path no route above takes ([\s\S]: a %0A in the path as well).
    r.add_route("*", r"/{tail:[\s\S]*}", elsewhere)
    return app


def _add_pathways(app: web.Application, pathways: Pathways | None, metrics: Metrics,
                  options: PlaylistOptions, clients: Clients) -> None:
    """The steering manifests, the other pathways' media playlists and the VM's segments."""
    r = app.router
    doors = options.gate or OPEN
    steering = SteeringRoute(pathways.steering if pathways else None,
                             pathways.count_steering if pathways else lambda pathway: None, proxies=clients.proxies)
    for folder in ("live", "hls"):
        r.add_get(f"/{folder}/{hls.STEERING_MANIFEST_NAME}", doors.steering(steering.manifest))
        if pathways is not None and options.gate is None:  # a private one: its gate's
            app[QUICK].whole(f"/{folder}/{hls.STEERING_MANIFEST_NAME}",
                             QuickSteering(steering, clients.proxies, folder))
    if pathways is None:
        return
    for served in pathways.others:
        routes = PlaylistRoutes(served.playlists, metrics, options.default_variant, options.blocking_reload,
                                RouteOptions(max_held=options.max_held, clients=clients,
                                             label_prefix=f"{served.folder}/", newest=pathways.newest,
                                             away=served.away))
        _media_routes(app, routes, doors, f"{served.folder}/")
    if pathways.segments is not None:
        segment = r"/{folder:live|hls}/" + hls.VM_FOLDER + r"/{n:[0-9]+}/{file:[^/]+\.(?:ts|m4s|mp4|aac)}"
        r.add_get(segment, doors.segment(pathways.segments.segment))


async def _running_state_events(watcher: StatusWatcher, app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the state events run while the app does (stopped sooner by _release)."""
    await watcher.start()
    yield
    await watcher.stop()


async def _release(events: LiveEvents | None, release_held: Callable[[], None] | None,
                   app: web.Application) -> None:
    """on_shutdown: the state stops being published and every event stream ends (new ones: 503); then every
    held blocking request gets the playlist as it is, and none is held from now."""
    if events is not None:
        if events.state is not None:
            await events.state.stop()
        events.hub.close()
    if release_held is not None:
        release_held()


def _media_routes(app: web.Application, routes: PlaylistRoutes, doors: Open, under: str = "") -> None:
    """A pathway's media playlists under /live/<under> and /hls/<under>, plain GETs answered quickly too."""
    for folder, name in (("live", hls.MEDIA_PLAYLIST_NAME), ("hls", hls.OWNCAST_PLAYLIST_NAME)):
        app.router.add_get(rf"/{folder}/{under}{{n:[0-9]+}}/{name}", doors.playlist(routes.media))
        app[QUICK].numbered(f"{folder}/{under}".rstrip("/"), name, routes.quick_media)


def create_metrics_app(metrics: Metrics) -> web.Application:
    """/metrics alone, for a listener of its own (METRICS_LISTEN), away from the public tunnel."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, handler_args={"logger": CONNECTION_LOG})
    app.router.add_get("/metrics", readings.metrics(metrics.registry, {hdrs.SERVER: SERVER_NAME}))
    return app
