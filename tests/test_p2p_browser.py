"""Viewer-to-viewer segments in a real browser: viewers of the live demo stream share segments over WebRTC
(fewer bucket GETs, counted per viewer by a proxy); without a tracker or with P2P off the page plays from
the bucket; hostile peers get no byte played, no honest peer banned, no extra GET; a damaged segment
from the bucket stops the video only a moment."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio

from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.browser import (ALTER_P2P_UPLOADS, ASK_AT_RANDOM, HANDED, HOSTILE_MODES, PLAYERS,
                                   WEBRTC_ARGS, WITHHOLDING, hostile_peer, module_chromium, needs_chromium,
                                   open_viewer, show_video, stat_rows, until_page, watch)
from tests.support.counting_proxy import CountingProxy, closed_port, sequence
from tests.support.prometheus import PromAPI, prometheus
from tests.support.s3 import bucket_of_its_own
from tests.support.scrape import scraped, total
from tests.support.p2p_demo import Demo, demo_with_tracker, running_demo
from tests.support.page_open import Agents, Opened, open_page
from tests.support.stun import stun_server
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
P2P_FILES = ("p2p.min.js",)  # viewer/src/p2p.js with P2P Media Loader, as built (scripts/build-viewer)

# One worker runs the module (scripts/test's --dist loadgroup), on one event loop, with one Chromium.
pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_chromium,
              pytest.mark.xdist_group("p2p_browser"), pytest.mark.asyncio(loop_scope="module")]


browser = module_chromium(WEBRTC_ARGS, "browser")


@pytest_asyncio.fixture(loop_scope="module")
async def seaweed(seaweed_server: SeaweedS3) -> AsyncIterator[SeaweedS3]:
    """conftest's (a bucket of its own on the run's server), on the module's event loop."""
    async with bucket_of_its_own(seaweed_server) as bucket:
        yield bucket


# Every RTCPeerConnection the page makes, with the ICE servers it was given (what WebRTC will ask).
RECORD_ICE_SERVERS = """(() => {
  const Native = window.RTCPeerConnection;
  window.iceServersGiven = [];
  function Recording(config, ...rest) {
    window.iceServersGiven.push(((config && config.iceServers) || []).flatMap((s) => [].concat(s.urls)));
    return new Native(config, ...rest);
  }
  Recording.prototype = Native.prototype;
  window.RTCPeerConnection = Recording;
})();"""


@dataclass
class Viewer:
    opened: Opened
    agent: str  # its user agent: the proxy counts its GETs by it
    requests: list[str] = field(default_factory=list)

    @property
    def page(self) -> Any:
        return self.opened.page

    @property
    def problems(self) -> list[str]:
        """Its page's errors and its console's, not the browser's own for a failed load."""
        errors = [line.removeprefix("error: ") for line in self.opened.said if line.startswith("error: ")]
        return [e for e in errors if not browser_network_error(e)] + self.opened.thrown


# Chromium's user agent naming a viewer (what the proxy counts GETs by), read once per browser.
_AGENTS: dict[int, Agents] = {}  # id(browser) -> its Agents


@contextlib.asynccontextmanager
async def viewers_of(browser: Any, url: str, scripts: list[list[str]]) -> AsyncIterator[list[Viewer]]:
    """A viewer per entry of `scripts` (its init scripts), each in a context of its own."""
    viewers: list[Viewer] = []
    try:
        for i, extra in enumerate(scripts):
            agent = await _AGENTS.setdefault(id(browser), Agents(browser)).tagged(f"hb-viewer/{i}")
            opened = await open_page(browser, None, scripts=[RECORD_ICE_SERVERS, *extra], user_agent=agent)
            viewer = Viewer(opened, agent)
            viewer.page.on("request", lambda r, v=viewer: v.requests.append(r.url))
            viewers.append(viewer)
        await asyncio.gather(*(open_viewer(v.page, url) for v in viewers))
        yield viewers
    finally:
        for v in viewers:
            await v.opened.context.close()


def browser_network_error(text: str) -> bool:
    """The browser's own console lines for a failed load or a refused WebSocket, not the page's errors."""
    return "Failed to load resource" in text or (text.startswith("WebSocket connection to ") and " failed" in text)


def size(text: str) -> tuple[float, float]:
    """'1.6 MB · 46 %' -> (1.6e6, 1e5): the bytes shown, and what its rounding may hide (one shown digit)."""
    m = re.match(r"([\d.]+) (B|kB|MB|GB)\b", text)
    assert m is not None, text
    unit = 1000 ** ("B", "kB", "MB", "GB").index(m.group(2))
    return float(m.group(1)) * unit, (0.11 if m.group(2) != "B" else 0) * unit + 1


def p2p_requests(viewer: Viewer) -> list[str]:
    return [u for u in viewer.requests if urlsplit(u).path.lstrip("/") in P2P_FILES]


async def until_pages(viewers: list[Viewer], condition: str, timeout: float = 20) -> None:
    for v in viewers:
        await until_page(v.page, condition, timeout=timeout)


def played_segments(proxy: CountingProxy, since: collections.Counter[str]) -> list[str]:
    """The segments first fetched since `since`, in order, without the first and the last."""
    return sorted(collections.Counter(proxy.gets) - since, key=sequence)[1:-1]


# The fewest segments a window judged by played_segments must hold.
WINDOW_SEGMENTS = 3


async def fetched_in_window(proxy: CountingProxy, since: collections.Counter[str]) -> None:
    """Until the bucket has served WINDOW_SEGMENTS segments (played_segments) since `since`."""
    await until(lambda: len(played_segments(proxy, since)) >= WINDOW_SEGMENTS,
                f"{WINDOW_SEGMENTS} segments fetched from the bucket in the window", 60)


# -- (a) three viewers share ---------------------------------------------------------------------------


# What viewer/src/p2p-trust.js decides (bans, announced sizes, when to stop asking peers), in a page.
TRUST_MODULE = ROOT / "viewer" / "src" / "p2p-trust.js"
TRUST_DECISIONS = """async () => {
  const { Checks, GetBudget, SegmentHashes } = await import('./p2p-trust.js');
  const hashes = new SegmentHashes();
  const hash = 'A'.repeat(43);
  hashes.learn('p', [{ url: 's1', duration: 2, tagList: [['EXT-HB-SHA256', hash]] },
                     { url: 's2', duration: 2, tagList: [] }], 800000);
  const checks = new Checks(hashes);
  const out = {};
  out.sizes = [checks.sizeAllowed('s1', undefined, 100000), checks.sizeAllowed('s1', undefined, 5000000),
               checks.sizeAllowed('s2', undefined, 1000)];
  const wrong = new ArrayBuffer(1000);
  // All 1000 bytes from peer A: banned. 600 of them from B after another source's 400: not banned.
  checks.started({ downloadSource: 'p2p', peerId: 'A', segment: { url: 's1' } });
  checks.received(1000, 'A');
  out.alone = [await checks.fromPeer('s1', undefined, wrong),
               checks.rejected({ peerId: 'A', segment: { url: 's1' } }).ban];
  checks.started({ downloadSource: 'p2p', peerId: 'B', segment: { url: 's1' } });
  checks.received(600, 'B');
  out.mixed = [await checks.fromPeer('s1', undefined, wrong),
               checks.rejected({ peerId: 'B', segment: { url: 's1' } }).ban];
  out.bucket = [await checks.fromBucket('s1', undefined, wrong), checks.snapshot().httpMismatches];
  // Bytes a peer sends for no attempt going on are nobody's; a peer's attempt that no event ended is given
  // back as dropped when its next one starts (else an honest page counts a banned peer's bytes as kept).
  const fresh = new Checks(hashes);
  const attempt = (url) => ({ downloadSource: 'p2p', peerId: 'C', segment: { url } });
  out.stray = [fresh.received(500, 'C'), fresh.started(attempt('s1')), fresh.received(700, 'C'),
               fresh.started(attempt('s2')), fresh.pending()];
  out.counted = checks.snapshot();  // its own counts: read-only
  out.frozen = Object.isFrozen(out.counted);
  const reasons = [];
  const budget = new GetBudget((why) => reasons.push(why));
  for (let i = 0; i < 40; i += 1) { budget.get(); budget.delivered(); }  // one GET a segment: fine
  out.oneEach = [reasons.length, budget.snapshot().getsPerSegment];
  for (let i = 0; i < 20; i += 1) { budget.get(); budget.get(); budget.delivered(); }  // two: too many
  out.twoEach = [reasons.length, budget.snapshot().getsPerSegment];
  out.gets = [budget.snapshot().httpGets, budget.snapshot().deliveredSegments];
  return out;
}"""


async def test_three_viewers_share_segments_and_all_keep_playing(
        tracker_dir: Path, tmp_path: Path, seaweed: SeaweedS3, browser: Any, recordings: Recordings) -> None:
    # The operator's STUN server (P2P_STUN_SERVERS) replaces the library's, and the browsers ask it.
    async with stun_server() as (stun, stun_seen), \
            demo_with_tracker(tmp_path, seaweed, tracker_dir, recordings=recordings, P2P_STUN_SERVERS=stun) as demo, \
            viewers_of(browser, f"{demo.service.url}/?stats=1", [[], [], []]) as viewers:
        # Peers find each other through the tracker...
        await until_pages(viewers, "() => window.viewerStats.p2p && window.viewerStats.p2p.peers >= 1")
        # ...and from then on all three play on (16 s of video each) while the bucket is counted.
        before = collections.Counter(demo.proxy.gets)
        stats = await asyncio.gather(*(watch(v.page, 16, timeout_ms=40_000) for v in viewers))
        after = collections.Counter(demo.proxy.gets)
        ARTIFACTS.mkdir(exist_ok=True)
        await show_video(viewers[0].page)
        await viewers[0].page.screenshot(path=str(ARTIFACTS / "viewer-p2p-stats.png"), full_page=True)
        panel = await viewers[0].page.inner_text("#stats")
        rows = await stat_rows(viewers[0].page)
        sharing = await viewers[0].page.inner_text("#sharing")
        ice_servers = [await v.page.evaluate("() => window.iceServersGiven") for v in viewers]
        problems = [list(v.problems) for v in viewers]  # before TRUST_DECISIONS, which logs a mismatch
        await viewers[0].page.route("**/p2p-trust.js", lambda route: route.fulfill(
            path=str(TRUST_MODULE), content_type="text/javascript"))
        decisions = await viewers[0].page.evaluate(TRUST_DECISIONS)

    names = played_segments(demo.proxy, before)
    window = collections.Counter({name: (after - before)[name] for name in names})
    segments = len(window)
    per_viewer = sum(window.values()) / (3 * segments) if segments else float("nan")
    from_peers = sum(s["p2p"]["bytesFromPeers"] for s in stats)
    from_http = sum(s["p2p"]["bytesFromHttp"] for s in stats)
    figures = {
        "segments": segments, "gets": sum(window.values()), "gets_per_segment_per_viewer": round(per_viewer, 3),
        "share_from_peers": round(from_peers / (from_peers + from_http), 3) if from_peers + from_http else 0,
        "viewers": [{k: s["p2p"][k] for k in ("bytesFromPeers", "bytesFromHttp", "bytesToPeers", "peers",
                                              "verifiedSegments", "verifiedBucketSegments", "verifyMs")}
                    | {"latency": s["latency"], "errors": s["errors"]} for s in stats],
    }
    (ARTIFACTS / "p2p-figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print("P2P figures:", json.dumps(figures))
    for v, s, seen in zip(viewers, stats, problems, strict=True):
        assert s["errors"] == [] and s["state"] == "playing", s
        assert seen == [], seen
        assert sorted(set(p2p_requests(v))) and s["p2p"]["swarm"].startswith("hls-broadcaster-")
    assert segments >= 3, window
    # Peers delivered at least two whole segments the bucket never sent (how many: bench.p2p).
    assert 3 * segments - sum(window.values()) >= 2, figures
    assert from_peers > 0, figures
    # Every segment, from a peer or the bucket, was checked against the playlist's hash; none failed.
    assert sum(s["p2p"]["verifiedSegments"] for s in stats) > 0, stats
    assert all(s["p2p"]["verifiedBucketSegments"] > 0 for s in stats), stats
    assert all(s["p2p"]["httpMismatches"] == 0 for s in stats), stats
    assert all(s["p2p"]["rejectedSegments"] == 0 and s["p2p"]["unhashedSegments"] == 0 for s in stats), stats
    assert all(s["p2p"]["peersOff"] is None for s in stats), stats
    # The panel: other viewers' and the bucket's bytes add up to the video downloaded; the page shares.
    assert not re.search(r"\bR2\b|\bHTTP\b|\bpeers?\b", panel), panel
    assert "From other viewers" in panel and "Other viewers connected" in panel, panel
    total, bucket, peers = (size(rows[name]) for name in ("Video downloaded", "From the storage bucket",
                                                         "From other viewers"))
    assert peers[0] > 0 and abs(bucket[0] + peers[0] - total[0]) <= total[1], rows
    assert re.fullmatch(r"Sharing with [12] other viewers?(, \d+ % of the video from them)?", sharing), sharing
    assert all(given and all(servers == [stun] for servers in given) for given in ice_servers), ice_servers
    assert stun_seen.requests > 0
    counted = decisions.pop("counted")
    assert counted.pop("verifyMs") >= 0, counted
    # Two sizes refused (too large; no hash known), three segments of 1000 bytes hashed, none matching.
    assert counted == {"verifiedSegments": 0, "verifiedBucketSegments": 0, "verifiedBytes": 3000,
                       "httpMismatches": 1, "oversizedAnnouncements": 2}, counted
    assert decisions == {"sizes": [True, False, False], "alone": [False, True], "mixed": [False, False],
                         "bucket": [False, 1], "stray": [False, 0, True, 700, 0], "frozen": True,
                         "oneEach": [0, 1], "twoEach": [1, 2],
                         "gets": [80, 60]}, decisions


# -- (b) tracker unreachable ---------------------------------------------------------------------------


async def steered_to_vm(service_url: str) -> bool:
    """Whether the service has steered players to the VM's pathway since it started (its switches metric)."""
    async with aiohttp.ClientSession() as http:
        switches = await scraped(http, service_url)
    return total(switches, "hls_broadcaster_pathway_switches_total", pathway="vm") > 0


async def test_an_unreachable_tracker_plays_as_without_p2p(tmp_path: Path, seaweed: SeaweedS3,
                                                           browser: Any, recordings: Recordings) -> None:
    async with running_demo(tmp_path, seaweed, f"ws://127.0.0.1:{closed_port()}", recordings=recordings) as demo:
        async with viewers_of(browser, f"{demo.service.url}/", [[]]) as (viewer,):
            stats = await watch(viewer.page, 6)
        steered = await steered_to_vm(demo.service.url)
        # Without WebCrypto (plain http, not localhost) P2P turns itself off, says why, plays the bucket.
        async with viewers_of(browser, f"{demo.service.url}/?stats=1", [[NO_WEBCRYPTO]]) as (plain,):
            without = await watch(plain.page, 2)
            panel = await plain.page.inner_text("#stats")
    # From the bucket, or the VM where the service steered players meanwhile.
    assert stats["errors"] == [] and stats["state"] == "playing" and (stats["originSegments"] == 0 or steered), stats
    assert stats["segments"] >= 3 and stats["p2p"]["bytesFromPeers"] == 0 and stats["p2p"]["peers"] == 0
    assert viewer.problems == [], viewer.problems
    assert p2p_requests(viewer)  # P2P was on: the page loaded it, and played on without a tracker
    assert without["errors"] == [] and without["state"] == "playing", without
    assert "WebCrypto" in without["p2p"]["off"] and "bytesFromPeers" not in without["p2p"], without["p2p"]
    said = plain.opened.said
    assert any(w.startswith("warning: P2P off:") and "WebCrypto" in w for w in said), said
    assert "off: no WebCrypto" in panel, panel


# What an http page on another host than localhost has: no crypto.subtle (WebCrypto needs a secure context).
NO_WEBCRYPTO = "Object.defineProperty(Crypto.prototype, 'subtle', { get: () => undefined });"


# -- (c) P2P off ---------------------------------------------------------------------------------------


async def test_without_p2p_the_page_requests_no_p2p_file(tmp_path: Path, seaweed: SeaweedS3,
                                                         browser: Any, recordings: Recordings) -> None:
    async with running_demo(tmp_path, seaweed, "", recordings=recordings) as demo, \
            viewers_of(browser, f"{demo.service.url}/?stats=1", [[]]) as (viewer,):
        stats = await watch(viewer.page, 3)
        config = await viewer.page.evaluate("() => fetch('config.json').then((r) => r.json())")
        rows = await viewer.page.locator("#s-p2p-peers, #s-from-peers, #sharing").evaluate_all(
            "(found) => found.filter((e) => e.checkVisibility()).length")
    assert "p2p" not in config and "p2p" not in stats and rows == 0, (config, stats)
    assert stats["errors"] == [] and viewer.problems == []
    loaded = [u for u in viewer.requests if "p2p" in urlsplit(u).path.lower()]
    assert loaded == [], loaded


# -- (d) a segment the bucket serves damaged -----------------------------------------------------------

PLAYING_NOW = "() => window.viewerStats.state === 'playing' && !document.querySelector('video').paused"


async def test_a_damaged_segment_from_the_bucket_stops_the_video_only_for_a_moment(
        tmp_path: Path, seaweed: SeaweedS3, browser: Any, recordings: Recordings) -> None:
    """A segment damaged in the bucket: the page counts it, recovers and plays within seconds."""
    async with running_demo(tmp_path, seaweed, "", recordings=recordings) as demo, \
            viewers_of(browser, f"{demo.service.url}/?stats=1", [[]]) as (viewer,):
        page = viewer.page
        await watch(page, 2)
        bad = max(sequence(path) for path in demo.proxy.gets) + 2  # one the player has not asked for yet
        demo.proxy.corrupt = lambda path: sequence(path) == bad
        await until_page(page, "() => window.viewerStats.mediaErrors >= 1", timeout=40)
        # Within seconds: playing again, and 4 s of video played since.
        await until_page(page, PLAYING_NOW, timeout=15)
        stats = await watch(page, 4, timeout_ms=15_000)
        # Waited for, not one instant: the new player may meet the damaged object once more.
        await until_page(page, PLAYING_NOW, timeout=15)
        panel = await page.inner_text("#stats")
    assert demo.proxy.corrupted, "the damaged segment was never asked for"
    assert stats["mediaErrors"] >= 1 and stats["recoveries"] >= 1, stats
    assert any(e.startswith("media/") for e in stats["errors"]), stats["errors"]
    assert re.search(r"Media errors\s+[1-9]", panel), panel


# -- (e) a peer that alters what it shares -------------------------------------------------------------

# The honest viewers upload nothing: every segment they take from a peer is the hostile one's.
NO_UPLOADS = ("Object.defineProperty(navigator, 'connection', "
              "{ value: { type: 'cellular' }, configurable: true });")


# Through P2P Media Loader's own fields: each tracker client announces now, not at its next interval.
ANNOUNCE_AGAIN = """() => {
  for (const hls of window.players) {
    const core = hls.p2pEngine && hls.p2pEngine.core;
    const streams = core ? [core.mainStreamLoader, core.secondaryStreamLoader] : [];
    for (const stream of streams.filter(Boolean)) {
      for (const item of stream.p2pLoaders.loaders.values()) item.loader.trackerClient.client.update();
    }
  }
}"""


async def test_a_peer_sending_altered_bytes_is_refused_and_honest_viewers_play_the_buckets_bytes(
        tracker_dir: Path, tmp_path: Path, seaweed: SeaweedS3, browser: Any, recordings: Recordings) -> None:
    """Rejections reported: /metrics counts them, Prometheus fires HlsBroadcasterP2PSegmentsRejected."""
    honest = [PLAYERS, HANDED, NO_UPLOADS]
    async with demo_with_tracker(tmp_path, seaweed, tracker_dir, recordings=recordings, VIEWER_TIMEOUT="3") as demo, \
            aiohttp.ClientSession() as http, \
            prometheus(tmp_path / "prometheus", demo.service.url.removeprefix("http://")) as prom:
        api = PromAPI(http, prom)
        rejected = 'hls_broadcaster_playback_p2p_segments_total{job="hls-broadcaster", result="rejected"}'
        await api.until("the first scrape: no rejection yet", lambda: api.query(rejected))
        assert await api.value(rejected) == 0
        async with viewers_of(browser, f"{demo.service.url}/?stats=1",
                              [[ALTER_P2P_UPLOADS], honest, honest]) as viewers:
            await refused_and_played(demo, viewers)
            reported = await page_reports(viewers[1:])
            # The rejections the honest pages saw, on /metrics once they reported them, and the alert.
            seen: list[Any] = []

            async def counted() -> dict[str, float] | None:
                got = await playback_metrics(http, demo.service.url)
                pages = [await v.page.evaluate(PAGE_REPORTS) for v in viewers[1:]]
                seen[:] = [reported, got, pages]
                return got if got["rejected"] >= reported["rejected"] else None

            got = await until(counted, "the pages' rejections on /metrics", 20, every=0.2,
                              detail=lambda: seen)
            firing = await api.until("HlsBroadcasterP2PSegmentsRejected firing", lambda: alert_firing(
                api, "HlsBroadcasterP2PSegmentsRejected"))
    assert reported["rejected"] >= 2 and got["rejected"] >= reported["rejected"], (reported, got)
    assert got["banned"] >= 2 and got["verified"] == 0, got  # each honest page banned the one hostile peer
    assert firing["labels"]["severity"] == "warning", firing


# What a page's reports did, for a failure's detail: sent, not taken (counted again later), its P2P counts.
PAGE_REPORTS = """() => ({reports: window.viewerStats.playback.reports, notTaken: window.viewerStats.playback.notTaken,
  rejected: window.viewerStats.p2p.rejectedSegments, banned: window.viewerStats.p2p.bannedPeers})"""


async def page_reports(viewers: list[Viewer]) -> dict[str, int]:
    """What the pages saw, as their playback reports carry it (viewerStats.p2p)."""
    p2p = [await v.page.evaluate("() => window.viewerStats.p2p") for v in viewers]
    return {"rejected": sum(s["rejectedSegments"] for s in p2p), "banned": sum(s["bannedPeers"] for s in p2p)}


async def playback_metrics(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    got = await scraped(http, url)
    names = {name for name, _ in got}  # a count of 0 must be a sample's, not a renamed family's absence
    assert {f"hls_broadcaster_playback_p2p_{n}_total" for n in ("segments", "peers_banned")} <= names, names
    segments = {result: total(got, "hls_broadcaster_playback_p2p_segments_total", result=result)
                for result in ("rejected", "verified")}
    return segments | {"banned": total(got, "hls_broadcaster_playback_p2p_peers_banned_total")}


async def alert_firing(api: PromAPI, name: str) -> dict[str, Any] | None:
    alerts = (await api.get("alerts"))["alerts"]
    return next((a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"), None)


async def refused_and_played(demo: Demo, viewers: list[Viewer]) -> None:
    """The honest viewers ban the hostile one, refuse it again, and play the bucket's bytes on."""
    pages = [v.page for v in viewers]
    # Each honest viewer takes a segment from the hostile one, finds it altered, and bans it...
    await until_pages(viewers[1:], "() => window.viewerStats.p2p.bannedPeers >= 1", timeout=40)
    # Introduced again by the tracker, the banned peer's connection is closed at once.
    await asyncio.gather(*(p.evaluate(ANNOUNCE_AGAIN) for p in pages[1:]))
    await until_pages(viewers[1:], "() => window.viewerStats.p2p.refusedConnections >= 1")
    # ...and plays on, from the bucket (6 s of video more each).
    stats = await asyncio.gather(*(watch(p, 6) for p in pages[1:]))
    handed = [await p.evaluate("() => window.handed") for p in pages[1:]]
    errors = [await p.evaluate("() => document.querySelector('video').error") for p in pages[1:]]
    panel = await pages[1].inner_text("#stats")
    problems = [e for v in viewers[1:] for e in v.problems]
    banned = [s["p2p"]["bannedPeerIds"] for s in stats]
    print("hostile peer:", json.dumps([{k: s["p2p"][k] for k in (
        "rejectedSegments", "rejectedBytes", "bannedPeers", "refusedConnections", "verifiedSegments",
        "bytesFromPeers", "bytesFromHttp", "peers")} for s in stats]))
    for s, got, error in zip(stats, handed, errors, strict=True):
        assert s["errors"] == [] and s["state"] == "playing" and error is None, s
        assert s["p2p"]["rejectedSegments"] >= 1 and s["p2p"]["rejectedBytes"] > 0, s["p2p"]
        assert s["p2p"]["verifiedSegments"] == 0 and s["p2p"]["peerShare"] == 0, s["p2p"]  # nothing kept
        assert len(got) >= 4 and None not in got, got
        assert s["p2p"]["unhashedSegments"] == 0, s["p2p"]  # delta updates keep the skipped ones' hashes
        assert set(got) <= demo.proxy.served, (got, demo.proxy.served)  # every one handed: the bucket's bytes
    assert banned[0] == banned[1] and len(banned[0]) == 1, banned  # the one peer that altered bytes
    assert all(s["p2p"]["peers"] <= 1 for s in stats), stats  # connected to the other honest one at most
    assert "Bad segments from other viewers" in panel and "1 viewer blocked" in panel, panel
    assert problems == [], problems


# -- (f) peers that withhold, lie about sizes, send half -----------------------------------------------

FIGURES = ("verifiedSegments", "verifiedBucketSegments", "rejectedSegments", "bannedPeers", "droppedPeers",
           "discardedBytes", "unblamedRejections", "oversizedAnnouncements", "httpGets", "getsPerSegment",
           "bytesFromPeers", "bytesFromHttp")


async def test_peers_that_withhold_their_end_announce_a_larger_size_or_send_half_change_nothing_played(
        tracker_dir: Path, tmp_path: Path, seaweed: SeaweedS3, browser: Any, recordings: Recordings) -> None:
    """Three honest viewers and three HOSTILE_MODES ones: every fragment the honest get hashes as the
    bucket's, no honest peer is banned, they play on, at one bucket GET per segment at most."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    honest = [PLAYERS, HANDED, ASK_AT_RANDOM]
    scripts = [honest, honest, honest, *([PLAYERS, hostile_peer(mode)] for mode in HOSTILE_MODES)]
    async with demo_with_tracker(tmp_path, seaweed, tracker_dir, recordings=recordings) as demo, \
            viewers_of(browser, f"{demo.service.url}/?stats=1", scripts) as viewers:
        good, bad = viewers[:3], viewers[3:]
        # Until every hostile viewer has answered honest ones its way twice at least.
        await until_pages(good, "() => window.ownPeerIds().length > 0")
        first_ids = [set(await v.page.evaluate("() => window.ownPeerIds()")) for v in good]
        attacked = [until_page(v.page, "ids => window.hostileLog.filter((u) => ids.includes(u.to)).length >= 2",
                               sorted(set().union(*first_ids)), timeout=45) for v in bad]
        for waited in await asyncio.gather(*attacked, return_exceptions=True):
            if isinstance(waited, BaseException) and not isinstance(waited, PlaywrightTimeout):
                raise waited
        connected = [await v.page.evaluate("() => window.connectedPeerIds()") for v in viewers]
        before = collections.Counter(demo.proxy.gets)
        by_agent = collections.Counter(demo.proxy.gets_by_agent)
        stats = await asyncio.gather(*(watch(v.page, 10, timeout_ms=40_000) for v in good))
        await fetched_in_window(demo.proxy, before)
        gets = collections.Counter(demo.proxy.gets_by_agent) - by_agent
        names = played_segments(demo.proxy, before)
        handed = [await v.page.evaluate("() => window.handed") for v in good]
        ids = [set(await v.page.evaluate("() => window.ownPeerIds()")) for v in viewers]
        attacks = [await v.page.evaluate("() => window.hostileLog") for v in bad]
        hostile = [await v.page.evaluate("() => window.viewerStats.p2p") for v in bad]
        errors = [await v.page.evaluate("() => document.querySelector('video').error") for v in good]
        at_random = [await v.page.evaluate("() => window.askingAtRandom") for v in good]
        # A lie logged after `watch` ended reaches its viewer's count a moment later: waited for.
        lies = {u["to"] for u in attacks[HOSTILE_MODES.index("larger")] if u["how"] == "x4 + 1 MB"}
        oversized = []
        for v, own in zip(good, ids[:3], strict=True):
            if own & lies:
                with contextlib.suppress(PlaywrightTimeout):  # a count that stays 0 fails below
                    await until_page(v.page, "() => window.viewerStats.p2p.oversizedAnnouncements >= 1",
                                     timeout=10)
            oversized.append(await v.page.evaluate("() => window.viewerStats.p2p.oversizedAnnouncements"))

    honest_ids = set().union(*ids[:3])
    hostile_ids = set().union(*ids[3:])
    on_honest = [[u for u in log if u["to"] in honest_ids] for log in attacks]
    print("hostile peers:", json.dumps({
        "attacks on honest viewers": on_honest, "segments": len(names),
        "viewers": [{k: s["p2p"].get(k) for k in FIGURES} for s in stats],
        "hostile viewers": [{"mode": mode, "answered": len(log), "to": sorted({u["to"] for u in log}),
                             **{k: p.get(k) for k in ("peers", "verifiedSegments", "httpGets")}}
                            for mode, log, p in zip(HOSTILE_MODES, attacks, hostile, strict=True)],
        "ids": [sorted(own) for own in ids], "connected when the attacks were waited for": connected}))
    assert len(honest_ids) == 3 and len(hostile_ids) == 3 and not honest_ids & hostile_ids, ids
    assert len(names) >= WINDOW_SEGMENTS, names
    assert at_random == [True] * 3, at_random  # ASK_AT_RANDOM took
    for v, s, got, error in zip(good, stats, handed, errors, strict=True):
        # No altered byte reached hls.js: every segment it was handed is one the bucket served.
        assert got and None not in got and set(got) <= demo.proxy.served, got
        # No honest peer banned, nor dropped for unfinished uploads (whoever was is hostile).
        assert set(s["p2p"]["bannedPeerIds"]) <= hostile_ids, (s["p2p"]["bannedPeerIds"], hostile_ids)
        assert set(s["p2p"]["droppedPeerIds"]) <= hostile_ids, (s["p2p"]["droppedPeerIds"], hostile_ids)
        # Playback went on (watch: 10 s more of video), with no decode error.
        assert s["state"] == "playing" and error is None, s
        assert not [e for e in s["errors"] if "element error" in e or "mediaError" in e], s["errors"]
        # No more bucket GETs per segment than a viewer without P2P makes: one.
        mine = {name: gets[(v.agent, name)] for name in names}
        assert sum(mine.values()) <= len(names), mine
        assert s["p2p"]["httpMismatches"] == 0 and s["p2p"]["peersOff"] is None, s["p2p"]
    # The hostile peers did attack: their bytes were dropped, the size liar refused by all it lied to.
    assert all(len(attacked) >= 2 for attacked in on_honest), on_honest
    assert sum(s["p2p"]["discardedBytes"] for s in stats) > 0, stats
    for own, s, count in zip(ids[:3], stats, oversized, strict=True):
        if own & lies:
            assert count >= 1, (count, s["p2p"], lies)  # s: when watch ended; count: after the logs


# -- (g) a peer that never finishes an upload ----------------------------------------------------------

UNFINISHED_BOUND = 4  # viewer/p2p-trust.js: dropped at its 4th unfinished upload with none delivered
# A request or two before the withholder takes over may be answered honestly: each allows one more.
EARLY_CREDIT = 1


async def test_a_peer_that_never_finishes_an_upload_is_dropped_and_costs_no_more_gets_than_no_p2p(
        tracker_dir: Path, tmp_path: Path, seaweed: SeaweedS3, browser: Any, recordings: Recordings) -> None:
    """A WITHHOLDING peer (never finishes an upload) is dropped by each honest viewer after its 4th
    unfinished upload; then one bucket GET per segment at most, and segments from each other again."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    honest = [PLAYERS, HANDED]
    async with demo_with_tracker(tmp_path, seaweed, tracker_dir, recordings=recordings) as demo, \
            viewers_of(browser, f"{demo.service.url}/?stats=1",
                       [honest, honest, honest, [PLAYERS, hostile_peer(WITHHOLDING)]]) as viewers:
        good, bad = viewers[:3], viewers[3]
        await until_pages(good, "() => window.ownPeerIds().length > 0")
        ids = [set(await v.page.evaluate("() => window.ownPeerIds()")) for v in good]
        # Until the withholder has been asked by every honest viewer as often as the bound allows...
        await until_page(bad.page, "(ids) => ids.every((own) => window.hostileLog"
                         f".filter((u) => own.includes(u.to)).length >= {UNFINISHED_BOUND})",
                         [sorted(own) for own in ids], timeout=90)
        # ...and then dropped by each (as soon as the last of those attempts ends).
        with contextlib.suppress(PlaywrightTimeout):
            await until_pages(good, "() => window.viewerStats.p2p.droppedPeers >= 1", timeout=15)
        at_drop = await asyncio.gather(*(v.page.evaluate("() => window.viewerStats.p2p") for v in good))
        log_at_drop = await bad.page.evaluate("() => window.hostileLog")
        before = collections.Counter(demo.proxy.gets)
        by_agent = collections.Counter(demo.proxy.gets_by_agent)
        stats = await asyncio.gather(*(watch(v.page, 12, timeout_ms=40_000) for v in good))
        await fetched_in_window(demo.proxy, before)
        gets = collections.Counter(demo.proxy.gets_by_agent) - by_agent
        names = played_segments(demo.proxy, before)
        handed = [await v.page.evaluate("() => window.handed") for v in good]
        log = await bad.page.evaluate("() => window.hostileLog")
        hostile_ids = set(await bad.page.evaluate("() => window.ownPeerIds()"))
        panel = await good[0].page.inner_text("#stats")

    asked = [sum(1 for u in log if u["to"] in own) for own in ids]
    asked_at_drop = [sum(1 for u in log_at_drop if u["to"] in own) for own in ids]
    print("a peer that never finishes:", json.dumps({
        "asked per honest viewer": asked_at_drop, "and at the end": asked, "segments": len(names),
        "gets": [sum(gets[(v.agent, name)] for name in names) for v in good],
        "at drop": [{k: p.get(k) for k in ("droppedPeers", "unfinishedAttempts", "verifiedSegments", "discardedBytes")}
                    for p in at_drop],
        "after": [{k: s["p2p"].get(k) for k in ("droppedPeers", "unfinishedAttempts", "verifiedSegments",
                                                "discardedBytes", "httpGets", "bytesFromPeers")} for s in stats]}))
    assert len(names) >= WINDOW_SEGMENTS, names
    for v, s, first, got, n, m in zip(good, stats, at_drop, handed, asked_at_drop, asked, strict=True):
        # Dropped by each honest viewer, after at most the bound, and never asked again since.
        assert first.get("droppedPeers") == 1 and set(first["droppedPeerIds"]) <= hostile_ids, first
        assert n <= UNFINISHED_BOUND + EARLY_CREDIT and m == n, (n, m, log)
        assert s["p2p"]["droppedPeers"] == 1 and s["p2p"]["bannedPeers"] == 0, s["p2p"]
        # No more bucket GETs per segment than without P2P.
        mine = {name: gets[(v.agent, name)] for name in names}
        assert sum(mine.values()) <= len(names), mine
        # Nothing but the bucket's bytes played, and playback went on.
        assert got and None not in got and set(got) <= demo.proxy.served, got
        assert s["state"] == "playing", s
    # And the room shares again: checked segments from honest peers since the drop (not every viewer).
    assert sum(s["p2p"]["verifiedSegments"] for s in stats) > sum(p["verifiedSegments"] for p in at_drop), stats
    assert "1 dropped (never finished sending)" in panel, panel
