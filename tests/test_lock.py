"""One service per STATE_DIR: a second instance exits at start-up; a killed one leaves no stale lock.
Real service processes against moto's real S3 server."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.service_process import ServiceProcess, moto_env

pytestmark = pytest.mark.integration


async def test_a_second_instance_on_the_same_state_dir_exits(tmp_path: Path, moto_url: str) -> None:
    env = moto_env(moto_url, tmp_path)
    state_dir = str((tmp_path / "state").resolve())
    async with ServiceProcess(env, tmp_path / "first") as first:
        second = ServiceProcess(env, tmp_path / "second")
        with pytest.raises(RuntimeError, match="did not start"):
            await second.start()
        assert await second.exited() == 2  # a set-up mistake: no restart
        errors = [line for line in second.lines if " ERROR " in line or "error" in line]
        assert errors == [f"hls-broadcaster: error: STATE_DIR {state_dir} is in use by another hls-broadcaster "
                          f"(pid {first.pid}); each service needs a STATE_DIR of its own"], second.lines
        assert not [line for line in second.lines if "Traceback" in line]
        assert first.proc is not None and first.proc.returncode is None  # the first goes on
        # kill -9: the kernel releases the lock with the process; nothing stale is left behind.
        first.proc.send_signal(signal.SIGKILL)
        await first.exited()
    async with ServiceProcess(env, tmp_path / "third") as third:
        assert await third.stop() == 0
        assert not third.problems()


async def test_instances_on_different_state_dirs_run_side_by_side(tmp_path: Path, moto_url: str) -> None:
    async with ServiceProcess(moto_env(moto_url, tmp_path), tmp_path / "a") as a, \
            ServiceProcess(moto_env(moto_url, tmp_path, STATE_DIR=str(tmp_path / "other")), tmp_path / "b") as b:
        assert await b.stop() == 0 and await a.stop() == 0
