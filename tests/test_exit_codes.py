"""One rule for exit codes, and what each supervisor does with them.

A mistake a restart cannot fix ends `run` with exit 2 and one line; what a restart can fix (the bucket or
the network unreachable) does not stop it. Each case runs the real process (the service, the tracker) and
its exit is judged by both shipped supervisors' rules as systemd and pm2 read them
(tests/support/restart_rules.py): neither restarts a set-up mistake nor systemd a clean stop, and both
restart a process killed from outside (the OOM killer)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import aiohttp
import pytest

from broadcaster.demo.seaweed import SeaweedS3
from tests.support.local_http import taken_port
from tests.support.node import node
from tests.support.restart_rules import Ended, pm2_app, pm2_restarts, systemd_restarts
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "hls-broadcaster.service"
PM2_FILE = ROOT / "deploy" / "ecosystem.config.js"
TRACKER_UNIT = ROOT / "deploy" / "tracker" / "hls-broadcaster-tracker.service"
TRACKER_PM2_FILE = ROOT / "broadcaster" / "tracker" / "ecosystem.config.cjs"
SET_UP_MISTAKE = Ended(status=2)
# Settings for a bucket nothing answers for (port 9, discard: connection refused at once): the five
# attributes service_env reads.
NO_BUCKET = cast(SeaweedS3, SimpleNamespace(endpoint_url="http://127.0.0.1:9", access_key="nobody-key",
                                            secret_key="nobody-secret", bucket="nobody",
                                            public_url="http://127.0.0.1:9/nobody"))


def restarted(ended: Ended, unit: Path = UNIT, pm2_file: Path = PM2_FILE) -> dict[str, bool]:
    return {"systemd": systemd_restarts(unit, ended), "pm2": pm2_restarts(pm2_app(pm2_file), ended)}


@pytest.fixture
def hls(tmp_path: Path) -> Path:
    folder = tmp_path / "hls"
    folder.mkdir()
    return folder


async def refused(env: dict[str, str], cwd: Path, status: int = 2) -> list[str]:
    """`run` ends with exit `status` before it serves, without a traceback: its error lines."""
    service = ServiceProcess(env, cwd)
    errors = await service.refused(60, status)
    assert not [line for line in service.lines if "Traceback" in line], service.lines
    return errors


# -- the rules themselves, as read from the files -----------------------------------------------------------


@pytest.mark.parametrize(("unit", "pm2_file"), [(UNIT, PM2_FILE), (TRACKER_UNIT, TRACKER_PM2_FILE)],
                         ids=["service", "tracker"])
def test_each_supervisor_restarts_a_crash_and_neither_a_set_up_mistake(unit: Path, pm2_file: Path) -> None:
    assert restarted(SET_UP_MISTAKE, unit, pm2_file) == {"systemd": False, "pm2": False}
    for crash in (Ended(status=1), Ended(signal=signal.SIGKILL), Ended(signal=signal.SIGSEGV)):
        assert restarted(crash, unit, pm2_file) == {"systemd": True, "pm2": True}, crash
    # A stop by SIGTERM ends 0 (or by the signal, a clean one to systemd): systemd's on-failure leaves it;
    # pm2 starts anything that ended without its own `pm2 stop` again (autorestart).
    assert restarted(Ended(status=0), unit, pm2_file) == {"systemd": False, "pm2": True}
    assert restarted(Ended(signal=signal.SIGTERM), unit, pm2_file) == {"systemd": False, "pm2": True}


def test_the_reader_takes_systemds_meaning(tmp_path: Path) -> None:
    """The reader against systemd's own rules on units written for it: the last Restart= wins, an empty
    RestartPreventExitStatus= resets the list, signal names count, SuccessExitStatus= is a success."""
    unit = tmp_path / "x.service"
    unit.write_text("[Service]\nRestart=always\nRestart=on-failure\nRestartPreventExitStatus=2 SIGUSR1\n"
                    "RestartPreventExitStatus=\nRestartPreventExitStatus=3\nSuccessExitStatus=4\n")
    assert systemd_restarts(unit, Ended(status=2)) is True  # reset by the empty assignment
    assert systemd_restarts(unit, Ended(status=3)) is False
    assert systemd_restarts(unit, Ended(status=4)) is False  # a success: on-failure leaves it
    assert systemd_restarts(unit, Ended(signal=signal.SIGUSR1)) is True
    unit.write_text("[Service]\nRestart=on-abnormal\nRestartForceExitStatus=7\n")
    assert systemd_restarts(unit, Ended(status=1)) is False and systemd_restarts(unit, Ended(status=7)) is True
    assert systemd_restarts(unit, Ended(signal=signal.SIGKILL)) is True
    assert systemd_restarts(unit, Ended(signal=signal.SIGTERM)) is False
    unit.write_text("[Service]\nRestart=sometimes\n")
    with pytest.raises(ValueError, match="Restart=sometimes"):
        systemd_restarts(unit, Ended(status=1))


# -- the service: each case, the real process ------------------------------------------------------------


@pytest.mark.parametrize(("over", "setting"), [({"AWS_BUCKET_NAME": "no-such-bucket"}, "AWS_BUCKET_NAME"),
                                               ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "AWS_SECRET_ACCESS_KEY")],
                         ids=["no-such-bucket", "credentials-refused"])
async def test_a_bucket_that_refuses_is_exit_2(tmp_path: Path, hls: Path, seaweed: SeaweedS3,
                                                over: dict[str, str], setting: str) -> None:
    errors = await refused(service_env(hls, seaweed, tmp_path / "state", **over), tmp_path / "run")
    assert len(errors) == 1 and errors[0].endswith(f"check {setting}"), errors
    assert "not-the-secret" not in errors[0]


async def test_a_state_dir_in_use_is_exit_2(tmp_path: Path, hls: Path, seaweed: SeaweedS3) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with open(state / "lock", "w") as held:  # as a running service holds it (state/disk.py's flock)
        fcntl.flock(held, fcntl.LOCK_EX)
        errors = await refused(service_env(hls, seaweed, state), tmp_path / "run")
    assert errors == [
        f"hls-broadcaster: error: STATE_DIR {state.resolve()} is in use by another hls-broadcaster; each service "
        "needs a STATE_DIR of its own"], errors


async def test_the_env_file_unreadable_is_exit_2(tmp_path: Path, hls: Path) -> None:
    run = tmp_path / "run"
    (run / ".env").mkdir(parents=True)  # what `run` reads by default: not a file it can read
    errors = await refused(service_env(hls, NO_BUCKET, tmp_path / "state"), run)
    assert errors == ["hls-broadcaster: error: env file .env is not a file"]


async def test_a_wrong_public_url_starts_and_health_names_it(tmp_path: Path, hls: Path, seaweed: SeaweedS3) -> None:
    """The table's row "it starts": uploads work, but R2_PUBLIC_URL serves none of the bucket's keys
    (another bucket's URL). /health turns non-ok naming R2_PUBLIC_URL within 30 s, before any stream: the
    object stored at start is fetched at its listed URL."""
    env = service_env(hls, seaweed, tmp_path / "state", R2_PUBLIC_URL=f"{seaweed.endpoint_url}/another-bucket")
    async with ServiceProcess(env, tmp_path / "run", start_timeout=60) as service, \
            aiohttp.ClientSession() as http:
        async def unhealthy() -> str | None:
            async with http.get(f"{service.url}/health") as r:
                status = (await r.json())["status"]
                return status if r.status == 503 and "R2_PUBLIC_URL" in status else None

        reason = await until(unhealthy, "/health naming R2_PUBLIC_URL", timeout=30)
        assert "HTTP 404" in reason, reason
        async with http.get(f"{service.url}/metrics") as r:
            assert "hls_broadcaster_public_reads_up 0.0" in await r.text()
        assert await service.stop(signal.SIGTERM) == 0
    said = [line for line in service.lines if "public_reads: the segments listed do not answer" in line]
    assert len(said) == 1 and " ERROR " in said[0], said  # the log says so once


@pytest.mark.parametrize(("over", "status", "said"), [
    ({"PORT": "nope"}, 2, "hls-broadcaster: error: PORT='nope': expected a whole number"),
    ({"PORT": "{port}"}, 2, "cannot listen on 127.0.0.1:{port} (HOST/PORT): "),  # another program's
    # As R2's dashboard shows the bucket's URL: uploads would land one folder down, under keys no listed
    # URL names. `check` fails on it, and `run` refuses the same, with the same line.
    ({"S3_ENDPOINT_URL": "{endpoint}/{bucket}"}, 2,
     "hls-broadcaster: error: S3_ENDPOINT_URL has a path ('/{bucket}'): use the account endpoint "
     "https://<ACCOUNT_ID>.r2.cloudflarestorage.com and put the bucket in AWS_BUCKET_NAME"),
    # It answers only signed requests: every listed segment would be refused.
    ({"R2_PUBLIC_URL": "https://acc.r2.cloudflarestorage.com/b"}, 2, "R2_PUBLIC_URL points at the S3 API host"),
    # The table's exit 1 row: HOST a name that does not resolve (DNS not up yet at boot, say) stops the
    # start with one line, and each supervisor starts it again.
    ({"HOST": "nonexistent.invalid"}, 1, "cannot listen on nonexistent.invalid:0 (HOST/PORT): "),
], ids=["bad-setting", "port-taken", "bucket-in-endpoint", "public-url-at-s3-api", "host-unresolved"])
async def test_what_stops_the_start_before_any_request_is_one_line_and_its_exit(
        tmp_path: Path, hls: Path, over: dict[str, str], status: int, said: str) -> None:
    """A set-up mistake is exit 2, restarted by neither supervisor; what a restart may fix, exit 1. The line
    is `said` whole where it starts as the line does, else `said` is in it."""
    with taken_port() as other:
        fill = {"endpoint": NO_BUCKET.endpoint_url, "bucket": NO_BUCKET.bucket, "port": other.getsockname()[1]}
        said = said.format(**fill)
        over = {k: v.format(**fill) for k, v in over.items()}
        errors = await refused(service_env(hls, NO_BUCKET, tmp_path / "state", **over), tmp_path / "run", status)
    assert len(errors) == 1, errors
    assert errors[0] == said if said.startswith("hls-broadcaster: error: ") else said in errors[0], errors
    assert "Unknown error" not in errors[0]
    assert restarted(Ended(status=status)) == {"systemd": status == 1, "pm2": status == 1}


async def test_an_unreachable_bucket_is_waited_for_and_a_kill_is_restarted(tmp_path: Path, hls: Path) -> None:
    """What a restart could fix does not stop it: the bucket unreachable, it serves and waits. Killed from
    outside (SIGKILL, as the OOM killer does), each supervisor starts it again; stopped by SIGTERM, it ends
    0 and systemd leaves it stopped."""
    env = service_env(hls, NO_BUCKET, tmp_path / "state")
    async with ServiceProcess(env, tmp_path / "run", start_timeout=60) as service:
        assert service.url
        assert await service.stop(signal.SIGTERM) == 0
    assert restarted(Ended(status=0))["systemd"] is False
    async with ServiceProcess(env, tmp_path / "run", start_timeout=60) as service:
        killed = await service.stop(signal.SIGKILL)
    assert restarted(Ended.of(killed)) == {"systemd": True, "pm2": True}, killed


# -- the tracker: its unit and its pm2 file ----------------------------------------------------------------


async def tracker_ended(tracker_dir: Path, **env: str) -> tuple[Ended, str]:
    proc = await asyncio.create_subprocess_exec(
        node(), str(tracker_dir / "tracker.mjs"), cwd=tracker_dir, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={"PATH": os.environ["PATH"], "TRACKER_HOST": "127.0.0.1", **env})
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return Ended.of(proc.returncode), out.decode()


@pytest.mark.parametrize("mistake", ["bad-setting", "port-taken"])
async def test_a_tracker_set_up_mistake_is_exit_2_under_both_of_its_files(tracker_dir: Path, mistake: str) -> None:
    with taken_port() as other:
        port = "nope" if mistake == "bad-setting" else str(other.getsockname()[1])
        ended, said = await tracker_ended(tracker_dir, TRACKER_PORT=port)
    assert ended == SET_UP_MISTAKE, said
    assert "TRACKER_PORT" in said and "Error:" not in said, said
    assert restarted(ended, TRACKER_UNIT, TRACKER_PM2_FILE) == {"systemd": False, "pm2": False}
