"""The shipped tracker as its systemd unit runs it, attacked by scripted WebTorrent clients (attacks T1-T10,
E1, I1). Each is judged by what viewers get: the same process still runs, new honest viewers still meet,
and the viewers attacked are still connected and still meet peers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.tracker import LocalTracker
from tests.support.node import node
from tests.support.waiting import until
from broadcaster.status.trackers import info_hash, master_info_hashes, variant_key
from tests.support.webtorrent import (
    MEET_TIMEOUT, SWARM, VARIANTS, Peer, RawSocket, StandInService, connect, connected, meet, offer, random_id, reached,
    serving, unit_limits,
)

pytestmark = pytest.mark.integration

ALLOWED = VARIANTS[0]  # the first variant's info hash, as P2P Media Loader announces it
LIMITS = unit_limits()[0]  # the unit's Environment=
PER_SOCKET, PER_CLIENT = int(LIMITS["TRACKER_SOCKET_ANNOUNCES"]), int(LIMITS["TRACKER_CLIENT_ANNOUNCES"])
CLIENT_CONNECTIONS = int(LIMITS["TRACKER_MAX_CLIENT_CONNECTIONS"])


@pytest.fixture
async def service() -> AsyncIterator[StandInService]:
    async with StandInService() as running:
        yield running


@contextlib.asynccontextmanager
async def started(folder: Path, service: str, *, ready: bool = True,
                  **over: str) -> AsyncIterator[LocalTracker]:
    """The tracker as the unit runs it, reading `service` (TRACKER_SERVICE_URL); once it serves if `ready`."""
    env, flags = unit_limits()
    async with LocalTracker(folder, service=service, env={**env, **over}, node_args=flags) as tracker:
        if ready:
            await serving(tracker)
        yield tracker


@pytest.fixture
async def tracker(tracker_dir: Path, service: StandInService) -> AsyncIterator[LocalTracker]:
    """The tracker as the unit runs it; after the test, the same process still serves new honest viewers."""
    async with started(tracker_dir, service.url) as running:
        pid = running.pid
        yield running
        await still_serves(running, pid)


async def still_serves(tracker: LocalTracker, pid: int | None) -> None:
    """The same process runs, and new honest viewers meet through it."""
    assert await meet(tracker.url, ALLOWED), tracker.lines[-5:]
    assert tracker.pid == pid and tracker.restarts == 0, tracker.lines[-5:]


async def test_honest_viewers_meet_and_an_unknown_swarm_is_refused(tracker: LocalTracker) -> None:
    assert await meet(tracker.url, ALLOWED)
    assert await meet(tracker.url, VARIANTS[1])  # every variant of the stream
    async with connected(tracker.url) as stranger:
        await stranger.announce(info_hash("someone-elses-stream", "key"))
        reply = await stranger.next(lambda m: True)
        assert reply is not None and "unknown swarm" in reply["failure reason"], reply


async def test_t1_an_offer_of_null_closes_that_connection_only(tracker: LocalTracker) -> None:
    async with connected(tracker.url) as victim:
        await joined(victim)
        for bad in ([None], [{"offer": None, "offer_id": random_id()}], "x", [offer()] * 6, [1]):
            async with connected(tracker.url) as attacker:
                await attacker.send({"action": "announce", "info_hash": ALLOWED, "peer_id": attacker.peer_id,
                                     "numwant": 1, "offers": bad})
                code, reason = await attacker.closed() or (None, "")
                assert code == 1008 and "offers" in reason, (bad, code, reason)


async def test_t2_one_connection_is_one_peer_and_its_peers_leave_with_it(tracker: LocalTracker) -> None:
    pid = tracker.pid
    async with connected(tracker.url) as ghost:
        await ghost.announce(ALLOWED)
        await ghost.announce(VARIANTS[1])  # one peer in each of two swarms: allowed
        for _ in range(998):
            ghost.peer_id = random_id()
            await ghost.announce(ALLOWED)
            if ghost.closed_with is not None:
                break
        code, reason = await ghost.closed() or (None, "")
        assert code == 1008 and "one peer per swarm" in reason, (code, reason)
    # The same from connections whose announces all arrive at once (one read): none stays behind.
    raws = [await RawSocket.open(tracker.url, f"203.0.113.{i + 1}") for i in range(30)]
    for raw in raws:
        await raw.send(*({"action": "announce", "info_hash": ALLOWED, "peer_id": random_id(), "event": "started",
                          "numwant": 0, "offers": []} for _ in range(20)))
    assert all(await asyncio.gather(*(raw.dropped() for raw in raws)))
    for raw in raws:
        raw.close()
    # Nobody left behind in either swarm: a new viewer's five offers all go to the one other viewer.
    for _ in range(5):
        await still_serves(tracker, pid)
    assert await meet(tracker.url, VARIANTS[1])


async def test_t3_made_up_swarms_are_never_made(tracker: LocalTracker) -> None:
    async with aiohttp.ClientSession() as http:
        attackers = [await connect(http, tracker.url, f"203.0.113.{i}") for i in range(1, 9)]
        for a in attackers:
            for _ in range(20):
                await a.announce(info_hash(SWARM, random_id()))  # this stream's swarm, made-up variants
        for a in attackers:
            assert await a.next(lambda m: "failure reason" in m) is not None
        await asyncio.gather(*(a.close() for a in attackers))


async def test_t4_idle_connections_are_capped_per_client_and_closed(tracker_dir: Path,
                                                                   service: StandInService) -> None:
    async with started(tracker_dir, service.url, TRACKER_IDLE_SECONDS="2") as tracker:
        pid = tracker.pid
        async with aiohttp.ClientSession() as http:
            held = await capped(http, tracker.url, ["203.0.113.7"] * (CLIENT_CONNECTIONS + 30))
            assert await meet(tracker.url, ALLOWED)  # other clients meet meanwhile
            # Handshakes the WebSocket server refuses (no key) are not held against the client.
            host, port = tracker.url.removeprefix("ws://").split(":")
            for _ in range(CLIENT_CONNECTIONS + 5):
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"CF-Connecting-IP: 203.0.113.8\r\n\r\n")
                assert (await reader.readline()).startswith(b"HTTP/1.1 400")
                writer.close()
            async with connected(tracker.url, "203.0.113.8") as after:
                assert after.closed_with is None
            for peer in held:  # saying nothing, each is closed
                assert await peer.closed() is not None
            await asyncio.gather(*(p.close() for p in held))
        await still_serves(tracker, pid)


async def test_t5_a_connection_that_does_not_read_is_dropped(tracker: LocalTracker) -> None:
    deaf = await RawSocket.open(tracker.url, "203.0.113.50")
    await deaf.send({"action": "announce", "info_hash": ALLOWED, "peer_id": random_id(), "event": "started",
                     "numwant": 0, "offers": []})
    async with aiohttp.ClientSession() as http:
        # Each client alone in the swarm with the deaf peer: every 16 kB offer (the most an SDP may be) is
        # relayed to it, up to each client's budget.
        for i in range(20):
            sender = await connect(http, tracker.url, f"198.18.0.{i + 1}")
            for _ in range(PER_SOCKET):
                await sender.send({"action": "announce", "info_hash": ALLOWED, "peer_id": sender.peer_id,
                                   "numwant": 1, "offers": [{"offer": {"type": "offer", "sdp": "v" * 16000},
                                                             "offer_id": random_id()}]})
            await sender.close()
        assert await deaf.dropped(), "the deaf connection is still open"  # read now: all it was sent, then its end
    deaf.close()


async def test_t6_scrape_is_refused_and_lists_nothing(tracker: LocalTracker) -> None:
    async with connected(tracker.url) as viewer:
        await joined(viewer)
        for scrape in ({"action": "scrape"}, {"action": "scrape", "info_hash": [random_id() for _ in range(2600)]}):
            async with connected(tracker.url) as scraper:
                await scraper.send(scrape)
                code, reason = await scraper.closed() or (None, "")
                assert code == 1008 and reason == "scrape is not served", (code, reason)
                assert not scraper.received


async def test_t7_offers_one_client_can_have_relayed_are_bounded(tracker: LocalTracker) -> None:
    async with connected(tracker.url) as victim, aiohttp.ClientSession() as http:
        await joined(victim)
        sockets = [await connect(http, tracker.url, "203.0.113.99") for _ in range(10)]
        for s in sockets:
            for _ in range(PER_SOCKET + 5):
                if s.closed_with is None:
                    await s.announce(ALLOWED, offers=5, event=None)
        for s in sockets:
            code, reason = await s.closed() or (None, "")
            assert code == 1008 and "too often" in reason, (code, reason)
        # One offer per announce reaches the one viewer in the swarm: the client's budget, no more.
        offers = [m for m in victim.received if "offer" in m]
        assert 0 < len(offers) <= PER_CLIENT, len(offers)
        assert victim.closed_with is None
        await asyncio.gather(*(s.close() for s in sockets))


async def test_only_the_services_variants_are_served_and_nothing_before_it_is_read(tracker_dir: Path) -> None:
    """Fail closed until they are read; variants that go away are still served a while."""
    async with StandInService() as service:
        service.p2p = False
        async with started(tracker_dir, service.url, ready=False,
                           TRACKER_SERVICE_POLL_SECONDS="1") as tracker:
            await until(lambda: any('has no "p2p"' in line for line in tracker.lines), "the log to say so")
            async with connected(tracker.url) as early:
                await early.announce(ALLOWED)
                reply = await early.next(lambda m: True)
                assert reply is not None and "not ready" in reply["failure reason"], reply
            service.p2p = True
            await serving(tracker)
            assert await meet(tracker.url, ALLOWED)
            async with connected(tracker.url) as stranger:  # another stream's swarm, or a variant not listed
                for other in (info_hash("hls-broadcaster-another-stream", "key"), info_hash(SWARM, "key")):
                    await stranger.announce(other)
                    reply = await stranger.next(lambda m: m.get("info_hash") == other)
                    assert reply is not None and "unknown swarm" in reply["failure reason"], reply
            # A new set of variants: served within a poll; the old ones still are (viewers playing them).
            service.master = MASTER_LATER
            later = master_info_hashes(SWARM, MASTER_LATER)[0]
            await until(lambda: sum("tracker: serving swarm" in line for line in tracker.lines) >= 2, "the new variant")
            assert await meet(tracker.url, later)
            assert await meet(tracker.url, ALLOWED)
            await service.__aexit__(None, None, None)  # the service goes away: what it named is kept
            await until(lambda: any("cannot read it" in line and "keeping swarm" in line for line in tracker.lines),
                        "the log to say so")
            assert await meet(tracker.url, ALLOWED)


MASTER_LATER = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=4000000,RESOLUTION=1920x1080,FRAME-RATE=60.000,CODECS="avc1.640028,mp4a.40.2"
0/playlist.m3u8
"""


VENDORED_CORE = Path(__file__).resolve().parent.parent / "viewer" / "p2p-media-loader-core.es.min.js"
# The vendored library's own functions, run by Node: On (a variant's key), Nt (an info hash), Dn (the
# version in the swarm id). An update that changes them fails here: check swarms.mjs and trackers.py again.
_VENDORED_HASHES = r"""
const fs = require('fs')
const src = fs.readFileSync(process.argv[1], 'utf8')
const grab = (start) => { const i = src.indexOf(start); if (i < 0) throw new Error('not found: ' + start)
  return src.slice(i, src.indexOf('\n}\n', i) + 2) }
const bt = (e) => new TextEncoder().encode(e)
const kt = eval('(' + grab('function kt(e) {\n\tlet t = bt(e)') + ')')
const On = eval('(' + grab('function On({') + ')')
const Nt = eval('(' + grab('function Nt(e) {') + ')')
const Dn = /\bDn = "([^"]+)"/.exec(src)[1]
const [swarm, levels] = [process.argv[2], JSON.parse(process.argv[3])]
console.log(JSON.stringify(levels.map((level) => Nt(`${Dn}-${swarm}-main-${On(level)}`))))
"""


def test_the_info_hashes_are_p2p_media_loaders_own() -> None:
    # MASTER's variants as hls.js hands them to P2P Media Loader (processMainManifest).
    levels = [{"bitrate": 1628000, "codecs": "avc1.64001e", "width": 640, "height": 360, "frameRate": "30.000"},
              {"bitrate": 281000, "codecs": "avc1.4d400d", "width": 320, "height": 180, "frameRate": "30.000"}]
    def hashes(of: list[dict[str, object]]) -> object:
        run = [node(), "-e", _VENDORED_HASHES, str(VENDORED_CORE), SWARM, json.dumps(of)]
        return json.loads(subprocess.run(run, capture_output=True, text=True, timeout=30, check=True).stdout)

    assert hashes(levels) == VARIANTS
    # and with a bitrate of 0 nothing else counts; avc1.P.L is written avc1.PPCCLL
    odd = ["BANDWIDTH=0,RESOLUTION=1x1", 'BANDWIDTH=5,CODECS="avc1.66.30,mp4a.40.2",VIDEO-RANGE=pq']
    assert hashes([{"bitrate": 0}, {"bitrate": 5, "codecs": "avc1.66.30", "videoRange": "pq"}]) == [
        info_hash(SWARM, variant_key(line)) for line in odd]


async def capped(http: aiohttp.ClientSession, url: str, addresses: list[str]) -> list[Peer]:
    """A connection from each of `addresses` (30 more than the cap): the cap's held, 30 refused (429)."""
    held, refused = [], 0
    for address in addresses:
        try:
            held.append(await connect(http, url, address))
        except aiohttp.WSServerHandshakeError as err:
            assert err.status == 429, err
            refused += 1
    assert len(held) == CLIENT_CONNECTIONS and refused == 30, (len(held), refused)
    return held


async def answered_every_offer(viewer: Peer, url: str, at_least: int) -> None:
    """`viewer` answers every offer it was sent, as a page does: it is not closed for it, and still meets."""
    offers = [m for m in viewer.received if "offer" in m]
    assert len(offers) >= at_least, len(offers)
    for got in offers:
        await viewer.answer(ALLOWED, got)
    await joined(viewer)  # read after every answer: the tracker has judged them all
    assert viewer.closed_with is None, viewer.closed_with
    assert await reached(viewer, url, ALLOWED)


async def joined(viewer: Peer, infohash: str = ALLOWED) -> None:
    """`viewer` announces and the tracker has taken it (its reply came back)."""
    start = len(viewer.received)
    await viewer.announce(infohash)
    answered = {"interval", "failure reason"}
    reply = await viewer.next(lambda m: m.get("info_hash") == infohash and bool(answered & m.keys()),
                              start=start)
    assert reply is not None and "interval" in reply, (reply, viewer.closed_with)


async def claims(client: Peer, peer_id: str, infohash: str = ALLOWED, timeout: float = MEET_TIMEOUT) -> str | None:
    """`client` announces `peer_id` as its own: the tracker's failure reason, or None if it took it."""
    client.peer_id = peer_id
    start = len(client.received)
    await client.announce(infohash)
    reply = await client.next(lambda m: "failure reason" in m or "interval" in m, timeout=timeout, start=start)
    assert reply is not None, client.closed_with
    return reply.get("failure reason")


async def test_t8_answers_to_offers_whose_sender_left_cost_the_viewer_nothing(tracker: LocalTracker) -> None:
    """Answers to offers whose sender left at once, again and again, are dropped at no cost to the viewers."""
    rounds = PER_SOCKET + 10
    async with connected(tracker.url) as a, connected(tracker.url) as b, aiohttp.ClientSession() as http:
        for viewer in (a, b):
            await joined(viewer)
        for i in range(rounds):
            attacker = await connect(http, tracker.url, f"203.0.113.{i % 10 + 1}")
            await attacker.announce(ALLOWED, offers=5)
            assert await attacker.next(lambda m: "interval" in m)  # sent with its offers, in one turn
            await attacker.close()
        for viewer in (a, b):
            await answered_every_offer(viewer, tracker.url, rounds)
        # Answers to offers never sent go nowhere and cost nothing; a flood of them is only read more slowly.
        async with connected(tracker.url) as liar:
            await joined(liar)
            for _ in range(PER_SOCKET + 5):
                await liar.answer(ALLOWED, {"peer_id": a.peer_id, "offer_id": random_id()})
            await joined(liar)
            assert liar.closed_with is None, liar.closed_with
            await joined(a)
            assert not [m for m in a.received if "answer" in m and m.get("peer_id") == liar.peer_id]


async def test_t9_a_viewers_peer_id_cannot_be_taken_from_another_address(tracker: LocalTracker) -> None:
    """Nor while the viewer is away: it comes back with its id (a page keeps it for life)."""
    home, away = "198.51.100.10", "198.51.100.20"
    async with connected(tracker.url, home) as victim:
        await joined(victim)
        async with connected(tracker.url, away) as attacker:
            assert "another" in (await claims(attacker, victim.peer_id) or "")
            assert attacker.closed_with is None
        assert await reached(victim, tracker.url, ALLOWED)
    # The viewer's connection is gone (kicked, a network change): the attacker tries again...
    async with connected(tracker.url, away) as attacker:
        assert "another" in (await claims(attacker, victim.peer_id) or "")
        # ...and the viewer comes back with its id, from its address: in, and meeting.
        async with connected(tracker.url, home) as back:
            back.peer_id = victim.peer_id
            await joined(back)
            assert back.closed_with is None and await reached(back, tracker.url, ALLOWED)
            # Another connection from its own address while it is on: refused too (T9b).
            async with connected(tracker.url, home) as again:
                assert "another" in (await claims(again, victim.peer_id) or "")
                assert back.closed_with is None and await reached(back, tracker.url, ALLOWED)


async def test_e1_a_closing_connection_removes_only_its_own_peers(tracker: LocalTracker) -> None:
    home = "198.51.100.30"
    async with connected(tracker.url, home) as victim:
        await joined(victim)
        async with connected(tracker.url, home) as attacker:
            own = attacker.peer_id
            assert "another" in (await claims(attacker, victim.peer_id, VARIANTS[1]) or "")
            attacker.peer_id = own
            await joined(attacker, ALLOWED)
        for _ in range(5):
            assert await reached(victim, tracker.url, ALLOWED)


async def test_i1_ipv6_clients_count_by_their_48(tracker: LocalTracker) -> None:
    """One /48 (what a free tunnel broker hands out) is one client; another /48 is another."""
    async with aiohttp.ClientSession() as http:
        addresses = [f"2001:db8:7:{i:x}::1" for i in range(CLIENT_CONNECTIONS + 30)]
        held = await capped(http, tracker.url, addresses)
        async with connected(tracker.url, "2001:db8:8:1::1") as other:
            await joined(other)
            assert await reached(other, tracker.url, ALLOWED)
        await asyncio.gather(*(p.close() for p in held))


async def test_i1_sockets_that_never_upgrade_cannot_lock_viewers_out(tracker: LocalTracker) -> None:
    """More silent sockets from loopback than slots: closed within seconds, not at Node's header timeout."""
    count = int(LIMITS["TRACKER_MAX_CONNECTIONS"]) + 100
    host, port = tracker.url.removeprefix("ws://").split(":")
    silent = [await asyncio.open_connection(host, int(port)) for _ in range(count)]
    try:
        assert await meet(tracker.url, ALLOWED)

        async def ended(reader: asyncio.StreamReader) -> bool:
            try:
                async with asyncio.timeout(10):
                    return await reader.read() == b""
            except (TimeoutError, ConnectionError):
                return False

        assert all(await asyncio.gather(*(ended(r) for r, _ in silent)))
    finally:
        for _, writer in silent:
            writer.close()


async def test_t8b_a_burst_of_offers_costs_the_viewers_who_answer_them_nothing(tracker: LocalTracker) -> None:
    """Each of two viewers answers over a hundred offers from one address's whole budget, as pages do."""
    attacker_ip = "203.0.113.77"
    async with connected(tracker.url) as a, connected(tracker.url) as b, aiohttp.ClientSession() as http:
        for viewer in (a, b):
            await joined(viewer)
        sent = 0
        while sent + PER_SOCKET <= PER_CLIENT:  # each new connection costs the address one token too
            attacker = await connect(http, tracker.url, attacker_ip)
            for _ in range(PER_SOCKET - 1):
                await attacker.announce(ALLOWED, offers=5, event=None)
            sent += PER_SOCKET
            assert await attacker.next(lambda m: len([x for x in attacker.received if "interval" in x])
                                       >= PER_SOCKET - 1) is not None, attacker.closed_with
            await attacker.close()
        for viewer in (a, b):
            await answered_every_offer(viewer, tracker.url, 101)


async def test_t10_a_neighbour_in_the_same_48_cannot_spend_the_viewers_announce_budget(
        tracker: LocalTracker) -> None:
    async with contextlib.AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        viewers = [await stack.enter_async_context(connected(tracker.url, f"2001:db8:a:{i}::1")) for i in range(1, 6)]
        for viewer in viewers:
            await joined(viewer)
        refused = ""
        for _ in range(2 * PER_CLIENT // PER_SOCKET):  # its budget is spent well before (refill included)
            try:
                neighbour = await connect(http, tracker.url, "2001:db8:a:ff::1")
            except aiohttp.WSServerHandshakeError as err:
                refused = f"HTTP {err.status}"
                break
            for _ in range(PER_SOCKET):
                start = len(neighbour.received)
                await neighbour.announce(ALLOWED, event=None)
                if await neighbour.next(lambda m: "interval" in m, start=start) is None:
                    break
            code, reason = neighbour.closed_with or (None, "")
            await neighbour.close()
            if "this client" in reason:
                refused = reason
                break
        assert refused, "the neighbour was never refused"
        for viewer in viewers:
            await joined(viewer)
            assert viewer.closed_with is None, viewer.closed_with
        assert await reached(viewers[0], tracker.url, ALLOWED)


async def test_t9b_a_viewers_peer_id_cannot_be_taken_from_its_own_address_while_it_is_on(
        tracker: LocalTracker) -> None:
    """The id is the connection's that announced it first, whatever the address; the viewer keeps meeting."""
    async with connected(tracker.url, "2001:db8:b:1::10") as victim:
        await joined(victim)
        for place in ("2001:db8:b:1::10", "2001:db8:b:1::99", "2001:db8:b:2::1"):
            async with connected(tracker.url, place) as attacker:
                assert "another" in (await claims(attacker, victim.peer_id) or ""), place
                for _ in range(3):
                    assert await reached(victim, tracker.url, ALLOWED), place
                assert not [m for m in attacker.received if "offer" in m], place


async def test_t9b_a_viewer_back_on_a_new_connection_takes_its_id_from_the_one_that_lingers(
        tracker: LocalTracker) -> None:
    """After the old one fails a ping; from another address it would not (T9)."""
    home = "198.51.100.40"
    old = await RawSocket.open(tracker.url, home)
    peer_id = random_id()
    await old.send({"action": "announce", "info_hash": ALLOWED, "peer_id": peer_id, "event": "started",
                    "numwant": 0, "offers": []})
    try:
        async with connected(tracker.url, "198.51.100.41") as stranger:
            assert "another" in (await claims(stranger, peer_id, timeout=20) or "")
        async with connected(tracker.url, home) as back:
            assert await claims(back, peer_id, timeout=20) is None
            assert await reached(back, tracker.url, ALLOWED)
    finally:
        old.close()
