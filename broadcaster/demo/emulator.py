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
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import os
import secrets
import shutil
import tempfile
import weakref
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
    width: int
    height: int
    video_kbps: int


# Variant 0 is the default quality, like Owncast's first configured output.
VARIANT_PRESETS: tuple[Variant, ...] = (
    Variant(640, 360, 800),
    Variant(320, 180, 250),
    Variant(960, 540, 1500),
    Variant(480, 270, 500),
)


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


def ffmpeg_command(
    exe: str,
    base_url: str,
    shortid: str,
    variants: tuple[Variant, ...],
    *,
    segment_seconds: int,
    list_size: int,
    segment_type: SegmentType,
) -> list[str]:
    """The ffmpeg command line, modelled on Owncast's Transcoder.getString()."""
    gop = FPS * segment_seconds  # a keyframe starts every segment
    width = max(v.width for v in variants)
    height = max(v.height for v in variants)
    # testsrc draws a running seconds counter without needing fonts; the sine beeps
    # once a second so sound and picture can be checked against each other.
    source = (
        f"testsrc=size={width}x{height}:rate={FPS}:decimals=2[out0];"
        "sine=frequency=440:sample_rate=48000:beep_factor=4[out1]"
    )
    args = [
        exe, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "warning",
        "-re", "-fflags", "+genpts", "-f", "lavfi", "-i", source,
    ]  # fmt: skip
    for i, v in enumerate(variants):
        args += [
            "-map", "0:v:0", "-map", "0:a:0",
            f"-c:v:{i}", "libx264",
            f"-b:v:{i}", f"{v.video_kbps}k",
            f"-maxrate:v:{i}", f"{int(v.video_kbps * 1.06)}k",
            f"-bufsize:v:{i}", f"{int(v.video_kbps * 1.2)}k",
            f"-g:v:{i}", str(gop), f"-keyint_min:v:{i}", str(gop),
            f"-r:v:{i}", str(FPS), f"-profile:v:{i}", "high",
            f"-c:a:{i}", "aac", f"-b:a:{i}", f"{AUDIO_KBPS}k",
        ]  # fmt: skip
        if (v.width, v.height) != (width, height):
            args += ["-sws_flags", "bilinear", f"-filter:v:{i}", f"scale={v.width}:{v.height}"]
    ext = "ts" if segment_type == "mpegts" else "m4s"
    if segment_type == "mpegts":
        type_args = ["-segment_format_options", "mpegts_flags=+initial_discontinuity:mpegts_copyts=1"]
    else:
        # ffmpeg names the init file init_<variant>.mp4 in each variant folder.
        type_args = ["-hls_segment_type", "fmp4"]
    args += [
        "-var_stream_map", " ".join(f"v:{i},a:{i}" for i in range(len(variants))),
        "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-sc_threshold", "0", "-flags", "+cgop",
        "-f", "hls",
        "-hls_time", str(segment_seconds),
        "-hls_list_size", str(list_size),
        "-hls_flags", "program_date_time+independent_segments+omit_endlist",
        *type_args,
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
        variants: int = 2,
        segment_seconds: int = 1,
        list_size: int = 10,
        segment_type: SegmentType = "mpegts",
        cleanup_keep: int | None = None,
        cleanup_interval: float = 60.0,
        write_delay: float = 0.0,
    ) -> None:
        """write_delay > 0 writes each file in 8 pieces with this pause before each, so
        readers reliably catch empty, half-written segments and truncated playlists."""
        if not 1 <= variants <= len(VARIANT_PRESETS):
            raise ValueError(f"variants must be 1..{len(VARIANT_PRESETS)}, not {variants}")
        if segment_seconds < 1 or list_size < 1:
            raise ValueError("segment_seconds and list_size must be >= 1")
        if segment_type not in ("mpegts", "fmp4"):
            raise ValueError(f"segment_type must be 'mpegts' or 'fmp4', not {segment_type!r}")
        self.hls_dir = Path(hls_dir).absolute()
        self.variants = VARIANT_PRESETS[:variants]
        self.segment_seconds = segment_seconds
        self.list_size = list_size
        self.segment_type: SegmentType = segment_type
        self.cleanup_keep = cleanup_keep if cleanup_keep is not None else list_size + 10
        self.cleanup_interval = cleanup_interval
        self.write_delay = write_delay

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._tmp_dir: Path | None = None
        self._shortid: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._killer: GroupKiller | None = None
        self._finalizer: weakref.finalize[[], OwncastEmulator] | None = None
        self._stopping = False
        self._stderr_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._cleanup_task: asyncio.Task[None] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._failure: EmulatorError | None = None
        self._closed = False

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
        """Start a stream: wipe hls_dir like Owncast, new shortid, start ffmpeg."""
        if self._closed:
            raise RuntimeError("the emulator is closed")
        if self.ffmpeg_pid is not None:
            raise RuntimeError("the stream is already running; use restart_stream()")
        await self._stop_ffmpeg()  # tidy up after an ffmpeg that died by itself
        exe = ffmpeg_exe()
        await self._start_receiver()
        self._wipe()
        self._shortid = new_shortid()
        self._failure = None
        self._stderr_tail.clear()
        argv = ffmpeg_command(
            exe,
            f"http://127.0.0.1:{self.port}",
            self._shortid,
            self.variants,
            segment_seconds=self.segment_seconds,
            list_size=self.list_size,
            segment_type=self.segment_type,
        )
        log.debug("starting ffmpeg: %s", " ".join(argv))
        proc = await asyncio.create_subprocess_exec(
            *child_argv(argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # own process group, killable as a whole
        )
        self._proc = proc
        self._stopping = False
        self._killer = GroupKiller(proc.pid)
        self._finalizer = weakref.finalize(self, self._killer)
        self._stderr_task = asyncio.create_task(self._read_stderr(proc))
        self._watch_task = asyncio.create_task(self._watch(proc))
        self._cleanup_task = asyncio.create_task(self._cleanup_loop())
        log.info(
            "owncast emulator streaming %d variant(s) of %d s %s segments into %s (shortid %s, ffmpeg pid %d)",
            len(self.variants), self.segment_seconds, self.segment_type, self.hls_dir, self._shortid, proc.pid,
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

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
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
                self._stderr_tail.append(text)
                ffmpeg_log.info("[ffmpeg %d] %s", proc.pid, text)

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._killer is not None and self._proc is proc:
            self._killer.done = True
        if self._stopping or self._proc is not proc:
            return
        if self._stderr_task is not None:
            await asyncio.wait({self._stderr_task}, timeout=2.0)  # collect its last words
        tail = "\n".join(self._stderr_tail) or "(no output)"
        self._failure = EmulatorError(
            f"ffmpeg (pid {proc.pid}) exited unexpectedly with code {code}; last stderr lines:\n{tail}"
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
        """Stop ffmpeg if there is one; True if a stream was on."""
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            await asyncio.gather(self._cleanup_task, return_exceptions=True)
            self._cleanup_task = None
        proc = self._proc
        if proc is None:
            return False
        self._stopping = True
        try:
            # SIGTERM to ffmpeg alone makes it finish the current segment and playlist, like an RTMP
            # input that ends; the group is SIGKILLed only if it hangs.
            await stop_child(proc, self._killer, self._finalizer, name="ffmpeg", timeout=_STOP_TIMEOUT,
                             whole_group=False)
        finally:
            tasks = [t for t in (self._stderr_task, self._watch_task) if t is not None]
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)
            self._proc = None
            self._killer = self._finalizer = None
            self._stderr_task = self._watch_task = None
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
