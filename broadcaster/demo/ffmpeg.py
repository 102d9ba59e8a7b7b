"""Locate the ffmpeg binary that the `imageio-ffmpeg` package ships."""

from __future__ import annotations


class FfmpegNotFoundError(RuntimeError):
    """No usable ffmpeg binary: the `imageio-ffmpeg` package is missing or broken."""


def ffmpeg_exe() -> str:
    """Return the path of imageio-ffmpeg's ffmpeg binary.

    The demo and the integration tests rely on this one binary (it has libx264 and
    the hls muxer) rather than on whatever ffmpeg happens to be on PATH.
    """
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise FfmpegNotFoundError(
            "ffmpeg is needed but the 'imageio-ffmpeg' package is not installed; "
            "install it with: pip install 'hls-broadcaster[demo]' (or pip install imageio-ffmpeg)"
        ) from exc
    try:
        path: str = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise FfmpegNotFoundError(
            f"the 'imageio-ffmpeg' package is installed but has no usable ffmpeg binary: {exc}"
        ) from exc
    return path
