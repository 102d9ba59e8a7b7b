"""A second bucket as a pathway, on two real S3 servers (SeaweedFS behind BucketGates, and moto). When the
first bucket's gate closes, the steering manifest puts the second bucket before the VM, its pathway serves
Owncast's bytes from the second bucket, and /health, /metrics and one log line say why; the second bucket's
public URL failing too puts the VM first; once each gate opens, players are steered back."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.fault_proxy import FaultProxy
from tests.support.gates import BucketGates
from tests.support.listing import listing
from tests.support.public_bucket import bucket_block, keys_in, moto_bucket, moto_s3
from tests.support.scrape import Samples, by_label, scraped, total
from tests.support.service_process import ServiceProcess, moto_env, service_env
from tests.support.waiting import until
from tests.support.whole import assert_whole

pytestmark = [pytest.mark.integration, pytest.mark.faults]

START_TIMEOUT = 60.0
SWITCH_TIMEOUT = 30.0  # a target duration of failing uploads, or two failed probes, at most a few seconds
BACK_TIMEOUT = 60.0  # clear for a target duration, and the viewers' hold (none reported here)
BACKUP = "second-live"
SECOND_HOST = "127.0.0.3"


async def text(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as r:
        return r.status, await r.text()


def offers(master: str, pathway: str) -> int:
    """The variants a multivariant playlist offers on `pathway`."""
    return sum(line.startswith("#EXT-X-STREAM-INF:") and f'PATHWAY-ID="{pathway}"' in line
               for line in master.splitlines())


def vm_before_backup(line: str) -> bool:
    """A log line of the steering policy's that put the VM's pathway before the second bucket's (a switch,
    or a new priority with players staying on the first bucket)."""
    m = re.search(r"(?:steering players .*\(priority|pathway priority now) ([a-z, ]+)", line)
    order = m.group(1).split(", ") if m else []
    return "vm" in order and "backup" in order and order.index("vm") < order.index("backup")


async def uris(http: aiohttp.ClientSession, url: str, variant: int, pathway: str = "") -> list[str]:
    """The segment URIs in `pathway`'s playlist of `variant` (the first bucket's: ""); none but on a 200."""
    status, body = await text(http, f"{url}/live/{pathway}{'/' if pathway else ''}{variant}/playlist.m3u8")
    return [e.uri for e in listing(body)] if status == 200 else []


async def offered(http: aiohttp.ClientSession, url: str, *pathways: str) -> bool:
    """The multivariant playlist offers both variants on each of `pathways`."""
    status, body = await text(http, f"{url}/live/master.m3u8")
    return status == 200 and all(offers(body, p) == 2 for p in pathways)


async def test_with_the_first_bucket_closed_players_are_steered_to_the_second(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator, moto_url: str) -> None:
    # Public reads, as a CDN in front of it gives viewers (the service never sends an ACL header).
    s3 = moto_bucket(moto_url, BACKUP)
    # Viewers reach the second bucket through a gate of its own (another host: another provider's CDN).
    async with BucketGates(seaweed) as gates, FaultProxy(moto_url, host=SECOND_HOST) as second, \
            aiohttp.ClientSession() as http:
        public = f"{second.url}/{BACKUP}"
        env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state",
                          S3_ENDPOINT_URL=gates.service_url, R2_PUBLIC_URL=gates.public_url,
                          PATHWAYS="bucket,vm,backup",
                          **{**bucket_block("backup", moto_url, BACKUP, "second-key", "second-secret"),
                             "BACKUP_PUBLIC_URL": public},
                          # A short window and no margin: segments leave it, and each bucket, within seconds.
                          WINDOW_SECONDS="3", CLEANUP_MARGIN="0")
        async with ServiceProcess(env, tmp_path, start_timeout=START_TIMEOUT) as service:
            url = service.url

            def steered(expected: list[str]) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    status, body = await text(http, f"{url}/live/steering.json")
                    return status == 200 and json.loads(body)["PATHWAY-PRIORITY"] == expected
                return check

            async def told(pathway: str, backup: str = "") -> tuple[dict[str, Any], Samples]:
                """/health and /metrics, once both say players are steered to `pathway` (they are read
                apart from the steering manifest: on a busy machine a pathway may lag a moment), and
                /health's status says `backup` of the backup pathway (a slow upload there may have put it
                behind first)."""
                said: list[tuple[dict[str, Any], Samples]] = []

                async def agree() -> bool:
                    async with http.get(f"{url}/health") as r:
                        health = await r.json()
                    samples = await scraped(http, url)
                    first = [p for p, v in by_label(samples, "hls_broadcaster_pathway", "pathway").items() if v == 1]
                    said[:] = [(health, samples)]
                    return health["pathway"] == pathway and first == [pathway] \
                        and backup in health["status"].partition("; the backup pathway: ")[2]

                await until(agree, f"/health and /metrics say players are steered to {pathway}"
                            + (f" and /health says {backup!r} of the backup pathway" if backup else ""),
                            SWITCH_TIMEOUT, every=0.2)
                return said[0]

            async def backup_lists(n: int) -> bool:
                return all([len(await uris(http, url, v, "backup")) >= n for v in (0, 1)])

            await until(lambda: offered(http, url, "backup"),
                        "the multivariant playlist offers both variants on the backup pathway", 60, every=0.2)
            # Healthy: the second bucket before the VM (at a start on a busy machine, uploads may lag a moment).
            await until(steered(["bucket", "backup", "vm"]), "the first bucket first, then the second", 30,
                        every=0.2)
            await until(lambda: backup_lists(2), "the backup pathway lists segments", 30, every=0.2)

            async def at_second_bucket() -> bool:
                """The backup pathway lists its newest segments at the second bucket's URL. A segment it
                lacked while it was put behind the VM's (its uploads behind on a loaded start) stays listed
                where it was listed, at the first pathway before it that had it: the first bucket's URL, or
                the VM's URI (a pathway never goes back); no other URI is listed."""
                listed = await uris(http, url, 0, "backup")
                elsewhere = (f"{gates.public_url}/live/0/", "/live/vm/0/")
                assert all(uri.startswith((f"{public}/live/0/", *elsewhere)) for uri in listed), listed
                moved = any(uri.startswith(elsewhere) for uri in listed)
                assert not moved or any(vm_before_backup(line) for line in service.lines), listed
                return len(listed) >= 2 and all(u.startswith(public) for u in listed[-2:])

            await until(at_second_bucket, "the backup pathway lists its newest segments at the second bucket", 30,
                        every=0.2)
            # Keys in the second bucket.
            early = [uri.removeprefix(f"{public}/") for uri in await uris(http, url, 0, "backup")
                     if uri.startswith(public)]

            await gates.close(service=True, viewers=True)

            await until(steered(["backup", "vm", "bucket"]),
                        "the steering manifest puts the second bucket first, before the VM", SWITCH_TIMEOUT,
                        every=0.2)
            switched = {v: await uris(http, url, v, "backup") for v in (0, 1)}

            async def grown() -> bool:
                return all([len(set(await uris(http, url, v, "backup")) - set(switched[v])) >= 3
                            for v in (0, 1)])

            # The stream goes on there while the first bucket takes nothing.
            await until(grown, "the backup pathway lists 3 new segments per variant", 30, every=0.2)
            listed = []
            for v in (0, 1):
                # A segment the second bucket lacked when listed (its uploads behind on a loaded machine:
                # steered away from, it lists it at the VM's URI, relative) is fetched there: Owncast's
                # bytes either way.
                listed += [(uri if "://" in uri else f"{url}{uri}", owncast.variant_dir(v) / uri.rpartition("/")[2])
                           for uri in await uris(http, url, v, "backup")]
            assert await assert_whole(http, owncast.ledger, listed) >= 6  # fetched from moto, Owncast's bytes
            # A player that stays on the first bucket's pathway (video.js leaves one only on an error) plays
            # on: its playlists list what the first bucket lacks at the URI of the first pathway before it that
            # has the segment (the second bucket's if that upload landed first, else the VM's).
            at_vm: list[tuple[str, Path]] = []

            async def listed_at_the_vm() -> bool:
                at_vm.clear()
                for v in (0, 1):
                    there = [uri for uri in await uris(http, url, v) if uri.startswith(f"/live/vm/{v}/")]
                    if len(there) < 3:
                        return False
                    at_vm.extend((f"{url}{uri}", owncast.variant_dir(v) / uri.rpartition("/")[2])
                                 for uri in there)
                return True

            await until(listed_at_the_vm, "the first bucket's pathway lists a window of segments at the VM's URIs",
                        30, every=0.2)
            assert await assert_whole(http, owncast.ledger, at_vm) >= 6
            health, samples = await told("backup")
            # Down both ways: its uploads refused (and, while a fresh segment is there to probe, its
            # public URL failing too: policy.DOWN), or waiting (policy.UPLOADS) once none is.
            assert "players steered to the backup pathway" in health["status"] \
                and "the bucket pathway: uploads to it " in health["status"], health
            # The second bucket's uploads in the buckets' families, by its pathway.
            landed = total(samples, "hls_broadcaster_segments_uploaded_total", pathway="backup")
            assert landed >= 6, landed
            assert by_label(samples, "hls_broadcaster_storage_up", "pathway")["backup"] == 1.0
            assert any("steering players to the backup pathway" in line for line in service.lines)

            # The second bucket fails for viewers too (its CDN): only the service's probe can tell; two
            # failures in a row and the VM comes first.
            await second.down_503()
            await until(steered(["vm", "bucket", "backup"]),
                        "the VM first once the second bucket's public URL fails too", SWITCH_TIMEOUT,
                        every=0.2)
            # Named whatever else holds there (uploads to it slow on a busy machine put it behind too).
            await told("vm", backup="its public URL does not answer the service (HTTP 503)")

            await second.pass_through()
            await until(steered(["backup", "vm", "bucket"]),
                        "the second bucket first again once its public URL answers", SWITCH_TIMEOUT,
                        every=0.2)
            await gates.open()

            await until(steered(["bucket", "backup", "vm"]), "players are steered back to the first bucket",
                        BACK_TIMEOUT, every=0.2)

            # The first segments left the window long ago: deleted from the second bucket as from the first.
            await until(lambda: not set(early) & keys_in(s3, BACKUP),
                        "the second bucket's old segments deleted", 30, every=0.2)
            assert service.problems() == []


def buckets_env(moto_url: str, tmp_path: Path, buckets: dict[str, str], **over: str) -> dict[str, str]:
    """The service on moto (moto_env) with PATHWAYS the first bucket then `buckets` (pathway -> bucket
    name, each made readable by anyone on moto), each a block of settings named after its pathway."""
    extra: dict[str, str] = {}
    for pathway, name in buckets.items():
        moto_bucket(moto_url, name)
        extra.update(bucket_block(pathway, moto_url, name))
    return moto_env(moto_url, tmp_path, PATHWAYS=",".join(("bucket", *buckets)), **extra, **over)


async def test_deletions_due_in_the_second_bucket_outlive_a_restart(
        tmp_path: Path, owncast: OwncastEmulator, moto_url: str) -> None:
    """Segments that left the window shortly before a stop are still deleted from the second bucket by the
    next run, as from the first: the state keeps them ("backup_cleaner")."""
    s3 = moto_s3(moto_url)
    second = "due-after-restart"
    env = buckets_env(moto_url, tmp_path, {"backup": second}, WINDOW_SECONDS="2", REWIND_SECONDS="0",
                      CLEANUP_MARGIN="6")

    async def window(http: aiohttp.ClientSession, url: str) -> set[str]:
        """The keys variant 0's backup playlist lists now."""
        return {uri.removeprefix(f"{moto_url}/{second}/") for uri in await uris(http, url, 0, "backup")}

    async with aiohttp.ClientSession() as http:
        listed: set[str] = set()
        due: set[str] = set()
        async with ServiceProcess(env, tmp_path, start_timeout=START_TIMEOUT) as service:
            async def some_wait_for_deletion() -> bool:
                now = await window(http, service.url)
                listed.update(now)
                due.clear()
                due.update((listed - now) & keys_in(s3, second))  # left the window, not deleted yet
                return len(due) >= 2

            await until(some_wait_for_deletion,
                        "segments that left the backup window and wait for their deletion", 60, every=0.2)
            assert await service.stop() == 0
        due &= keys_in(s3, second)  # still there at the stop
        assert due
        async with ServiceProcess(env, tmp_path, start_timeout=START_TIMEOUT) as again:
            # Due within CLEANUP_MARGIN and the spec's time after they left the window: deleted by this run.
            await until(lambda: not due & keys_in(s3, second),
                        "the keys due for deletion at the stop deleted by the next run", 60, every=0.2)
            assert again.problems() == []


SHORT_WINDOW = 6  # seconds listed: the emulator's 1 s segments, a few per playlist


async def test_more_buckets_are_settings_blocks_and_without_the_vm_it_serves_no_pathway(
        tmp_path: Path, owncast: OwncastEmulator, moto_url: str) -> None:
    """Adding a bucket is settings, not code: PATHWAYS=bucket,backup,b2 (three buckets on moto), no VM: every
    variant on the three pathways and none on the VM's (404), the steering manifest names them, each pathway
    lists its own bucket's URLs with Owncast's bytes, and counts its uploads under its own `pathway`."""
    buckets = {"backup": "second-of-three", "b2": "third-of-three"}
    # A short window and no rewind: an entry a pathway listed at another bucket's URL while its own failed
    # (moto starved on a loaded machine: "bucket reachable again after 18s down") leaves its playlists in
    # seconds, not with the default rewind's five minutes.
    env = buckets_env(moto_url, tmp_path, buckets, WINDOW_SECONDS=str(SHORT_WINDOW), REWIND_SECONDS="0")
    assert env["HLS_DIR"] == str(owncast.variant_dir(0).parent)
    async with ServiceProcess(env, tmp_path, start_timeout=START_TIMEOUT) as service, \
            aiohttp.ClientSession() as http:
        url = service.url

        await until(lambda: offered(http, url, "bucket", "backup", "b2"),
                    "the multivariant playlist offers both variants on the three pathways", 60, every=0.2)
        status, body = await text(http, f"{url}/live/master.m3u8")
        assert offers(body, "vm") == 0 and "/vm/" not in body, body
        status, body = await text(http, f"{url}/live/steering.json")
        priority = json.loads(body)["PATHWAY-PRIORITY"]
        assert status == 200 and priority[0] == "bucket", body
        assert sorted(priority) == ["b2", "backup", "bucket"], body

        async def lists() -> list[tuple[str, Path]] | None:
            """Each other pathway's playlists, once each lists two segments, all at its own bucket. The master
            names a pathway before its first upload landed; and while players are steered away from the first
            bucket (a start's backlog on a loaded machine), a pathway lists what it lacks at another that has
            it, until those segments leave the window (publish/pathways.py)."""
            listed = []
            for pathway, name in buckets.items():
                for v in (0, 1):
                    status, body = await text(http, f"{url}/live/{pathway}/{v}/playlist.m3u8")
                    there = [e.uri for e in listing(body)] if status == 200 else []
                    seen[f"{pathway}/{v}"] = (status, [u.rpartition("/")[0].removeprefix(moto_url) for u in there])
                    if len(there) < 2 or not all(uri.startswith(f"{moto_url}/{name}/live/{v}/") for uri in there):
                        return None
                    listed += [(uri, owncast.variant_dir(v) / uri.rpartition("/")[2]) for uri in there]
            return listed

        seen: dict[str, tuple[int, list[str]]] = {}  # for a failure's message: where each listed
        listed = await until(lists, "the other pathways list two segments of each variant, at their own bucket",
                             SHORT_WINDOW + 60, every=0.2, detail=lambda: (seen, service.lines[-5:]))
        # From the second and third buckets, Owncast's bytes.
        assert await assert_whole(http, owncast.ledger, listed) >= 8
        for path in ("/live/vm/0/playlist.m3u8", "/hls/vm/0/stream.m3u8",
                     "/live/vm/0/" + listed[0][0].rpartition("/")[2]):  # variant 0's, in the second bucket
            assert (await text(http, url + path))[0] == 404, path
        uploaded = by_label(await scraped(http, url), "hls_broadcaster_segments_uploaded_total", "pathway")
        # Each bucket's uploads go on apart: the third's landed what its pathway lists (four at least).
        assert set(uploaded) == {"bucket", "backup", "b2"} and uploaded["b2"] >= 4, uploaded
        assert service.problems() == []
