"""The service's own look at each bucket's public URL (writes can work while reads fail): a GET of the
newest segment's first byte where viewers fetch it, every PROBE_EVERY seconds while a segment was listed
within three target durations and players play, and again after PROBE_AGAIN once one failed. A failed
probe asks the bucket's API at once (`check_writes`). The policy is evaluated on what can change its
decision (an event), twice a second while anything is amiss, else every QUIET_EVERY at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .. import __version__
from ..playlist import hls
from ..source.tasks import cancelled
from .first_byte import FirstByte
from .policy import PROBE_AGAIN as PROBE_AGAIN  # the soonest a probe follows the last
from .policy import SteeringPolicy

log = logging.getLogger(__name__)

# A probe's fetch of a URL's first byte within a timeout: (answered 200/206, what it answered or why not).
Fetch = Callable[[str, float], Awaitable[tuple[bool, str]]]
Heard = Callable[[bool, str], None]


class Judge(Protocol):
    """What a probe reports to: the steering policy, or without steering status/public_reads.py."""

    def target_duration(self) -> int | None: ...

    def probed(self, pathway: str, ok: bool, detail: str = "") -> bool: ...

    def probe_wanted(self, pathway: str) -> bool: ...

PROBE_EVERY = 1.0
# The probe says what it is, so logs (and the test rigs that count viewers' GETs) tell it from viewers.
PROBE_HEADERS = {"User-Agent": f"hls-broadcaster/{__version__} (steering probe)"}
EVALUATE_EVERY = 0.5  # seconds between the policy's readings of its signals while anything is amiss
QUIET_EVERY = 30.0  # ... while calm or nothing is live, and of the probes' while unwatched (events wake them)
LOOK_SOONEST = 0.05  # the shortest wait for the clock to make a calm policy decide (policy.calm_for)
WATCHED_TARGETS = 4  # target durations since players' last request that they still count as playing
WATCHED_LEAST = 10.0  # seconds, whatever the target duration (a blocking request is held three targets)


@dataclass(frozen=True)
class Probe:
    """One bucket pathway's probe: its newest segment (URL, when listed), and its API's check on failure."""

    newest: Callable[[], tuple[str, float] | None]
    check_writes: Callable[[], Awaitable[None]] | None = None


@dataclass(slots=True)
class Watched:
    """Whether players read the stream lately: `requests()` moved within WATCHED_TARGETS target durations."""

    requests: Callable[[], int]
    target: Callable[[], int | None]
    clock: Callable[[], float] = time.monotonic
    _count: int = field(default=-1, init=False)
    _at: float = field(default=-math.inf, init=False)

    def __call__(self) -> bool:
        now, count = self.clock(), self.requests()
        if count != self._count:
            self._count, self._at = count, now
        return now - self._at <= max(WATCHED_LEAST, WATCHED_TARGETS * (self.target() or 0))


class SteeringLoop:
    """Runs the policy: evaluates it when something may have changed, and probes each bucket's public URL."""

    def __init__(self, policy: SteeringPolicy, probes: Mapping[str, Probe], *, probe: bool = True,
                 on_change: Callable[[tuple[str, ...]], None] = lambda priority: None,
                 watched: Callable[[], bool] = lambda: True, told_late: bool = False,
                 heard: Callable[[str, bool, str], None] = lambda pathway, ok, detail: None) -> None:
        """`on_change(priority)`: told each new priority, and each change of policy.bucket_serves."""
        self._heard = heard
        self._policy = policy
        self._probes = dict(probes)
        self._checking: dict[str, asyncio.Task[None]] = {}
        self._on_change = on_change
        self._watched = watched
        self._told_late = told_late
        self._probe = probe
        self._clock = time.monotonic
        self._tasks: list[asyncio.Task[None]] = []
        self._probe_now = {pathway: Wake() for pathway in self._probes}  # a probe before its turn
        self._look = Wake()  # evaluate at once
        self._clients: dict[str, FirstByte] = {}  # each pathway's probe client (its kept connection)
        self._serves = policy.bucket_serves()
        self._quiet = False  # nothing live at the last evaluation: the loops look every QUIET_EVERY
        self._unwatched = False  # a probe found nobody playing: it waits for a request (seen)
        self._first_failed = False  # the first bucket's last probe failed
        self._first_probed = asyncio.Event()  # set when the first bucket's probe answers, then replaced

    def wake(self) -> None:
        """Something was listed: if the loops were quiet, they look now."""
        if self._quiet:
            self._quiet = False
            self._look.set()
            for event in self._probe_now.values():
                event.set()

    def seen(self) -> None:
        """A player's request: a probe that waits because nobody played looks now (a flag read)."""
        if self._unwatched:
            self._unwatched = False
            for event in self._probe_now.values():
                event.set()

    def _asleep(self) -> None:
        self._unwatched = True

    def look(self) -> None:
        """Evaluate now, not at the next turn: an upload to a bucket failed (Uploader.on_failure)."""
        self._look.set()

    def report(self, viewer: str, pathway: str | None, failed: Mapping[str, int], client: str | None = None) -> None:
        """A page's report, told to the policy; a bucket it says failed is probed now if the policy wants."""
        self._policy.report(viewer, pathway, failed, client)
        for p in failed:
            event = self._probe_now.get(p)
            if event is not None and self._policy.probe_wanted(p):
                event.set()

    def doubted(self) -> bool:
        """The VM still redirects to the first bucket, but its last probe failed (the next one will tell)."""
        return self._first_failed and self._policy.bucket_serves()

    async def next_probe(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._first_probed.wait()

    def _next_look(self) -> float:
        if self._quiet:
            return QUIET_EVERY
        calm = self._policy.calm_for(self._told_late)
        return EVALUATE_EVERY if calm is None else min(max(calm, LOOK_SOONEST), QUIET_EVERY)

    def _nothing_live(self) -> bool:
        """No segment listed within three target durations, no upload waiting, no bucket failing."""
        target = self._policy.target_duration()
        now = self._clock()
        return self._policy.settled() and all(
            (newest := probe.newest()) is None or target is None or now - newest[1] > 3 * target
            for probe in self._probes.values())

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._evaluating(), name="steering"))
        if self._probe and self._probes:
            for pathway in self._probes:
                self._clients[pathway] = FirstByte(PROBE_HEADERS)
                self._tasks.append(asyncio.create_task(self._probing(pathway), name=f"steering-probe-{pathway}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        tasks += self._checking.values()
        self._checking.clear()
        await cancelled(*tasks)
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()

    async def _evaluating(self) -> None:
        while True:
            wait = EVALUATE_EVERY
            try:
                changed = self._policy.evaluate()
                serves = self._policy.bucket_serves()  # the VM's pathway redirects, or serves itself
                if changed or serves != self._serves:
                    self._serves = serves
                    self._on_change(self._policy.priority)
                for pathway, event in self._probe_now.items():
                    if self._policy.probe_wanted(pathway):
                        event.set()
                self._quiet = self._nothing_live()
                wait = self._next_look()
            except Exception:  # noqa: BLE001 (a bug here must not stop steering for good: logged, next turn)
                log.exception("steering: evaluating the pathways failed")
            await self._look.wait(wait)  # or at once on an event
            self._look.clear()

    async def _probing(self, pathway: str) -> None:
        await probe_pathway(self._policy, pathway, self._probes[pathway].newest, self._clients[pathway],
                            probed=lambda ok, was: self._after_probe(pathway, ok, was),
                            pace=Pace(quiet=lambda: self._quiet, watched=self._watched, asleep=self._asleep,
                                      now=self._probe_now[pathway], clock=self._clock),
                            heard=lambda ok, detail: self._heard(pathway, ok, detail))

    def _after_probe(self, pathway: str, ok: bool, failed_before: bool) -> None:
        if pathway == hls.BUCKET_PATHWAY:
            self._first_failed = not ok
            probed, self._first_probed = self._first_probed, asyncio.Event()
            probed.set()
        if not ok or failed_before:
            self._look.set()
        check = self._probes[pathway].check_writes
        if ok or check is None or self._policy.refused(pathway):
            return
        running = self._checking.get(pathway)
        if running is None or running.done():
            self._checking[pathway] = asyncio.create_task(self._writes_checked(check), name="steering-check")

    async def _writes_checked(self, check: Callable[[], Awaitable[None]]) -> None:
        try:
            await check()
        except Exception:  # noqa: BLE001 (logged; the uploads still tell)
            log.exception("steering: asking the bucket's API failed")
        self._look.set()  # its answer evaluated at once


class Wake:
    """What a loop waits on between its turns: set() ends the wait at once (and the next, until clear()).
    A future and a timer: an expiring asyncio.timeout cancels the task, and 3.11's wait_for loses cancels."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        if self._waiter is not None:
            _resolve(self._waiter)

    def clear(self) -> None:
        self._set = False

    async def wait(self, seconds: float) -> None:
        if self._set:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(seconds, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(eq=False)
class Newest:
    """The newest segment listed (the Release's ListedHook); `woken`: told each listing."""

    clock: Callable[[], float] = time.monotonic
    newest: tuple[str, float] | None = None
    woken: Callable[[], None] = lambda: None

    def listed(self, variant: int, sequence: int, segment: object, url: str) -> None:
        self.newest = (url, self.clock())
        self.woken()

    def __call__(self) -> tuple[str, float] | None:
        return self.newest


@dataclass(frozen=True)
class Pace:
    """When a probe goes: nothing live (`quiet`), nobody playing (`watched`), `now` cuts a wait short."""

    quiet: Callable[[], bool] = lambda: False
    watched: Callable[[], bool] = lambda: True
    asleep: Callable[[], None] = lambda: None
    again: float = PROBE_AGAIN
    now: Wake | None = None
    clock: Callable[[], float] = time.monotonic


async def probe_pathway(policy: Judge, pathway: str, newest: Callable[[], tuple[str, float] | None],
                        fetch: Fetch, *, probed: Callable[[bool, bool], None] = lambda ok, was: None,
                        pace: Pace = Pace(), heard: Heard = lambda ok, detail: None) -> None:
    """Probe `pathway`'s newest segment for ever, telling the policy each outcome, then `probed`."""
    ok = True
    sleeping = False  # the last turn found nobody playing
    now, clock = pace.now, pace.clock
    while True:
        wait = PROBE_EVERY if ok else pace.again
        if ok and (sleeping or pace.quiet()):
            wait = QUIET_EVERY
        if now is None:
            await asyncio.sleep(wait)
        else:
            await now.wait(wait)
            now.clear()
        latest = newest()
        target = policy.target_duration() or 3
        if latest is None or clock() - latest[1] > 3 * target:
            ok = True
            probed(True, policy.probed(pathway, True))  # nothing live to look at: no evidence either way
            continue
        sleeping = False
        if ok and not pace.watched() and not policy.probe_wanted(pathway):
            sleeping = True  # nobody to steer: no GET (the last answered); a request wakes it
            pace.asleep()
            continue
        ok, detail = await fetch(latest[0], float(max(2, target)))
        heard(ok, detail)
        if now is not None:
            now.clear()  # what asked for a probe while this one was on its way is answered by it
        probed(ok, policy.probed(pathway, ok, detail))

