"""A private stream's tracker (TRACKER_VIEWER_KEY) reads the gated multivariant playlist with a token the
Gatekeeper admits; a page without a valid viewer token is closed before it can announce; pages with one
meet."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from broadcaster.access.grants import Gatekeeper, Keys
from broadcaster.access.invites import InvitesFile
from broadcaster.access.tokens import PASSPHRASE, VIEWER, ViewerTokens, derive
from broadcaster.demo.tracker import LocalTracker
from tests.support.webtorrent import VARIANTS, StandInService, connect, meet, serving, unit_limits

pytestmark = pytest.mark.integration

SECRET = "t" * 40


async def test_only_viewers_with_a_token_join_the_swarm(tracker_dir: Path, tmp_path: Path) -> None:
    keeper = Gatekeeper(Keys(SECRET, "pw"), InvitesFile(tmp_path / "invites.json"))
    async with StandInService(admit=keeper.admit) as service:
        env, flags = unit_limits()
        env["TRACKER_VIEWER_KEY"] = derive(SECRET, VIEWER).hex()
        async with LocalTracker(tracker_dir, service=service.url, env=env, node_args=flags) as tracker:
            await serving(tracker)  # it read the gated playlist: the service admitted its token
            token = ViewerTokens(SECRET).mint(PASSPHRASE, int(time.time()) + 600)
            assert await meet(f"{tracker.url}/?access={token}", VARIANTS[0])
            async with aiohttp.ClientSession() as http:
                for url, reason in ((tracker.url, "a viewer token is needed"),
                                    (f"{tracker.url}/?access={token[:-2]}xx", "not valid"),
                                    (f"{tracker.url}/?access={ViewerTokens('o' * 40).mint('-', 2**33)}", "not valid")):
                    stranger = await connect(http, url, "198.51.100.7")
                    await stranger.announce(VARIANTS[0], offers=1)
                    closed = await stranger.closed()
                    assert closed is not None and closed[0] == 1008 and reason in closed[1], closed
