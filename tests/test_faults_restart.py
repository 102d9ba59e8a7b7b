"""The service restarts under a live stream (deploy, crash, kill -9): the playlists continue where
they were. Real service process, SeaweedFS, and the Owncast emulator's ffmpeg."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import signal
from collections.abc import Collection
from pathlib import Path

import aiohttp
import pytest
import re
from collections import Counter

from broadcaster.demo.recordings import Recordings
from broadcaster.demo.emulator import LateTails, Ledger, OwncastEmulator, resolve_settings
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.playlist import hls
from tests.support.service_process import ServiceProcess, service_env
from tests.support.observe import Observed, health as read_health
from tests.support.owncast_writer import owncast_number
from tests.support.disks import TmpfsDisk, small_tmpfs
from tests.support.waiting import until
from tests.support.whole import assert_whole

pytestmark = [pytest.mark.faults, pytest.mark.integration]
_UPLOADED = re.compile(r"uploaded (\S+) \(")


async def listed_whole_and_uploaded(seen: Observed, owncast: OwncastEmulator, seaweed: SeaweedS3,
                                    runs: list[ServiceProcess], skipped: Collection[int] = ()) -> list[str]:
    """Owncast's every segment but `skipped` listed in order, each Owncast's finished file in the bucket;
    the keys uploaded more than once (the debug log's PutObject lines)."""
    for v in (0, 1):
        seen.assert_in_owncast_order(v, skipped=skipped)
    async with aiohttp.ClientSession() as http:  # the services are gone: each looked for in the bucket
        await assert_whole(http, owncast.ledger, seen.listed_files(owncast, bucket=seaweed.public_url))
    counts = Counter(m.group(1) for s in runs for line in s.lines if (m := _UPLOADED.search(line)))
    # The bucket key of each segment listed (R2_KEY_PREFIX "live"), from its variant and name, whichever
    # pathway's URL it was listed at (the VM's while players are steered away from the bucket).
    listed = {hls.object_key("live", v, uri.rsplit("/", 1)[1])
              for v in (0, 1) for uri, _ in seen.ours[v].values()}
    assert listed <= set(counts)
    return [k for k, n in counts.items() if n > 1]


async def test_playlists_continue_across_a_clean_restart(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator) -> None:
    env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state", WINDOW_SECONDS="6",
                      LOG_LEVEL="debug")
    seen = Observed()  # one checker across both runs: the restart must be invisible to it
    async with aiohttp.ClientSession() as http:
        async with ServiceProcess(env, tmp_path) as first:
            await seen.at(http, first.url, owncast).listed_in_each(4)
            assert await first.stop() == 0
            assert any("stopping" in line for line in first.lines)
            assert first.problems() == []
        await _owncast_writes(owncast, 2)  # while the service is down
        async with ServiceProcess(env, tmp_path) as second:
            assert any("continuing from saved state" in line for line in second.lines)
            look = seen.at(http, second.url, owncast)
            await look.listed_more(5)
            await look.ended()
            assert await second.stop() == 0
        assert second.problems() == []
    # Owncast's every segment, those written while the service was down too; nothing uploaded twice.
    assert await listed_whole_and_uploaded(seen, owncast, seaweed, [first, second]) == []


_GAP = re.compile(r"segments (\d+)\.\.(\d+) of run \d+ were never seen")


async def test_kill_9_at_random_points_with_healthy_saves_loses_nothing(tmp_path: Path, recordings: Recordings, seaweed: SeaweedS3) -> None:
    """kill -9 at random points of a stream, three times, each restart at once on the same STATE_DIR: every
    segment Owncast listed is listed once, in order, under consecutive numbers, no discontinuity but where
    Owncast itself dropped one while the service was down (and it says so), one checker seeing every version
    of all four runs; every segment listed is, in the bucket, Owncast's finished file (its last bytes written
    after its playlist names it: LateTails)."""
    rng = random.Random(int(os.environ.get("KILL_SEED", "3201")))
    owncast = OwncastEmulator(tmp_path / "hls", resolve_settings(list_size=30),
                              ledger=Ledger(), recordings=recordings)
    owncast.late_tails = LateTails()
    async with owncast:
        env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state", WINDOW_SECONDS="6",
                          LOG_LEVEL="debug")
        seen = Observed()
        runs: list[ServiceProcess] = []
        # Owncast's playlists, read all along (also while the service is down or starting): every segment
        # Owncast listed is one the service must list.
        watching = asyncio.create_task(_note_owncast(owncast, seen))
        async with aiohttp.ClientSession() as http:
            for kill in range(4):
                # Four starts on a shared machine: one took over 20 s under a load average of 20.
                async with ServiceProcess(env, tmp_path, start_timeout=60) as service:
                    runs.append(service)
                    if kill:
                        assert any("continuing from saved state" in line for line in service.lines)
                        assert not any("not saved at a clean stop" in line for line in service.lines)
                    look = seen.at(http, service.url, owncast)
                    await look.listed_more(rng.randint(1, 4))
                    if kill == 3:
                        await look.ended()
                        assert await service.stop() == 0
                        break
                    # A random moment within a segment: before, during or after the save of a version.
                    await asyncio.sleep(rng.uniform(0.0, 1.0))
                    assert await service.stop(signal.SIGKILL) == -signal.SIGKILL
                    assert service.problems() == []
                await _owncast_writes(owncast, rng.randint(0, 2))  # while the service is down
        watching.cancel()
        assert runs[-1].problems() == []
        gaps = {n for r in runs for line in r.lines if (m := _GAP.search(line))
                for n in range(int(m.group(1)), int(m.group(2)) + 1)}
        # Owncast's every segment but the numbers the service said it never saw. kill -9 may land between an
        # upload and the save that records it: only those go again.
        assert len(await listed_whole_and_uploaded(seen, owncast, seaweed, runs, skipped=gaps)) <= 3 * 2 * 8
        # A discontinuity only right after a gap Owncast made; without one, the discontinuity sequence
        # stays 0 in every version.
        assert all(owncast_number(name) - 1 in gaps for name in seen.after_discontinuity), (
            seen.after_discontinuity, gaps)
        assert gaps or seen.sequences == {0}


async def _note_owncast(owncast: OwncastEmulator, seen: Observed) -> None:
    while True:
        seen.note_owncast(owncast)
        await asyncio.sleep(0.1)


async def _owncast_writes(owncast: OwncastEmulator, count: int) -> None:
    """Owncast writes `count` new segments (counted by its numbering: its playlist holds list_size)."""
    def newest() -> int:
        names = owncast.listed_segments(0)
        return owncast_number(names[-1]) if names else -1

    first = newest()
    await until(lambda: newest() >= first + count, "Owncast writing new segments", 30, every=0.05)


@pytest.mark.parametrize("content", [b"{not json", b'{"format": "something-else"}', b'{"format": "hls-broadcaster/state", "version": 1, "variants": 7}'],
                         ids=["corrupt", "foreign", "inconsistent"])
async def test_a_bad_state_file_is_set_aside_not_a_crash_loop(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator, content: bytes) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_bytes(content)
    env = service_env(owncast.variant_dir(0).parent, seaweed, state)
    seen = Observed()
    async with aiohttp.ClientSession() as http, ServiceProcess(env, tmp_path) as service:
        await seen.at(http, service.url, owncast).listed_in_each(2)
        errors = [line for line in service.lines if " ERROR " in line]
        assert len(errors) == 1 and "state.json" in errors[0] and "moved it to" in errors[0]
        assert "Traceback" not in "\n".join(service.lines)
        aside = [p.name for p in state.iterdir() if p.name.startswith("state.json.")]
        assert len(aside) == 1 and (state / aside[0]).read_bytes() == content
        # Numbering restarts from the clock, far above anything a lost state could have used.
        assert min(seen.ours[0]) > 1_700_000_000
        assert await service.stop() == 0
    saved = json.loads((state / "state.json").read_text())
    assert saved["format"] == "hls-broadcaster/state"


@pytest.mark.parametrize("out_of", ["space", "inodes"])
async def test_a_full_state_dir_then_a_restart_never_serves_a_number_twice(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator, out_of: str) -> None:
    """STATE_DIR on a small real filesystem fills up under a live stream; a clean stop, and a restart on the
    still full disk: every version served, before and after, goes through one checker, and the stream goes
    on until the disk has room again (out of inodes, a first save of a new state.json does not fit)."""
    with small_tmpfs(tmp_path / "state", inodes=64 if out_of == "inodes" else None) as state:
        disk = TmpfsDisk(state, inodes=out_of == "inodes")
        env = service_env(owncast.variant_dir(0).parent, seaweed, state, WINDOW_SECONDS="6")
        seen = Observed()
        async with aiohttp.ClientSession() as http:
            async with ServiceProcess(env, tmp_path / "run") as first:
                look = seen.at(http, first.url, owncast)
                await look.listed_in_each(4)
                disk.fail(errno.ENOSPC)
                if out_of == "space":
                    # A journal line may still fit in the last block its file holds: saves fail once
                    # none does. On a loaded machine /health may first be 503 for another reason
                    # ("uploads slower than real time"): this one is waited for.
                    full = "cannot save state (No space left on device)"

                    async def refused() -> str | None:
                        await look.poll()
                        code, health = await read_health(http, first.url)
                        return health["status"] if code == 503 and full in health["status"] else None

                    await until(refused, f"/health answering 503 with {full!r}", 30, every=0.1)
                await look.listed_more(4)  # the stream goes on
                async with http.get(f"{first.url}/metrics") as r:
                    failing = "hls_broadcaster_state_save_failing 1.0" in await r.text()
                    assert failing is (out_of == "space")
                assert await first.stop() == 0
            at_stop = [line for line in first.lines if "at shutdown" in line]
            if out_of == "space":
                assert len(at_stop) == 1 and "the next start continues above media sequence" in at_stop[0]
            else:
                assert at_stop == []  # a journal line, which fits
            before = {v: max(seen.ours[v]) for v in (0, 1)}
            async with ServiceProcess(env, tmp_path / "run") as second:  # the disk still full
                unclean = any("not saved at a clean stop" in line for line in second.lines)
                assert unclean is (out_of == "space")
                # New segments are listed although no save works: within the reserve, recorded first.
                look = seen.at(http, second.url, owncast)
                await look.listed_more(4)
                code, health = await read_health(http, second.url)
                assert code == 503 and "cannot save state" in health["status"]
                assert not any("held back" in line for line in second.lines)
                disk.heal()
                await look.listed_more(4)
                await look.ended()
                assert await second.stop() == 0
            assert not [line for line in second.lines if "Traceback" in line]
    for v in (0, 1):
        after = [n for n in seen.ours[v] if n > before[v]]
        # Above every number shown, by what was shown unsaved (a few segments, recorded in
        # STATE_DIR/served), not by a day's reserve.
        assert after and before[v] < min(after) < before[v] + 100 < before[v] + hls.SEQUENCE_RESERVE
        uris = [uri for uri, _ in seen.ours[v].values()]
        assert len(uris) == len(set(uris))  # no URI under two numbers (the checker saw every version too)
