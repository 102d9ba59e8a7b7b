"""What one synthetic Owncast stream is started with: the operator's settings on Owncast's admin page
(Video: latency level, variants, passthrough), checked and combined the way Owncast reads them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

SegmentType = Literal["mpegts", "fmp4"]

# Owncast's default output variant (config/defaults.go: Framerate 24, VideoBitrate 1200, veryfast); 24, not
# 30, also leaves the suite's many emulators a fifth less to encode.
FPS = 24
AUDIO_KBPS = 64
# models/latencyLevels.go, GetLatencyConfigs: level -> (SecondsPerSegment, SegmentCount).
# Level 2 is the default (core/data/config.go, GetStreamLatencyLevel).
LATENCY_LEVELS: dict[int, tuple[int, int]] = {0: (1, 25), 1: (2, 15), 2: (3, 10), 3: (4, 8), 4: (5, 5)}
# Seconds between the broadcaster's keyframes, cycled: an encoder with scene-cut detection on
# (OBS's x264 default) puts them anywhere, here between 1 and 4 s.
DEFAULT_SOURCE_KEYFRAMES: tuple[float, ...] = (2.0, 1.0, 3.5, 1.5, 4.0, 2.5)


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


def reconfigured(
    current: OwncastSettings,
    *,
    variants: int | Sequence[Variant] | None,
    latency_level: int | None,
    segment_seconds: int | None,
    list_size: int | None,
    source_keyframes: Sequence[float] | None,
) -> OwncastSettings:
    """`current` with what an operator changed (None: kept); latency_level replaces segment_seconds and
    list_size, and either of those alone drops the latency level."""
    if latency_level is None and segment_seconds is None and list_size is None:
        latency_level = current.latency_level
        if latency_level is None:
            segment_seconds, list_size = current.segment_seconds, current.list_size
    elif latency_level is None:
        segment_seconds = current.segment_seconds if segment_seconds is None else segment_seconds
        list_size = current.list_size if list_size is None else list_size
    return resolve_settings(
        current.variants if variants is None else variants,
        latency_level=latency_level,
        segment_seconds=segment_seconds,
        list_size=list_size,
        source_keyframes=current.source_keyframes if source_keyframes is None else source_keyframes,
    )


def resolve_settings(
    variants: int | Sequence[Variant] = 2,
    *,
    latency_level: int | None = None,
    segment_seconds: int | None = None,
    list_size: int | None = None,
    source_keyframes: Sequence[float] | None = None,
) -> OwncastSettings:
    """Check and combine settings; latency_level sets segment_seconds and list_size like Owncast's; without
    it they default to 1 s and 10. variants: how many of VARIANT_PRESETS, or the variants themselves.
    source_keyframes: seconds between the broadcaster's keyframes, cycled; giving it (or any passthrough)
    makes the transcoder read an encoded stream, like Owncast."""
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
