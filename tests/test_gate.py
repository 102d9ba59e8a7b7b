"""The private stream's gate at its seam: the real app (create_app) with a gate, fake playlists. Every
door refuses without a token (401) or with a bad one (403), saying nothing of the stream; a token lets in,
and what the player follows next carries it (the multivariant playlist's URIs, a redirect, the steering
manifest's RELOAD-URI) while media playlists stay the same bytes for every viewer; POST /live/access
grants tokens and bounds failed attempts per client; /health and the public app are unchanged."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from broadcaster.access.edge_tokens import EdgeTokens
from broadcaster.access.grants import Gatekeeper, Keys, Refusal
from broadcaster.access.invites import InvitesFile
from broadcaster.bucket.edge_urls import EdgeUrls, edge_prefix
from broadcaster.edge_token import sign
from broadcaster.http import LiveEvents, PlaylistOptions, ViewerOptions, Viewers, create_app
from broadcaster.http.gate import Attempts, Gate, master_with_access, steering_with_access, with_access
from broadcaster.metrics import Metrics
from broadcaster.playlist.pathway import BaseUris, VmUris
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.segments import ListedSegment
from broadcaster.status.audience import Audience
from broadcaster.status.hub import EventHub
from tests.support.client import Client
from tests.support.fakes import FakeHealth, FakePlaylists

SECRET = "p" * 40
PASSPHRASE = "let me in"
MASTER = ('#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI="steering.json",PATHWAY-ID="bucket"\n'
          '#EXT-X-STREAM-INF:BANDWIDTH=1000000\n0/playlist.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2000000\n'
          '1/playlist.m3u8\n')


def playlists() -> FakePlaylists:
    fake = FakePlaylists(6, 2)
    for variant in (0, 1):
        fake.add_segment(variant)
    fake.master = Rendered(MASTER.encode())
    fake.owncast_master = Rendered(MASTER.replace("playlist.m3u8", "stream.m3u8").encode())
    return fake


async def private_client(aiohttp_client: AiohttpClient, tmp_path: Path, **viewer: Any) -> Client:
    gate = Gate(Gatekeeper(Keys(SECRET, PASSPHRASE, 600), InvitesFile(tmp_path / "invites.json")))
    app = create_app(playlists(), FakeHealth(), Metrics(), playlist_options=PlaylistOptions(gate=gate, trust_cf_connecting_ip=True),
                     events=LiveEvents(EventHub()),
                     viewer_options=ViewerOptions(tmp_path, private=True, viewers=Viewers(Audience(30.0)))
                     if viewer else None)
    return await aiohttp_client(app, auto_decompress=False)


async def token(client: Client) -> str:
    response = await client.post("/live/access", json={"passphrase": PASSPHRASE})
    assert response.status == 200
    body = await response.json()
    assert isinstance(body["token"], str) and body["expires"] > 0
    return str(body["token"])


DOORS = ["/live/master.m3u8", "/live/playlist.m3u8", "/live/0/playlist.m3u8", "/live/1/playlist.m3u8?_HLS_msn=1",
         "/hls/stream.m3u8", "/hls/0/stream.m3u8", "/live/9/playlist.m3u8", "/live/events"]


@pytest.mark.parametrize("path", DOORS)
async def test_every_door_refuses_a_stranger_and_says_nothing_of_the_stream(
        aiohttp_client: AiohttpClient, tmp_path: Path, path: str) -> None:
    client = await private_client(aiohttp_client, tmp_path)
    for sent, headers, status in ((path, {}, 401), (with_access(path, "v1.1.-.x"), {}, 403),
                                  (path, {"Authorization": "Bearer nope"}, 403)):
        response = await client.get(sent, headers=headers)
        body = await response.text()
        assert response.status == status, (sent, body)
        assert response.headers["Cache-Control"] == "no-store"
        error = json.loads(body)["error"]
        assert "playlist" not in error and "seg" not in body and "#EXT" not in body
        if path.startswith("/hls/") and status == 401:
            assert error.startswith("Owncast's own page cannot play a private stream")


async def test_a_token_lets_in_and_rides_along_in_what_the_player_follows(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    client = await private_client(aiohttp_client, tmp_path)
    mine = await token(client)
    master = await client.get(with_access("/live/master.m3u8", mine), headers={"Accept-Encoding": "gzip"})
    text = await master.text()
    assert master.status == 200 and "Content-Encoding" not in master.headers and "ETag" not in master.headers
    assert f"0/playlist.m3u8?access={mine}" in text and f'SERVER-URI="steering.json?access={mine}"' in text
    assert master.headers["Cache-Control"] == "private, no-cache"
    # Media playlists: the same bytes whoever asks, by query or header.
    other = await token(client)
    first = await client.get(with_access("/live/0/playlist.m3u8", mine))
    second = await client.get("/live/0/playlist.m3u8", headers={"Authorization": f"Bearer {other}"})
    assert first.status == second.status == 200 and await first.read() == await second.read()
    # The scheme named in any case (RFC 9110 11.1), as the quick answers read it (quick.py).
    assert (await client.get("/live/0/playlist.m3u8", headers={"Authorization": f"bearer {other}"})).status == 200
    assert mine.encode() not in gzip.decompress(await first.read())
    # Blocking reload with the token beside its directives: answered as without it.
    held = await client.get(f"/live/0/playlist.m3u8?_HLS_msn=0&access={mine}")
    assert held.status == 200
    # A redirect to the canonical URL keeps the token, so the player's next request is let in.
    moved = await client.get(f"/live/0/playlist.m3u8?cachebust=3&access={mine}", allow_redirects=False)
    assert moved.status == 302 and moved.headers["Location"] == f"playlist.m3u8?access={mine}"
    assert (await client.get("/health")).status in (200, 503)  # the operator's: no token asked


async def test_access_grants_renews_and_bounds_failed_attempts(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    client = await private_client(aiohttp_client, tmp_path)
    mine = await token(client)
    renewed = await client.post("/live/access", json={"token": mine})
    assert renewed.status == 200 and (await renewed.json())["token"].startswith("v1.")
    bad = await client.post("/live/access", data=b"not json")
    assert bad.status == 400
    guesser, other = {"CF-Connecting-IP": "203.0.113.5"}, {"CF-Connecting-IP": "203.0.113.6"}
    answers = [await client.post("/live/access", json={"passphrase": "guess"}, headers=guesser) for _ in range(7)]
    assert [a.status for a in answers] == [403] * 6 + [429]
    assert (await answers[0].json()) == {"error": "wrong pass-phrase"}
    assert (await answers[-1].json()) == {"error": "too many attempts: wait a minute and try again"}
    right = await client.post("/live/access", json={"passphrase": PASSPHRASE}, headers=guesser)
    assert right.status == 429  # an empty budget refuses the right one too: guessing stops
    assert (await client.post("/live/access", json={"passphrase": PASSPHRASE}, headers=other)).status == 200


async def test_the_page_is_served_to_anyone_and_says_the_stream_is_private(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html><head><title>Live stream</title></head></html>")
    client = await private_client(aiohttp_client, tmp_path, page=True)
    config = await client.get("/config.json")
    assert config.status == 200 and (await config.json())["private"] is True
    assert (await client.get("/")).status == 200
    beat = await client.post("/live/watching", headers={"Hb-Watching": "a" * 16})
    assert beat.status == 401  # the viewer count is the stream's: a door
    mine = await token(client)
    counted = await client.post(with_access("/live/watching", mine), headers={"Hb-Watching": "a" * 16})
    assert counted.status == 200 and (await counted.json())["watching"] == 1


def test_the_rewriters_add_the_token_to_every_uri() -> None:
    body = master_with_access(('#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="a/p.m3u8?x=1"\n'
                               "https://h/live/vm/0/playlist.m3u8\n").encode(), "T")
    assert body.decode().splitlines()[1:] == ['#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="a/p.m3u8?x=1&access=T"',
                                              "https://h/live/vm/0/playlist.m3u8?access=T"]
    manifest = json.loads(steering_with_access(b'{"VERSION":1,"TTL":10,"RELOAD-URI":"https://h/live/steering.json"}', "T"))
    assert manifest["RELOAD-URI"] == "https://h/live/steering.json?access=T"
    assert with_access("a.m3u8#f", "x y") == "a.m3u8?access=x%20y#f"


def test_failed_attempts_refill_over_a_minute_and_unknown_clients_share_a_larger_budget() -> None:
    now = [0.0]
    attempts = Attempts(per_minute=6, unknown_per_minute=60, clock=lambda: now[0])
    for _ in range(6):
        assert attempts.allowed("a")
        attempts.failed("a")
    assert not attempts.allowed("a") and attempts.allowed("b") and attempts.allowed(None)
    now[0] = 10.0  # one attempt back every 10 s
    assert attempts.allowed("a")
    attempts.failed("a")
    assert not attempts.allowed("a")
    for _ in range(59):
        attempts.failed(None)
    assert attempts.allowed(None)
    attempts.failed(None)
    assert not attempts.allowed(None)


def test_edge_tokens_one_per_window_valid_for_their_life_and_only_for_their_prefix() -> None:
    # Cloudflare's form: <ts>-<URL-encoded base64 HMAC-SHA256(key, message + ts)>
    ts, _, mac = sign("key", "/live/", 1_700_000_100).partition("-")
    expected = hmac.new(b"key", b"/live/1700000100", hashlib.sha256).digest()
    assert ts == "1700000100" and base64.b64decode(unquote(mac)) == expected
    now = [1_700_000_130.0]
    tokens = EdgeTokens("k" * 64, "/live/", 60, 60 + 200, clock=lambda: now[0])
    first = tokens.current()
    assert first.startswith("1700000100-")  # the window's start
    now[0] = 1_700_000_159.0
    assert tokens.current() == first  # one token for every URI listed in a window
    now[0] = 1_700_000_160.0
    assert tokens.current() != first and tokens.valid(first)
    now[0] = 1_700_000_100.0 + 259
    assert tokens.valid(first)
    now[0] = 1_700_000_100.0 + 260
    assert not tokens.valid(first)  # past the window and a listed URI's life
    other = EdgeTokens("k" * 64, "/other/", 60, 260, clock=lambda: now[0])
    assert not other.valid(tokens.current()) and not tokens.valid("") and not tokens.valid("1-x")
    assert not EdgeTokens("z" * 64, "/live/", 60, 260, clock=lambda: now[0]).valid(tokens.current())
    urls = EdgeUrls("https://media.example.com", tokens)
    assert urls.segment("live/0/s1.ts") == f"https://media.example.com/live/0/s1.ts?verify={tokens.current()}"
    assert edge_prefix("https://media.example.com", "live") == "/live/"
    assert edge_prefix("https://cdn.example.com/media/", "live") == "/media/live/"
    assert "k" * 64 not in repr(urls)


async def test_the_vms_segments_take_the_edge_token_their_uris_carry_or_a_viewer_token(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    listed = ListedSegment("https://media.example.com/live/0/s7.ts?verify=17-abc", 2.0, key="live/0/s7.ts")
    assert VmUris().segment(listed) == "/live/vm/0/s7.ts?verify=17-abc"  # the URI the bucket's lists, fixed
    assert VmUris().segment(ListedSegment("https://m/live/0/s7.ts", 2.0, key="live/0/s7.ts")) == "/live/vm/0/s7.ts"
    edge = EdgeTokens("e" * 64, "/live/", 60, 260)
    gate = Gate(Gatekeeper(Keys(SECRET, PASSPHRASE, 600), InvitesFile(tmp_path / "invites.json")), edge)

    async def segment(request: web.Request) -> web.Response:
        return web.Response(body=b"video", headers={"Cache-Control": "public, max-age=31536000, immutable"})

    app = web.Application()
    app.router.add_get("/live/vm/0/s7.ts", gate.segment(segment))
    client = await aiohttp_client(app)
    assert (await client.get("/live/vm/0/s7.ts")).status == 401
    assert (await client.get("/live/vm/0/s7.ts?verify=17-abc")).status == 401  # not ours: as without one
    opened = await client.get(f"/live/vm/0/s7.ts?verify={edge.current()}")
    # A cache in front keys a segment by its path: what a token opened is never kept for others.
    assert opened.status == 200 and opened.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    mine = gate.keeper.grant({"passphrase": PASSPHRASE})
    assert not isinstance(mine, Refusal)
    assert (await client.get(with_access("/live/vm/0/s7.ts", mine.token))).status == 200


def test_another_buckets_uris_carry_the_edge_token_of_the_first_buckets() -> None:
    listed = ListedSegment("https://media.example.com/live/0/s7.ts?verify=17-abc", 2.0, key="live/0/s7.ts",
                           init_uri="https://media.example.com/live/0/init.mp4?verify=17-abc")
    backup = BaseUris("https://backup.example.com")
    assert backup.segment(listed) == "https://backup.example.com/live/0/s7.ts?verify=17-abc"
    assert backup.init(listed) == "https://backup.example.com/live/0/init.mp4?verify=17-abc"
    public = ListedSegment("https://media.example.com/live/0/s7.ts", 2.0, key="live/0/s7.ts")
    assert backup.segment(public) == "https://backup.example.com/live/0/s7.ts"  # a public stream: as it was
