"""Real ffmpeg killed mid-stream, again and again: does any listed segment differ from its final file?

    python -m bench.killed_ffmpeg [--kills 32] [--seed 50] [--watch auto|watchfiles]

Run by hand, not a test (the suite runs one kill: the form, and every listed object its final file). Owncast is the demo's emulator:
real ffmpeg PUTs each segment and playlist to an emulation of Owncast's receiver, which copies each body
into its file as it arrives and records in a ledger each file as it closed it. The service runs as its
own process on SeaweedFS. `--kills` times, at a random moment 0.3-2.5 s into a run, ffmpeg gets SIGKILL
(wherever it is, in the middle of a segment's PUT too) and the stream starts again (Owncast's restart:
folder wiped, a new id). At the end every object the service listed is read from the bucket and compared
with the ledger (issue 50: "real ffmpeg killed 32 times mid-stream: 0 cut of 290").

Reported: kills, objects listed, how many are cut (not whole 188-byte packets), how many differ from the
file as its writer finished it, how many their writer never finished, and the loss counters. Exit
status 0 when none is cut or different.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
from collections.abc import Callable

import aiohttp

from bench.rig import workspace
from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.ledger import Ledger
from tests.support.hls_checker import VariantSetChecker
from tests.support.observe import Observed, poll
from tests.support.service_process import ServiceProcess, service_env

_COUNTERS = ("hls_broadcaster_segments_lost_total", "hls_broadcaster_segments_unfinished_total",
             "hls_broadcaster_segment_reuploads_total")


async def main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    async with workspace("killed-ffmpeg") as ws, OwncastEmulator(ws.work / "hls", ledger=Ledger()) as oc:
        env = service_env(oc.variant_dir(0).parent, ws.s3, ws.work / "state", WINDOW_SECONDS="3600",
                          DELETE_OLD_SEGMENTS="false", HLS_WATCH=args.watch)
        seen = Observed(checker=VariantSetChecker(allow_resume_after_endlist=True, allow_restart=True))
        async with aiohttp.ClientSession() as http, ServiceProcess(env, ws.work) as service:

            async def until(done: Callable[[], bool], timeout: float = 60) -> None:
                async with asyncio.timeout(timeout):
                    while not done():
                        await poll(http, service.url, oc, seen)
                        await asyncio.sleep(0.1)

            await until(lambda: min(map(len, seen.ours.values())) >= 2)
            for _ in range(args.kills):
                await until(lambda: bool(oc.listed_segments(0)))  # this run has begun
                await asyncio.sleep(rng.uniform(0.3, 2.5))
                pid = oc.ffmpeg_pid
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                await oc.restart_stream()
            # The service has listed the last run's second segment in both variants (it lists in order).
            await until(lambda: all(sum(oc.shortid in uri for uri, _ in seen.ours[v].values()) >= 2 for v in (0, 1)))
            cut = differ = never = 0
            listed = seen.listed_files(oc)
            for url, path in listed:
                async with http.get(url) as r:
                    body = await r.read()
                cut += bool(len(body) % 188 or body[:1] != b"\x47")
                if oc.ledger is None or oc.ledger.get(path) is None:
                    never += 1
                elif oc.ledger.mismatch(path, body) is not None:
                    differ += 1
            async with http.get(f"{service.url}/metrics") as r:
                counters = [line for line in (await r.text()).splitlines()
                            if line.startswith(_COUNTERS) and not line.endswith(" 0.0")]
            problems = service.problems()
    print(f"watch: {args.watch}; kills: {args.kills} (seed {args.seed})")
    print(f"objects listed: {len(listed)}; cut (not whole packets): {cut}; different from the writer's final "
          f"file: {differ}; never finished by their writer: {never}")
    for line in counters:
        print(f"  {line}")
    if problems:
        print("service errors:", *problems[:5], sep="\n  ")
    ok = listed and not cut and not differ and not never
    print(f"goal: every listed object is its final file: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=32)
    parser.add_argument("--seed", type=int, default=50, help="the moments of the kills")
    parser.add_argument("--watch", choices=("auto", "watchfiles"), default="auto")
    sys.exit(asyncio.run(main(parser.parse_args())))
