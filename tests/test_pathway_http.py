"""The VM's pathway over real HTTP: the multivariant playlist, the steering manifest, the VM's media
playlists and segments, answered as a CDN expects, only for what its playlists list, bounded."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from broadcaster.vm.held import Held, HeldFile
from broadcaster.files import Stamp
from broadcaster.http import Pathways, PlaylistOptions, ViewerOptions, Viewers, create_app
from broadcaster.http.app import ServedPathway
from broadcaster.http.clients import Proxies
from broadcaster.vm.segments import OwnFailure, VmSegments
from broadcaster.http.watching import client_key
from broadcaster.vm.budget import ByteBudget, VmBytes
from broadcaster.vm.bucket_copy import HeldSegments, InBucket
from broadcaster.metrics import Metrics
from broadcaster.playlist import hls
from broadcaster.playlist.master import Pathway
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish.uploads import init_section_name
from broadcaster.publish.visible import VisiblePlaylists
from broadcaster.source.owncast import SourceVariant
from broadcaster.steering.masters import SteeredMasters
from broadcaster.steering.metrics import PathwayCounts
from broadcaster.status.audience import Audience
from broadcaster.steering.policy import REPORTED_FOR, BucketSignals, SteeringPolicy
from broadcaster.steering.reports import PathwayReports
from tests.support.client import Client, Uncancelling, get
from tests.support.fakes import Clock, FakeHealth, FakePlaylists
from tests.support.hls_checker import check_master
from tests.support.listing import listing
from tests.support.player_pages import VIEWER
from tests.support.waiting import until
from tests.support.world import opened_held

PREFIX = "live"
BODY = bytes(range(256)) * 40  # 10,240 bytes


def key_for(variant: int, name: str) -> str:
    return hls.object_key(PREFIX, variant, name)


class Shown(FakePlaylists):
    """The bucket's playlists as the publisher shows them, with the variants Owncast announces."""

    def __init__(self) -> None:
        super().__init__(2, variants=2)
        self.announced = [SourceVariant(0, 1_200_000, resolution=(1280, 720), codecs="avc1.64001f,mp4a.40.2"),
                          SourceVariant(1, 400_000, resolution=(640, 360), codecs="avc1.64001e,mp4a.40.2")]
        for v in (0, 1):
            for _ in range(3):
                self.add_segment(v)


class Located:
    """Publisher.found: the keys the VM's pathway lists, at the bucket's number, with its URL once landed."""

    def __init__(self, shown: FakePlaylists) -> None:
        self.shown = shown
        self.vm: set[str] = set()

    def found(self, pathway: str, key: str) -> tuple[int, str | None] | None:
        if key not in self.vm:
            return None
        variant, name = key.split("/")[-2:]
        url = f"https://r2.example/{variant}/{name}"
        rendered = self.shown.media_playlist(int(variant))
        if rendered is None:
            return 0, None
        landed = [e.number for e in listing(rendered.body.decode()) if e.uri == url]
        return (landed[0], url) if landed else (rendered.last_sequence + 1, None)


@dataclass
class Rig:
    client: Client
    shown: Shown
    copies: Held
    located: Located
    folder: Path
    policy: SteeringPolicy
    counts: PathwayCounts
    behind: list[float]
    clock: Clock
    segments: VmSegments


MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
def make_rig(aiohttp_client: AiohttpClient, tmp_path: Path) -> MakeRig:
    async def make(*, segments: dict[str, Any] | None = None, redirect: bool = False,
                   shown: Shown | None = None, newest: Callable[[int], int | None] = lambda v: None,
                   proxies: Proxies = Proxies(cloudflare=True), rate: float | None = None,
                   doubt: Doubting | None = None, handler_cancellation: bool = True) -> Rig:
        """`rate`: the VM's byte budget (bytes a second, ten seconds' burst, on the fake clock); `proxies`:
        who may name a client; `segments`: parts of the VM's segments in place."""
        shown = shown or Shown()
        copies = opened_held(tmp_path, max_bytes=64 * 1024 * 1024)
        located = Located(shown)
        clock = Clock()
        behind = [0.0]
        policy = SteeringPolicy(("bucket", "vm"), {"bucket": BucketSignals(behind=lambda: behind[0])},
                                lambda: shown.target_duration, interval=1.0, clock=clock)
        counts = PathwayCounts(lambda: policy.first != "bucket", ("bucket", "vm"))

        # Wired as http/steered.py's vm_segments wires them.
        wired: dict[str, Any] = dict(
            copies=HeldSegments(copies, located), key_for=key_for, on_sent=counts.sent,
            vm_bytes=VmBytes(ByteBudget(rate, 10 * rate, clock) if rate else ByteBudget(1e9, 1e9)),
            bucket=InBucket(policy, located, shown, key_for, doubt or Doubting()) if redirect else None,
            client=lambda request: client_key(request, proxies),
            own_failure=OwnFailure(policy.bucket_serves, policy.client_failing, lambda: STREAM))
        vm_segments = VmSegments(**{**wired, **(segments or {})})
        # The bucket's playlists stand in for the VM's media playlists.
        pathways = Pathways(
            masters=SteeredMasters([Pathway("bucket"), Pathway("vm", "vm")], lambda: policy.first,
                                   {"bucket": shown, "vm": shown}),
            steering=policy, newest=newest, others=(ServedPathway("vm", "vm", shown, lambda: policy.first != "vm"),),
            segments=vm_segments, count_steering=counts.manifest, away=lambda: policy.first != "bucket")
        # The viewer pages' heartbeats, whose Hb-Pathway the policy hears.
        viewers = Viewers(Audience(6.0, clock=clock), pathway=PathwayReports(policy.report))
        options = PlaylistOptions(pathways=pathways, forwarded_allow_ips=proxies.networks,
                                  trust_cf_connecting_ip=proxies.cloudflare)
        app = create_app(shown, FakeHealth(), Metrics(), playlist_options=options,
                         viewer_options=ViewerOptions(VIEWER, viewers=viewers))
        server: Any = app if handler_cancellation else Uncancelling(app)
        client: Client = await aiohttp_client(server, auto_decompress=False)
        if redirect:
            clock.t += 100  # long after any failure
        return Rig(client, shown, copies, located, tmp_path / "hls", policy, counts, behind, clock,
                   vm_segments)

    return make


@pytest.fixture
async def rig(make_rig: MakeRig) -> Rig:
    return await make_rig()


def hold(rig: Rig, variant: int, name: str, body: bytes = BODY) -> HeldFile:
    """Owncast's file of `name`, held as the uploads' first read holds it."""
    folder = rig.folder / str(variant)
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(body)
    held = rig.copies.first(key_for(variant, name), (str(variant), name), Stamp.of(os.stat(folder / name)))
    assert held is not None
    return held


def listed(rig: Rig, variant: int = 0, n: int = 0, body: bytes = BODY) -> HeldFile:
    """Segment n of `variant` held as the uploads would, and listed by the VM's pathway."""
    held = hold(rig, variant, f"seg{n}.ts", body)
    rig.located.vm.add(held.key)
    return held


def steer_away(rig: Rig) -> None:
    """Uploads to the bucket failing: players steered to the VM."""
    rig.behind[0] = 10
    rig.clock.t += 0.5
    rig.policy.evaluate()
    assert rig.policy.first == "vm"


async def served(rig: Rig, body: bytes = BODY) -> HeldFile:
    """Segment 0 of variant 0 listed, and the VM's playlist listing it asked for."""
    held = listed(rig, body=body)
    assert (await get(rig.client, "/live/vm/0/playlist.m3u8"))[0] == 200
    return held


# -- playlists --------------------------------------------------------------------------------------


def test_the_multivariant_playlist_waits_for_the_pathway_players_start_on() -> None:
    """The multivariant playlist waits for the playlists of the pathway players start on, not the VM's."""
    vm_view, bucket, backup = Shown(), Shown(), Shown()
    bucket.generators = FakePlaylists(2, variants=2).generators  # nothing landed yet
    backup.generators = FakePlaylists(2, variants=2).generators
    first = ["bucket"]
    masters = SteeredMasters([Pathway("bucket"), Pathway("backup", "backup"), Pathway("vm", "vm")],
                             lambda: first[0], {"bucket": bucket, "backup": backup, "vm": vm_view})
    assert masters.master_playlist() is None
    first[0] = "vm"
    assert masters.master_playlist() is not None  # the bucket fails: the VM's pathway alone is enough
    first[0] = "bucket"
    bucket.add_segment(0)
    assert masters.master_playlist() is None  # variant 1 not landed yet
    bucket.add_segment(1)
    assert masters.master_playlist() is not None
    first[0] = "backup"
    assert masters.master_playlist() is None  # the second bucket lists nothing yet
    backup.add_segment(0)
    backup.add_segment(1)
    rendered = masters.master_playlist()
    assert rendered is not None and "\nbackup/0/playlist.m3u8\n" in rendered.body.decode()
    assert '#EXT-X-CONTENT-STEERING:SERVER-URI="steering.json",PATHWAY-ID="backup"' in rendered.body.decode()


async def test_the_multivariant_playlist_offers_every_variant_on_both_pathways(rig: Rig) -> None:
    status, headers, body = await get(rig.client, "/live/master.m3u8")
    assert status == 200 and headers["Content-Type"] == hls.PLAYLIST_CONTENT_TYPE
    assert headers["Cache-Control"] == "public, max-age=1"
    text = body.decode()
    lines = text.splitlines()
    # Every URI absolute where the viewer asked (masters.py says why).
    here = f"http://{rig.client.host}:{rig.client.port}/live/"
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:3",
                         f'#EXT-X-CONTENT-STEERING:SERVER-URI="{here}steering.json",PATHWAY-ID="bucket"']
    infs = [(line, uri) for line, uri in zip(lines, lines[1:]) if line.startswith("#EXT-X-STREAM-INF:")]
    assert check_master(text, host=f"{rig.client.host}:{rig.client.port}") == []
    assert [uri for _, uri in infs] == [f"{here}0/playlist.m3u8", f"{here}1/playlist.m3u8",
                                         f"{here}vm/0/playlist.m3u8", f"{here}vm/1/playlist.m3u8"]
    # The same attributes on both pathways but for PATHWAY-ID: redundant streams without steering.
    assert infs[0][0].replace('PATHWAY-ID="bucket"', 'PATHWAY-ID="vm"') == infs[2][0]
    assert 'STABLE-VARIANT-ID="v0"' in infs[0][0] and 'STABLE-VARIANT-ID="v1"' in infs[1][0]
    status, _, owncast = await get(rig.client, "/hls/stream.m3u8")
    there = f"http://{rig.client.host}:{rig.client.port}/hls/"
    assert status == 200 and f"\n{there}vm/1/stream.m3u8" in owncast.decode()
    assert f"\n{there}0/stream.m3u8" in owncast.decode() and f'SERVER-URI="{there}steering.json"' in owncast.decode()
    steer_away(rig)  # a player arriving while the bucket fails starts on the VM
    _, _, body = await get(rig.client, "/live/master.m3u8")
    assert 'PATHWAY-ID="vm"\n' in body.decode().split("#EXT-X-STREAM-INF")[0]


@pytest.mark.parametrize("host", ["", "evil.example/x", 'a"b', "a b", "a\\b", "a:b:c", "x" * 300, "[::1",
                                  "-bad.example", "a..b"])
async def test_a_host_that_is_not_plain_names_the_vm_relatively(rig: Rig, host: str) -> None:
    status, _, body = await get(rig.client, "/live/master.m3u8", {"Host": host, "Accept-Encoding": "identity"})
    assert status in (200, 400), status  # aiohttp refuses some Host values itself
    if status == 200:
        assert "\nvm/0/playlist.m3u8" in body.decode() and "\n0/playlist.m3u8" in body.decode()
        assert 'SERVER-URI="steering.json"' in body.decode()
    status, _, body = await get(rig.client, "/live/steering.json", {"Host": host, "Accept-Encoding": "identity"})
    if status == 200:  # reloaded from the URI the player had: a relative RELOAD-URI is one Shaka 5 cannot
        assert "RELOAD-URI" not in json.loads(body)


async def test_the_hosts_rendered_for_are_bounded(rig: Rig) -> None:
    for n in range(40):
        _, _, body = await get(rig.client, "/live/master.m3u8", {"Host": f"h{n}.example", "Accept-Encoding": "identity"})
        assert (f"\nhttp://h{n}.example/live/vm/0/" in body.decode()) == (n < 16), n
        assert (f"\nvm/0/playlist.m3u8" in body.decode()) == (n >= 16), n
    _, _, body = await get(rig.client, "/live/master.m3u8", {"Host": "h3.example", "Accept-Encoding": "identity"})
    assert "\nhttp://h3.example/live/vm/0/playlist.m3u8" in body.decode()
    for n in range(40):
        _, _, body = await get(rig.client, "/live/steering.json", {"Host": f"h{n}.example"})
        reload_uri = json.loads(body).get("RELOAD-URI")
        assert reload_uri == (f"http://h{n}.example/live/steering.json" if n < 16 else None), (n, reload_uri)


async def test_behind_the_tunnel_every_uri_names_the_scheme_the_viewer_used(rig: Rig) -> None:
    """Through the tunnel, https URIs are shared by caches, http ones not."""
    asked = {"Host": "live.example.com", "Accept-Encoding": "identity"}
    https = {**asked, "CF-Visitor": '{"scheme":"https"}', "X-Forwarded-Proto": "https"}
    status, headers, body = await get(rig.client, "/live/master.m3u8", https)
    assert status == 200 and headers["Cache-Control"] == "public, max-age=1"
    assert "\nhttps://live.example.com/live/vm/1/playlist.m3u8\n" in body.decode()
    assert 'SERVER-URI="https://live.example.com/live/steering.json"' in body.decode()
    http = {**asked, "CF-Visitor": '{"scheme":"http"}', "X-Forwarded-Proto": "http"}
    _, headers, body = await get(rig.client, "/live/master.m3u8", http)
    assert headers["Cache-Control"] == hls.UNSHARED_CACHE_CONTROL
    assert "\nhttp://live.example.com/live/0/playlist.m3u8\n" in body.decode()
    shared = "public, max-age=1"
    for said, scheme, cache in ((https, "https", shared), (http, "http", hls.UNSHARED_CACHE_CONTROL),
                                # The same http place asked directly (no proxy: the demo, a player on the VM).
                                (asked, "http", shared),
                                # The https answer again, after the others: its own rendering and headers.
                                (https, "https", shared)):
        _, headers, body = await get(rig.client, "/live/steering.json?_HLS_pathway=bucket", said)
        place = f"{scheme}://live.example.com/live/steering.json"
        assert (headers["Cache-Control"], json.loads(body)["RELOAD-URI"]) == (cache, place), said


async def test_a_client_naming_a_scheme_itself_gets_network_path_references(make_rig: MakeRig) -> None:
    rig = await make_rig(proxies=Proxies())  # no proxy named: CF-Visitor and X-Forwarded-Proto are the client's word
    forged = {"Host": "live.example.com", "Accept-Encoding": "identity", "CF-Visitor": '{"scheme":"https"}'}
    _, headers, body = await get(rig.client, "/live/master.m3u8", forged)
    assert "\n//live.example.com/live/vm/0/playlist.m3u8\n" in body.decode()
    assert headers["Cache-Control"] == "public, max-age=1"  # right for every scheme: the player keeps its own
    _, _, body = await get(rig.client, "/live/steering.json", forged)
    assert "RELOAD-URI" not in json.loads(body)  # a network-path one is no better than none for Shaka 5


# -- the steering manifest ----------------------------------------------------------------------------


async def test_the_steering_manifest_is_short_lived_json_with_an_etag(rig: Rig) -> None:
    status, headers, body = await get(rig.client, "/live/steering.json?_HLS_pathway=bucket&_HLS_throughput=5000000")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "public, max-age=1" and headers["Access-Control-Allow-Origin"] == "*"
    here = f"http://{rig.client.host}:{rig.client.port}"  # RELOAD-URI absolute: Shaka 5 reloads no other
    assert json.loads(body) == {"VERSION": 1, "TTL": 1, "RELOAD-URI": f"{here}/live/steering.json",
                                "PATHWAY-PRIORITY": ["bucket", "vm"]}
    status, _, body = await get(rig.client, "/live/steering.json", {"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    status, _, body = await get(rig.client, "/hls/steering.json", {"If-None-Match": headers["ETag"]})
    assert status == 200 and json.loads(body)["RELOAD-URI"] == f"{here}/hls/steering.json"
    steer_away(rig)
    status, changed, body = await get(rig.client, "/live/steering.json?_HLS_pathway=evil",
                                      {"If-None-Match": headers["ETag"]})
    assert status == 200 and json.loads(body)["PATHWAY-PRIORITY"] == ["vm", "bucket"]
    assert changed["ETag"] != headers["ETag"]
    assert rig.counts.steering == {"bucket": 1, "none": 2, "other": 1}


async def test_without_pathways_the_steering_manifest_is_gone(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(create_app(FakePlaylists(), FakeHealth(), Metrics()))
    status, _, _ = await get(client, "/live/steering.json")
    assert status == 410
    assert (await get(client, "/live/vm/0/playlist.m3u8"))[0] == 404
    assert (await get(client, "/live/vm/0/seg0.ts"))[0] == 404


# -- the VM's segments ----------------------------------------------------------------------------------


async def test_a_listed_segment_is_served_as_the_bucket_serves_it(rig: Rig) -> None:
    copy = await served(rig)  # the VM's playlist lists it
    for path in ("/live/vm/0/seg0.ts", "/hls/vm/0/seg0.ts"):
        status, headers, body = await get(rig.client, path)
        assert status == 200 and body == BODY
        assert headers["Cache-Control"] == hls.SEGMENT_CACHE_CONTROL == "public, max-age=31536000, immutable"
        assert headers["Content-Type"] == "video/mp2t" and headers["ETag"] == copy.etag
        assert headers["Accept-Ranges"] == "bytes" and headers["Access-Control-Allow-Origin"] == "*"
        assert email.utils.parsedate_to_datetime(headers["Last-Modified"]).timestamp() == copy.modified
    assert rig.counts.bytes == {True: 0, False: 2 * len(BODY)}


async def test_only_what_the_vm_playlists_list_is_served(rig: Rig) -> None:
    hold(rig, 0, "seg9.ts")  # held, never listed (a slot dropped)
    await served(rig)
    assert (await get(rig.client, "/live/vm/0/seg0.ts"))[0] == 200
    for path in ("/live/vm/0/seg9.ts", "/live/vm/1/seg0.ts", "/live/vm/0/seg1.ts", "/live/vm/00/seg0.ts",
                 "/live/vm/0/..%2Fseg0.ts", "/live/vm/0/.seg0.ts", "/live/vm/0/seg0.m3u8",
                 "/live/vm/0/%2e%2e%2f%2e%2e%2fstate.json", "/live/vm/0/seg0.ts%00.ts"):
        assert (await get(rig.client, path))[0] == 404, path


class Fmp4(Shown):
    """An fMP4 stream's playlists, named as the uploads name them (init section after the run's id)."""

    def __init__(self, shortid: str) -> None:
        FakePlaylists.__init__(self, 2, variants=2)
        self.shortid = shortid

    def names(self, variant: int, n: int) -> tuple[str, str]:
        segment = f"stream-{self.shortid}-{n}.m4s"
        return init_section_name(segment, f"init_{variant}.mp4", 1), segment

    def add_fmp4(self, variant: int, n: int) -> None:
        init, segment = self.names(variant, n)
        self._now += 1
        base = f"https://r2.example/{variant}/"
        self.generators[variant].append(ListedSegment(base + segment, 1.0, init_uri=base + init), self._now)


# Owncast's shortids (teris-io/shortid, demo/owncast_files.py's alphabet) may begin with '_' or '-'.
@pytest.mark.parametrize("shortid", ["_mN9yQ90a", "-mN9yQ90a", "amN9yQ90a"])
async def test_every_uri_of_an_fmp4_stream_the_vm_lists_is_served(make_rig: MakeRig, shortid: str) -> None:
    shown = Fmp4(shortid)
    rig = await make_rig(shown=shown)
    kept = {}
    for n in range(3):
        for name in shown.names(0, n):
            kept[name] = body = name.encode() * 100
            rig.located.vm.add(hold(rig, 0, name, body).key)
        shown.add_fmp4(0, n)
    uris = [f"/live/vm/0/{name}" for name in kept]
    assert len(uris) == 4
    for uri in uris:
        status, headers, body = await get(rig.client, uri)
        assert (status, body) == (200, kept[uri.rpartition("/")[2]]), uri
        assert headers["Content-Type"] == ("video/mp4" if uri.endswith(".mp4") else "video/iso.segment")


async def test_conditional_requests_are_answered_304(rig: Rig) -> None:
    copy = await served(rig)
    path = "/live/vm/0/seg0.ts"
    for headers in ({"If-None-Match": copy.etag}, {"If-None-Match": f'W/{copy.etag}'},
                    {"If-None-Match": f'"other", {copy.etag}'}, {"If-None-Match": "*"},
                    {"If-Modified-Since": email.utils.formatdate(copy.modified, usegmt=True)},
                    {"If-Modified-Since": email.utils.formatdate(copy.modified + 60, usegmt=True)}):
        status, answer, body = await get(rig.client, path, headers)
        assert status == 304 and body == b"", headers
        assert answer["ETag"] == copy.etag and answer["Cache-Control"] == hls.SEGMENT_CACHE_CONTROL
    for headers in ({"If-None-Match": '"other"'},
                    {"If-Modified-Since": email.utils.formatdate(copy.modified - 60, usegmt=True)},
                    # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3)
                    {"If-None-Match": '"other"',
                     "If-Modified-Since": email.utils.formatdate(copy.modified + 60, usegmt=True)}):
        status, _, body = await get(rig.client, path, headers)
        assert status == 200 and body == BODY, headers


@pytest.mark.parametrize(("asked", "status", "first", "last"), [
    ("bytes=0-99", 206, 0, 99),
    ("bytes=100-", 206, 100, len(BODY) - 1),
    ("bytes=-100", 206, len(BODY) - 100, len(BODY) - 1),
    ("bytes=10000-99999", 206, 10000, len(BODY) - 1),
    ("bytes=-99999", 200, 0, len(BODY) - 1),  # the whole object
    ("bytes=0-", 200, 0, len(BODY) - 1),
    ("bytes=0-10,20-30", 200, 0, len(BODY) - 1),  # several ranges: the whole (RFC 9110 14.2)
    ("items=0-10", 200, 0, len(BODY) - 1),
    ("bytes=50-10", 200, 0, len(BODY) - 1),  # invalid: ignored
])
async def test_one_byte_range_is_answered(rig: Rig, asked: str, status: int, first: int, last: int) -> None:
    await served(rig)
    got, headers, body = await get(rig.client, "/live/vm/0/seg0.ts", {"Range": asked})
    assert got == status and body == BODY[first:last + 1]
    if status == 206:
        assert headers["Content-Range"] == f"bytes {first}-{last}/{len(BODY)}"
    assert rig.counts.bytes[False] == len(body)


async def test_a_range_past_the_end_is_416_and_if_range_guards_ranges(rig: Rig) -> None:
    copy = await served(rig)
    path = "/live/vm/0/seg0.ts"
    status, headers, body = await get(rig.client, path, {"Range": f"bytes={len(BODY)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(BODY)}"
    status, _, body = await get(rig.client, path, {"Range": "bytes=0-9", "If-Range": copy.etag})
    assert status == 206 and body == BODY[:10]
    date = email.utils.formatdate(copy.modified, usegmt=True)
    status, _, body = await get(rig.client, path, {"Range": "bytes=0-9", "If-Range": date})
    assert status == 206 and body == BODY[:10]
    for stale in ('"other"', f"W/{copy.etag}", email.utils.formatdate(copy.modified - 1, usegmt=True), "junk"):
        status, _, body = await get(rig.client, path, {"Range": "bytes=0-9", "If-Range": stale})
        assert status == 200 and body == BODY, stale


async def test_head_says_the_length_and_sends_nothing(rig: Rig) -> None:
    await served(rig)
    status, headers, body = await get(rig.client, "/live/vm/0/seg0.ts", method="HEAD")
    assert status == 200 and body == b"" and headers["Content-Length"] == str(len(BODY))
    status, headers, _ = await get(rig.client, "/live/vm/0/seg0.ts", {"Range": "bytes=0-9"}, method="HEAD")
    assert status == 206 and headers["Content-Length"] == "10"
    assert rig.counts.bytes == {True: 0, False: 0}


async def test_the_byte_cap_answers_503_past_it(make_rig: MakeRig) -> None:
    rig = await make_rig(segments={"vm_bytes": VmBytes(ByteBudget(1.0, 2.5 * len(BODY)))})
    await served(rig)
    statuses = [(await get(rig.client, "/live/vm/0/seg0.ts"))[0] for _ in range(4)]
    assert statuses == [200, 200, 503, 503]
    status, headers, _ = await get(rig.client, "/live/vm/0/seg0.ts")
    assert status == 503 and headers["Retry-After"] == "1"
    assert (await get(rig.client, "/live/vm/0/seg0.ts", {"Range": "bytes=0-99"}))[0] == 206  # what is left
    assert rig.counts.bytes[False] == 2 * len(BODY) + 100 and rig.counts.requests[503] == 3


async def unfollowed(rig: Rig, path: str = "/live/vm/0/seg0.ts",
                     address: str | None = None) -> tuple[int, Any, bytes]:
    """GET without following a redirect (the VM's to the bucket), from `address` as cloudflared names it."""
    headers = {"CF-Connecting-IP": address} if address else {}
    async with rig.client.request("GET", path, allow_redirects=False, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


async def test_while_the_bucket_serves_a_segment_it_holds_is_a_redirect_there(make_rig: MakeRig) -> None:
    """While the bucket serves, a player without steering on the VM's variants is redirected there."""
    rig = await make_rig(redirect=True)
    await served(rig)
    for path in ("/live/vm/0/seg0.ts", "/hls/vm/0/seg0.ts"):
        status, headers, body = await unfollowed(rig, path)
        assert (status, headers["Location"], headers["Cache-Control"]) == (302, "https://r2.example/0/seg0.ts",
                                                                           "no-store"), body
        assert headers["Access-Control-Allow-Origin"] == "*"
    assert rig.counts.bytes == {True: 0, False: 0} and rig.counts.requests == {302: 2}
    # Not listed by the VM's playlists: 404 as before, never a redirect built from the URL.
    assert (await unfollowed(rig, "/live/vm/0/seg7.ts"))[0] == 404


class Doubting:
    """The first bucket's doubt as SteeringLoop keeps it, each probe's outcome told by the test."""

    def __init__(self) -> None:
        self.failed_once = False
        self.waits = 0
        self._answered = asyncio.Event()

    def doubted(self) -> bool:
        return self.failed_once

    async def next_probe(self, seconds: float) -> None:
        self.waits += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._answered.wait()

    def probe(self, policy: SteeringPolicy, ok: bool) -> None:
        policy.probed("bucket", ok)
        self.failed_once = not ok and policy.bucket_serves()
        answered, self._answered = self._answered, asyncio.Event()
        answered.set()


async def test_while_the_buckets_last_probe_failed_a_redirect_waits_for_the_next(make_rig: MakeRig) -> None:
    """While the last probe failed, a request waits for the next (or DOUBT_WAIT) to choose."""
    doubt = Doubting()
    rig = await make_rig(redirect=True, doubt=doubt)
    await served(rig)
    for then in (True, False, None):  # the next probe answers, fails, or does not come
        doubt.probe(rig.policy, False)
        assert rig.policy.bucket_serves()  # one failure alone moves nobody
        waits = doubt.waits
        asked = asyncio.ensure_future(unfollowed(rig))
        await until(lambda: doubt.waits > waits, "the request waiting for the next probe", 10, every=0.01)
        assert not asked.done()
        if then is not None:
            doubt.probe(rig.policy, then)
        status, headers, body = await asyncio.wait_for(asked, 10)
        assert (status, body if status == 200 else headers["Location"]) == (
            (200, BODY) if then is False else (302, "https://r2.example/0/seg0.ts"))
        doubt.probe(rig.policy, True)  # the bucket answers: redirected at once, no wait
        assert (await unfollowed(rig))[0] == 302 and doubt.waits == waits + 1


async def test_a_listed_segment_the_vm_has_no_copy_of_is_the_buckets_while_it_serves(make_rig: MakeRig) -> None:
    """A listed segment with no copy and no file is the bucket's while it serves; steered away, a 404."""
    rig = await make_rig(redirect=True)
    await served(rig)
    rig.copies.close()  # nothing held any more
    (rig.folder / "0" / "seg0.ts").unlink()  # nor is Owncast's file there
    status, headers, _ = await unfollowed(rig)
    assert (status, headers.get("Location")) == (302, "https://r2.example/0/seg0.ts")
    assert (await unfollowed(rig, "/live/vm/0/seg7.ts"))[0] == 404  # nobody lists it: still nothing
    steer_away(rig)  # uploads fail: players steered to the VM, which has no copy to send
    assert (await unfollowed(rig))[0] == 404


async def test_a_listed_segment_nothing_held_is_owncasts_file_as_it_is_and_held_from_then_on(
        make_rig: MakeRig) -> None:
    """Steered to the VM, a segment held nowhere is Owncast's file as it is: rewritten, new; deleted, none."""
    rig = await make_rig(redirect=True)
    listed(rig)
    rig.copies.close()  # held nothing: as an upload that landed at once
    rig.copies.open()
    status, headers, _ = await unfollowed(rig)  # the bucket serves: a redirect,
    assert (status, headers.get("Location")) == (302, "https://r2.example/0/seg0.ts")
    assert len(rig.copies) == 0  # with no look at the VM's file
    steer_away(rig)
    status, headers, body = await get(rig.client, "/live/vm/0/seg0.ts")
    assert (status, body) == (200, BODY) and headers["ETag"].startswith('"')
    assert len(rig.copies) == 1  # held from then on: the same version answers the same ETag
    status, again, _ = await get(rig.client, "/live/vm/0/seg0.ts")
    assert (status, again["ETag"]) == (200, headers["ETag"])
    (rig.folder / "0" / "seg0.ts").write_bytes(BODY * 2)  # written again: its upload follows
    status, now, body = await get(rig.client, "/live/vm/0/seg0.ts")
    assert (status, body) == (200, BODY * 2) and now["ETag"] != headers["ETag"]
    (rig.folder / "0" / "seg0.ts").unlink()
    assert (await unfollowed(rig))[0] == 404
    (rig.folder / "0" / "seg1.ts").write_bytes(BODY)  # Owncast's, not listed yet: never looked for
    status, _, _ = await get(rig.client, "/live/vm/0/seg1.ts")
    assert status == 404 and rig.copies.get(key_for(0, "seg1.ts")) is None


async def beat(rig: Rig, page: str, address: str, pathway: str) -> int:
    """A heartbeat of page `page` from `address` saying `pathway` (Hb-Pathway)."""
    async with rig.client.post("/live/watching", headers={"Hb-Watching": page, "CF-Connecting-IP": address,
                                                          "Hb-Pathway": pathway}) as resp:
        return resp.status


async def forge(rig: Rig, address: str, page: str) -> None:
    """A forged page saying the bucket fails for it, in both forms of Hb-Pathway."""
    assert await beat(rig, page, address, "bucket 255 0 0") in (200, 204)
    assert await beat(rig, page, address, "bucket bucket=255 backup=255") in (200, 204)


async def test_the_vm_sends_bytes_while_steered_or_its_probe_failed_never_for_a_report(
        make_rig: MakeRig) -> None:
    rig = await make_rig(redirect=True)
    await served(rig)
    # Forged reports neither move players nor make the VM send anyone else its bytes.
    for n in range(100):
        await forge(rig, f"198.51.100.{n % 5}", f"forged-page-{n:016d}")
    rig.policy.evaluate()
    assert rig.policy.first == "bucket" and rig.policy.bucket_serves()
    status, _, body = await get(rig.client, "/live/steering.json")
    assert json.loads(body)["PATHWAY-PRIORITY"] == ["bucket", "vm"]
    assert (await unfollowed(rig, address="203.0.113.9"))[0] == 302
    assert (await unfollowed(rig))[0] == 302
    assert rig.counts.bytes == {False: 0, True: 0}
    # One lost probe is no outage; two in a row, the service's own evidence: the VM answers.
    rig.policy.probed("bucket", False, "timeout")
    assert (await unfollowed(rig))[0] == 302
    rig.policy.probed("bucket", False, "503")
    assert (await unfollowed(rig))[0] == 200
    rig.policy.probed("bucket", True)
    assert (await unfollowed(rig))[0] == 302
    # Steered to the VM (uploads failing): bytes.
    steer_away(rig)
    assert (await unfollowed(rig))[0] == 200
    assert rig.counts.bytes == {False: len(BODY), True: len(BODY)} and rig.counts.requests[302] == 4


STREAM = 1_200_000  # bits a second: Shown's highest variant (its BANDWIDTH)
ONE_SECOND = bytes(range(250)) * (STREAM // 8 // 250)  # a segment of one second at that bitrate


async def test_a_client_whose_own_page_fails_on_the_bucket_gets_one_streams_bitrate(
        make_rig: MakeRig) -> None:
    """A page reporting the bucket fails for it gets the VM's bytes at most one stream's bitrate (ten
    seconds' burst); everyone else a redirect. An IPv6 client is its /48."""
    rig = await make_rig(redirect=True, rate=10e6)
    clock = rig.clock
    await served(rig, ONE_SECOND)
    assert await beat(rig, "page-a-0123456789abcdef", "203.0.113.7", "vm bucket=2") in (200, 204)
    answers = [await unfollowed(rig, address="203.0.113.7") for _ in range(12)]
    assert [a[0] for a in answers] == [200] * 10 + [503] * 2  # ten seconds of the stream at once, then nothing
    assert {a[1]["Cache-Control"] for a in answers[:10]} == {"private, max-age=31536000, immutable"}
    assert rig.counts.requests["share"] == 2 and 503 not in rig.counts.requests
    assert (await unfollowed(rig, address="203.0.113.8"))[0] == 302  # anyone else: the bucket's copy
    clock.t += 1.0  # a second later: a second of the stream
    assert [(await unfollowed(rig, address="203.0.113.7"))[0] for _ in range(2)] == [200, 503]
    clock.t += REPORTED_FOR  # no report since: redirected again
    assert (await unfollowed(rig, address="203.0.113.7"))[0] == 302
    assert await beat(rig, "page-b-0123456789abcdef", "2001:db8:1:1::1", "- bucket=1") in (200, 204)
    assert (await unfollowed(rig, address="2001:db8:1:ffff::2"))[0] == 200
    assert (await unfollowed(rig, address="2001:db8:2::1"))[0] == 302
    assert rig.counts.bytes == {False: 12 * len(ONE_SECOND), True: 0}
    steer_away(rig)
    assert (await unfollowed(rig, address="203.0.113.8"))[0] == 200


async def test_forged_reporters_spend_a_quarter_and_a_real_outage_finds_the_rest(make_rig: MakeRig) -> None:
    """60 reporting addresses take together at most a quarter of VM_SEGMENT_MBPS and its burst, never a
    503; when the bucket really fails, steered viewers get every segment from the first second."""
    rate = 1_000_000.0  # bytes a second, ten seconds' burst
    rig = await make_rig(redirect=True, rate=rate)
    clock = rig.clock
    await served(rig, ONE_SECOND)
    forged = [f"198.51.100.{n}" for n in range(60)]
    for n, address in enumerate(forged):
        assert await beat(rig, f"forged-page-{n:016d}", address, "- bucket=255") in (200, 204)
    taken, seconds, step = 0, 5.0, 0.5
    for _ in range(int(seconds / step)):
        for address in forged:
            status, headers, body = await unfollowed(rig, address=address)
            assert status in (200, 503), status
            if status == 200:
                assert headers["Cache-Control"] == "private, max-age=31536000, immutable"
                taken += len(body)
        clock.t += step
    quarter = rate / 4
    assert taken <= quarter * (seconds + 10) + len(ONE_SECOND), taken
    assert taken >= quarter * 10, taken  # their burst, at least: they are served, within their part
    assert 503 not in rig.counts.requests and rig.counts.requests["reported"] > 0, rig.counts.requests
    # The bucket fails for the service itself: steered viewers, from the first request, get every segment.
    steer_away(rig)
    viewers = [f"203.0.113.{n}" for n in range(3)]
    answers = []
    for _ in range(5):
        for address in viewers:
            status, headers, body = await unfollowed(rig, address=address)
            answers.append((status, headers["Cache-Control"], len(body)))
        clock.t += 1.0
    assert answers == [(200, "public, max-age=31536000, immutable", len(ONE_SECOND))] * 15, answers


async def test_a_query_is_a_redirect_to_the_segment_without_it(rig: Rig) -> None:
    """One URL per segment: a fresh query on each request (a drain past the CDN) gets a redirect."""
    await served(rig)
    for path in ("/live/vm/0/seg0.ts?x=1", "/hls/vm/0/seg0.ts?_HLS_msn=3", "/live/vm/0/seg0.ts?x"):
        for method in ("GET", "HEAD"):
            async with rig.client.request(method, path, allow_redirects=False) as resp:
                body = await resp.read()
                assert resp.status == 302 and body == b"", (path, method)
                assert resp.headers["Location"] == path.split("?")[0]
                assert resp.headers["Cache-Control"] == "no-store"
    assert (await get(rig.client, "/live/vm/0/seg9.ts?x=1"))[0] == 404  # nothing listed: the bare URL's 404
    assert rig.counts.bytes == {False: 0, True: 0}
    assert (await get(rig.client, "/live/vm/0/seg0.ts?x=2"))[2] == BODY  # a player follows it


async def test_a_drain_gets_its_share_and_steered_viewers_theirs(make_rig: MakeRig) -> None:
    """Steered to the VM, a drain gets its share of VM_SEGMENT_MBPS, the viewers every segment."""
    rate = 1_000_000.0  # bytes a second; ten seconds' burst
    segment = bytes(range(250)) * 400  # 100 kB: each viewer needs one a second
    rig = await make_rig(rate=rate)
    clock = rig.clock
    await served(rig, segment)
    steer_away(rig)
    viewers = ("203.0.113.1", "203.0.113.2", "203.0.113.3")
    refused: list[tuple[float, str, int]] = []
    drain = 0
    seconds, step = 20, 0.125
    for tick in range(int(seconds / step)):
        if tick % int(1 / step) == 0:
            for address in viewers:
                status = (await unfollowed(rig, address=address))[0]
                if status != 200:
                    refused.append((clock.t, address, status))
        for _ in range(5):  # 40 requests a second, 4 MB/s asked: four times the cap
            status, _, body = await unfollowed(rig, address="198.51.100.66")
            drain += len(body) if status == 200 else 0
        clock.t += step
    assert refused == []
    share = rate / (len(viewers) + 1)
    assert drain <= share * seconds + share * 10 + len(segment), (drain, share)
    assert drain >= 0.9 * share * seconds  # and it does get its share
    assert rig.counts.requests.get("share", 0) > 0 and 503 not in rig.counts.requests


class Waiting(Shown):
    """The bucket's playlists, holding a blocking request as VisiblePlaylists does (polling, here)."""

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Any:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while (rendered := self.media_playlist(variant)) is None or rendered.last_sequence < sequence:
                    await asyncio.sleep(0.01)
                return rendered
        return None


def in_bucket(shown: Waiting, located: Located) -> InBucket:
    """Where the VM redirects to, with the bucket serving."""
    steering = SteeringPolicy(("bucket", "vm"), {"bucket": BucketSignals(behind=lambda: 0.0)}, lambda: 2,
                              interval=1.0)
    return InBucket(steering, located, shown, key_for, Doubting())


async def test_the_redirect_waits_for_the_upload_to_land_in_the_bucket() -> None:
    shown = Waiting()
    located = Located(shown)
    there = in_bucket(shown, located)
    located.vm.update({key_for(0, "seg2.ts"), key_for(0, "seg3.ts"), key_for(0, "seg4.ts")})
    assert there.now(0, "seg2.ts") == "https://r2.example/0/seg2.ts"
    assert there.now(0, "seg3.ts") is None and there.now(2, "seg0.ts") is None
    # Listed by the VM's pathway first: the redirect waits for the upload to land.
    waiting = asyncio.ensure_future(there.within(0, "seg3.ts"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    shown.add_segment(0)
    assert await asyncio.wait_for(waiting, 1) == "https://r2.example/0/seg3.ts"
    assert await there.within(0, "seg9.ts") is None  # not listed by the VM's pathway: never waited for


class NeverLands(Located):
    """A segment the bucket's playlist lists past but never lands; counts the questions."""

    asked = 0

    def found(self, pathway: str, key: str) -> tuple[int, str | None] | None:
        self.asked += 1
        return (0, None) if key in self.vm else None


async def test_the_redirect_does_not_spin_on_a_segment_that_never_lands() -> None:
    """A segment listed but never landed is asked twice, not in a loop that starves the event loop."""
    shown = Waiting()
    shown.add_segment(0)
    located = NeverLands(shown)
    there = in_bucket(shown, located)
    located.vm.add(key_for(0, "seg0.ts"))
    assert await asyncio.wait_for(there.within(0, "seg0.ts"), 30) is None  # the VM answers (or says late)
    assert located.asked == 2


def asking(rig: Rig, address: str) -> asyncio.Task[tuple[int, Any, bytes]]:
    """A GET of seg0.ts from `address`, on its way."""
    return asyncio.ensure_future(get(rig.client, "/live/vm/0/seg0.ts", {"CF-Connecting-IP": address}))


class SlowCopies:
    """A held copy of variant 0's seg0.ts whose reads wait for the test: answers being sent pile up."""

    def __init__(self) -> None:
        self.copy = HeldFile(key_for(0, "seg0.ts"), ("0", "seg0.ts"), Stamp(1, len(BODY), 0), len(BODY), 1e9,
                             "video/mp2t", 0.0)
        self.go = threading.Event()

    def servable(self, key: str) -> HeldFile | None:
        return self.copy

    def read(self, copy: HeldFile) -> bytes:
        self.go.wait(timeout=30)
        return BODY


class GoneCopies(SlowCopies):
    """A copy dropped between its lookup and its first read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, copy: HeldFile) -> bytes:
        self.reads += 1
        if self.reads == 1:
            raise FileNotFoundError(copy.key)
        return BODY


async def test_a_copy_gone_before_its_read_costs_no_share_of_the_bytes(make_rig: MakeRig) -> None:
    """A 404 for a copy gone before its read gives its bytes back (else the next would be a 503)."""
    gone = GoneCopies()
    rig = await make_rig(segments={"copies": gone, "vm_bytes": VmBytes(ByteBudget(1.0, len(BODY)))})
    assert (await get(rig.client, "/live/vm/0/seg0.ts"))[0] == 404
    status, _headers, body = await get(rig.client, "/live/vm/0/seg0.ts")
    assert (status, body) == (200, BODY)


async def test_answers_in_flight_are_bounded_per_client_and_in_all(make_rig: MakeRig) -> None:
    slow = SlowCopies()
    rig = await make_rig(segments={"copies": slow, "vm_bytes": VmBytes(ByteBudget(1e9, 1e9), 8)})
    segments = rig.segments
    first = [asking(rig, "203.0.113.1") for _ in range(2)]
    await until(lambda: segments.sending == 2)
    assert (await asking(rig, "203.0.113.1"))[0] == 503  # its share: 8 // 4
    others = [asking(rig, f"203.0.113.{n}") for n in range(2, 8)]
    await until(lambda: segments.sending == 8)
    assert (await asking(rig, "198.51.100.1"))[0] == 503  # all 8 taken
    slow.go.set()
    assert [(await t)[0] for t in first + others] == [200] * 8


async def test_reporters_hold_a_quarter_of_the_answers_in_flight(make_rig: MakeRig) -> None:
    """Reporting clients hold at most a quarter of the answers in flight; steered viewers find the rest."""
    slow = SlowCopies()
    serves = [True]
    own = OwnFailure(lambda: serves[0], lambda client: (client or "").startswith("198.51.100."), lambda: STREAM)
    rig = await make_rig(segments={"copies": slow, "vm_bytes": VmBytes(ByteBudget(1e9, 1e9), 8),
                                   "own_failure": own})
    segments = rig.segments
    reporters = [asking(rig, f"198.51.100.{n}") for n in range(2)]
    await until(lambda: segments.sending == 2)
    assert (await asking(rig, "198.51.100.9"))[0] == 503  # their quarter of 8, whoever asks
    assert rig.counts.requests == {"reported": 1}
    serves[0] = False  # the bucket fails: every client is steered, and the rest is theirs
    viewers = [asking(rig, f"203.0.113.{n}") for n in range(6)]
    await until(lambda: segments.sending == 8)
    slow.go.set()
    assert [(await t)[0] for t in reporters + viewers] == [200] * 8


class Holding(Shown):
    """The bucket's playlists, noting how long each blocking request would be held."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Any:
        self.timeouts.append(timeout)
        return await super().wait_for_sequence(variant, sequence, timeout)


async def test_steered_away_the_buckets_playlists_hold_no_player_for_uploads_that_fail(make_rig: MakeRig) -> None:
    """A blocking request on the failing bucket's pathway would stall Shaka's move to the VM."""
    vm_newest = [10]
    shown = Holding()
    rig = await make_rig(shown=shown, newest=lambda v: vm_newest[0])
    newest = shown.media_playlist(0).last_sequence  # type: ignore[union-attr]
    ask = f"/live/0/playlist.m3u8?_HLS_msn={newest + 1}"
    assert (await get(rig.client, ask))[0] == 200  # the fake holds nothing: the timeout is what counts
    assert shown.timeouts == [hls.block_timeout(2)]  # the bucket serves: held three target durations
    steer_away(rig)
    shown.timeouts.clear()
    status, _headers, body = await get(rig.client, ask)  # the VM lists it: answered at once, as it is
    assert (status, body, shown.timeouts) == (200, shown.media_playlist(0).body, [])  # type: ignore[union-attr]
    vm_newest[0] = newest  # the VM does not list it yet either: held one target duration, then as it is
    status, _headers, body = await get(rig.client, ask)
    assert (status, shown.timeouts) == (200, [2.0])


async def test_a_request_held_before_players_are_steered_away_is_answered_then() -> None:
    playlists = VisiblePlaylists()
    playlists.show({0: Rendered(b"#EXTM3U\n", last_sequence=4)})
    held = asyncio.ensure_future(playlists.wait_for_sequence(0, 5, 30))
    await asyncio.sleep(0.05)
    assert not held.done()
    playlists.answer_held()
    assert (await asyncio.wait_for(held, 1)).last_sequence == 4  # type: ignore[union-attr]
    later = asyncio.ensure_future(playlists.wait_for_sequence(0, 5, 0.2))  # after it: held as before
    assert await later is None


@pytest.mark.parametrize("cancelled", [True, False], ids=["cancelled", "write_fails"])
async def test_a_client_that_resets_mid_answer_is_counted_not_logged(
        make_rig: MakeRig, caplog: pytest.LogCaptureFixture, cancelled: bool) -> None:
    """A reset is a count (status="reset"), not an ERROR traceback, cancelled or not."""
    caplog.set_level(logging.DEBUG)
    rig = await make_rig(handler_cancellation=cancelled)
    big = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than the sockets' buffers hold
    await served(rig, big)
    resets = 5
    for _ in range(resets):
        reader, writer = await asyncio.open_connection(rig.client.host, rig.client.port)
        writer.write(f"GET /live/vm/0/seg0.ts HTTP/1.1\r\nHost: {rig.client.host}\r\n\r\n".encode())
        await writer.drain()
        assert (await reader.readexactly(12)).startswith(b"HTTP/1.1 200")
        await reader.readexactly(64 * 1024)  # part of the body: then the connection is reset (RST)
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                               struct.pack("ii", 1, 0))
        writer.close()
    await until(lambda: rig.counts.requests.get("reset", 0) == resets, "every reset counted", 10,
                detail=lambda: (rig.counts.requests, [r.getMessage() for r in caplog.records][-3:]))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert (await get(rig.client, "/live/vm/0/seg0.ts"))[2] == big  # and the next is answered whole


async def test_while_the_bucket_serves_a_segment_not_landed_yet_is_asked_again_not_sent(
        make_rig: MakeRig) -> None:
    """While the bucket serves, a segment not landed within the wait is a 503, not the VM's bytes."""
    async def never(variant: int, name: str) -> None:
        return None

    not_yet = SimpleNamespace(now=lambda variant, name: None, within=never)  # the bucket never has it in time
    rig = await make_rig(segments={"bucket": not_yet})
    await served(rig)
    status, headers, body = await unfollowed(rig)
    assert (status, headers["Retry-After"], rig.counts.requests) == (503, "1", {"late": 1})
    steer_away(rig)  # players away from the bucket: the VM sends it
    assert (await unfollowed(rig))[2] == BODY
