"""A private stream's clips and recordings: made as a public stream's, their playlists kept in STATE_DIR,
reached only through the gated route (a stranger: 401/403 naming nothing; an invited viewer: segment URIs
with the window's edge token or presigned). Then one real-parts run on SeaweedFS, every listed segment
fetched through the edge check."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pytest_aiohttp import AiohttpClient

from broadcaster.access.edge_tokens import EdgeTokens
from broadcaster.access.grants import Gatekeeper, Keys
from broadcaster.access.invites import LOOK_EVERY, Invite, InviteLinks, InvitesFile, write_invites
from broadcaster.access.tokens import ViewerTokens, edge_key
from broadcaster.bucket.edge_urls import EdgeUrls
from broadcaster.bucket.recorder import Recorder
from broadcaster.bucket.urls import PresignedUrls
from broadcaster.clips.book import ClipBook, ClipPlaces
from broadcaster.clips.kept import KeptPlaylists
from broadcaster.clips.served import ServedVod
from broadcaster.edge_token import SEPARATOR, checked_text, valid
from broadcaster.http import PlaylistOptions, create_app
from broadcaster.http.gate import Gate
from broadcaster.metrics import Metrics
from broadcaster.playlist.segments import ListedSegment
from broadcaster.service.private_vod import GATED_AT, url_window
from broadcaster.settings import load_settings
from broadcaster.state.disk import StateFile
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.client import Client
from tests.support.clip_source import PREFIX, T0, Bucket, Source
from tests.support.fakes import Clock, FakeHealth, FakePlaylists
from tests.support.settings_env import env

SECRET = "c" * 40
PASSPHRASE = "let me in"
PUBLIC = "https://media.example.com"
WINDOW, TTL = 60, 260  # PRIVATE_EDGE_WINDOW, and how long a window's token is accepted


class World:
    """A private stream's clip book, kept playlists and app, at one clock."""

    def __init__(self, tmp_path: Path, clock: Clock, presigned: PresignedUrls | None = None) -> None:
        (tmp_path / "state").mkdir(exist_ok=True)
        self.bucket = Bucket()  # what the book's playlists never go to
        self.kept = KeptPlaylists(tmp_path / "state" / "vod", PREFIX, self.bucket)
        self.book = ClipBook(StateFile(tmp_path / "state", "clips.json"), self.kept, self.kept, Source(),
                             lambda: None, ClipPlaces(PREFIX, None, wall_clock=clock, gated=GATED_AT), holder=None)
        self.edge = EdgeTokens(edge_key(SECRET), f"/{PREFIX}/", WINDOW, TTL, clock=clock)
        urls = presigned or EdgeUrls(PUBLIC, self.edge)
        window = (lambda: int(clock()) // WINDOW) if presigned else self.edge.current
        self.invites = tmp_path / "invites.json"
        self.gate = Gate(Gatekeeper(Keys(SECRET, PASSPHRASE, 600), InvitesFile(self.invites, clock), clock), self.edge)
        self.app = create_app(FakePlaylists(), FakeHealth(), Metrics(), playlist_options=PlaylistOptions(
            gate=self.gate, vod=ServedVod(self.kept, urls, PREFIX, window)))
        self.clock = clock

    def invited(self, name: str, revoked: bool = False) -> str:
        """A viewer token for an invite (its file written here)."""
        write_invites(self.invites, {name: Invite(name, int(self.clock()) + 86_400, revoked)})
        self.clock.t += LOOK_EVERY  # the service looks at the file that often
        return ViewerTokens(SECRET).mint(name, int(self.clock()) + 600)


async def get(client: Client, path: str, token: str | None = None) -> tuple[int, str]:
    response = await client.get(path + (f"?access={token}" if token else ""))
    return response.status, await response.text()


def uris(body: str) -> list[str]:
    return [line for line in body.splitlines() if line and not line.startswith("#")]


async def test_a_private_clip_is_kept_off_the_bucket_and_its_url_is_the_gated_route(tmp_path: Path) -> None:
    world = World(tmp_path, Clock(T0 + 100))
    clip = await world.book.make(last=5)
    assert clip.url == f"/live/clips/{clip.id}/master.m3u8" and clip.describe()["private"] is True
    kept = tmp_path / "state" / "vod" / "clips" / clip.id
    assert sorted(p.name for p in kept.rglob("*.m3u8")) == ["master.m3u8", "playlist.m3u8", "playlist.m3u8"]
    assert not (tmp_path / "state" / "vod" / PREFIX).exists()  # below PREFIX, as the route serves it
    assert world.bucket.objects == {}
    await world.book.delete(clip.id)
    assert list(kept.rglob("*.m3u8")) == []


async def test_deleting_a_clip_made_while_the_stream_was_public_deletes_its_playlists_in_the_bucket(
        tmp_path: Path) -> None:
    world = World(tmp_path, Clock(T0 + 100))
    public = ClipBook(StateFile(tmp_path / "state", "clips.json"), world.bucket, world.bucket, Source(),
                      lambda: None, ClipPlaces(PREFIX, PUBLIC), holder=None)
    clip = await public.make(last=3)
    assert len(world.bucket.objects) == 3 and not clip.gated
    world.book.load()  # the same STATE_DIR, turned private
    await world.book.delete(clip.id)
    assert world.bucket.objects == {} and world.book.clips() == []


async def test_the_clip_command_prints_the_gated_path_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import contextlib

    from broadcaster.cli import main
    from broadcaster.http.control import create_control_app
    from broadcaster.service.listeners import control_socket

    world = World(tmp_path, Clock(T0 + 100))
    async with contextlib.AsyncExitStack() as stack:
        assert await control_socket(stack, tmp_path / "state", create_control_app(world.book)) is not None
        # In a thread: the command runs its own event loop, as from the shell.
        done = await asyncio.to_thread(main, ["clip", "--last", "3", "--state-dir", str(tmp_path / "state")])
    assert done == 0, capsys.readouterr().err
    *_, said, url = capsys.readouterr().out.splitlines()
    clip = world.book.clips()[0]
    assert url == clip.url == f"/live/clips/{clip.id}/master.m3u8"
    assert "behind its gate" in said and f"/?src=/live/clips/{clip.id}/master.m3u8" in said


@pytest.mark.parametrize("door", ["master.m3u8", "0/playlist.m3u8", "missing"])
async def test_a_stranger_gets_401_or_403_naming_nothing_of_the_clip(
        aiohttp_client: AiohttpClient, tmp_path: Path, door: str) -> None:
    world = World(tmp_path, Clock(T0 + 100))
    clip = await world.book.make(last=5)
    path = f"/live/clips/{clip.id}/{door}" if door != "missing" else "/live/clips/20261118-000000-ffff/master.m3u8"
    client = await aiohttp_client(world.app)
    expired = ViewerTokens(SECRET).mint("-", int(world.clock()) - 1)
    for token, status in ((None, 401), ("v1.1.-.forged", 403), (expired, 403), (world.invited("gone", True), 403)):
        response = await client.get(path + (f"?access={token}" if token else ""))
        body = await response.text()
        assert response.status == status, (token, body)
        assert response.headers["Cache-Control"] == "no-store"
        assert list(json.loads(body)) == ["error"] and body.count("\n") == 1
        assert clip.id not in body and "stream-a" not in body and "#EXT" not in body
    assert json.loads(body)["error"] == "this invite was revoked"


async def test_an_invited_viewer_gets_the_clip_with_the_windows_edge_token_the_same_bytes_as_another(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    clock = Clock(T0 + 100)
    world = World(tmp_path, clock)
    clip = await world.book.make(last=5)
    client = await aiohttp_client(world.app)
    guest, other = world.invited("guest"), ViewerTokens(SECRET).mint("-", int(clock()) + 600)
    status, master = await get(client, clip.url, guest)
    assert status == 200
    assert f"0/playlist.m3u8?access={guest}" in master and f"1/playlist.m3u8?access={guest}" in master
    media = f"/live/clips/{clip.id}/0/playlist.m3u8"
    status, body = await get(client, media, guest)
    assert status == 200 and "#EXT-X-PLAYLIST-TYPE:VOD" in body and body.rstrip().endswith("#EXT-X-ENDLIST")
    assert (await get(client, media, other))[1] == body  # one rendering for every viewer of the window
    zipped = await client.get(f"{media}?access={guest}")  # the test client asks for gzip, and inflates
    plain = await client.get(f"{media}?access={guest}", headers={"Accept-Encoding": "identity"})
    assert zipped.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
    assert await zipped.text() == await plain.text() == body and plain.headers["Cache-Control"] == "private, no-cache"
    listed = uris(body)
    assert [urlsplit(u).path for u in listed] == [f"/{PREFIX}/0/stream-a-{i}.ts" for i in range(15, 20)]
    assert all(u.startswith(PUBLIC) for u in listed) and f"/{PREFIX}/0/" in body

    def edge_admits(uri: str) -> bool:  # Cloudflare's check: the prefix signed, the query as sent
        text = checked_text(f"/{PREFIX}/", urlsplit(uri).query)
        return valid(edge_key(SECRET), text, TTL, int(clock()), len(SEPARATOR))

    assert all(edge_admits(u) for u in listed)
    clock.t += WINDOW  # the next window: a new token for everyone, the old URIs still good for their life
    later = (await get(client, media, guest))[1]
    assert later != body and later == (await get(client, media, other))[1]
    assert all(edge_admits(u) for u in listed + uris(later))
    clock.t += TTL
    assert not any(edge_admits(u) for u in listed)
    await world.book.delete(clip.id)
    assert (await get(client, media, guest))[0] == 404  # past the gate: gone
    assert (await get(client, media))[0] == 401  # a stranger learns not even that


async def test_with_presigned_urls_a_clip_lists_each_segment_signed_once_a_window(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    signed: list[str] = []

    def sign(key: str, expires_in: int) -> str:
        signed.append(key)
        return f"https://acc.r2.example/bucket/{key}?X-Amz-Expires={expires_in}&X-Amz-Signature=s{len(signed)}"

    clock = Clock(T0 + 100)
    world = World(tmp_path, clock, PresignedUrls(sign, expiry=3600))
    clip = await world.book.make(last=3)
    client = await aiohttp_client(world.app)
    guest = world.invited("guest")
    media = f"/live/clips/{clip.id}/1/playlist.m3u8"
    (_, body), (_, again) = await asyncio.gather(get(client, media, guest), get(client, media, guest))
    assert [urlsplit(u).path for u in uris(body)] == [f"/bucket/{PREFIX}/1/stream-a-{i}.ts" for i in range(17, 20)]
    assert again == body and len(signed) == 3  # one rendering, for the window
    clock.t += WINDOW
    assert (await get(client, media, guest))[1] != body and len(signed) == 6


def test_the_url_window_follows_the_edge_token_or_the_edge_window_for_presigned(tmp_path: Path) -> None:
    s = load_settings(environ=env(tmp_path, PRIVATE="true", PRIVATE_SECRET=SECRET, PRIVATE_EDGE_WINDOW="60"))
    edge = EdgeUrls(PUBLIC, EdgeTokens(edge_key(SECRET), "/live/", 60, 260))
    assert url_window(s, edge)() == edge.window() == edge.segment("k").partition("verify=")[2]
    before = int(time.time()) // 60
    presigned = url_window(s, PresignedUrls(lambda key, expires_in: key, expiry=3600))()
    assert isinstance(presigned, int) and before <= presigned <= int(time.time()) // 60  # once an edge window


async def test_a_private_recording_is_kept_off_the_bucket_and_served_behind_the_gate(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    world = World(tmp_path, Clock(T0 + 100))
    recorder = Recorder(world.kept, tmp_path / "state", PREFIX)
    for v in (0, 1):
        for i in range(3):
            recorder.record("run-1", v, ListedSegment(f"{PUBLIC}/{PREFIX}/{v}/seg-{i}.ts?verify=x", 2.0, T0 + 2 * i,
                                                      key=f"{PREFIX}/{v}/seg-{i}.ts"))
    recorder.finish("run-1", 2, None)
    await recorder.close()
    assert (tmp_path / "state" / "vod" / "recording-run-1.m3u8").is_file()
    client = await aiohttp_client(world.app)
    assert (await get(client, "/live/recording-run-1.m3u8"))[0] == 401
    assert (await get(client, "/live/0/recording-run-1.m3u8"))[0] == 401
    guest = world.invited("guest")
    status, master = await get(client, "/live/recording-run-1.m3u8", guest)
    assert status == 200 and f"1/recording-run-1.m3u8?access={guest}" in master
    body = (await get(client, "/live/1/recording-run-1.m3u8", guest))[1]
    assert [u.partition("?")[0] for u in uris(body)] == [f"{PUBLIC}/{PREFIX}/1/seg-{i}.ts" for i in range(3)]
    assert all(f"?verify={world.edge.current()}" in u for u in uris(body))


async def test_a_public_stream_has_no_gated_clip_route(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    """Without the gate the kept playlists are not served (a public stream's clips are the bucket's)."""
    world = World(tmp_path, Clock(T0 + 100))
    clip = await world.book.make(last=5)
    served = ServedVod(world.kept, EdgeUrls(PUBLIC, world.edge), PREFIX, world.edge.current)
    client = await aiohttp_client(create_app(FakePlaylists(), FakeHealth(), Metrics(),
                                             playlist_options=PlaylistOptions(vod=served)))
    assert (await client.get(clip.url)).status == 404


@pytest.mark.integration
async def test_on_a_real_s3_server_an_invited_viewer_fetches_every_clip_segment_through_the_edge_check(
        aiohttp_client: AiohttpClient, tmp_path: Path, seaweed: SeaweedS3) -> None:
    """SeaweedFS as the (public-read) bucket, the service's own wiring, the app over HTTP."""
    import aiohttp

    from broadcaster.bucket.edge_urls import edge_prefix, edge_tokens
    from broadcaster.clips.book import CLIPS_FILE
    from broadcaster.http.gate import gate_for
    from broadcaster.service.private_vod import kept_playlists, served_vod
    from tests.support.service_process import service_env

    (tmp_path / "hls").mkdir()
    s = load_settings(environ=service_env(tmp_path / "hls", seaweed, tmp_path / "state", PRIVATE="true",
                                          PRIVATE_SECRET=SECRET, R2_KEY_PREFIX=PREFIX))
    written = {f"{PREFIX}/{v}/stream-a-{i}.ts": bytes([v, i]) * (500 + i) for v in (0, 1) for i in range(20)}
    async with seaweed.client() as s3:
        for key, video in written.items():
            await s3.put_object(Bucket=seaweed.bucket, Key=key, Body=video)
        kept = kept_playlists(s, Bucket())
        assert kept is not None
        s.state_dir.mkdir(parents=True, exist_ok=True)
        book = ClipBook(StateFile(s.state_dir, CLIPS_FILE), kept, kept, Source(), lambda: None,
                        ClipPlaces(PREFIX, None, gated=GATED_AT), holder=None)
        clip = await book.make(last=4)
        listed = await s3.list_objects_v2(Bucket=seaweed.bucket, Prefix=f"{PREFIX}/clips/")
        assert listed.get("KeyCount", 0) == 0 and "Contents" not in listed
    client = await aiohttp_client(create_app(FakePlaylists(), FakeHealth(), Metrics(), playlist_options=PlaylistOptions(
        gate=gate_for(s), vod=served_vod(s, kept))))
    for path in (clip.url, clip.url.replace("master.m3u8", "0/playlist.m3u8")):  # a stranger
        status, body = await get(client, path)
        assert status == 401 and clip.id not in body and "stream-a" not in body
    write_invites(s.invites_file, {"guest": Invite("guest", int(time.time()) + 86_400)})
    granted = await client.post("/live/access", json={"invite": InviteLinks(SECRET).token("guest")})
    token = (await granted.json())["token"]
    prefix = edge_prefix(s.first_bucket.public_url, PREFIX)
    ttl = int(edge_tokens(s, prefix).ttl)
    fetched: dict[str, bytes] = {}
    async with aiohttp.ClientSession() as bucket:
        for variant in uris((await get(client, clip.url, token))[1]):
            response = await client.get(f"/live/clips/{clip.id}/{variant}")
            assert response.status == 200, variant
            for uri in uris(await response.text()):
                url = urlsplit(uri)
                # What the edge (the WAF rule or the Worker) answers: 403 unless the token checks out.
                assert valid(edge_key(SECRET), checked_text(prefix, url.query), ttl, int(time.time()), len(SEPARATOR))
                assert not valid(edge_key(SECRET), checked_text(prefix, ""), ttl, int(time.time()), len(SEPARATOR))
                async with bucket.get(uri) as segment:
                    assert segment.status == 200
                    fetched[url.path.removeprefix(f"/{seaweed.bucket}/")] = await segment.read()
    assert fetched == {k: written[k] for k in clip.keys} and len(fetched) == 8
