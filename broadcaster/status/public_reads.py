"""Whether viewers can fetch the segments the service lists (uploads that succeed say nothing of it: an
R2_PUBLIC_URL serving another bucket answers 404): a test object fetched at its listed URL at start, then
the steering probe's GETs of the newest segment. Two failures in a row, or the start's object not
answering, make /health non-ok with a reason naming the setting to check; a probe that answers clears it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..playlist import hls
from ..source.tasks import cancelled
from ..steering.first_byte import FirstByte
from ..steering.policy import PROBE_FAILURES
from ..steering.probe import PROBE_EVERY, PROBE_HEADERS, Pace, Wake, probe_pathway
from .edge_guard import EdgeGuard

log = logging.getLogger(__name__)


class Steered(Protocol):
    """What /health reads of steering (steering/policy.py's SteeringPolicy)."""

    @property
    def first(self) -> str: ...

    def health_reason(self) -> str | None: ...

# A status's likely cause, told after the setting (the rest: the URL unreachable from this machine).
_PUBLIC_HINTS = {
    404: "it does not serve this bucket's keys: use the bucket's custom domain or r2.dev URL, with no path after it",
    401: "is public access on for the bucket (its custom domain connected, or r2.dev allowed)?",
    403: "is public access on for the bucket (its custom domain connected, or r2.dev allowed)?",
    429: "rate limited: r2.dev URLs are for development; connect a custom domain and use it",
}


def _hint(detail: str, presigned: bool) -> str:
    """The setting to check and why, for what a GET of a listed URL found (FirstByte's detail)."""
    if presigned:
        return ("check S3_ENDPOINT_URL (presigned URLs are fetched from the S3 API host), AWS_ACCESS_KEY_ID's "
                "read permission and this machine's clock")
    status = int(detail[5:]) if detail.startswith("HTTP ") and detail[5:].isdigit() else None
    hint = _PUBLIC_HINTS.get(status or 0, "unreachable from this machine (its DNS, its certificate, or the "
                                          "provider's status)")
    return f"check R2_PUBLIC_URL: {hint}"


class PublicReads:
    """The verdict, and without steering the probe that feeds it; `start_check`: the start's look, or None."""

    def __init__(self, *, presigned: bool, newest: Callable[[], tuple[str, float] | None],
                 target_duration: Callable[[], int | None], up: Callable[[float], None],
                 watched: Callable[[], bool] = lambda: True,
                 start_check: Callable[[], Awaitable[str | None]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._presigned = presigned
        self._newest = newest
        self._target = target_duration
        self._up = up
        self._watched = watched
        self._start_check = start_check
        self._clock = clock
        self._failures = 0  # the probe's GETs failing in a row
        self._detail = ""  # what the last failing one found
        self._at_start: str | None = None  # what the start's test object found, until a probe answers
        self._reason: str | None = None  # /health's, while what is listed does not answer at its URLs
        self._now = Wake()  # cuts the probe's wait short: a listing or a player after quiet
        self._asleep = False  # the probe waits a QUIET_EVERY: nothing live, or nobody playing
        self._tasks: list[asyncio.Task[None]] = []
        self._client: FirstByte | None = None
        # Set by the service: whether the first bucket's uploads fail now (a probe failing may be the
        # outage's), and a private stream's edge guard (run with this, its reason one of /health's).
        self.in_outage: Callable[[], bool] = lambda: False
        self.guard: EdgeGuard | None = None
        up(1)

    def heard(self, ok: bool, detail: str) -> None:
        self._failures = 0 if ok else self._failures + 1
        self._at_start, self._detail = (None, self._detail) if ok else (self._at_start, detail)
        self._judge()

    def pathway_heard(self, pathway: str, ok: bool, detail: str) -> None:
        if pathway == hls.BUCKET_PATHWAY:
            self.heard(ok, detail)

    def started(self, found: str | None) -> None:
        self._at_start = found
        self._judge()

    def health_reason(self) -> str | None:
        return self._reason

    def delivery(self, steering: Steered | None) -> Callable[[], tuple[str | None, list[str]]]:
        """/health's delivery facts: the pathway players are steered to, and why some may not get it."""
        def facts() -> tuple[str | None, list[str]]:
            guarded = self.guard.health_reason() if self.guard else None
            reasons = [r for r in (steering.health_reason() if steering else None, self._reason, guarded) if r]
            return (steering.first if steering else None), reasons
        return facts

    def _setting_wrong(self) -> bool:
        """The object just stored refused or not there (a 4xx, other bytes): a setting, not an outage."""
        found = self._at_start or ""
        return self._failures < PROBE_FAILURES and (found.startswith("HTTP 4") or found == "other bytes")

    def _judge(self) -> None:
        reason = None
        where = "presigned" if self._presigned else "public"
        if self._failures >= PROBE_FAILURES:
            reason = (f"the segments listed do not answer at their {where} URLs (the newest: {self._detail}); "
                      f"{_hint(self._detail, self._presigned)}")
            if self.in_outage():
                reason += " (or the bucket's outage: its uploads fail too)"
        elif self._at_start is not None:
            reason = (f"the segments listed do not answer at their {where} URLs (an object stored at start: "
                      f"{self._at_start}); {_hint(self._at_start, self._presigned)}")
        if (reason is None) != (self._reason is None):  # told once each way, not at every probe
            if reason is None:
                log.info("the segments listed answer at their %s URLs again", where)
            else:
                log.log(logging.ERROR if self._setting_wrong() else logging.WARNING, "%s", reason)
        self._reason = reason
        self._up(0 if reason else 1)

    def target_duration(self) -> int | None:
        return self._target()

    def probed(self, pathway: str, ok: bool, detail: str = "") -> bool:
        return self._failures > 0

    def probe_wanted(self, pathway: str) -> bool:
        return False  # nothing but players asks for a look sooner

    def wake(self) -> None:
        if self._asleep:
            self._asleep = False
            self._now.set()

    def _quiet(self) -> bool:
        """Nothing listed within three target durations: the probe waits until a listing or player wakes it."""
        newest = self._newest()
        quiet = newest is None or self._clock() - newest[1] > 3 * (self._target() or 3)
        self._asleep = self._asleep or quiet
        return quiet

    def _sleeping(self) -> None:
        self._asleep = True

    async def start(self, probe: bool) -> None:
        """The start's look (in the background), and with `probe` (no steering loop) the probe."""
        if self._start_check is not None:
            self._tasks.append(asyncio.create_task(self._checked_at_start(self._start_check),
                                                   name="public-reads-start"))
        if self.guard is not None:
            self.guard.start()
        if probe:
            self._client = FirstByte(PROBE_HEADERS)
            self._tasks.append(asyncio.create_task(probe_pathway(
                self, hls.BUCKET_PATHWAY, self._newest, self._client, heard=self.heard,
                pace=Pace(quiet=self._quiet, watched=self._watched, asleep=self._sleeping, again=PROBE_EVERY,
                          now=self._now, clock=self._clock)),
                name="public-reads-probe"))

    async def _checked_at_start(self, check: Callable[[], Awaitable[str | None]]) -> None:
        try:
            self.started(await check())
        except Exception:  # noqa: BLE001 (a bug here must not stop the service: the probe still looks)
            log.exception("checking the public URL at start failed")

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancelled(*tasks)
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        if self.guard is not None:
            await self.guard.stop()

