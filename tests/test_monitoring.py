"""Monitoring with the real tools: promtool runs the alerts' unit tests, and Prometheus scrapes the real
service and evaluates every query of deploy/grafana-dashboard.json (both tools missing: a failure)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.status.playback import encode
from tests.support.listing import listing
from tests.support.metrics import exported_series
from tests.support.prometheus import SCRAPE, PromAPI, alert_rules, prometheus, tool
from tests.support.service_process import ServiceProcess, service_env
from tests.support.served import MakeWorld

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana-dashboard.json"


# -- alerts ----------------------------------------------------------------------------------------


def _seconds(duration: str) -> float:
    """A Prometheus duration (1m30s, 2h, 500ms) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def test_every_alert_is_unit_tested_firing_after_its_for_and_cleared() -> None:
    rules = alert_rules()
    tests = yaml.safe_load((DEPLOY / "alerts.test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    for rule in rules:
        name = rule["alert"]
        # Per test group, this alert's evaluations in time order: (time, firing?).
        cases = [
            sorted((_seconds(case["eval_time"]), bool(case["exp_alerts"]))
                   for case in test["alert_rule_test"] if case["alertname"] == name)
            for test in tests["tests"]
        ]
        cases = [c for c in cases if c]
        assert cases, f"{name} has no case in alerts.test.yml"

        def shape(evals: list[tuple[float, bool]]) -> bool:
            # Quiet (pending inside its `for:`, or before the series turns), firing, then quiet again.
            fired = [i for i, (_, firing) in enumerate(evals) if firing]
            return bool(fired) and not evals[0][1] and not evals[-1][1] and fired[-1] < len(evals) - 1

        assert any(shape(c) for c in cases), f"{name}: needs a case quiet, then firing, then cleared: {cases}"


def test_promtool_runs_the_alerts_unit_tests() -> None:
    result = subprocess.run([tool("promtool"), "test", "rules", "alerts.test.yml"], cwd=DEPLOY,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the dashboard -----------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # inside a collapsed row
    return [p for p in found if p["type"] != "row"]


def queries() -> dict[tuple[str, str], str]:
    """(panel title, refId) -> PromQL, as the dashboard has it."""
    return {(p["title"], t["refId"]): t["expr"] for p in panels() for t in p["targets"]}


def test_dashboard_is_in_grafanas_export_format_with_the_datasource_as_a_variable() -> None:
    board = dashboard()
    (source,) = board["__inputs"]
    assert source["name"] == "DS_PROMETHEUS" and source["type"] == "datasource"
    assert source["pluginId"] == "prometheus"
    assert board["id"] is None and board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    assert variables["datasource"]["current"]["value"] == "${DS_PROMETHEUS}"  # what the import replaces
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["description"], panel["title"]
        grid = panel["gridPos"]
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        assert x >= 0 and w > 0 and x + w <= 24 and h > 0, panel["title"]  # Grafana's grid is 24 wide
        mine = {(col, row) for col in range(x, x + w) for row in range(y, y + h)}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["expr"].strip()
    # Every variable a query uses is defined (or one of Grafana's own).
    used = {name for expr in queries().values() for name in re.findall(r"\$\{?(\w+)", expr)}
    assert used - {"__rate_interval", "__interval", "__range", "1"} <= set(variables)
    names = {name for expr in queries().values() for name in re.findall(r"\bhls_broadcaster_\w+", expr)}
    assert names <= exported_series(), names - exported_series()


# -- the gauges the dashboard added -------------------------------------------------------------------


async def test_held_requests_counts_waiters_until_answered_timed_out_or_gone(make_world: MakeWorld) -> None:
    world = make_world()
    world.owncast_lists(0, "stream-a-0.ts")
    await world.settle()
    rendered = world.playlists.media_playlist(0)
    assert rendered is not None
    base = rendered.last_sequence
    assert await world.playlists.wait_for_sequence(0, base, timeout=1) is rendered  # answered at once
    assert world.playlists.held_requests == 0
    answered = [asyncio.ensure_future(world.playlists.wait_for_sequence(0, base + 1, timeout=5))
                for _ in range(3)]
    timed_out = asyncio.ensure_future(world.playlists.wait_for_sequence(0, base + 2, timeout=0.05))
    gone = asyncio.ensure_future(world.playlists.wait_for_sequence(0, base + 2, timeout=5))
    await asyncio.sleep(0)
    assert world.playlists.held_requests == 5
    assert await timed_out is None
    assert world.playlists.held_requests == 4
    gone.cancel()  # the viewer hung up
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert world.playlists.held_requests == 3
    world.owncast_lists(0, "stream-a-1.ts")
    assert all(r is not None for r in await asyncio.gather(*answered))
    assert world.playlists.held_requests == 0


# -- a real Prometheus on the real service -------------------------------------------------------------

RATE_INTERVAL = "5s"  # what Grafana's $__rate_interval is at a 1 s scrape: at least four scrapes


def targets(refs: dict[str, str]) -> set[tuple[str, str]]:
    """(panel title, refId) for each refId letter given per title."""
    return {(title, ref) for title, letters in refs.items() for ref in letters}


# Dashboard queries with no data while a healthy stream is live and watched: those that count trouble.
MAY_BE_EMPTY = targets({
    "Segments listed and lost": "B",  # lost segments
    "Playlist requests per second by kind": "B",  # answers other than 200/304
    # Only where Owncast's timing (or a writer unlike it) has them.
    "Segments listed before Owncast finished them": "ABCD",
    # Content steering: pages say which pathway they play once they report it (this test's page does not).
    "Delivery pathway": "B",
})
MUST_HAVE_DATA = targets({
    "Segments listed and lost": "A", "Listing delay p50 / p95": "AB", "Upload duration p50 / p95": "AB",
    "Real-time ratio": "A", "Storage up": "A", "Window and queue": "AB",
    "Playlist requests per second by kind": "A", "Held requests and SSE streams": "AB", "Bytes to R2": "A",
    "Egress moved to R2 (estimated)": "A", "Egress avoided (estimated, time range)": "A",
    "Egress cost avoided (estimated, time range)": "A", "Viewers watching (this service's page)": "ABC",
    # Stream health: what viewer_page reports (errors, rejections and bans at 0).
    "Start-up time p50 / p95": "AB", "Rebuffering ratio": "AB", "Latency behind live p50 / p95": "AB",
    "Playback errors per minute": "A", "Segment download time p95 by source": "AB", "P2P share": "A",
    "P2P rejections per minute": "AB",
    # Content steering (PATHWAYS=bucket,vm): the bucket first, nothing sent by the VM.
    "Delivery pathway": "A", "VM segment egress": "AB",
})


def test_every_dashboard_query_is_classified() -> None:
    assert MUST_HAVE_DATA | MAY_BE_EMPTY == set(queries()) and not MUST_HAVE_DATA & MAY_BE_EMPTY


def concrete(expr: str, target: str) -> str:
    """A dashboard query with Grafana's variables replaced by what Grafana would put there."""
    # (Grafana would escape the dots of a regex value; "." matches a dot anyway.)
    values = {"job": "hls-broadcaster", "instance": target, "egress_price": "0.09",
              "__rate_interval": RATE_INTERVAL, "__interval": SCRAPE, "__range": "1m"}
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), expr)


async def blocking_viewer(http: aiohttp.ClientSession, url: str) -> None:
    """A low-latency player on variant 0: always one request held for the next segment."""
    playlist = f"{url}/live/0/playlist.m3u8"
    text = ""
    while True:
        params = {"_HLS_msn": str(listing(text)[-1].number + 1)} if text else {}
        async with http.get(playlist, params=params) as r:
            if r.status == 200:
                text = await r.text()
            else:  # not ready yet, or the stream stalled: start over, as players do
                text = ""
                await asyncio.sleep(0.1)


# A P2P page's playback report after a beat interval.
def report(stalled: bool) -> str:
    return encode(842, 1000, int(stalled), 200 if stalled else 0, 6000, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 1, 150,
                  88000, 1, 400, 88000, 20000, 1, 0, 0)


async def viewer_page(http: aiohttp.ClientSession, url: str) -> None:
    """A P2P viewer page's heartbeat with its playback report, once a beat interval."""
    beats = 0
    while True:
        async with http.post(f"{url}/live/watching", headers={"Hb-Watching": "monitoring-test-page p2p",
                                                              "Hb-Report": report(beats % 5 == 4)}) as r:
            assert r.status == 200, r.status
        beats += 1
        await asyncio.sleep(1)


async def sse_client(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(f"{url}/live/events") as r:
        async for _ in r.content:  # read, or the hub would drop us as a stalled client
            pass


@asynccontextmanager
async def running(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Runs clients alongside; at exit they are cancelled and awaited (before their session closes)."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.integration
async def test_real_prometheus_scrapes_the_service_and_answers_every_dashboard_query(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator) -> None:
    env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state", WINDOW_SECONDS="6",
                      VIEWER_TIMEOUT="3", PATHWAYS="bucket,vm")  # a report a second from viewer_page
    async with (
        ServiceProcess(env, tmp_path / "service") as service,
        aiohttp.ClientSession() as http,
    ):
        target = service.url.removeprefix("http://")
        async with (
            running(blocking_viewer(http, service.url), sse_client(http, service.url), viewer_page(http, service.url)),
            prometheus(tmp_path / "prometheus", target) as prom_url,
        ):
            api = PromAPI(http, prom_url)

            async def scrape_up() -> bool:
                active = (await api.get("targets", state="active"))["activeTargets"]
                ours = [t for t in active if t["labels"].get("job") == "hls-broadcaster"]
                if not ours:
                    return False  # not discovered yet
                assert [t["scrapeUrl"] for t in ours] == [f"{service.url}/metrics"]
                assert ours[0]["labels"]["service"] == "hls-broadcaster"  # the shipped config's label
                return bool(ours[0]["health"] == "up" and ours[0]["lastError"] == "")

            await api.until("the scrape of the service is up", scrape_up)
            assert await api.value('up{job="hls-broadcaster"}') == 1

            listed = 'sum(hls_broadcaster_segments_listed_total{job="hls-broadcaster"})'
            first = await api.until("segments listed", lambda: api.value(listed))
            await api.until(f"hls_broadcaster_segments_listed_total growing past {first}",
                            lambda: _above(api, listed, first))

            # Every dashboard query: valid PromQL for this Prometheus, and data where a live stream has it.
            for key, expr in sorted(queries().items()):
                await api.query(concrete(expr, target))  # asserts success: no error
            for key in sorted(MUST_HAVE_DATA):
                expr = concrete(queries()[key], target)
                await api.until(f"data for {key}: {expr}", lambda e=expr: api.query(e))
            # One SSE stream open, one blocking request held, one P2P viewer page reporting.
            for key in targets({"Held requests and SSE streams": "AB", "Rebuffering ratio": "A",
                                "Viewers watching (this service's page)": "ABC", "P2P share": "A"}):
                expr = concrete(queries()[key], target)
                await api.until(f"{key} above 0", lambda e=expr: _above(api, e, 0))
            latency = await api.value(concrete(queries()[("Latency behind live p50 / p95", "A")], target))
            assert latency is not None and 5 < latency <= 6, latency  # the 6 s reported, in (5, 6]
            assert await api.value(concrete(queries()[("Storage up", "A")], target)) == 1
            for key in [("Egress moved to R2 (estimated)", "A"),
                        ("Egress cost avoided (estimated, time range)", "A")]:
                assert (await api.value(concrete(queries()[key], target)) or 0) > 0, key

            # The template variables' label_values() find this service.
            for variable in dashboard()["templating"]["list"]:
                if variable["type"] != "query":
                    continue
                found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
                assert found, variable["query"]
                match, label = concrete(found.group(1), target), found.group(2)
                values = await api.get(f"label/{label}/values", **{"match[]": match})
                assert values == [{"job": "hls-broadcaster", "instance": target}[label]]

            # Every rule of deploy/alerts.yml loaded, and evaluated against the real series without error.
            async def rules_evaluated() -> list[dict[str, Any]] | None:
                rules = [r for g in (await api.get("rules", type="alert"))["groups"] for r in g["rules"]]
                return rules if rules and all(r["health"] != "unknown" for r in rules) else None

            rules = await api.until("the alert rules evaluated", rules_evaluated)
            assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
            assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
        assert service.problems() == []


async def _above(api: PromAPI, expr: str, floor: float) -> bool:
    value = await api.value(expr)
    return value is not None and value > floor
