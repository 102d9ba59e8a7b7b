"""Wires the parts together and runs them: store -> uploader -> publisher <- watcher, and the server."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import time
from pathlib import Path

from aiohttp import web

from ..bucket.bucket import Bucket
from ..bucket.mirror import PlaylistMirror
from ..bucket.recorder import Recorder
from ..clips.book import CLIPS_FILE, ClipBook, ClipPlaces
from ..http import (LiveEvents, Pathways, PlaylistOptions, Running, ViewerOptions, Viewers, create_app,
                   create_metrics_app, limits)
from ..http.connections import install_accept_error_handler
from ..http.control import create_control_app
from ..http.gate import gate_for
from ..http.page_policy import media_origins
from ..http.steered import pathways as steered_pathways, vm_segments
from ..metrics import AudienceMetrics, ConnectionMetrics, Metrics
from ..playlist.options import WindowOptions
from ..publish.config import PublisherConfig
from ..publish.publisher import Publisher
from ..publish.release import ListedHook, Outlets
from ..publish.visible import VisiblePlaylists
from ..playlist.segments import Removed
from ..settings import Address, Settings
from ..source import inotify, leases
from ..source.access import AccessWatch
from ..source.tasks import cancelled
from ..source.watcher import HlsWatcher
from ..source.writes import Writes
from ..state.disk import StateFile
from ..state.journal import JournaledState
from ..state.snapshots import Snapshots, register_parts
from ..playlist import hls
from ..steering.metrics import SteeringMetrics
from ..steering.policy import refusal
from ..status.assessment import HealthReport, Readings
from ..status.audience import Audience
from ..status.hub import EventHub, StatusWatcher
from ..status.playback import Playback
from ..status.playback_metrics import PlaybackMetrics
from ..status.trackers import TrackerProbe
from ..vm.held import Held
from .delivery import Delivery
from .listeners import Listener, control_socket, listen
from .private_vod import GATED_AT, kept_playlists, served_vod
from .startup import SetupError, lock_state_dir, open_copies

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 5.0  # seconds a stop gives uploads in flight, and then the bucket's playlists


def default_viewer_dir() -> Path | None:
    """The viewer shipped in the package (broadcaster/viewer, in the wheel), or beside it in a checkout."""
    package = Path(__file__).resolve().parent.parent  # broadcaster/, this being broadcaster/service/
    for candidate in (package / "viewer", package.parent / "viewer"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


class Service:
    def __init__(self, settings: Settings, *, metrics: Metrics | None = None,
                 on_listed: ListedHook | None = None, viewer_dir: Path | None = None,
                 budget: limits.Budget | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._on_listed = on_listed
        # Connections, event streams and held requests are capped from the open-file limit's spare handles.
        self.budget = budget or limits.for_process(
            upload_concurrency=settings.upload_concurrency,
            metrics_listener=isinstance(settings.metrics_listen, Address))
        self.connection_metrics = ConnectionMetrics(self.metrics.registry)
        self.control_socket: Path | None = None  # where `hls-broadcaster clip` reaches the service
        self.url = ""
        self._drain_timeout = DRAIN_TIMEOUT
        # Everything held is let go in the reverse order it was taken: the STATE_DIR lock last.
        with contextlib.ExitStack() as held:
            held.callback(lock_state_dir(settings.state_dir).release)
            # Stage after stage; the event hub first: publishing tells it each listing.
            self.events = EventHub(max_streams=self.budget.events, write_timeout=self.settings.write_timeout,
                                   on_refused=functools.partial(self.connection_metrics.rejected, "events"))
            self._build_buckets(settings)
            if self.held is not None:
                held.callback(open_copies(self.held).close)
            self.playlists = VisiblePlaylists()  # the first bucket's: what the server serves
            self.delivery = Delivery(settings, self.metrics, self.buckets, self.playlists, self._steered)
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
        """Every bucket PATHWAYS names, one Bucket each, the first bucket's first; what only it does."""
        # With a second pathway the service holds segments for it (vm/held.py).
        self.held = (Held(s.hls_dir, s.state_dir, max_bytes=s.vm_copies_mb * 1024 * 1024, keep_for=s.segment_url_life,
                          buckets=[b.pathway for b in s.buckets], writers=leases.writers) if s.steering else None)
        self.buckets = {b.pathway: Bucket(b, s, self.metrics, holder=self.held,
                                          uploads_pending=lambda: self.publisher.queue_depth,
                                          refused=lambda reason: refusal(False, reason) is not None)
                        for b in s.buckets}
        first = self.buckets[hls.BUCKET_PATHWAY]
        self.store, self.uploader, self.cleaner = first.store, first.uploader, first.cleaner
        self.mirror = (
            PlaylistMirror(self.store, self.metrics, attempt_timeout=s.upload_timeout) if s.publish_playlists else None
        )
        self.kept = kept_playlists(s, self.store)  # a private stream's clips' and recordings' playlists: not in the bucket
        self.recorder = Recorder(self.kept or self.uploader, s.state_dir, s.r2_key_prefix) if s.keep_recordings else None

    def _steered(self, priority: tuple[str, ...]) -> None:
        """A new priority: requests held on the pathways players leave are answered, playlists made again."""
        for pid, playlists in self.pathway_playlists.items():
            if pid != priority[0]:
                playlists.answer_held()
        self.publisher.steered()

    def _build_publishing(self, s: Settings) -> None:
        """Owncast's playlists into ours, and the state file that remembers them (restored here)."""
        self.state = JournaledState(s.state_dir)
        self.pathway_playlists = {p.id: self.playlists if p.id == hls.BUCKET_PATHWAY else VisiblePlaylists()
                                  for p in self.delivery.plan.pathways}
        self._kernel_watch = s.hls_watch == "auto" and inotify.available()
        self.writes = Writes(s.hls_dir, kernel=self._kernel_watch)
        self.snapshots = Snapshots(self.state, self.metrics)
        self.publisher = Publisher(
            PublisherConfig(
                hls_dir=s.hls_dir,
                key_prefix=s.r2_key_prefix,
                urls=self.delivery.urls,
                window=WindowOptions(s.listed_seconds, can_block_reload=s.blocking_reload,
                                     start_at_edge=s.rewind_seconds > s.window_seconds),
                target_duration=s.target_duration or None,
                segment_hashes=bool(s.p2p_trackers),  # viewers check what peers send against them
                # Without saved state, number from the clock: a lost STATE_DIR never makes it go back.
                first_sequence=int(time.time()),
                pathways=self.delivery.plan,
            ),
            uploader=self.uploader, writes=self.writes, metrics=self.metrics, recorder=self.recorder,
            others={pid: b.uploader for pid, b in self.buckets.items() if pid != hls.BUCKET_PATHWAY},
            # Its Release's: saved first, then visible (and mirrored), then told.
            outlets=Outlets(self.playlists, self.snapshots, self.mirror, on_listed=(
                self.events.listed, self.delivery.newest.listed,
                *((self._on_listed,) if self._on_listed else ())),
                pathways={pid: p for pid, p in self.pathway_playlists.items() if pid != hls.BUCKET_PATHWAY}),
        )
        if any(b.cleaner for b in self.buckets.values()):
            self.publisher.on_removed = self._removed  # what left every playlist goes to the cleaners
        self.release = self.publisher.release  # built, started and closed by the publisher
        register_parts(self.snapshots, self.publisher,
                       {pid: b.cleaner for pid, b in self.buckets.items() if b.cleaner is not None})
        self.snapshots.restore()

    def _build_clips(self, s: Settings) -> None:
        """The operator's clips, held against the cleaner from before the first run."""
        self.clips = ClipBook(
            StateFile(s.state_dir, CLIPS_FILE), self.kept or self.uploader, self.kept or self.store, self.publisher,
            lambda: self.playlists.announced, ClipPlaces(
                s.r2_key_prefix, s.first_bucket.public_url if s.segment_urls == "public" and not s.private else None,
                s.max_clips, gated=GATED_AT if self.kept else None),
            holder=self.cleaner,
        )
        self.clips.load()

    def _build_status(self) -> None:
        """/health's assessment, the viewers' figures and the state events published into the event hub."""
        self.connection_metrics.watch("events", lambda: self.events.streams, self.budget.events)
        s = self.settings
        self.tracker_probe = (TrackerProbe(s.p2p_trackers, s.p2p_swarm, self._master_body, self.metrics.p2p_tracker_up)
                              if s.p2p_trackers else None)
        audience = self.audience = Audience(self.settings.viewer_timeout)
        AudienceMetrics(self.metrics.registry, lambda: audience.watching, lambda: audience.p2p,
                        lambda: audience.refused, lambda: audience.stalled_recently)
        playlists = self.playlists
        self.playback = Playback(audience, interval=self.settings.viewer_timeout / 3,
                                 target_duration=lambda: playlists.target_duration)
        PlaybackMetrics(self.metrics.registry, self.playback)
        if (steered := self.delivery.steered) is not None and self.held is not None:
            SteeringMetrics(self.metrics.registry, steered.policy, self.held, steered.counts,
                            self.settings.vm_segment_mbps * 125_000, steered.reports)
        self.report = HealthReport(self.publisher.facts, self.uploader, mirror=self.mirror, readings=Readings(
            state_error=lambda: self.snapshots.error, listing_held=lambda: self.release.held,
            input_problem=self.watcher.master_missing, access_problem=lambda: self.access.problem,
            p2p_trackers=self.tracker_probe.readings if self.tracker_probe else None,
            viewers=lambda: {"watching": audience.watching, "p2p": audience.p2p,
                             "stalled_5min": audience.stalled_recently},
            delivery=self.delivery.public_reads.delivery(steered.policy if steered else None)))
        # State events: run by the public app from its startup (after the watcher's first scan).
        self.status = StatusWatcher(self.events, self.report.assess)

    def _build_app(self, s: Settings, viewer_folder: Path | None) -> web.Application:
        stream_url = f"{s.first_bucket.public_url}/{self.release.master_key}" if self.mirror else "live/master.m3u8"
        return create_app(
            self.playlists, self.report, self.metrics, events=LiveEvents(self.events, self.status),
            playlist_options=PlaylistOptions(blocking_reload=s.blocking_reload, max_held=self.budget.held,
                                             trust_cf_connecting_ip=s.trust_cf_connecting_ip,
                                             forwarded_allow_ips=s.forwarded_allow_ips,
                                             pathways=self._pathways(s), release_held=self._release_waiters,
                                             gate=gate_for(s), vod=served_vod(s, self.kept)),
            viewer_options=None if viewer_folder is None else ViewerOptions(
                viewer_folder, stream_url=stream_url, max_open=self.budget.files, write_timeout=s.write_timeout,
                p2p_trackers=s.p2p_trackers, p2p_swarm=s.p2p_swarm,
                p2p_stun=s.p2p_stun_servers, p2p_start_on=s.p2p_start_on,
                p2p_min_viewers=s.p2p_min_viewers, p2p_upload_mb=s.p2p_upload_mb, viewer_timeout=s.viewer_timeout,
                show_viewer_count=s.show_viewer_count, owncast_url=s.owncast_url,
                frame_ancestors=s.frame_ancestors, sources=s.viewer_sources, title=s.stream_title,
                description=s.stream_description, media_origins=media_origins(s), private=s.private,
                viewers=Viewers(self.audience, self.playback,
                                pathway=steered.reports if (steered := self.delivery.steered) else None)),
            running=Running(connection_metrics=self.connection_metrics, expose_metrics=s.metrics_listen == ""),
        )

    def _release_waiters(self) -> None:
        for playlists in self.pathway_playlists.values():
            playlists.release_waiters()

    def _removed(self, removed: list[Removed]) -> None:
        for bucket in self.buckets.values():
            if bucket.cleaner is not None:
                bucket.cleaner.schedule(removed)

    def _pathways(self, s: Settings) -> Pathways | None:
        """The routes of content steering: every pathway's playlists, the VM's segments, the manifest."""
        d = self.delivery
        if (st := d.steered) is None:
            return None
        segments = (vm_segments(s, st.policy, self.playlists, self.held, self.publisher, st.counts, st.loop)
                    if self.held is not None and hls.VM_PATHWAY in s.pathways else None)
        return steered_pathways(s, d.plan, st.policy, self.pathway_playlists, segments, st.counts)

    async def start(self) -> None:
        """Starts each part after the ones it needs; stop (or a failed step) undoes them in reverse."""
        s = self.settings
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_exit(self._parts)  # what __init__ holds (the lock) goes last, and on failure
            await self._start_pipeline(stack)
            if isinstance(s.metrics_listen, Address):
                await listen(stack, create_metrics_app(self.metrics), Listener(
                    s.metrics_listen, "METRICS_LISTEN", max(1, self.budget.metrics_connections), kind="metrics"),
                    s, self.connection_metrics)
                log.info("metrics on http://%s/metrics", s.metrics_listen)
            install_accept_error_handler(asyncio.get_running_loop())
            # handler_cancellation: a client that hangs up frees its held request or event stream at once.
            port = await listen(stack, self.app, Listener(Address(s.host, s.port), "HOST/PORT", self.budget.connections,
                                                          backlog=limits.ACCEPT_BACKLOG),
                                s, self.connection_metrics, handler_cancellation=True)
            self.url = f"http://{s.host}:{port}"
            self.control_socket = await control_socket(stack, s.state_dir, create_control_app(self.clips))
            stack.callback(setattr, self, "control_socket", None)  # closed by then
            self._parts = stack.pop_all()
        log.info("serving %s/live/master.m3u8 from %s; segments go to bucket %s under %s/ (%s URLs)",
                 self.url, s.hls_dir, s.first_bucket.bucket, s.r2_key_prefix, s.segment_urls)
        if self.mirror is not None:
            log.info("playlists are also written to the bucket: viewers can load %s/%s",
                     s.first_bucket.public_url, self.release.master_key)

    async def _start_pipeline(self, stack: contextlib.AsyncExitStack) -> None:
        """Owncast's folder readable, the bucket, then what writes to it, then what feeds them."""
        refused = self.access.check(watch=self._kernel_watch)
        if refused:  # nothing could be served: name each folder and its fix, and do not restart
            raise SetupError(refused)
        for bucket in self.buckets.values():  # the first first: its refusal is the one to tell
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
            stack.push_async_callback(cancelled, asyncio.create_task(bucket.run_checks(), name=f"storage-probe-{pid}"))
        if self.tracker_probe is not None:
            await self.tracker_probe.start()
            stack.push_async_callback(self.tracker_probe.stop)
        await self.delivery.start(stack)

    def _master_body(self) -> bytes | None:
        master = self.playlists.master_playlist()
        return None if master is None else master.body

    async def stop(self, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        """Stops what start started, in reverse (STATE_DIR last); a second call does nothing."""
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
        self.snapshots.save_now(self.publisher.snapshot())  # closed: its builder hands its memory on, forward


def settle_heap() -> None:
    """Once started, what exists is frozen: the collector's full passes no longer stop the loop on it."""
    gc.collect()
    gc.freeze()


async def run(settings: Settings) -> int:
    """Run until SIGINT or SIGTERM (exit 0); a second signal while stopping exits at once (128 + it)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stopping.is_set():
            log.warning("%s again while stopping: exiting now, without waiting for uploads", sig.name)
            os._exit(128 + sig)  # no unwinding: no tracebacks from the tasks cut short
        log.info("%s: stopping", sig.name)
        stopping.set()

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
