"""Blocking reloads: from a segment being listed to each held request's answer, on the service's own
listener (bench/serve.py runs it after its throughput rounds; alone it is:)

    python -m bench.serve_blocking [--held 200] [--segments 20]

The server, in a child process pinned to bench/rig.py's SERVER_CPU, is the public app served as the
service serves it (serving.as_service: the connection gate, handler_cancellation, its keep-alive) over the
service's own PlaylistSource (publish/visible.py's VisiblePlaylists: one wake-up per version shown) fed a
1 s live playlist (ManifestGenerator) once a second. "Listed" is the moment VisiblePlaylists.show() is
called with a version listing a new segment: time.monotonic() in the child, sent over a pipe (the same
clock in every process). Clients, in this process on the other CPU: --held keep-alive connections, each
asking `/live/0/playlist.m3u8?_HLS_msn=<next>` again as soon as it has its answer (what a blocking
player does), reading the answer whole, raw asyncio streams (no client library's cost on the clock).
Reported: p50/p95/max of answer - listed over every (segment, client) pair after the first segment.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from multiprocessing.connection import Connection

from bench.rig import SERVER_CPU, WRK_CPU, free_port, pin, wait_listening
from broadcaster.status.assessment import Assessment

PATH = "/live/0/playlist.m3u8"


def _serve(port: int, stamps: Connection) -> None:
    import logging

    pin(SERVER_CPU)
    logging.disable(logging.CRITICAL)
    asyncio.run(_run(port, stamps))


async def _run(port: int, stamps: Connection) -> None:
    from bench.rig import as_service
    from broadcaster.http import create_app
    from broadcaster.metrics import Metrics
    from broadcaster.playlist.manifest import ManifestGenerator
    from broadcaster.playlist.options import WindowOptions
    from broadcaster.playlist.segments import ListedSegment
    from broadcaster.publish.visible import VisiblePlaylists

    visible = VisiblePlaylists()
    visible.under(1)
    gen = ManifestGenerator(1, WindowOptions(10))
    n = 0

    def add() -> None:
        nonlocal n
        gen.append(ListedSegment(f"https://media.example.com/live/0/stream-{n}.ts", 1.0, 1.8e9 + n), n)
        rendered = gen.render()
        stamps.send((rendered.last_sequence, time.monotonic()))
        visible.show({0: rendered})
        n += 1

    for _ in range(3):
        add()
    async with as_service(create_app(visible, Healthy(), Metrics()), port):
        while True:
            await asyncio.sleep(1.0)
            add()


class Healthy:
    def assess(self) -> Assessment:
        from broadcaster.status.stream import StreamState

        return Assessment(True, StreamState.LIVE, "ok", {"status": "ok"})


async def _client(port: int, first: int, answered: dict[tuple[int, int], float], me: int, until: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    msn = first
    try:
        while msn <= until:
            writer.write(f"GET {PATH}?_HLS_msn={msn} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            answered[(msn, me)] = time.monotonic()
            if not head.startswith(b"HTTP/1.1 200 "):
                sys.exit(f"bench.serve_blocking: unexpected answer {head[:200]!r}")
            msn += 1
    finally:
        writer.close()


async def _measure(port: int, stamps: Connection, held: int, segments: int) -> list[float]:
    listed: dict[int, float] = {}
    while not listed or stamps.poll():
        msn, at = stamps.recv()
        listed[msn] = at
    first = max(listed) + 1
    until = first + segments - 1
    answered: dict[tuple[int, int], float] = {}
    clients = [asyncio.create_task(_client(port, first, answered, i, until)) for i in range(held)]
    await asyncio.wait_for(asyncio.gather(*clients), timeout=segments * 3 + 30)
    while stamps.poll():
        msn, at = stamps.recv()
        listed[msn] = at
    # The first segment: clients may still be connecting when it is listed.
    return [at - listed[msn] for (msn, _), at in answered.items() if msn > first]


def blocking_delays(held: int, segments: int) -> list[float]:
    """Seconds from listed to answered, one per (segment, client)."""
    ctx = multiprocessing.get_context("spawn")
    port = free_port()
    mine, theirs = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_serve, args=(port, theirs), daemon=True)
    proc.start()
    try:
        wait_listening(port, alive=proc.is_alive)
        return asyncio.run(_measure(port, mine, held, segments))
    finally:
        proc.terminate()
        proc.join(5)


def report(held: int, segments: int) -> bool:
    """Prints the figures; whether p95 <= 25 ms. The clients run on the load generator's CPU."""
    pin(WRK_CPU)
    delays = sorted(blocking_delays(held, segments))
    p50 = statistics.median(delays) * 1000
    p95 = delays[min(len(delays) - 1, int(len(delays) * 0.95))] * 1000
    met = p95 <= 25
    print(f"blocking reload, {held} held requests on the service's listener, {segments} segments 1 s apart")
    print(f"  listed -> answered: n {len(delays)} p50 {p50:.1f} ms p95 {p95:.1f} ms max {delays[-1] * 1000:.1f} ms "
          f"(goal p95 <= 25 ms: {'met' if met else 'NOT met'})")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held", type=int, default=200)
    parser.add_argument("--segments", type=int, default=20)
    args = parser.parse_args()
    if not report(args.held, args.segments):
        sys.exit(1)


if __name__ == "__main__":
    main()
