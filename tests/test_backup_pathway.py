"""A second bucket as a pathway (steering/backup.py), at its seams: its uploads (own retries, own record
of what landed, never waiting on the first bucket), its playlists (a segment listed only once it landed
THERE, the same numbers as the other pathways), the policy's order (a healthy second bucket before the
VM) and the multivariant playlist that waits for the pathway players start on."""

from __future__ import annotations

import asyncio
import functools
import logging

import pytest

from broadcaster.bucket.store import StoreError
from broadcaster.bucket.uploader import Backoff
from broadcaster.playlist import hls
from broadcaster.playlist.master import Pathway
from broadcaster.playlist.rendered import Rendered
from broadcaster.source.owncast import SourceVariant
from broadcaster.steering.backup import AheadPlaylists, BackupPlaylists, BackupProbe, BackupUploads, Teed
from broadcaster.steering.masters import SteeredMasters
from broadcaster.steering.policy import BucketSignals, SteeringPolicy
from tests.support.fakes import Clock
from tests.support.waiting import until

KEY = functools.partial(hls.object_key, "live")
PUBLIC = "https://backup.example.net"
WAIT = 5.0  # seconds any one condition may take


class GatedStore:
    """A second bucket that fails every put while closed (a StoreError, as S3Store raises)."""

    def __init__(self) -> None:
        self.closed = False
        self.objects: dict[str, bytes] = {}
        self.opened = asyncio.Event()

    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
        await asyncio.sleep(0)
        if self.closed:
            raise StoreError("SlowDown", "closed")
        assert cache_control == hls.SEGMENT_CACHE_CONTROL
        self.objects[key] = body

    async def exists(self, key: str) -> bool:
        await asyncio.sleep(0)
        if self.closed:
            raise StoreError("SlowDown", "closed")
        return key in self.objects


class Kept(dict[str, bytes]):
    def keep(self, key: str, body: bytes) -> object | None:
        self[key] = body
        return body

    def read_kept(self, key: str) -> bytes | None:
        return self.get(key)


def playlist(first: int, last: int) -> Rendered:
    body = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:%d\n" % first
    body += "".join(f"#EXTINF:1.0,\nhttps://r2.example.com/live/0/seg{n}.ts\n" for n in range(first, last + 1))
    return Rendered(body.encode(), last_sequence=last)


def rig(store: GatedStore, clock: Clock | None = None) -> tuple[Kept, BackupUploads, BackupPlaylists, Teed]:
    kept = Kept()
    uploads = BackupUploads(store, kept, concurrency=4, attempt_timeout=1.0,
                            backoff=Backoff(base=0.01, cap=0.05), **({"clock": clock} if clock else {}))
    playlists = BackupPlaylists(uploads, KEY, PUBLIC, lambda: 1)
    teed = Teed(kept, uploads, asyncio.get_running_loop())
    return kept, uploads, playlists, teed


async def test_a_segment_is_listed_on_the_backup_only_once_it_landed_there() -> None:
    store = GatedStore()
    kept, uploads, playlists, teed = rig(store)
    ahead = AheadPlaylists(playlists)
    try:
        for n in range(3):
            teed.keep(KEY(0, f"seg{n}.ts"), b"bytes %d" % n)
        await until(lambda: uploads.landed == 3, "three uploads landed", WAIT, every=0.01)
        ahead.show({0: playlist(0, 2)})
        shown = playlists.media_playlist(0)
        assert shown is not None and shown.last_sequence == 2
        assert f"{PUBLIC}/live/0/seg2.ts".encode() in shown.body and b"r2.example.com" not in shown.body
        assert store.objects[KEY(0, "seg1.ts")] == b"bytes 1"  # the VM's copy, under the same key

        store.closed = True  # the second bucket fails: the VM's pathway runs ahead, the backup's stays
        teed.keep(KEY(0, "seg3.ts"), b"bytes 3")
        await asyncio.sleep(0)
        ahead.show({0: playlist(1, 3)})
        vm = ahead.media_playlist(0)
        assert vm is not None and vm.last_sequence == 3
        await until(lambda: uploads.failed_attempts >= 2, "two failed attempts", WAIT, every=0.01)
        assert playlists.media_playlist(0) is shown and list(uploads.pending) == [KEY(0, "seg3.ts")]
        assert uploads.ok is False and uploads.last_error == "SlowDown" and uploads.behind() > 0

        store.closed = False  # back: what waited lands, and the newest version is shown
        await until(lambda: KEY(0, "seg3.ts") in store.objects, "seg3 in the bucket", WAIT, every=0.01)
        await until(lambda: (playlists.media_playlist(0) or shown).last_sequence == 3,
                    "the playlist listing seg3", WAIT, every=0.01)
        assert uploads.pending == {} and uploads.behind() == 0.0
    finally:
        await uploads.close()


async def test_the_second_buckets_signals_are_read_as_the_first_buckets() -> None:
    """A slow upload there that succeeds is no outage before SLOW_TARGETS target durations (a busy
    machine's moto took over 2 s with 1 s segments, and the policy put a healthy bucket behind); one it
    refused is failing at once, and says why (with a failed probe: down)."""
    clock = Clock()
    store = GatedStore()
    kept, uploads, playlists, teed = rig(store, clock)
    signals = uploads.signals()
    # A healthy second bucket comes before the VM, a failing one after it.
    first_behind = [0.0]
    policy = SteeringPolicy(("bucket", "vm", "backup"), {"bucket": BucketSignals(behind=lambda: first_behind[0]),
                                                         "backup": signals}, lambda: 1, interval=1.0, clock=clock)
    try:
        teed.keep(KEY(0, "seg0.ts"), b"bytes 0")
        await until(lambda: uploads.landed == 1, "an upload landed", WAIT, every=0.01)
        assert signals.failing() is False and signals.refused() is None
        policy.evaluate()
        assert policy.priority == ("bucket", "backup", "vm")
        uploads.pending["live/0/slow.ts"] = clock.t  # an upload on its way, its attempts not failing
        clock.t += 2.5
        policy.evaluate()
        assert policy.priority == ("bucket", "backup", "vm")
        clock.t += 1  # 3.5 s: slower than the stream by SLOW_TARGETS target durations
        policy.evaluate()
        assert policy.priority == ("bucket", "vm", "backup")
        del uploads.pending["live/0/slow.ts"]
        store.closed = True
        teed.keep(KEY(0, "seg1.ts"), b"bytes 1")
        await until(lambda: uploads.failed_attempts >= 1, "a refused attempt", WAIT, every=0.01)
        assert signals.failing() is True and signals.refused() == "SlowDown"
        policy.probed("backup", False, "HTTP 503")
        first_behind[0] = 10.0  # the first bucket fails too: /health tells why of both
        policy.evaluate()
        assert policy.priority == ("vm", "bucket", "backup")
        assert (policy.health_reason() or "").endswith(
            "; the backup pathway: uploads to it are refused (SlowDown) and its public URL does not answer "
            "the service (HTTP 503)"), policy.health_reason()
    finally:
        await uploads.close()


async def test_a_held_blocking_request_on_the_backup_gets_its_segment_once_it_lands() -> None:
    store = GatedStore()
    kept, uploads, playlists, teed = rig(store)
    ahead = AheadPlaylists(playlists)
    try:
        teed.keep(KEY(0, "seg0.ts"), b"zero")
        await until(lambda: uploads.landed == 1, "one upload landed", WAIT, every=0.01)
        ahead.show({0: playlist(0, 0)})
        store.closed = True
        teed.keep(KEY(0, "seg1.ts"), b"one")
        await asyncio.sleep(0)
        ahead.show({0: playlist(0, 1)})
        held = asyncio.ensure_future(playlists.wait_for_sequence(0, 1, timeout=5))
        await until(lambda: playlists.held_requests == 1, "a request held", WAIT, every=0.01)
        assert not held.done()
        store.closed = False
        rendered = await held
        assert rendered is not None and rendered.last_sequence == 1 and b"/live/0/seg1.ts" in rendered.body
    finally:
        await uploads.close()


async def test_one_failing_bucket_never_stalls_the_other(caplog: pytest.LogCaptureFixture) -> None:
    """The second bucket's uploads are its own: a put that hangs there holds nothing of the first's
    (here: the keeper returns at once, and another key lands while one hangs)."""
    class Hanging(GatedStore):
        async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
            if key.endswith("seg0.ts"):
                await asyncio.sleep(3600)
            await super().put(key, body, content_type=content_type, cache_control=cache_control)

    store = Hanging()
    kept, uploads, playlists, teed = rig(store)
    try:
        with caplog.at_level(logging.WARNING):
            assert teed.keep(KEY(0, "seg0.ts"), b"zero") is not None  # the first bucket's uploader goes on
            teed.keep(KEY(0, "seg1.ts"), b"one")
            await until(lambda: KEY(0, "seg1.ts") in store.objects, "seg1 in the bucket", WAIT, every=0.01)
            assert list(uploads.pending) == [KEY(0, "seg0.ts")]
            # its attempt timed out (1 s), retried
            await until(lambda: uploads.failed_attempts >= 1, "a failed attempt", WAIT, every=0.01)
        assert "uploads to the second bucket (backup pathway) fail (Timeout)" in caplog.text
    finally:
        await uploads.close()


async def test_a_copy_gone_before_it_landed_is_given_up_and_no_longer_holds_the_playlist() -> None:
    store = GatedStore()
    store.closed = True
    kept, uploads, playlists, teed = rig(store)
    ahead = AheadPlaylists(playlists)
    try:
        teed.keep(KEY(0, "seg0.ts"), b"zero")
        await asyncio.sleep(0)
        ahead.show({0: playlist(0, 0)})
        await until(lambda: uploads.failed_attempts >= 1, "a failed attempt", WAIT, every=0.01)
        assert playlists.media_playlist(0) is None  # nothing landed: nothing to list there
        del kept[KEY(0, "seg0.ts")]  # VM_COPIES_MB dropped it
        await until(lambda: uploads.given_up == 1, "an upload given up", WAIT, every=0.01)
        shown = playlists.media_playlist(0)
        assert shown is not None and shown.last_sequence == 0 and uploads.pending == {}
        # Listed as a gap there (the second bucket has nothing at its URI), as the first bucket lists an
        # upload that failed for good; the entry keeps its number and duration, and the probe skips it.
        assert shown.body.decode().endswith(f"{hls.GAP_TAG}\n#EXTINF:1.0,\n{PUBLIC}/{KEY(0, 'seg0.ts')}\n")
        assert playlists.newest is None
        store.closed = False
        teed.keep(KEY(0, "seg1.ts"), b"one")
        await asyncio.sleep(0)
        ahead.show({0: playlist(0, 1)})
        await until(lambda: store.objects.get(KEY(0, "seg1.ts")) == b"one", "seg1's bytes in the bucket",
                    WAIT, every=0.01)
        await until(lambda: (shown := playlists.media_playlist(0)) is not None and shown.last_sequence == 1,
                    "the playlist listing seg1", WAIT, every=0.01)
        body = playlists.media_playlist(0).body.decode()  # type: ignore[union-attr]
        assert body.count(hls.GAP_TAG) == 1 and body.endswith(f"#EXTINF:1.0,\n{PUBLIC}/{KEY(0, 'seg1.ts')}\n")
        assert playlists.newest is not None and playlists.newest[0] == f"{PUBLIC}/{KEY(0, 'seg1.ts')}"
    finally:
        await uploads.close()


async def test_a_restored_window_is_listed_there_once_looked_up_and_what_it_lacks_as_gaps() -> None:
    """After a restart the restored playlists list segments this run never uploaded: each is looked up in
    the second bucket (retried while it fails) before a version lists it, and one it lacks (a former run
    gave it up, or stopped first) is a gap there, not a 404 for players."""
    store = GatedStore()
    store.objects[KEY(0, "seg0.ts")] = b"zero"  # landed before the restart; seg1 never did
    store.closed = True
    kept, uploads, playlists, teed = rig(store)
    ahead = AheadPlaylists(playlists)
    try:
        ahead.replace({0: playlist(0, 1)})  # the service restores its state before the store runs
        await asyncio.sleep(0.05)
        assert uploads.failed_attempts == 0 and playlists.media_playlist(0) is None
        uploads.start()
        await until(lambda: uploads.failed_attempts >= 1, "a failed attempt", WAIT, every=0.01)
        assert playlists.media_playlist(0) is None and set(uploads.pending) == {KEY(0, "seg0.ts"), KEY(0, "seg1.ts")}
        store.closed = False
        await until(lambda: playlists.media_playlist(0) is not None, "a playlist shown", WAIT, every=0.01)
        body = playlists.media_playlist(0).body.decode()  # type: ignore[union-attr]
        assert body.endswith(f"#EXTINF:1.0,\n{PUBLIC}/{KEY(0, 'seg0.ts')}\n{hls.GAP_TAG}\n"
                             f"#EXTINF:1.0,\n{PUBLIC}/{KEY(0, 'seg1.ts')}\n"), body
        assert uploads.pending == {} and uploads.given_up == 1 and store.objects.keys() == {KEY(0, "seg0.ts")}
        assert playlists.newest is not None and playlists.newest[0] == f"{PUBLIC}/{KEY(0, 'seg0.ts')}"
    finally:
        await uploads.close()


def test_with_the_vm_named_before_it_a_healthy_second_bucket_still_comes_first() -> None:
    """PATHWAYS=bucket,vm,backup: when the first bucket fails, the second (healthy, caught up) comes
    before the VM, which then sends no segment bytes; when it fails too, the VM; back in that order."""
    clock = Clock()
    behind = {"bucket": 0.0, "backup": 0.0}
    policy = SteeringPolicy(("bucket", "vm", "backup"),
                            {p: BucketSignals(behind=functools.partial(behind.__getitem__, p))
                             for p in ("bucket", "backup")}, lambda: 2, interval=1.0, clock=clock)

    def run(seconds: float) -> None:
        end = clock.t + seconds
        while clock.t < end:
            clock.t += 0.5
            policy.evaluate()

    run(2)
    assert policy.priority == ("bucket", "backup", "vm")
    behind["bucket"] = 10
    run(0.5)
    assert policy.priority == ("backup", "vm", "bucket") and policy.reason == "uploads"
    reason = policy.health_reason()
    assert reason is not None and reason.startswith("players steered to the backup pathway")
    behind["backup"] = 10
    run(0.5)
    assert policy.priority == ("vm", "bucket", "backup")
    reason = policy.health_reason()
    assert reason is not None and "the backup pathway: uploads to it have waited 10s" in reason
    assert policy.switches == {("backup", "uploads"): 1, ("vm", "uploads"): 1}
    behind["backup"] = 0.0  # the second bucket caught up: back before the VM at the next evaluation
    run(0.5)
    assert policy.priority == ("backup", "vm", "bucket")


class Announced:
    def __init__(self) -> None:
        self.announced = [SourceVariant(0, 1_000_000)]
        self.lists: dict[int, Rendered] = {}

    def media_playlist(self, variant: int) -> Rendered | None:
        return self.lists.get(variant)


def test_players_who_start_on_the_backup_find_its_playlists_first() -> None:
    ahead, landed, backup = Announced(), Announced(), Announced()
    first = ["backup"]
    masters = SteeredMasters(ahead, [Pathway("bucket"), Pathway("backup", "backup"), Pathway("vm", "vm")],
                             lambda: first[0], landed, {"backup": backup})
    ahead.lists[0] = landed.lists[0] = playlist(0, 0)
    assert masters.master_playlist() is None  # the backup lists nothing yet: not offered as the start
    backup.lists[0] = playlist(0, 0)
    rendered = masters.master_playlist()
    assert rendered is not None
    text = rendered.body.decode()
    assert 'PATHWAY-ID="backup"' in text and "backup/0/playlist.m3u8" in text
    assert '#EXT-X-CONTENT-STEERING:SERVER-URI="steering.json",PATHWAY-ID="backup"' in text


async def test_a_copy_kept_again_while_its_upload_runs_is_uploaded_again() -> None:
    """Owncast rewrote the file: the second bucket ends with the bytes kept last, as the VM's copy."""
    class Slow(GatedStore):
        async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
            if body == b"first":
                self.opened.set()  # its put has begun with the first bytes
                await asyncio.sleep(0.2)
            await super().put(key, body, content_type=content_type, cache_control=cache_control)

    store = Slow()
    kept, uploads, playlists, teed = rig(store)
    try:
        teed.keep(KEY(0, "seg0.ts"), b"first")
        await asyncio.wait_for(store.opened.wait(), 5)
        teed.keep(KEY(0, "seg0.ts"), b"second")
        await until(lambda: uploads.landed == 2, "two uploads landed", WAIT, every=0.01)
        assert store.objects[KEY(0, "seg0.ts")] == b"second" and uploads.pending == {}
    finally:
        await uploads.close()


async def test_steered_away_from_the_backup_its_held_requests_are_answered_at_once() -> None:
    """As the first bucket's (probe.py's on_away): a player held there for uploads that do not land gets
    the playlist as it is, and reads the new priority at once."""
    class Policy:
        first = "backup"

        def ttl(self) -> int:
            return 1

        def target_duration(self) -> int | None:
            return 1

        def probed(self, pathway: str, ok: bool, detail: str = "") -> None:
            pass

        def probe_wanted(self, pathway: str) -> bool:
            return False

    store = GatedStore()
    kept, uploads, playlists, teed = rig(store)
    ahead = AheadPlaylists(playlists)
    policy = Policy()
    probe = BackupProbe(policy, playlists)  # type: ignore[arg-type]
    await probe.start()
    try:
        teed.keep(KEY(0, "seg0.ts"), b"zero")
        await until(lambda: uploads.landed == 1, "one upload landed", WAIT, every=0.01)
        ahead.show({0: playlist(0, 0)})
        held = asyncio.ensure_future(playlists.wait_for_sequence(0, 1, timeout=30))
        await until(lambda: playlists.held_requests == 1, "a request held", WAIT, every=0.01)
        policy.first = "vm"
        async with asyncio.timeout(5):
            rendered = await held
        assert rendered is not None and rendered.last_sequence == 0
    finally:
        await probe.stop()
        await uploads.close()
