"""How the stream is doing, assessed once per reading: /health renders it, the state events read it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..bucket.mirror import PlaylistMirror
from ..bucket.uploader import Uploader
from ..playlist import hls
from ..publish.publisher import PublisherFacts
from .stream import StreamState
from .trackers import Reading

SLOW_RATIO = 1.0  # uploads taking longer than the media they carry cannot keep up


@dataclass(frozen=True, slots=True)
class Assessment:
    """One reading: ok is False when any reason is given."""

    ok: bool
    state: StreamState
    status: str  # "ok", or every reason it is not, joined by "; "
    body: dict[str, object]  # /health's JSON (its "status" and "stream" say the two above)

    @property
    def detail(self) -> str:
        """The state event's detail: the status while live, else the stream's phase."""
        return self.status if self.state.stream == "live" else self.state.stream


@dataclass(frozen=True)
class Readings:
    """What /health reads besides the publisher's facts and the uploads (p2p_trackers: never unhealthy)."""

    state_error: Callable[[], str | None] = lambda: None
    listing_held: Callable[[], bool] = lambda: False
    input_problem: Callable[[], str | None] = lambda: None
    access_problem: Callable[[], str | None] = lambda: None
    p2p_trackers: Callable[[], dict[str, Reading]] | None = None
    viewers: Callable[[], dict[str, int]] | None = None
    delivery: Callable[[], tuple[str | None, list[str]]] | None = None


class HealthReport:
    """Assesses the stream from the facts passed in, for /health and the StatusWatcher alike."""

    def __init__(self, facts: Callable[[], PublisherFacts], uploader: Uploader, *,
                 mirror: PlaylistMirror | None = None, readings: Readings = Readings()) -> None:
        self._facts = facts
        self._uploader = uploader
        self._mirror = mirror
        self._readings = readings

    def assess(self) -> Assessment:
        f = self._facts()
        now = f.now
        reasons: list[str] = []
        up = self._uploader
        if up.storage_ok is False:
            reasons.append(f"storage unreachable ({up.last_error})")
        current = [v for v in f.variants if not v.withdrawn]  # the variants Owncast still announces
        live = any(v.playlist.opened and not v.source_ended and v.last_new_segment for v in current)
        stall = hls.stalled_after(f.target_duration)
        variants: dict[str, object] = {}
        last_ages: list[float] = []
        for v in f.variants:
            playlist = v.playlist
            age = None if playlist.last_listed is None else round(now - playlist.last_listed, 3)
            if age is not None:
                last_ages.append(age)
            variants[str(v.index)] = {"segments": playlist.segment_count,
                                      "media_sequence": playlist.media_sequence, "ended": playlist.ended,
                                      "seconds_since_last_segment": age}
            if v.withdrawn:
                continue
            if live and not v.source_ended and v.last_new_segment and now - v.last_new_segment > stall:
                reasons.append(f"variant {v.index}: no new segment from Owncast for {now - v.last_new_segment:.0f}s")
            elif live and v.last_new_segment and v.last_new_segment > (playlist.last_listed or 0):
                since = playlist.last_listed or v.created
                if now - since > stall:  # Owncast produces, we list nothing (rejected, lost, stuck)
                    reasons.append(f"variant {v.index}: nothing listed for {now - since:.0f}s")
        if f.upload_ratio > SLOW_RATIO and live:
            reasons.append(f"uploads slower than real time ({f.upload_ratio:.1f}s per second of media)")
        state_error = self._readings.state_error()
        if state_error is not None:
            reasons.append(f"cannot save state ({state_error})")
        if self._readings.listing_held():
            reasons.append("new segments held back until state can be saved (the numbers reserved are used up)")
        if f.oldest_upload is not None and now - f.oldest_upload > stall:
            reasons.append(f"uploads behind by {now - f.oldest_upload:.0f}s")
        mirror_lag = None
        if self._mirror is not None:
            mirror_lag = round(self._mirror.lag, 3)
            reason = self._mirror.health_reason(hls.block_timeout(f.target_duration or 3))
            if reason is not None:
                reasons.append(reason)
        pathway = None
        if (delivery := self._readings.delivery) is not None:
            pathway, undelivered = delivery()
            reasons += undelivered
        problem = self._readings.input_problem()
        if problem is not None:
            reasons.append(problem)
            live = True  # Owncast is writing a stream: never idle or ended, whatever was listed
        refused = self._readings.access_problem()
        if refused is not None:
            reasons.append(f"cannot read Owncast's folder: {refused}")
            live = True  # a stream may be there, unseen
        state = StreamState.of("live" if live else ("idle" if not f.variants else "ended"), not reasons)
        status = "ok" if not reasons else "; ".join(reasons)
        body: dict[str, object] = {"status": status, "stream": state.stream,
                                   "target_duration": f.target_duration, "variants": variants,
                                   "seconds_since_last_segment": min(last_ages) if last_ages else None,
                                   "uploads": {"done": up.uploads_done, "failed": up.uploads_failed},
                                   "upload_queue_depth": f.queue_depth, "storage_reachable": up.storage_ok,
                                   "upload_realtime_ratio": round(f.upload_ratio, 3)}
        outage = up.outage()
        if outage is not None:  # what is kept while the bucket fails, and how long it holds
            body["outage"] = outage
        if mirror_lag is not None:
            body["playlists_in_bucket_lag_seconds"] = mirror_lag
        if pathway is not None:
            body["pathway"] = pathway
        if (trackers := self._readings.p2p_trackers) is not None:
            clock = time.monotonic()
            body["p2p_trackers"] = {
                url: {"up": r.up, "problem": r.problem, "for_seconds": round(clock - r.since, 1)}
                for url, r in trackers().items()}
        if (viewers := self._readings.viewers) is not None:
            body["viewers"] = viewers()
        return Assessment(not reasons, state, status, body)
