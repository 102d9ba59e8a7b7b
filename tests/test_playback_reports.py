"""Viewers' playback reports, in process: the format and its clamps, the rules that keep one client from
painting the picture, the heartbeat's answer, /metrics, /health and config.json."""

from __future__ import annotations

import asyncio
import binascii
import logging
import math
import re
import struct
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from broadcaster.http import PlaylistOptions, ViewerOptions, Viewers, create_app
from broadcaster.metrics import AudienceMetrics, Metrics
from broadcaster.service import default_viewer_dir
from broadcaster.status.assessment import HealthReport, Readings
from broadcaster.status import playback as pb
from broadcaster.status.audience import LIMIT, STALLED_WINDOW, Audience
from broadcaster.status.playback import FIELDS, Playback
from broadcaster.status.playback_metrics import PlaybackMetrics
from tests.support.client import new_id
from tests.support.fakes import Clock, FakeHealth, FakePlaylists
from tests.support.scrape import parsed, scraped
from tests.support.service_process import ServiceProcess, moto_env
from tests.support.world import World

VIEWER = default_viewer_dir()
INTERVAL = 10.0  # the beat interval at VIEWER_TIMEOUT=30


NO_FIGURE = {"startup_ms", "latency_ms", "variant"}


def report(given: dict[str, int] | None = None, /, *, p2p: bool = True, **fields: int) -> str:
    """A version 1 report: every field 0 (startup, latency, variant: none) but those given."""
    values = {name: (-1 if name in NO_FIGURE else 0) for name, _ in FIELDS} | (given or {}) | fields
    return pb.encode(*(values[name] for name, _ in FIELDS[: len(FIELDS) if p2p else pb.WITHOUT_P2P]), p2p=p2p)


def counted(target: int | None = None, **options: Any) -> tuple[Clock, Audience, Playback]:
    """A clock the test moves, an audience on it and its playback figures."""
    clock = Clock()
    audience = Audience(3 * INTERVAL, clock=clock, **options)
    return clock, audience, Playback(audience, interval=INTERVAL, target_duration=lambda: target)


def send(audience: Audience, playback: Playback, page: str, address: str | None, text: str) -> bool | None:
    """What the route does with a beat carrying `text`: None if not counted or malformed, else taken?"""
    values = playback.parse(text)
    if values is None or not audience.beat(page, address, p2p=False):
        return None
    return playback.take(page, values)


# -- the report ------------------------------------------------------------------------------------------


def test_a_report_is_base64_of_version_1_with_or_without_p2p_and_anything_else_is_refused() -> None:
    *_, playback = counted()
    full = report(watched_ms=10_000, latency_ms=7_000, variant=1, bucket_segments=3, peer_segments=2)
    values = playback.parse(full)
    assert values is not None
    assert (values[pb.WATCHED], values[pb.LATENCY], values[pb.VARIANT]) == (10_000, 7_000, 1)
    assert values[pb.PEER_SEGMENTS] == 2 and values[pb.STARTUP] == -1
    without = playback.parse(report(p2p=False, watched_ms=10_000))
    assert without is not None and without[pb.WATCHED] == 10_000 and without[pb.PEER_SEGMENTS:] == [0] * 7
    raw = binascii.a2b_base64(full)
    bad = ["", "x", full[:-4], full + "AAAA", full.replace("A", "!", 1), "ä" + full[1:], full + "\n",
           binascii.b2a_base64(b"\x02" + raw[1:], newline=False).decode(),  # version 2
           binascii.b2a_base64(raw[:-1], newline=False).decode(), "1 842 10012 0 0 7213"]
    for text in bad:
        assert playback.parse(text) is None, text
    assert playback.refused == {"malformed": len(bad), "too_soon": 0, "out_of_bounds": 0}


def test_a_fields_width_bounds_it_and_the_start_up_and_the_latency_are_clamped() -> None:
    *_, playback = counted()
    values = playback.parse(report(startup_ms=0xFFFF_FFFE, latency_ms=0xFFFF_FFFE, stalls=255, variant=254))
    assert values is not None
    assert (values[pb.STARTUP], values[pb.LATENCY]) == (pb.STARTUP_CAP, pb.LATENCY_CAP)
    assert (values[pb.STALLS], values[pb.VARIANT]) == (255, 254)
    with pytest.raises(struct.error):  # the page cannot even say more than a field holds
        report(stalls=256)


# -- nobody paints the picture ---------------------------------------------------------------------------


def weight(buckets: pb.Buckets, above: float = -math.inf) -> float:
    """The observations' weight in `buckets`' buckets whose bound is above `above`."""
    bounds = (*buckets.bounds, math.inf)
    return sum(c for c, bound in zip(buckets.counts, bounds, strict=True) if bound > above)


def test_a_page_weighs_at_most_one_observation_per_interval_however_often_it_reports() -> None:
    clock, audience, playback = counted()
    page = new_id()
    taken = []
    start = clock.t
    for n in range(200):  # a report every 50 ms for 10 s
        clock.t = start + n * 0.05
        taken.append(send(audience, playback, page, "192.0.2.1", report(latency_ms=300_000, watched_ms=1000)))
    # Its first beat's report speaks for no time; then one every half interval, at most.
    assert taken.count(True) == 1 and taken.index(True) == 100, taken.index(True)
    assert playback.refused["too_soon"] == 199
    assert weight(playback.latency) == 0.5  # half an interval since the page was first counted
    clock.t = start + 10  # another half interval: as much again; an interval's reports weigh one observation
    assert send(audience, playback, page, "192.0.2.1", report(latency_ms=300_000)) is True
    assert weight(playback.latency) == 1.0
    clock.t += 25  # a long silence (its beats without reports) weighs one interval, no more
    assert send(audience, playback, page, "192.0.2.1", report(latency_ms=300_000)) is True
    assert weight(playback.latency) == 2.0


def test_a_page_claims_no_more_time_than_it_was_there() -> None:
    clock, audience, playback = counted()
    page = new_id()
    assert send(audience, playback, page, "192.0.2.1", report()) is False  # its first beat
    clock.t += 10
    assert send(audience, playback, page, "192.0.2.1", report(watched_ms=3_600_000, stalled_ms=3_600_000))
    clock.t += 20
    assert send(audience, playback, page, "192.0.2.1", report(watched_ms=5_000, stalled_ms=3_600_000))
    figures = playback.variants["unknown"]
    # 10 s there (and a tenth): 11 s watched; then 20 s there: 5 s watched, 17 s stalled.
    assert (figures.watched_ms, figures.stalled_ms) == (16_000, 17_000)


# What a page could have had in a second at most (status/playback.py's MS_PER_*), written out here; a
# page's reports may hold 10 s more than the time between them (audience.SLACK).
CASES = [  # (the report's counts, over 20 s: 10 s since first counted, and the 10 s before)
    ({"stalls": 40}, {"stalls": 41}),
    ({"switches": 40}, {"switches": 41}),
    ({"network_fatal": 40, "media_recovered": 40}, {"network_fatal": 41, "media_recovered": 40}),
    ({"other_recovered": 80}, {"other_recovered": 81}),
    ({"bucket_segments": 40, "peer_segments": 40}, {"bucket_segments": 81}),
    ({"verified": 40, "rejected": 40, "banned": 40}, {"rejected": 81}),
    ({"frames": 5000, "dropped_frames": 5000}, {"frames": 5001}),
    ({"bucket_bytes": 250_000_000, "peer_bytes": 250_000_000, "uploaded_bytes": 500_000_000},
     {"peer_bytes": 500_025_000}),
]
NEVER = [  # (within, beyond) whatever the time
    ({"rejected": 1, "banned": 1}, {"rejected": 1, "banned": 2}),
    ({"frames": 10, "dropped_frames": 10}, {"frames": 10, "dropped_frames": 11}),
    ({"bucket_segments": 1, "bucket_ms": 120_000}, {"bucket_segments": 1, "bucket_ms": 120_001}),
    ({"peer_segments": 2, "peer_ms": 240_000}, {"peer_segments": 0, "peer_ms": 1}),
]


@pytest.mark.parametrize(("within", "beyond", "in_time"), [(*case, True) for case in CASES]
                         + [(*case, False) for case in NEVER])
def test_a_report_holds_no_more_than_a_page_could_have_had_since_its_last_else_it_is_refused(
        within: dict[str, int], beyond: dict[str, int], in_time: bool) -> None:
    """Counts bounded by the time covered: beyond, refused whole, carried into the next."""
    clock, audience, playback = counted()
    pages = [new_id(), new_id()]
    for page in pages:
        assert send(audience, playback, page, "192.0.2.1", report()) is False  # the first beat: counted
    clock.t += 10
    assert send(audience, playback, pages[0], "192.0.2.1", report(beyond)) is False
    assert playback.refused["out_of_bounds"] == 1 and playback.reports == 0
    assert all(playback.count(i) == 0 for i in range(pb.SWITCHES, len(FIELDS))) and playback.variants == {}
    assert send(audience, playback, pages[1], "192.0.2.1", report(within)) is True
    clock.t += 10
    assert send(audience, playback, pages[0], "192.0.2.1", report(beyond)) is in_time
    assert playback.reports == 1 + in_time and playback.refused["out_of_bounds"] == 2 - in_time


# Every count at its width's most.
GREEDY = report({name: (255 if width == "B" else 65_535 if width == "H" else 0xFFFF_FFFE)
                 for name, width in FIELDS if name not in NO_FIGURE})


def flood(audience: Audience, playback: Playback, pages: list[str], address: str, seconds: float,
          clock: Clock, claim: Any) -> None:
    """`pages` from `address` beat every 50 ms for `seconds`, each report `claim(seconds covered)`."""
    last = dict.fromkeys(pages, clock.t - 10)  # the attacker knows the rules: first report, 10 s more
    start = clock.t
    for step in range(int(seconds / 0.05)):
        clock.t = start + step * 0.05
        for page in pages:
            if send(audience, playback, page, address, claim(clock.t - last[page])):
                last[page] = clock.t


def test_one_address_with_20_pages_adds_no_more_than_20_pages_could_have_had() -> None:
    """20 pages of one address add no more than 20 pages could have; the address counts once."""
    careful = (lambda s: report(stalls=min(255, int(s)), network_fatal=min(255, int(2 * s)),
                                rejected=min(65_535, int(4 * s)), banned=min(255, int(4 * s)),
                                stalled_ms=int(1000 * s), bucket_segments=1, bucket_ms=120_000))
    for claim in (lambda _: GREEDY, careful):
        clock, audience, playback = counted()
        flood(audience, playback, [new_id() for _ in range(20)], "198.51.100.7", 40, clock, claim)
        stalls = sum(v.stalls for v in playback.variants.values())
        assert stalls <= 20 * 50 * 2, stalls
        assert playback.count(pb.NET_FATAL) <= 20 * 50 * 4 and playback.count(pb.REJECTED) <= 20 * 50 * 4
        assert playback.count(pb.BANNED) <= playback.count(pb.REJECTED)
        if claim is careful:  # heard, within the bounds, as one address
            assert stalls >= 20 * 30 and playback.count(pb.REJECTED) >= 20 * 30 * 4, stalls
            assert playback.problem_addresses() == {"stalls": 1, "rejections": 1, "slow_downloads": 0}
        else:  # every report beyond them: refused and counted
            assert playback.reports == 0 and playback.refused["out_of_bounds"] >= 20 * 7


def test_start_ups_count_once_per_page_and_once_a_minute_per_address() -> None:
    """Made-up page ids do not fill the start-up figures: an address's counts once a minute, a page's once."""
    clock, audience, playback = counted()
    start = clock.t
    made: list[str] = []
    for step in range(180):  # 4 new pages a second for 45 s, each heard 5 s after its first beat, then gone
        clock.t = start + step * 0.25
        if step >= 20:
            page = made[step - 20]
            assert send(audience, playback, page, "203.0.113.9", report(startup_ms=600_000)) is True
            audience.leave(page)
        made.append(new_id())
        assert send(audience, playback, made[-1], "203.0.113.9", report()) is False  # counted
    assert playback.reports == 160 and weight(playback.startup) == 1, weight(playback.startup)
    # Another address counts its own; this one again a minute after its last.
    honest = new_id()
    send(audience, playback, honest, "192.0.2.77", report())
    clock.t += 10
    assert send(audience, playback, honest, "192.0.2.77", report(startup_ms=900)) is True
    assert weight(playback.startup) == 2 and playback.startup.sum == pytest.approx(600.9)
    clock.t = start + 80  # its last 20 pages expired (a minute and more after its start-up was taken)
    again = new_id()
    send(audience, playback, again, "203.0.113.9", report())
    clock.t += 10
    assert send(audience, playback, again, "203.0.113.9", report(startup_ms=600_000)) is True
    assert weight(playback.startup) == 3
    # A page that goes on reporting its start-up: once.
    for _ in range(3):
        clock.t += 10
        assert send(audience, playback, again, "203.0.113.9", report(startup_ms=600_000)) is True
    assert weight(playback.startup) == 3


def test_the_addresses_that_reported_a_problem_are_counted_once_each_within_their_window() -> None:
    """Problem addresses counted once each; stalls and downloads kept 5 minutes, rejections 10."""
    clock, audience, playback = counted(target=3)
    one = [new_id() for _ in range(20)]
    troubled = report(stalls=1, stalled_ms=1000, rejected=1, bucket_segments=1, bucket_ms=3_500)
    for _ in range(2):
        for page in one:
            send(audience, playback, page, "198.51.100.1", troubled)
        clock.t += INTERVAL
    assert playback.problem_addresses() == {"stalls": 1, "rejections": 1, "slow_downloads": 1}
    others = [("192.0.2.5", new_id()), (None, new_id()), (None, new_id())]
    slow = report(stalls=1, bucket_segments=1, bucket_ms=2_900)
    for _ in range(2):
        for address, page in others:
            assert send(audience, playback, page, address, slow) is not None  # counted, well-formed
        clock.t += INTERVAL
    assert playback.problem_addresses() == {"stalls": 4, "rejections": 1, "slow_downloads": 1}
    clock.t += 300 - 2 * INTERVAL  # the first address's last problems: 5 minutes ago
    assert playback.problem_addresses() == {"stalls": 3, "rejections": 1, "slow_downloads": 0}
    clock.t += 300
    assert playback.problem_addresses() == {"stalls": 0, "rejections": 0, "slow_downloads": 0}


def test_a_flood_moves_each_distribution_by_its_share_of_the_pages_counted_and_no_more() -> None:
    """10 honest pages and a flood of 1000 ids from each of 5 addresses: the fakes' share of each
    distribution is at most their share of the pages counted (start-ups: of the addresses), under the
    per-address cap and under a total cap of 50."""
    for limit, fake_pages in ((LIMIT, 100), (50, 40)):
        clock, audience, playback = counted(limit=limit)
        honest = [new_id() for _ in range(10)]
        flood = [[new_id() for _ in range(1000)] for _ in range(5)]
        honest_report = report(startup_ms=1000, latency_ms=6000, bucket_segments=3, bucket_ms=900,
                               bucket_bytes=300_000, watched_ms=10_000)
        fake_report = report(startup_ms=60_000, latency_ms=300_000, bucket_segments=1, bucket_ms=30_000,
                             bucket_bytes=1, stalled_ms=10_000)
        start = clock.t
        for step in range(1201):  # 60 s, ending on the honest pages' beat
            if step % 200 == 0:
                for i, page in enumerate(honest):
                    send(audience, playback, page, f"192.0.2.{i}", honest_report)
            for n, ids in enumerate(flood):
                for page in ids[:20] + ids[20 + step % 980:21 + step % 980]:
                    send(audience, playback, page, f"203.0.113.{n}", fake_report)
            clock.t = start + (step + 1) * 0.05
        pages_share = fake_pages / (fake_pages + len(honest))
        # Start-ups count once a minute per address: the flood's addresses with pages counted, of 20 each.
        addresses_share = (fake_pages // 20) / (fake_pages // 20 + len(honest))
        assert audience.watching == fake_pages + len(honest)
        for name, buckets, fake_above, share in (("latency", playback.latency, 100.0, pages_share),
                                                 ("startup", playback.startup, 30.0, addresses_share),
                                                 ("download", playback.download[0], 10.0, pages_share)):
            total, fake = weight(buckets), weight(buckets, fake_above)
            assert total and fake / total <= share + 1e-9, (limit, name, fake, total, share)
            assert fake / total >= share - 0.05, (limit, name, fake, total)  # the flood did count, as pages
        # Stalled time: at most the fake pages' time there, so the rebuffering ratio's numerator is bounded.
        stalled = sum(v.stalled_ms for v in playback.variants.values()) / 1000
        assert stalled <= fake_pages * 60 * 1.1, stalled


def test_the_stalled_pages_of_the_last_five_minutes_are_those_still_counted() -> None:
    clock, audience, playback = counted()
    pages = [new_id() for _ in range(3)]
    for _ in range(2):  # a first beat, then a report taken
        for i, page in enumerate(pages):
            send(audience, playback, page, f"192.0.2.{i}", report(stalls=i, watched_ms=1000))
        clock.t += INTERVAL
    assert audience.stalled_recently == 2  # pages 1 and 2 stalled
    audience.leave(pages[1])
    assert audience.stalled_recently == 1  # gone: no longer counted
    for _ in range(int(STALLED_WINDOW / INTERVAL)):  # page 2 keeps playing, without stalls, 5 minutes
        clock.t += INTERVAL
        send(audience, playback, pages[2], "192.0.2.2", report(watched_ms=10_000))
        send(audience, playback, pages[0], "192.0.2.0", report(watched_ms=10_000))
    assert audience.stalled_recently == 0


# -- over HTTP ---------------------------------------------------------------------------------------------


async def client_for(aiohttp_client: AiohttpClient, *, show: bool = True,
                     ) -> tuple[TestClient[web.Request, web.Application], Clock, Audience, Playback]:
    assert VIEWER is not None
    clock, audience, playback = counted()
    metrics = Metrics(CollectorRegistry(auto_describe=True))
    AudienceMetrics(metrics.registry, lambda: audience.watching, lambda: audience.p2p,
                    lambda: audience.refused, lambda: audience.stalled_recently)
    PlaybackMetrics(metrics.registry, playback)
    app = create_app(FakePlaylists(6, 1), FakeHealth(), metrics,
                     playlist_options=PlaylistOptions(trust_cf_connecting_ip=True),
                     viewer_options=ViewerOptions(VIEWER, show_viewer_count=show,
                                                  viewers=Viewers(audience, playback)))
    return await aiohttp_client(app), clock, audience, playback


async def test_a_malformed_report_is_a_400_of_one_line_not_counted_and_not_logged(
        aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture) -> None:
    client, _, audience, playback = await client_for(aiohttp_client)
    caplog.set_level(logging.DEBUG)
    for text in ("1 2 3", report()[:-8], "!" + report()[1:], "x" * 4000):
        response = await client.post("/live/watching", headers={"Hb-Watching": new_id(), "Hb-Report": text,
                                                                 "CF-Connecting-IP": "192.0.2.1"})
        body = await response.text()
        assert response.status == 400 and body == pb.MALFORMED + "\n" and body.count("\n") == 1, body
        assert "Access-Control-Allow-Origin" not in response.headers
    assert audience.watching == 0 and playback.refused["malformed"] == 4 and playback.reports == 0
    assert [r for r in caplog.records if r.name.startswith("broadcaster")] == []


async def test_the_answer_carries_the_services_clock_and_says_when_a_report_was_not_taken(
        aiohttp_client: AiohttpClient) -> None:
    for show in (True, False):
        client, clock, audience, playback = await client_for(aiohttp_client, show=show)
        page = new_id()
        before = time.time() * 1000
        first = await client.post("/live/watching", headers={"Hb-Watching": page, "Hb-Report": report()})
        after = time.time() * 1000
        answer = await first.json()
        # The page's first beat: counted, its report not taken (it speaks for no time yet).
        assert first.status == 200 and before - 1 <= answer["now"] <= after + 1, (before, answer, after)
        assert answer["taken"] == 0 and ("watching" in answer) == show and audience.watching == 1
        clock.t += INTERVAL
        again = await (await client.post("/live/watching", headers={"Hb-Watching": page,
                                                                     "Hb-Report": report()})).json()
        assert "taken" not in again and playback.reports == 1 and audience.watching == 1
        # A beat without a report answers as a plain heartbeat.
        plain = await client.post("/live/watching", headers={"Hb-Watching": page})
        assert plain.status == (200 if show else 204)


async def test_metrics_export_the_reports_with_bounded_labels_and_health_says_who_stalled(
        aiohttp_client: AiohttpClient) -> None:
    client, clock, audience, playback = await client_for(aiohttp_client)
    reports = [
        report(startup_ms=800, watched_ms=9_000, stalls=1, stalled_ms=1_000, latency_ms=6_500, variant=1,
               switches=1, frames=270, dropped_frames=3, media_recovered=1, bucket_segments=3, bucket_ms=600,
               bucket_bytes=150_000),
        report(p2p=False, watched_ms=10_000, latency_ms=7_500, variant=200, network_fatal=2,
               bucket_segments=2, bucket_ms=400, bucket_bytes=100_000),
        report(watched_ms=10_000, peer_segments=2, peer_ms=2_000, peer_bytes=200_000, bucket_segments=1,
               bucket_ms=200, bucket_bytes=100_000, uploaded_bytes=50_000, verified=2, rejected=1, banned=1),
    ]
    pages = [new_id() for _ in reports]
    for _ in range(2):  # each page's first beat, and an interval later its report
        for i, (page, text) in enumerate(zip(pages, reports, strict=True)):
            response = await client.post("/live/watching", headers={
                "Hb-Watching": page, "Hb-Report": text, "CF-Connecting-IP": f"192.0.2.{i}"})
            assert response.status == 200, await response.text()
        clock.t += INTERVAL
    got = parsed(await (await client.get("/metrics")).text())
    p = "hls_broadcaster_playback"
    assert got[(f"{p}_reports_total", ())] == 3
    assert got[(f"{p}_watched_seconds_total", (("variant", "1"),))] == 9
    assert got[(f"{p}_watched_seconds_total", (("variant", "other"),))] == 10  # 200: not a label of its own
    assert got[(f"{p}_watched_seconds_total", (("variant", "unknown"),))] == 10
    assert got[(f"{p}_stalled_seconds_total", (("variant", "1"),))] == 1
    assert got[(f"{p}_stalls_total", (("variant", "1"),))] == 1
    assert got[(f"{p}_latency_seconds_count", ())] == 2 and got[(f"{p}_latency_seconds_sum", ())] == 14
    assert got[(f"{p}_latency_seconds_bucket", (("le", "7.0"),))] == 1
    assert got[(f"{p}_startup_seconds_count", ())] == 1 and got[(f"{p}_startup_seconds_sum", ())] == 0.8
    assert got[(f"{p}_errors_total", (("kind", "media"), ("outcome", "recovered")))] == 1
    assert got[(f"{p}_errors_total", (("kind", "network"), ("outcome", "fatal")))] == 2
    assert got[(f"{p}_segments_total", (("source", "bucket"),))] == 6
    assert got[(f"{p}_segment_bytes_total", (("source", "peer"),))] == 200_000
    assert got[(f"{p}_segment_download_seconds_count", (("source", "bucket"),))] == 3
    assert got[(f"{p}_segment_download_seconds_sum", (("source", "peer"),))] == 1.0  # 2 s over 2 segments
    assert got[(f"{p}_segment_download_time_seconds_total", (("source", "peer"),))] == 2
    assert got[(f"{p}_peer_share_ratio_count", ())] == 3
    assert got[(f"{p}_peer_share_ratio_sum", ())] == pytest.approx(2 / 3)
    assert got[(f"{p}_p2p_segments_total", (("result", "rejected"),))] == 1
    assert got[(f"{p}_p2p_peers_banned_total", ())] == 1
    assert got[(f"{p}_frames_total", ())] == 270 and got[(f"{p}_dropped_frames_total", ())] == 3
    assert got[("hls_broadcaster_viewers_stalled", ())] == 1
    # What the alerts read: the addresses that reported each problem (one each here, of three).
    assert {problem: got[(f"{p}_problem_addresses", (("problem", problem),))]
            for problem in ("stalls", "rejections", "slow_downloads")} == {"stalls": 1, "rejections": 1,
                                                                           "slow_downloads": 0}
    assert got[(f"{p}_reports_refused_total", (("reason", "out_of_bounds"),))] == 0
    labels = {dict(key[1]).get("variant") for key in got if "variant" in dict(key[1])}
    assert labels == {"1", "other", "unknown"}


@pytest.mark.integration
async def test_a_hostile_client_moves_the_real_services_figures_no_further_than_its_pages_could(
        tmp_path: Path, moto_url: str) -> None:
    """The real service: greedy and careful pages, made-up pages, 100 /64s of one /48."""
    env = moto_env(moto_url, tmp_path, TRUST_CF_CONNECTING_IP="true", VIEWER_TIMEOUT="3")
    async with ServiceProcess(env, tmp_path / "run") as service, aiohttp.ClientSession() as http:
        async def beat(page: str, address: str, text: str | None = None) -> bool:
            """A beat (with a report) from `address`: report taken?"""
            headers = {"Hb-Watching": page, "CF-Connecting-IP": address}
            if text is not None:
                headers["Hb-Report"] = text
            async with http.post(f"{service.url}/live/watching", headers=headers) as response:
                body = await response.json() if response.status == 200 else {}
            return response.status == 200 and "now" in body and "taken" not in body

        before = await scraped(http, service.url)
        greedy, careful = [new_id() for _ in range(10)], [new_id() for _ in range(10)]
        taken: list[int] = []
        started = time.monotonic()
        until = started + 6

        async def greedy_page(page: str) -> None:
            while time.monotonic() < until:
                await beat(page, "198.51.100.7", GREEDY)
                await asyncio.sleep(0.1)

        async def careful_page(page: str) -> None:
            # Counted from its first beat's arrival, before its answer; its first report may hold 10 s more.
            await beat(page, "198.51.100.7")
            last = time.monotonic() - 10
            while time.monotonic() < until:
                s = time.monotonic() - last
                text = report(startup_ms=600_000, stalls=min(255, int(s)), stalled_ms=int(1000 * s),
                              rejected=min(65_535, int(4 * s)), network_fatal=min(255, int(2 * s)))
                if await beat(page, "198.51.100.7", text):
                    last = time.monotonic()
                    taken.append(1)
                await asyncio.sleep(0.25)

        heard = 0

        async def made_up() -> None:
            nonlocal heard
            while time.monotonic() < until:
                page = new_id()
                await beat(page, "203.0.113.9", report())
                await asyncio.sleep(0.25)
                for _ in range(20):  # until its report is taken (half a beat interval after its first)
                    if await beat(page, "203.0.113.9", report(startup_ms=600_000)):
                        heard += 1
                        break
                    await asyncio.sleep(0.1)
                await beat(f"{page} leave", "203.0.113.9")

        await asyncio.gather(*map(greedy_page, greedy), *map(careful_page, careful), made_up())
        seconds = time.monotonic() - started
        after = await scraped(http, service.url)
        gauge = "hls_broadcaster_playback_problem_addresses"
        problems = {problem: after.get((gauge, (("problem", problem),)), -1)
                    for problem in ("stalls", "rejections", "slow_downloads")}
        # 100 /64s of one /48: 20 counted at once, and 20 more as they expire (3 s after their beat).
        lock = asyncio.Semaphore(8)
        first = time.monotonic()

        async def neighbour(n: int) -> int:
            async with lock:
                headers = {"Hb-Watching": new_id(), "CF-Connecting-IP": f"2001:db8:5:{n:x}::1"}
                async with http.post(f"{service.url}/live/watching", headers=headers) as response:
                    return int(response.status in (200, 204))

        counted_ipv6 = sum(await asyncio.gather(*(neighbour(n) for n in range(100) for _ in range(20))))
        most_ipv6 = 20 * (1 + int((time.monotonic() - first) / 3))
        assert await service.stop() == 0 and service.problems() == [], service.problems()

    def added(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((f"hls_broadcaster_playback_{name}", labels), 0) - \
            before.get((f"hls_broadcaster_playback_{name}", labels), 0)

    stalls = sum(v for (name, _), v in after.items() if name == "hls_broadcaster_playback_stalls_total")
    bound = 20 * (seconds + 10) * 2  # 2 stalls a second
    rejected = added("p2p_segments_total", (("result", "rejected"),))
    out_of_bounds = added("reports_refused_total", (("reason", "out_of_bounds"),))
    print(f"{seconds:.1f} s: {stalls:.0f} stalls (at most {bound:.0f}), {rejected:.0f} rejected, "
          f"{added('reports_total'):.0f} reports taken, {out_of_bounds:.0f} refused out of bounds, "
          f"{added('startup_seconds_count'):.0f} start-ups ({heard} made-up pages heard), "
          f"problem addresses {problems}, {counted_ipv6} pages counted from one /48 (at most {most_ipv6})")
    assert stalls <= bound, (stalls, bound)
    assert added("p2p_segments_total", (("result", "rejected"),)) <= 2 * bound  # 4 a second
    assert added("errors_total", (("kind", "network"), ("outcome", "fatal"))) <= 2 * bound  # 4 a second
    assert added("reports_refused_total", (("reason", "out_of_bounds"),)) >= len(greedy)
    assert len(taken) >= len(careful) and stalls >= 10 * len(careful), (len(taken), stalls)  # heard
    assert heard >= 2 and added("startup_seconds_count") <= 2, heard  # one per address
    assert problems == {"stalls": 1, "rejections": 1, "slow_downloads": 0}, problems
    assert 20 <= counted_ipv6 <= most_ipv6, (counted_ipv6, most_ipv6)


def test_health_says_how_many_viewers_stalled_in_the_last_five_minutes() -> None:
    world = World(Path("/nonexistent"))
    clock, audience, playback = counted()
    pages = [new_id(), new_id()]
    for _ in range(2):
        send(audience, playback, pages[0], "192.0.2.1", report(stalls=2, stalled_ms=3000))
        send(audience, playback, pages[1], "192.0.2.2", report(watched_ms=1000))
        clock.t += INTERVAL
    health = HealthReport(world.pub.facts, world.uploader, readings=Readings(viewers=lambda: {
        "watching": audience.watching, "p2p": audience.p2p, "stalled_5min": audience.stalled_recently}))
    assert health.assess().body["viewers"] == {"watching": 2, "p2p": 0, "stalled_5min": 1}


async def test_config_asks_for_reports(aiohttp_client: AiohttpClient) -> None:
    client, *_ = await client_for(aiohttp_client)
    config = await (await client.get("/config.json")).json()
    assert config["viewers"] == {"beat": 10.0, "show": True, "report": 1}


def test_the_page_writes_the_fields_the_service_reads() -> None:
    """viewer/playback.js's WIDTHS and WITHOUT_P2P are broadcaster/status/playback.py's FIELDS."""
    assert VIEWER is not None
    source = (Path(__file__).resolve().parent.parent / "viewer" / "src" / "playback.js").read_text()
    found = re.search(r"const WIDTHS = \[([^\]]*)\];", source)
    assert found is not None
    widths = [int(n) for n in re.findall(r"\d+", re.sub(r"/\*.*?\*/", "", found.group(1)))]
    assert widths == [struct.calcsize(width) for _, width in FIELDS]
    assert f"const WITHOUT_P2P = {pb.WITHOUT_P2P};" in source and f"const VERSION = {pb.VERSION};" in source
