"""The viewer page's reports to Owncast's Stream Health (viewer/src/owncast-health.js), at its seams: the
module run by Node with a fake video, playback and fetch, and its reports read by the stand-in built to
Owncast's collector (tests/support/owncast_cmcd.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.owncast_cmcd import MAX_BODY, CmcdCollector
from tests.support.owncast_viewers import OwncastViewers

SRC = Path(__file__).resolve().parents[1] / "viewer" / "src"

# playback.js's changes() order: watched, stalls, stalled ms, switches, frames, dropped, six error counts,
# bucket segments/ms/bytes, peer segments/ms/bytes, P2P's four.
WINDOW = [9000, 2, 700, 1, 270, 0, 1, 0, 1, 0, 0, 1, 2, 100, 50_000, 1, 60, 30_000, 0, 0, 0, 0]

# `answers`: how each POST fares ('ok', '404', 'cors': only no-cors gets through, 'down'), the last repeated.
HARNESS = """
import { changesOf } from %(playback)s;
import * as Health from %(health)s;
const scenario = JSON.parse(process.argv[1]);
const posts = [];
let answer = 0;
const word = () => scenario.answers[Math.min(answer, scenario.answers.length - 1)];
async function post(url, options) {
  posts.push({ url, mode: options.mode, method: options.method || 'GET', headers: options.headers || null,
    body: options.body ? JSON.parse(options.body) : null });
  const w = word();
  if (options.mode === 'no-cors') {
    answer += 1;
    if (w === 'down') throw new TypeError('Failed to fetch');
    return { status: 0, ok: false };
  }
  if (url.endsWith('/playback')) return { status: 0, ok: false };
  if (w === 'cors' || w === 'down') throw new TypeError('Failed to fetch');
  answer += 1;
  return w === '404' ? { status: 404, ok: false } : { status: 200, ok: true };
}
let totals = new Array(22).fill(0);
let stalled = false;
const playback = {
  changes: () => changesOf(() => totals), stalledNow: () => stalled, latencyNow: () => 3100,
  latency: () => 3100, bitrate: () => 1200000, bandwidth: () => 2500000,
};
const video = new EventTarget();
Object.assign(video, { paused: true, ended: false, seeking: false, readyState: 0 });
const until = async (what, ok) => {
  for (let i = 0; i < 400 && !ok(); i += 1) await new Promise((r) => setTimeout(r, 10));
  if (!ok()) throw new Error('timed out: ' + what);
};
const health = Health.create({ owncast: { cmcd: 'https://o.example/api/metrics/cmcd',
  metrics: 'https://o.example/api/metrics/playback', report: 0.2 }, playback, video, post, now: () => 1750000000000 });
const out = {};
video.paused = false;
video.readyState = 4;
video.dispatchEvent(new Event('playing'));
health.start();
await until('the first report', () => posts.length >= 1);
out.first = posts[0];
totals = totals.map((v, i) => v + scenario.window[i]);
stalled = true;
await until('a report of the window', () => posts.some((p) => p.url.endsWith('/playback')
  || (p.body && p.body.some((r) => r.e === 't' || r.bs))));
stalled = false;
out.snapshot = health.snapshot();
if (scenario.flap) {
  const before = posts.length;
  health.stop(); // watching.js stops the cadence on pause
  for (const [name, paused] of [['pause', true], ['playing', false], ['pause', true]]) {
    video.paused = paused;
    video.dispatchEvent(new Event(name));
  }
  await until('the state after the flapping', () => posts.length > before);
  await new Promise((r) => setTimeout(r, 1500)); // a second POST would have gone by now
  out.flapped = posts.slice(before);
}
await until('the window delivered', () => (health.snapshot().mode === 'legacy'
  ? posts.some((p) => p.url.endsWith('/playback')) : health.snapshot().errors >= scenario.errors));
health.stop();
out.posts = posts;
out.final = health.snapshot();
console.log(JSON.stringify(out));
process.exit(0);
"""


def run_module(answers: list[str], window: list[int] = WINDOW, flap: bool = False) -> dict[str, Any]:
    """The harness's findings, once the window's errors reached the collector (or the old endpoint)."""
    node = shutil.which("node")
    assert node is not None, "node is needed (scripts/test installs it)"
    script = HARNESS % {"playback": json.dumps((SRC / "playback.js").as_uri()),
                        "health": json.dumps((SRC / "owncast-health.js").as_uri())}
    done = subprocess.run([node, "--input-type=module", "-e", script,
                           json.dumps({"answers": answers, "window": window, "flap": flap,
                                       "errors": sum(window[6:12])})],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_reports_carry_the_windows_measures_and_one_report_per_stall_and_error() -> None:
    """A state report at the first frame; then one per error and stall, the state's last; no preflight."""
    got = run_module(["ok"])
    first = got["first"]
    assert first["url"].endswith("/api/metrics/cmcd") and (first["method"], first["mode"]) == ("POST", "cors")
    assert first["headers"] is None  # no Content-Type: a simple request, no OPTIONS first
    assert first["body"][-1]["sta"] == "p" and first["body"][-1]["e"] == "ps"
    window = next(p["body"] for p in got["posts"] if any(r.get("bs") for r in p["body"]))
    sid = first["body"][0]["sid"]
    assert len(sid) == 24 and all(r["sid"] == sid and r["v"] == 2 for r in window)
    assert [r["e"] for r in window].count("e") == 3  # the window's three errors
    assert sum(1 for r in window if r.get("bs")) == 2  # and its two stalls
    head = window[-1]
    assert head["mtp"] == round((50_000 + 30_000) * 8 / 160) and head["ttlb"] == round(160 / 3)
    assert (head["ltc"], head["br"], head["sta"]) == (3100, 1200, "r")
    assert (got["snapshot"]["errors"], got["snapshot"]["stalls"], got["snapshot"]["mode"]) == (3, 2, "cmcd")


def test_state_changes_within_a_second_go_as_one_report_of_the_latest() -> None:
    got = run_module(["ok"], flap=True)
    flapped = got["flapped"]
    assert len(flapped) == 1, flapped
    assert flapped[0]["body"][-1]["sta"] == "a" and flapped[0]["body"][-1]["e"] == "ps"


def test_a_window_beyond_one_posts_bound_goes_on_in_the_next() -> None:
    """100 errors: 63 and the state's report in one POST (about 4 KB), the rest in the next."""
    window = list(WINDOW)
    window[6:12] = [100, 0, 0, 0, 0, 0]
    window[1] = 0
    got = run_module(["ok"], window=window)
    bodies = [p["body"] for p in got["posts"] if p["body"]]
    assert max(len(b) for b in bodies) == 64 and all(len(json.dumps(b)) < MAX_BODY for b in bodies)
    assert sum(1 for b in bodies for r in b if r["e"] == "e") == got["final"]["errors"] == 100


def test_an_owncast_without_the_collector_gets_the_older_report_with_the_counts() -> None:
    """404, or only no-cors getting through: the older endpoint from then on, carrying the counts."""
    for answers in (["404"], ["cors"]):
        got = run_module(answers)
        legacy = [p for p in got["posts"] if p["url"].endswith("/api/metrics/playback")]
        assert got["final"]["mode"] == "legacy" and legacy, (answers, got["posts"])
        assert legacy[0]["mode"] == "no-cors" and legacy[0]["method"] == "POST"
        body = legacy[0]["body"]
        assert body["errors"] >= 5 and body["bandwidth"] == 2500 and body["latency"] == 3.1, body
        cmcd = [p for p in got["posts"] if p["url"].endswith("/cmcd") and p["method"] == "POST"]
        assert len(cmcd) <= 3, cmcd  # two refused in a row, and what was on its way then: no more


def test_a_network_back_between_a_post_and_its_no_cors_check_keeps_the_collector() -> None:
    """One POST failed while the no-cors request after it got through (the network came back between
    them): still the collector, the counts carried into the next POST."""
    got = run_module(["ok", "cors", "ok"])
    assert got["final"]["mode"] == "cmcd", got["posts"]
    assert not [p for p in got["posts"] if p["url"].endswith("/api/metrics/playback")]
    assert got["final"]["errors"] == 3 and got["final"]["stalls"] == 2


def test_a_network_failure_keeps_the_collector_and_carries_the_counts() -> None:
    got = run_module(["ok", "down", "down", "ok"])
    assert got["final"]["mode"] == "cmcd"
    assert got["final"]["errors"] == 3 and got["final"]["stalls"] == 2  # delivered once, by a later POST


async def test_the_stand_in_reads_the_pages_reports_as_one_viewer_with_its_figures() -> None:
    """The page's reports to the stand-in: one viewer, one client; Owncast's errors = stalls + errors."""
    got = run_module(["ok"])
    collector = CmcdCollector()
    async with OwncastViewers(collector=collector) as owncast, aiohttp.ClientSession() as http:
        for p in got["posts"]:
            async with http.post(f"{owncast.url}/api/metrics/cmcd", data=json.dumps(p["body"]),
                                 headers={"User-Agent": "viewer-1", "Content-Type": "text/plain"}) as response:
                assert response.status == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
    (viewer, clients), = collector.viewers().items()
    assert viewer == ("127.0.0.1", "viewer-1") and len(clients) == 1
    client = clients[0]
    assert client.error_count == got["final"]["errors"] + got["final"]["stalls"] == 5
    assert client.latency_seconds == 3.1 and client.bitrate_kbps == 1200 and client.bandwidth_kbps > 0


async def test_the_stand_in_answers_as_the_collectors_source() -> None:
    collector = CmcdCollector()
    async with OwncastViewers(collector=collector) as owncast, aiohttp.ClientSession() as http:
        url = f"{owncast.url}/api/metrics/cmcd"
        async with http.options(url) as response:
            assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == "*"
        async with http.post(url, data="") as response:  # no report at all
            assert response.status == 400 and (await response.json())["message"] == "no CMCD report found in request"
        async with http.post(url, data="{nope") as response:
            assert response.status == 400 and response.headers["Access-Control-Allow-Origin"] == "*"
        async with http.post(url, data=" " + "x" * MAX_BODY) as response:  # past 64 KiB, never a value
            assert response.status == 400
        # An object, the query's keys merged; headers alone on a GET; an array's objects only.
        async with http.post(url + '?CMCD=sid%3D"q1"', data='{"mtp": 900, "bs": true}') as response:
            assert response.status == 200
        async with http.get(url, headers={"CMCD-Session": 'sid="h1"', "CMCD-Request": "ltc=2500,e=e"}) as response:
            assert response.status == 200
        async with http.post(url, data='[{"sid": "a1", "br": 800}, 7, {"sid": "a1", "br": 1600, "bs": 1}]') as r:
            assert r.status == 200
    c = collector.clients
    assert (c["q1"].bandwidth_kbps, c["q1"].error_count) == (900, 1)
    assert (c["h1"].latency_seconds, c["h1"].error_count) == (2.5, 1)
    assert (c["a1"].bitrate_kbps, c["a1"].quality_variant_changes, c["a1"].error_count) == (1600, 1, 0)
    assert len(collector.viewers()) == 1  # one address and User-Agent: one viewer, three clients


async def test_an_owncast_before_the_collector_answers_404_with_cors() -> None:
    async with OwncastViewers() as owncast, aiohttp.ClientSession() as http:
        async with http.post(f"{owncast.url}/api/metrics/cmcd", data="[]") as response:
            assert response.status == 404 and response.headers["Access-Control-Allow-Origin"] == "*"
    assert owncast.cmcd_misses == 1
