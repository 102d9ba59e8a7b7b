"""Owncast's Stream Health sees every viewer of the page, each as one viewer, on real parts: the live demo
stream, five hls.js players in Chromium and a stand-in for Owncast's CMCD collector. Owncast tells viewers
apart by address and User-Agent: each browser context reaches Owncast (named `localhost`) through a proxy
of its own connecting from 127.0.0.2-6 (tests/support/source_proxy.py); 127.0.0.1 goes direct."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.browser import needs_chromium, open_viewer, shared_chromium, until_page
from tests.support.owncast_cmcd import CmcdCollector, PlaybackClient
from tests.support.owncast_viewers import OwncastViewers
from tests.support.service_process import running_service, service_env
from tests.support.source_proxy import SourceProxy
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_chromium]

VIEWERS = 5
WAIT = 45.0  # five players and the stack on two busy cores
# <-loopback> removes Chromium's implicit bypass rule; all of 127.0.0.1 goes direct.
BYPASS = "<-loopback>,127.0.0.1"
SHOWN = 0.95  # of the viewers, at least, shown apart with their figures


def _page_errors(stats: dict[str, Any]) -> int:
    """What the page counted for /metrics: its stalls and its errors of every kind and outcome."""
    kinds = stats["errorKinds"]
    return int(stats["playback"]["stalls"]) + sum(int(k["recovered"]) + int(k["fatal"]) for k in kinds.values())


async def test_five_players_at_five_addresses_are_five_viewers_in_owncasts_stream_health(
        tmp_path: Any, recordings: Recordings) -> None:
    """Five viewers, one playback client each, with the figures the page measured and its error count."""
    collector = CmcdCollector()
    sources = [f"127.0.0.{n}" for n in range(2, 2 + VIEWERS)]
    async with contextlib.AsyncExitStack() as stack:
        s3 = await stack.enter_async_context(SeaweedS3(tmp_path / "seaweed", discard=True))
        emulator = await stack.enter_async_context(
            OwncastEmulator(tmp_path / "hls", resolve_settings(segment_seconds=1), recordings=recordings))
        owncast = await stack.enter_async_context(OwncastViewers(collector=collector))
        proxies = [await stack.enter_async_context(SourceProxy(source)) for source in sources]
        port = owncast.url.rsplit(":", 1)[1]
        env = service_env(tmp_path / "hls", s3, tmp_path / "state", WINDOW_SECONDS="8",
                          OWNCAST_URL=f"http://localhost:{port}")
        service = await stack.enter_async_context(running_service(env))
        await emulator.wait_for_segments(0, 3, timeout=20)
        chromium = await stack.enter_async_context(shared_chromium())
        own = await stack.enter_async_context(chromium.own())
        pages = []
        for n, proxy in enumerate(proxies):
            context = await own.new_context(user_agent=f"viewer-{n}",
                                            proxy={"server": proxy.url, "bypass": BYPASS})
            pages.append(await context.new_page())
        for page in pages:
            await open_viewer(page, f"{service.url}/")

        async def shown() -> dict[str, tuple[PlaybackClient, dict[str, Any]]]:
            """Per address, the viewer the collector shows with all its figures, and what its page says."""
            out = {}
            for n, (page, source) in enumerate(zip(pages, sources, strict=True)):
                stats = await page.evaluate("() => JSON.parse(JSON.stringify(window.viewerStats))")
                clients = collector.viewers().get((source, f"viewer-{n}"), [])
                if len(clients) != 1 or "owncast" not in stats:
                    continue
                client = clients[0]
                # Playing ('p') when shown: on a busy machine a player may still rebuffer at its start.
                if (client.client_id == stats["owncast"]["sid"] and client.bandwidth_kbps > 0
                        and client.bitrate_kbps > 0 and client.latency_seconds > 0
                        and client.error_count == _page_errors(stats) and client.player_state == "p"):
                    out[source] = (client, stats)
            return out

        async def enough() -> dict[str, tuple[PlaybackClient, dict[str, Any]]] | None:
            got = await shown()
            return got if len(got) >= SHOWN * VIEWERS else None

        seen = await until(enough, f"at least {SHOWN:.0%} of {VIEWERS} viewers shown apart with their figures",
                           WAIT, every=0.5, detail=lambda: (collector.viewers(), collector.refused))
        # One viewer loses its network until it stalls: the failed reports are carried into the next.
        troubled = pages[-1]
        cdp = await troubled.context.new_cdp_session(troubled)
        await cdp.send("Network.enable")
        offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        await cdp.send("Network.emulateNetworkConditions", offline)
        await until_page(troubled, "() => window.viewerStats.playback.stalls >= 1", timeout=WAIT)
        await cdp.send("Network.emulateNetworkConditions", offline | {"offline": False})
        page_counts: list[int] = []

        async def counted_by_owncast() -> bool:
            stats = await troubled.evaluate("() => JSON.parse(JSON.stringify(window.viewerStats))")
            page_counts[:] = [_page_errors(stats)]
            clients = collector.viewers().get((sources[-1], f"viewer-{VIEWERS - 1}"), [])
            return len(clients) == 1 and clients[0].error_count == page_counts[0] > 0

        await until(counted_by_owncast, "the troubled viewer's stall and errors in Owncast", WAIT, every=0.5,
                    detail=lambda: (page_counts, collector.viewers().get((sources[-1], f"viewer-{VIEWERS - 1}"))))
    # Five viewers, by address and User-Agent: none merged, none split.
    assert len(collector.viewers()) == VIEWERS and all(a in sources for a, _ in collector.viewers())
    assert collector.refused == [] and owncast.cmcd_misses == 0
    troubled_client = collector.viewers()[(sources[-1], f"viewer-{VIEWERS - 1}")][0]
    for source, (client, stats) in seen.items():
        assert stats["owncast"]["mode"] == "cmcd", stats["owncast"]
        assert 0 < client.latency_seconds < 30, client  # behind live by seconds, not by a wrong clock
    print(f"{len(seen)} of {VIEWERS} viewers shown apart: " + ", ".join(
        f"{c.address} {c.bandwidth_kbps:.0f} kbit/s br {c.bitrate_kbps:.0f} ltc {c.latency_seconds:.2f} s "
        f"errors {c.error_count:.0f}" for c, _ in seen.values())
          + f"; the troubled viewer's errors in Owncast: {troubled_client.error_count:.0f}")

