"""`hls-broadcaster demo`: the whole thing on this machine, no account and no Owncast needed.

A real S3 server (SeaweedFS), a synthetic live stream written exactly the way Owncast writes it
(the same emulator the tests use), the service, and the viewer. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..service import Service
from ..settings import load_settings
from .emulator import LATENCY_LEVELS, EmulatorError, OwncastEmulator, Variant, resolve_settings
from .ffmpeg import FfmpegNotFoundError
from .seaweed import SeaweedError, SeaweedS3
from .tracker import LocalTracker, TrackerUnavailable, free_port, install

log = logging.getLogger(__name__)


class DemoError(RuntimeError):
    """A part of the demo could not start; the message says which and what to install."""


async def run_demo(
    *,
    port: int = 3000,
    host: str = "127.0.0.1",
    segment_seconds: int = 2,
    latency_level: int | None = None,
    passthrough: bool = False,
    p2p: bool = False,
    say: Callable[[str], None] = print,
) -> int:
    """Runs until SIGINT or SIGTERM, in a temporary folder removed at the end."""
    work = Path(tempfile.mkdtemp(prefix="hls-broadcaster-demo-"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            say("[1/3] starting a local S3 server (SeaweedFS)...")
            try:
                s3 = await stack.enter_async_context(SeaweedS3(work / "s3"))
            except SeaweedError as err:
                raise DemoError(f"the local S3 server could not start: {err}") from None
            say(f"      S3 API at {s3.endpoint_url}, bucket '{s3.bucket}' (public read, CORS on)")

            say("[2/3] starting a synthetic live stream written the way Owncast writes it (ffmpeg)...")
            hls = work / "hls"
            if latency_level is not None:
                segment_seconds = LATENCY_LEVELS[latency_level][0]
            # Passthrough: Owncast's common set-up, the broadcaster's video copied plus one lower quality.
            variants: int | list[Variant] = (
                [Variant(640, 360, 1500, passthrough=True), Variant(320, 180, 250)] if passthrough else 2
            )
            own_length = segment_seconds if latency_level is None else None
            try:
                await stack.enter_async_context(OwncastEmulator(hls, resolve_settings(
                    variants=variants, latency_level=latency_level, segment_seconds=own_length)))
            except (FfmpegNotFoundError, EmulatorError) as err:
                raise DemoError(f"the synthetic stream could not start: {err}") from None
            copied = ", the first one's video copied (irregular keyframes)" if passthrough else ""
            say(f"      {hls}: 2 variants{copied}, {segment_seconds} s segments")

            settings = load_settings(environ={
                # The demo's viewers are on this machine: their host addresses suffice, and no STUN
                # server outside hears of them.
                "P2P_STUN_SERVERS": "none",
                "HLS_DIR": str(hls), "S3_ENDPOINT_URL": s3.endpoint_url, "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_BUCKET_NAME": s3.bucket,
                "R2_PUBLIC_URL": s3.public_url, "HOST": host, "PORT": str(port), "STATE_DIR": str(work / "state"),
                "WINDOW_SECONDS": str(max(12, 6 * segment_seconds)),
                # Content steering on, as an operator may set it up: here on one machine, no CDN between
                # (docs/steering.md says what the VM's pathway means behind Cloudflare).
                "PATHWAYS": "bucket,vm",
            })
            tracker_folder: Path | None = None
            if p2p:  # its URL first (the viewers are told it); it starts once the service does
                say("      P2P: installing the local WebTorrent tracker (Node.js)...")
                try:
                    tracker_folder = await asyncio.to_thread(install)
                except TrackerUnavailable as err:
                    say(f"      P2P: off: {err}")
                else:
                    tracker_port = free_port()
                    settings = dataclasses.replace(settings, p2p_trackers=(f"ws://127.0.0.1:{tracker_port}",))

            say("[3/3] starting hls-broadcaster...")
            service = Service(settings)
            await service.start()
            stack.push_async_callback(service.stop)
            if tracker_folder is not None:
                try:
                    # It serves this service's stream alone (read from it, as on a VM), and is started
                    # again if it dies.
                    tracker = await stack.enter_async_context(
                        LocalTracker(tracker_folder, service=service.url, port=tracker_port))
                except TrackerUnavailable as err:
                    say(f"      P2P: the tracker did not start ({err}): viewers play from the bucket alone")
                else:
                    say(f"      P2P: viewers share segments through the tracker at {tracker.url}")
            say("")
            say(f"  Watch it:   {service.url}/")
            say(f"  Playlist:   {service.url}/live/master.m3u8  (segments come from {s3.public_url})")
            say(f"  Health:     {service.url}/health    Metrics: {service.url}/metrics")
            say("  Press Ctrl-C to stop.")
            say("")
            await stop.wait()
            say("stopping...")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        shutil.rmtree(work, ignore_errors=True)
    say("stopped; nothing left running.")
    return 0

