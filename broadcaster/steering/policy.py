"""Which pathway players should use, best first: the steering manifest's PATHWAY-PRIORITY (7.1).
Normally PATHWAYS' order. A bucket pathway is put behind the others when the service's own evidence says
it fails (docs/steering.md#how-it-works): `uploads` (an upload waited past a target duration while
failing, or SLOW_TARGETS of them however it goes), `public_url` (the probe failed twice), `down` (an
upload refused while the probe fails). It comes back at the first evaluation where none holds.
A page's report of failed fetches is a claim: it moves nobody but, at most, the one who made it.
Pure but for the clock and the signals passed in: evaluate() is called by probe.SteeringLoop and tests.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..playlist import hls
from ..playlist.pathway import Pathway
from ..playlist.steering import render_steering
from ..publish.pathways import PathwayPlan

log = logging.getLogger(__name__)

NORMAL = "normal"
UPLOADS, PUBLIC_URL, DOWN = "uploads", "public_url", "down"
REASONS = (NORMAL, UPLOADS, PUBLIC_URL, DOWN)
MIN_UPLOAD_WAIT = 2.0  # seconds an upload waits before it says the bucket fails, whatever the target
SLOW_TARGETS = 3  # target durations an upload waits, its attempts not failing, before the bucket counts as failing
PROBE_FAILURES = 2  # probes failing in a row that call a pathway failing (one lost request is not an outage)
PROBE_AGAIN = 0.5  # seconds: the soonest a probe follows the last (after a failure, or asked by reports)
# Seconds after a page's report of failed fetches during which the VM may send segment bytes to its
# address rather than redirect it: the page keeps a failing bucket behind for 10 s (pathways.js LEAVE_MS).
REPORTED_FOR = 10.0
# Addresses remembered at once (about 150 bytes each): as many as the viewer count holds pages.
MAX_FAILING_CLIENTS = 50_000
# A StoreError's reasons that say only that the bucket was slow to answer (store.py): no refusal.
SLOW_REASONS = frozenset({"Timeout", "ReadTimeoutError", "ConnectTimeoutError", "ServerTimeoutError"})
_DESCRIBED = {
    DOWN: "uploads to it are refused ({refused}) and its public URL does not answer the service ({detail})",
    UPLOADS: "uploads to it have waited {behind:.0f}s, more than a target duration ({target}s)",
    PUBLIC_URL: "its public URL does not answer the service ({detail})"}


@dataclass(frozen=True, slots=True)
class BucketSignals:
    """What the policy reads of one bucket pathway."""

    behind: Callable[[], float]  # seconds the oldest upload to it not done yet has waited; 0: none waits
    failing: Callable[[], bool] = lambda: True  # its last upload attempt failed (the uploader's storage_ok)
    # Why its last upload attempt was refused (refusal()), None when it did not fail or only timed out.
    refused: Callable[[], str | None] = lambda: None

    @classmethod
    def of_uploads(cls, behind: Callable[[], float],
                   outcome: Callable[[], tuple[bool | None, str | None]]) -> BucketSignals:
        """A bucket's signals read from its uploads: `outcome()` is its last attempt's (ok or None, why)."""
        return cls(behind=behind, failing=lambda: outcome()[0] is False, refused=lambda: refusal(*outcome()))


def refusal(ok: bool | None, reason: str | None) -> str | None:
    if ok is not False or reason in SLOW_REASONS:
        return None
    return reason or "unknown"


@dataclass(slots=True)
class _Report:
    at: float
    pathway: str | None


@dataclass(slots=True)
class _Bucket:
    signals: BucketSignals
    reason: str | None = None  # why it is put behind now, None while it serves
    detail: str = ""
    probe_failures: int = 0
    probe_detail: str = ""
    refused_at: float | None = None  # since when its uploads are refused (seen by evaluate), None: they are not
    probed_at: float = -1e18  # its last probe's outcome
    reported_at: float = -1e18  # the last report of a failed fetch on it (a claim: it only asks for a probe)


class SteeringPolicy:
    """The pathway priority and why; `interval`: the viewer pages' report interval."""

    def __init__(self, pathways: tuple[str, ...], buckets: Mapping[str, BucketSignals],
                 target_duration: Callable[[], int | None], *, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not pathways or pathways[0] != hls.BUCKET_PATHWAY or len(set(pathways)) != len(pathways):
            raise ValueError(f"pathways start with the bucket's, each once: {pathways}")
        if hls.BUCKET_PATHWAY not in buckets:
            raise ValueError("the bucket pathway's signals are needed")
        self.pathways = pathways
        self.target_duration = target_duration
        self.interval = interval
        self.clock = clock
        self.switches: dict[tuple[str, str], int] = {}  # (first pathway, reason) -> times it became first
        self._state = {p: _Bucket(s) for p, s in buckets.items() if p in pathways}
        self._reports: dict[str, _Report] = {}  # viewer page id -> its last report
        # Addresses whose pages reported failed fetches on a bucket, oldest report first -> when.
        self._failing_clients: OrderedDict[str, float] = OrderedDict()
        self.priority = self._ordered()
        self._serves = self._judged_serving()  # bucket_serves, kept as what it reads changes
        self.reason = NORMAL
        self._first_since = clock()
        self._back_at = -1e18  # when players were last steered back to the bucket
        self._manifest: tuple[tuple[str, ...], int | None, bytes] | None = None

    def report(self, viewer: str, pathway: str | None, failed: Mapping[str, int],
               client: str | None = None) -> None:
        """A page's report: the pathway it plays and its failed fetches by pathway since its last. A claim."""
        now = self.clock()
        counts = {p: n for p, n in failed.items() if n > 0 and p in self._state}
        self._reports[viewer] = _Report(now, pathway)
        for p in counts:
            self._state[p].reported_at = now
        # A failed fetch reported now may be a failure only that client sees: the bucket is first and not
        # failing on the service's own evidence, and was a report interval ago too.
        if (counts and client is not None and self.priority[0] == hls.BUCKET_PATHWAY
                and not self.failing(hls.BUCKET_PATHWAY) and now - self._back_at >= self.interval):
            clients = self._failing_clients
            clients.pop(client, None)
            clients[client] = now
            self._forget_clients(now)

    def client_failing(self, client: str | None) -> bool:
        """Whether a page at `client` reported failed fetches within REPORTED_FOR seconds."""
        at = None if client is None else self._failing_clients.get(client)
        return at is not None and self.clock() - at < REPORTED_FOR

    def probed(self, pathway: str, ok: bool, detail: str = "") -> bool:
        """The service's own probe of `pathway`'s public URL; returns whether the probe before it failed."""
        state = self._state.get(pathway)
        if state is None:
            return False
        failed_before = state.probe_failures > 0
        state.probe_failures = 0 if ok else state.probe_failures + 1
        if state.probe_failures == 1 and state.signals.refused() is None:  # refused too: `down` tells it
            log.info("steering: the %s pathway's probe failed (%s); one failure alone moves nobody",
                     pathway, detail or "no answer")
        self._serves = self._judged_serving()
        state.probe_detail, state.probed_at = detail, self.clock()
        return failed_before

    def failing(self, pathway: str) -> bool:
        """Whether players are sent away from `pathway` because it fails (not as another is first)."""
        state = self._state.get(pathway)
        return state is not None and state.reason is not None

    def refused(self, pathway: str) -> bool:
        state = self._state.get(pathway)
        return state is not None and state.signals.refused() is not None

    def probe_wanted(self, pathway: str) -> bool:
        """Whether `pathway`'s probe should go now: uploads refused, or a page's report since the last."""
        state = self._state.get(pathway)
        if state is None:
            return False
        if state.refused_at is not None and state.probed_at < state.refused_at:
            return True
        return state.reported_at > state.probed_at and self.clock() - state.probed_at >= PROBE_AGAIN

    @property
    def first(self) -> str:
        return self.priority[0]

    def ttl(self) -> int:
        return hls.steering_ttl(self.target_duration() or 3)

    def manifest(self) -> bytes:
        """The steering manifest, rendered once per change of priority or TTL."""
        target = self.target_duration()
        cached = self._manifest
        if cached is None or cached[0] is not self.priority or cached[1] != target:
            body = render_steering(self.priority, self.ttl(), hls.STEERING_MANIFEST_NAME)
            self._manifest = cached = (self.priority, target, body)
        return cached[2]

    def late_after(self) -> float | None:
        """Seconds an upload waits before its bucket reads as lagging (None before the first playlist)."""
        target = self.target_duration()
        return None if target is None else max(target, MIN_UPLOAD_WAIT)

    def calm_for(self, told_late: bool = False) -> float | None:
        """Seconds until the clock alone could change an evaluation (inf: told_late); None if amiss."""
        wait = self.late_after()
        if wait is None:
            return None
        soonest = math.inf if told_late else wait
        for state in self._state.values():
            behind = state.signals.behind()
            if (state.reason is not None or state.refused_at is not None or state.probe_failures
                    or state.signals.refused() is not None or behind > wait):
                return None
            if behind > 0 and not told_late:
                soonest = min(soonest, wait - behind)
        return soonest

    def settled(self) -> bool:
        """No bucket fails, and no upload to any waits."""
        return all(state.reason is None and state.signals.behind() <= 0 for state in self._state.values())

    def bucket_serves(self) -> bool:
        """Whether the VM redirects players to the bucket: it is first and its probe has not failed."""
        return self._serves

    def plan(self, pathways: Sequence[Pathway]) -> PathwayPlan:
        """What it tells the publisher: what a failing bucket lacks, listed at the pathways before it."""

        def fallbacks(pathway: str) -> Sequence[str]:
            priority = self.priority
            if pathway not in priority or priority[0] == pathway or not self.failing(pathway):
                return ()
            return priority[:priority.index(pathway)]

        return PathwayPlan(tuple(pathways), fallbacks, self.bucket_serves)

    def _judged_serving(self) -> bool:
        bucket = self._state[hls.BUCKET_PATHWAY]
        return self.priority[0] == hls.BUCKET_PATHWAY and bucket.probe_failures < PROBE_FAILURES

    def health_reason(self) -> str | None:
        if self.first == hls.BUCKET_PATHWAY:
            return None
        bucket, steered_for = self._state[hls.BUCKET_PATHWAY], self.clock() - self._first_since
        return (f"players steered to the {self.first} pathway for {steered_for:.0f}s: the bucket "
                f"pathway: {bucket.detail}{self._failing_details(hls.BUCKET_PATHWAY)}")

    def pages(self) -> dict[str, int]:
        """Viewer pages by the pathway their last report (within two report intervals) said they play."""
        now = self.clock()
        recent = (r for r in self._reports.values() if now - r.at <= 2 * self.interval)
        return dict(Counter(r.pathway or "unknown" for r in recent))

    def evaluate(self) -> bool:
        """True when the priority changed."""
        now = self.clock()
        self._forget(now)
        target = self.target_duration()
        if target is None:  # nothing listed yet: nobody plays, and a start's first uploads are no outage
            return False
        for pathway, state in self._state.items():
            self._judge(pathway, state, now, target)
        priority = self._ordered()
        if priority == self.priority:
            return False
        before, self.priority = self.priority, priority
        self._serves = self._judged_serving()
        if priority[0] != before[0]:
            self._switched(before[0], now)
        else:
            log.info("pathway priority now %s (players stay on %s)%s", ", ".join(priority), priority[0],
                     self._failing_details())
        return True

    def _ordered(self) -> tuple[str, ...]:
        """Healthy buckets first, then the VM's pathway, then the failing buckets; each in PATHWAYS' order."""
        state = self._state
        rank = {p: 1 if p not in state else 2 * (state[p].reason is not None) for p in self.pathways}
        return tuple(sorted(self.pathways, key=rank.__getitem__))  # stable: PATHWAYS' order within each

    def _failing_details(self, but: str = "") -> str:
        return "".join(f"; the {p} pathway: {s.detail}" for p, s in self._state.items()
                       if s.reason is not None and p != but)

    def _judge(self, pathway: str, state: _Bucket, now: float, target: int) -> None:
        behind = state.signals.behind()
        refused = state.signals.refused()
        if refused is None:
            state.refused_at = None
        elif state.refused_at is None:
            state.refused_at = now
        # Every signal that holds, the strongest first: it is the reason; the detail names them all.
        found: list[tuple[str, str]] = []
        probe_detail = state.probe_detail or "no answer"
        down = refused is not None and state.probe_failures > 0  # both ways at once: down for everyone
        if down:
            found.append((DOWN, _DESCRIBED[DOWN].format(refused=refused, detail=probe_detail)))
        waited = behind > max(target, MIN_UPLOAD_WAIT)
        if waited and (state.signals.failing() or behind > SLOW_TARGETS * target):
            found.append((UPLOADS, _DESCRIBED[UPLOADS].format(behind=behind, target=target)))
        if state.probe_failures >= PROBE_FAILURES and not down:
            found.append((PUBLIC_URL, _DESCRIBED[PUBLIC_URL].format(detail=probe_detail)))
        if found:
            state.reason, state.detail = found[0][0], ", and ".join(d for _, d in found)
        elif state.reason is not None and not waited:
            state.reason = None  # every signal clear and the backlog landed: back at once

    def _forget(self, now: float) -> None:
        horizon = 2 * self.interval
        for viewer in [viewer for viewer, r in self._reports.items() if now - r.at > horizon]:
            del self._reports[viewer]
        self._forget_clients(now)

    def _forget_clients(self, now: float) -> None:
        clients = self._failing_clients
        while clients and (now - next(iter(clients.values())) >= REPORTED_FOR
                           or len(clients) > MAX_FAILING_CLIENTS):
            clients.popitem(last=False)

    def _switched(self, was: str, now: float) -> None:
        first = self.priority[0]
        bucket = self._state[hls.BUCKET_PATHWAY]
        if first == hls.BUCKET_PATHWAY:
            reason = NORMAL
            self._back_at = now
            self._failing_clients.clear()  # the outage's, not failures only those pages see
            log.info("steering players back to the bucket pathway after %.0fs on %s: it serves again "
                     "(priority %s)", now - self._first_since, was, ", ".join(self.priority))
        else:
            reason = bucket.reason or NORMAL
            log.warning("steering players to the %s pathway (priority %s): the bucket pathway: %s%s", first,
                        ", ".join(self.priority), bucket.detail, self._failing_details(hls.BUCKET_PATHWAY))
        self.reason = reason
        self._first_since = now
        key = (first, reason)
        self.switches[key] = self.switches.get(key, 0) + 1
