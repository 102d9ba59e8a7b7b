"""The viewer count, the embed form and how playback fares, in headless Chromium on the live demo stream:
pages that play are counted, here and in a stand-in counting as Owncast does (tests/support/
owncast_viewers.py); /embed plays framed only by a site FRAME_ANCESTORS names; a throttled viewer's stalls,
the latency and the bounds on reports show on /metrics, /health and Owncast's Stream Health. (P2P's effect
on the count: tests/test_viewers.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.service import Service
from tests.support.browser import (Chromium, OwnedPages, module_chromium, needs_chromium, open_viewer,
                                   owned_pages, until_page, watch)
from tests.support.framer import Framer
from tests.support.owncast_viewers import OwncastViewers
from tests.support.scrape import Samples, scraped, total
from tests.support.service_process import running_service, service_env
from tests.support.waiting import until

# One xdist worker runs the module: spread over the workers, each built the module's stack again.
pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_chromium,
              pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("viewers_browser")]

TIMEOUT = 3  # VIEWER_TIMEOUT: short, so a page whose goodbye is lost leaves the count soon
WAIT = 30.0  # seconds any one browser condition may take on a busy machine


@dataclass
class Stack:
    service: Service
    owncast: OwncastViewers
    allowed: Framer
    other: Framer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, recordings: Recordings) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("viewers")
    async with (
        Framer() as allowed, Framer() as other,
        SeaweedS3(tmp / "seaweed", discard=True) as s3,
        OwncastEmulator(tmp / "hls", resolve_settings(segment_seconds=1), recordings=recordings) as emulator,
        OwncastViewers(purge_timeout=TIMEOUT, prune_every=0.5) as owncast,
    ):
        env = service_env(tmp / "hls", s3, tmp / "state", WINDOW_SECONDS="8", VIEWER_TIMEOUT=str(TIMEOUT),
                          OWNCAST_URL=owncast.url, FRAME_ANCESTORS=f"'self' {allowed.url}",
                          VIEWER_SOURCES=allowed.url)
        async with running_service(env) as service:  # in this process: the test watches its audience
            allowed.target = other.target = service.url
            await emulator.wait_for_segments(0, 3, timeout=20)
            yield Stack(service, owncast, allowed, other)


chromium = module_chromium()
browser = owned_pages  # each test's own contexts and pages in it


async def test_playing_pages_are_counted_here_and_by_owncast_and_closed_ones_leave(
        stack: Stack, browser: OwnedPages, monkeypatch: pytest.MonkeyPatch) -> None:
    audience = stack.service.audience
    left: list[str] = []  # the goodbyes the service got
    leave = audience.leave

    def recorded(viewer_id: str) -> None:
        left.append(viewer_id)
        leave(viewer_id)

    monkeypatch.setattr(audience, "leave", recorded)
    async with aiohttp.ClientSession() as http:
        # Two browsers on one machine: Owncast tells viewers apart by address and User-Agent only.
        first = await browser.new_context(user_agent="viewer-A")
        second = await browser.new_context(user_agent="viewer-B")
        pages = [await first.new_page(), await first.new_page(), await second.new_page()]
        for page in pages:
            await open_viewer(page, f"{stack.service.url}/")
        await until(lambda: audience.watching == 3, "3 pages counted", WAIT)
        await until_page(pages[2], "() => document.getElementById('watching').textContent === '3 watching'",
                         timeout=WAIT)
        async with http.get(f"{stack.service.url}/health") as response:
            viewers = (await response.json())["viewers"]
        # Stalls are another test's; here a page may stall on a loaded machine.
        assert viewers.keys() == {"watching", "p2p", "stalled_5min"}, viewers
        assert (viewers["watching"], viewers["p2p"]) == (3, 0) and 0 <= viewers["stalled_5min"] <= 3, viewers
        # Owncast's count: the two tabs of one browser are one viewer to it, as on its own page.
        await until(lambda: stack.owncast.viewer_count == 2, "Owncast counting 2", WAIT)
        assert {v.user_agent for v in stack.owncast.viewers.values()} == {"viewer-A", "viewer-B"}

        # Closing a page: out by its goodbye...
        await pages[0].close()
        # One page's goodbye, maybe twice (viewer/watching.js: a beat on its way is followed by another).
        await until(lambda: audience.watching == 2 and len(set(left)) == 1, "the closed page's goodbye",
                    WAIT)
        # ...or, when it never says goodbye (its renderer crashes), once VIEWER_TIMEOUT has passed.
        crash = await second.new_cdp_session(pages[2])
        with contextlib.suppress(Exception):  # the page dies under the command, which may never answer
            await asyncio.wait_for(crash.send("Page.crash"), 5)
        await until(lambda: audience.watching == 1, "the crashed page expired", WAIT)
        assert len(set(left)) == 1  # no goodbye came from it
        # Owncast drops viewer-B after its own purge timeout; viewer-A still plays in one tab.
        await until(lambda: stack.owncast.viewer_count == 1, "Owncast down to 1", WAIT)
        await watch(pages[1], 1)
        assert audience.watching == 1 and stack.owncast.viewer_count == 1
        await first.close()
        await until(lambda: audience.watching == 0, "every page gone", WAIT)


async def _frame_of(page: Any, host_url: str) -> Any:
    """The iframe's Frame once its navigation is over (loaded, or refused)."""
    await page.goto(host_url)
    handle = await page.wait_for_selector("iframe")
    frame = await handle.content_frame()
    assert frame is not None
    await frame.wait_for_load_state("load", timeout=WAIT * 1000)
    return frame


async def test_without_a_title_setting_the_page_shows_owncasts_name_and_summary(stack: Stack,
                                                                             browser: OwnedPages) -> None:
    """OWNCAST_URL set, STREAM_TITLE and STREAM_DESCRIPTION not: Owncast's name and summary, as plain text."""
    stack.owncast.name = "Friday <b>jazz</b> & friends"
    stack.owncast.summary = "Live from the cellar <script>, every week"
    page = await browser.new_page()
    await page.goto(f"{stack.service.url}/")
    await until_page(page, "n => document.title === n", stack.owncast.name, timeout=WAIT)
    assert await page.inner_text("#title") == stack.owncast.name
    assert await page.is_visible("#description")
    assert await page.inner_text("#description") == stack.owncast.summary
    assert await page.evaluate("() => document.querySelector('#title b, #description script')") is None


async def test_embed_plays_framed_by_a_named_site_and_is_refused_elsewhere(stack: Stack,
                                                                        chromium: Chromium) -> None:
    async with chromium.own(draw_video=True) as browser:  # it looks at what the embed shows
        page = await browser.new_page()
        frame = await _frame_of(page, stack.allowed.url)
        await until_page(frame, "() => window.viewerStats && window.viewerStats.state === 'playing'",
                         timeout=WAIT)
        await watch(frame, 2)
        # The video alone: the title, status bar and panels are not shown in the embed form.
        assert await frame.is_visible("video")
        assert not await frame.is_visible("h1") and not await frame.is_visible(".bar")
        # Framed by another site, the page is still this service's own: its beats count.
        await until(lambda: stack.service.audience.watching == 1, "the framed page counted", WAIT)

        refused: list[str] = []
        other = await browser.new_page()
        other.on("console", lambda m: refused.append(m.text) if "frame-ancestors" in m.text else None)
        frame = await _frame_of(other, stack.other.url)
        # Chromium shows its error page in place of the viewer; the viewer's script never runs there.
        assert await frame.evaluate("() => document.querySelector('video') === null && !window.viewerStats")
        await until(lambda: bool(refused), "Chromium's frame-ancestors refusal", WAIT)


_BEATS = """async (url) => {
  const results = [];
  for (let n = 0; n < 25; n++) {
    const id = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))))
      .replace(/[+]/g, '-').replace(/[/]/g, '_').replace(/=+$/, '');
    try {
      const response = await fetch(url, { method: 'POST', cache: 'no-store', credentials: 'omit',
        headers: { 'Hb-Watching': id } });
      results.push(String(response.status));
    } catch (err) {
      results.push(err.name);
    }
  }
  return results;
}"""


async def test_another_sites_page_cannot_make_its_visitors_count(stack: Stack, browser: OwnedPages) -> None:
    """25 beats from another origin; the same from the service's own origin count (the control)."""
    audience = stack.service.audience
    # The framed page of the test before may still count (its goodbye lost): gone within VIEWER_TIMEOUT.
    await until(lambda: audience.watching == 0, "earlier tests' pages gone", WAIT)
    page = await browser.new_page()
    await page.goto(stack.other.url)  # another site
    before, refused = audience.watching, dict(audience.refused)
    results = await page.evaluate(_BEATS, f"{stack.service.url}/live/watching")
    assert results == ["TypeError"] * 25  # "Failed to fetch": the preflight was refused
    assert audience.watching == before == 0 and audience.refused == refused
    # The control: the same fetches from the service's own origin are counted.
    await page.goto(f"{stack.service.url}/config.json")
    results = await page.evaluate(_BEATS, "live/watching")
    assert results == ["200"] * 25 and audience.watching == 25
    await until(lambda: audience.watching == 0, "the control's beats expired", WAIT)


async def test_src_plays_only_this_sites_streams_unless_the_operator_allows_more(stack: Stack,
                                                                               browser: OwnedPages) -> None:
    """Another site's ?src= is not played nor asked; an origin VIEWER_SOURCES lists is."""
    service = stack.service.url
    page = await browser.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    for path in ("/", "/embed"):
        await page.goto(f"{service}{path}?src={stack.other.url}/live/master.m3u8")
        await until_page(page, "() => window.viewerStats && window.viewerStats.state === 'error'",
                         timeout=WAIT)
        said = await page.evaluate("() => document.getElementById('status').textContent")
        assert "only this site's own stream" in said
    await page.goto(f"{service}/?src={stack.allowed.url}/live/master.m3u8")  # allowed: asked (a 404)
    await until(lambda: any(u.startswith(f"{stack.allowed.url}/live/") for u in asked), "asked", WAIT)
    await open_viewer(page, f"{service}/?src=/hls/stream.m3u8")  # this service's own: plays
    assert not [u for u in asked if u.startswith(stack.other.url)], asked


def playback(got: Samples, name: str, **labels: str) -> float:
    """hls_broadcaster_playback_`name` with `labels` (0 without)."""
    return total(got, f"hls_broadcaster_playback_{name}", **labels)


async def lowest_variant(http: aiohttp.ClientSession, url: str) -> tuple[str, int]:
    """(index, bits/s) of the lowest BANDWIDTH, waited for (503 until every variant is listed)."""
    seen: list[tuple[int, str]] = []  # (status, body) of the last answer

    async def variants() -> list[tuple[str, str]]:
        async with http.get(f"{url}/live/master.m3u8") as response:
            seen[:] = [(response.status, await response.text())]
        # The bucket's pathway (with content steering each variant is offered on the VM's too: /live/vm/n/).
        found: list[tuple[str, str]] = re.findall(
            r"BANDWIDTH=(\d+)[^\n]*\n(?:[^\n]*/live/)?(\d+)/playlist\.m3u8", seen[0][1])
        return found

    found = await until(variants, "a multivariant playlist listing the variants", WAIT, every=0.2,
                        detail=lambda: seen)
    bandwidth, index = min((int(b), i) for b, i in found)
    return index, bandwidth


async def test_a_viewer_below_the_lowest_variants_bitrate_stalls_on_it_here_and_in_owncasts_stream_health(
        stack: Stack, browser: OwnedPages) -> None:
    """Throttled to half the lowest variant's bitrate, one viewer of two."""
    url = stack.service.url
    async with aiohttp.ClientSession() as http:
        lowest, bandwidth = await lowest_variant(http, url)
        fine = await browser.new_context(user_agent="viewer-fine")
        slow = await browser.new_context(user_agent="viewer-slow")
        pages = [await fine.new_page(), await slow.new_page()]
        for page in pages:
            await open_viewer(page, f"{url}/?stats=1")
        await watch(pages[1], 2)
        before = await scraped(http, url)
        stack.owncast.poll()  # Owncast's window starts again (its poll, every 2 minutes)
        cdp = await slow.new_cdp_session(pages[1])
        await cdp.send("Network.enable")
        await cdp.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": bandwidth / 8 / 2,
            "uploadThroughput": -1})
        # Its page stalls on the lowest variant and says so with its next reports.
        await until_page(pages[1], "v => window.viewerStats.playback.variant === v"
                         " && window.viewerStats.playback.stalls >= 2", int(lowest), timeout=WAIT)

        async def stalls_counted() -> Samples | None:
            got = await scraped(http, url)
            stalls = [playback(s, "stalls_total", variant=lowest) for s in (before, got)]
            stalled = playback(got, "stalled_seconds_total", variant=lowest)
            return got if stalls[1] > stalls[0] and stalled > 0.5 else None

        got = await until(stalls_counted, "the slow page's stalls on /metrics", WAIT, every=0.2)
        async with http.get(f"{url}/health") as response:
            viewers = (await response.json())["viewers"]
        # Owncast: both pages report; the slow one's errors (its stalls) make it a viewer in trouble.
        await until(lambda: {"viewer-fine", "viewer-slow"}
                    <= {ua for ua, _ in stack.owncast.playback_reports},
                    "both pages' reports to Owncast", WAIT)
        # Owncast keeps each viewer's latest report of its window: the overview once the slow page's
        # latest says trouble (most do: it stalls about half the time) and the other's does not.
        await until(lambda: (h := stack.owncast.stream_health()) is not None
                    and h.healthy_percentage == 50,
                    "Owncast's Stream Health: one viewer of two in trouble", WAIT)
        health = stack.owncast.stream_health()
        slow_reports = [r for ua, r in stack.owncast.playback_reports if ua == "viewer-slow"]
    assert got[("hls_broadcaster_viewers_stalled", ())] >= 1 and viewers["stalled_5min"] >= 1, (got, viewers)
    # A page stalling on a link too slow for it reports no more than it could have had.
    refused = [playback(s, "reports_refused_total", reason="out_of_bounds") for s in (before, got)]
    assert refused[0] == refused[1], refused

    def on_lowest(samples: Samples) -> float:
        return (playback(samples, "watched_seconds_total", variant=lowest)
                + playback(samples, "stalled_seconds_total", variant=lowest))

    assert on_lowest(got) > on_lowest(before), (got, before)
    assert health is not None and not health.healthy and health.representation > 0, health
    assert all(r["downloadDuration"] > 0 and r["bandwidth"] > 0 for r in slow_reports), slow_reports
    # This stand-in is an Owncast before 0.2: the pages asked its CMCD collector first, got its 404, and
    # sent these to /api/metrics/playback instead (viewer/src/owncast-health.js).
    assert stack.owncast.cmcd_misses >= 2, stack.owncast.cmcd_misses


# The device's clock an hour fast: Date and performance.timeOrigin alike (what a wrong clock changes).
FAST_CLOCK = """(() => {
  const SKEW = 3600 * 1000;
  const Real = Date;
  class Fast extends Real {
    constructor(...args) { if (args.length === 0) super(Real.now() + SKEW); else super(...args); }
    static now() { return Real.now() + SKEW; }
  }
  window.Date = Fast;
  const origin = performance.timeOrigin + SKEW;
  Object.defineProperty(Performance.prototype, 'timeOrigin', { get: () => origin });
})();"""


async def test_the_latency_on_metrics_is_the_pages_own_within_a_second_whatever_the_devices_clock(
        stack: Stack, browser: OwnedPages) -> None:
    """And the truth (this clock less the frame's PROGRAM-DATE-TIME) within a second; Owncast too."""
    url = stack.service.url
    async with aiohttp.ClientSession() as http:
        context = await browser.new_context(user_agent="viewer-fast-clock")
        await context.add_init_script(FAST_CLOCK)
        page = await context.new_page()
        await open_viewer(page, f"{url}/")
        await watch(page, 2)
        await until(lambda: stack.service.audience.watching == 1, "this page alone counted", WAIT)
        sent = await page.evaluate("() => window.viewerStats.playback.reports")
        await until_page(page, "n => window.viewerStats.playback.reports >= n", sent + 1, timeout=WAIT)
        before = await scraped(http, url)
        sent = await page.evaluate("() => window.viewerStats.playback.reports")
        await until_page(page, "n => window.viewerStats.playback.reports >= n", sent + 3, timeout=WAIT)
        # This machine's clock read on both sides of the page's reading: on a loaded machine the answer
        # comes back seconds after the page read its figures, which a single read after takes for latency.
        asked = time.time() * 1000
        shown = await page.evaluate(
            "() => [window.viewerStats.playback.latencyMs, window.viewerStats.playingDate, "
            "window.viewerStats.playback.skewMs, Date.now()]")
        answered = time.time() * 1000
        after = await scraped(http, url)
        owncast = [r["latency"] for ua, r in stack.owncast.playback_reports if ua == "viewer-fast-clock"]
    own, date, skew, device_now = shown
    count = playback(after, "latency_seconds_count") - playback(before, "latency_seconds_count")
    exported = (playback(after, "latency_seconds_sum") - playback(before, "latency_seconds_sum")) / count
    # The truth: this machine's clock when the page read its figures (between `asked` and `answered`) less
    # the PROGRAM-DATE-TIME of the frame it showed.
    truth = ((asked - date) / 1000, (answered - date) / 1000)
    real_now = device_now - 3_600_000  # the page's clock, less the hour it is fast by
    print(f"latency: /metrics {exported:.3f} s over {count:.2f} reports, the page's {own / 1000:.3f} s, "
          f"the service's clock {truth[0]:.3f}-{truth[1]:.3f} s; the page's clock "
          f"{device_now - asked:+.0f} ms off, skew {skew} ms")
    assert 2 <= count <= 5, count
    assert abs(exported - own / 1000) < 1 and truth[0] - 1 < exported < truth[1] + 1, (exported, own, truth)
    assert asked - 1000 < real_now < answered + 1000 and abs(skew + 3_600_000) < 1000, \
        (device_now - asked, answered - asked, skew)
    assert owncast and all(abs(latency - exported) < 1 for latency in owncast[-3:]), owncast


async def test_honest_pages_reports_are_all_within_bounds_and_each_start_up_counts_once(
        stack: Stack, browser: OwnedPages) -> None:
    """Two pages play, one pauses and plays on under its id (sending no start-up again)."""
    url = stack.service.url
    async with aiohttp.ClientSession() as http:
        contexts = [await browser.new_context(user_agent=f"viewer-{n}") for n in range(2)]
        pages = [await context.new_page() for context in contexts]
        before = await scraped(http, url)
        for page in pages:
            await open_viewer(page, f"{url}/")
        for page in pages:  # each page's first beat is never taken; its start-up comes with a later one
            await until_page(page, "() => window.viewerStats.playback.reports >= 4", timeout=WAIT)
        await pages[0].evaluate("() => document.querySelector('video').pause()")
        await until(lambda: stack.service.audience.watching == 1, "the paused page left", WAIT)
        sent = await pages[0].evaluate("() => window.viewerStats.playback.reports")
        await pages[0].evaluate("() => document.querySelector('video').play()")
        await until_page(pages[0], "n => window.viewerStats.playback.reports >= n", sent + 3, timeout=WAIT)
        await until(lambda: stack.service.audience.watching == 2, "it plays on, counted again", WAIT)
        figures = [await page.evaluate("() => window.viewerStats.playback") for page in pages]
        after = await scraped(http, url)

    def added(name: str, **labels: str) -> float:
        return playback(after, name, **labels) - playback(before, name, **labels)

    print("reports sent", [f["reports"] for f in figures], "not taken", [f["notTaken"] for f in figures],
          "taken", added("reports_total"), "start-ups", added("startup_seconds_count"))
    assert added("reports_refused_total", reason="out_of_bounds") == 0, after
    assert added("reports_total") >= 2 * 3, (added("reports_total"), figures)
    assert added("startup_seconds_count") == 2, (added("startup_seconds_count"), figures)
    assert all(f["startupMs"] > 0 and f["lastReport"][0] == -1 for f in figures), figures


async def test_a_report_whose_beat_failed_goes_into_the_next_and_no_count_is_lost(
        stack: Stack, browser: OwnedPages) -> None:
    """Four beats with a report fail (503s and aborts in turn)."""
    url = stack.service.url
    failed: list[str] = []

    async def fail(route: Any) -> None:
        if "hb-report" not in route.request.headers:  # a beat without a report has nothing to lose
            await route.continue_()
        elif len(failed) % 2:
            failed.append("aborted")
            await route.abort("failed")
        else:
            failed.append("503")
            await route.fulfill(status=503, body="not now\n")

    async with aiohttp.ClientSession() as http:
        page = await (await browser.new_context()).new_page()
        before = await scraped(http, url)
        await open_viewer(page, f"{url}/")
        await until_page(page, "() => window.viewerStats.playback.reports >= 3", timeout=WAIT)
        await page.route("**/live/watching", fail)
        not_taken = await page.evaluate("() => window.viewerStats.playback.notTaken")
        await until(lambda: len(failed) >= 4, "four failed beats with a report", WAIT)
        await page.unroute("**/live/watching")
        loaded = await page.evaluate("() => window.viewerStats.playback.bucket.segments")
        figures = await page.evaluate("() => window.viewerStats.playback")

        async def counted() -> float | None:
            added = playback(await scraped(http, url), "segments_total", source="bucket") - \
                playback(before, "segments_total", source="bucket")
            return added if added >= loaded else None

        got = await until(counted, "the page's bucket segments on /metrics", WAIT,
                          detail=lambda: (failed, loaded, figures["bucket"], figures["notTaken"]))
    print("failed beats", failed, "segments loaded", loaded, "counted", got,
          "not taken", not_taken, "->", figures["notTaken"])
    assert figures["notTaken"] - not_taken >= len(failed), (not_taken, figures)
