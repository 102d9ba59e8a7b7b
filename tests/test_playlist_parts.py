"""A long window's playlist rendered in parts: frozen chunks of segments, each deflated once. Every version
must be the whole window joined (Renderer.text), its gzip one valid member of those bytes, read back by
gzip, zlib, aiohttp and Chromium."""

from __future__ import annotations

import gzip
import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpClient

from broadcaster.http import PlaylistOptions, create_app
from broadcaster.metrics import Metrics
from broadcaster.playlist import chunks, deflate, hls
from broadcaster.playlist.manifest import ManifestGenerator, SegmentRejected
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.renderer import Renderer
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish import playlist_memory
from tests.support.browser import launch_chromium, needs_chromium
from tests.support.client import Client
from tests.support.fakes import FakeHealth, FakePlaylists

T0 = 1_800_000_000.0


def seg(n: int, duration: float = 1.0, **kw: object) -> ListedSegment:
    return ListedSegment(f"https://r2.example/live/0/stream-{n}.ts", duration, T0 + n, **kw)  # type: ignore[arg-type]


def single_member(body: bytes) -> bytes:
    """The content of a gzip body that must be exactly one member, with nothing after it."""
    d = zlib.decompressobj(wbits=31)
    content = d.decompress(body) + d.flush()
    assert d.eof and not d.unused_data
    return content


def check(gen: ManifestGenerator, etags: dict[str, bytes]) -> None:
    """Both renderings (the origin's and the bucket's) against the whole window joined."""
    for server_control, rendered in ((gen.can_block_reload, gen.render()), (False, gen.render_edge())):
        expected = Renderer().text(gen, server_control).encode()
        assert rendered.body == expected
        assert gzip.decompress(rendered.gzip_body) == expected == single_member(rendered.gzip_body)
        for etag in (rendered.etag, rendered.gzip_etag):  # one ETag, one body
            assert etags.setdefault(etag, expected) == expected


OPS = ["append"] * 24 + ["gap", "end", "restart", "raise", "carry", "continue", "drop_hashes", "restore"]


def run_history(chunk: int, window: float, fmp4: bool, hashes: bool, ops: list[tuple[str, int]],
                edge: int = 6) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chunks, "CHUNK_ENTRIES", chunk)
        mp.setattr(hls, "hashed_segments", lambda target_duration: edge)  # the newest `edge` shown
        gen = ManifestGenerator(1, WindowOptions(window, can_block_reload=True))
        now, n = T0, 0
        etags: dict[str, bytes] = {}
        for op, r in ops:
            rng = random.Random(r)
            now += 1.0
            if op == "append":
                n += 1
                try:
                    gen.append(seg(n, rng.choice([1.0, 0.5]), discontinuity=rng.random() < 0.1,
                                   init_uri=f"https://r2.example/init-{rng.randrange(2)}.mp4" if fmp4 else None,
                                   sha256=rng.randbytes(32) if hashes else None), now)
                except SegmentRejected:
                    pass
            elif op == "gap":
                gen.mark_gap()
            elif op == "end":
                gen.end()
            elif op in ("restart", "raise", "carry"):
                gen.restart(2 if op == "raise" else 1, now, new_timeline=op != "carry",
                            served_through=gen.next_sequence - 1 - rng.randrange(3) if op == "carry" else None)
            elif op == "continue":
                gen.continue_above(gen.next_sequence + 5, gen.discontinuity_sequence + 1, now)
            elif op == "drop_hashes":
                gen.drop_hashes()
            elif op == "restore":
                before = gen.render()
                gen = playlist_memory.restore(playlist_memory.snapshot(gen, now), now, WindowOptions(window, can_block_reload=True))
                # The same bytes in the same parts: the same ETag, so a player's 304 survives a restart.
                assert (gen.render().body, gen.render().etag) == (before.body, before.etag)
            check(gen, etags)


@settings(max_examples=80, deadline=None)
@given(chunk=st.sampled_from([1, 2, 3, 5]), window=st.sampled_from([3.0, 8.0, 20.0]),
       fmp4=st.booleans(), hashes=st.booleans(), edge=st.sampled_from([1, 2, 5, 40]),
       ops=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 2 ** 16)), min_size=1, max_size=200))
def test_every_version_in_parts_is_the_whole_window_joined(
        chunk: int, window: float, fmp4: bool, hashes: bool, edge: int, ops: list[tuple[str, int]]) -> None:
    """A segment's text changes once, leaving the edge, never inside a frozen chunk."""
    run_history(chunk, window, fmp4, hashes, ops, edge)


@pytest.mark.parametrize("chunk", [2, 3, 7])
def test_long_random_histories_in_parts_are_the_whole_window_joined(chunk: int) -> None:
    """Long histories, many slides past chunk boundaries (hypothesis favours short ones)."""
    for seed in range(8):
        rng = random.Random(seed)
        ops = [(rng.choice(OPS), rng.randrange(2 ** 16)) for _ in range(300)]
        run_history(chunk, rng.choice([6.0, 15.0, 30.0]), seed % 2 == 0, seed % 3 != 1, ops,
                    rng.choice([1, 3, 8]))


def long_window(segments: int, window: float) -> tuple[ManifestGenerator, int]:
    gen = ManifestGenerator(1, WindowOptions(window, can_block_reload=True))
    for n in range(segments):
        gen.append(seg(n), T0 + n)
    return gen, segments


def test_a_version_kept_while_the_window_moves_on_keeps_its_bytes() -> None:
    gen, n = long_window(300, 200.0)
    kept, expected = gen.render(), Renderer().text(gen, True).encode()  # neither body nor gzip made yet
    edge, edge_expected = gen.render_edge(), Renderer().text(gen, False).encode()
    etags: dict[str, bytes] = {}
    for k in range(3 * chunks.CHUNK_ENTRIES):  # across chunk boundaries, frozen chunks leaving
        gen.append(seg(n + k), T0 + n + k)
        check(gen, etags)
    assert gzip.decompress(kept.gzip_body) == kept.body == expected
    assert single_member(edge.gzip_body) == edge.body == edge_expected
    assert kept.etag not in etags and kept.gzip_etag not in etags


def test_a_long_window_compresses_as_well_as_the_whole_text_at_once() -> None:
    gen, _ = long_window(1000, 900.0)
    rendered = gen.render()
    assert rendered._parts is not None and len(rendered._parts.middle.chunks) > 20  # really in parts
    whole = gzip.compress(rendered.body, compresslevel=6, mtime=0)
    assert len(rendered.gzip_body) <= len(whole) * 1.05


def test_a_window_without_frozen_chunks_is_one_piece_at_the_old_level() -> None:
    gen, _ = long_window(20, 10.0)
    rendered = gen.render()
    assert rendered._parts is not None and not rendered._parts.middle.chunks
    assert single_member(rendered.gzip_body) == rendered.body
    assert len(rendered.gzip_body) == len(gzip.compress(rendered.body, compresslevel=6, mtime=0))


@settings(max_examples=200, deadline=None)
@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_crc32_combine_is_zlibs(a: bytes, b: bytes) -> None:
    assert deflate.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    # and a piece taken off the front
    assert deflate.crc32_combine(zlib.crc32(a), zlib.crc32(a + b), len(b)) == zlib.crc32(b)
    shift = deflate.crc_shift(len(b))
    assert deflate.shift_crc(shift, zlib.crc32(a)) ^ zlib.crc32(b) == zlib.crc32(a + b)


def test_pieces_that_refer_back_make_one_gzip_member() -> None:
    first, second, third = b"#EXTINF:1.000,\nsegment-1.ts\n" * 40, b"#EXTINF:1.000,\nsegment-2.ts\n" * 40, b"end\n"
    pieces = (deflate.deflate_piece(first, 6), deflate.deflate_piece(second, 9, after=first),
              deflate.deflate_piece(third, 1, after=second, last=True))
    crc = zlib.crc32(third, deflate.crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)))
    body = deflate.gzip_member(pieces, crc, len(first + second + third))
    assert single_member(body) == gzip.decompress(body) == first + second + third
    assert len(pieces[1]) < len(deflate.deflate_piece(second, 9))  # it did refer back


@pytest.fixture
async def long_served(aiohttp_client: AiohttpClient) -> tuple[Rendered, Client]:
    """A long window's playlist as rendered, and a (decompressing) client of the app serving it."""
    playlists = FakePlaylists(1, 1)
    playlists.generators[0] = long_window(600, 500.0)[0]  # type: ignore[assignment]
    app = create_app(playlists, FakeHealth(), Metrics(), playlist_options=PlaylistOptions(default_variant=0))
    return playlists.generators[0].render(), await aiohttp_client(app)


async def test_aiohttps_client_reads_the_gzip_of_a_long_window(long_served: tuple[Rendered, Client]) -> None:
    rendered, client = long_served
    assert rendered._parts is not None and rendered._parts.middle.chunks
    resp = await client.get("/live/0/playlist.m3u8", headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
    assert await resp.read() == rendered.body


@pytest.mark.browser
@needs_chromium
async def test_chromium_reads_the_gzip_of_a_long_window(long_served: tuple[Rendered, Client]) -> None:
    from playwright.async_api import async_playwright

    rendered, client = long_served
    url = str(client.make_url("/live/0/playlist.m3u8"))
    got: list[str] = []
    async with async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            page.on("response", lambda r: got.append(r.headers.get("content-encoding", "")))
            await page.goto(str(client.make_url("/health")))
            text = await page.evaluate("u => fetch(u).then(r => r.text())", url)  # sends Accept-Encoding: gzip
        finally:
            await browser.close()
    assert text == rendered.body.decode()
    assert "gzip" in got
