"""Wires the parts together and runs them: store -> uploader -> publisher <- watcher, and the server."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .bucket.bucket import Bucket
from .vm.held import Held
from .bucket.mirror import PlaylistMirror
from .bucket.public_check import listed_answers
from .bucket.recorder import Recorder
from .bucket.urls import segment_urls
from .clips.book import CLIPS_FILE, ClipBook, ClipPlaces
from .http import LiveEvents, Pathways, PlaylistOptions, ViewerOptions, Viewers, create_app, create_metrics_app, limits
from .http.connections import KEEPALIVE_TIMEOUT, GatedSite, install_accept_error_handler
from .http.control import create_control_app, prepare_socket
from .http.gate import gate_for
from .http.page_policy import media_origins
from .http.serving import serving
from .http.steered import pathways as steered_pathways, vm_segments
from .metrics import AudienceMetrics, ConnectionMetrics, Metrics
from .playlist.options import WindowOptions
from .playlist.pathway import BUCKET, VM, BaseUris, Pathway, VmUris
from .publish.config import PublisherConfig
from .publish.pathways import FIRST, PathwayPlan
from .publish.publisher import Publisher
from .publish.readers import Readers
from .publish.release import ListedHook, Outlets
from .publish.visible import VisiblePlaylists
from .playlist.segments import Removed
from .settings import Address, Settings
from . import state_dir as judged
from .source import inotify, leases
from .source.access import AccessWatch
from .source.watcher import HlsWatcher
from .source.writes import Writes
from .state.disk import DirectoryBusy, DirectoryLock, StateFile
from .state.journal import JournaledState
from .state.snapshots import Snapshots, register_parts
from .playlist import hls
from .steering.metrics import PathwayCounts, SteeringMetrics
from .steering.plan import steered_plan
from .steering.policy import BucketSignals, SteeringPolicy, refusal
from .steering.probe import Newest, Probe, SteeringLoop, Watched
from .steering.reports import PathwayReports
from .status.assessment import HealthReport, Readings
from .status.audience import Audience
from .status.hub import EventHub, StatusWatcher
from .status.playback import Playback
from .status.playback_metrics import PlaybackMetrics
from .status.public_reads import PublicReads
from .status.trackers import TrackerProbe

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 5.0  # seconds a stop gives uploads in flight, and then the bucket's playlists
# Seconds a stop gives a request handler still running (held requests and event streams are answered at
# once; a segment being sent to a client that reads slowly is one), then it is cancelled: aiohttp's own
# 60 s would outlast systemd's TimeoutStopSec (30) and pm2's kill_timeout (20), killing the last save.
HANDLER_STOP_TIMEOUT = 3.0


class StartupError(RuntimeError):
    """The service cannot start; the message is one line for the operator."""


class SetupError(StartupError):
    """The service cannot start and a restart cannot change that (exit 2: neither systemd's unit nor pm2's
    file restarts it): a setting, a folder, a port taken, a bucket that does not exist or credentials
    refused. A line for each problem. What a restart can fix (the bucket or the network unreachable) is
    no SetupError: the service starts and waits, or exits 1."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_LISTEN_MISTAKES = frozenset({errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL})


def _set_up(err: OSError) -> bool:
    """An error of a folder's that only the operator mends: permissions, a read-only file system."""
    return err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def _failed(line: str, set_up: bool) -> StartupError:
    """The error a failed start raises: exit 2 for a set-up mistake, 1 for what a restart may fix."""
    return SetupError([line]) if set_up else StartupError(line)


def default_viewer_dir() -> Path | None:
    here = Path(__file__).resolve().parent
    for candidate in (here / "viewer", here.parent / "viewer"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _lock_state_dir(state_dir: Path) -> DirectoryLock:
    """One service per STATE_DIR: a second one would serve the same numbers twice."""
    lock = DirectoryLock(state_dir)
    try:
        lock.acquire()
    except DirectoryBusy as err:
        # Two services on one STATE_DIR: a set-up mistake (the unit's or pm2's own restart stops the
        # old process before it starts the new one).
        raise SetupError([judged.in_use(state_dir, err.pid)]) from None
    except OSError as err:
        raise _failed(f"cannot lock STATE_DIR {state_dir}: {err.strerror or err}", _set_up(err)) from None
    return lock


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        on_listed: ListedHook | None = None,
        viewer_dir: Path | None = None,
        budget: limits.Budget | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._on_listed = on_listed
        # File handles: client connections, event streams and held requests are capped from what the
        # open-file limit leaves once the service's own work is provided for.
        self.budget = budget or limits.for_process(
            upload_concurrency=settings.upload_concurrency,
            metrics_listener=isinstance(settings.metrics_listen, Address))
        self.connection_metrics = ConnectionMetrics(self.metrics.registry)
        self.control_socket: Path | None = None  # where `hls-broadcaster clip` reaches the service
        self.url = ""
        self._drain_timeout = DRAIN_TIMEOUT
        # Everything held is let go in the reverse order it was taken, by stop or by a start-up that
        # fails half way: the STATE_DIR lock first (the state is restored under it), so it goes last.
        with contextlib.ExitStack() as held:
            held.callback(_lock_state_dir(settings.state_dir).release)
            # Stage after stage (docs/how-it-works.md); the event hub first: publishing tells it each listing.
            self.events = EventHub(max_streams=self.budget.events, write_timeout=self.settings.write_timeout,
                                   on_refused=functools.partial(self.connection_metrics.rejected, "events"))
            self._build_buckets(settings)
            if self.held is not None:
                try:
                    self.held.open()
                except OSError as err:
                    raise _failed(f"cannot keep segment copies in {self.held.folder} (PATHWAYS names a "
                                  f"second pathway): {err.strerror or err}", _set_up(err)) from None
                held.callback(self.held.close)
            self._build_steering(settings)
            self._build_publishing(settings)
            held.callback(self.state.close)  # the journal's file, after the last save
            self._build_clips(settings)
            self.watcher = HlsWatcher(settings.hls_dir, self.publisher, self.metrics, writes=self.writes,
                                      kernel=self._kernel_watch)
            self.access = AccessWatch(settings.hls_dir)  # can this user still read Owncast's folder
            self._build_status()
            self.app = self._build_app(settings, viewer_dir or default_viewer_dir())
            self._parts = contextlib.AsyncExitStack()
            self._parts.enter_context(held.pop_all())

    def _build_buckets(self, s: Settings) -> None:
        """Every bucket PATHWAYS names, one Bucket each, the first bucket's first; what the service holds
        of each segment for them (with a second pathway); what only the first bucket does."""
        # With a second pathway the service holds segments for it: what the VM's pathway lists before a bucket
        # has it, what every bucket's upload sends, a copy of what a failed upload must send again; nothing
        # while the bucket takes each at once and the VM only redirects (vm/held.py).
        self.held = (Held(s.hls_dir, s.state_dir, max_bytes=s.vm_copies_mb * 1024 * 1024, keep_for=s.segment_url_life,
                          buckets=[b.pathway for b in s.buckets], writers=leases.writers) if s.steering else None)
        cleans = s.delete_old_segments and not s.keep_recordings  # kept streams are never cleaned up
        self.buckets = {b.pathway: Bucket(b, self.metrics, concurrency=s.upload_concurrency, timeout=s.upload_timeout,
                                          holder=self.held, cleans=cleans, cleanup_margin=s.cleanup_margin,
                                          uploads_pending=lambda: self.publisher.queue_depth,
                                          refused=lambda reason: refusal(False, reason) is not None)
                        for b in s.buckets}
        first = self.buckets[hls.BUCKET_PATHWAY]
        self.store, self.uploader, self.checks, self.cleaner = first.store, first.uploader, first.checks, first.cleaner
        self.mirror = (
            PlaylistMirror(self.store, self.metrics, attempt_timeout=s.upload_timeout) if s.publish_playlists else None
        )
        self.recorder = Recorder(self.uploader, s.state_dir, s.r2_key_prefix) if s.keep_recordings else None

    def _build_steering(self, s: Settings) -> None:
        """The pathways (PATHWAYS), and with more than one, the policy that orders them and what runs it."""
        self.steering: SteeringPolicy | None = None
        self.steering_loop: SteeringLoop | None = None
        self.pathway_reports: PathwayReports | None = None
        self.newest = Newest()  # the first bucket's newest listing: what its probe fetches
        target = lambda: self.playlists.target_duration  # noqa: E731
        # Whether viewers can fetch what is listed, whatever PATHWAYS is (the probe's without steering).
        self.public_reads = PublicReads(
            presigned=s.segment_urls == "presigned", newest=self.newest, target_duration=target,
            up=self.metrics.public_reads_up.set, watched=Watched(lambda: self.metrics.playlist_requests.total, target),
            start_check=lambda: listed_answers(self.store, self.urls.segment, s.r2_key_prefix, s.upload_timeout))
        self.newest.woken = self.metrics.playlist_requests.on_request = self.public_reads.wake
        self.public_reads.in_outage = lambda: self.uploader.storage_ok is False  # a probe failing may be it
        records = _pathways(s)
        # Every pathway but the first bucket's has its versions made only while clients read it.
        self.readers = {p.id: Readers(lambda: self.playlists.target_duration) for p in records[1:]}
        if not s.steering:
            self.plan = PathwayPlan(records)
            return
        buckets = {pid: BucketSignals.of_uploads(b.behind, b.outcome) for pid, b in self.buckets.items()}
        self.steering = SteeringPolicy(s.pathways, buckets, lambda: self.playlists.target_duration,
                                       interval=s.viewer_timeout / 3)
        self.plan = steered_plan(records, self.steering, {pid: r.make for pid, r in self.readers.items()})
        probes = {pid: Probe(self.newest if pid == hls.BUCKET_PATHWAY else _newest_landed(b), b.checks.writes)
                  for pid, b in self.buckets.items()}
        # Players read the stream: its playlists' or steering manifest's requests moved lately (the
        # probes' GETs go only then: nobody to steer otherwise).
        watched = Watched(lambda: self.metrics.playlist_requests.total + self.pathway_counts.manifests,
                          lambda: self.playlists.target_duration)
        # Each bucket's uploads tell the loop when one is late (on_late), so it needs no turn on a timer
        # while nothing is amiss (told_late).
        self.steering_loop = SteeringLoop(self.steering, probes, on_change=self._steered, watched=watched,
                                          told_late=True, heard=self.public_reads.pathway_heard)
        self.metrics.playlist_requests.on_request = self.steering_loop.seen  # a player: probes asleep look
        self.newest.woken = self.steering_loop.wake  # a listing wakes the loops that went quiet
        for b in self.buckets.values():
            b.uploader.on_failure = self.steering_loop.look  # a failed upload is evaluated at once
            b.uploader.waits.on_late, b.uploader.waits.late_after = self.steering_loop.look, self.steering.late_after
        self.pathway_reports = PathwayReports(self.steering_loop.report, s.pathways)

    def _steered(self, priority: tuple[str, ...]) -> None:
        """A new priority: requests held on the pathways players leave are answered (they read it
        sooner), and every pathway's playlists are made again (what each lists follows the priority)."""
        for pid, playlists in self.pathway_playlists.items():
            if pid != priority[0]:
                playlists.answer_held()
        self.publisher.steered()

    def _build_publishing(self, s: Settings) -> None:
        """Owncast's playlists into ours, and the state file that remembers them (restored here)."""
        self.state = JournaledState(s.state_dir)
        # Each pathway's playlists: what the server serves on it (the first bucket's: `playlists`).
        self.playlists = VisiblePlaylists()
        self.pathway_playlists = {p.id: self.playlists if p.id == hls.BUCKET_PATHWAY else VisiblePlaylists()
                                  for p in self.plan.pathways}
        # What the watcher's kernel events say of each file Owncast writes; an upload waits for its close.
        self._kernel_watch = s.hls_watch == "auto" and inotify.available()
        self.writes = Writes(s.hls_dir, kernel=self._kernel_watch)
        self.snapshots = Snapshots(self.state, self.metrics)
        self.urls = segment_urls(s)  # what a playlist lists each key at (its start checks one: public_reads)
        self.publisher = Publisher(
            PublisherConfig(
                hls_dir=s.hls_dir,
                key_prefix=s.r2_key_prefix,
                urls=self.urls,
                window=WindowOptions(s.listed_seconds, can_block_reload=s.blocking_reload,
                                     start_at_edge=s.rewind_seconds > s.window_seconds),
                target_duration=s.target_duration or None,
                segment_hashes=bool(s.p2p_trackers),  # viewers check what peers send against them
                # Without saved state, number from the clock: segments are never much shorter than a
                # second, so a lost STATE_DIR still never makes the media sequence go back.
                first_sequence=int(time.time()),
                pathways=self.plan,
            ),
            uploader=self.uploader, writes=self.writes, metrics=self.metrics, recorder=self.recorder,
            others={pid: b.uploader for pid, b in self.buckets.items() if pid != hls.BUCKET_PATHWAY},
            # Its Release's: saved first, then visible (and mirrored), then told.
            outlets=Outlets(self.playlists, self.snapshots, self.mirror, on_listed=(
                self.events.listed, self.newest.listed,
                *((self._on_listed,) if self._on_listed else ())),
                pathways={pid: p for pid, p in self.pathway_playlists.items() if pid != hls.BUCKET_PATHWAY}),
            on_removed=self._removed if any(b.cleaner for b in self.buckets.values()) else None,
        )
        self.release = self.publisher.release  # built, started and closed by the publisher
        for pid, readers in self.readers.items():
            readers.wake = self.publisher.lister.again  # a read of an idle pathway: its versions made now
            self.pathway_playlists[pid].on_current = readers.shown
        register_parts(self.snapshots, self.publisher,
                       {pid: b.cleaner for pid, b in self.buckets.items() if b.cleaner is not None})
        self.snapshots.restore()

    def _build_clips(self, s: Settings) -> None:
        """The operator's clips, held against the cleaner from before the first run (a restart keeps them)."""
        self.clips = ClipBook(
            StateFile(s.state_dir, CLIPS_FILE), self.uploader, self.store, self.publisher,
            lambda: self.playlists.announced, ClipPlaces(
                s.r2_key_prefix, s.first_bucket.public_url if s.segment_urls == "public" and not s.private else None, s.max_clips),
            holder=self.cleaner,
        )
        self.clips.load()

    def _build_status(self) -> None:
        """/health's assessment and the state events published into the event hub."""
        self.connection_metrics.watch("events", lambda: self.events.streams, self.budget.events)
        # The trackers viewers are told to use: /health and a gauge say when one does not serve them.
        s = self.settings
        self.tracker_probe = (TrackerProbe(s.p2p_trackers, s.p2p_swarm, self._master_body, self.metrics.p2p_tracker_up)
                              if s.p2p_trackers else None)
        # Viewer pages playing now (their heartbeats): /metrics, /health's body and the page itself.
        audience = self.audience = Audience(self.settings.viewer_timeout)
        AudienceMetrics(self.metrics.registry, lambda: audience.watching, lambda: audience.p2p,
                        lambda: audience.refused, lambda: audience.stalled_recently)
        # Their playback reports (issue 42), one per page per beat interval at most: /metrics.
        playlists = self.playlists
        self.playback = Playback(audience, interval=self.settings.viewer_timeout / 3,
                                 target_duration=lambda: playlists.target_duration)
        PlaybackMetrics(self.metrics.registry, self.playback)
        steering = self.steering
        if steering is not None and self.held is not None:
            self.pathway_counts = PathwayCounts(lambda: steering.first != hls.BUCKET_PATHWAY, s.pathways)
            if self.steering_loop is not None:
                self.pathway_counts.on_request = self.steering_loop.seen
            SteeringMetrics(self.metrics.registry, steering, self.held, self.pathway_counts,
                            self.settings.vm_segment_mbps * 125_000, self.pathway_reports)
        self.report = HealthReport(self.publisher.facts, self.uploader, mirror=self.mirror, readings=Readings(
            state_error=lambda: self.snapshots.error, listing_held=lambda: self.release.held,
            input_problem=self.watcher.master_missing, access_problem=lambda: self.access.problem,
            p2p_trackers=self.tracker_probe.readings if self.tracker_probe else None,
            viewers=lambda: {"watching": audience.watching, "p2p": audience.p2p,
                             "stalled_5min": audience.stalled_recently},
            delivery=self.public_reads.delivery(steering)))
        # State events: run by the public app (create_app) from its startup, after the watcher's first
        # scan, to its shutdown, which stops them before it ends the event streams.
        self.status = StatusWatcher(self.events, self.report.assess)

    def _build_app(self, s: Settings, viewer_folder: Path | None) -> web.Application:
        stream_url = f"{s.first_bucket.public_url}/{self.release.master_key}" if self.mirror else "live/master.m3u8"
        return create_app(
            self.playlists, self.report, self.metrics, events=LiveEvents(self.events, self.status),
            playlist_options=PlaylistOptions(blocking_reload=s.blocking_reload, max_held=self.budget.held,
                                             trust_cf_connecting_ip=s.trust_cf_connecting_ip,
                                             forwarded_allow_ips=s.forwarded_allow_ips,
                                             pathways=self._pathways(s), gate=gate_for(s)),
            viewer_options=None if viewer_folder is None else ViewerOptions(
                viewer_folder, stream_url=stream_url, max_open=self.budget.files, write_timeout=s.write_timeout,
                p2p_trackers=s.p2p_trackers, p2p_swarm=s.p2p_swarm,
                p2p_stun=s.p2p_stun_servers, p2p_start_on=s.p2p_start_on,
                p2p_min_viewers=s.p2p_min_viewers, p2p_upload_mb=s.p2p_upload_mb, viewer_timeout=s.viewer_timeout,
                show_viewer_count=s.show_viewer_count, owncast_url=s.owncast_url,
                frame_ancestors=s.frame_ancestors, sources=s.viewer_sources, title=s.stream_title,
                description=s.stream_description, media_origins=media_origins(s), private=s.private),
            expose_metrics=s.metrics_listen == "", connection_metrics=self.connection_metrics,
            viewers=Viewers(self.audience, self.playback, pathway=self.pathway_reports),
            release_held=self._release_waiters,
        )

    def _release_waiters(self) -> None:
        """Stopping: every held blocking request is answered, on every pathway."""
        for playlists in self.pathway_playlists.values():
            playlists.release_waiters()

    def _removed(self, removed: list[Removed]) -> None:
        """Segments no playlist may list any more: deleted from each bucket in its time."""
        for bucket in self.buckets.values():
            if bucket.cleaner is not None:
                bucket.cleaner.schedule(removed)

    def _pathways(self, s: Settings) -> Pathways | None:
        """The routes of content steering: every pathway's playlists, the VM's segments, the manifest."""
        if self.steering is None:
            return None
        segments = (vm_segments(s, self.steering, self.playlists, self.held, self.publisher, self.pathway_counts)
                    if self.held is not None and hls.VM_PATHWAY in s.pathways else None)
        return steered_pathways(s, self.plan, self.steering, self.pathway_playlists, segments, self.pathway_counts,
                                self.readers)

    async def start(self) -> None:
        """Starts each part after the ones it needs; stop (or a step here that fails) undoes them in the
        reverse order: the public listener opens last, once the pipeline runs, and closes first."""
        s = self.settings
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_exit(self._parts)  # what __init__ holds (the lock) goes last, and on failure
            await self._start_pipeline(stack)
            if isinstance(s.metrics_listen, Address):
                metrics_app = create_metrics_app(self.metrics)
                await self._listen(stack, metrics_app, s.metrics_listen, "METRICS_LISTEN", kind="metrics",
                                   limit=max(1, self.budget.metrics_connections),
                                   keepalive_timeout=KEEPALIVE_TIMEOUT)
                log.info("metrics on http://%s/metrics", s.metrics_listen)
            install_accept_error_handler(asyncio.get_running_loop())
            # Its startup starts the state events, after the watcher's first scan: a stream already running
            # is reported online, not offline for a second. handler_cancellation: a client that hangs up
            # frees its held request or event stream at once.
            port = await self._listen(stack, self.app, Address(s.host, s.port), "HOST/PORT",
                                      limit=self.budget.connections, backlog=limits.ACCEPT_BACKLOG,
                                      keepalive_timeout=KEEPALIVE_TIMEOUT, handler_cancellation=True)
            self.url = f"http://{s.host}:{port}"
            await self._open_control_socket(stack)
            self._parts = stack.pop_all()
        log.info("serving %s/live/master.m3u8 from %s; segments go to bucket %s under %s/ (%s URLs)",
                 self.url, s.hls_dir, s.first_bucket.bucket, s.r2_key_prefix, s.segment_urls)
        if self.mirror is not None:
            log.info("playlists are also written to the bucket: viewers can load %s/%s",
                     s.first_bucket.public_url, self.release.master_key)

    async def _start_pipeline(self, stack: contextlib.AsyncExitStack) -> None:
        """Owncast's folder readable, the bucket, then what writes to it, then what feeds them; each stop
        entered as its part starts."""
        refused = self.access.check(watch=self._kernel_watch)
        if refused:  # nothing could be served: name each folder and its fix, and do not restart
            raise SetupError(refused)
        for bucket in self.buckets.values():  # the first first: its refusal is the one to tell
            # Credentials refused, or no such bucket: a set-up mistake a restart cannot mend (exit 2).
            if (wrong := await bucket.start(stack)) is not None:
                raise SetupError([wrong])
        if self.mirror is not None:
            stack.push_async_callback(self._close_mirror)  # after the last save: it writes what was saved
        stack.callback(self._save_at_stop)  # once nothing above it changes the state any more
        if self.recorder is not None:
            stack.push_async_callback(self.recorder.close)
        await self.publisher.start()
        stack.push_async_callback(self._close_publisher)
        self.release.offer_to_mirror()  # a version saved but not written before a restart
        await self.watcher.start()
        stack.push_async_callback(self.watcher.stop)
        await self.access.start()
        stack.push_async_callback(self.access.stop)
        for pid, bucket in self.buckets.items():
            stack.push_async_callback(_cancel, asyncio.create_task(bucket.checks.run(), name=f"storage-probe-{pid}"))
        if self.tracker_probe is not None:
            await self.tracker_probe.start()
            stack.push_async_callback(self.tracker_probe.stop)
        await self.public_reads.start(probe=self.steering_loop is None)  # steering's loop probes for it
        stack.push_async_callback(self.public_reads.stop)
        if self.steering_loop is not None:
            await self.steering_loop.start()
            stack.push_async_callback(self.steering_loop.stop)

    async def _listen(self, stack: contextlib.AsyncExitStack, app: web.Application, where: Address,
                      setting: str, *, limit: int, kind: str = "connections", backlog: int = 128,
                      **options: Any) -> int:
        """Serves `app` on `where`, through a ConnectionGate, until the stack closes; returns the port."""
        s = self.settings
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=HANDLER_STOP_TIMEOUT,
                               **options)
        try:
            await stack.enter_async_context(serving(runner, lambda r: GatedSite(
                r, where.host, where.port, limit=limit, header_timeout=s.header_timeout,
                write_timeout=s.write_timeout, metrics=self.connection_metrics, kind=kind, backlog=backlog)))
        except OSError as err:
            # Taken, below 1024, or not this machine's address: only the setting (or the other program)
            # changes that, never a restart (Grafana's default port is 3000 too).
            # Not asyncio's wrapping of it; a name that does not resolve (errno < 0): the resolver's words.
            why = os.strerror(err.errno) if err.errno and err.errno > 0 else err.strerror
            taken = err.errno == errno.EADDRINUSE and where.port == 3000
            grafana = " (Grafana's default port is 3000 too)" if taken else ""
            raise _failed(f"cannot listen on {where} ({setting}): {why}{grafana}",
                          err.errno in _LISTEN_MISTAKES) from None
        return next((int(a[1]) for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2), where.port)

    def _master_body(self) -> bytes | None:
        master = self.playlists.master_playlist()
        return None if master is None else master.body

    def health(self) -> tuple[bool, dict[str, object]]:
        return self.report.health()

    async def _open_control_socket(self, stack: contextlib.AsyncExitStack) -> None:
        """The operator's socket (clips): a failure costs the clips, never the stream."""
        async with contextlib.AsyncExitStack() as control:
            try:
                path = prepare_socket(self.settings.state_dir)
                control.callback(self._remove_control_socket, path)
                # A clip being made when the service stops is given up (its keys let go), not waited for.
                runner = web.AppRunner(create_control_app(self.clips), access_log=None, handle_signals=False,
                                       shutdown_timeout=1.0, handler_cancellation=True)
                await control.enter_async_context(serving(runner, lambda r: web.UnixSite(r, str(path))))
                os.chmod(path, 0o600)
            except (OSError, ValueError) as err:
                why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                log.warning("clips are unavailable: cannot open the control socket in STATE_DIR (%s)", why)
                return
            stack.push_async_exit(control.pop_all())
        self.control_socket = path
        log.info("clips: hls-broadcaster clip talks to %s", path)

    def _remove_control_socket(self, path: Path) -> None:
        self.control_socket = None
        with contextlib.suppress(OSError):
            path.unlink()

    async def stop(self, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        """Stops what start started, in the reverse order, and lets go of STATE_DIR last (a second call
        does nothing). The public listener closes first: its app's shutdown answers held requests and
        ends event streams at once (no state is read or published from then), so nothing waits on them;
        uploads get `drain_timeout`, the state is saved, then the bucket's playlists get it too."""
        self._drain_timeout = drain_timeout
        await self._parts.aclose()

    async def _close_publisher(self) -> None:
        if not await self.publisher.drain(self._drain_timeout):
            log.warning("stopped with uploads still in flight after %.0fs", self._drain_timeout)
        await self.publisher.close()

    async def _close_mirror(self) -> None:
        assert self.mirror is not None
        self.release.offer_to_mirror()
        if not await self.mirror.drain(self._drain_timeout):
            log.warning("stopped before the last playlist versions were written to the bucket")
        await self.mirror.close()

    def _save_at_stop(self) -> None:
        """The last save, marked as made at a clean stop; when it fails, one line says what the next
        start does instead (docs/hls-rules.md#numbers-across-restarts)."""
        # The publisher is closed: its builder hands its memory on, forward.
        error = self.snapshots.save_now(self.publisher.snapshot())
        if error is None:
            return
        shown = self.snapshots.shown_past
        if self.snapshots.disk_clean is None:
            then = "the next start numbers from the clock"
        elif shown is None:
            then = "the next start continues exactly from the last state saved (nothing was shown past it)"
        else:
            then = (f"the next start continues above media sequence {shown} (the highest shown since the "
                    "last state saved) with a discontinuity, at Owncast's next segment")
        log.error("cannot save state to %s at shutdown: %s; %s (no number is served twice)",
                  self.state.path, error, then)


def settle_heap() -> None:
    """Once started: what exists now (modules, botocore's service models, the app) lives as long as
    the process. Frozen, it is no longer traversed by the collector's full passes, which stop the
    event loop (seconds, with thousands of viewers' objects on top: bench/viewers.py)."""
    gc.collect()
    gc.freeze()


async def run(settings: Settings) -> int:
    """Run until SIGINT or SIGTERM; returns the exit code.

    The first signal stops cleanly: held requests and event streams are answered at once, uploads get
    up to 5 s, the state is saved, exit 0. A second one while stopping exits at once (128 + signal):
    the state saved with each playlist version is enough to continue, so nothing is waited for."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stopping.is_set():
            log.warning("%s again while stopping: exiting now, without waiting for uploads", sig.name)
            os._exit(128 + sig)  # no unwinding: no tracebacks from the tasks cut short
        log.info("%s: stopping", sig.name)
        stopping.set()

    # Before anything starts: a signal during start-up must not kill the process half-way.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        service = Service(settings)
        await service.start()
        settle_heap()
        await stopping.wait()
        await service.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def _pathways(s: Settings) -> tuple[Pathway, ...]:
    """One record per pathway PATHWAYS names, in its order: the first bucket's (its segments at the URLs
    they are listed with), the VM's (under VM_PATHWAY_URL, or on the host each viewer asked), every other
    bucket's (its public URL and each segment's key)."""
    extra = {b.pathway: b for b in s.extra_buckets}
    records = [FIRST]
    for pid in s.pathways[1:]:
        if pid == hls.VM_PATHWAY:
            records.append(Pathway(pid, VM, hls.VM_FOLDER, VmUris(s.vm_pathway_url)))
        else:
            records.append(Pathway(pid, BUCKET, pid, BaseUris(extra[pid].public_url)))
    return tuple(records)


def _newest_landed(bucket: Bucket) -> Callable[[], tuple[str, float] | None]:
    """The newest segment a bucket other than the first stored, at its public URL: what its probe fetches."""
    base = bucket.settings.public_url.rstrip("/")

    def newest() -> tuple[str, float] | None:
        landed = bucket.uploader.last_landed
        return None if landed is None else (f"{base}/{landed[0]}", landed[1])

    return newest
