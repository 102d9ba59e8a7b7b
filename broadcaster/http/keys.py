"""The app's typed keys, declared in one place: what create_app stores for the service and benches."""

from __future__ import annotations

from aiohttp import web

from .health import HealthSource
from .quick import QuickAnswers

HEALTH = web.AppKey[HealthSource]("health")
QUICK = web.AppKey("quick", QuickAnswers)  # plain playlist GETs the connection gate answers (quick.py)
