"""The service's listeners (public and metrics ports, the control socket), each closed by a stop."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ..http.connections import KEEPALIVE_TIMEOUT, GatedSite, GateOptions
from ..http.control import prepare_socket
from ..http.keys import QUICK
from ..http.serving import serving
from ..metrics import ConnectionMetrics
from ..settings import Address, Settings
from .startup import failed

log = logging.getLogger(__name__)

# Seconds a stop gives a request handler still running: aiohttp's own 60 s would outlast systemd's
# TimeoutStopSec (30) and pm2's kill_timeout (20), killing the last save.
HANDLER_STOP_TIMEOUT = 3.0
_LISTEN_MISTAKES = frozenset({errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL})


@dataclass(frozen=True)
class Listener:
    """A port to serve on, the setting that names it (its error's), and its gate's connections."""

    where: Address
    setting: str
    limit: int
    kind: str = "connections"
    backlog: int = 128


async def listen(stack: contextlib.AsyncExitStack, app: web.Application, listener: Listener, settings: Settings,
                 metrics: ConnectionMetrics, **options: Any) -> int:
    """Serves `app` as `listener` says until the stack closes; returns the port."""
    where = listener.where
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=HANDLER_STOP_TIMEOUT,
                           keepalive_timeout=KEEPALIVE_TIMEOUT, **options)
    try:
        gate = GateOptions(limit=listener.limit, header_timeout=settings.header_timeout,
                           write_timeout=settings.write_timeout, metrics=metrics, kind=listener.kind,
                           quick=app.get(QUICK))  # plain playlist GETs answered before aiohttp (quick.py)
        await stack.enter_async_context(serving(runner, lambda r: GatedSite(
            r, where.host, where.port, gate, backlog=listener.backlog)))
    except OSError as err:
        # Taken, below 1024, or not this machine's: a set-up mistake. errno < 0: the resolver's words.
        why = os.strerror(err.errno) if err.errno and err.errno > 0 else err.strerror
        taken = err.errno == errno.EADDRINUSE and where.port == 3000
        grafana = " (Grafana's default port is 3000 too)" if taken else ""
        raise failed(f"cannot listen on {where} ({listener.setting}): {why}{grafana}",
                     err.errno in _LISTEN_MISTAKES) from None
    return next((int(a[1]) for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2), where.port)


async def control_socket(stack: contextlib.AsyncExitStack, state_dir: Path, app: web.Application) -> Path | None:
    """The operator's socket (clips); None when it cannot be opened: that costs the clips only."""
    async with contextlib.AsyncExitStack() as control:
        try:
            path = prepare_socket(state_dir)
            control.callback(_remove, path)
            # A clip being made when the service stops is given up (its keys let go), not waited for.
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                   handler_cancellation=True)
            await control.enter_async_context(serving(runner, lambda r: web.UnixSite(r, str(path))))
            os.chmod(path, 0o600)
        except (OSError, ValueError) as err:
            why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            log.warning("clips are unavailable: cannot open the control socket in STATE_DIR (%s)", why)
            return None
        stack.push_async_exit(control.pop_all())
    log.info("clips: hls-broadcaster clip talks to %s", path)
    return path


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
