"""One playlist on every pathway (playlist/views.py): the same entries, numbers and dates at each pathway's
URIs, written from the entries; a pathway behind lists fewer, and the front is held for it."""

from __future__ import annotations

import m3u8

from broadcaster.playlist import hls
from broadcaster.playlist.chunks import CHUNK_ENTRIES
from broadcaster.playlist.manifest import ManifestGenerator
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.pathway import BUCKET, LISTED, VM, BaseUris, Pathway, VmUris
from broadcaster.playlist.rendered import Pending, Rendered
from broadcaster.playlist.segments import ListedSegment
from broadcaster.playlist.views import GAP, Snapshot, View
from tests.support.hls_checker import MediaPlaylistChecker

T0 = 1_800_000_000.0
FIRST = Pathway("bucket", BUCKET, "", LISTED)
SECOND = Pathway("backup", BUCKET, "backup", BaseUris("https://b2.example/media"))
VM_WAY = Pathway("vm", VM, "vm", VmUris())
URIS = {p.id: p.uris for p in (FIRST, SECOND, VM_WAY)}


def seg(i: int, duration: float = 1.0, init: str | None = None) -> ListedSegment:
    return ListedSegment(uri=f"https://r2.example/live/0/s-{i}.ts?sig={i}", duration=duration,
                         program_date_time=T0 + i, key=f"live/0/s-{i}.ts",
                         init_uri=None if init is None else f"https://r2.example/live/0/{init}?sig=i")


def filled(count: int, window: float = 4.0, init: str | None = None) -> ManifestGenerator:
    gen = ManifestGenerator(1, WindowOptions(window))
    for i in range(count):
        gen.append(seg(i, init=init), T0 + 100 * i)  # long apart: the listed-for-a-window rule never holds
    return gen


def uris(body: bytes) -> list[str]:
    return [s.uri for s in m3u8.loads(body.decode()).segments]


def test_a_view_of_the_whole_playlist_is_the_playlist_at_its_own_uris() -> None:
    gen = filled(6)
    view = View(VM_WAY, URIS)
    view.through = gen.next_sequence - 1
    rendered = view.render(gen)
    assert rendered is not None
    ours, theirs = m3u8.loads(rendered.body.decode()), m3u8.loads(gen.render().body.decode())
    assert ours.media_sequence == theirs.media_sequence and ours.target_duration == theirs.target_duration
    assert [s.program_date_time for s in ours.segments] == [s.program_date_time for s in theirs.segments]
    assert uris(rendered.body) == [f"/live/vm/0/s-{i}.ts" for i in range(gen.media_sequence, 6)]
    second = View(SECOND, URIS)
    second.through = 5
    body = second.render(gen)
    assert body is not None and uris(body.body)[-1] == "https://b2.example/media/live/0/s-5.ts"
    assert view.render(gen) is rendered  # rendered once per change


def test_a_pathway_behind_lists_fewer_and_holds_the_front_for_a_window() -> None:
    gen = ManifestGenerator(1, WindowOptions(3.0))
    view = View(SECOND, URIS)
    checker = MediaPlaylistChecker()
    for i in range(4):
        gen.append(seg(i), T0 + 100 * i)
    view.through = 3
    gen.keep_through(3)
    held_at = gen.media_sequence
    for i in range(4, 12):  # the second bucket lags from here
        gen.append(seg(i), T0 + 100 * i)
        rendered = view.render(gen)
        assert rendered is not None
        checker.assert_ok(rendered.body.decode())
        parsed = m3u8.loads(rendered.body.decode())
        assert parsed.segments[-1].uri.endswith("s-3.ts")
        assert sum(s.duration for s in parsed.segments) >= 3.0  # still a window long (6.2.2)
    assert gen.media_sequence == held_at  # held: the VM's version lists the whole backlog meanwhile
    for through in range(4, 12):  # it catches up
        view.through = through
        gen.keep_through(through, T0 + 2000)
        rendered = view.render(gen)
        assert rendered is not None
        checker.assert_ok(rendered.body.decode())
    assert gen.media_sequence == 12 - 3


def test_modes_write_a_gap_or_another_pathways_uri_and_a_map_where_the_init_uri_changes() -> None:
    gen = filled(5, window=10.0, init="init.mp4")
    view = View(FIRST, URIS)
    view.through = 4
    view.modes[2] = GAP
    view.modes[3] = "vm"
    rendered = view.render(gen)
    assert rendered is not None
    text = rendered.body.decode()
    MediaPlaylistChecker().assert_ok(text)
    parsed = m3u8.loads(text)
    assert [s.uri for s in parsed.segments][3] == "/live/vm/0/s-3.ts"
    assert parsed.segments[2].uri.endswith("s-2.ts?sig=2") and "#EXT-X-GAP\n#EXTINF:1.000,\n" \
        "https://r2.example/live/0/s-2.ts?sig=2" in text
    maps = [s.init_section.uri if s.init_section else None for s in parsed.segments]
    assert maps == ["https://r2.example/live/0/init.mp4?sig=i"] * 3 + ["/live/vm/0/init.mp4"] \
        + ["https://r2.example/live/0/init.mp4?sig=i"]
    assert text.count("#EXT-X-MAP") == 3  # first, at the VM's, back at the bucket's (4.4.4.5)


def test_a_long_window_in_chunks_is_the_text_a_view_would_join_whole() -> None:
    count = 5 * CHUNK_ENTRIES
    gen = filled(count, window=float(count))
    view = View(VM_WAY, URIS)
    for through in (count - 40, count - 3, count - 1):
        view.through = through
        rendered = view.render(gen)
        assert rendered is not None
        parsed = m3u8.loads(rendered.body.decode())
        assert len(parsed.segments) == through + 1
        assert parsed.segments[-1].uri == f"/live/vm/0/s-{through}.ts"
        import gzip
        assert gzip.decompress(rendered.gzip_body) == rendered.body


def test_an_ended_playlist_ends_only_on_a_pathway_that_lists_its_last_segment() -> None:
    gen = filled(4)
    gen.end()
    view = View(VM_WAY, URIS)
    view.through = 2
    behind = view.render(gen)
    assert behind is not None and b"ENDLIST" not in behind.body
    view.through = 3
    assert b"#EXT-X-ENDLIST" in (view.render(gen) or behind).body
    assert hls.VM_PATHWAY == VM_WAY.id


class CountedUris(VmUris):
    """The VM's URIs, counting how many each segment's were made."""

    made: dict[str, int] = {}

    def segment(self, segment: ListedSegment) -> str:
        CountedUris.made[segment.key or ""] = CountedUris.made.get(segment.key or "", 0) + 1
        return super().segment(segment)


def test_each_entry_is_written_once_per_pathway_not_once_per_version() -> None:
    """Each entry's text at a pathway's URIs is made once and looked up after, fMP4's EXT-X-MAP too."""
    for init in (None, "init.mp4"):
        CountedUris.made = {}
        counted = Pathway("vm", VM, "vm", CountedUris())
        gen = filled(3, window=10.0, init=init)
        view = View(counted, {**URIS, "vm": counted.uris})
        bodies = []
        for i in range(3, 12):
            gen.append(seg(i, init=init), T0 + 100 * i)
            view.through = gen.next_sequence - 1
            rendered = view.render(gen)
            assert rendered is not None
            bodies.append(rendered.body.decode())
        assert set(CountedUris.made.values()) == {1}, CountedUris.made
        last = m3u8.loads(bodies[-1])
        assert [s.uri for s in last.segments][-1] == "/live/vm/0/s-11.ts"
        assert (last.segments[0].init_section is not None) == (init is not None)
        MediaPlaylistChecker().assert_ok(bodies[-1])


def test_a_vm_version_is_rendered_when_first_asked_as_it_was_when_pushed() -> None:
    """A Pending rendered late is byte for byte the version pushed; one not all at its URIs at once."""
    gen = ManifestGenerator(1, WindowOptions(16.0, can_block_reload=True))  # offers delta updates
    for i in range(24):
        gen.append(seg(i), T0 + 100 * i)
    lazy, eager = View(VM_WAY, URIS), View(VM_WAY, URIS)
    lazy.through = eager.through = gen.next_sequence - 1
    pushed = lazy.version(gen, lambda: Snapshot(gen))
    assert isinstance(pushed, Pending) and pushed.last_sequence == 23 and not pushed.ended
    expected = eager.render(gen)  # the same state, rendered at once
    for i in range(24, 32):  # the playlist moves on (and slides) before anyone asks
        gen.append(seg(i), T0 + 100 * i)
    made = pushed.rendered
    assert expected is not None and made.body == expected.body and made.delta is not None
    assert expected.delta is not None and made.delta.body == expected.delta.body
    assert made.gzip_body and made.last_sequence == 23 and pushed.rendered is made
    lazy.through = gen.next_sequence - 1
    newer = lazy.version(gen, lambda: Snapshot(gen))
    assert newer is not None and uris(newer.rendered.body)[-1] == "/live/vm/0/s-31.ts"
    lazy.modes[32] = GAP  # an entry not at its own URI: rendered as it comes
    gen.append(seg(32), T0 + 3200)
    lazy.through = 32
    assert isinstance(lazy.version(gen, lambda: Snapshot(gen)), Rendered)
    long = filled(3 * CHUNK_ENTRIES, window=3.0 * CHUNK_ENTRIES)
    view, at_once = View(VM_WAY, URIS), View(VM_WAY, URIS)
    view.through = at_once.through = long.next_sequence - 1
    later = view.version(long, lambda: Snapshot(long))
    expected = at_once.render(long)
    for i in range(long.next_sequence, long.next_sequence + CHUNK_ENTRIES + 3):
        long.append(seg(i), T0 + 100 * i)
    assert later is not None and expected is not None and later.rendered.body == expected.body
