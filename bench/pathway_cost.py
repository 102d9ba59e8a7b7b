"""CPU instructions per segment on the publish path, PATHWAYS=bucket against PATHWAYS=bucket,vm while the
bucket serves (issue 66 item 3: steering must cost the VM nothing while nothing fails), counted, not timed.

    python -m bench.pathway_cost [--slots 160] [--variants 2]

bench/vm_cost.py times the whole service side by side, and its CPU per segment scatters by 1-3 % between
services of one run, as much as what it is asked to tell apart. This counts instead, under valgrind's
callgrind, the path every segment takes through the publisher in one process: Owncast's playlists fed
a slot a second on a stepped clock (so the window slides), the real Uploader (a bucket in memory, every
put landing at once), each version saved through the real JournaledState before it is shown. With
steering (`steering`): the VM's pathway in the plan as the service builds it while the bucket serves
(the VM only redirects there, and nobody reads its playlists: each version of it is a record rendered
when first asked, rendered.Pending), and what the service
holds for it (vm/held.py: nothing, while every upload lands at once). A run of N slots and one of 2N,
minus each other, give the cost of N slots without start-up; divided by the variants, of one listed segment. The count repeats to within about
0.1 % (PYTHONHASHSEED=0).

Left out, the same for both: the watcher and Owncast's playlists parsed, the bucket's HTTP, the
kernel's side. Left out for the steering run alone: the steering loop's turns (a few a minute while
nothing fails), which vm_cost's figure holds. Needs valgrind (apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from bench.memory_cost import EPOCH, Listings, MemoryBucket, feed, whole_writes
from bench.rig import counted

KINDS = ("bucket", "steering")
SEGMENT = b"\x47" * 188 * 400  # what each file holds: the bytes do not matter, the uploads read them
WINDOW = 30.0  # WINDOW_SECONDS: the window slides from the first slot counted on
WARM = int(WINDOW) + 1


async def _drive(kind: str, slots: int, variants: int, folder: Path) -> None:
    """WARM slots, then `slots` more, each listed, saved and shown in every variant before the next."""
    import logging

    from broadcaster import metrics as metrics_module
    from broadcaster.vm.held import Held
    from broadcaster.bucket.uploader import Backoff, Uploader
    from broadcaster.bucket.urls import PublicUrls
    from broadcaster.playlist import hls
    from broadcaster.playlist.options import WindowOptions
    from broadcaster.playlist.pathway import VM, Pathway, VmUris
    from broadcaster.publish.config import PublisherConfig
    from broadcaster.publish.pathways import FIRST, PathwayPlan
    from broadcaster.publish.publisher import Publisher
    from broadcaster.publish.release import Outlets
    from broadcaster.publish.visible import VisiblePlaylists
    from broadcaster.source import owncast
    from broadcaster.source.writes import Finish
    from broadcaster.state.journal import JournaledState
    from broadcaster.state.snapshots import Snapshots, register_parts

    logging.disable(logging.CRITICAL)

    hls_dir, state_dir = folder / "hls", folder / "state"
    hls_dir.mkdir()
    state_dir.mkdir()
    clock = [0.0]
    metrics = metrics_module.Metrics()
    steering = kind == "steering"
    # As service.py builds them with PATHWAYS=bucket,vm while the bucket serves.
    held = Held(hls_dir, state_dir, max_bytes=1 << 30, keep_for=120.0) if steering else None
    if held is not None:
        held.open()
    uploader = Uploader(MemoryBucket(), metrics, concurrency=8, attempt_timeout=5,
                        backoff=Backoff(base=0.001, cap=0.001), holder=held)
    listings = Listings()
    snapshots = Snapshots(JournaledState(state_dir), metrics)
    if steering:
        plan = PathwayPlan((FIRST, Pathway(hls.VM_PATHWAY, VM, hls.VM_FOLDER, VmUris())), redirects=lambda: True)
        outlets = Outlets(VisiblePlaylists(), snapshots, on_listed=(listings,),
                          pathways={hls.VM_PATHWAY: VisiblePlaylists()})
    else:
        plan = PathwayPlan()
        outlets = Outlets(VisiblePlaylists(), snapshots, on_listed=(listings,))
    config = PublisherConfig(hls_dir=hls_dir, key_prefix="live", urls=PublicUrls("https://cdn.example"),
                             wall_clock=lambda: EPOCH + clock[0], monotonic=lambda: clock[0],
                             window=WindowOptions(WINDOW), pathways=plan)
    pub = Publisher(config, uploader=uploader, writes=whole_writes(Finish), metrics=metrics, outlets=outlets)
    register_parts(snapshots, pub)
    await pub.start()
    total = WARM + slots
    await feed(pub, owncast, hls_dir, variants, total, clock, listings, SEGMENT)
    if listings.count != variants * total:
        sys.exit(f"{kind}: {listings.count} segments listed, not {variants * total}")
    await pub.close()
    if held is not None:
        held.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, default=160, help="N: runs of N and 2N slots are counted")
    parser.add_argument("--variants", type=int, default=2, help="Owncast's variants (segments per slot)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SLOTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory(prefix="bench-pathway-") as tmp:
            asyncio.run(_drive(args.child[0], int(args.child[1]), args.variants, Path(tmp)))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench/pathway_cost.py needs valgrind: apt-get install valgrind")
    n = args.slots
    per_slot = counted("bench.pathway_cost", KINDS, n, "--variants", str(args.variants))
    per_segment = {kind: cost / args.variants for kind, cost in per_slot.items()}
    print(f"instructions per listed segment on the publish path (callgrind, {args.variants} variants: runs of "
          f"{n} and {2 * n} slots subtracted)")
    for kind, cost in per_segment.items():
        print(f"  {kind:>8}: {cost:11,.0f}")
    extra = per_segment["steering"] - per_segment["bucket"]
    print(f"  steering adds {extra:,.0f} ({per_segment['steering'] / per_segment['bucket'] - 1:+.2%}) "
          f"while the bucket serves (issue 66's goal: no more than PATHWAYS=bucket)")


if __name__ == "__main__":
    main()
