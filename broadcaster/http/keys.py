"""The app's typed keys, declared in one place: what create_app stores and the handlers read."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from ..metrics import Metrics
from ..status.assessment import Assessment
from .quick import QuickAnswers


class HealthSource(Protocol):
    def assess(self) -> Assessment:
        """How the stream is doing now: /health answers its body, 503 unless ok."""


HEALTH = web.AppKey[HealthSource]("health")
METRICS = web.AppKey("metrics", Metrics)
DEFAULT_VARIANT = web.AppKey("default_variant", int)
QUICK = web.AppKey("quick", QuickAnswers)  # plain playlist GETs the connection gate answers (quick.py)
