"""The command lines of the emulator's ffmpeg processes, modelled on Owncast's (pure: no process here).

The transcoder is Owncast's Transcoder.getFlags(); the broadcaster (OBS) is a second ffmpeg that
encodes the test picture with irregular keyframes, used when anything is copied (passthrough)."""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster.demo.owncast_settings import AUDIO_KBPS, OwncastSettings, SegmentType, Variant

_SOURCE_AUDIO_KBPS = 128


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


def ffmpeg_command(exe: str, base_url: str, shortid: str, stream: OwncastSettings, segment_type: SegmentType,
                   source: Variant | None = None) -> list[str]:
    """The transcoder's command line, modelled on Owncast's Transcoder.getFlags() (v0.1.x and later).

    source None: the test picture is generated in this ffmpeg (cheaper, nothing copied). Otherwise
    ffmpeg reads the broadcaster's encoded stream of that size from stdin, like Owncast.
    """
    if source is None:
        input_args = ["-nostdin", "-re", *_test_picture_input(stream.variants)]
    else:
        input_args = ["-i", "pipe:0"]
    return [*_head(exe), *_ENCODING_FLAGS, *input_args, *_encode_args(stream.variants, stream.segment_seconds, source),
            *_hls_args(base_url, shortid, stream, segment_type)]


def recording_command(exe: str, out: str, variants: tuple[Variant, ...], *, segment_seconds: int,
                      seconds: int) -> list[str]:
    """The transcoder's encoding of the test picture (ffmpeg_command's, flag for flag) for `seconds`, as
    fast as it goes, into one MP4 file (each variant's video, then its audio), for replay_command."""
    return [*_head(exe), *_ENCODING_FLAGS, "-nostdin", *_test_picture_input(variants), "-t", str(seconds),
            *_encode_args(variants, segment_seconds, None), *_ENCODER_OUTPUT_ARGS,
            "-max_muxing_queue_size", "400", "-f", "mp4", out]


def replay_command(exe: str, recording: str, base_url: str, shortid: str, stream: OwncastSettings,
                   segment_type: SegmentType) -> list[str]:
    """ffmpeg_command's output from a recording_command file, looped, in real time (-re): the same hls
    muxer PUTting the same segments and playlists to Owncast's receiver, the encoding done once. Its
    streams are copied (-c copy): a few % of the CPU the encoding takes."""
    maps = [a for i in range(2 * len(stream.variants)) for a in ("-map", f"0:{i}")]
    # MP4 names every stream's language ("und"), which the live transcoder's segments do not carry.
    return [*_head(exe), "-nostdin", "-re", "-stream_loop", "-1", "-i", recording, *maps, "-c", "copy",
            "-metadata:s", "language=",
            *_hls_args(base_url, shortid, stream, segment_type, encoding=False)]


def _head(exe: str) -> list[str]:
    return [exe, "-hide_banner", "-nostats", "-loglevel", "warning"]


_ENCODING_FLAGS = ("-fflags", "+genpts", "-flags", "+cgop")


def _test_picture_input(variants: tuple[Variant, ...]) -> list[str]:
    width = max(v.width for v in variants)
    height = max(v.height for v in variants)
    rate = max(v.framerate for v in variants)
    return ["-f", "lavfi", "-i", _test_picture(width, height, rate)]


def _encode_args(variants: tuple[Variant, ...], segment_seconds: int, source: Variant | None) -> list[str]:
    """Owncast's flags before its input's, then each variant's (getVariantString)."""
    if source is None:
        width, height = max(v.width for v in variants), max(v.height for v in variants)
    else:
        width, height = source.width, source.height
    args: list[str] = []
    for i, v in enumerate(variants):
        scale = (v.width, v.height) != (width, height)
        args += _variant_args(i, v, segment_seconds=segment_seconds, scale=scale)
    return args


# Encoder options Owncast passes among its output's (they apply to every encoder).
_ENCODER_OUTPUT_ARGS = ("-tune", "zerolatency", "-pix_fmt", "yuv420p", "-sc_threshold", "0")


def _hls_args(base_url: str, shortid: str, stream: OwncastSettings, segment_type: SegmentType,
              encoding: bool = True) -> list[str]:
    count, segment_seconds, list_size = len(stream.variants), stream.segment_seconds, stream.list_size
    ext = "ts" if segment_type == "mpegts" else "m4s"
    if segment_type == "mpegts":
        # Owncast's exact (odd) string: ffmpeg reads it as mpegts_flags set to nothing it knows.
        type_args = ["-segment_format_options", "mpegts_flags=mpegts_copyts=1"]
    else:
        # ffmpeg names the init file init_<variant>.mp4 in each variant folder.
        type_args = ["-hls_segment_type", "fmp4"]
    return [
        "-var_stream_map", " ".join(f"v:{i},a:{i}" for i in range(count)),
        "-f", "hls",
        "-hls_time", str(segment_seconds),
        "-hls_list_size", str(list_size),
        "-hls_flags", "program_date_time+independent_segments+omit_endlist",
        *type_args,
        *(_ENCODER_OUTPUT_ARGS if encoding else ()),
        "-master_pl_name", "stream.m3u8",
        "-hls_segment_filename", f"{base_url}/%v/stream-{shortid}-%d.{ext}",
        "-max_muxing_queue_size", "400",
        "-method", "PUT", "-http_persistent", "0",
        f"{base_url}/%v/stream.m3u8",
    ]  # fmt: skip
