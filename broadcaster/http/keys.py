"""The app's typed keys, declared in one place: what create_app stores and the handlers read."""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiohttp import web

from ..metrics import Metrics
from ..status.hub import EventHub, StatusWatcher
from .viewer_files import ViewerFiles


class HealthSource(Protocol):
    def health(self) -> tuple[bool, dict[str, object]]:
        """(ok, a JSON-able body that includes "status")."""


HEALTH = web.AppKey[HealthSource]("health")
METRICS = web.AppKey("metrics", Metrics)
EVENTS = web.AppKey("events", EventHub)
STATE_EVENTS = web.AppKey("state_events", StatusWatcher)  # set when the app publishes the stream state
# Set once the pipeline runs (the service sets it after the first scan of Owncast's folder).
PIPELINE_RUNNING = web.AppKey("pipeline_running", asyncio.Event)
DEFAULT_VARIANT = web.AppKey("default_variant", int)
VIEWER_FILES = web.AppKey[ViewerFiles]("viewer_files")  # only set when a viewer is served
VIEWER_CONFIG = web.AppKey("viewer_config", bytes)  # config.json: where the viewer finds the stream
