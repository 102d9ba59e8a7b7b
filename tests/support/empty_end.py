"""The rig of tests/test_players_empty_end.py: a live stream of two variants cut apart whose end comes, on
the transcoded variant, as an ended EMPTY playlist under a raised target (docs/hls-rules.md, "A variant
with nothing new to list under the new target"), played by the independent players, each on its own clock.

Real MPEG-TS (publish_scenario.encode), both variants on one timeline, 0-14 s:
  variant 0, copied      640x360  2, 2, 2, 2, 1 s, then a last segment of 5 s (the streamer's keyframes)
  variant 1, transcoded  320x180  seven segments of 2 s

The multivariant playlist is the service's; each media playlist is a scripted list of versions in
manifest.py's format. Variant 1 lists its last at 14 s; at END (15 s) variant 0 lists its 5 s segment,
raising the target 2 -> 5, and the stream ends. Then (SCRIPTS):
  ended_empty                the service's: variant 0 a new playlist under TARGETDURATION 5, MEDIA-SEQUENCE
                             7, its 5 s segment and ENDLIST; variant 1 the same header and ENDLIST, empty.
  former                     variant 1 its last version under TARGETDURATION 2, no ENDLIST, for good.
  ended_under_former_target  variant 1 its last version under TARGETDURATION 2 with ENDLIST (6.2.4).
  carried                    variant 1 its last window again under TARGETDURATION 5 with ENDLIST (6.2.1).

A client (EndStream) is a path of its own whose clock starts JOIN seconds into the stream."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from broadcaster.playlist.hls import MEDIA_PLAYLIST_NAME, format_program_date_time
from broadcaster.playlist.master import render_master
from broadcaster.source.owncast import SourceVariant
from tests.support.publish_scenario import Encoded, encode, every
from tests.support.scripted_stream import SHOWN, Asked, Clock, Stream, due, playlist
from tests.support.waiting import until

EPOCH = 1_800_000_000.0  # segment 0's PROGRAM-DATE-TIME (tests/support/world.py's)
WINDOW = 6.0  # WINDOW_SECONDS: three target durations of 2 s
COPIED_CUTS = [0.0, 2.0, 4.0, 6.0, 8.0, 9.0, 14.0]
TRANSCODED_CUTS = every(2, 14)
HEIGHTS = (360, 180)
BANDWIDTHS = (1_500_000, 300_000)  # variant 1, the transcoded one, is the lowest
RAISED = 5  # the copied variant's last segment: 5 s
END = 15.0  # the copied variant's last segment listed, and Owncast's end, 1 s after variant 1's last
JOIN = 6.0  # where a client's clock starts: three segments listed in each variant
LAST = 14.0  # the stream's last moment
SCRIPTS = ("ended_empty", "former", "ended_under_former_target", "carried")


@dataclass(frozen=True)
class Segment:
    variant: int
    index: int  # Owncast's number, in its file's name
    number: int  # the service's media sequence number
    start: float
    duration: float

    @property
    def name(self) -> str:
        return f"stream-a-{self.index}.ts"

    @property
    def ready(self) -> float:
        """When Owncast lists it: once complete."""
        return round(self.start + self.duration, 3)


@dataclass(frozen=True)
class Version:
    at: float  # shown from this moment of the scenario on
    text: str


def segments_of(variant: int) -> list[Segment]:
    """Each variant's segments, numbered on its own (variants cut apart); the copied variant's 5 s segment
    starts the new playlist under the number after every one listed (7: variant 1 listed 0-6)."""
    cuts = COPIED_CUTS if variant == 0 else TRANSCODED_CUTS
    out = [Segment(variant, i, i, a, round(b - a, 3)) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
    if variant == 0:
        last = out.pop()
        out.append(Segment(0, last.index, len(TRANSCODED_CUTS) - 1, last.start, last.duration))
    return out


def render(target: int, sequence: int, listed: Sequence[Segment], ended: bool) -> str:
    """One version as manifest.py renders it (no discontinuity: one stream, one timeline)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}", f"#EXT-X-MEDIA-SEQUENCE:{sequence}",
             "#EXT-X-DISCONTINUITY-SEQUENCE:0", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for s in listed:
        lines += [f"#EXT-X-PROGRAM-DATE-TIME:{format_program_date_time(EPOCH + s.start)}",
                  f"#EXTINF:{s.duration:.3f},", s.name]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def window(listed: list[Segment]) -> list[Segment]:
    """The service's window: the shortest tail of what is listed that lasts WINDOW seconds (or all)."""
    kept: list[Segment] = []
    for s in reversed(listed):
        if sum(k.duration for k in kept) >= WINDOW:
            break
        kept.insert(0, s)
    return kept


def versions(script: str, variant: int) -> list[Version]:
    """Every version of one variant's playlist, in order, with the moment each is shown from."""
    if script not in SCRIPTS:
        raise ValueError(script)
    live = [s for s in segments_of(variant) if s.duration <= 2]
    out: list[Version] = []
    for i, s in enumerate(live):
        shown = window(live[:i + 1])
        out.append(Version(s.ready, render(2, shown[0].number, shown, ended=False)))
    raised = segments_of(0)[-1]
    last = window(live)
    if variant == 0:
        out.append(Version(END, render(RAISED, raised.number, [raised], ended=True)))
    elif script == "ended_empty":
        out.append(Version(END, render(RAISED, raised.number, [], ended=True)))
    elif script == "ended_under_former_target":
        out.append(Version(END, render(2, last[0].number, last, ended=True)))
    elif script == "carried":
        out.append(Version(END, render(RAISED, last[0].number, last, ended=True)))
    return out


async def service_versions(folder: Path) -> dict[int, list[str]]:
    """The distinct versions, in order, the service's own Publisher shows for the stream's listings (each
    moment's segments told together, then variant 0's 5 s segment, then both ended); URIs by file name."""
    from tests.support.world import World

    world = World(folder, window=WINDOW, align_by="time", stepped=True)
    world.pub.on_master([SourceVariant(v, BANDWIDTHS[v]) for v in (0, 1)])
    live = sorted((s for v in (0, 1) for s in segments_of(v) if s.duration <= 2), key=lambda s: (s.ready, s.variant))
    for at in sorted({s.ready for s in live}):
        for s in (s for s in live if s.ready == at):
            world.owncast_lists(s.variant, s.name, duration=s.duration, date=s.start, target=2)
        world.now = at
        world.pub.lister.advance()
        # Listed by now: every segment of the transcoded variant told so far, and every one of the copied
        # variant that ends where the transcoded variant's reach (a slot is lined up by date: the copied
        # variant's 1 s segment at 8-9 s waits for the transcoded one's 8-10 s).
        reach = max(t.ready for t in live if t.variant == 1 and t.ready <= at)
        due = [(t.variant, t.name) for t in live if t.ready <= at and (t.variant == 1 or t.ready <= reach)]
        await until(lambda: set(due) <= {(v, name) for v, _n, name in world.listed},
                    f"the segments due at {at} s listed", 5, every=0.001, detail=lambda: world.listed)
    last = segments_of(1)[-1].name
    await until(lambda: last in world.text(1), f"variant 1's {last} shown", 5, every=0.001)
    raised = segments_of(0)[-1]
    world.owncast_lists(0, raised.name, duration=raised.duration, date=raised.start, target=RAISED)
    world.now = END
    world.pub.lister.advance()
    # The raise decided before the ends are told (test_variants_alike's order): told in the same turn,
    # variant 1's end can be shown under the former target first (lane by lane), then its empty ended
    # playlist under the new one.
    await until(lambda: raised.name in world.uris(0), f"variant 0's {raised.name} listed", 5, every=0.001)
    for v in (0, 1):
        world.owncast_lists(v, ended=True, target=RAISED if v == 0 else 2)
    world.pub.lister.advance()
    await until(lambda: all(world.text(v).endswith("#EXT-X-ENDLIST\n") for v in (0, 1)), "both variants ended", 5,
                every=0.001, detail=lambda: [world.text(v) for v in (0, 1)])
    await world.pub.close()
    out: dict[int, list[str]] = {0: [], 1: []}
    for v, text in world.playlists.shown:
        text = re.sub(r"^https?://\S+/", "", text, flags=re.MULTILINE)
        if not out[v] or out[v][-1] != text:
            out[v].append(text)
    return out

def codecs_of(ts: bytes) -> str:
    """The CODECS of a segment of ours: its H.264 SPS's profile, constraints and level, and AAC-LC."""
    at = ts.find(b"\x00\x00\x01\x67")
    if at < 0:
        raise ValueError("no H.264 SPS in the segment")
    profile, constraints, level = ts[at + 4:at + 7]
    return f"avc1.{profile:02x}{constraints:02x}{level:02x},mp4a.40.2"


@dataclass(frozen=True)
class Media:
    """Both variants' segments' bytes, by (variant, name), and the multivariant playlist."""

    bodies: dict[tuple[int, str], bytes]
    master: str


def make_media(folder: Path) -> Media:
    """Both variants encoded (about a second of CPU each)."""
    made: dict[int, Encoded] = {}
    folder.mkdir(parents=True, exist_ok=True)
    for variant, cuts in ((0, COPIED_CUTS), (1, TRANSCODED_CUTS)):
        made[variant] = encode(folder, f"variant{variant}", list(cuts), HEIGHTS[variant])
    bodies = {(v, s.name): made[v].bodies[i] for v in (0, 1) for i, s in enumerate(segments_of(v))}
    variants = [SourceVariant(v, BANDWIDTHS[v], resolution=(HEIGHTS[v] * 16 // 9, HEIGHTS[v]),
                              codecs=codecs_of(made[v].bodies[0])) for v in (0, 1)]
    return Media(bodies, render_master(variants).body.decode())


# -- the stream ----------------------------------------------------------------------------------------


def after_end(asked: Asked) -> bool:
    """A media playlist answered with its version from END on."""
    return asked.shown is not None and asked.shown >= END


class EndStream(Stream):
    """One client's stream of `script` (tests/support/scripted_stream.py): the multivariant playlist, each
    variant's version due on its clock (its URIs relative, as the service's variant URIs are), and the
    segments; its clock starts JOIN seconds into the stream."""

    def __init__(self, media: Media, script: str) -> None:
        super().__init__(Clock(JOIN))
        self.made = media
        self.script = script
        self.versions = {v: versions(script, v) for v in (0, 1)}

    def shown_the_end(self) -> float | None:
        """When (its clock) it was first answered a version from END on: where its end begins, however
        late a busy machine made it fetch what came before."""
        return next((a.at for a in self.asked if after_end(a)), None)

    def shown(self, variant: int) -> Version:
        """The version due on the client's clock; but the end, in the variant it plays now, only once it
        fetched the last segment shown before it: a player the machine slowed meets the end having played
        everything, as a quick one does. The other variant's end is shown on the clock."""
        listed = self.versions[variant]
        due_now = due(listed, self.clock())
        if due_now.at < END:
            return due_now
        got = [a for a in self.asked if a.variant >= 0 and a.name != MEDIA_PLAYLIST_NAME]
        if not got or got[-1].variant != variant:
            return due_now
        before = [v for v in listed if v.at < END][-1]
        last = [line for line in before.text.splitlines() if line and not line.startswith("#")][-1]
        return before if last not in {a.name for a in got if a.variant == variant} else due_now

    async def master(self, request: web.Request) -> web.Response:
        return playlist(self.made.master)

    async def media(self, request: web.Request, variant: int) -> web.Response:
        if variant not in (0, 1):
            raise web.HTTPNotFound()
        version = self.shown(variant)
        response = playlist(version.text)
        response[SHOWN] = version.at
        return response

    def segment(self, variant: int, name: str) -> bytes | None:
        return self.made.bodies.get((variant, name))
