"""Owncast's changes fed to the service's own Publisher, for players to play (test_players_across_change):
real MPEG-TS cut where the scenario needs (each picture carries its moment as a barcode), listed to the
real Publisher (a FakeStore as the bucket) on the media's clock; every version it shows is kept (Made)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from broadcaster.bucket.uploader import Backoff, Uploader
from broadcaster.bucket.urls import PublicUrls
from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.metrics import Metrics
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.options import WindowOptions
from broadcaster.publish.config import PublisherConfig
from broadcaster.publish.publisher import Publisher
from broadcaster.publish.release import Outlets
from broadcaster.source.owncast import SourcePlaylist, SourceSegment, SourceVariant
from tests.support.fakes import FakeStore, WrittenWhole
from tests.support.world import Recording
from tests.support.waiting import until

FPS = 20  # every cut (a multiple of 0.5 s) falls on a frame
EPOCH = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
# WINDOW_SECONDS below nine target durations, so no delta updates are offered and what is measured is
# the change alone.
WINDOW = 8.0
FIRST_SEQUENCE = 1_735_689_600  # without saved state the service numbers from the Unix time
OWNCAST_LIST = 10  # entries in Owncast's own playlist (latency level 2 lists 10)
BROWSERS = ("hlsjs", "videojs", "shaka")
PLAYERS = (*BROWSERS, "ffmpeg")


# -- the media: real MPEG-TS segments, cut where a scenario needs them -------------------------------


@dataclass(frozen=True)
class Encoded:
    """One encoder run (one Owncast transcoder run of one variant): its segments and their lengths."""

    bodies: tuple[bytes, ...]
    durations: tuple[float, ...]
    height: int

    def part(self, start: int, stop: int) -> Encoded:
        return Encoded(self.bodies[start:stop], self.durations[start:stop], self.height)


BARCODE_BITS = 10  # the picture's moment in tenths of a second, up to 102.3 s


def barcode(offset: float) -> str:
    """drawbox filters writing (offset + t) in tenths of a second as white boxes on a black bar across
    the top sixth of the picture, bit 0 on the left: the page reads from the picture itself which
    moment a player shows, whatever the player's own idea of its position."""
    tenths = f"floor((t+{offset:g})*10+0.5)"
    boxes = [f"drawbox=x={i}*iw/{BARCODE_BITS}+2:y=2:w=iw/{BARCODE_BITS}-4:h=ih/6-4:color=white:t=fill"
             f":enable='eq(mod(floor({tenths}/{2 ** i})\\,2)\\,1)'" for i in range(BARCODE_BITS)]
    return ",".join(["drawbox=x=0:y=0:w=iw:h=ih/6:color=black:t=fill", *boxes])


def encode(folder: Path, name: str, cuts: list[float], height: int = 180, offset: float = 0.0) -> Encoded:
    """H.264 + AAC (a plain picture and a tone) with keyframes exactly at `cuts` (seconds), cut by ffmpeg's
    HLS muxer at every keyframe, as Owncast's ffmpeg cuts a copied variant; timestamps start at 0, and the
    picture carries `offset` + its time as a barcode."""
    out = folder / name
    out.mkdir()
    width = height * 16 // 9
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
         "-f", "lavfi", "-i", f"color=c=0x336699:size={width}x{height}:rate={FPS}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=24000", "-t", f"{cuts[-1]:g}",
         "-vf", barcode(offset), "-threads", "1", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-g", "100000", "-keyint_min", "1",
         "-sc_threshold", "0", "-force_key_frames", ",".join(f"{c:g}" for c in cuts[:-1]),
         "-c:a", "aac", "-ac", "1", "-b:a", "32k", "-f", "hls", "-hls_time", "0.1", "-hls_list_size", "0",
         "-hls_segment_filename", str(out / "%03d.ts"), str(out / "index.m3u8")],
        check=True, timeout=120,
    )
    durations = tuple(float(d) for d in re.findall(r"#EXTINF:([\d.]+),", (out / "index.m3u8").read_text()))
    expected = [round(b - a, 3) for a, b in zip(cuts, cuts[1:])]
    assert len(durations) == len(expected) and all(abs(d - e) < 0.02 for d, e in zip(durations, expected)), (
        name, durations, expected)
    bodies = tuple((out / f"{i:03d}.ts").read_bytes() for i in range(len(durations)))
    return Encoded(bodies, durations, height)


def every(step: float, end: float) -> list[float]:
    return [round(i * step, 3) for i in range(int(round(end / step)) + 1)]


def from_gaps(gaps: list[float]) -> list[float]:
    cuts = [0.0]
    for gap in gaps:
        cuts.append(round(cuts[-1] + gap, 3))
    return cuts


# -- what Owncast writes, fed to the service's own Publisher ------------------------------------------


@dataclass(frozen=True)
class Cut:
    """One segment Owncast lists: variant, run (Owncast's shortid), number, its media and timing."""

    variant: int
    run: str
    number: int
    duration: float
    start: float  # seconds from the scenario's start: its PROGRAM-DATE-TIME is EPOCH + start
    body: bytes = field(repr=False)
    copied: bool  # video passthrough: Owncast's target is its longest segment listed
    level: int  # the latency level's segment length: a transcoded variant's target
    height: int

    @property
    def name(self) -> str:
        return f"stream-{self.run}-{self.number}.ts"

    @property
    def key(self) -> str:
        return f"live/{self.variant}/{self.name}"

    @property
    def ready(self) -> float:
        """When Owncast lists it: once it is complete."""
        return round(self.start + self.duration, 3)


def run_of(variant: int, run: str, media: Encoded, offset: float, level: int,
           copied: bool = False) -> list[Cut]:
    cuts, start = [], offset
    for number, (body, duration) in enumerate(zip(media.bodies, media.durations)):
        cuts.append(Cut(variant, run, number, duration, round(start, 3), body, copied, level, media.height))
        start += duration
    return cuts


@dataclass(frozen=True)
class Scenario:
    name: str
    cuts: tuple[Cut, ...]
    variants: tuple[SourceVariant, ...]
    join: float  # clients start watching the version the service shows at this moment
    change: float  # where (from the scenario's start) the first segment after the change starts
    past: float  # how far past the change every player must get (a few segments)
    players: tuple[str, ...] = PLAYERS
    window: float = WINDOW
    first_read: float = 0.0  # the service reads Owncast's folder first at this moment
    switch_at: tuple[float, ...] = ()  # seconds played at which a browser player is made to switch

    @property
    def end(self) -> float:
        return max(c.ready for c in self.cuts)

    def batches(self) -> list[tuple[float, list[Cut]]]:
        """The segments Owncast lists, grouped by the moment the service reads them."""
        at = {c: max(c.ready, self.first_read) for c in self.cuts}
        return [(t, [c for c in self.cuts if at[c] == t]) for t in sorted(set(at.values()))]

    def by_key(self) -> dict[str, Cut]:
        return {c.key: c for c in self.cuts}

    def heights(self) -> list[int]:
        height = {c.variant: c.height for c in self.cuts}
        return [height[v.index] for v in self.variants]


def owncast_playlist(listed: list[Cut], ended: bool) -> SourcePlaylist:
    """One variant's playlist as Owncast writes it: the run's newest OWNCAST_LIST segments, numbered
    from the first listed; a copied variant's target is its longest segment rounded (ffmpeg's lrint)."""
    window = listed[-OWNCAST_LIST:]
    target = max(round(c.duration) for c in window) if window[-1].copied else window[-1].level
    segments = tuple(SourceSegment(c.name, c.duration, EPOCH + c.start, False, None, position=i)
                     for i, c in enumerate(window))
    return SourcePlaylist(max(1, target), window[0].number, segments, ended, True)


@dataclass(frozen=True)
class Version:
    """What the service shows from `at` (seconds from the scenario's start) until the next version."""

    at: float
    target: int
    master: Rendered | None
    media: dict[int, Rendered]


@dataclass
class Made:
    """Every playlist version one run of the service made, what it uploaded, and its target changes."""

    versions: list[Version]
    bucket: dict[str, bytes]
    target_changes: dict[str, float]
    cut_apart: float


async def publish(scenario: Scenario, folder: Path, base_url: str) -> Made:
    """Feed the scenario's Owncast playlists to the real Publisher (with the real Uploader, into a
    FakeStore), on a clock that follows the media, and keep every version it makes visible."""
    now = [0.0]
    store, metrics, playlists = FakeStore(), Metrics(), Recording()
    uploader = Uploader(store, metrics, concurrency=4, attempt_timeout=5,
                        backoff=Backoff(base=0.001, cap=0.001))
    pub = Publisher(
        PublisherConfig(hls_dir=folder, key_prefix="live", urls=PublicUrls(base_url),
                        window=WindowOptions(scenario.window, can_block_reload=True), first_sequence=FIRST_SEQUENCE,
                        wall_clock=lambda: EPOCH + now[0], monotonic=lambda: now[0],
                        # As with P2P on: every segment's #EXT-HB-SHA256 line (issue 31), which each
                        # player here must ignore (without P2P the playlists are these without them).
                        segment_hashes=True),
        uploader=uploader, writes=WrittenWhole(), metrics=metrics, outlets=Outlets(playlists),
    )
    pub.on_master(list(scenario.variants))
    listed: dict[int, list[Cut]] = {}
    versions: list[Version] = []
    for at, batch in scenario.batches():
        now[0] = at
        for v in sorted({c.variant for c in batch}):
            current = listed.setdefault(v, [])
            for cut in (c for c in batch if c.variant == v):
                if current and current[-1].run != cut.run:
                    current.clear()  # a new transcoder run: Owncast wiped the folder
                current.append(cut)
                (folder / str(v)).mkdir(exist_ok=True)
                (folder / str(v) / cut.name).write_bytes(cut.body)
            pub.on_variant_playlist(v, owncast_playlist(current, ended=False))
        if at >= scenario.end:  # the broadcaster stops: Owncast's offline tail ends every playlist
            for v, current in listed.items():
                pub.on_variant_playlist(v, owncast_playlist(current, ended=True))
        await until(lambda: not pub.queue_depth, "the publisher's queue drained", 10, every=0.001)
        media = {v: r for v in pub.variants() if (r := playlists.media_playlist(v)) is not None}
        master, last = playlists.master_playlist(), versions[-1] if versions else None
        if media and (last is None or master is not last.master
                      or any(last.media.get(v) is not r for v, r in media.items())):
            assert pub.target_duration is not None
            versions.append(Version(at, pub.target_duration, master, media))
    await pub.close()
    registry = metrics.registry
    changes = {reason: registry.get_sample_value("hls_broadcaster_target_duration_changes_total",
                                                 {"reason": reason}) or 0.0
               for reason in ("new_stream", "longer_segment")}
    apart = registry.get_sample_value("hls_broadcaster_variants_cut_apart_total") or 0.0
    return Made(versions, {p.key: p.body for p in store.puts}, changes, apart)
