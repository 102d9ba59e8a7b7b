"""`hls-broadcaster demo --p2p`: its switch, what it says without Node.js, and its tracker started again
when it dies. The demo with the tracker running is tested from the installed wheel (test_package),
which ships the tracker's files."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from broadcaster.cli import build_parser
from broadcaster.demo import tracker as tracker_module
from broadcaster.demo.tracker import LocalTracker, TrackerUnavailable, install
from tests.support.processes import alive
from tests.support.waiting import until
from tests.support.webtorrent import VARIANTS, StandInService, meet, serving


def test_the_demo_has_a_p2p_switch() -> None:
    args = build_parser().parse_args(["demo", "--p2p"])
    assert args.p2p is True
    assert build_parser().parse_args(["demo"]).p2p is False


def test_without_node_the_tracker_says_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tracker_module, "which", lambda name: None)
    with pytest.raises(TrackerUnavailable, match="Node.js .* is not installed; apt install nodejs npm"):
        install(tmp_path)


@pytest.mark.integration
async def test_the_demos_tracker_is_started_again_on_its_port_when_it_dies(tracker_dir: Path) -> None:
    async with StandInService() as service, LocalTracker(tracker_dir, service=service.url) as tracker:
        await serving(tracker)
        url, first = tracker.url, tracker.pid
        assert first is not None and await meet(url, VARIANTS[0])
        os.kill(first, signal.SIGKILL)
        await until(lambda: tracker.restarts == 1 and tracker.pid not in (None, first), "a new tracker")
        assert tracker.url == url  # the URL the viewers were given
        await until(lambda: sum("tracker: serving swarm" in line for line in tracker.lines) == 2, "it serves again")
        assert await meet(url, VARIANTS[0])


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
async def test_the_demos_tracker_dies_with_a_killed_python(tracker_dir: Path) -> None:
    """A SIGKILLed demo or test run leaves no tracker behind (it runs in a session of its own)."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from pathlib import Path
        from broadcaster.demo.tracker import LocalTracker

        async def main():
            tracker = await LocalTracker(Path({str(tracker_dir)!r}), service="http://127.0.0.1:9").__aenter__()
            print(tracker.pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, env=env)
    out, _ = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == -signal.SIGKILL
    pid = int(out)
    try:
        await until(lambda: not alive(pid), f"tracker {pid} to die", 10, every=0.05)
    finally:
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
