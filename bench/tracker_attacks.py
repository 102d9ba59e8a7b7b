"""The tracker under issue 31's probes T1-T7, issue 40's T8, T9, E1, I1 and issue 50's T8b, T10, T9b: its
CPU and memory while attacked, against an idle tracker measured in the same run, and whether honest
viewers still meet afterwards (and, from issue 40's on, whether the viewers attacked stay on).

    python -m bench.tracker_attacks            # every probe, one fresh tracker each
    python -m bench.tracker_attacks T1 T6      # some of them (A1: a flood of made-up answers)

The tracker is the shipped one (broadcaster/tracker/tracker.mjs) with its systemd unit's environment
and Node flags (as tests/test_tracker_hostile.py runs it). Attackers name their address in
CF-Connecting-IP from loopback, as cloudflared does, so "from 100 addresses" is a botnet's worst case
for the per-client caps. "meet" is how many of 20 pairs of new honest viewers met (one's offer reached
the other and the answer came back) after the attack. CPU is the tracker's own (/proc), as a share of
one core over the attack's wall time; RSS is sampled every 20 ms. Figures from one run on a shared
2-core machine: compare a probe with the idle line of the same run, not with another machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.rig import cpu_seconds, rss_kb
from broadcaster.demo.tracker import LocalTracker, TrackerUnavailable, install
from broadcaster.status.trackers import info_hash
from tests.support.webtorrent import (
    SWARM, VARIANTS, Peer, RawSocket, StandInService, connect, connected, meet, random_id, reached, serving,
    unit_limits,
)

ALLOWED = VARIANTS[0]
ADDRESSES = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(100)]
ROUNDS = 20


@dataclass
class Result:
    probe: str
    sent: str
    cpu_s: float
    wall_s: float
    rss_before_mb: float
    rss_peak_mb: float
    alive: bool
    meetings: int
    note: str = ""


def session() -> aiohttp.ClientSession:
    """No cap on connections at once (aiohttp's default is 100): an attacker has none."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def quietly(coro: Awaitable[object]) -> None:
    with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
        async with asyncio.timeout(10):
            await coro


async def many(http: aiohttp.ClientSession, url: str, count: int, spread: int) -> list[Peer]:
    """`count` connections from `spread` addresses; those refused are left out."""
    peers: list[Peer] = []

    async def one(i: int) -> None:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            peers.append(await connect(http, url, ADDRESSES[i % spread]))

    for start in range(0, count, 200):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 200))))
    return peers


async def close_all(peers: list[Peer]) -> None:
    await asyncio.gather(*(quietly(p.close()) for p in peers))


# -- the probes: each returns what was sent, and a note ---------------------------------------------------

async def idle(url: str) -> tuple[str, str]:
    await asyncio.sleep(5)
    return "nothing, 5 s", ""


async def t1(url: str) -> tuple[str, str]:
    async with connected(url) as victim, session() as http:
        await victim.announce(ALLOWED)
        peers = await many(http, url, 500, 100)
        await asyncio.gather(*(quietly(p.send({"action": "announce", "info_hash": ALLOWED, "peer_id": p.peer_id,
                                                 "numwant": 1, "offers": [None]})) for p in peers))
        ends = await asyncio.gather(*(p.closed() for p in peers))
        await close_all(peers)
    refused = sum(1 for c in ends if c and c[0] == 1008)
    return (f"{len(peers)} announces with offers [null]",
            f"all {len(peers)} connections closed: {sum(1 for c in ends if c)} ({refused} seen with 1008)")


async def t2(url: str) -> tuple[str, str]:
    async with session() as http:
        peers = await many(http, url, 100, 100)

        async def ghosts(p: Peer) -> None:
            for _ in range(999):
                if p.closed_with is not None or p.ws.closed:
                    return
                p.peer_id = random_id()
                try:
                    await p.announce(ALLOWED)
                except (aiohttp.ClientError, OSError):
                    return
                await asyncio.sleep(0)
        await asyncio.gather(*(ghosts(p) for p in peers))
        await asyncio.gather(*(p.closed() for p in peers))
        await close_all(peers)
    return "100 connections x up to 999 peer_ids", "each closed at its 2nd peer_id"


async def t3(url: str) -> tuple[str, str]:
    async with session() as http:
        peers = await many(http, url, 100, 100)
        for _ in range(20):
            await asyncio.gather(*(quietly(p.announce(info_hash(SWARM, random_id()))) for p in peers
                                   if p.closed_with is None))
        await asyncio.gather(*(p.next(lambda m: len([x for x in p.received if "failure reason" in x]) >= 20, 5)
                               for p in peers))
        await close_all(peers)
    return "2000 announces of made-up info hashes (100 addresses)", "all refused, no swarm made"


async def meets_now(url: str) -> str:
    try:
        return "yes" if await meet(url, ALLOWED) else "no"
    except aiohttp.WSServerHandshakeError as err:
        return f"no (refused: HTTP {err.status})"
    except (aiohttp.ClientError, OSError) as err:
        return f"no ({type(err).__name__})"


async def t4(url: str, addresses: int) -> tuple[str, str]:
    """2000 idle connections from one address (its per-client cap) or from 100 (the slots' cap)."""
    async with session() as http:
        peers = await many(http, url, 2000, addresses)
        during = await meets_now(url)
        await close_all(peers)
    if addresses == 1:
        return ("2000 idle connections from 1 address",
                f"{len(peers)} accepted (20 at a time, each closed 10 s later); honest viewers met during it: {during}")
    return (f"2000 idle connections from {addresses} addresses",
            f"{len(peers)} accepted; honest viewers met during it: {during} (slots full until the idle timeout)")


async def t5(url: str) -> tuple[str, str]:
    deaf = await RawSocket.open(url, "203.0.113.50")
    await deaf.send({"action": "announce", "info_hash": ALLOWED, "peer_id": random_id(), "event": "started",
                     "numwant": 0, "offers": []})
    sent = 0
    async with session() as http:
        for address in ADDRESSES:
            try:
                sender = await connect(http, url, address)
            except aiohttp.ClientError:
                continue
            for _ in range(20):
                if sender.closed_with is None:
                    sent += 1
                    await quietly(sender.send({
                        "action": "announce", "info_hash": ALLOWED, "peer_id": sender.peer_id, "numwant": 1,
                        "offers": [{"offer": {"type": "offer", "sdp": "v" * 16000}, "offer_id": random_id()}]}))
            await sender.next(lambda m: False, timeout=0.05)
            await quietly(sender.close())
    dropped = await deaf.dropped(timeout=5)
    deaf.close()
    return f"{sent} offers of 16 kB at a peer that never reads", f"the deaf peer dropped: {dropped}"


async def t6(url: str) -> tuple[str, str]:
    scrape = {"action": "scrape", "info_hash": [random_id() for _ in range(2600)]}
    async with session() as http:
        done = 0
        for _ in range(10):
            peers = await many(http, url, 200, 100)
            await asyncio.gather(*(quietly(p.send(scrape)) for p in peers))
            await asyncio.gather(*(p.closed() for p in peers))
            done += len(peers)
            await close_all(peers)
    return f"{done} scrapes of 63 kB (2600 info hashes), one a connection", "each closed (1008), nothing listed"


async def t7(url: str) -> tuple[str, str]:
    async with connected(url) as victim, session() as http:
        await victim.announce(ALLOWED)
        notes = []
        for spread in (1, 100):
            before = sum(1 for m in victim.received if "offer" in m)
            peers = await many(http, url, 100, spread)

            async def spray(p: Peer) -> None:
                for _ in range(25):
                    if p.closed_with is None:
                        await quietly(p.announce(ALLOWED, offers=5, event=None))
            await asyncio.gather(*(spray(p) for p in peers))
            await asyncio.gather(*(p.closed(timeout=2) for p in peers))
            await close_all(peers)
            await victim.next(lambda m: False, timeout=0.5)
            got = sum(1 for m in victim.received if "offer" in m) - before
            notes.append(f"from {spread} address{'es' if spread > 1 else ''}: {got} offers reached the victim")
    return "100 connections x 25 announces with 5 offers, twice", "; ".join(notes)


async def stays_on(viewer: Peer, url: str) -> bool:
    """`viewer` is still connected, its announce answered, and a new viewer meets it."""
    start = len(viewer.received)
    await quietly(viewer.announce(ALLOWED))
    if await viewer.next(lambda m: "interval" in m, start=start) is None:
        return False
    return await reached(viewer, url, ALLOWED)


async def t8(url: str) -> tuple[str, str]:
    """Offers that leave at once: 60 rounds of 5 offers from 10 addresses, each connection closed at once;
    the two viewers answer every offer they got."""
    async with connected(url) as a, connected(url) as b, session() as http:
        for v in (a, b):
            await v.announce(ALLOWED)
        for i in range(60):
            try:
                attacker = await connect(http, url, ADDRESSES[i % 10])
            except aiohttp.ClientError:
                continue
            await quietly(attacker.announce(ALLOWED, offers=5))
            await attacker.next(lambda m: "interval" in m, timeout=2)
            await quietly(attacker.close())
        answered = 0
        for v in (a, b):
            for got in [m for m in v.received if "offer" in m]:
                answered += 1
                await quietly(v.answer(ALLOWED, got))
        on = [await stays_on(v, url) for v in (a, b)]
    return (f"60 x 5 offers whose sender left at once; {answered} answers to them",
            f"viewers still on and reached: {sum(on)}/2")


async def t9(url: str) -> tuple[str, str]:
    """The victim's peer id announced from 100 other addresses while it is on, then while it is away; the
    victim comes back with it."""
    async with connected(url, "198.51.100.10") as victim, session() as http:
        await victim.announce(ALLOWED)
        squatters = await many(http, url, 100, 100)
        for s in squatters:
            s.peer_id = victim.peer_id
        await asyncio.gather(*(quietly(s.announce(ALLOWED)) for s in squatters))
        refused = sum([await s.next(refusal, timeout=2) is not None for s in squatters])
        victim_id = victim.peer_id
    async with session() as http:
        squatters2 = await many(http, url, 100, 100)
        for s in squatters2:
            s.peer_id = victim_id
        await asyncio.gather(*(quietly(s.announce(ALLOWED)) for s in squatters2))
        refused2 = sum([await s.next(refusal, timeout=2) is not None for s in squatters2])
        async with connected(url, "198.51.100.10") as back:
            back.peer_id = victim_id
            on = await stays_on(back, url)
        await close_all(squatters + squatters2)
    return ("the victim's peer id from 100 addresses, twice (victim on, then away)",
            f"refused {refused}/100 and {refused2}/100; the victim back with its id and reached: "
            f"{'yes' if on else 'no'}")


def refusal(message: dict[str, object]) -> bool:
    return "failure reason" in message


async def e1(url: str) -> tuple[str, str]:
    """100 connections from the victim's own address, each with the victim's id in the other swarm and
    its own in the victim's, closed."""
    async with connected(url, "198.51.100.30") as victim, session() as http:
        await victim.announce(ALLOWED)
        peers = [p for p in [await quietly_connect(http, url, "198.51.100.30") for _ in range(19)] if p]
        for p in peers:
            own = p.peer_id
            p.peer_id = victim.peer_id
            await quietly(p.announce(VARIANTS[1]))
            p.peer_id = own
            await quietly(p.announce(ALLOWED))
        await close_all(peers)
        on = await stays_on(victim, url)
    return (f"{len(peers)} connections holding the victim's id in another swarm, closed",
            f"the victim still in its swarm (a new viewer's offer reached it): {'yes' if on else 'no'}")


async def quietly_connect(http: aiohttp.ClientSession, url: str, ip: str) -> Peer | None:
    with contextlib.suppress(aiohttp.ClientError, OSError):
        return await connect(http, url, ip)
    return None


async def i1(url: str) -> tuple[str, str]:
    """2000 connections from 100 /64s of one /48 (a free tunnel broker's allocation)."""
    async with session() as http:
        peers: list[Peer] = []
        for i in range(2000):
            peer = await quietly_connect(http, url, f"2001:db8:7:{i % 100:x}::1")
            if peer:
                peers.append(peer)
        during = await meets_now(url)
        await close_all(peers)
    return ("2000 connections from 100 /64s of one /48",
            f"{len(peers)} accepted; honest viewers met during it: {during}")


async def i1b(url: str) -> tuple[str, str]:
    """2100 plain sockets from loopback that never send a byte."""
    host, port = url.removeprefix("ws://").split(":")
    t0 = time.monotonic()
    silent = [await asyncio.open_connection(host, int(port)) for _ in range(2100)]
    during = await meets_now(url)

    async def ended(reader: asyncio.StreamReader) -> float:
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(60):
                await reader.read()
        return time.monotonic() - t0
    ends = await asyncio.gather(*(ended(r) for r, _ in silent))
    for _, writer in silent:
        writer.close()
    return ("2100 sockets that never send a byte",
            f"honest viewers met during it: {during}; the last closed at {max(ends):.1f} s")


async def t8b(url: str) -> tuple[str, str]:
    """Offers in bursts (issue 50): one address spends its whole budget (120 a minute) on announces of 5
    offers, from one connection after the other (19 announces each, then it leaves), at three viewers;
    each viewer answers every offer it got. Four bursts, a minute of the attacker's budget apart would be
    the real pace; here the budget is spent once and the viewers answer all of it at once."""
    async with contextlib.AsyncExitStack() as stack, session() as http:
        viewers = [await stack.enter_async_context(connected(url)) for _ in range(3)]
        for v in viewers:
            await v.announce(ALLOWED)
            await v.next(lambda m: "interval" in m)
        for _ in range(6):
            try:
                attacker = await connect(http, url, "203.0.113.77")
            except aiohttp.ClientError:
                break
            for _ in range(19):
                await quietly(attacker.announce(ALLOWED, offers=5, event=None))
            await attacker.next(lambda m: sum("interval" in x for x in attacker.received) >= 19, timeout=5)
            await quietly(attacker.close())
        offers = [len([m for m in v.received if "offer" in m]) for v in viewers]
        for v in viewers:
            for got in [m for m in v.received if "offer" in m]:
                await quietly(v.answer(ALLOWED, got))
        on = [await stays_on(v, url) for v in viewers]
    return (f"one address's budget of offers, {min(offers)}-{max(offers)} per viewer; every one answered",
            f"viewers still on and reached: {sum(on)}/3")


async def t10(url: str) -> tuple[str, str]:
    """A neighbour in the viewers' /48 (issue 50): five viewers in five /64s announce every 2 s while a
    sixth /64 opens connections and announces as fast as it may, for 15 s."""
    async with contextlib.AsyncExitStack() as stack, session() as http:
        viewers = [await stack.enter_async_context(connected(url, f"2001:db8:a:{i}::1")) for i in range(1, 6)]
        end = time.monotonic() + 15
        refused = 0

        async def neighbour() -> None:
            nonlocal refused
            while time.monotonic() < end:
                try:
                    p = await connect(http, url, "2001:db8:a:ff::1")
                except aiohttp.ClientError:
                    refused += 1
                    await asyncio.sleep(0.05)
                    continue
                while p.closed_with is None and time.monotonic() < end:
                    await quietly(p.announce(ALLOWED, event=None))
                    await p.next(lambda m: False, timeout=0.01)
                refused += 1
                await quietly(p.close())

        async def viewer(v: Peer) -> None:
            while time.monotonic() < end and v.closed_with is None:
                await quietly(v.announce(ALLOWED, event=None))
                await v.next(lambda m: False, timeout=2)

        await asyncio.gather(neighbour(), *(viewer(v) for v in viewers))
        closed = [v.closed_with[1] for v in viewers if v.closed_with is not None]
        met = await reached(viewers[0], url, ALLOWED) if viewers[0].closed_with is None else False
    return ("5 viewers in 5 /64s of one /48, a neighbour's /64 announcing as fast as it may, 15 s",
            f"viewers closed: {len(closed)}/5{' (' + closed[0] + ')' if closed else ''}; the neighbour refused or "
            f"closed {refused} times; a viewer met after it: {'yes' if met else 'no'}")


async def t9b(url: str) -> tuple[str, str]:
    """The victim's peer id announced from the victim's own address by 20 connections, one after the
    other; after each, a new viewer's offers go where the id is."""
    home = "198.51.100.50"
    async with connected(url, home) as victim, session() as http:
        await victim.announce(ALLOWED)
        await victim.next(lambda m: "interval" in m)
        refused = reached_victim = 0
        for _ in range(20):
            attacker = await quietly_connect(http, url, home)
            if attacker is None:
                continue
            attacker.peer_id = victim.peer_id
            await quietly(attacker.announce(ALLOWED))
            if await attacker.next(refusal, timeout=6) is not None:
                refused += 1
            reached_victim += await reached(victim, url, ALLOWED)
            await quietly(attacker.close())
    return ("the victim's peer id from its own address, 20 times while it is on",
            f"refused {refused}/20; a new viewer's offers reached the victim {reached_victim}/20")


async def answers(url: str) -> tuple[str, str]:
    """Answers to offers never sent (issue 50: they cost the sender nothing now, and a connection is read
    at most 120 messages a minute): 20 connections from one address send made-up answers of 16 kB as
    fast as the tracker takes them, for 10 s."""
    async with connected(url) as victim, session() as http:
        await victim.announce(ALLOWED)
        await victim.next(lambda m: "interval" in m)
        peers = await many(http, url, 20, 1)
        for p in peers:
            await quietly(p.announce(ALLOWED))
        end = time.monotonic() + 10
        sent = 0

        async def flood(p: Peer) -> None:
            nonlocal sent
            sdp = {"type": "answer", "sdp": "v" * 16000}
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                while p.closed_with is None:
                    async with asyncio.timeout(max(0.01, end - time.monotonic())):
                        await p.send({"action": "announce", "info_hash": ALLOWED, "peer_id": p.peer_id,
                                      "to_peer_id": victim.peer_id, "offer_id": random_id(), "answer": sdp})
                    sent += 1
        await asyncio.gather(*(flood(p) for p in peers))
        closed = sum(p.closed_with is not None for p in peers)
        relayed = sum("answer" in m for m in victim.received)
        await close_all(peers)
    return ("20 connections from 1 address sending made-up answers of 16 kB as fast as they go out, 10 s",
            f"{sent} sent (the rest waited in the sockets); connections closed: {closed}/20; "
            f"answers that reached the victim: {relayed}")


PROBES: dict[str, Callable[[str], Awaitable[tuple[str, str]]]] = {
    "idle": idle, "T1": t1, "T2": t2, "T3": t3, "T4": lambda url: t4(url, 1), "T4b": lambda url: t4(url, 100),
    "T5": t5, "T6": t6, "T7": t7, "T8": t8, "T9": t9, "E1": e1, "I1": i1, "I1b": i1b,
    "T8b": t8b, "T10": t10, "T9b": t9b, "A1": answers,
}


@contextlib.asynccontextmanager
async def shipped_tracker(folder: Path) -> AsyncIterator[LocalTracker]:
    """The tracker as its unit runs it, serving a stand-in service's stream (two variants)."""
    env, flags = unit_limits()
    async with StandInService() as service, \
            LocalTracker(folder, service=service.url, env=env, node_args=flags) as tracker:
        await serving(tracker)
        yield tracker


async def run(name: str, folder: Path) -> Result:
    async with shipped_tracker(folder) as tracker:
        pid = tracker.pid
        assert pid is not None
        await meet(tracker.url, ALLOWED)  # warmed up: the JIT and the first swarm
        rss_before = rss_kb(pid) / 1024
        peak = rss_before
        sampling = True

        async def sample() -> None:
            nonlocal peak
            while sampling:
                with contextlib.suppress(OSError, ValueError, RuntimeError):  # RuntimeError: it is exiting
                    peak = max(peak, rss_kb(pid) / 1024)
                await asyncio.sleep(0.02)
        sampler = asyncio.create_task(sample())
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        sent, note = await PROBES[name](tracker.url)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(pid) - cpu0 if tracker.pid == pid else float("nan")
        sampling = False
        await sampler
        alive = tracker.pid == pid and tracker.restarts == 0
        meetings = sum([await meet(tracker.url, ALLOWED) for _ in range(ROUNDS)]) if name != "idle" else ROUNDS
        return Result(name, sent, cpu, wall, rss_before, peak, alive, meetings, note)


def table(results: list[Result]) -> str:
    base = next((r for r in results if r.probe == "idle"), None)
    idle_share = base.cpu_s / base.wall_s if base else float("nan")
    lines = ["| probe | sent | tracker CPU | of a core | RSS before -> peak | alive | honest pairs met | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        share = r.cpu_s / r.wall_s
        ratio = ""
        if base and r is not base:  # idle CPU is counted in 10 ms ticks: often none in 5 s, then no ratio
            ratio = f" ({share / idle_share:.0f}x idle)" if idle_share > 0 else " (idle: under a 10 ms tick)"
        lines.append(f"| {r.probe} | {r.sent} | {r.cpu_s:.2f} s in {r.wall_s:.1f} s | {100 * share:.1f} %{ratio} | "
                     f"{r.rss_before_mb:.0f} -> {r.rss_peak_mb:.0f} MB | {'yes' if r.alive else 'NO'} | "
                     f"{r.meetings}/{ROUNDS} | {r.note} |")
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probes", nargs="*", metavar="PROBE", help=f"some of {', '.join(PROBES)} (default: all)")
    args = parser.parse_args()
    unknown = [p for p in args.probes if p not in PROBES]
    if unknown:
        parser.error(f"unknown probe {unknown[0]}; choose from {', '.join(PROBES)}")
    names = ["idle", *[p for p in (args.probes or PROBES) if p != "idle"]]
    try:
        folder = await asyncio.to_thread(install)
    except TrackerUnavailable as err:
        print(f"no tracker here: {err}", file=sys.stderr)
        return 1
    random.seed(31)
    results = []
    for name in names:
        result = await run(name, folder)
        print(f"{name}: {result}", file=sys.stderr)
        results.append(result)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
