"""What tests/test_steering_browser.py reads of its service and its pages: /health and /metrics, each page's
fetches and reloads (steered_players.Watched), and a stall's share that is the service's, as the rig saw
it from its own loop (a starved Chromium and test loop see an answer seconds after it was sent)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import datetime
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.support.counting_proxy import CountingProxy
from tests.support.gates import BucketGates
from tests.support.observe import health as read_health
from tests.support.scrape import scraped
from tests.support.service_process import ServiceProcess
from tests.support.steered_players import Fetched, Players, Watched
from tests.support.waiting import until


async def health(service: ServiceProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        return (await read_health(session, service.url))[1]


async def metric(service: ServiceProcess, name: str) -> dict[str, float]:
    """A metric's samples by their labels' values joined by ','."""
    async with aiohttp.ClientSession() as session:
        samples = await scraped(session, service.url)
    return {",".join(v for _, v in labels): value for (sample, labels), value in samples.items() if sample == name}


async def until_played(watched: Watched, seconds: float, timeout: float = 60) -> None:
    start = await watched.played()

    async def played_on() -> bool:
        return await watched.played() >= start + seconds

    await until(played_on, f"{watched.name} playing {seconds:g} s more", timeout, every=0.25,
                detail=lambda: watched.fetched[-3:])


async def highest_bandwidth(service: ServiceProcess) -> int:
    """The highest BANDWIDTH the multivariant playlist announces (bits a second): one stream."""
    async with aiohttp.ClientSession() as session, session.get(f"{service.url}/live/master.m3u8") as response:
        text = await response.text()
    return max(int(m[1]) for m in re.finditer(r"[:,]BANDWIDTH=(\d+)", text))


async def until_pathway(service: ServiceProcess, pathway: str, timeout: float) -> float:
    """When /health says players are steered to `pathway` (time.monotonic())."""

    async def there() -> bool:
        return (await health(service)).get("pathway") == pathway

    await until(there, f"/health saying players are steered to the {pathway} pathway", timeout, every=0.1,
                detail=lambda: [line for line in service.lines if "pathway" in line][-3:])
    return time.monotonic()


def last_back(service: ServiceProcess, since_line: int, back_at: float) -> float:
    """`back_at`, or when the service last steered back when it steered away again after its line
    `since_line` (a probe unanswered in 2 s on a loaded machine: its own evidence, which players rightly
    follow): what the VM sent until then was steered, and a player is judged from then on."""
    lines = service.lines[since_line:]
    backs = [line for line in lines if "steering players back to the bucket" in line]
    if not any("steering players to the" in line for line in lines) or not backs:
        return back_at
    wall = datetime.strptime(backs[-1][:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # logging's local asctime
    return max(back_at, wall - (time.time() - time.monotonic()))


def refused(watched: Watched, since: float) -> list[tuple[float, int, str]]:
    """The answers of 400 and above a page got since `since`, but the closed gate's 503s."""
    return [(round(at - since, 1), status, url.split("/", 3)[-1]) for at, status, url in watched.refused
            if at >= since - 4 and not (status == 503 and "127.0.0.2" in url)]


def timeline(watched: Watched, since: float) -> list[tuple[float, str, int, str]]:
    """What a page fetched since `since`: (seconds after it, pathway, status, segment)."""
    return [(round(f.at - since, 1), f.pathway, f.status, f.name) for f in watched.segments(since=since - 4)]


def steering_manifests(watched: Watched) -> list[float]:
    """When each steering manifest the page asked for was answered."""
    return [at for at, _status, url in watched.playlists if url.split("?")[0].endswith(".json")]


def told_back(watched: Watched, back_at: float) -> float:
    """When a page was told the bucket serves again, by its own requests (a loaded browser's reloads come
    late): its first steering manifest answered after `back_at`, or its first segment request the VM
    redirected to the bucket; the viewer page no sooner than LEAVE_MS (10 s) after its last failed bucket
    fetch, as viewer/src/player.js keeps the VM first that long."""
    told = [at for at in steering_manifests(watched) if at >= back_at]
    told += [at for at, _url in watched.redirected if at >= back_at]
    when = min(told, default=back_at)
    if watched.name == "viewer":
        failed = [at for at, status, url in watched.refused if "127.0.0.2" in url]
        when = max(when, max(failed, default=0.0) + 10)
    return max(when, back_at)


def served_at(wire: CountingProxy, gates: BucketGates, address: str | None, fetched: Fetched) -> float:
    """When the segment a page got left the server, as the rig saw it from its own loop (the wire in front
    of the VM, the gate in front of the bucket; the page's own record comes late on a starved machine):
    the latest such answer no later than the page's record."""
    tail = f"/{fetched.variant}/{fetched.name}"
    if fetched.pathway == "vm":
        times = [a.at for a in list(wire.answers)
                 if a.address == address and a.status == 200 and a.path.endswith(tail)]
    else:
        times = [r.ended for r in list(gates.viewers.requests)
                 if r.ended is not None and r.status == 200 and r.path.split("?")[0].endswith(tail)]
    return max((t for t in times if t <= fetched.at), default=fetched.at)


def charged(players: Players, served: Callable[[Fetched], float], watched: Watched,
            stall: dict[str, Any]) -> float:
    """Seconds of a stall the service is answerable for: from when the segment it waited for existed (no
    server can list what the source has not made), or from its start, until the segment left the server
    for the page (`served`), or its end. What a page does with a segment it has is its machine's."""
    end = stall["start"] + stall["ms"] / 1000
    waited = watched.waited_for(stall)
    if waited is None:
        return float(end - stall["start"])
    made = players.finished_at(waited)
    since = stall["start"] if made is None else max(stall["start"], made)
    return float(max(0.0, min(end, served(waited)) - since))


def source_late(players: Players, served: Callable[[Fetched], float], watched: Watched,
                stall: dict[str, Any]) -> str:
    waited = watched.waited_for(stall)
    if waited is None:
        return "no segment came while it stood still"
    made = players.finished_at(waited)
    end = stall["start"] + stall["ms"] / 1000
    when = "never finished" if made is None else f"finished {made - stall['start']:+.1f}s after it began"
    return (f"waited for {waited.pathway} {waited.variant}/{waited.name} ({when}, served "
            f"{served(waited) - stall['start']:+.1f}s, got {waited.at - stall['start']:+.1f}s); "
            f"charged {charged(players, served, watched, stall):.1f}s of {end - stall['start']:.1f}s")


def asked(wire: CountingProxy, watched: Watched, stalls: list[dict[str, Any]], since: float) -> str:
    """For a stall's message: what the page asked for around each stall (seconds after `since`), and what
    went through the proxy in front of the service then (came, answered, path), to tell a request the
    page never made from one the service was slow to answer."""
    out = []
    for s in stalls:
        start, end = s["start"] - 3, s["start"] + s["ms"] / 1000
        made = [(round(at - since, 1), url.split("/", 3)[-1]) for at, url in watched.requests if start <= at <= end]
        passed = [(round(came - since, 1), round(answered - since, 1), path, status)
                  for came, answered, path, status in wire.trace
                  if answered >= start and came <= end and not path.endswith(".ts")]
        out.append(f"asked {made}; through the proxy {passed}")
    return "; ".join(out)


def reloads(watched: Watched, since: float, before: float = 4) -> list[tuple[float, int, str]]:
    """The playlists and steering manifests a page was answered from `before` seconds ahead of `since`
    on: (seconds after `since`, status, path)."""
    return [(round(at - since, 1), status, url.split("/", 3)[-1]) for at, status, url in watched.playlists
            if at >= since - before]


def playing(watched: Watched, since: float) -> str:
    """For a failure's message: what a page was refused, fetched and reloaded since `since` (seconds after
    it), and the warnings and errors its console showed."""
    manifests = [round(at - since, 1) for at in steering_manifests(watched)]
    return (f"steering manifests answered at {manifests[-8:]} (of {len(manifests)}); "
            f"refused {refused(watched, since)}; timeline {timeline(watched, since)}; "
            f"playlists {reloads(watched, since)}; console {watched.console[-12:]}")


def from_the_vm(watched: Watched, since: float) -> list[Any]:
    """The VM's segment answers (200) a page got since `since`, but those its browser's cache gave it
    (the same immutable URL fetched again: the VM sent nothing)."""
    cached = list(watched.cached)
    out = []
    for f in watched.segments(since=since, pathway="vm"):
        if f.status != 200:
            continue
        if f.url in cached:
            cached.remove(f.url)
            continue
        out.append(f)
    return out


def uploads(gates: BucketGates, watched: Watched, back_at: float) -> list[tuple[float, str, str, list[tuple[float, int | None]]]]:
    """For a failure's message: each VM answer a page got since `back_at` (seconds after it), and its
    segment's uploads as the service's gate saw them (seconds after `back_at` each began, and the status)."""
    out = []
    for f in watched.segments(since=back_at, pathway="vm"):
        puts = [(round(r.started - back_at, 1), r.status) for r in gates.service.requests
                if r.method == "PUT" and r.path.split("?")[0].endswith(f"/{f.variant}/{f.name}")]
        out.append((round(f.at - back_at, 1), f"{f.variant}/{f.name}", str(f.status), puts))
    return out


async def reported_on(service: ServiceProcess, pathway: str, viewer: bool) -> bool:
    """Whether the viewer page's last playback report said it plays `pathway` (the other players send
    none; `viewer`: the page plays): the service's hls_broadcaster_viewers_pathway, read as Prometheus
    scrapes it."""
    if not viewer:
        return True
    pages = await metric(service, "hls_broadcaster_viewers_pathway")
    return pages.get(pathway, 0.0) >= 1 and sum(pages.values()) == 1


async def report_words(service: ServiceProcess) -> tuple[float, float]:
    """(Hb-Pathway words heard naming failed fetches, words in them not understood) so far."""
    heard = await metric(service, "hls_broadcaster_pathway_reports_total")
    ignored = await metric(service, "hls_broadcaster_pathway_report_words_ignored_total")
    return heard.get("some", 0.0), ignored.get("", 0.0)


async def tell_the_outage(service: ServiceProcess, gates: BucketGates, first_line: int) -> None:
    """For a failed outage: the service's own account of it (its warnings and steering lines since
    `first_line`), what the bucket's side answered in error lately and who answered (the gate closed, or
    the S3 server itself through an open gate), and /health."""
    said = [line for line in service.lines[first_line:]
            if any(word in line for word in ("steering", "probe", "pathway", "WARNING", "ERROR"))]
    print("--- the service during this outage:", *said[-40:], sep="\n")
    now = time.monotonic()
    print("--- the gates' last errors (seconds ago, side, mode, status, outcome, path):", [
        (round(now - r.started, 1), side, r.mode, r.status, r.outcome, r.path.split("?")[0][-40:])
        for side, gate in (("service", gates.service), ("viewers", gates.viewers))
        for r in list(gate.requests)[-400:]
        if (r.status or 0) >= 500 or r.outcome not in ("forwarded", "answered")
    ][-20:])
    with contextlib.suppress(Exception):
        print("--- /health:", json.dumps(await health(service)))
