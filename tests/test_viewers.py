"""The viewer count (status/audience.py) and the page's framing policy, in process."""

from __future__ import annotations

import ipaddress
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from pytest_aiohttp import AiohttpClient

from broadcaster.http import PlaylistOptions, ViewerOptions, Viewers, create_app
from broadcaster.http.clients import Proxies, client_address
from broadcaster.http.page_policy import media_origins, page_policy
from broadcaster.http.watching import client_key
from broadcaster.metrics import AudienceMetrics, Metrics
from broadcaster.service import default_viewer_dir
from broadcaster.settings import Settings, SettingsError, load_settings
from broadcaster.status.audience import Audience
from tests.support.client import new_id
from tests.support.fakes import Clock, FakeHealth, FakePlaylists
from tests.support.owncast_viewers import OwncastViewers
from tests.support.scrape import parsed

VIEWER = default_viewer_dir()


def test_a_page_counts_until_its_timeout_after_its_last_beat_or_until_it_leaves() -> None:
    clock = Clock()
    audience = Audience(30, clock=clock)
    a, b = new_id(), new_id()
    assert audience.beat(a, "198.51.100.1", p2p=False) and audience.beat(b, "198.51.100.2", p2p=True)
    assert (audience.watching, audience.p2p) == (2, 1)
    assert audience.beat(a, "198.51.100.1", p2p=False)  # the same page again: still one
    assert audience.watching == 2
    clock.t += 20
    assert audience.beat(a, "198.51.100.1", p2p=False)
    clock.t += 10.001  # b's last beat 30 s ago: gone; a beat 10 s ago: stays
    assert (audience.watching, audience.p2p) == (1, 0)
    audience.leave(a)
    assert audience.watching == 0
    audience.leave(a)  # twice, or an unknown id: nothing
    audience.leave("not-an-id")
    assert audience.watching == 0


def test_p2p_on_or_off_counts_the_same_and_only_splits_the_count() -> None:
    """P2P does not change who is counted: the same pages with it on, off, or switching."""
    audience = Audience(30, clock=Clock())
    ids = [new_id() for _ in range(6)]
    for i, viewer in enumerate(ids):
        assert audience.beat(viewer, f"198.51.100.{i}", p2p=i % 2 == 0)
    assert (audience.watching, audience.p2p) == (6, 3)
    for i, viewer in enumerate(ids):
        assert audience.beat(viewer, f"198.51.100.{i}", p2p=True)
    assert (audience.watching, audience.p2p) == (6, 6)
    for i, viewer in enumerate(ids):
        assert audience.beat(viewer, f"198.51.100.{i}", p2p=False)
    assert (audience.watching, audience.p2p) == (6, 0)


def test_a_flood_of_fake_heartbeats_from_one_address_adds_at_most_per_client() -> None:
    clock = Clock()
    audience = Audience(30, per_client=20, limit=1000, clock=clock)
    real = [new_id() for _ in range(5)]
    for i, viewer in enumerate(real):
        assert audience.beat(viewer, f"192.0.2.{i}", p2p=False)
    counted = sum(audience.beat(new_id(), "203.0.113.7", p2p=False) for _ in range(10_000))
    assert counted == 20 and audience.watching == 5 + 20
    assert audience.refused["per_client"] == 10_000 - 20
    # The same from 30 addresses: 30 x 20 at most, and the real viewers keep being counted.
    for n in range(30):
        for _ in range(50):
            audience.beat(new_id(), f"198.18.{n}.1", p2p=False)
    assert audience.watching == 5 + 20 + 30 * 20
    assert all(audience.beat(viewer, f"192.0.2.{i}", p2p=False) for i, viewer in enumerate(real))
    # Once the flood stops, its ids expire: the count comes back to the real viewers.
    clock.t += 15
    assert all(audience.beat(viewer, f"192.0.2.{i}", p2p=False) for i, viewer in enumerate(real))
    clock.t += 15.001
    assert audience.watching == 5


def test_the_total_cap_holds_whatever_the_addresses_and_ids_already_counted_keep_beating() -> None:
    audience = Audience(30, per_client=20, limit=100, clock=Clock())
    first = new_id()
    assert audience.beat(first, None, p2p=False)  # an unknown address: only the total cap applies
    counted = sum(audience.beat(new_id(), None, p2p=False) for _ in range(1000))
    assert counted == 99 and audience.watching == 100 and audience.refused["limit"] == 901
    assert audience.beat(first, None, p2p=True)  # already counted: still beats
    assert len(audience._viewers) == 100 and sum(audience._per_client.values()) == 0


def test_ids_must_be_what_the_page_makes() -> None:
    audience = Audience(30, clock=Clock())
    for bad in ("", "short", "x" * 65, "a" * 15 + "/", "ä" * 20, "a" * 16 + "\n"):
        assert not audience.beat(bad, "192.0.2.1", p2p=False)
    assert audience.watching == 0 and audience.refused["bad_id"] == 6


def test_addresses_are_never_kept_only_a_keyed_hash() -> None:
    audience = Audience(30, clock=Clock())
    audience.beat(new_id(), "198.51.100.77", p2p=False)
    kept = repr(audience.__dict__) + repr(list(audience._viewers.values())) + repr(audience._per_client)
    assert "198.51.100.77" not in kept and hash("198.51.100.77") not in audience._per_client


def test_a_page_that_moves_to_another_network_is_counted_once() -> None:
    audience = Audience(30, per_client=1, clock=Clock())
    page = new_id()
    assert audience.beat(page, "192.0.2.1", p2p=False)
    assert audience.beat(page, "198.51.100.1", p2p=False)  # Wi-Fi to mobile
    assert audience.watching == 1
    assert audience.beat(new_id(), "192.0.2.1", p2p=False)  # its old address's slot is free again


async def client_for(aiohttp_client: AiohttpClient, audience: Audience, *, trust_cf: bool = True,
                     **options: Any) -> TestClient[web.Request, web.Application]:
    assert VIEWER is not None
    metrics = Metrics()
    AudienceMetrics(metrics.registry, lambda: audience.watching, lambda: audience.p2p, lambda: audience.refused)
    app = create_app(FakePlaylists(6, 1), FakeHealth(), metrics,
                     playlist_options=PlaylistOptions(trust_cf_connecting_ip=trust_cf),
                     viewer_options=ViewerOptions(VIEWER, viewers=Viewers(audience), **options))
    return await aiohttp_client(app)


async def test_the_heartbeat_counts_answers_the_count_uncached_and_metrics_export_it(
        aiohttp_client: AiohttpClient) -> None:
    audience = Audience(30, per_client=3)
    client = await client_for(aiohttp_client, audience)
    ids = [new_id() for _ in range(5)]
    answers = []
    for n, viewer in enumerate(ids):
        response = await client.post("/live/watching", headers={
            "Hb-Watching": f"{viewer} p2p" if n % 2 else viewer, "CF-Connecting-IP": f"192.0.2.{n}"})
        answers.append((response.status, await response.json(), response.headers["Cache-Control"]))
    assert answers == [(200, {"watching": n + 1}, "no-store") for n in range(5)]
    # A flood behind one address (CF-Connecting-IP): 429 past the cap, not counted.
    statuses = [(await client.post("/live/watching", headers={
        "Hb-Watching": new_id(), "CF-Connecting-IP": "203.0.113.9"})).status for _ in range(10)]
    assert statuses == [200] * 3 + [429] * 7
    samples = parsed(await (await client.get("/metrics")).text())
    assert samples[("hls_broadcaster_viewers", ())] == 8
    assert samples[("hls_broadcaster_viewers_p2p", ())] == 2
    assert samples[("hls_broadcaster_viewer_heartbeats_refused_total", (("reason", "per_client"),))] == 7
    # Leaving: out at once; a GET is no heartbeat (nothing cacheable counts).
    leave = await client.post("/live/watching", headers={"Hb-Watching": f"{ids[0]} leave"})
    assert leave.status == 204 and audience.watching == 7
    assert (await client.get("/live/watching", headers={"Hb-Watching": new_id()})).status == 404
    assert audience.watching == 7


async def test_with_p2p_on_the_answer_counts_the_pages_that_share(aiohttp_client: AiohttpClient) -> None:
    """Also with the count hidden; P2P off, nothing of it (p2p-choice.js waits for P2P_MIN_VIEWERS)."""
    audience = Audience(30, per_client=3)
    client = await client_for(aiohttp_client, audience, p2p_trackers=("ws://127.0.0.1:9",), show_viewer_count=False)
    answers = []
    for n, word in enumerate(["", " p2p", " p2p", ""]):
        response = await client.post("/live/watching", headers={
            "Hb-Watching": new_id() + word, "CF-Connecting-IP": f"192.0.2.{n}"})
        answers.append((response.status, await response.json()))
    assert answers == [(200, {"sharing": 0}), (200, {"sharing": 1}), (200, {"sharing": 2}), (200, {"sharing": 2})]
    shown = await client_for(aiohttp_client, Audience(30, per_client=3), p2p_trackers=("ws://127.0.0.1:9",))
    response = await shown.post("/live/watching", headers={"Hb-Watching": new_id() + " p2p"})
    assert (response.status, await response.json()) == (200, {"watching": 1, "sharing": 1})
    off = await client_for(aiohttp_client, Audience(30, per_client=3), show_viewer_count=False)
    assert (await off.post("/live/watching", headers={"Hb-Watching": new_id() + " p2p"})).status == 204


async def test_another_sites_page_cannot_beat(aiohttp_client: AiohttpClient) -> None:
    """The page's own beats (also framed) and clients that are no browser count."""
    audience = Audience(30)
    client = await client_for(aiohttp_client, audience)
    preflight = await client.options("/live/watching", headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "hb-watching"})
    assert preflight.status == 403
    assert not [name for name in preflight.headers if name.lower().startswith("access-control-")]
    for site in ("cross-site", "same-site", "junk"):
        beat = await client.post("/live/watching", headers={"Hb-Watching": new_id(), "Sec-Fetch-Site": site,
                                                            "Origin": "https://elsewhere.example"})
        assert beat.status == 403 and "Access-Control-Allow-Origin" not in beat.headers
    assert audience.watching == 0 and audience.refused["other_site"] == 3
    for own in ("same-origin", None):
        headers = {"Hb-Watching": new_id(), **({"Sec-Fetch-Site": own} if own else {})}
        assert (await client.post("/live/watching", headers=headers)).status == 200
    assert audience.watching == 2
    # Every other path's preflight is still granted (players on other origins read the playlists).
    other = await client.options("/live/master.m3u8", headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"})
    assert other.status == 204 and other.headers["Access-Control-Allow-Origin"] == "*"


async def test_with_the_count_hidden_the_heartbeat_still_counts_and_answers_nothing(
        aiohttp_client: AiohttpClient) -> None:
    audience = Audience(30)
    client = await client_for(aiohttp_client, audience, show_viewer_count=False)
    response = await client.post("/live/watching", headers={"Hb-Watching": new_id()})
    assert (response.status, await response.read(), audience.watching) == (204, b"", 1)
    config = await (await client.get("/config.json")).json()
    assert config["viewers"] == {"beat": 10.0, "show": False} and "owncast" not in config
    assert "sources" not in config  # this service's playlists only


async def test_config_names_owncasts_ping_the_beat_from_the_timeout_and_other_sources(
        aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, Audience(3), viewer_timeout=3,
                              owncast_url="https://stream.example.com", sources=("https://other.example",))
    config = await (await client.get("/config.json")).json()
    assert config["viewers"] == {"beat": 1.0, "show": True} and config["sources"] == ["https://other.example"]
    assert config["owncast"] == {"ping": "https://stream.example.com/api/ping", "every": 1.0,
                                 "cmcd": "https://stream.example.com/api/metrics/cmcd",
                                 "metrics": "https://stream.example.com/api/metrics/playback", "report": 1.0}
    long = await client_for(aiohttp_client, Audience(60), viewer_timeout=60, owncast_url="https://o.example")
    config = await (await long.get("/config.json")).json()
    assert config["owncast"]["every"] == 5.0  # well inside Owncast's 15 s, whatever our timeout
    assert config["owncast"]["report"] == 10.0  # as often as Owncast's own page reports


async def test_the_page_and_its_embed_form_say_who_may_frame_them(aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, Audience(30), frame_ancestors="https://a.example https://*.b.example")
    for path in ("/", "/index.html", "/?embed=1", "/embed"):
        response = await client.get(path)
        assert response.status == 200, path
        policy = response.headers["Content-Security-Policy"].split("; ")
        assert policy[-1] == "frame-ancestors https://a.example https://*.b.example", policy
        assert "script-src 'self'" in policy and "default-src 'self'" in policy, policy
        again = await client.get(path, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status == 304 and again.headers["Content-Security-Policy"] == response.headers[
            "Content-Security-Policy"], path
    page = await (await client.get("/")).text()
    embed = await (await client.get("/embed")).text()
    assert '<html class="embed" lang="en">' in embed and "class=\"embed\"" not in page
    assert embed.replace('<html class="embed"', "<html") == page  # the same page, the same versioned files
    # The page's files are not documents: no framing policy on them.
    css = await client.get("/viewer.min.css", allow_redirects=True)
    assert css.status == 200 and "Content-Security-Policy" not in css.headers


def settings_with(**over: str) -> Settings:
    env = {"HLS_DIR": "/", "S3_ENDPOINT_URL": "http://s3.example", "AWS_ACCESS_KEY_ID": "k",
           "AWS_SECRET_ACCESS_KEY": "s", "AWS_BUCKET_NAME": "bucket", "R2_PUBLIC_URL": "https://cdn.example",
           "STATE_DIR": "/nonexistent/state", **over}  # not /tmp: STATE_DIR's check reads what is in it
    return load_settings(environ=env, make_state_dir=False)


# VIEWER_SOURCES: what ?src= may play besides the service's own playlists (viewer.js checks it).
@pytest.mark.parametrize(("name", "given", "value"), [
    ("FRAME_ANCESTORS", None, "'self'"), ("FRAME_ANCESTORS", "self", "'self'"),
    ("FRAME_ANCESTORS", "'self' https://Example.com", "'self' https://example.com"),
    ("FRAME_ANCESTORS", "https://a.example, https://*.b.example:8443", "https://a.example https://*.b.example:8443"),
    ("FRAME_ANCESTORS", "*", "*"), ("FRAME_ANCESTORS", "none", "'none'"), ("FRAME_ANCESTORS", "'none'", "'none'"),
    ("VIEWER_SOURCES", None, ()), ("VIEWER_SOURCES", "", ()), ("VIEWER_SOURCES", "*", ("*",)),
    ("VIEWER_SOURCES", "https://A.example/ http://b.example:8080", ("https://a.example", "http://b.example:8080")),
])
def test_frame_ancestors_and_viewer_sources_settings(name: str, given: str | None, value: object) -> None:
    over = {} if given is None else {name: given}
    assert getattr(settings_with(**over), name.lower()) == value


@pytest.mark.parametrize(("name", "bad"), [
    *(("FRAME_ANCESTORS", bad) for bad in [
        "https://a.example/path", "javascript:alert(1)", "* https://a.example", "'none' 'self'", "a.example",
        "https://a.example;script-src *",
        # every .com site, a port that cannot be, labels that cannot be
        "http://*.com", "https://*.com:443", "https://a.example:99999", "https://a.example:0", "https://a..example",
        "https://-a.example"]),
    *(("VIEWER_SOURCES", bad) for bad in [
        "https://a.example/path", "a.example", "* https://a.example", "https://a.example:99999",
        "javascript:alert(1)"]),
])
def test_a_bad_frame_ancestors_or_viewer_sources_is_one_line_naming_it(name: str, bad: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}="):
        settings_with(**{name: bad})


@pytest.mark.parametrize("public", ["https://*.co.uk", "https://*.github.io", "https://*.pages.dev",
                                    "https://*.CO.UK:8443", "http://*.blogspot.com", "https://*.s3.amazonaws.com"])
def test_a_wildcard_over_a_public_suffix_is_refused(public: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`*.github.io` would let anyone's site frame the page (the shipped Public Suffix List: no network)."""
    def no_network(*_: object, **__: object) -> None:
        raise OSError("no network in this test")

    monkeypatch.setattr("socket.socket.connect", no_network)
    with pytest.raises(SettingsError, match=r"^FRAME_ANCESTORS=") as raised:
        settings_with(FRAME_ANCESTORS=f"'self' {public}")
    assert "public suffix" in str(raised.value) and "\n" not in str(raised.value)
    # A site under such a suffix is a name someone registered: its subdomains may frame the page.
    site = public.replace("*.", "*.mine.")
    assert settings_with(FRAME_ANCESTORS=site).frame_ancestors == site.lower()


def test_viewer_settings_defaults_and_bounds() -> None:
    s = settings_with()
    assert (s.viewer_timeout, s.show_viewer_count, s.owncast_url) == (30, True, "")
    for bad in ("2", "601", "x"):
        with pytest.raises(SettingsError, match=r"^VIEWER_TIMEOUT="):
            settings_with(VIEWER_TIMEOUT=bad)
    with pytest.raises(SettingsError, match=r"^OWNCAST_URL="):
        settings_with(OWNCAST_URL="stream.example.com")
    assert settings_with(OWNCAST_URL="https://o.example/").owncast_url == "https://o.example"


async def test_the_owncast_stand_in_tells_viewers_apart_as_owncast_does() -> None:
    async with OwncastViewers(purge_timeout=60, prune_every=60) as owncast, aiohttp.ClientSession() as http:
        async def ping(user_agent: str, forwarded: str | None = None) -> None:
            headers = {"User-Agent": user_agent}
            if forwarded is not None:
                headers["X-Forwarded-For"] = forwarded
            async with http.get(f"{owncast.url}/api/ping", headers=headers) as response:
                assert response.status == 200 and "Access-Control-Allow-Origin" not in response.headers

        await ping("A")
        await ping("A")  # the same address and User-Agent: one viewer
        await ping("B")
        await ping("A", "203.0.113.5, 10.0.0.1")  # the first X-Forwarded-For entry is the address
        await ping("A", "::ffff:203.0.113.5")  # IPv4-mapped: the same viewer
        await ping("A", "203.0.113.5:4711")  # host:port: the host
        assert sorted(v.address for v in owncast.viewers.values()) == ["127.0.0.1", "127.0.0.1", "203.0.113.5"]
        await ping("A", "2001:db8::1")  # a bare IPv6 address fails SplitHostPort: Owncast uses ""
        assert "" in {v.address for v in owncast.viewers.values()}
        async with http.get(f"{owncast.url}/api/status") as response:
            assert (await response.json())["viewerCount"] == 4
        owncast.stream_connected = False  # SetViewerActive does nothing while offline
        await ping("C")
        assert owncast.viewer_count == 4


@pytest.mark.parametrize("trust_cf", [False, True])
@pytest.mark.parametrize("peer", ["198.51.100.4", "127.0.0.1", "::1", "2001:db8:1:2:3:4:5:6", "::ffff:192.0.2.9",
                                  "::ffff:127.0.0.1"])
def test_the_heartbeats_client_key_is_the_held_caps_address_but_an_ipv6_clients_48(peer: str,
                                                                                     trust_cf: bool) -> None:
    """client_key finds the address client_address finds; an IPv6 client by its /48, as the tracker counts."""
    proxies = Proxies(cloudflare=trust_cf)
    for headers in ({}, {"CF-Connecting-IP": peer}):
        request = make_mocked_request("POST", "/live/watching", headers=headers)
        request._transport_peername = (peer, 40000)
        found = client_address(request, proxies)
        if found is not None and ":" in found:
            found = str(ipaddress.IPv6Network(found).supernet(new_prefix=48))
        assert client_key(request, proxies) == found, headers
    for a, b in (("2001:db8:1:2::1", "2001:db8:1:ffff::9"), ("2001:db8:1::1", "2001:db8:1:8000::")):
        keys = set()
        for address in (a, b):
            request = make_mocked_request("POST", "/live/watching", headers={"CF-Connecting-IP": address})
            request._transport_peername = ("127.0.0.1", 40000)
            keys.add(client_key(request, Proxies(cloudflare=True)))
        assert keys == {"2001:db8:1::/48"}, keys


def policy_of(**over: str) -> dict[str, list[str]]:
    s = settings_with(**over)
    value = page_policy(frame_ancestors=s.frame_ancestors, media=media_origins(s), trackers=s.p2p_trackers,
                        owncast_url=s.owncast_url, sources=s.viewer_sources)
    return {d.split(" ")[0]: d.split(" ")[1:] for d in value.split("; ")}


def test_the_page_policy_allows_scripts_from_here_alone_and_connections_to_what_the_settings_name() -> None:
    plain = policy_of()
    assert plain["script-src"] == ["'self'"] and plain["default-src"] == ["'self'"]
    assert plain["style-src"] == ["'self'"] and plain["object-src"] == ["'none'"] and plain["base-uri"] == ["'none'"]
    assert plain["connect-src"] == ["'self'", "https://cdn.example"]
    assert plain["media-src"] == ["'self'", "blob:", "https://cdn.example"]
    assert plain["worker-src"] == ["'self'", "blob:"] and plain["frame-ancestors"] == ["'self'"]
    every = policy_of(P2P_TRACKERS="wss://tracker.example.com/announce,ws://127.0.0.1:8000",
                      OWNCAST_URL="https://owncast.example.com", FRAME_ANCESTORS="https://a.example")
    assert every["connect-src"] == ["'self'", "https://cdn.example", "wss://tracker.example.com",
                                    "ws://127.0.0.1:8000", "https://owncast.example.com"]
    assert every["script-src"] == ["'self'"] and every["frame-ancestors"] == ["https://a.example"]
    presigned = policy_of(SEGMENT_URLS="presigned", R2_PUBLIC_URL="", PRESIGN_EXPIRY="7200",
                          S3_ENDPOINT_URL="https://acct.r2.cloudflarestorage.com")
    assert presigned["connect-src"] == ["'self'", "https://acct.r2.cloudflarestorage.com"]
    # Another site's playlists may name segments anywhere: https: for them, http: only when one is http.
    assert policy_of(VIEWER_SOURCES="https://other.example")["connect-src"][-2:] == ["https://other.example", "https:"]
    assert policy_of(VIEWER_SOURCES="*")["connect-src"][-2:] == ["https:", "http:"]
    assert all("'unsafe" not in value for values in policy_of(VIEWER_SOURCES="*").values() for value in values)
