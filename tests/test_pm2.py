"""pm2 as docs/production.md's "With pm2 instead of systemd" block says, line by line, as a user that is
not root (install lines replaced by a console script running this checkout): `check` passes, `pm2 start`
serves /health, a SIGKILL is restarted, `pm2 stop` stops it, a set-up mistake's exit 2 is not restarted."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from broadcaster.demo.seaweed import SeaweedS3
from tests.support import pm2
from broadcaster.demo.ports import kept_port
from tests.support.as_user import as_nobody
from tests.support.service_process import with_this_code
from tests.support.waiting import until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "production.md"


def documented_steps() -> list[str]:
    """The shell lines of docs/production.md's pm2 section, as written."""
    text = DOCS.read_text()
    section = text[text.index("### With pm2 instead of systemd"):]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "docs/production.md's pm2 section lost its steps"
    return [line for line in block.group(1).splitlines() if line.strip()]


class Machine:
    """This test's stand-in for the VM: its folders, Owncast's user, pm2 on the PATH."""

    def __init__(self, place: Path, user: str, pm2_dir: Path) -> None:
        self.place, self.user, self.pm2_dir = place, user, pm2_dir
        self.opt, self.etc, self.state = place / "opt", place / "etc", place / "lib"
        self.home = place / "home" / user
        self.stage = place / ".stage"
        self.stage.mkdir()
        self.env = {**with_this_code({k: v for k, v in os.environ.items() if not k.startswith("PM2")}),
                    "PATH": f"{pm2_dir / 'node_modules' / '.bin'}:{os.environ['PATH']}",
                    # The pm2 file's own overrides for its paths (deploy/ecosystem.config.js's header).
                    "HLS_BROADCASTER_HOME": str(self.opt), "HLS_BROADCASTER_ENV_FILE": str(self.etc / "env")}

    def line(self, step: str) -> str:
        """A documented line with this machine's paths and users."""
        step = re.sub(r"\bsudo -u owncast( -H)? ", f"runuser -u {self.user} -- ", step)
        step = re.sub(r"^sudo ", "", step)
        step = (step.replace("/opt/hls-broadcaster", str(self.opt)).replace("/etc/hls-broadcaster", str(self.etc))
                .replace("/var/lib/hls-broadcaster", str(self.state)).replace(" deploy/", f" {ROOT}/deploy/"))
        return re.sub(r"\bowncast\b", self.user, step)

    def run(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`command` in a root shell, in the namespace where the user reaches Python and pm2."""
        argv = as_nobody(["sh", "-c", command], self.stage, drop_root=False, also=[self.pm2_dir])
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env, cwd=self.place)

    def as_user(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(f"runuser -u {self.user} -- {command}", timeout)

    def apps(self) -> list[dict[str, Any]]:
        done = self.as_user("pm2 jlist")
        assert done.returncode == 0, done.stderr
        listed: list[dict[str, Any]] = json.loads(done.stdout[done.stdout.index("["):])
        return listed

    def app(self) -> dict[str, Any]:
        (app,) = [a for a in self.apps() if a["name"] == "hls-broadcaster"]
        return app


def stand_in_install(machine: Machine) -> None:
    """The venv and pip lines' result: venv/bin/hls-broadcaster, running this checkout's package."""
    script = machine.opt / "venv" / "bin" / "hls-broadcaster"
    script.parent.mkdir(parents=True)
    for folder in (machine.opt, machine.opt / "venv", script.parent):
        folder.chmod(0o755)
    pythonpath = machine.env["PYTHONPATH"]
    script.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(pythonpath)} exec {shlex.quote(sys.executable)} "
                      '-m broadcaster "$@"\n')
    script.chmod(0o755)


def fill_in(machine: Machine, bucket: SeaweedS3, hls: Path, port: int) -> None:
    """What the operator writes into the env file before the check (it is root's, 0640)."""
    env_file = machine.etc / "env"
    values = {"HLS_DIR": str(hls), "S3_ENDPOINT_URL": bucket.endpoint_url, "AWS_ACCESS_KEY_ID": bucket.access_key,
              "AWS_SECRET_ACCESS_KEY": bucket.secret_key, "AWS_BUCKET_NAME": bucket.bucket,
              "R2_PUBLIC_URL": bucket.public_url, "PORT": str(port), "STATE_DIR": str(machine.state),
              "S3_REGION": "us-east-1", "PATHWAYS": "bucket"}
    lines = []
    for line in env_file.read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values.pop(key)}" if key in values and "=" in line else line)
    assert not values, f"deploy/env.example lost {sorted(values)}"
    env_file.write_text("\n".join(lines) + "\n")


def health(port: int) -> int:
    try:
        with urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            return int(answer.status)
    except OSError:
        return 0


@pytest.fixture
def user() -> Iterator[str]:
    """Owncast's user: a system user of its own, with its own group, made for this test and removed after."""
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("not root, or no useradd/runuser: cannot make a user and run as it")
    name = f"hlsb-pm2-{os.getpid()}"
    yield name
    subprocess.run(["userdel", name], capture_output=True, timeout=60)
    subprocess.run(["groupdel", name], capture_output=True, timeout=60)


async def test_pm2_runs_the_service_after_exactly_the_documented_steps(
        place: Path, user: str, seaweed: SeaweedS3) -> None:
    pm2_dir = pm2.installed()
    machine = Machine(place, user, pm2_dir)
    (place / "home").mkdir(mode=0o755)
    made = subprocess.run(["useradd", "--system", "--user-group", "--create-home", "--home-dir", str(machine.home),
                           "--shell", "/usr/sbin/nologin", user], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    hls = machine.home / "owncast" / "data" / "hls"  # Owncast's folder, its user's own (home 0700)
    (hls / "0").mkdir(parents=True)
    subprocess.run(["chown", "-R", f"{user}:{user}", str(machine.home / "owncast")], check=True, timeout=60)
    machine.home.chmod(0o700)
    port = kept_port()
    steps = documented_steps()
    assert steps[:2] == ["sudo python3 -m venv /opt/hls-broadcaster/venv",
                         "sudo /opt/hls-broadcaster/venv/bin/pip install /path/to/hls-broadcaster"], steps
    stand_in_install(machine)
    try:
        for step in steps[2:]:
            command = machine.line(step)
            if " check" in step:  # the operator fills the env file in first
                fill_in(machine, seaweed, hls, port)
            done = machine.run(command)
            assert done.returncode == 0, (step, command, done.stdout[-3000:], done.stderr[-3000:])
            if " check" in step:
                assert "all checks passed" in done.stdout and "FAIL" not in done.stdout, done.stdout
        await until(lambda: health(port) == 200, "/health ok under pm2", timeout=60)
        first = machine.app()
        assert first["pm2_env"]["status"] == "online" and first["pm2_env"]["username"] == user, first["pm2_env"]
        assert (machine.state / "lock").stat().st_uid == machine.home.stat().st_uid  # the user's STATE_DIR

        # A crash (SIGKILL, as the OOM killer): pm2 starts it again.
        os.kill(first["pid"], 9)
        await until(lambda: machine.app()["pm2_env"]["restart_time"] == 1 and health(port) == 200,
              "pm2 restarting the killed service", timeout=60)

        assert machine.as_user("pm2 stop hls-broadcaster").returncode == 0
        stopped = machine.app()
        assert stopped["pm2_env"]["status"] == "stopped" and health(port) == 0, stopped["pm2_env"]

        # A set-up mistake: the port taken (Grafana's default is this service's too).
        with socket.socket() as grafana:
            # Past the stopped service's connections in TIME_WAIT; listening, it still keeps the service out.
            grafana.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            grafana.bind(("127.0.0.1", port))
            grafana.listen()
            restarts = machine.app()["pm2_env"]["restart_time"]
            assert machine.as_user("pm2 start hls-broadcaster").returncode == 0
            await until(lambda: machine.app()["pm2_env"].get("exit_code") == 2, "the service's exit 2", timeout=60)
            # A restart, had it been due, would come after exp_backoff_restart_delay: watched three times that.
            exited = time.monotonic()
            await until(lambda: _not_restarted(machine, restarts) and time.monotonic() - exited > 3,
                  "pm2 leaving it stopped for three restart delays", timeout=60)
        errors = (machine.opt / "logs" / "hls-broadcaster.err.log").read_text().splitlines()
        said = [line for line in errors if line.startswith("hls-broadcaster: error:")]
        assert said == [f"hls-broadcaster: error: cannot listen on 127.0.0.1:{port} (HOST/PORT): Address already "
                        "in use"], errors[-20:]
        assert not [line for line in errors if "Traceback" in line], errors[-40:]
    finally:
        machine.as_user("pm2 kill", timeout=60)


def _not_restarted(machine: Machine, restarts: int) -> bool:
    app = machine.app()
    assert app["pm2_env"]["restart_time"] == restarts and not app["pid"], app["pm2_env"]
    # What `pm2 list` shows then, as docs/production.md says.
    assert app["pm2_env"]["status"] == "waiting restart", app["pm2_env"]["status"]
    return True
