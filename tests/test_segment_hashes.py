"""Segment hashes for P2P: segments near the live edge are listed with the SHA-256 of the bytes in the bucket
(hls.SEGMENT_HASH_TAG; viewer/p2p.js checks peers' copies), older ones without (a long window's playlist
grew 7x gzipped); with P2P off, none. The hash is saved with the segment; older state files restore."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from dataclasses import replace

import pytest

from broadcaster.playlist import hls
from broadcaster.playlist.manifest import ManifestGenerator
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.renderer import Renderer
from broadcaster.playlist.segments import ListedSegment
from broadcaster.playlist.vod import render_vod
from broadcaster.publish import playlist_memory
from broadcaster.state.disk import dumps
from tests.support.hls_checker import VariantSetChecker
from tests.support.served import MakeWorld

DIGESTS = [hashlib.sha256(n.to_bytes(4, "big")).digest() for n in range(400)]
TAG = re.compile(r"^#EXT-HB-SHA256:([A-Za-z0-9_-]{43})$", re.M)


def hashes_in(text: str) -> list[bytes]:
    return [base64.urlsafe_b64decode(m + "=") for m in TAG.findall(text)]


def segment(n: int, *, hashed: bool = True) -> ListedSegment:
    return ListedSegment(f"https://cdn.example/live/0/s-{n}.ts", 1.0, 1_800_000_000.0 + n, key=f"live/0/s-{n}.ts",
                         sha256=DIGESTS[n] if hashed else None)


def generator(count: int, *, hashed: bool = True, can_block_reload: bool = False) -> ManifestGenerator:
    gen = ManifestGenerator(1, WindowOptions(30.0, can_block_reload=can_block_reload))
    for n in range(count):
        gen.append(segment(n, hashed=hashed), float(n))
    return gen


def test_the_tag_names_each_segments_hash_before_its_extinf() -> None:
    text = generator(3).render().body.decode()
    assert hashes_in(text) == DIGESTS[:3]
    lines = text.splitlines()
    for n in range(3):
        at = lines.index(f"https://cdn.example/live/0/s-{n}.ts")
        assert TAG.match(lines[at - 2]) and lines[at - 1].startswith("#EXTINF:"), lines[at - 3:at + 1]
    VariantSetChecker().assert_ok("0", text)
    # 59 bytes a segment: the tag, 43 characters of base64url and a newline.
    assert len(text) - len(generator(3, hashed=False).render().body.decode()) == 3 * 59


def test_only_the_segments_near_the_live_edge_show_their_hash() -> None:
    edge = hls.hashed_segments(1)
    assert edge == hls.HASHED_EDGE_SECONDS  # 1 s segments: the last minute
    gen = ManifestGenerator(1, WindowOptions(300.0, can_block_reload=True))
    for n in range(3 * edge):
        gen.append(segment(n), float(n))
    for rendered in (gen.render(), gen.render_edge()):
        text = rendered.body.decode()
        assert hashes_in(text) == DIGESTS[2 * edge:3 * edge], len(hashes_in(text))
        assert text.count("#EXTINF") == 3 * edge  # the older ones listed as ever, without theirs
        reference = Renderer().text(gen, rendered is gen.render()).encode()
        assert gzip.decompress(rendered.gzip_body) == rendered.body == reference
        VariantSetChecker().assert_ok("0", text)
    # One more segment: the oldest hashed one is past the edge, and shows its hash no more.
    gen.append(segment(3 * edge), float(3 * edge))
    assert hashes_in(gen.render().body.decode()) == DIGESTS[2 * edge + 1:3 * edge + 1]
    # A delta update lists its segments (the newest few, all near the edge) with their hashes.
    delta = gen.render().delta
    assert delta is not None
    listed = delta.body.decode().count("#EXTINF")
    assert 0 < listed < edge and hashes_in(delta.body.decode()) == DIGESTS[3 * edge + 1 - listed:3 * edge + 1]
    # The state keeps every listed segment's hash (a restart lists the edge's again).
    saved = json.loads(dumps(playlist_memory.snapshot(gen, 400.0)))
    assert all(len(entry) == 9 for entry in saved["entries"])
    restored = playlist_memory.restore(saved, 400.0, WindowOptions(300.0, can_block_reload=True))
    assert restored.render().body == gen.render().body


@pytest.mark.parametrize("target", [1, 2, 6])
def test_a_4_hour_window_gzipped_grows_by_at_most_a_tenth(target: int) -> None:
    """Every segment's hash made it 7x bigger gzipped (bench/hash_cost.py measures the rest)."""
    from bench.hash_cost import playlist

    without, hashed = playlist(14400, target, hashed=False), playlist(14400, target, hashed=True)
    sizes = len(hashed.gzip_body), len(without.gzip_body)
    assert sizes[0] <= 1.10 * sizes[1], sizes
    assert hashed.body.count(b"#EXT-HB-SHA256:") == hls.hashed_segments(target)


def test_delta_updates_and_the_buckets_copy_carry_the_hashes_of_what_they_list() -> None:
    gen = generator(12, can_block_reload=True)
    assert gen.can_skip
    full, edge = gen.render(), gen.render_edge()
    assert full.delta is not None
    delta = full.delta.body.decode()
    skipped = int(re.search(r"#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)", delta).group(1))  # type: ignore[union-attr]
    # The skipped segments' tags go with them (4.4.5.2): the player keeps those from earlier versions.
    assert hashes_in(delta) == DIGESTS[skipped:12]
    assert hashes_in(full.body.decode()) == hashes_in(edge.body.decode()) == DIGESTS[:12]


def test_clips_and_recordings_carry_no_hashes() -> None:
    gen = generator(3)
    # What a clip is made of (VariantPlaylist.shown_between): each segment with its date as listed.
    vod = render_vod([replace(e.segment, program_date_time=e.program_date_time) for e in gen.window], 1).decode()
    assert "#EXT-HB-SHA256" not in vod and vod.count("#EXTINF") == 3


def test_a_state_from_before_the_hashes_still_restores() -> None:
    """Eight values an entry: those segments are listed without one, the next has its own."""
    saved = json.loads(dumps(playlist_memory.snapshot(generator(3), 3.0)))
    for entry in saved["entries"]:
        del entry[8]
    old = playlist_memory.restore(saved, 3.0, WindowOptions(30.0))
    old.append(segment(3), 4.0)
    assert hashes_in(old.render().body.decode()) == [DIGESTS[3]]


@pytest.mark.parametrize("bad", ["", "not base64!", "A" * 42, "A" * 44, "A" * 42 + "B", 7, None])
def test_a_damaged_hash_in_the_state_is_refused(bad: object) -> None:
    saved = json.loads(dumps(playlist_memory.snapshot(generator(1), 1.0)))
    saved["entries"][0][8] = bad
    with pytest.raises(ValueError):
        playlist_memory.restore(saved, 1.0, WindowOptions(30.0))


def test_drop_hashes_lists_the_same_segments_as_without_hashes() -> None:
    gen = generator(3)
    gen.drop_hashes()
    text = generator(3, hashed=False).render().body.decode()
    assert gen.render().body.decode() == text and "SHA256" not in text and "EXT-HB" not in text


@pytest.mark.parametrize("p2p", [True, False])
async def test_the_publisher_lists_the_hash_of_the_bytes_it_put_in_the_bucket_only_with_p2p(
        make_world: MakeWorld, p2p: bool) -> None:
    w = make_world(segment_hashes=p2p)
    w.write(0, "stream-a-0.ts", 188)
    w.write(0, "stream-a-1.ts", 376)
    w.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts", write=False)
    await w.settle()  # every version checked by the HLS checker too
    put = {p.key: p.body for p in w.store.puts}
    hashes = [hashlib.sha256(put[f"live/0/stream-a-{n}.ts"]).digest() for n in (0, 1)]
    assert hashes_in(w.text()) == (hashes if p2p else []) and w.text().count("#EXTINF") == 2
    assert ("EXT-HB" in w.text()) == p2p


@pytest.mark.parametrize("p2p_after", [True, False])
async def test_hashes_survive_a_restart_and_go_when_p2p_was_turned_off(
        make_world: MakeWorld, p2p_after: bool) -> None:
    a = make_world(segment_hashes=True)
    a.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await a.settle()
    saved = json.loads(dumps({**a.pub.snapshot(), "clean_stop": True}))
    listed = hashes_in(a.text())
    await a.pub.close()

    b = make_world(segment_hashes=p2p_after)
    b.pub.restore(saved)
    assert len(listed) == 2 and hashes_in(b.text()) == (listed if p2p_after else [])
