"""broadcaster.http over real HTTP: the real app, fake playlist and health sources at the seam (real
ManifestGenerators, so real ETags and gzip copies); clients do not decompress: the bytes that were sent."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient
from yarl import URL

from broadcaster.playlist import deflate, hls
from broadcaster.playlist.rendered import Rendered
from broadcaster.metrics import ConnectionMetrics, Metrics
from broadcaster.http import PlaylistOptions, Running, ViewerOptions, answers, create_app, create_metrics_app
from tests.support.client import PLAIN, Client, get, playlist_counts
from tests.support.fakes import FakeHealth, FakePlaylists
from tests.support.waiting import until

MakeClient = Callable[..., Awaitable[Client]]

GZIP = {"Accept-Encoding": "gzip"}
MEDIA = "/live/playlist.m3u8"
MASTER = "/live/master.m3u8"


def ready_playlists(target_duration: int = 6, variants: int = 2) -> FakePlaylists:
    playlists = FakePlaylists(target_duration, variants)
    for i in range(variants):
        playlists.add_segment(i)
    text = "#EXTM3U\n" + "".join(f"#EXT-X-STREAM-INF:BANDWIDTH={(i + 1) * 1_000_000}\n{i}/playlist.m3u8\n"
                                 for i in range(variants))
    playlists.master = Rendered(text.encode())
    playlists.owncast_master = Rendered(text.replace("/playlist.m3u8", "/stream.m3u8").encode())
    return playlists


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def make_client(aiohttp_client: AiohttpClient, metrics: Metrics) -> MakeClient:
    async def make(playlists: Any = None, health: Any = None, *, default_variant: int = 0,
                   viewer_dir: Path | ViewerOptions | None = None, **kwargs: Any) -> Client:
        app = create_app(
            ready_playlists() if playlists is None else playlists, health or FakeHealth(), metrics,
            playlist_options=PlaylistOptions(default_variant=default_variant),
            viewer_options=ViewerOptions(viewer_dir) if isinstance(viewer_dir, Path) else viewer_dir,
            **kwargs,
        )
        return await aiohttp_client(app, auto_decompress=False)

    return make


@pytest.mark.parametrize("target_duration", [1, 3, 6])
async def test_playlists_have_hls_type_and_short_cache(make_client: MakeClient, target_duration: int) -> None:
    playlists = ready_playlists(target_duration)
    client = await make_client(playlists)
    for path, expected in [
        (MEDIA, playlists.generators[0].render()),
        ("/live/1/playlist.m3u8", playlists.generators[1].render()),
        (MASTER, playlists.master),
    ]:
        status, headers, body = await get(client, path, {**PLAIN, "Origin": "https://viewer.example"})
        assert status == 200
        assert expected is not None and body == expected.body
        assert headers["Content-Type"] == hls.PLAYLIST_CONTENT_TYPE
        assert headers["Cache-Control"] == hls.playlist_cache_control(target_duration)
        # Never cached past one target duration, or players would miss new segments (B.1).
        max_age = int(headers["Cache-Control"].split("max-age=")[1])
        assert 1 <= max_age <= target_duration
        assert headers["Server"] == "hls-broadcaster"
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert "ETag" in headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("if_none_match", ["{etag}", 'W/{etag}', '"nope", {etag}', 'W/"x",W/{etag}', "*"])
async def test_matching_etag_gets_304_without_body(make_client: MakeClient, if_none_match: str) -> None:
    playlists = ready_playlists()
    client = await make_client(playlists)
    etag = playlists.generators[0].render().etag
    for method in ("GET", "HEAD"):
        status, headers, body = await get(
            client, MEDIA, {**PLAIN, "If-None-Match": if_none_match.format(etag=etag)}, method
        )
        assert (status, body) == (304, b"")
        assert headers["ETag"] == etag
        assert headers["Cache-Control"] == hls.playlist_cache_control(6)
        assert headers["Vary"] == "Accept-Encoding"
        assert headers["Access-Control-Allow-Origin"] == "*"


async def test_stale_or_other_etag_gets_the_playlist(make_client: MakeClient) -> None:
    playlists = ready_playlists()
    client = await make_client(playlists)
    old = playlists.generators[0].render()
    playlists.add_segment(0)
    new = playlists.generators[0].render()
    assert new.etag != old.etag
    for stale in (old.etag, '"nope"', new.gzip_etag):  # the gzip ETag names the other representation
        status, headers, body = await get(client, MEDIA, {**PLAIN, "If-None-Match": stale})
        assert (status, headers["ETag"], body) == (200, new.etag, new.body)


@pytest.mark.parametrize("accept", ["gzip", "gzip, deflate, br", "GZIP;q=0.5, identity", "x-gzip", "br, *"])
async def test_gzip_is_the_rendering_compressed_once(make_client: MakeClient, accept: str) -> None:
    playlists = ready_playlists()
    client = await make_client(playlists)
    rendered = playlists.generators[0].render()
    status, headers, body = await get(client, MEDIA, {"Accept-Encoding": accept})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert body == rendered.gzip_body
    assert gzip.decompress(body) == rendered.body
    assert headers["ETag"] == rendered.gzip_etag != rendered.etag
    assert headers["Vary"] == "Accept-Encoding"
    assert headers["Content-Type"] == hls.PLAYLIST_CONTENT_TYPE
    revalidate = {"Accept-Encoding": accept, "If-None-Match": rendered.gzip_etag}
    status, headers, body = await get(client, MEDIA, revalidate)
    assert (status, headers["ETag"], body) == (304, rendered.gzip_etag, b"")


@pytest.mark.parametrize(
    "accept", ["identity", "gzip;q=0", "gzip; q=0.000, identity", "br", "*;q=0", "gzip;q=x", ""]
)
async def test_plain_unless_gzip_is_acceptable(make_client: MakeClient, accept: str) -> None:
    playlists = ready_playlists()
    client = await make_client(playlists)
    rendered = playlists.generators[0].render()
    status, headers, body = await get(client, MEDIA, {"Accept-Encoding": accept})
    assert (status, body, headers["ETag"]) == (200, rendered.body, rendered.etag)
    assert "Content-Encoding" not in headers
    assert headers["Vary"] == "Accept-Encoding"


@pytest.mark.parametrize("encoding", [PLAIN, GZIP])
async def test_head_has_get_headers_and_no_body(make_client: MakeClient, encoding: dict[str, str]) -> None:
    client = await make_client()
    _, got, body = await get(client, MEDIA, encoding)
    status, head, head_body = await get(client, MEDIA, encoding, method="HEAD")
    assert (status, head_body) == (200, b"")
    assert int(head["Content-Length"]) == len(body)
    for name in ("Content-Type", "Content-Encoding", "ETag", "Cache-Control", "Vary",
                 "Access-Control-Allow-Origin"):
        assert head.get(name) == got.get(name)


async def test_renders_and_compresses_once_per_change(
        make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    compressions = []
    real_compress, real_piece = gzip.compress, deflate.deflate_piece

    def counting_compress(data: bytes, *args: Any, **kwargs: Any) -> bytes:
        compressions.append(data)
        return real_compress(data, *args, **kwargs)

    def counting_piece(data: bytes, *args: Any, **kwargs: Any) -> bytes:
        compressions.append(data)  # a short window's playlist is one piece: its whole body
        return real_piece(data, *args, **kwargs)

    monkeypatch.setattr(gzip, "compress", counting_compress)
    monkeypatch.setattr(deflate, "deflate_piece", counting_piece)
    playlists = ready_playlists()
    client = await make_client(playlists)
    gen = playlists.generators[0]
    renders_before = gen.renders
    for _ in range(5):
        for encoding in (PLAIN, GZIP):
            assert (await get(client, MEDIA, encoding))[0] == 200
    assert gen.renders - renders_before == 1
    assert compressions == [gen.render().body]  # aiohttp did not compress per response either
    playlists.add_segment(0)
    for _ in range(3):
        await get(client, MEDIA, GZIP)
    assert len(compressions) == 2


async def test_503_until_anything_is_ready_counted_by_playlist(make_client: MakeClient) -> None:
    client = await make_client(FakePlaylists(target_duration=None))
    for path in (MASTER, MEDIA, "/live/0/playlist.m3u8", "/live/5/playlist.m3u8",  # and Owncast's paths
                 "/hls/stream.m3u8", "/hls/0/stream.m3u8", "/hls/5/stream.m3u8"):
        status, headers, body = await get(client, path)
        assert (status, headers["Retry-After"], body != b"") == (503, "1", True), path
        assert headers["Cache-Control"] == hls.UNREADY_CACHE_CONTROL
        assert headers["Access-Control-Allow-Origin"] == "*"
    assert await playlist_counts(client) == {("master", "503"): 2, ("0", "503"): 3, ("unknown", "503"): 2}


async def test_master_and_default_variant_not_ready_are_503(make_client: MakeClient) -> None:
    playlists = FakePlaylists(target_duration=6)  # target known, no segments, no master yet
    client = await make_client(playlists)
    for path in (MASTER, MEDIA, "/live/0/playlist.m3u8"):
        status, headers, _ = await get(client, path)
        assert (status, headers["Retry-After"]) == (503, "1"), path
    status, headers, _ = await get(client, "/live/1/playlist.m3u8")
    assert (status, headers["Cache-Control"]) == (404, hls.UNREADY_CACHE_CONTROL)


@pytest.mark.parametrize(("path", "unknown_variant"), [
    *((path, True) for path in ["/live/2/playlist.m3u8", "/live/00/playlist.m3u8", "/live/01/playlist.m3u8",
                                "/live/" + "9" * 5000 + "/playlist.m3u8"]),
    *((path, False) for path in ["/nope", "/live/x/playlist.m3u8", "/live/0/other.m3u8", "/live/", "/index.html"]),
])
async def test_an_unknown_variant_or_path_is_404_not_500(make_client: MakeClient, path: str,
                                                         unknown_variant: bool) -> None:
    client = await make_client()
    status, headers, body = await get(client, path)
    assert status == 404
    assert headers["Access-Control-Allow-Origin"] == "*"
    if unknown_variant:
        assert body == b"unknown variant\n"
        assert headers["Cache-Control"] == hls.UNREADY_CACHE_CONTROL


@pytest.mark.parametrize("viewer", [False, True])
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", MEDIA, 405), ("PUT", "/live/master.m3u8", 405), ("DELETE", "/health", 405),
        ("POST", "/live/nope.m3u8", 404), ("PATCH", "/a/b", 404), ("HEAD", "/live/x", 404),
        ("POST", "/nope", None),  # "/{file}" is a GET route when a viewer is served: 405 then, else 404
    ],
)
async def test_other_methods_are_405_where_get_works_else_404(
        make_client: MakeClient, viewer_dir: Path, viewer: bool, method: str, path: str,
        status: int | None) -> None:
    """aiohttp's own answers: 405 (with Allow) only where a GET would work; CORS and our Server on both."""
    client = await make_client(viewer_dir=viewer_dir if viewer else None)
    status = status or (405 if viewer else 404)
    got, headers, _ = await get(client, path, method=method)
    assert got == status
    if status == 405:
        assert headers["Allow"] == "GET,HEAD"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Server"] == "hls-broadcaster"


@pytest.mark.parametrize("path", ["/a%0Ab", "/live/%0D%0A", "/%0a"])
async def test_paths_with_line_breaks_get_our_answers_too(make_client: MakeClient, path: str) -> None:
    client = await make_client()
    status, headers, _ = await get(client, URL(path, encoded=True))
    assert status == 404 and headers["Access-Control-Allow-Origin"] == "*"
    status, headers, _ = await get(client, URL(path, encoded=True), {"Origin": "https://viewer.example",
                                   "Access-Control-Request-Method": "GET"}, method="OPTIONS")
    assert status == 204 and headers["Server"] == "hls-broadcaster"


async def test_the_private_metrics_listener_sends_no_cors(aiohttp_client: AiohttpClient, metrics: Metrics) -> None:
    client = await aiohttp_client(create_metrics_app(metrics))
    status, headers, body = await get(client, "/metrics")
    assert status == 200 and b"hls_broadcaster_" in body
    assert "Access-Control-Allow-Origin" not in headers
    assert (await get(client, "/nope"))[0] == 404


@pytest.mark.parametrize("source", ["playlists", "health"])
async def test_a_failing_source_is_a_500_with_one_log_line(
        make_client: MakeClient, caplog: pytest.LogCaptureFixture, source: str) -> None:
    class BrokenPlaylists(FakePlaylists):
        def media_playlist(self, variant: int) -> Rendered | None:
            raise RuntimeError("secret detail")

    class BrokenHealth(FakeHealth):
        def health(self) -> tuple[bool, dict[str, object]]:
            raise RuntimeError("secret detail")

    client = await (make_client(BrokenPlaylists()) if source == "playlists" else make_client(health=BrokenHealth()))
    with caplog.at_level(logging.ERROR, logger="broadcaster.http.common"):
        status, headers, body = await get(client, MEDIA if source == "playlists" else "/health")
    assert status == 500
    assert b"secret" not in body and b"Traceback" not in body
    assert headers["Access-Control-Allow-Origin"] == "*"
    records = [r for r in caplog.records if r.name == "broadcaster.http.common"]
    assert len(records) == 1 and not records[0].exc_info
    assert "RuntimeError('secret detail')" in records[0].getMessage()
    assert "\n" not in records[0].getMessage()
    if source == "playlists":
        assert (await playlist_counts(client))[("0", "500")] == 1


@pytest.mark.parametrize("path", [MEDIA, "/live/3/playlist.m3u8", "/anything/at/all"])
async def test_preflight_is_204_everywhere(make_client: MakeClient, path: str) -> None:
    client = await make_client()
    status, headers, body = await get(client, path, {
        "Origin": "https://viewer.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range, x-player-session",
    }, method="OPTIONS")
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == "range, x-player-session"
    assert headers["Access-Control-Max-Age"] == "86400"


async def test_preflight_does_not_echo_junk(make_client: MakeClient) -> None:
    client = await make_client()
    status, headers, _ = await get(client, MEDIA, {
        "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range; <script>",
    }, method="OPTIONS")
    assert status == 204
    assert "script" not in headers["Access-Control-Allow-Headers"]
    assert "Range" in headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(("ok", "expected"), [(True, 200), (False, 503)])
async def test_health(make_client: MakeClient, ok: bool, expected: int) -> None:
    client = await make_client(health=FakeHealth(ok))
    async with client.get("/health") as resp:
        assert resp.status == expected
        assert resp.headers["Cache-Control"] == "no-store"
        assert await resp.json() == FakeHealth(ok).health()[1]


async def test_metrics_count_playlist_requests_with_bounded_labels(make_client: MakeClient) -> None:
    playlists = ready_playlists()
    client = await make_client(playlists)
    etag = playlists.generators[1].render().etag
    await get(client, MASTER)
    await get(client, MEDIA)
    await get(client, MEDIA, method="HEAD")
    await get(client, "/live/1/playlist.m3u8")
    await get(client, "/live/1/playlist.m3u8", {**PLAIN, "If-None-Match": etag})
    for n in (2, 99, 123456):
        await get(client, f"/live/{n}/playlist.m3u8")
    status, headers, body = await get(client, "/metrics")
    assert (status, headers["Cache-Control"]) == (200, "no-store")
    assert await playlist_counts(client) == {
        ("master", "200"): 1, ("0", "200"): 2, ("1", "200"): 1, ("1", "304"): 1, ("unknown", "404"): 3,
    }
    # Counted in a plain dict for speed; Prometheus must still see a counter with its help text.
    text = body.decode()
    assert "# TYPE hls_broadcaster_playlist_requests_total counter" in text
    assert "# HELP hls_broadcaster_playlist_requests_total Playlist requests served" in text
    family = {f.name: f for f in text_string_to_metric_families(text)}["hls_broadcaster_playlist_requests"]
    assert family.type == "counter"
    assert {s.name for s in family.samples} == {"hls_broadcaster_playlist_requests_total"}
    assert ("hls_broadcaster_playlist_requests_total", {"playlist": "0", "status": "200"}, 2.0) in [
        (s.name, s.labels, s.value) for s in family.samples]


def test_playlist_header_cache_stays_small() -> None:
    for n in range(500):
        answers.playlist_headers(f'"v{n}"', "public, max-age=1", n % 2 == 0, True)
        assert answers.playlist_headers.cache_info().currsize <= 64
    first = answers.playlist_headers('"x"', "public, max-age=1", True, True)
    assert first is answers.playlist_headers('"x"', "public, max-age=1", True, True)
    assert first["Content-Encoding"] == "gzip" and first["ETag"] == '"x"'
    assert "Content-Type" not in answers.playlist_headers('"x"', "public, max-age=1", True, False)


async def test_metrics_can_be_hidden(make_client: MakeClient) -> None:
    client = await make_client(running=Running(expose_metrics=False))
    assert (await get(client, "/metrics"))[0] == 404


@pytest.fixture
def viewer_dir(tmp_path: Path) -> Path:
    viewer = tmp_path / "viewer"
    viewer.mkdir()
    (viewer / "index.html").write_text("<!doctype html><title>live</title>")
    (viewer / "player.js").write_text("console.log('hi')")
    (viewer / "style.css").write_text("body{}")
    (viewer / ".hidden").write_text("dotfile")
    (viewer / "sub").mkdir()
    (viewer / "sub" / "inner.js").write_text("inner")
    (tmp_path / "secret.txt").write_text("outside")
    (viewer / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (viewer / "unhide.txt").symlink_to(viewer / ".hidden")
    (viewer / "alias.js").symlink_to(viewer / "player.js")
    (viewer / "loop").symlink_to(viewer / "loop")
    return viewer


def version_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:16]


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/player.js", "text/javascript; charset=utf-8", b"console.log('hi')"),
        ("/style.css", "text/css; charset=utf-8", b"body{}"),
        ("/alias.js", "text/javascript; charset=utf-8", b"console.log('hi')"),  # a symlink inside is fine
    ],
)
async def test_viewer_files_are_cacheable_at_their_versioned_url(make_client: MakeClient, viewer_dir: Path, path: str,
                                                                 content_type: str, body: bytes) -> None:
    client = await make_client(viewer_dir=viewer_dir)
    versioned = f"{path}?v={version_of(body)}"
    status, headers, got = await get(client, versioned)
    assert (status, got) == (200, body)
    assert headers["Content-Type"] == content_type
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["ETag"] == f'"{version_of(body)}"'
    assert headers["Access-Control-Allow-Origin"] == "*"
    status, headers, got = await get(client, versioned, {"If-None-Match": headers["ETag"]})
    assert (status, got) == (304, b"")
    # Any other URL of it (none, a cache buster, an old version) is a small redirect to that one: a CDN
    # answers the file, and a cache buster cannot make the VM send it again.
    for other in (path, f"{path}?x=123", f"{path}?v=0123456789abcdef", f"{path}?v={version_of(body)}&x=1"):
        async with client.get(other, allow_redirects=False) as r:
            assert r.status == 302, other
            assert r.headers["Location"] == versioned.lstrip("/")  # relative: works under a path prefix too
            assert r.headers["Cache-Control"] == "public, max-age=60"
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert len(await r.read()) < 100
    # The playlists still win over the catch-all file route.
    assert (await get(client, MEDIA))[0] == 200
    assert (await get(client, "/health"))[0] == 200


async def test_the_page_is_served_as_built_and_revalidated(make_client: MakeClient, viewer_dir: Path) -> None:
    """The service adds only config.json (and the stream's words), never touches the names, reads once."""
    page = ('<!doctype html><head><meta name="viewer-config" content=""></head>'
            f'<link href="style.css?v={version_of(b"body{}")}" rel="stylesheet"><script src="player.js"></script>')
    (viewer_dir / "index.html").write_text(page)
    client = await make_client(viewer_dir=viewer_dir)
    expected = page.replace('content=""', 'content="{&quot;src&quot;: &quot;live/master.m3u8&quot;}"').replace(
        "</head>", '  <link rel="preload" href="live/master.m3u8" as="fetch" crossorigin="anonymous">\n</head>')
    for path in ("/", "/index.html", "/?x=1", "/index.html?v=whatever"):  # any query string: the same page
        status, headers, body = await get(client, path)
        assert (status, body.decode()) == (200, expected), path
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Cache-Control"] == "no-cache"
    etag = headers["ETag"]
    assert (await get(client, "/", {"If-None-Match": etag}))[0] == 304
    # A file changed on disk is not seen: the service serves what it read when it started.
    (viewer_dir / "player.js").write_text("console.log('new')")
    os.utime(viewer_dir / "player.js", ns=(1, 1))
    status, headers, body = await get(client, "/", {"If-None-Match": etag})
    assert status == 304
    old = b"console.log('hi')"
    assert (await get(client, f"/player.js?v={version_of(old)}"))[2] == old


async def test_a_large_file_is_sent_within_the_write_timeout_and_a_client_that_never_reads_lets_go_of_it(
        make_client: MakeClient, viewer_dir: Path) -> None:
    """At most max_open at once, each within write_timeout (sendfile)."""
    big = os.urandom(16 << 20)  # more than the kernel buffers between the two ends of a loopback connection
    (viewer_dir / "big.js").write_bytes(big)
    registry = CollectorRegistry()
    # The reading client is this process, at the lowest CPU priority beside the suite: at 0.5 s it could
    # read too little in time on a loaded machine, and was rightly dropped.
    client = await make_client(viewer_dir=ViewerOptions(viewer_dir, max_open=1, write_timeout=2.0),
                               running=Running(connection_metrics=ConnectionMetrics(registry)))
    path = f"/big.js?v={version_of(big)}"
    status, headers, body = await get(client, path)
    assert (status, body) == (200, big) and headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # A client that asks and never reads: dropped after the write timeout, its slot (and file) given back.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", client.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        await until(lambda: registry.get_sample_value("hls_broadcaster_connections_rejected_total",
                                                      {"reason": "write_timeout"}) == 1, "the reader-less client dropped")
        status, _, body = await get(client, path)  # the only slot is free again
        assert (status, body) == (200, big)
    finally:
        sock.close()


# "/..%2fsecret.txt" reaches the handler as "../secret.txt"; leak.txt is a symlink out of viewer_dir,
# unhide.txt one onto a dotfile.
@pytest.mark.parametrize("path", [
    "/..%2f..%2fetc/passwd", "/%2e%2e/x", "/%2e%2e", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt",
    "/..%5csecret.txt", "/sub%2finner.js", "/sub", "/.hidden", "/%2ehidden", "/leak.txt", "/unhide.txt",
    "/loop", "/a%00b", "/missing.html",
])
async def test_viewer_refuses_anything_but_its_own_files(make_client: MakeClient, viewer_dir: Path,
                                                         path: str) -> None:
    client = await make_client(viewer_dir=viewer_dir)
    status, headers, body = await get(client, URL(path, encoded=True))
    assert status == 404
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert b"outside" not in body and b"dotfile" not in body


async def test_config_json_carries_p2p_only_when_it_is_on(make_client: MakeClient, viewer_dir: Path) -> None:
    """P2P off: nothing about it (the page then loads no P2P code). On: the trackers, the swarm id,
    the STUN servers, and the viewer's say: where the choice starts, how many sharing viewers P2P waits
    for, the most a visit uploads."""
    off = await make_client(viewer_dir=viewer_dir)
    status, _, body = await get(off, "/config.json")
    assert status == 200 and json.loads(body) == {"src": "live/master.m3u8"}
    options = ViewerOptions(viewer_dir, p2p_trackers=("wss://t.example.com",), p2p_swarm="hls-broadcaster-abc",
                            p2p_stun=("stun:stun.example.com:3478",), p2p_start_on=True, p2p_min_viewers=4,
                            p2p_upload_mb=20)
    status, _, body = await get(await make_client(viewer_dir=options), "/config.json")
    assert status == 200 and json.loads(body) == {
        "src": "live/master.m3u8", "p2p": {"trackers": ["wss://t.example.com"], "swarm": "hls-broadcaster-abc",
                                           "stun": ["stun:stun.example.com:3478"], "start": True,
                                           "minViewers": 4, "uploadMb": 20}}


async def test_viewer_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="viewer_dir"):
        create_app(ready_playlists(), FakeHealth(), Metrics(), viewer_options=ViewerOptions(tmp_path / "missing"))


async def test_the_default_variant_is_configurable_and_without_viewer_the_index_names_the_playlists(
        make_client: MakeClient) -> None:
    playlists = ready_playlists()
    client = await make_client(playlists, default_variant=1)
    assert (await get(client, MEDIA))[2] == playlists.generators[1].render().body
    status, headers, body = await get(client, "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    for url in (b"/live/playlist.m3u8", b"/live/{n}/playlist.m3u8", b"/live/master.m3u8", b"variant 1"):
        assert url in body
