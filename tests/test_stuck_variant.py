"""One stuck file delays only its own variant: the others list the slot at once; the stuck one waits at
most a target duration, then lists it as a gap (EXT-X-GAP) under the same number, its upload going on. At
the publisher's seam, then the service with hls.js in Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.state.disk import dumps
from tests.support.browser import PLAYERS, POLL_MS, launch_chromium, needs_chromium, open_viewer
from tests.support.held_back import HeldBack, HeldWrites, both_list
from tests.support.observe import Observer
from tests.support.owncast_writer import SECONDS, HandFedOwncast, one_run_segments
from tests.support.listing import listing
from tests.support.served import MakeWorld
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until
from tests.support.world import World


def numbered(world: World, v: int) -> dict[int, tuple[str, bool]]:
    """What variant v's visible playlist lists: number -> (segment name, listed as a gap)."""
    return {e.number: (e.name, e.gap) for e in listing(world.text(v))}


def names(world: World, v: int) -> list[str]:
    return [name for _n, (name, _gap) in sorted(numbered(world, v).items())]


@pytest.fixture
def held() -> HeldWrites:
    return HeldWrites()


@pytest.fixture
def world(make_world: MakeWorld, held: HeldWrites) -> World:
    # The publisher's clock is the test's (`world.now`): the bound a stuck copy is held to passes only
    # when the test says so.
    return make_world(window=6.0, writes=held, stepped=True)


async def test_the_other_variants_list_on_time_and_the_stuck_one_lists_a_gap_there_alone(
        world: World, held: HeldWrites) -> None:
    both_list(world, 0)
    await until(lambda: world.playlists.media_playlist(0) is not None and "stream-a-0.ts" in names(world, 1))
    both_list(world, 1, held)
    both_list(world, 2)
    # Variant 1 lists both at once; variant 0 still shows its last version, waiting for its copy.
    await until(lambda: names(world, 1) == ["stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts"],
                "variant 1 lists the slot whose variant-0 file is stuck, and the next one")
    assert names(world, 0) == ["stream-a-0.ts"]
    assert world.pub.queue_depth == 2  # variant 0's copies of 1 (stuck) and 2 (uploaded, behind it)
    world.now += 0.999  # within a target duration (1 s): still waiting
    world.pub.lister.advance()
    assert names(world, 0) == ["stream-a-0.ts"]
    world.now += 0.001  # a target duration after variant 1 listed it
    world.pub.lister.advance()
    assert numbered(world, 0) == {n: (name, name == "stream-a-1.ts") for n, (name, _gap) in numbered(world, 1).items()}
    assert not any(gap for _name, gap in numbered(world, 1).values())
    for v in (0, 1):
        assert "#EXT-X-DISCONTINUITY\n" not in world.text(v)
    world.check()  # every version shown, through the checker (gaps parsed, numbers across variants)
    assert "live/0/stream-a-1.ts" not in world.store.keys()
    # Not lost yet: its upload goes on, late, until Owncast finishes it or the upload's limit.
    assert world.sample("segments_lost_total", variant="0", reason="unfinished") is None
    assert world.sample("segments_lost_total", variant="1", reason="sibling_lost") is None
    await until(lambda: world.pub.queue_depth == 0)  # nothing waits to be listed any more
    both_list(world, 3)
    await until(lambda: names(world, 0)[-1] == names(world, 1)[-1] == "stream-a-3.ts")
    assert list(numbered(world, 0)) == list(numbered(world, 1))
    world.check()


async def test_a_file_finished_within_the_bound_is_listed_late_in_its_variant_alone(
        world: World, held: HeldWrites) -> None:
    both_list(world, 0)
    both_list(world, 1, held)
    await until(lambda: world.playlists.media_playlist(1) is not None and names(world, 1)[-1] == "stream-a-1.ts")
    assert world.playlists.media_playlist(0) is not None and names(world, 0) == ["stream-a-0.ts"]
    world.now += 0.5
    held.release("stream-a-1.ts")
    await until(lambda: names(world, 0) == names(world, 1) == ["stream-a-0.ts", "stream-a-1.ts"])
    assert "#EXT-X-GAP" not in world.text(0)
    assert list(numbered(world, 0)) == list(numbered(world, 1))
    assert world.sample("segments_lost_total", variant="0", reason="unfinished") is None
    world.check()


async def test_a_copy_lost_behind_a_stuck_one_is_a_gap_in_its_place_counted_once(world: World, held: HeldWrites) -> None:
    both_list(world, 0)
    both_list(world, 1, held)
    world.owncast_lists(0, "stream-a-2.ts", write=False)  # variant 0's copy of 2 is never there
    world.owncast_lists(1, "stream-a-2.ts")
    await until(lambda: world.playlists.media_playlist(1) is not None and names(world, 1)[-1] == "stream-a-2.ts")
    assert names(world, 0) == ["stream-a-0.ts"]  # 2 waits behind 1, though its loss is known
    world.now += 1.0
    world.pub.lister.advance()
    assert numbered(world, 0) == {n: (name, name != "stream-a-0.ts") for n, (name, _gap) in numbered(world, 1).items()}
    assert world.sample("segments_lost_total", variant="0", reason="unfinished") is None  # late
    assert world.sample("segments_lost_total", variant="0", reason="deleted") == 1
    world.check()


async def test_a_restart_while_a_variant_waits_lists_what_it_waited_for_as_gaps(
        tmp_path: Path, make_world: MakeWorld, world: World, held: HeldWrites) -> None:
    """The state saved brings the slot back as a gap in the variant that waited; both go on alike."""
    both_list(world, 0)
    both_list(world, 1, held)
    both_list(world, 2)
    await until(lambda: world.playlists.media_playlist(1) is not None and names(world, 1)[-1] == "stream-a-2.ts")
    saved = json.loads(dumps(world.pub.snapshot()))
    waiting = saved["variants"]["0"]["waiting"]
    assert [(w[6], w[8]) for w in waiting] == [("live/0/stream-a-1.ts", False), ("live/0/stream-a-2.ts", True)]
    await world.pub.close()
    (tmp_path / "again").mkdir()
    again = make_world(tmp_path / "again", window=6.0, stepped=True)
    again.pub.restore({**saved, "clean_stop": True})
    assert numbered(again, 0) == {n: (name, name == "stream-a-1.ts") for n, (name, _gap) in numbered(world, 1).items()}
    for v in (0, 1):
        again.segments[v] = list(world.segments[v])
        again.owncast_lists(v, "stream-a-3.ts")
    await until(lambda: names(again, 0)[-1] == names(again, 1)[-1] == "stream-a-3.ts")
    assert list(numbered(again, 0)) == list(numbered(again, 1))
    again.check()


SECONDS_PLAYED = 8.0  # past the stuck moment, at least this much more played


async def poll_until_cancelled(seen: Observer, name: str, texts: dict[int, str]) -> None:
    """Every version through the checker (seen.poll), and each variant's first one listing `name`."""
    while True:
        await seen.poll()
        for v in seen.variants:
            if v not in texts and name in seen.names(v):
                async with seen.http.get(f"{seen.url}/live/{v}/playlist.m3u8") as r:
                    text = await r.text()
                if name in text:
                    texts[v] = text
        await asyncio.sleep(0.2)


@pytest.mark.integration
@pytest.mark.browser
@needs_chromium
async def test_a_viewer_on_the_variant_whose_file_never_finishes_does_not_stand_still(
        tmp_path: Path, seaweed: SeaweedS3) -> None:
    """Variant 1 lists the slot on time, variant 0 a gap under the same number."""
    from playwright.async_api import async_playwright

    bodies = await asyncio.to_thread(one_run_segments, tmp_path / "encoded", STREAM_SECONDS, 24)
    feed = HandFedOwncast(tmp_path / "hls", bodies[0], variants=(0, 1), list_size=10)

    def write(body: bytes) -> Callable[[Path], object]:
        return lambda path: path.write_bytes(body)

    def slot(hold_open: bool = False) -> str:
        """The next second of the stream in both variants (`hold_open`: variant 0's file is left open,
        its last bytes never written)."""
        body = bodies[feed.number % len(bodies)]
        if hold_open:
            holding.append(HeldBack(body, 188 * 5 + 100))
        return feed.slot({0: holding[-1].begin if hold_open else write(body), 1: write(body)})

    holding: list[HeldBack] = []
    asked: list[str] = []  # every segment the page requested

    for _ in range(3):
        slot()
    env = service_env(feed.root, seaweed, tmp_path / "state", WINDOW_SECONDS="6")
    hold = asyncio.Event()
    stuck: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def owncast() -> None:
        """One segment a second in every variant (Owncast's pace: a clock, not a wait on a condition);
        the first slot after `hold` is set has variant 0's file held open."""
        while True:
            await asyncio.sleep(SECONDS)
            if hold.is_set() and not stuck.done():
                stuck.set_result(slot(hold_open=True))
            else:
                slot()

    producing = asyncio.create_task(owncast())
    try:
        async with ServiceProcess(env, tmp_path / "run") as service, aiohttp.ClientSession() as http, \
                async_playwright() as pw:
            seen = Observer(service.url, http, (0, 1))
            browser = await launch_chromium(pw)
            try:
                page = await browser.new_page()
                page.on("request", lambda r: asked.append(r.url) if r.url.endswith(".ts") else None)
                await page.add_init_script(PLAYERS)
                await open_viewer(page, f"{service.url}/")
                # Pin the player to variant 0, and watch it from there on.
                await page.evaluate(PIN_AND_WATCH)
                await page.wait_for_function("() => window.stuckLog.pinned && window.stuckLog.played > 2",
                                             timeout=30_000, polling=POLL_MS)
                hold.set()
                name = await asyncio.wait_for(asyncio.shield(stuck), 10)
                texts: dict[int, str] = {}
                polling = asyncio.create_task(poll_until_cancelled(seen, name, texts))
                try:
                    start = await page.evaluate("() => window.stuckLog.played")
                    await page.wait_for_function(f"() => window.stuckLog.played > {start + SECONDS_PLAYED}",
                                                 timeout=40_000, polling=POLL_MS)
                    log = await page.evaluate("() => JSON.parse(JSON.stringify(window.stuckLog))")
                    print(f"\n[stuck] {name}: the video stood still {log['longest'] / 1000:.2f}s at most while "
                          f"playing; hls.js errors {log['errors']}")
                    # Variant 1 lists the slot; variant 0 a gap there.
                    await seen.until(lambda: name in seen.names(1), 10, f"{name} listed in variant 1")
                finally:
                    polling.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await polling
            finally:
                await browser.close()
            # The stuck copy's upload went on (late) until its limit (10 s after Owncast listed it): lost then.
            lost = ("hls_broadcaster_segments_lost_total", (("reason", "unfinished"), ("variant", "0")))

            async def lost_at_its_limit() -> bool:
                return (await seen.metrics()).get(lost) == 1

            await until(lost_at_its_limit, "the stuck copy lost at the upload's limit", 30, every=0.2)
            metrics = await seen.metrics()
            problems = service.problems()
    finally:
        producing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producing
        for held in holding:
            held.close()
    number = next(n for n, listed in seen.listed[1].items() if listed == name)
    print(f"[stuck] number {number}; hls.js's fragments from there (offset, variant, gap): "
          f"{[(f['sn'] - number, f['url'].rsplit('/', 2)[1], f['gap']) for f in log['frags'] if f['sn'] >= number][:4]}")
    assert not [e for e in log["errors"] if e["fatal"]], log["errors"]
    assert log["longest"] < STILL_MS, log
    # The same number in both; in variant 0 a gap, whose URI hls.js never asks for (it loads that
    # moment from variant 1).
    assert seen.listed[0][number] == name
    assert f"#EXT-X-GAP\n#EXTINF:1.000,\n{seen.urls[(0, name)]}\n" in texts[0], texts[0]
    assert "#EXT-X-GAP" not in texts[1]
    assert not any(url.endswith(f"/0/{name}") for url in asked), asked
    assert metrics.get(("hls_broadcaster_segments_lost_total", (("reason", "unfinished"), ("variant", "0")))) == 1
    assert not metrics.get(("hls_broadcaster_segments_lost_total", (("reason", "sibling_lost"), ("variant", "1"))))
    assert problems == [], problems


STREAM_SECONDS = 120  # more than the test plays, so no moment comes twice

# The longest the video may stand still while playing: the stuck variant waits one target duration (1 s)
# for its copy, within the few seconds hls.js keeps buffered.
STILL_MS = 3000

# hls.js of the viewer page (window.players, tests.support.browser.PLAYERS) pinned to variant 0's level,
# and window.stuckLog: the longest time the video stood still while not paused (ms, sampled every 100
# ms), the seconds played since, every fragment it loaded and every error.
PIN_AND_WATCH = """() => {
  const hls = window.players[window.players.length - 1];
  const video = document.querySelector('video');
  const log = window.stuckLog = { pinned: false, played: 0, longest: 0, frags: [], errors: [] };
  const level = hls.levels.findIndex((l) => /\\/0\\/playlist\\.m3u8/.test(l.url));
  hls.on(window.Hls.Events.FRAG_LOADING, (_e, d) => log.frags.push(
    { sn: d.frag.sn, level: d.frag.level, url: d.frag.url, gap: !!d.frag.gap }));
  hls.on(window.Hls.Events.ERROR, (_e, d) => log.errors.push({ details: d.details, fatal: d.fatal }));
  hls.on(window.Hls.Events.LEVEL_SWITCHED, (_e, d) => { if (d.level === level) log.pinned = true; });
  hls.currentLevel = level;
  if (hls.currentLevel === level && hls.levels[level].details) log.pinned = true;
  let last = video.currentTime, at = performance.now(), still = 0;
  setInterval(() => {
    const now = performance.now();
    if (!video.paused && video.currentTime === last) {
      still += now - at;
      if (log.pinned) log.longest = Math.max(log.longest, still);
    } else {
      if (log.pinned) log.played += Math.max(0, video.currentTime - last);
      still = 0;
    }
    last = video.currentTime;
    at = now;
  }, 100);
}"""
