"""`hls-broadcaster check` on this machine, as the user it runs as: HLS_DIR readable and watchable,
STATE_DIR writable or makeable, HOST:PORT (and METRICS_LISTEN) free to bind."""

from __future__ import annotations

import contextlib
import errno
import socket
from pathlib import Path

from .. import files, fixes, state_dir
from .report import Report
from ..settings import Address, Settings
from ..source import access


def check_hls_dir(s: Settings, report: Report) -> None:
    """As the user this runs as (run it as the service's user: deploy/hls-broadcaster.service)."""
    watch = s.hls_watch == "auto"
    found = access.problems(s.hls_dir, watch=watch)
    for problem in found:
        report.fail(problem)
    if not found:
        try:
            variants = sum(1 for p in s.hls_dir.iterdir() if p.name.isdigit() and p.is_dir())
        except OSError:
            variants = 0  # Owncast replacing it just now
        report.ok(f"HLS_DIR {s.hls_dir}: user {files.user_name()} can enter, list and read it and its "
                  f"{variants} variant folder(s)" + (", and watch them (inotify)" if watch else ""))


def check_state_dir(s: Settings, report: Report, env_file: Path | None = None) -> None:
    """With `run`'s own lines: a missing one it cannot make (but the unit's), one another service holds."""
    user, refused = files.user_name(), state_dir.refusal(s.state_dir)
    if (shared := state_dir.held_by_another(s.state_dir, env_file)) is not None:
        report.fail(shared)
    elif s.state_dir.is_dir():
        report.ok(f"STATE_DIR {s.state_dir}: writable by user {user}")
    elif refused is None:
        report.ok(f"STATE_DIR {s.state_dir} does not exist yet: `run` makes it (user {user} may)")
    elif state_dir.systemd_makes(s.state_dir):
        report.warn(f"STATE_DIR {s.state_dir} does not exist yet and user {user} cannot make it: the shipped "
                    "unit's StateDirectory= makes it at the first start (deploy/hls-broadcaster.service); "
                    f"without systemd make it, {fixes.own_folder(s.state_dir)}")
    else:
        report.fail(f"STATE_DIR {s.state_dir}: {refused}")  # as `run` says it


def check_listeners(s: Settings, report: Report) -> None:
    """Bind HOST:PORT (and METRICS_LISTEN) as the service will, and let go at once."""
    running = state_dir.holder(s.state_dir)
    wanted = [(Address(s.host, s.port), "HOST/PORT")]
    if isinstance(s.metrics_listen, Address):
        wanted.append((s.metrics_listen, "METRICS_LISTEN"))
    for where, setting in wanted:
        if where.port == 0:
            report.ok(f"{setting} {where}: port 0, the service picks a free one (and logs it)")
        elif running is not None:
            report.skip(f"{setting} {where}: hls-broadcaster runs with this STATE_DIR (pid {running}) and holds it")
        else:
            problem = _bind(where)
            if problem is None:
                report.ok(f"{setting} {where}: free, and this user may listen on it")
            else:
                report.fail(f"{setting} {where}: {problem}")


def _bind(where: Address) -> str | None:
    try:
        infos = socket.getaddrinfo(where.host, where.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as err:
        return f"cannot resolve {where.host} ({getattr(err, 'strerror', None) or err})"
    for family, kind, proto, _name, address in infos:
        with contextlib.closing(socket.socket(family, kind, proto)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds it
            try:
                sock.bind(address)
                sock.listen(1)
            except OSError as err:
                return bind_hint(err, where)
    return None


# Grafana's default port is also PORT's: on a VM that runs the dashboard too, the likeliest clash.
GRAFANA_PORT = 3000


def bind_hint(err: OSError, where: Address) -> str:
    if err.errno == errno.EADDRINUSE:
        grafana = " (Grafana's default port is 3000 too)" if where.port == GRAFANA_PORT else ""
        return (f"already in use by another program{grafana} (`ss -ltnp 'sport = :{where.port}'` names it): stop "
                "it or choose another port")
    if err.errno == errno.EACCES:
        return "this user may not listen below port 1024: use a port above it (the tunnel does not care)"
    if err.errno == errno.EADDRNOTAVAIL:
        return f"{where.host} is not an address of this machine"
    return f"cannot listen ({err.strerror or err})"
