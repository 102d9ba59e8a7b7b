"""Whether a supervisor starts the service again after its process ended, read from the shipped files as
the supervisor reads them (systemd cannot run in this sandbox; tests/test_pm2.py runs the real pm2).

systemd's decision as src/core/service.c's service_shall_restart (systemd 252) takes it: the end is a
success when it exited 0 or with a SuccessExitStatus=, or was killed by SIGHUP, SIGINT, SIGTERM or SIGPIPE;
RestartPreventExitStatus= wins over everything (no restart), RestartForceExitStatus= then (a restart), else
Restart= decides. pm2's as lib/God.js's handleExit: no restart when autorestart is false or the exit code
is in stop_exit_codes (its give-up after unstable restarts is not modelled)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# EXIT_CLEAN_DAEMON: the signals a daemon's end by is a clean one (systemd's exit-status.c).
_CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})
_RESTART_VALUES = {"no", "always", "on-success", "on-failure", "on-abnormal", "on-abort", "on-watchdog"}


@dataclass(frozen=True)
class Ended:
    """How a process ended: its exit status, or the signal that killed it (what waitpid says)."""

    status: int | None = None
    signal: int | None = None

    @classmethod
    def of(cls, returncode: int) -> Ended:
        """From subprocess's returncode (-N: killed by signal N)."""
        return cls(signal=-returncode) if returncode < 0 else cls(status=returncode)

    def __str__(self) -> str:
        return f"signal {signal.Signals(self.signal).name}" if self.signal is not None else f"exit {self.status}"


def unit_sections(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit's sections, each key's assignments in order (systemd's INI dialect: '#' and ';' comments,
    repeatable keys; the shipped units have no continuation lines, and no line outside a section, which
    is checked)."""
    sections: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        if section is None or not sep or line.endswith("\\"):
            raise ValueError(f"{path}:{number}: not KEY=value in a section, or a continuation line: {raw!r}")
        section.setdefault(key.strip(), []).append(value.strip())
    return sections


def _status_set(assignments: list[str]) -> tuple[set[int], set[int]]:
    """An exit-status list as systemd reads it (config_parse_set_status): exit statuses and signal
    names, space-separated, accumulated over the assignments; an empty one resets it."""
    statuses: set[int] = set()
    signals: set[int] = set()
    for value in assignments:
        if not value:
            statuses.clear()
            signals.clear()
            continue
        for word in value.split():
            if word.isdigit():
                if not 0 <= int(word) <= 255:
                    raise ValueError(f"exit status out of range: {word}")
                statuses.add(int(word))
            else:
                name = word if word.startswith("SIG") else f"SIG{word}"
                signals.add(signal.Signals[name].value)
    return statuses, signals


def _in(assignments: list[str], ended: Ended) -> bool:
    statuses, signals = _status_set(assignments)
    return ended.status in statuses if ended.status is not None else ended.signal in signals


def systemd_restarts(unit: Path, ended: Ended) -> bool:
    """Whether systemd starts `unit`'s service again after its main process ended so on its own."""
    service = unit_sections(unit)["Service"]
    restart = service.get("Restart", ["no"])[-1] or "no"
    if restart not in _RESTART_VALUES:
        raise ValueError(f"{unit}: Restart={restart} is not a value systemd knows")
    if _in(service.get("RestartPreventExitStatus", []), ended):
        return False
    if _in(service.get("RestartForceExitStatus", []), ended):
        return True
    if ended.status is not None:
        success = ended.status == 0 or _in(service.get("SuccessExitStatus", []), ended)
        failure = None if success else "exit-code"
    else:
        success = ended.signal in _CLEAN_SIGNALS or _in(service.get("SuccessExitStatus", []), ended)
        failure = None if success else "signal"
    return {
        "no": False, "always": True, "on-success": failure is None, "on-failure": failure is not None,
        "on-abnormal": failure == "signal", "on-abort": failure == "signal", "on-watchdog": False,
    }[restart]


def pm2_app(ecosystem: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The ecosystem file's one app, as pm2 loads it (require() in Node)."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed (scripts/test installs nodejs)")
    script = "process.stdout.write(JSON.stringify(require(process.argv[1])))"
    done = subprocess.run([node, "-e", script, str(ecosystem)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin", **(env or {})}, check=True)
    apps: list[dict[str, Any]] = json.loads(done.stdout)["apps"]
    (app,) = apps
    return app


def pm2_restarts(app: dict[str, Any], ended: Ended) -> bool:
    """Whether pm2 starts the app again after its process ended so (not stopped through pm2)."""
    if app.get("autorestart") in (False, "false"):
        return False
    stop = app.get("stop_exit_codes") or []
    codes = {int(c) for c in (stop if isinstance(stop, list) else [stop])}
    return ended.status not in codes  # killed by a signal: pm2's code is null, never in the list
