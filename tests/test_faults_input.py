"""A hostile HLS_DIR, against the real service process and a real S3 server (SeaweedFS).

Owncast's folder is written by hand, in Owncast's order, with real MPEG-TS bytes, so each fault lands in
one variant of one slot between good slots. For every fault: the service stays up (good segments after it
are listed in every variant); every version served passes VariantSetChecker; nothing outside HLS_DIR is
read or uploaded; the problem is logged once with the file's name and counted
(hls_broadcaster_input_rejected_total or _segments_lost_total); no ERROR line, no traceback.

The decisions pinned down:
- a listed segment that is empty, missing, a symlink, not a regular file, over 64 MiB or of a type we do
  not publish is lost: its slot is dropped from every variant, the gap marked with a discontinuity;
- a segment of garbage bytes is uploaded and listed as it is (validating media would mean demuxing it;
  Owncast is trusted for content, and a player skips what it cannot decode);
- an entry that is not a plain file name in its variant folder is skipped, whatever is on disk;
- a playlist that does not parse (truncated, binary, too large, EXTINF inf or nan) is ignored until
  rewritten; a broken multivariant playlist leaves the last good one in use;
- a segment longer than the target in every variant, or with an EXTINF <= 0, is not listed;
- symlinked variant folders and playlists are not read; stray files are ignored.

"Logged once" is watched for a while after the fact (quiet_for). FAULTS_DUMP=1 prints each service's log."""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from broadcaster.demo.seaweed import SeaweedS3
from tests.support.service_process import ServiceProcess, service_env
from tests.support.observe import Observer
from tests.support.s3 import bucket_of_its_own
from tests.support.scrape import total
from tests.support.owncast_writer import SECONDS, HandFedOwncast, Prepare, real_ts_segment, write_in_place
from tests.support.waiting import TimedOut, until

# One bucket for the module (each test has its own service, HLS_DIR and key prefix), on one worker.
pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.xdist_group("faults_input")]

MAX_FILE_BYTES = 64 * 1024 * 1024  # broadcaster.bucket.uploader.Uploader's default limit
SECRET = b"SECRET-OUTSIDE-HLS-DIR-7f3a9c"  # in every file outside HLS_DIR a test tempts the service with


# -- Owncast's folder, written by hand ---------------------------------------------------------------


@pytest.fixture(scope="module")
def long_ts(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """5 s of media: a segment named 5 s holds that (one named longer than its media is not finished)."""
    return real_ts_segment(tmp_path_factory.mktemp("ts5"), 5)


# -- the service, seen from outside ------------------------------------------------------------------


def lines_with(service: ServiceProcess, *needles: str) -> list[str]:
    return [line for line in service.lines if all(n in line for n in needles)]


async def until_logged(service: ServiceProcess, *needles: str, count: int = 1, timeout: float = 10.0) -> None:
    """Until `count` lines hold every needle."""
    await until(lambda: len(lines_with(service, *needles)) >= count, f"{count} log lines with {needles}", timeout,
                every=0.05, detail=lambda: lines_with(service, *needles))


QUIET = 1.5  # the watcher rereads every playlist each time the folder has been quiet for a second


async def quiet_for(service: ServiceProcess, seconds: float, *needles: str) -> None:
    """A negative ("logged only once") needs a while to look at: with QUIET, at least one more
    rescan of the folder, on top of those the test has already waited through."""
    before = len(lines_with(service, *needles))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert len(lines_with(service, *needles)) == before, lines_with(service, *needles)
        await asyncio.sleep(0.1)


async def bucket_objects(s3: SeaweedS3) -> dict[str, bytes]:
    """Every object in the bucket with its bytes, read with the S3 API (not the public URL)."""
    out: dict[str, bytes] = {}
    async with s3.client() as client:
        async for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
            for obj in page.get("Contents", []):
                got = await client.get_object(Bucket=s3.bucket, Key=obj["Key"])
                async with got["Body"] as body:
                    out[obj["Key"]] = await body.read()
    return out


# A bound, not a duration: one upload attempt stalling past UPLOAD_TIMEOUT (5 s) and retried as slowly on a
# loaded machine. A wait that fails says per variant what was listed, uploaded and warned of.
LISTED = 15.0


async def _what_the_service_did(seen: Observer, service: ServiceProcess) -> str:
    """Per variant, the segments the service saw, listed and uploaded (its counters); its failed upload
    attempts by reason; whether it held versions back; its warnings and errors."""
    try:
        metrics = await seen.metrics()
    except (aiohttp.ClientError, AssertionError, TimeoutError) as err:
        return f"(/metrics did not answer: {err!r})\n" + "\n".join(service.warnings()[-40:])

    def count(name: str, **labels: str) -> int:
        return int(total(metrics, name, **labels))

    ns = "hls_broadcaster"
    per_variant = {v: (count(f"{ns}_segments_seen_total", variant=str(v)),
                       count(f"{ns}_segments_listed_total", variant=str(v)),
                       count(f"{ns}_segments_uploaded_total", variant=str(v), pathway="bucket"))
                   for v in seen.variants}
    failures = {dict(labels).get("reason", "?"): int(value) for (sample, labels), value in metrics.items()
                if sample == f"{ns}_upload_failures_total" and value}
    return "\n".join([
        "the service's counters, variant: (seen, listed, uploaded to the bucket): " + repr(per_variant),
        f"failed upload attempts by reason: {failures}; versions held back: {count(f'{ns}_listing_held')}",
        "its warnings:", *service.warnings()[-40:]])


@dataclass
class Rig:
    feed: HandFedOwncast
    service: ServiceProcess
    seen: Observer
    s3: SeaweedS3
    prefix: str  # R2_KEY_PREFIX: this test's part of the shared bucket
    outside: Path  # a folder next to HLS_DIR, never to be read

    def key(self, v: int, name: str) -> str:
        return f"{self.prefix}/{v}/{name}"

    async def listed_everywhere(self, *names: str, timeout: float = LISTED) -> None:
        """`names` listed in every variant's playlist; a wait that fails says why."""
        try:
            await self.seen.listed_everywhere(*names, timeout=timeout)
        except TimedOut as err:
            raise TimedOut(f"{err}\n{await _what_the_service_did(self.seen, self.service)}") from None

    async def objects(self) -> dict[str, bytes]:
        """This test's objects in the bucket."""
        return {k: b for k, b in (await bucket_objects(self.s3)).items() if k.startswith(self.prefix + "/")}

    async def only_good_segments(self) -> None:
        """This test's objects are the hand-fed stream's segments, nothing else."""
        objects = await self.objects()
        good = rf"{self.prefix}/[01]/stream-f4ult-\d+\.ts"
        assert all(re.fullmatch(good, key) for key in objects), sorted(objects)

    async def nothing_from_outside(self) -> None:
        """No object in the whole bucket holds bytes from outside HLS_DIR."""
        for key, body in (await bucket_objects(self.s3)).items():
            assert SECRET not in body, f"{key} holds bytes from outside HLS_DIR"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def s3(seaweed_server: SeaweedS3) -> AsyncIterator[SeaweedS3]:
    async with bucket_of_its_own(seaweed_server) as bucket:
        yield bucket


BeforeStart = Callable[[HandFedOwncast, Path], None]


def variants_named(master: str) -> tuple[list[str], list[tuple[str, str]]]:
    """A multivariant playlist's other lines in order, and its variants in any order: the pathways' order
    follows the service's probe of the bucket, which a loaded machine can fail between two reads."""
    lines = [re.sub(r'^(#EXT-X-CONTENT-STEERING:.*PATHWAY-ID=)"[^"]*"', r'\1"<the pathway first now>"', line)
             for line in master.splitlines()]
    paired = {i for i, line in enumerate(lines[:-1]) if line.startswith("#EXT-X-STREAM-INF:")}
    rest = [line for i, line in enumerate(lines) if i not in paired and i - 1 not in paired]
    return rest, sorted((lines[i], lines[i + 1]) for i in paired)


@pytest_asyncio.fixture(loop_scope="module")
async def rig(
        request: pytest.FixtureRequest, tmp_path: Path, s3: SeaweedS3, ts_bytes: bytes) -> AsyncIterator[Rig]:
    """Two good slots already listed by the running service. Parametrize it (indirect) with
    HandFedOwncast's options to change Owncast's folder, and "before_start" to change it further
    before the service starts."""
    options = dict(getattr(request, "param", {}))
    before_start: BeforeStart = options.pop("before_start", lambda feed, outside: None)
    feed = HandFedOwncast(tmp_path / "hls", ts_bytes, **options)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ts").write_bytes(SECRET * 1000)
    first = [feed.slot(), feed.slot()]
    before_start(feed, outside)
    prefix = "t-" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[-60:].strip("-")
    # Nothing is deleted from the bucket, so listing it shows everything that was ever uploaded.
    env = service_env(feed.root, s3, tmp_path / "state", WINDOW_SECONDS="4", DELETE_OLD_SEGMENTS="false",
                      R2_KEY_PREFIX=prefix, PATHWAYS="bucket,vm")
    async with ServiceProcess(env, tmp_path) as service, aiohttp.ClientSession() as http:
        rig = Rig(feed, service, Observer(service.url, http, feed.variants), s3, prefix, outside)
        await rig.listed_everywhere(*first)
        yield rig
        assert service.proc is not None and service.proc.returncode is None, "the service died"
        assert service.problems() == [], "\n".join(service.problems())
        assert await service.stop() == 0
    if os.environ.get("FAULTS_DUMP"):
        print("\n".join(service.lines))
    assert service.problems() == [], "\n".join(service.problems())


async def good_slots(rig: Rig, count: int = 2, timeout: float = LISTED) -> list[str]:
    """`count` good slots, listed in every variant; proves the service kept going."""
    names = [rig.feed.slot() for _ in range(count)]
    await rig.listed_everywhere(*names, timeout=timeout)
    return names


# -- segment files -----------------------------------------------------------------------------------


def _huge(p: Path) -> None:
    with open(p, "wb") as f:
        f.write(b"\x47" * 188)
        f.truncate(100 * 1024 * 1024)  # sparse: 100 MiB long, a few KB on disk (closed after, as Owncast does)


async def test_bad_segment_files_are_lost_once_and_nothing_outside_is_uploaded(
        rig: Rig, ts_bytes: bytes, long_ts: bytes) -> None:
    feed, seen, service = rig.feed, rig.seen, rig.service

    def good(p: Path) -> None:
        write_in_place(p, ts_bytes)

    garbage = os.urandom(len(ts_bytes)).replace(b"\x47", b"\x48")  # no TS sync byte anywhere
    faults: dict[str, tuple[str, tuple[int, ...]]] = {}  # name -> (lost reason, broken variants)
    cases: list[tuple[str, dict[int, Prepare], str]] = [
        ("empty", {0: lambda p: p.write_bytes(b"")}, "ts"),
        ("deleted", {0: lambda p: None}, "ts"),  # listed, never written
        ("symlink", {0: lambda p: p.symlink_to(rig.outside / "secret.ts")}, "ts"),
        ("too_large", {0: _huge}, "ts"),
        ("not_a_file", {0: os.mkfifo}, "ts"),
        ("not_a_file", {0: lambda p: p.mkdir()}, "ts"),
        ("bad_type", {0: good, 1: good}, "exe"),  # a name Owncast never writes; in both variants
        ("empty", {0: lambda p: p.write_bytes(b""), 1: lambda p: p.write_bytes(b"")}, "ts"),
    ]
    for reason, prepare, ext in cases:
        name = feed.slot({1: good, **prepare}, ext=ext)
        faults[name] = (reason, tuple(prepare))
        await good_slots(rig, 1)
    # Longer than the target duration (1 s so far) in every variant: listed, with a new playlist for
    # a longer target (docs/hls-rules.md, "A new target duration").
    five: dict[int, Prepare] = {v: lambda p: write_in_place(p, long_ts) for v in (0, 1)}
    long = feed.slot(five, duration={0: 5.0, 1: 5.0})
    await good_slots(rig, 1)
    garbage_name = feed.slot({0: lambda p: write_in_place(p, garbage)})
    after = await good_slots(rig, 3)
    await rig.listed_everywhere(garbage_name)
    status, health = await seen.health()
    # Nothing of the bad input is left in /health; a loaded machine's slow bucket is a 503 of its own.
    reasons = [r for r in str(health["status"]).split("; ")
               if not r.startswith("uploads slower than real time")]
    assert (status, reasons) in ((200, ["ok"]), (503, [])), (status, health)

    # Every good slot is listed once, in order, in both variants under the same numbers. A slot broken
    # in variant 0 alone is a gap there (EXT-X-GAP) and a segment in variant 1 (the good copy is
    # kept); one broken in both variants is in neither.
    everywhere = {name for name, (_reason, broken) in faults.items() if set(broken) == set(feed.variants)}
    for v in feed.variants:
        names = seen.names(v)
        assert len(names) == len(set(names))
        assert not everywhere & set(names), names
        assert set(faults) - everywhere <= set(names), names
        assert long in names
        assert seen.listed[v] == seen.listed[0]
        gapped = {seen.listed[v][n] for n in seen.gaps.get(v, set())}
        assert gapped == (set(faults) - everywhere if v == 0 else set()), (v, gapped)
    assert seen.names(0)[-4:] == [garbage_name, *after]

    # Each loss is logged once with the file's name (the broken copy; a good sibling is only counted).
    m = await seen.metrics()
    want: dict[tuple[str, str], int] = {}
    for name, (reason, broken) in faults.items():
        for v in broken:
            assert len(lines_with(service, f"variant {v}: segment {name} lost ({reason})")) == 1, name
            want[(str(v), reason)] = want.get((str(v), reason), 0) + 1
        # A file of a type we do not publish is also a stray to the watcher when it appears (it cannot
        # know yet that a playlist will list it): one line for each of the two problems.
        strays = [f"ignoring {str(feed.folder(v) / name)!r}: not a file"
                  for v in broken if name.endswith(".exe")]
        for stray in strays:
            assert len(lines_with(service, stray)) == 1, stray
        assert len(lines_with(service, name)) == len(broken) + len(strays), lines_with(service, name)
    assert not [k for k in m if k[0] == "hls_broadcaster_segments_lost_total" and ("reason", "sibling_lost") in k[1]
                and m[k]], "a good copy was dropped"
    for (variant, reason), n in want.items():
        assert total(m, "hls_broadcaster_segments_lost_total", variant=variant, reason=reason) == n, variant
    # The long one raised the target once, with one line that names it; nothing was rejected.
    assert len(lines_with(service, f"segment {long} lasts 5.000s, longer than the target duration 1s")) == 1
    assert total(m, "hls_broadcaster_target_duration_changes_total", reason="longer_segment") == 1
    assert total(m, "hls_broadcaster_input_rejected_total", reason="rejected") == 0

    # The bucket holds the good segments and the garbage one byte for byte, and nothing else.
    objects = await rig.objects()
    assert objects[rig.key(0, garbage_name)] == garbage
    assert objects[rig.key(1, garbage_name)] == ts_bytes
    for name in faults:
        assert rig.key(0, name) not in objects
    assert all(len(body) <= MAX_FILE_BYTES for body in objects.values())
    await rig.nothing_from_outside()
    await quiet_for(service, QUIET, "lost")


# -- playlist entries ---------------------------------------------------------------------------------

UNSAFE_NAMES = [
    "../../etc/passwd", "/etc/passwd", "%2e%2e%2fsecret.ts", "sub/dir.ts", "../secret.ts", "..\\secret.ts",
    "stream-a..b-1.ts", "stream%2Df4ult-1.ts", "..", ".hidden.ts", "file:///etc/passwd",
    "http://127.0.0.1:9/x.ts", "x.ts?y=../../etc/passwd", "été.ts", "a\x00b.ts",
]


async def test_unsafe_names_in_playlists_are_skipped_once_and_never_read(rig: Rig) -> None:
    feed, seen, service = rig.feed, rig.seen, rig.service
    # Owncast's list does not move here: a skipped entry sliding out of it shifts the numbering.
    feed.list_size = 1000
    # Whatever those names could reach exists, and holds the secret.
    (feed.root / "secret.ts").write_bytes(SECRET)
    for v in feed.variants:
        (feed.folder(v) / "sub").mkdir()
        (feed.folder(v) / "sub" / "dir.ts").write_bytes(SECRET)
        for name in ("%2e%2e%2fsecret.ts", "stream-a..b-1.ts", "stream%2Df4ult-1.ts", ".hidden.ts"):
            (feed.folder(v) / name).write_bytes(SECRET)
    # Listed in every variant (as a corrupt playlist would be), between good segments.
    for name in UNSAFE_NAMES:
        for v in feed.variants:
            feed.add_entry(v, name)
        await good_slots(rig, 1)
    after = await good_slots(rig, 3)

    for v in feed.variants:
        assert seen.names(v) == seen.names(0)
        assert not set(UNSAFE_NAMES) & set(seen.names(v))
    assert seen.names(0)[-3:] == after
    await quiet_for(service, QUIET, "skipping")
    for v in feed.variants:  # one line per variant per 30 s (RateLimitedLog), the rest counted
        assert lines_with(service, f"skipping {UNSAFE_NAMES[0]!r} in {v}/stream.m3u8")
        for name in UNSAFE_NAMES:
            assert len(lines_with(service, f"skipping {name!r} in {v}/stream.m3u8")) <= 1, (v, name)
    m = await seen.metrics()
    assert total(m, "hls_broadcaster_input_rejected_total", reason="unsafe_name") == 2 * len(UNSAFE_NAMES)
    await rig.only_good_segments()
    await rig.nothing_from_outside()


# -- playlists ---------------------------------------------------------------------------------------


BREAKERS = 7  # kinds of broken variant playlist below


@pytest.mark.parametrize("rig", [{"variants": tuple(range(BREAKERS))}], indirect=True)
async def test_broken_playlists_are_warned_once_and_the_stream_goes_on(rig: Rig) -> None:
    """Each variant's playlist is broken a different way at once (one quiet period covers them all),
    then fixed; then again with the kinds shifted, so each variant recovers from two of them."""
    feed, seen, service = rig.feed, rig.seen, rig.service

    def truncated(v: int) -> None:
        text = feed.playlist_text(v)
        write_in_place(feed.playlist(v), text.encode()[: len(text) - 7])  # Owncast died mid-write

    def directory(v: int) -> None:
        feed.playlist(v).unlink()
        feed.playlist(v).mkdir()

    def fifo(v: int) -> None:  # opened without O_NONBLOCK, reading it would block the whole service
        feed.playlist(v).unlink()
        os.mkfifo(feed.playlist(v))

    def symlink(v: int) -> None:
        outside = rig.outside / f"stream{v}.m3u8"
        outside.write_text(feed.playlist_text(v).replace(feed.name(feed.number - 1), "secret.ts"))
        feed.playlist(v).unlink()
        feed.playlist(v).symlink_to(outside)

    def written(text: bytes) -> Callable[[int], None]:
        return lambda v: write_in_place(feed.playlist(v), text)

    breakers: list[tuple[Callable[[int], None], str]] = [
        (truncated, "incomplete playlist"), (written(b"\xff\xfe" + os.urandom(4096)), "not UTF-8 text"),
        (written(b"#EXTM3U\n" + bytes(range(32)) * 100 + b"\n#EXTINF:x,\n\x00\n"), "unparsable playlist"),
        (written(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#" + b"A" * (2 << 20) + b"\n"),
         "larger than 262144 bytes"),
        (directory, "not a regular file"), (symlink, "a symlink; not followed"), (fifo, "not a regular file"),
    ]
    assert len(breakers) == BREAKERS
    for shift in (0, 3):
        name = feed.name(feed.number)
        for v in feed.variants:
            write_in_place(feed.folder(v) / name, feed.ts)
            feed.add_entry(v, name)
        feed.number += 1
        for v in feed.variants:
            breakers[(v + shift) % BREAKERS][0](v)
        # Not a half-written playlist once the folder has been quiet: warned about, once.
        for v in feed.variants:
            await until_logged(service, f"ignoring {feed.playlist(v)}: ", breakers[(v + shift) % BREAKERS][1])
        assert all(name not in seen.names(v) for v in feed.variants)
        for v in feed.variants:
            if feed.playlist(v).is_dir():
                feed.playlist(v).rmdir()
            elif feed.playlist(v).is_symlink() or not feed.playlist(v).is_file():
                feed.playlist(v).unlink()
            feed.write_playlist(v)  # Owncast writes the next version: the stream goes on
        await rig.listed_everywhere(name, *(await good_slots(rig, 1)))
    # A long line under the size limit (256 KiB) is read like any other line (an unknown tag here).
    name = feed.slot()
    write_in_place(
        feed.playlist(0),
        feed.playlist_text(0).replace(
            "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-JUNK:" + "x" * 200_000
        ),
    )
    await rig.listed_everywhere(name, *(await good_slots(rig, 1)))
    # The multivariant playlist: the last good one keeps being served.
    async with seen.http.get(f"{seen.url}/live/master.m3u8") as r:
        assert r.status == 200
        master = await r.text()
    write_in_place(feed.root / "stream.m3u8", b"\x00" * 100)
    await until_logged(service, f"ignoring {feed.root / 'stream.m3u8'}: ")
    async with seen.http.get(f"{seen.url}/live/master.m3u8") as r:
        assert r.status == 200 and variants_named(await r.text()) == variants_named(master)
    await good_slots(rig, 2)

    await quiet_for(service, QUIET, "ignoring")
    for v in feed.variants:
        assert len(lines_with(service, f"ignoring {feed.playlist(v)}: ")) == 2, lines_with(service, f"/{v}/")
    assert len(lines_with(service, f"ignoring {feed.root / 'stream.m3u8'}: ")) == 1
    m = await seen.metrics()
    assert total(m, "hls_broadcaster_input_rejected_total", reason="bad_playlist") == 2 * BREAKERS + 1
    await rig.nothing_from_outside()


# -- durations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rig", [{"variants": (0,)}], indirect=True)
async def test_impossible_durations_never_reach_the_playlists(rig: Rig) -> None:
    """EXTINF inf or nan makes the playlist unusable: ignored, and warned about once, until Owncast's list
    moved past it (inf would make the publisher's rounding raise). A negative or zero EXTINF is not listed."""
    feed, seen, service = rig.feed, rig.seen, rig.service
    feed.list_size = 3  # Owncast's list moves past a bad entry after 3 more segments
    cases = [("inf", True), ("nan", True), ("-1", True), ("0", True), ("inf", False), ("nan", False)]
    warned = 0
    for value, with_pdt in cases:
        if with_pdt != feed.with_pdt:
            feed.with_pdt = with_pdt
            await good_slots(rig, feed.list_size)  # no PROGRAM-DATE-TIME left in Owncast's list
        name = feed.name(feed.number)
        write_in_place(feed.folder(0) / name, feed.ts)
        feed.add_entry(0, name)
        feed.entries[0][-1] = feed.entries[0][-1].replace(f"#EXTINF:{SECONDS:.6f},", f"#EXTINF:{value},")
        feed.number += 1
        feed.write_playlist(0)
        if value in ("-1", "0"):
            await until_logged(service, f"variant 0: segment {name} not listed")
        else:
            warned += 1
            await until_logged(service, f"ignoring {feed.playlist(0)}: ", count=warned)
        await good_slots(rig, feed.list_size)
        assert name not in seen.names(0)
        if not with_pdt or value in ("-1", "0"):  # the playlist parser's own error does not name it
            assert len(lines_with(service, name)) == 1, lines_with(service, name)
    await quiet_for(service, QUIET, "ignoring")
    assert len(lines_with(service, f"ignoring {feed.playlist(0)}: ")) == warned
    m = await seen.metrics()
    assert total(m, "hls_broadcaster_input_rejected_total", reason="bad_playlist") == warned
    assert total(m, "hls_broadcaster_input_rejected_total", reason="rejected") == 2
    assert total(m, "hls_broadcaster_segments_lost_total", variant="0", reason="rejected") == 2


# -- symlinks and strays -----------------------------------------------------------------------------


def _symlinked_variant(feed: HandFedOwncast, outside: Path, index: int) -> Path:
    """HLS_DIR/<index> as a symlink to a folder outside, holding a playlist and a segment."""
    elsewhere = outside / f"variant{index}"
    elsewhere.mkdir()
    (elsewhere / "stream-f4ult-0.ts").write_bytes(SECRET * 100)
    write_in_place(
        elsewhere / "stream.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nstream-f4ult-0.ts\n"
    )
    (feed.root / str(index)).symlink_to(elsewhere, target_is_directory=True)
    return elsewhere


@pytest.mark.parametrize(
    "rig", [{"before_start": lambda feed, outside: _symlinked_variant(feed, outside, 2)}], indirect=True
)
async def test_symlinked_variant_folders_and_stray_files_are_ignored_once(rig: Rig) -> None:
    feed, seen, service = rig.feed, rig.seen, rig.service
    # The master names them all, so each is really tried (an unnamed folder is never read at all).
    write_in_place(feed.root / "stream.m3u8", feed.master_text() + "".join(
        f"#EXT-X-STREAM-INF:BANDWIDTH=100000\n{v}/stream.m3u8\n" for v in (2, 3, 4)))
    # Variant 2 was a symlink when the service started (inotify follows those); 4 becomes one now.
    linked = [rig.outside / "variant2", _symlinked_variant(feed, rig.outside, 4)]
    # A real variant folder whose playlist is a symlink to a playlist outside.
    (feed.root / "3").mkdir()
    (feed.root / "3" / "stream.m3u8").symlink_to(linked[0] / "stream.m3u8")
    # Stray files: junk next to Owncast's files, and a name made to forge a log line.
    forged = "x\n2026-01-01 00:00:00,000 WARNING broadcaster.publish.publisher: variant 0: forged.txt"
    strays = [feed.root / "notes.txt", feed.folder(0) / "core.1234", feed.folder(1) / "thumb.jpg",
              feed.root / forged]
    for path in strays:
        path.write_bytes(SECRET)
    (feed.root / "junk-dir").mkdir()
    (feed.root / "junk-dir" / "inner.bin").write_bytes(SECRET)
    # A real folder with a good playlist and segment that the master does not name: not a variant.
    unnamed = _symlinked_variant(feed, rig.outside, 6)
    (feed.root / "6").unlink()
    unnamed.rename(feed.root / "6")
    after = await good_slots(rig, 2)
    # Owncast keeps writing, behind the symlinks too, and the strays change.
    for elsewhere in linked:
        (elsewhere / "stream-f4ult-1.ts").write_bytes(SECRET * 100)
        (elsewhere / "notes.txt").write_bytes(SECRET)
        write_in_place(elsewhere / "stream.m3u8",
                       (elsewhere / "stream.m3u8").read_text() + "#EXTINF:1.0,\nstream-f4ult-1.ts\n")
    for path in strays:
        path.write_bytes(SECRET + b"again")
    after += await good_slots(rig, 2)
    await until_logged(service, f"ignoring {feed.root / '3' / 'stream.m3u8'}: ")
    for index in (2, 4):
        await until_logged(service, f"ignoring {str(feed.root / str(index))!r}: a symlink")
    await until_logged(service, f"ignoring {str(feed.root / '6')!r}: not a variant")
    await quiet_for(service, QUIET, "ignoring")

    for v in (2, 3, 4, 6):
        async with seen.http.get(f"{seen.url}/live/{v}/playlist.m3u8") as r:
            assert r.status == 404
    for v in feed.variants:
        assert seen.names(v)[-4:] == after
    # Every stray is logged once, on one line; the forged name cannot make a line of its own.
    for path in strays:
        assert len(lines_with(service, f"ignoring {str(path)!r}")) == 1, path
    assert not [line for line in service.lines if line.startswith("2026-01-01")], "a log line was forged"
    assert len(lines_with(service, "forged")) == 1
    # The symlinked playlist is refused once; each symlinked folder is noted once and never entered.
    assert len(lines_with(service, f"ignoring {feed.root / '3' / 'stream.m3u8'}: ")) == 1
    for index in (2, 4):
        assert len(lines_with(service, f"{feed.root / str(index)}")) == 1, lines_with(service, f"/{index}")
    m = await seen.metrics()
    assert total(m, "hls_broadcaster_input_rejected_total", reason="bad_playlist") == 1
    assert total(m, "hls_broadcaster_input_rejected_total", reason="symlink") == 2
    assert total(m, "hls_broadcaster_input_rejected_total", reason="not_a_variant") == 1
    assert len(lines_with(service, str(feed.root / "6"))) == 1
    # A file made at once in a new folder may come before inotify watches that folder: noticed or not.
    inner = len(lines_with(service, "junk-dir/inner.bin"))
    assert inner <= 1
    assert total(m, "hls_broadcaster_input_rejected_total", reason="stray_file") == len(strays) + inner
    await rig.only_good_segments()
    await rig.nothing_from_outside()


# -- one variant's entry unlike the other's ------------------------------------------------------------


async def test_unsafe_entry_in_one_variant_keeps_the_variants_lined_up(rig: Rig) -> None:
    feed = rig.feed
    name = feed.name(feed.number)
    write_in_place(feed.folder(1) / name, feed.ts)
    feed.add_entry(0, "../../etc/passwd")  # variant 0's entry for this slot is corrupt
    feed.add_entry(1, name)
    feed.number += 1
    for v in feed.variants:
        feed.write_playlist(v)
    after = await good_slots(rig, 3)  # every version of both playlists is checked on the way
    for v in feed.variants:
        assert rig.seen.names(v)[-3:] == after


async def test_segment_too_long_in_one_variant_only_does_not_freeze_it(rig: Rig, long_ts: bytes) -> None:
    """5 s in variant 0 only, 1 s in the other (a copied variant): the variants are cut apart, so each
    is listed on its own; the long one is listed (with a longer target), nothing freezes. From then on
    the same number no longer names the same moment in both, so the observer lines them up by date."""
    rig.seen.checker.align_by = "time"
    long = rig.feed.slot({0: lambda p: write_in_place(p, long_ts)}, duration={0: 5.0})  # 5 s in variant 0 only
    after = await good_slots(rig, 3, timeout=8)
    for v in rig.feed.variants:
        assert long in rig.seen.names(v)
        assert rig.seen.names(v)[-3:] == after


def _absurd_first_segment(feed: HandFedOwncast, outside: Path) -> None:
    for v in feed.variants:
        feed.add_entry(v, feed.name(feed.number), duration=1e9)
        write_in_place(feed.folder(v) / feed.name(feed.number), feed.ts)
        feed.write_playlist(v)
    feed.number += 1


@pytest.mark.parametrize("rig", [{"before_start": _absurd_first_segment}], indirect=True)
async def test_absurd_duration_in_the_first_playlist_does_not_fix_the_target_duration(rig: Rig) -> None:
    await good_slots(rig, 1)
    async with rig.seen.http.get(f"{rig.seen.url}/live/0/playlist.m3u8") as r:
        text = await r.text()
        cache_control = r.headers["Cache-Control"]
    target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))  # type: ignore[union-attr]
    assert target <= 60, f"EXT-X-TARGETDURATION:{target}, Cache-Control: {cache_control}"


# -- input bounded and never fatal -------------------------------------------------------------------

_HELD: list[int] = []  # writers held open on FIFOs, closed by the test that made them


def _fifo_variant(feed: HandFedOwncast, outside: Path) -> None:
    """Variant 7, named by the master, whose playlist is a FIFO with a writer held open."""
    extra = "#EXT-X-STREAM-INF:BANDWIDTH=1000\n7/stream.m3u8\n"
    write_in_place(feed.root / "stream.m3u8", feed.master_text() + extra)
    (feed.root / "7").mkdir()
    os.mkfifo(feed.root / "7" / "stream.m3u8")
    _HELD.append(os.open(feed.root / "7" / "stream.m3u8", os.O_RDWR | os.O_NONBLOCK))


@pytest.mark.parametrize("rig", [{"variants": (0,), "before_start": _fifo_variant}], indirect=True)
async def test_a_fifo_playlist_neither_stops_start_up_nor_the_stream(rig: Rig) -> None:
    """A playlist read gets no text from it: neither start-up nor the watcher may fail on that."""
    feed, service = rig.feed, rig.service
    fifo = feed.root / "7" / "stream.m3u8"
    await until_logged(service, f"ignoring {fifo}: not a regular file")
    await good_slots(rig, 2)
    fifo.unlink()
    while _HELD:
        os.close(_HELD.pop())
    await good_slots(rig, 2)
    await quiet_for(service, QUIET, "ignoring")
    assert len(lines_with(service, str(fifo))) == 1
    m = await rig.seen.metrics()
    assert total(m, "hls_broadcaster_input_rejected_total", reason="bad_playlist") == 1


async def test_stray_playlists_in_unnamed_folders_neither_stall_nor_hold_health(rig: Rig) -> None:
    """A 15,000-entry (~1 MB) playlist in a spare folder neither stalls the service nor pushes the real
    variants' slots out; a one-entry one does not hold /health at 503 ("uploads behind")."""
    feed, seen, service = rig.feed, rig.seen, rig.service
    stall = 3 * SECONDS  # the publisher reports a variant or an upload stuck this long
    (feed.root / "5").mkdir()
    write_in_place(feed.root / "5" / "stream.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:1\n" + "".join(
        f"#EXTINF:1.000000,\nstream-str4y-{i}.ts\n" for i in range(15_000)))
    (feed.root / "6").mkdir()
    (feed.root / "6" / "stream-l0ne-0.ts").write_bytes(feed.ts)
    write_in_place(feed.root / "6" / "stream.m3u8",
                   "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.000000,\nstream-l0ne-0.ts\n")
    deadline = time.monotonic() + stall + 1.5
    listed: list[str] = []
    written = time.monotonic()
    while time.monotonic() < deadline:  # the stream goes on past the stall limit
        written = time.monotonic()  # this writer writes the next slot only once the last is listed
        listed += await good_slots(rig, 1)
    paused = time.monotonic() - written  # before the health request: how long this writer wrote nothing
    status, body = await seen.health()
    # Not held at 503 by the strays. A busy machine's slow uploads are a true 503 of their own, and so is
    # "no new segment from Owncast" when this writer (waiting for each listing) wrote nothing that long.
    def ours(reason: str) -> bool:
        quiet = re.fullmatch(r"variant \d+: no new segment from Owncast for (\d+)s", reason)
        return reason.startswith("uploads slower than real time") or (
            quiet is not None and paused >= stall - 1.0)
    reasons = [r for r in str(body["status"]).split("; ") if not ours(r)]
    assert (status, reasons) in ((200, ["ok"]), (503, [])), (status, body)
    for v in feed.variants:
        assert all(name in seen.names(v) for name in listed)
    for index in (5, 6):
        await until_logged(service, f"ignoring {str(feed.root / str(index))!r}: not a variant")
    assert lines_with(service, "arrived after its slot was decided") == []
    m = await seen.metrics()
    assert total(m, "hls_broadcaster_input_rejected_total", reason="not_a_variant") == 2
    await rig.only_good_segments()


AT_FDCWD, RENAME_EXCHANGE = -100, 2


def _swap_loop(a: Path, b: Path, stop: threading.Event, max_swaps: int, max_seconds: float) -> int:
    """Swap a and b atomically (renameat2 RENAME_EXCHANGE) until told to stop, at most `max_swaps`
    times and `max_seconds`; always an even number, so each ends where it began."""
    libc = ctypes.CDLL(None, use_errno=True)

    def swap() -> None:
        if libc.renameat2(AT_FDCWD, bytes(a), AT_FDCWD, bytes(b), RENAME_EXCHANGE) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    swaps, deadline = 0, time.monotonic() + max_seconds
    while not stop.is_set() and swaps < max_swaps and time.monotonic() < deadline:
        for _ in range(2):  # each state in turn, for about as long: the loop need not burn a core
            swap()
            swaps += 1
            time.sleep(0.0005)
    return swaps


def _write_at(dir_fd: int, name: str, data: bytes | str) -> None:
    """Write in place through the folder's descriptor, whatever name the folder has at the moment."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=dir_fd)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)


async def test_a_variant_folder_swapped_with_a_symlink_never_leaks_outside_files(rig: Rig) -> None:
    """Owncast's variant 1 folder is swapped with a symlink to a folder outside, again and again,
    while segments are written and uploaded. Outside, every name Owncast uses (and its playlist)
    holds SECRET bytes: a read that follows the symlink at any moment would upload them."""
    feed = rig.feed
    evil = rig.outside / "evil"
    evil.mkdir()
    slots = 60  # about one in six leaked before: missing them all by chance is under 1 in 10,000
    names = [feed.name(feed.number + i) for i in range(slots)]
    for name in names:
        (evil / name).write_bytes(SECRET * 100)
    (evil / "stream.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n" + "".join(
        f"#EXTINF:1.000000,\n{n}\n" for n in ["secret.ts", *names]))
    (evil / "secret.ts").write_bytes(SECRET * 100)
    link = feed.root / "swap"
    link.symlink_to(evil, target_is_directory=True)
    real = os.open(feed.folder(1), os.O_RDONLY | os.O_DIRECTORY)
    stop = threading.Event()
    swapper = asyncio.ensure_future(asyncio.to_thread(
        _swap_loop, feed.folder(1), link, stop, max_swaps=200_000, max_seconds=30))
    try:
        for name in names:  # Owncast's order, each folder written through its own descriptor
            write_in_place(feed.folder(0) / name, feed.ts)
            _write_at(real, name, feed.ts)
            for v in feed.variants:
                feed.add_entry(v, name)
            feed.number += 1
            feed.write_playlist(0)
            _write_at(real, "stream.m3u8", feed.playlist_text(1))
            await asyncio.sleep(0.03)
    finally:
        stop.set()
        swaps = await swapper
        os.close(real)
    assert swaps > 2 * slots and feed.folder(1).is_dir() and not feed.folder(1).is_symlink()
    await good_slots(rig, 2)  # listed in order: every slot before them is decided (uploaded or lost)
    objects = await rig.objects()
    leaked = sorted(k for k, body in objects.items() if SECRET in body)
    assert leaked == [], f"{len(leaked)} objects hold bytes from outside HLS_DIR: {leaked[:5]}"
    await rig.nothing_from_outside()
