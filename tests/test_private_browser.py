"""A private stream in headless Chromium, on the live demo stream: a stranger sees the pass-phrase form
alone and a copied URL without a (valid) token is refused; invited viewers play with P2P, every request
carrying the token; video.js and Shaka on another site play the tokened URL; the embed plays with no
third-party cookie. The token's life on the page: tests/test_viewer_access.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import aiohttp
import pytest
import pytest_asyncio

from broadcaster.access.invites import InviteLinks
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.playlist import hls
from tests.support.browser import (WEBRTC_ARGS, OwnedPages, module_chromium, needs_chromium, owned_pages,
                                   until_page, wait_for_state, watch)
from tests.support.framer import Framer
from tests.support.independent_players import SHAKA_52, VIDEOJS_OWNCAST, served_pages
from tests.support.local_http import Served
from tests.support.p2p_demo import Demo, demo_with_tracker
from tests.support.s3 import bucket_of_its_own
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_chromium,
              pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("private_browser")]

SECRET = "a private stream's secret, for tests only: 0123456789"
PASSPHRASE = "open sesame"
TITLE = "Friday jazz in the cellar"
WAIT = 30.0  # seconds any one browser condition may take on a busy machine
# Chromium blocking third-party cookies: the embed must play without a cookie or sessionStorage.
ARGS = [*WEBRTC_ARGS, "--test-third-party-cookie-phaseout"]
# What the service's doors answer: the page asks them for the stream; its own files are open to anyone.
DOORS = ("/live/master.m3u8", "/live/watching", "/live/events")


@dataclass
class Stack:
    demo: Demo
    framer: Framer
    players: Served
    invite: str  # an invite link's token, valid for a day
    expired: str  # one whose invite ended a minute before the service started
    began: float  # time.time() when the stream was up

    @property
    def url(self) -> str:
        return self.demo.service.url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, seaweed_server: SeaweedS3, tracker_dir: Path,
                recordings: Recordings) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("private")
    now = int(time.time())
    invites = tmp / "invites.json"
    invites.write_text(json.dumps({"alice": {"expires": now + 86_400, "revoked": False},
                                   "bob": {"expires": now - 60, "revoked": False}}))
    links = InviteLinks(SECRET)
    async with Framer("localhost") as framer, served_pages() as players, \
            bucket_of_its_own(seaweed_server) as bucket, \
            demo_with_tracker(tmp, bucket, tracker_dir, recordings=recordings, PRIVATE="true",
                              PRIVATE_SECRET=SECRET, PRIVATE_PASSPHRASE=PASSPHRASE,
                              PRIVATE_INVITES=str(invites), STREAM_TITLE=TITLE,
                              FRAME_ANCESTORS=f"'self' {framer.url}", P2P_MIN_VIEWERS="2") as demo:
        framer.target = demo.service.url
        yield Stack(demo, framer, players, links.token("alice"), links.token("bob"), time.time())


chromium = module_chromium(ARGS)
browser = owned_pages  # each test's own contexts and pages in it


async def token_for(stack: Stack) -> str:
    """A viewer token for the pass-phrase, as the page gets one."""
    async with aiohttp.ClientSession() as http, \
            http.post(f"{stack.url}/live/access", json={"passphrase": PASSPHRASE}) as response:
        assert response.status == 200, await response.text()
        token: str = (await response.json())["token"]
    return token


async def enter(frame: Any, passphrase: str) -> None:
    """Types `passphrase` into the page's form (a Page or a Frame) and sends it."""
    await frame.wait_for_selector("#access", state="visible", timeout=WAIT * 1000)
    await frame.fill("#passphrase", passphrase)
    await frame.click("#access-submit")


async def test_a_stranger_sees_the_pass_phrase_form_alone_and_copied_urls_are_refused(
        stack: Stack, browser: OwnedPages) -> None:
    page = await browser.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    await page.goto(f"{stack.url}/")
    await page.wait_for_selector("#access", state="visible", timeout=WAIT * 1000)
    assert TITLE not in await page.content()
    assert await page.title() == "Private stream"
    for hidden in ("video", "#title", "#status", "#watching", "#stats"):
        assert not await page.is_visible(hidden), hidden
    # A wrong pass-phrase: the service's words, and the form stays for another try.
    await enter(page, "open says me")
    await until_page(page, "() => !document.getElementById('access-error').hidden", timeout=WAIT)
    assert await page.inner_text("#access-error") == "wrong pass-phrase"
    assert await page.is_visible("#passphrase") and not await page.is_visible("video")
    assert not any(urlsplit(u).path in DOORS for u in asked), asked  # config.json said private: nothing asked

    # An invite that ended: the page says so plainly, and asks for the pass-phrase.
    await page.goto(f"{stack.url}/?invite={stack.expired}")
    await until_page(page, "() => !document.getElementById('access-error').hidden", timeout=WAIT)
    said = await page.inner_text("#access-error")
    assert said.startswith("this invite expired on ") and await page.is_visible("#passphrase"), said
    assert "invite=" not in page.url  # not left in the address bar (nor in a moment link copied from it)

    # Copied URLs: the multivariant playlist, a media playlist it names, the events, the heartbeat.
    token = await token_for(stack)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.url}/live/master.m3u8", params={"access": token}) as response:
            assert response.status == 200
            variant = next(line for line in (await response.text()).splitlines()
                           if line and not line.startswith("#"))
        media = urljoin(f"{stack.url}/live/master.m3u8", variant)
        assert parse_qs(urlsplit(media).query).get("access") == [token], variant  # written for the player
        bare = media.split("?")[0]
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        for url, params, status in ((f"{stack.url}/live/master.m3u8", {}, 401), (bare, {}, 401),
                                    (bare, {"access": forged}, 403), (f"{stack.url}/live/events", {}, 401)):
            async with http.get(url, params=params) as response:
                body = await response.text()
                assert response.status == status, (url, params, response.status, body)
                assert TITLE not in body and ".ts" not in body and "#EXT" not in body, body


async def test_a_page_hosted_elsewhere_learns_the_stream_is_private_from_the_playlists_401(
        stack: Stack, browser: OwnedPages) -> None:
    """The viewer's page hosted elsewhere (?src=): a 401, the form, and the pass-phrase plays."""
    page = await browser.new_page()
    refused: list[str] = []
    page.on("response", lambda r: refused.append(urlsplit(r.url).path) if r.status == 401 else None)
    src = quote(f"{stack.url}/live/master.m3u8", safe="")
    await page.goto(f"{stack.players.url}/js/index.html?src={src}")
    await enter(page, PASSPHRASE)
    await wait_for_state(page, "playing", int(WAIT * 1000))
    assert refused == ["/live/master.m3u8"], refused


async def test_an_invited_viewer_plays_a_clip_on_the_page_by_its_gated_path(stack: Stack, browser: OwnedPages) -> None:
    """A clip by its gated path on the stream's page: the form, then it plays at the gated URIs."""
    await until(lambda: time.time() - stack.began > 6, "6 s of stream to clip", WAIT)
    clip = await stack.demo.service.clips.make(last=4)
    page = await browser.new_page()
    fetched: list[str] = []
    page.on("response", lambda r: fetched.append(r.url) if r.status == 200 else None)
    await page.goto(f"{stack.url}/?src={clip.url}")
    await enter(page, PASSPHRASE)
    await wait_for_state(page, "playing", int(WAIT * 1000))
    playlists = {urlsplit(u).path for u in fetched if u.startswith(stack.url) and urlsplit(u).path.endswith(".m3u8")}
    assert playlists == {clip.url, clip.url.replace("master.m3u8", f"0/{hls.MEDIA_PLAYLIST_NAME}")}, playlists
    segments = {urlsplit(u).path.rpartition("/")[2] for u in fetched if "verify=" in u}
    assert segments and segments <= {key.rpartition("/")[2] for key in clip.keys}, (segments, clip.keys)


async def test_videojs_and_shaka_on_another_site_play_a_multivariant_url_with_a_token(
        stack: Stack, browser: OwnedPages) -> None:
    src = quote(f"{stack.url}/live/master.m3u8?access={await token_for(stack)}", safe="")
    pages = {player: await browser.new_page() for player in (VIDEOJS_OWNCAST, SHAKA_52)}
    for player, page in pages.items():  # both at once
        await page.goto(f"{stack.players.url}/page/{player}?src={src}")
    for player, page in pages.items():
        # Seconds played, as the probe counts them (a live stream's currentTime starts far from 0).
        await until_page(page, "() => window.probe && window.probe.samples.length "
                         "&& window.probe.samples[window.probe.samples.length - 1][4] >= 2", timeout=WAIT)
        probe = await page.evaluate("() => ({ player: probe.player, fatal: probe.fatal, "
                                    "errors: probe.errors })")
        assert not probe["fatal"], (player, probe)


async def test_the_embed_on_another_site_plays_with_third_party_cookies_and_storage_blocked(
        stack: Stack, browser: OwnedPages) -> None:
    page = await browser.new_page()
    await page.goto(stack.framer.url)
    frame = await (await page.wait_for_selector("iframe")).content_frame()
    assert frame is not None
    await enter(frame, PASSPHRASE)
    await wait_for_state(frame, "playing", int(WAIT * 1000))
    kept = await frame.evaluate("""() => {
      document.cookie = 'probe=1; SameSite=None; Secure';
      let storage;
      try { storage = typeof sessionStorage.getItem('x'); } catch (err) { storage = err.name; }
      return { cookie: document.cookie, storage, held: window.viewerStats.access.held };
    }""")
    assert kept == {"cookie": "", "storage": "SecurityError", "held": True}, kept


async def test_invited_viewers_play_with_p2p_and_every_door_gets_the_token(stack: Stack,
                                                                         browser: OwnedPages) -> None:
    """One by the pass-phrase (stats panel open), one by an invite link started back (?start=). The
    first's first token is cut to 4 s: it renews, its reloads and tracker connection carry the new one.
    Only the first is cut short (a token renewed every 3 s churns the tracker connection)."""
    granted: list[str] = []

    async def short_lived(route: Any) -> None:
        response = await route.fetch()
        body = await response.json()
        if response.status == 200:
            granted.append(body["token"])
            if len(granted) == 1:
                body["expires"] = int(time.time()) + 4
        await route.fulfill(response=response, json=body)

    # Enough stream that a moment of its start is well behind where a live viewer plays (6-8 s behind).
    await until(lambda: time.time() - stack.began > 12, "12 s of stream to rewind into", WAIT)
    pages, asked, sockets, answered = [], [], [], []
    start = datetime.fromtimestamp(stack.began - 2, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    urls = (f"{stack.url}/?stats=1", f"{stack.url}/?invite={stack.invite}&start={start}")
    for _ in urls:
        page = await (await browser.new_context()).new_page()
        page.on("request", lambda r: asked.append(r.url))
        page.on("websocket", lambda ws: sockets.append(ws.url))
        pages.append(page)
    await pages[0].route("**/live/access", short_lived)
    pages[0].on("response", lambda r: answered.append((r.url, r.status)))
    for page, url in zip(pages, urls, strict=True):
        await page.goto(url)
    await enter(pages[0], PASSPHRASE)
    for page in pages:
        await wait_for_state(page, "playing", int(WAIT * 1000), f"{stack.url}/live/master.m3u8")
    assert "invite=" not in pages[1].url and "start=" in pages[1].url
    rewound = await pages[1].evaluate("() => Date.now() - window.viewerStats.playingDate")
    live = await pages[0].evaluate("() => Date.now() - window.viewerStats.playingDate")
    print(f"behind live: the rewound page {rewound / 1000:.1f} s, the live one {live / 1000:.1f} s")
    assert rewound > live + 4000, (rewound, live)  # started back in the window, not at the live edge
    assert await pages[1].evaluate("() => window.viewerStats.access.held")
    await until_page(pages[0], "() => window.viewerStats.access.renewals >= 1", timeout=WAIT)

    def reloaded_with(token: str) -> bool:
        return any(status == 200 and urlsplit(url).path.endswith(f"/{hls.MEDIA_PLAYLIST_NAME}")
                   and parse_qs(urlsplit(url).query).get("access") == [token] for url, status in answered)

    assert reloaded_with(granted[0])
    await until(lambda: len(granted) > 1 and reloaded_with(granted[-1]), "a reload with the renewed token",
                WAIT, detail=lambda: (granted, answered[-5:]))
    # Its tracker connection too: opened again with a renewed token (the tracker checks it at each announce).
    def renewed_socket() -> bool:
        return any(parse_qs(urlsplit(u).query).get("access", [""])[0] in granted[1:] for u in sockets)

    await until(renewed_socket, "a tracker connection with a renewed token", WAIT, detail=lambda: sockets)
    for page in pages:  # the two meet through the tracker, each with its token
        await until_page(page, "() => window.viewerStats.p2p && window.viewerStats.p2p.peers >= 1",
                         timeout=WAIT)
    stats = await asyncio.gather(*(watch(page, 2) for page in pages))
    await until_page(pages[0], "() => window.viewerStats.eventStream === 'open'", timeout=WAIT)
    assert all(s["state"] == "playing" and not s["errors"] for s in stats), stats

    service = urlsplit(stack.url).netloc
    doors = [u for u in asked if urlsplit(u).netloc == service and urlsplit(u).path in DOORS]
    playlists = [u for u in asked if urlsplit(u).netloc == service and urlsplit(u).path.endswith(".m3u8")]
    assert {urlsplit(u).path for u in doors} == set(DOORS), doors
    assert playlists and sockets, (playlists, sockets)
    untokened = [u for u in [*doors, *playlists, *sockets] if not parse_qs(urlsplit(u).query).get("access")]
    assert not untokened, untokened
