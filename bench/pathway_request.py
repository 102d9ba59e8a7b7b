"""CPU instructions per media playlist request on the VM's pathway against the first bucket's, in one app,
counted, not timed: a pathway rendered when first asked must cost a player no more than one rendered at
its push.

    python -m bench.pathway_request [--requests 2000] [--every 0]

The service's public app with content steering (PATHWAYS=bucket,vm) over the same playlist: the first
bucket's version rendered at its push, the VM's pushed as a Pending (rendered.Pending) and rendered on
the first request for it. `--every K`: a new version is pushed on both pathways every K requests (a player
population that asks K times per segment), so the VM's rendering on first demand is counted too; 0: one
version throughout. Requests are fed one at a time on a keep-alive connection through the connection gate
(whose quick answers take both pathways' plain reloads) into an in-memory transport under valgrind's callgrind (bench/rig.py's `counted`: runs of N and
2N requests, subtracted). Needs valgrind (apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys

from bench.rig import WARM_UP, counted, feed

KINDS = ("bucket", "vm")
PATHS = {"bucket": "/live/0/playlist.m3u8", "vm": "/live/vm/0/playlist.m3u8"}


async def _drive(kind: str, requests: int, every: int) -> None:
    import logging

    from aiohttp import web

    from broadcaster.http import Pathways, PlaylistOptions
    from broadcaster.http.app import ServedPathway
    from broadcaster.playlist import hls
    from broadcaster.playlist.master import Pathway as Offered
    from broadcaster.playlist.pathway import VM, Pathway, VmUris
    from broadcaster.playlist.segments import ListedSegment
    from broadcaster.playlist.views import Snapshot, View
    from broadcaster.publish.visible import VisiblePlaylists
    from broadcaster.steering.masters import SteeredMasters
    from broadcaster.steering.policy import BucketSignals, SteeringPolicy
    from bench.rig import live_generator, playlist_app

    logging.disable(logging.CRITICAL)
    gen = live_generator()
    bucket, vm = VisiblePlaylists(), VisiblePlaylists()
    view = View(Pathway(hls.VM_PATHWAY, VM, hls.VM_FOLDER, VmUris()), {})

    def push() -> None:
        view.through = gen.next_sequence - 1
        version = view.version(gen, lambda: Snapshot(gen))
        assert version is not None
        bucket.show({0: gen.render()})
        vm.show({0: version})

    for playlists in (bucket, vm):
        playlists.under(1)
    push()
    policy = SteeringPolicy(("bucket", "vm"), {"bucket": BucketSignals(behind=lambda: 0.0)}, lambda: 1,
                            interval=5.0)
    pathways = Pathways(masters=SteeredMasters([Offered("bucket"), Offered("vm", "vm")], lambda: policy.first,
                                               {"bucket": bucket}),
                        steering=policy, newest=lambda variant: None,
                        others=(ServedPathway(hls.VM_PATHWAY, hls.VM_FOLDER, vm),))
    app: web.Application = playlist_app(bucket.media_playlist, playlist_options=PlaylistOptions(pathways=pathways))
    request = f"GET {PATHS[kind]} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".encode()
    total = WARM_UP + requests
    if not every:
        await feed(app, kind, [request], total)
        return
    done = 0
    while done < total:
        batch = min(every, total - done)
        await feed(app, kind, [request], batch)
        done += batch
        n = gen.next_sequence
        gen.append(ListedSegment(f"https://media.example.com/live/0/stream-abcdefghi-{n}.ts", 1.0, 1.8e9 + n), n)
        push()
    if done != total:
        sys.exit(f"{kind}: {done} requests, not {total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="N: runs of N and 2N requests are counted")
    parser.add_argument("--every", type=int, default=0, help="a new version every K requests (0: never)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_drive(args.child[0], int(args.child[1]), args.every))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench/pathway_request.py needs valgrind: apt-get install valgrind")
    n = args.requests
    per_request = counted("bench.pathway_request", KINDS, n, "--every", str(args.every))
    print(f"instructions per media playlist request (callgrind, {n} requests: runs of {n} and {2 * n} "
          f"subtracted; a new version every {args.every or 'never'} requests)")
    for kind, cost in per_request.items():
        print(f"  {kind:>8} ({PATHS[kind]}): {cost:9,.0f}")
    print(f"  the VM's / the bucket's: {per_request['vm'] / per_request['bucket']:.3f} (goal: <= 1)")


if __name__ == "__main__":
    main()
