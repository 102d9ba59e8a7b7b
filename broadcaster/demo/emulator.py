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
import atexit
import collections
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from aiohttp import StreamReader, web

from broadcaster.demo.children import GroupKiller, child_argv, stop_child
from broadcaster.demo.ffmpeg import ffmpeg_exe

log = logging.getLogger(__name__)
ffmpeg_log = logging.getLogger(__name__ + ".ffmpeg")

SegmentType = Literal["mpegts", "fmp4"]

FPS = 30
AUDIO_KBPS = 64
# models/latencyLevels.go, GetLatencyConfigs: level -> (SecondsPerSegment, SegmentCount).
# Level 2 is the default (core/data/config.go, GetStreamLatencyLevel).
LATENCY_LEVELS: dict[int, tuple[int, int]] = {0: (1, 25), 1: (2, 15), 2: (3, 10), 3: (4, 8), 4: (5, 5)}
# Seconds between the broadcaster's keyframes, cycled: an encoder with scene-cut detection on
# (OBS's x264 default) puts them anywhere, here between 1 and 4 s.
DEFAULT_SOURCE_KEYFRAMES: tuple[float, ...] = (2.0, 1.0, 3.5, 1.5, 4.0, 2.5)
_SOURCE_AUDIO_KBPS = 128
# teris-io/shortid's alphabet: ids may contain '-' and '_', so names like
# stream-a-B_c9-d2x-12.ts happen in real life; watchers must parse loosely.
_SHORTID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
_SHORTID_LENGTH = 9
_OFFLINE_SECONDS = 8  # Owncast hard-codes #EXTINF:8.000000 for its offline clip
_STOP_TIMEOUT = 10.0
_STDERR_TAIL = 40
_SLOW_PIECES = 8


class EmulatorError(RuntimeError):
    """ffmpeg failed (exited unexpectedly, or could not make the offline clip)."""


@dataclass(frozen=True)
class Variant:
    """One output of Owncast's admin page (models/streamOutputVariant.go).

    video_kbps is what the encoder is given (Owncast passes the configured bitrate minus 192 for
    audio). A passthrough variant copies the broadcaster's video: its width, height, framerate and
    video_kbps describe that source stream. audio_passthrough copies the broadcaster's AAC
    (Owncast also does this when the audio bitrate is 0, its default).
    """

    width: int
    height: int
    video_kbps: int
    framerate: int = FPS
    passthrough: bool = False
    audio_passthrough: bool = False


# Variant 0 is the default quality, like Owncast's first configured output.
VARIANT_PRESETS: tuple[Variant, ...] = (
    Variant(640, 360, 800),
    Variant(320, 180, 250),
    Variant(960, 540, 1500),
    Variant(480, 270, 500),
)


@dataclass(frozen=True)
class OwncastSettings:
    """What one Owncast stream is started with; read once per stream start."""

    variants: tuple[Variant, ...]
    segment_seconds: int
    list_size: int
    latency_level: int | None = None
    source_keyframes: tuple[float, ...] | None = None  # None: default gaps, used with passthrough only

    @property
    def needs_source(self) -> bool:
        """True if the transcoder must read an encoded stream (anything copied, or chosen keyframes)."""
        copied = any(v.passthrough or v.audio_passthrough for v in self.variants)
        return copied or self.source_keyframes is not None

    def source_variant(self) -> Variant:
        """The broadcaster's stream: the passthrough variant's picture, else the largest variant's."""
        copied = [v for v in self.variants if v.passthrough]
        if copied:
            return copied[0]
        big = max(self.variants, key=lambda v: v.width * v.height)
        return Variant(big.width, big.height, max(2 * big.video_kbps, 1500), FPS, passthrough=True)


def resolve_settings(
    variants: int | Sequence[Variant],
    *,
    latency_level: int | None,
    segment_seconds: int | None,
    list_size: int | None,
    source_keyframes: Sequence[float] | None,
) -> OwncastSettings:
    """Check and combine settings; latency_level sets segment_seconds and list_size like Owncast's."""
    if isinstance(variants, int):
        if not 1 <= variants <= len(VARIANT_PRESETS):
            raise ValueError(f"variants must be 1..{len(VARIANT_PRESETS)}, not {variants}")
        chosen = VARIANT_PRESETS[:variants]
    else:
        chosen = tuple(variants)
        if not chosen:
            raise ValueError("variants must not be empty")
        for v in chosen:
            if not isinstance(v, Variant):
                raise ValueError(f"variants must be Variant objects, not {v!r}")
            if min(v.width, v.height, v.video_kbps, v.framerate) < 1 or v.width % 2 or v.height % 2:
                raise ValueError(f"variant {v}: sizes must be even and all numbers >= 1")
        sources = {(v.width, v.height, v.framerate, v.video_kbps) for v in chosen if v.passthrough}
        if len(sources) > 1:
            raise ValueError(
                "passthrough variants copy one source: give them the same size, framerate and bitrate"
            )
    if latency_level is not None:
        if latency_level not in LATENCY_LEVELS:
            raise ValueError(f"latency_level must be one of {sorted(LATENCY_LEVELS)}, not {latency_level}")
        if segment_seconds is not None or list_size is not None:
            raise ValueError("give latency_level or segment_seconds/list_size, not both")
        segment_seconds, list_size = LATENCY_LEVELS[latency_level]
    segment_seconds = 1 if segment_seconds is None else segment_seconds
    list_size = 10 if list_size is None else list_size
    if segment_seconds < 1 or list_size < 1:
        raise ValueError("segment_seconds and list_size must be >= 1")
    gaps = None
    if source_keyframes is not None:
        gaps = tuple(float(g) for g in source_keyframes)
        if not gaps or min(gaps) < 0.1:
            raise ValueError("source_keyframes must be seconds between keyframes, each >= 0.1")
    return OwncastSettings(chosen, segment_seconds, list_size, latency_level, gaps)


def describe(settings: OwncastSettings) -> str:
    """One line for logs: latency, segment length, list size and each variant."""
    parts = []
    for v in settings.variants:
        video = "video copied" if v.passthrough else f"{v.width}x{v.height}@{v.framerate} {v.video_kbps}k"
        parts.append(video + (", audio copied" if v.audio_passthrough else ""))
    level = "" if settings.latency_level is None else f"latency level {settings.latency_level}: "
    return f"{level}{settings.segment_seconds} s x {settings.list_size} segments; " + "; ".join(parts)


def new_shortid() -> str:
    return "".join(secrets.choice(_SHORTID_ALPHABET) for _ in range(_SHORTID_LENGTH))


def resolve_inside(root: Path, relative: str) -> Path | None:
    """Return root/relative, or None if it would land outside root (or on root itself)."""
    parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root.resolve()):  # symlinks pointing out
        return None
    return target


def _test_picture(width: int, height: int, rate: int) -> str:
    # testsrc draws a running seconds counter without needing fonts; the sine beeps
    # once a second so sound and picture can be checked against each other.
    return (
        f"testsrc=size={width}x{height}:rate={rate}:decimals=2[out0];"
        "sine=frequency=440:sample_rate=48000:beep_factor=4[out1]"
    )


def keyframe_expr(gaps: Sequence[float], fps: int) -> str:
    """A -force_key_frames expression: keyframes `gaps` seconds apart, cycled.

    n_forced counts the keyframes forced so far, so the gap after the k-th one is gaps[k % len].
    Half a frame of slack keeps float rounding from pushing a keyframe one frame late.
    """
    gap = f"{gaps[-1]:g}"
    for i in reversed(range(len(gaps) - 1)):
        gap = f"if(eq(mod(n_forced-1,{len(gaps)}),{i}),{gaps[i]:g},{gap})"
    return f"expr:if(isnan(prev_forced_t),1,gte(t-prev_forced_t,{gap}-{0.5 / fps:g}))"


def source_command(exe: str, source: Variant, gaps: Sequence[float]) -> list[str]:
    """The broadcaster (OBS): the test picture encoded in real time with irregular keyframes, as
    FLV on stdout, which is what Owncast's RTMP server pipes into its transcoder (core/rtmp/rtmp.go)."""
    gop_cap = int(source.framerate * (max(gaps) + 2))  # only the forced keyframes fall inside it
    return [
        exe, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "warning",
        "-re", "-f", "lavfi", "-i", _test_picture(source.width, source.height, source.framerate),
        "-map", "0:v:0", "-map", "0:a:0",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-b:v", f"{source.video_kbps}k", "-maxrate", f"{source.video_kbps}k",
        "-bufsize", f"{2 * source.video_kbps}k",
        "-g", str(gop_cap), "-keyint_min", "1", "-sc_threshold", "0", "-forced-idr", "1",
        "-force_key_frames", keyframe_expr(gaps, source.framerate),
        "-c:a", "aac", "-b:a", f"{_SOURCE_AUDIO_KBPS}k",
        "-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1",
    ]  # fmt: skip


def _variant_args(i: int, v: Variant, *, segment_seconds: int, scale: bool) -> list[str]:
    """core/transcoder/transcoder.go, getVariantString: the video, then audio, then scaling and preset."""
    if v.passthrough:
        video = ["-map", "0:v:0", f"-c:v:{i}", "copy"]
    else:
        gop = v.framerate * segment_seconds  # "force an i-frame every segment"
        maxrate = int(v.video_kbps * 1.08)
        video = [
            "-map", "0:v:0", f"-c:v:{i}", "libx264",
            f"-b:v:{i}", f"{v.video_kbps}k", f"-maxrate:v:{i}", f"{maxrate}k",
            f"-g:v:{i}", str(gop), f"-keyint_min:v:{i}", str(gop), f"-r:v:{i}", str(v.framerate),
            # codecs.go, Libx264Codec.VariantFlags
            f"-x264-params:v:{i}", "scenecut=0:open_gop=0", f"-bufsize:v:{i}", f"{maxrate}k",
            f"-profile:v:{i}", "high",
        ]  # fmt: skip
    if v.audio_passthrough:
        audio = ["-map", "0:a:0", f"-c:a:{i}", "copy"]
    else:
        audio = ["-map", "0:a:0", f"-c:a:{i}", "aac", f"-b:a:{i}", f"{AUDIO_KBPS}k"]
    extra: list[str] = []
    if scale and not v.passthrough:
        extra = ["-sws_flags", "bilinear", f"-filter:v:{i}", f"scale={v.width}:{v.height}"]
    # A passthrough variant gets -preset too (its cpuUsageLevel 0), which a copied stream ignores.
    preset = "ultrafast" if v.passthrough else "veryfast"
    return [*video, *audio, *extra, "-preset", preset]


def ffmpeg_command(
    exe: str,
    base_url: str,
    shortid: str,
    variants: tuple[Variant, ...],
    *,
    segment_seconds: int,
    list_size: int,
    segment_type: SegmentType,
    source: Variant | None = None,
) -> list[str]:
    """The transcoder's command line, modelled on Owncast's Transcoder.getFlags() (v0.1.x and later).

    source None: the test picture is generated in this ffmpeg (cheaper, nothing copied). Otherwise
    ffmpeg reads the broadcaster's encoded stream of that size from stdin, like Owncast.
    """
    if source is None:
        width = max(v.width for v in variants)
        height = max(v.height for v in variants)
        rate = max(v.framerate for v in variants)
        input_args = ["-nostdin", "-re", "-f", "lavfi", "-i", _test_picture(width, height, rate)]
    else:
        width, height = source.width, source.height
        input_args = ["-i", "pipe:0"]
    args = [
        exe, "-hide_banner", "-nostats", "-loglevel", "warning",
        "-fflags", "+genpts", "-flags", "+cgop", *input_args,
    ]  # fmt: skip
    for i, v in enumerate(variants):
        scale = (v.width, v.height) != (width, height)
        args += _variant_args(i, v, segment_seconds=segment_seconds, scale=scale)
    ext = "ts" if segment_type == "mpegts" else "m4s"
    if segment_type == "mpegts":
        # Owncast's exact (odd) string: ffmpeg reads it as mpegts_flags set to nothing it knows.
        type_args = ["-segment_format_options", "mpegts_flags=mpegts_copyts=1"]
    else:
        # ffmpeg names the init file init_<variant>.mp4 in each variant folder.
        type_args = ["-hls_segment_type", "fmp4"]
    args += [
        "-var_stream_map", " ".join(f"v:{i},a:{i}" for i in range(len(variants))),
        "-f", "hls",
        "-hls_time", str(segment_seconds),
        "-hls_list_size", str(list_size),
        "-hls_flags", "program_date_time+independent_segments+omit_endlist",
        *type_args,
        "-tune", "zerolatency", "-pix_fmt", "yuv420p", "-sc_threshold", "0",
        "-master_pl_name", "stream.m3u8",
        "-hls_segment_filename", f"{base_url}/%v/stream-{shortid}-%d.{ext}",
        "-max_muxing_queue_size", "400",
        "-method", "PUT", "-http_persistent", "0",
        f"{base_url}/%v/stream.m3u8",
    ]  # fmt: skip
    return args


def listed_segments(playlist_text: str) -> list[str]:
    """URIs in a media playlist, ignoring a last line that is still being written."""
    complete = playlist_text.split("\n")[:-1]  # text after the last newline may be cut short
    return [line.strip() for line in complete if line.strip() and not line.startswith("#")]


# --- child processes ---------------------------------------------------------------


async def _run_once(argv: list[str], timeout: float = 60.0) -> None:
    """Run a short ffmpeg job; raise EmulatorError with its output if it fails."""
    proc = await asyncio.create_subprocess_exec(
        *child_argv(argv),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        GroupKiller(proc.pid)()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise EmulatorError(f"ffmpeg failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")


# --- the offline clip ----------------------------------------------------------------


@dataclass(frozen=True)
class _OfflineClip:
    segment: Path
    init: Path | None  # fMP4 only


_clip_dir: Path | None = None


def _clip_cache_dir() -> Path:
    global _clip_dir
    if _clip_dir is None:
        _clip_dir = Path(tempfile.mkdtemp(prefix="owncast-emulator-clips-"))
        atexit.register(shutil.rmtree, _clip_dir, True)
    return _clip_dir


async def offline_clip(segment_type: SegmentType) -> _OfflineClip:
    """Owncast's offline clip (8 s of colour bars, silent), made once per process."""
    cache = _clip_cache_dir()
    exe = ffmpeg_exe()
    source = [
        "-f", "lavfi", "-i",
        f"smptebars=size=640x360:rate={FPS}[out0];anullsrc=channel_layout=stereo:sample_rate=48000[out1]",
        "-t", str(_OFFLINE_SECONDS), "-map", "0:v", "-map", "0:a",
        "-c:v", "libx264", "-preset", "veryfast", "-g", str(FPS * _OFFLINE_SECONDS), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k",
    ]  # fmt: skip
    base = [exe, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y"]
    if segment_type == "mpegts":
        clip = _OfflineClip(cache / "offline.ts", None)
        if not clip.segment.exists():
            work = Path(tempfile.mkdtemp(dir=cache))
            await _run_once([*base, *source, "-f", "mpegts", str(work / "offline.ts")])
            os.replace(work / "offline.ts", clip.segment)  # atomic: concurrent makers are harmless
            shutil.rmtree(work, ignore_errors=True)
        return clip
    clip = _OfflineClip(cache / "offline-v2.m4s", cache / "offline-init.mp4")
    assert clip.init is not None
    if not (clip.segment.exists() and clip.init.exists()):
        work = Path(tempfile.mkdtemp(dir=cache))
        await _run_once([
            *base, *source, "-f", "hls", "-hls_time", str(_OFFLINE_SECONDS * 2), "-hls_list_size", "0",
            "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "offline-init.mp4",
            "-hls_segment_filename", str(work / "offline-v2-%d.m4s"), str(work / "offline.m3u8"),
        ])  # fmt: skip
        os.replace(work / "offline-init.mp4", clip.init)
        os.replace(work / "offline-v2-0.m4s", clip.segment)
        shutil.rmtree(work, ignore_errors=True)
    return clip


# --- the emulator --------------------------------------------------------------------


class OwncastEmulator:
    """Writes a synthetic live HLS stream into hls_dir the way Owncast does."""

    def __init__(
        self,
        hls_dir: Path,
        *,
        variants: int | Sequence[Variant] = 2,
        latency_level: int | None = None,
        segment_seconds: int | None = None,
        list_size: int | None = None,
        source_keyframes: Sequence[float] | None = None,
        segment_type: SegmentType = "mpegts",
        cleanup_keep: int | None = None,
        cleanup_interval: float = 60.0,
        write_delay: float = 0.0,
    ) -> None:
        """variants: how many of VARIANT_PRESETS, or the variants themselves. latency_level (0-4)
        sets segment_seconds and list_size from LATENCY_LEVELS; without it they default to 1 s
        and 10. source_keyframes: seconds between the broadcaster's keyframes, cycled; giving it
        (or any passthrough) makes the transcoder read an encoded stream, like Owncast.
        write_delay > 0 writes each file in 8 pieces with this pause before each, so
        readers reliably catch empty, half-written segments and truncated playlists."""
        settings = resolve_settings(
            variants,
            latency_level=latency_level,
            segment_seconds=segment_seconds,
            list_size=list_size,
            source_keyframes=source_keyframes,
        )
        if segment_type not in ("mpegts", "fmp4"):
            raise ValueError(f"segment_type must be 'mpegts' or 'fmp4', not {segment_type!r}")
        self.hls_dir = Path(hls_dir).absolute()
        self.segment_type: SegmentType = segment_type
        self._cleanup_keep = cleanup_keep
        self.cleanup_interval = cleanup_interval
        self.write_delay = write_delay
        # The settings of the stream on air (or of the next one, before the first start), and
        # those the next start() will use: Owncast reads its configuration once per stream.
        self.settings = settings
        self._next = settings

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._tmp_dir: Path | None = None
        self._shortid: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._killer: GroupKiller | None = None
        self._finalizer: weakref.finalize[[], OwncastEmulator] | None = None
        self._source: asyncio.subprocess.Process | None = None
        self._source_killer: GroupKiller | None = None
        self._source_finalizer: weakref.finalize[[], OwncastEmulator] | None = None
        self._stopping = False
        self._stderr_tasks: list[asyncio.Task[None]] = []
        self._watch_task: asyncio.Task[None] | None = None
        self._cleanup_task: asyncio.Task[None] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._failure: EmulatorError | None = None
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

        Settings not given keep their next value; latency_level replaces segment_seconds and
        list_size, and either of those alone drops the latency level.
        """
        current = self._next
        if latency_level is None and segment_seconds is None and list_size is None:
            latency_level = current.latency_level
            if latency_level is None:
                segment_seconds, list_size = current.segment_seconds, current.list_size
        elif latency_level is None:
            segment_seconds = current.segment_seconds if segment_seconds is None else segment_seconds
            list_size = current.list_size if list_size is None else list_size
        self._next = resolve_settings(
            current.variants if variants is None else variants,
            latency_level=latency_level,
            segment_seconds=segment_seconds,
            list_size=list_size,
            source_keyframes=current.source_keyframes if source_keyframes is None else source_keyframes,
        )
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
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def ffmpeg_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def source_pid(self) -> int | None:
        """The broadcaster ffmpeg feeding the transcoder (passthrough set-ups only)."""
        proc = self._source
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def ffmpeg_stderr_tail(self) -> list[str]:
        return list(self._stderr_tail)

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
        await self._start_receiver()
        self.settings = settings = self._next
        self._wipe()
        self._shortid = new_shortid()
        self._failure = None
        self._stderr_tail.clear()
        source = settings.source_variant() if settings.needs_source else None
        argv = ffmpeg_command(
            exe,
            f"http://127.0.0.1:{self.port}",
            self._shortid,
            settings.variants,
            segment_seconds=settings.segment_seconds,
            list_size=settings.list_size,
            segment_type=self.segment_type,
            source=source,
        )
        log.debug("starting ffmpeg: %s", " ".join(argv))
        read_fd = write_fd = -1
        if source is not None:
            read_fd, write_fd = os.pipe()  # Owncast's io.Pipe from the RTMP server to ffmpeg's stdin
        try:
            proc = await asyncio.create_subprocess_exec(
                *child_argv(argv),
                stdin=read_fd if source is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # own process group, killable as a whole
            )
        finally:
            if source is not None:
                os.close(read_fd)
        self._proc = proc
        self._stopping = False
        self._killer = GroupKiller(proc.pid)
        self._finalizer = weakref.finalize(self, self._killer)
        self._stderr_tasks = [asyncio.create_task(self._read_stderr(proc, "ffmpeg"))]
        if source is not None:
            gaps = settings.source_keyframes or DEFAULT_SOURCE_KEYFRAMES
            source_argv = source_command(exe, source, gaps)
            log.debug("starting the broadcaster: %s", " ".join(source_argv))
            try:
                src = await asyncio.create_subprocess_exec(
                    *child_argv(source_argv),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=write_fd,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
            except BaseException:
                os.close(write_fd)
                await self._stop_ffmpeg()
                raise
            os.close(write_fd)
            self._source = src
            self._source_killer = GroupKiller(src.pid)
            self._source_finalizer = weakref.finalize(self, self._source_killer)
            self._stderr_tasks.append(asyncio.create_task(self._read_stderr(src, "source")))
        self._watch_task = asyncio.create_task(self._watch(proc))
        self._cleanup_task = asyncio.create_task(self._cleanup_loop())
        log.info(
            "owncast emulator streaming into %s: %s (shortid %s, ffmpeg pid %d%s)",
            self.hls_dir, describe(settings), self._shortid, proc.pid,
            f", broadcaster pid {self._source.pid}" if self._source is not None else "",
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
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
            if self._tmp_dir is not None:
                shutil.rmtree(self._tmp_dir, ignore_errors=True)
                self._tmp_dir = None

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
            if self._failure is not None:
                raise self._failure
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
        removed = 0
        for i in range(len(self.variants)):
            stamped: list[tuple[int, Path]] = []
            try:
                entries = list(self.variant_dir(i).iterdir())
            except FileNotFoundError:
                continue
            for path in entries:
                if path.suffix not in (".ts", ".m4s"):
                    continue
                try:
                    stamped.append((path.stat().st_mtime_ns, path))
                except FileNotFoundError:
                    continue
            stamped.sort(reverse=True)
            for _, path in stamped[self.cleanup_keep :]:
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.debug("cleanup removed %d old segment(s) from %s", removed, self.hls_dir)
        return removed

    # -- internals

    async def _start_receiver(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._tmp_dir = Path(tempfile.mkdtemp(prefix=".owncast-emulator-tmp-", dir=self._tmp_parent()))
        log.debug("PUT receiver listening on 127.0.0.1:%d", self._port)

    def _tmp_parent(self) -> Path:
        # Owncast moves playlists from data/tmp into data/hls: a sibling on the same
        # file system, so the move is an atomic rename.
        self.hls_dir.parent.mkdir(parents=True, exist_ok=True)
        return self.hls_dir.parent

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        target = resolve_inside(self.hls_dir, request.match_info["path"])
        if target is None:
            log.warning("refused %s %s: outside %s", request.method, request.path, self.hls_dir)
            return web.Response(status=403, text="path outside the HLS folder\n")
        if request.method == "PUT":
            try:
                size = await self._write_in_place(target, request.content)
            except OSError as exc:
                log.warning("could not write %s: %s", target, exc)
                return web.Response(status=500, text=f"{exc}\n")
            log.debug("PUT %s: %d bytes", request.path, size)
            return web.Response()
        if request.method == "DELETE":
            # ffmpeg sends DELETE only with -hls_flags delete_segments, which Owncast does not use.
            target.unlink(missing_ok=True)
            return web.Response(status=204)
        return web.Response(status=400, text="Bad Request\n")

    async def _write_in_place(self, target: Path, body: StreamReader) -> int:
        # Like Owncast's os.Create + io.Copy: final name, truncated, filled as data arrives.
        with target.open("wb") as f:
            if self.write_delay <= 0:
                size = 0
                async for chunk in body.iter_any():
                    f.write(chunk)
                    f.flush()
                    size += len(chunk)
                return size
            data = bytearray()
            async for chunk in body.iter_any():
                data += chunk
            step = -(-len(data) // _SLOW_PIECES) or 1
            for start in range(0, len(data) or 1, step):
                await asyncio.sleep(self.write_delay)
                f.write(data[start : start + step])
                f.flush()
            return len(data)

    def _wipe(self) -> None:
        # utils.CleanupDirectory: os.RemoveAll(HLS_DIR) then MkdirAll, so hls_dir
        # itself is replaced (new inode), not just emptied.
        shutil.rmtree(self.hls_dir, ignore_errors=True)
        self.hls_dir.mkdir(parents=True, exist_ok=True)
        for i in range(len(self.variants)):
            self.variant_dir(i).mkdir()

    async def _read_stderr(self, proc: asyncio.subprocess.Process, name: str) -> None:
        assert proc.stderr is not None
        while True:
            try:
                line = await proc.stderr.readline()
            except ValueError:  # an absurdly long line: take a piece, keep draining the pipe
                line = await proc.stderr.read(65536)
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if text:
                self._stderr_tail.append(text if name == "ffmpeg" else f"[{name}] {text}")
                ffmpeg_log.info("[%s %d] %s", name, proc.pid, text)

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._killer is not None and self._proc is proc:
            self._killer.done = True
        if self._stopping or self._proc is not proc:
            return
        if self._stderr_tasks:
            await asyncio.wait(self._stderr_tasks, timeout=2.0)  # collect its last words
        tail = "\n".join(self._stderr_tail) or "(no output)"
        source = self._source
        if source is not None:  # the usual cause: its input ended
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(source.wait()), 2.0)
        fed = "" if source is None else f" (its broadcaster pid {source.pid}: exit code {source.returncode})"
        self._failure = EmulatorError(
            f"ffmpeg (pid {proc.pid}) exited unexpectedly with code {code}{fed}; last stderr lines:\n{tail}"
        )
        log.error("%s", self._failure)

    async def _cleanup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cleanup_interval)
            try:
                self.cleanup_old_segments()
            except OSError as exc:
                log.warning("cleanup of %s failed: %s", self.hls_dir, exc)

    async def _stop_ffmpeg(self) -> bool:
        """Stop ffmpeg (and its broadcaster) if there is one; True if a stream was on."""
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            await asyncio.gather(self._cleanup_task, return_exceptions=True)
            self._cleanup_task = None
        proc, source = self._proc, self._source
        if proc is None:
            return False
        self._stopping = True
        try:
            if source is not None:
                # The broadcaster disconnects: ffmpeg reads the end of its input, finishes the
                # current segment and playlist, and exits, as in Owncast.
                await stop_child(source, self._source_killer, self._source_finalizer,
                                 name="broadcaster ffmpeg", timeout=_STOP_TIMEOUT, whole_group=False)
                try:
                    await asyncio.wait_for(asyncio.shield(proc.wait()), _STOP_TIMEOUT)
                except TimeoutError:
                    log.warning("ffmpeg pid %d did not end with its input; stopping it", proc.pid)
            # SIGTERM to ffmpeg alone makes it finish the current segment and playlist, like an RTMP
            # input that ends; the group is SIGKILLed only if it hangs.
            await stop_child(proc, self._killer, self._finalizer, name="ffmpeg", timeout=_STOP_TIMEOUT,
                             whole_group=False)
        finally:
            if source is not None and self._source_killer is not None and source.returncode is None:
                self._source_killer()  # cancelled half-way: never leave the broadcaster running
            tasks = [*self._stderr_tasks, *([self._watch_task] if self._watch_task is not None else [])]
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)
            self._proc = self._source = None
            self._killer = self._finalizer = self._source_killer = self._source_finalizer = None
            self._stderr_tasks = []
            self._watch_task = None
            log.debug("ffmpeg pid %d stopped with code %s", proc.pid, proc.returncode)
        return True

    async def _append_offline_tail(self) -> None:
        clip = await offline_clip(self.segment_type)
        assert self._tmp_dir is not None
        for i in range(len(self.variants)):
            vdir = self.variant_dir(i)
            if not vdir.is_dir():
                continue
            lines = ["#EXT-X-DISCONTINUITY"]
            if clip.init is not None:
                shutil.copyfile(clip.init, vdir / clip.init.name)
                lines.append(f'#EXT-X-MAP:URI="{clip.init.name}"')
            shutil.copyfile(clip.segment, vdir / clip.segment.name)
            lines += [f"#EXTINF:{_OFFLINE_SECONDS}.000000,", clip.segment.name, "#EXT-X-ENDLIST"]
            tail = "\n".join(lines) + "\n"
            playlist = self.variant_playlist(i)
            try:
                existing = playlist.read_text()
            except FileNotFoundError:
                version = 7 if clip.init is not None else 3
                existing = f"#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{_OFFLINE_SECONDS}\n"
                tail = tail.removeprefix("#EXT-X-DISCONTINUITY\n")
            fd, tmp_name = tempfile.mkstemp(prefix=f"tmp-stream-{i}.m3u8", dir=self._tmp_dir)
            with os.fdopen(fd, "w") as f:
                f.write(existing + tail)
            shutil.move(tmp_name, playlist)
        log.info(
            "appended the offline clip to %d variant playlist(s) in %s", len(self.variants), self.hls_dir
        )
