"""Players playing what the service made (tests/test_players_across_change.py): each client replays one
publisher run's versions (publish_scenario.Made) through the service's own PlaylistRoutes on its own
clock; the pages record what the picture shows, ffmpeg reads the same playlists. Played is what one did."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from broadcaster.http.playlists import PlaylistRoutes
from broadcaster.metrics import Metrics
from broadcaster.playlist import hls
from broadcaster.playlist.rendered import Rendered
from tests.support.player_run import FfmpegRun, play_page, read_with_ffmpeg
from tests.support.publish_scenario import Made, Scenario, Version
from tests.support.scripted_stream import Clock, Stream, due

PLAYER_TIMEOUT = 75.0  # a stuck player is caught by the page's own watchdog long before this


class SwitchRace:
    """One client's answers in the order a slow link sometimes gives them at a switch between variants: the
    pending reload of the old variant answered while the new variant's first playlist is on its way, and that
    one LATENCY later. The old variant's blocking reloads are held until the switch (at most HOLD). Shaka
    4.16.50 loses the new variant's segments in this order (test_players_across_change, SHAKA_APART)."""

    HOLD = 9.0
    LATENCY = 0.3

    def __init__(self) -> None:
        self.first: int | None = None  # the variant whose playlist was asked for first
        self.switched = asyncio.Event()  # a first playlist of another variant was asked for
        self.answered = asyncio.Event()  # the held reload has its answer
        self.held = 0  # reloads answered at the switch (1 when the race happened)

    async def answer(self, request: web.Request,
                     respond: Callable[[], Awaitable[web.Response]]) -> web.Response:
        variant, blocking = int(request.match_info["n"]), "_HLS_msn" in request.query
        if self.first is None and not blocking:
            self.first = variant
        elif variant == self.first and blocking and not self.switched.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.switched.wait(), self.HOLD)
            try:
                return await respond()
            finally:
                self.held += self.switched.is_set()
                self.answered.set()
        elif variant != self.first and not blocking and not self.switched.is_set():
            self.switched.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.answered.wait(), self.HOLD)
            await asyncio.sleep(self.LATENCY)  # the link's latency, not a wait for a condition
        return await respond()


class Client(Stream):
    """One player in one scenario, on its clock from the scenario's `join` (`rate`: FFMPEG_RATE's): the
    service's playlist routes over the versions its own publisher run made (the client is their
    PlaylistSource), and the segments that run uploaded (what the bucket would hold; their URLs name the
    client's path); `race` orders its answers at a switch."""

    def __init__(self, scenario: Scenario, player: str, made: Made, rate: float = 1.0,
                 race: SwitchRace | None = None) -> None:
        super().__init__(Clock(scenario.join, rate))
        self.scenario = scenario
        self.player = player
        self.made = made
        self.race = race
        self._times = [v.at for v in made.versions]
        self.held_requests = 0  # not counted: one client each, never near the cap
        self.routes = PlaylistRoutes(self, Metrics(), 0, True)

    async def master(self, request: web.Request) -> web.StreamResponse:
        return await self.routes.master(request)

    async def media(self, request: web.Request, variant: int) -> web.StreamResponse:
        if self.race is not None:
            return await self.race.answer(request, lambda: self.routes.media(request))
        return await self.routes.media(request)

    def segment(self, variant: int, name: str) -> bytes | None:
        return self.made.bucket.get(f"live/{variant}/{name}")

    def current(self) -> Version:
        return due(self.made.versions, self.clock())

    @property
    def target_duration(self) -> int | None:
        return self.current().target

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
        return self.current().master

    def media_playlist(self, variant: int) -> Rendered | None:
        return self.current().media.get(variant)

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
        """As VisiblePlaylists': the version listing `sequence` once this client's clock reaches it."""
        deadline = time.monotonic() + timeout
        while True:
            rendered = self.media_playlist(variant)
            if rendered is not None and (rendered.last_sequence >= sequence or rendered.ended):
                return rendered
            i = bisect.bisect_right(self._times, self.clock())
            left = deadline - time.monotonic()
            if i >= len(self._times) or left <= 0:
                return None
            await asyncio.sleep(min((self._times[i] - self.clock()) / self.clock.rate, left) + 0.001)


# -- the players --------------------------------------------------------------------------------------


@dataclass
class Played:
    """What one player did in one scenario."""

    scenario: Scenario
    player: str
    client: Client
    log: dict[str, Any] = field(default_factory=dict)  # window.probe (browsers)
    console: list[str] = field(default_factory=list)  # browser console warnings and errors, page errors
    navigations: int = 0  # page loads: 1 means the page never reloaded
    ffmpeg: FfmpegRun | None = None

    def positions(self) -> list[tuple[float, float, int]]:
        """(seconds played, position, picture height) for every sample whose position is known."""
        return [(s[4], s[2], s[3]) for s in self.log.get("samples", []) if s[2] is not None]

    def reached(self) -> float | None:
        """How far past the scenario's start the playhead got (seconds)."""
        return max((at for _, at, _ in self.positions()), default=None)

    def jumps(self) -> list[tuple[float, float]]:
        """Where the picture moved over a second away from the seconds played between samples: (from, to)."""
        out, samples = [], self.log.get("samples", [])
        for (_, _, a0, _, p0), (_, _, a1, _, p1) in zip(samples, samples[1:]):
            if a0 is not None and a1 is not None and abs((a1 - a0) - (p1 - p0)) > 1.0:
                out.append((a0, a1))
        return out

    def heights(self) -> list[tuple[float, int]]:
        """(position, picture height) each time the height changed."""
        out: list[tuple[float, int]] = []
        for _, at, height in self.positions():
            if height and (not out or out[-1][1] != height):
                out.append((at, height))
        return out

    def stalls(self) -> list[tuple[float | None, int]]:
        """(position, ms) of every stall after the start."""
        return [(s.get("position"), s["ms"]) for s in self.log.get("stalls", [])]

    def stalls_near_change(self) -> list[tuple[float | None, int]]:
        c = self.scenario.change
        return [(at, ms) for at, ms in self.stalls() if at is not None and c - 1.5 <= at <= c + 2]

    @property
    def fatal(self) -> list[str]:
        return [str(e.get("details")) for e in self.log.get("errors", []) if e.get("fatal")]

    @property
    def nonfatal(self) -> list[str]:
        return [str(e.get("details")) for e in self.log.get("errors", []) if not e.get("fatal")]

    def missing(self) -> list[str]:
        return [r.path for r in self.client.asked if r.status == 404]

    def masters(self) -> int:
        return sum(1 for r in self.client.asked if r.path.endswith("master.m3u8"))

    def playlist_answers(self) -> dict[int, int]:
        """How many playlist requests got each status: each request is one round trip (a 302 is two)."""
        statuses = [r.status for r in self.client.asked if ".m3u8" in r.path]
        return {status: statuses.count(status) for status in sorted(set(statuses))}

    def redirects(self) -> list[tuple[str, str]]:
        """Each playlist request answered 302, and why: "behind" (more than hls.MSN_BEHIND_LIMIT behind the
        newest, past the client's budget: broadcaster/http/late.py), "repeated" (_HLS_msn given twice: Shaka
        4.16 keeps a redirect's URL and adds its next number), or "other"."""
        out = []
        for r in self.client.asked:
            if ".m3u8" not in r.path or r.status != 302:
                continue
            asked = [int(n) for n in re.findall(r"[?&]_HLS_msn=(\d+)", r.path)]
            shown = due(self.client.made.versions, r.at).media.get(r.variant)
            if len(asked) > 1:
                why = "repeated"
            elif asked and shown is not None and asked[0] < shown.last_sequence - hls.MSN_BEHIND_LIMIT:
                why = "behind"
            else:
                why = "other"
            out.append((r.path.rsplit("/", 1)[-1], why))
        return out

    def segments_after_change(self) -> list[str]:
        """The segments asked for that start at or after the change."""
        cuts = self.scenario.by_key()
        out = []
        for r in self.client.asked:
            cut = cuts.get(r.path)
            if cut is not None and cut.start >= self.scenario.change:
                out.append(cut.name)
        return out

    @property
    def client_name(self) -> str:
        """Its path on the StreamServer."""
        return f"{self.scenario.name}-{self.player}"

    def summary(self) -> str:
        if self.ffmpeg is not None:
            f = self.ffmpeg
            return (f"  ffmpeg: exit={f.exit_code} frames={f.frames} masters={self.masters()}"
                    f" after_change={len(self.segments_after_change())} missing={self.missing()}"
                    f" playlist_answers={self.playlist_answers()} warnings={f.warnings}")
        log = self.log
        return (f"  {self.player} {log.get('version')}: reached={self.reached()} ended={log.get('ended')}"
                f" stuck={log.get('stuck')} fatal={self.fatal} nonfatal={self.nonfatal}"
                f" stalls_at_change={self.stalls_near_change()} stalls={self.stalls()} jumps={self.jumps()}"
                f" loads={log.get('loads')} masters={self.masters()} navigations={self.navigations}"
                f" missing={self.missing()} playlist_answers={self.playlist_answers()} heights={self.heights()}"
                f" switches={[(round(w['played'], 1), w['to'], w.get('position')) for w in log['switches']]}"
                f" notes={[n[2] for n in log.get('notes', [])][:10]}"
                f" console={[c for c in self.console if 'getManifest()' not in c][:3]}"
                + (f" last_media_events={log.get('media', [])[-4:]}"
                   f" last_requests={[(r.at, r.path.rsplit('/', 1)[-1], r.status) for r in self.client.asked[-6:]]}"
                   if log.get("stuck") else ""))


@dataclass
class Observations:
    """What every player of every scenario did, and the wall time it all took."""

    scenarios: dict[str, Scenario]
    played: dict[tuple[str, str], Played]
    seconds: float

    def made(self, scenario: str) -> Made:
        return next(p.client.made for (s, _), p in self.played.items() if s == scenario)

    def table(self) -> str:
        rows = [f"wall time {self.seconds:.1f}s"]
        for name, s in self.scenarios.items():
            made = self.made(name)
            targets = [v.target for v in made.versions]
            rows.append(f"{name}: change at {s.change}s, targets {sorted(set(targets), key=targets.index)}"
                        f" changes={made.target_changes} cut_apart={made.cut_apart}")
            rows += [self.played[(name, p)].summary() for p in s.players]
        return "\n".join(rows)


async def run_browser(browser: Any, base: str, played: Played) -> None:
    s = played.scenario
    query = (f"src=/c/{played.client_name}/live/master.m3u8&heights={','.join(map(str, s.heights()))}"
             f"&switch={','.join(f'{x:g}' for x in s.switch_at)}")
    run = await play_page(browser, f"{base}/page/{played.player}?{query}", PLAYER_TIMEOUT)
    played.log, played.console, played.navigations = run.log, run.console, run.navigations


async def run_ffmpeg(base: str, played: Played) -> None:
    played.ffmpeg = await read_with_ffmpeg(f"{base}/c/{played.client_name}/live/master.m3u8", PLAYER_TIMEOUT)
