"""botocore sessions that share the first one's data loader (safe across threads): botocore's data files
are read once per process, not 0.1 s of CPU a session; the sessions stay one per use (a session is not)."""

from __future__ import annotations

import threading
from typing import Any, cast

import botocore.session
from aiobotocore.session import AioSession, get_session

_lock = threading.Lock()
_loader: Any = None


def _sharing(session: Any) -> Any:
    """`session` with the first session's data loader (so AWS_DATA_PATH still applies)."""
    global _loader
    with _lock:
        if _loader is None:
            _loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _loader)
    return session


def aio_session() -> AioSession:
    return cast(AioSession, _sharing(get_session()))


def sync_session() -> botocore.session.Session:
    return cast(botocore.session.Session, _sharing(botocore.session.get_session()))
