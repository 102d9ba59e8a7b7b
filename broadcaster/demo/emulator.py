"""A synthetic live stream written to a folder exactly the way Owncast writes it.

Owncast runs ffmpeg's hls muxer with `-method PUT` against its own small HTTP server,
which creates every file under its final name and copies the request body into it as
it arrives: no temp file, no rename, playlists overwritten in place. A reader can
therefore see a half-written segment or a truncated playlist, and this emulator makes
the same thing happen, so the watcher is tested against the real trap.

Mirrored from Owncast (core/transcoder/transcoder.go, fileWriterReceiverService.go,
hlsFilesystemCleanup.go, core/offlineState.go, utils.CleanupDirectory):
- every transcoder start removes HLS_DIR itself and recreates it (a new inode) plus
  one folder per variant, and uses a fresh random shortid in the segment names;
- a broadcaster disconnect copies an offline clip into each variant folder and appends
  it to each variant playlist through a temp file + move;
- a cleanup pass (once a minute) keeps the newest list_size+10 segments per variant.

Operators' settings (admin page, Video) are reproduced with Owncast's own ffmpeg arguments
(docs/owncast.md, "Settings an operator changes"): the latency level (segment length and list
size), the variants (size, frame rate, bitrate) and video or audio passthrough. With passthrough,
as in Owncast, the transcoder reads an already encoded stream on stdin: a second ffmpeg plays the
broadcaster and encodes the picture with irregular keyframes, so copied segments are cut where the
broadcaster's keyframes fall. Settings changed with configure() apply at the next start, as in
Owncast, which reads them only when a stream starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.demo.late_tails import LateTails
from broadcaster.demo.ledger import Ledger
from broadcaster.demo.offline_clip import offline_clip
from broadcaster.demo.owncast_files import (
    cleanup_old_segments,
    listed_segments,
    move_into_place,
    new_shortid,
    offline_tail_text,
    wipe,
    write_in_place,
)
from broadcaster.demo.owncast_settings import (
    DEFAULT_SOURCE_KEYFRAMES,
    LATENCY_LEVELS,
    OwncastSettings,
    SegmentType,
    Variant,
    describe,
    reconfigured,
    resolve_settings,
)
from broadcaster.demo.receiver import PutReceiver, resolve_inside
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.transcoder import EmulatorError, Transcoder
from broadcaster.demo.transcoder_args import ffmpeg_command, keyframe_expr, replay_command, source_command

# The names tests, benches and the demo import from here.
__all__ = [
    "LATENCY_LEVELS", "Cleanup", "EmulatorError", "LateTails", "Ledger", "OwncastEmulator", "OwncastSettings", "Recordings",
    "SegmentType", "Variant", "ffmpeg_command", "keyframe_expr", "listed_segments", "resolve_inside",
    "resolve_settings", "source_command",
]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cleanup:
    """Owncast's local clean-up: keep the newest `keep` segments per variant folder (None: its
    SegmentCount + 10), a pass every `interval` seconds."""

    keep: int | None = None
    interval: float = 60.0


class OwncastEmulator:
    """Writes a synthetic live HLS stream into hls_dir the way Owncast does."""

    def __init__(self, hls_dir: Path, settings: OwncastSettings | None = None, *, segment_type: SegmentType = "mpegts",
                 cleanup: Cleanup = Cleanup(), ledger: Ledger | None = None,
                 recordings: Recordings | None = None) -> None:
        """settings: the stream's (resolve_settings; by default two variants, 1 s segments, 10 listed).
        ledger (tests): every file written is recorded there as closed, the reference a test
        compares the bucket's bytes with. How files are written is set on the emulator, before its
        start or while it runs: `write_delay` (> 0 writes each file in 8 pieces with this pause before
        each, so readers reliably catch empty, half-written segments and truncated playlists) and
        `late_tails` (tests: each segment's last bytes are written only after its playlist names it,
        issue 39's race on every segment). recordings (tests): a stream of transcoded variants only is
        the transcoder's encoding made once there and replayed by the same ffmpeg muxer (recordings.py);
        without it, and with anything copied, ffmpeg encodes as it goes, as Owncast's does."""
        settings = settings or resolve_settings()
        if segment_type not in ("mpegts", "fmp4"):
            raise ValueError(f"segment_type must be 'mpegts' or 'fmp4', not {segment_type!r}")
        self.hls_dir = Path(hls_dir).absolute()
        self.segment_type: SegmentType = segment_type
        self._cleanup_keep = cleanup.keep
        self.cleanup_interval = cleanup.interval
        # The settings of the stream on air (or of the next one, before the first start), and
        # those the next start() will use: Owncast reads its configuration once per stream.
        self.settings = settings
        self._next = settings
        self._receiver = PutReceiver(self.hls_dir, ledger=ledger)
        self._transcoder = Transcoder()
        self._recordings = recordings
        self.replaying = False  # the stream on air is a recording's replay
        self._shortid: str | None = None
        self._cleanup_task: asyncio.Task[None] | None = None
        self._closed = False

    # -- settings

    @property
    def variants(self) -> tuple[Variant, ...]:
        return self.settings.variants

    @property
    def segment_seconds(self) -> int:
        return self.settings.segment_seconds

    @property
    def list_size(self) -> int:
        return self.settings.list_size

    @property
    def latency_level(self) -> int | None:
        return self.settings.latency_level

    @property
    def cleanup_keep(self) -> int:
        """Segments kept per variant by the cleanup pass: Owncast's SegmentCount + 10 by default."""
        return self._cleanup_keep if self._cleanup_keep is not None else self.list_size + 10

    @property
    def next_settings(self) -> OwncastSettings:
        return self._next

    def configure(
        self,
        *,
        variants: int | Sequence[Variant] | None = None,
        latency_level: int | None = None,
        segment_seconds: int | None = None,
        list_size: int | None = None,
        source_keyframes: Sequence[float] | None = None,
    ) -> None:
        """Change settings like an operator on Owncast's admin page: they apply at the next
        start() or restart_stream(); a stream on air keeps its ffmpeg and settings.

        Settings not given keep their next value (owncast_settings.reconfigured).
        """
        self._next = reconfigured(self._next, variants=variants, latency_level=latency_level,
                                  segment_seconds=segment_seconds, list_size=list_size,
                                  source_keyframes=source_keyframes)
        log.info("owncast emulator settings for the next stream: %s", describe(self._next))

    # -- properties

    @property
    def shortid(self) -> str:
        if self._shortid is None:
            raise RuntimeError("the emulator has not been started")
        return self._shortid

    @property
    def port(self) -> int:
        """Port of the PUT receiver that ffmpeg writes to."""
        if self._receiver.port is None:
            raise RuntimeError("the emulator has not been started")
        return self._receiver.port
    @property
    def ffmpeg_pid(self) -> int | None:
        return self._transcoder.pid

    @property
    def source_pid(self) -> int | None:
        """The broadcaster ffmpeg feeding the transcoder (passthrough set-ups only)."""
        return self._transcoder.source_pid

    @property
    def ffmpeg_stderr_tail(self) -> list[str]:
        return self._transcoder.stderr_tail

    @property
    def write_delay(self) -> float:
        return self._receiver.write_delay

    @write_delay.setter
    def write_delay(self, delay: float) -> None:
        self._receiver.write_delay = delay

    @property
    def ledger(self) -> Ledger | None:
        """What was finished writing, per file (None unless asked for)."""
        return self._receiver.ledger

    @property
    def late_tails(self) -> LateTails | None:
        return self._receiver.late_tails

    @late_tails.setter
    def late_tails(self, tails: LateTails | None) -> None:
        """On or off from the next segment on (what is held now is finished at once)."""
        self._receiver.late_tails = tails

    @property
    def master_playlist(self) -> Path:
        return self.hls_dir / "stream.m3u8"

    def variant_dir(self, variant: int) -> Path:
        return self.hls_dir / str(variant)

    def variant_playlist(self, variant: int) -> Path:
        return self.variant_dir(variant) / "stream.m3u8"

    # -- life cycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start a stream with the configured settings: wipe hls_dir like Owncast, new shortid,
        start ffmpeg (and, if anything is copied, the broadcaster feeding it)."""
        if self._closed:
            raise RuntimeError("the emulator is closed")
        if self.ffmpeg_pid is not None:
            raise RuntimeError("the stream is already running; use restart_stream()")
        await self._stop_ffmpeg()  # tidy up after an ffmpeg that died by itself
        exe = ffmpeg_exe()
        await self._receiver.start()
        self.settings = settings = self._next
        source = settings.source_variant() if settings.needs_source else None
        recording = None
        if self._recordings is not None and source is None:  # made (once) before Owncast's wipe
            recording = await self._recordings.get(exe, settings.variants, settings.segment_seconds)
        wipe(self.hls_dir, range(len(self.variants)))
        self._shortid = new_shortid()
        base_url = f"http://127.0.0.1:{self.port}"
        if recording is not None:
            argv = replay_command(exe, str(recording), base_url, self._shortid, settings, self.segment_type)
        else:
            argv = ffmpeg_command(exe, base_url, self._shortid, settings, self.segment_type, source)
        self.replaying = recording is not None
        log.debug("starting ffmpeg: %s", " ".join(argv))
        gaps = settings.source_keyframes or DEFAULT_SOURCE_KEYFRAMES
        await self._transcoder.start(argv, None if source is None else source_command(exe, source, gaps))
        self._cleanup_task = asyncio.create_task(self._cleanup_loop())
        source_pid = self.source_pid
        log.info(
            "owncast emulator streaming into %s: %s (shortid %s, ffmpeg pid %s%s%s)",
            self.hls_dir, describe(settings), self._shortid, self.ffmpeg_pid,
            f", broadcaster pid {source_pid}" if source_pid is not None else "",
            ", replaying its encoding" if self.replaying else "",
        )  # fmt: skip

    async def stop_stream(self, offline: bool = True) -> None:
        """End the stream like a broadcaster disconnect; optionally append Owncast's offline tail."""
        was_live = await self._stop_ffmpeg()
        if offline and was_live:
            await self._append_offline_tail()

    async def restart_stream(self) -> None:
        """A new broadcast: stop ffmpeg, wipe hls_dir, new shortid, start again."""
        await self._stop_ffmpeg()
        await self.start()

    async def close(self) -> None:
        """Stop ffmpeg and the receiver and remove private temp files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._stop_ffmpeg()
        finally:
            await self._receiver.close()

    # -- helpers for tests and the demo

    def listed_segments(self, variant: int) -> list[str]:
        """Segment URIs in a variant playlist as it is on disk right now (may be truncated)."""
        try:
            text = self.variant_playlist(variant).read_text(errors="replace")
        except FileNotFoundError:
            return []
        return listed_segments(text)

    async def wait_for_segments(self, variant: int, count: int, timeout: float) -> list[str]:
        """Wait until the variant playlist lists at least count segments; return them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._transcoder.failure is not None:
                raise self._transcoder.failure
            names = self.listed_segments(variant)
            if len(names) >= count:
                return names
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"variant {variant} lists {len(names)} of {count} segments after {timeout} s; "
                    f"ffmpeg pid {self.ffmpeg_pid}, last stderr: {self.ffmpeg_stderr_tail[-5:]}"
                )
            await asyncio.sleep(0.05)


    def cleanup_old_segments(self) -> int:
        """Owncast's local cleanup: keep the newest cleanup_keep segments per variant folder."""
        removed = sum(cleanup_old_segments(self.variant_dir(i), self.cleanup_keep) for i in range(len(self.variants)))
        if removed:
            log.debug("cleanup removed %d old segment(s) from %s", removed, self.hls_dir)
        return removed

    # -- internals

    async def _cleanup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cleanup_interval)
            try:
                self.cleanup_old_segments()
            except OSError as exc:
                log.warning("cleanup of %s failed: %s", self.hls_dir, exc)

    async def _stop_ffmpeg(self) -> bool:
        """Stop the cleanup pass and ffmpeg (and its broadcaster); True if a stream was on."""
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            await asyncio.gather(self._cleanup_task, return_exceptions=True)
            self._cleanup_task = None
        return await self._transcoder.stop()

    async def _append_offline_tail(self) -> None:
        clip = await offline_clip(self.segment_type)
        assert self._receiver.tmp_dir is not None
        for i in range(len(self.variants)):
            vdir = self.variant_dir(i)
            if not vdir.is_dir():
                continue
            for made in (clip.init, clip.segment):  # utils.Copy: os.Create + io.Copy, in place
                if made is not None:
                    write_in_place(vdir / made.name, made.read_bytes(), ledger=self.ledger)
            try:
                existing: str | None = self.variant_playlist(i).read_text()
            except FileNotFoundError:
                existing = None
            text = offline_tail_text(existing, clip.segment.name, clip.init.name if clip.init else None)
            move_into_place(text, self.variant_playlist(i), self._receiver.tmp_dir, self.ledger)
        log.info(
            "appended the offline clip to %d variant playlist(s) in %s", len(self.variants), self.hls_dir
        )
