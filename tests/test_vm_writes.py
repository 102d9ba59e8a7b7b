"""While nothing fails, content steering costs the VM's disk no more than running without it: a copy only
of what an upload failed for (vm/held.py). Measured from /proc/<pid>/io write_bytes over the segments
listed; bench.vm_cost has the figures."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.scrape import scraped
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until

pytestmark = pytest.mark.integration

BYTES_PER_SEGMENT = 8 * 1024  # the bound at a 4 h window (the state's journal lines: about 3 KB)
SEGMENTS = 30  # listed while measured (every variant's)


def written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise AssertionError(f"no write_bytes in /proc/{pid}/io")


async def metrics(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """Each family's samples summed (labels dropped), by sample name."""
    out: dict[str, float] = {}
    for (name, _labels), value in (await scraped(http, url)).items():
        out[name] = out.get(name, 0.0) + value
    return out


async def test_with_steering_the_vm_writes_no_copy_of_a_segment_the_bucket_took(
        tmp_path: Path, seaweed: SeaweedS3, recordings: Recordings) -> None:
    if not Path(f"/proc/{os.getpid()}/io").exists():
        pytest.skip("no /proc/<pid>/io here (Linux with task I/O accounting)")
    state = tmp_path / "state"
    async with OwncastEmulator(tmp_path / "hls", recordings=recordings) as owncast:
        env = service_env(owncast.variant_dir(0).parent, seaweed, state, PATHWAYS="bucket,vm",
                          REWIND_SECONDS="14400", WINDOW_SECONDS="6")
        async with ServiceProcess(env, tmp_path / "service") as service, aiohttp.ClientSession() as http:

            async def listed() -> float:
                return (await metrics(http, service.url)).get("hls_broadcaster_segments_listed_total", 0.0)

            async def at_least(n: float) -> bool:
                return await listed() >= n

            await until(lambda: at_least(4), "the stream listed", 60)
            before_listed, before_written = await listed(), written(service.pid)
            await until(lambda: at_least(before_listed + SEGMENTS), f"{SEGMENTS} more segments listed",
                        SEGMENTS * 3 + 30)
            after_written, after = written(service.pid), await metrics(http, service.url)
            count = after["hls_broadcaster_segments_listed_total"] - before_listed
            per_segment = (after_written - before_written) / count
            copies = sorted(p.name for p in (state / "segments").iterdir()) if (state / "segments").is_dir() else []
            print(f"\n[vm writes] {after_written - before_written} B written over {count:.0f} segments listed: "
                  f"{per_segment:.0f} B per segment at REWIND_SECONDS=14400 with PATHWAYS=bucket,vm; copies kept "
                  f"{after.get('hls_broadcaster_vm_copies_total', 0):.0f}, in STATE_DIR/segments {len(copies)}")
            # Every upload landed at once: not one copy kept, nothing in the copies' folder.
            assert after.get("hls_broadcaster_vm_copies_total", 0.0) == 0.0 and copies == []
            # The kernel counts this disk's writes (the state's journal lines at least; a filesystem that
            # accounts none would make the bound below say nothing).
            assert after_written > before_written, "write_bytes did not move: this filesystem does not account writes"
            assert per_segment < BYTES_PER_SEGMENT, per_segment

