"""Shared fixtures for the integration tests.

Each imports what it runs (moto, the demo's parts) when a test asks for it, not here: a unit test
(tests/test_manifest.py, ...) imports neither moto nor broadcaster.demo (tests/test_suite_rules.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from broadcaster.demo.emulator import OwncastEmulator
    from broadcaster.demo.recordings import Recordings
    from broadcaster.demo.seaweed import SeaweedS3
    from tests.support.s3 import RunWideServer


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hls-broadcaster", "runs by hand")
    group.addoption("--passthrough-runs", type=int, default=0, metavar="N",
                    help="issue 39: run the Owncast matrix's chains with passthrough N times in a row (tests/"
                         "test_owncast_matrix.py::test_the_passthrough_chains_again); left out without it")
    group.addoption("--passthrough-late-tails", action="store_true",
                    help="with --passthrough-runs: hold every segment's last bytes until its playlist names "
                         "it, as the matrix's rows do, rather than leave the race to chance")


# The order the xdist groups begin in (group_order; scripts/test: --dist loadgroup --no-loadscope-reorder).
# xdist hands each worker the next group in turn, then a second, so the first wave runs together and each
# worker's second begins when its first ends. When a run has the steering module among the workers, the
# first wave holds no other browser module (its players are judged by the clock, and beside p2p_browser,
# players_across_change and bench_browsers it failed 5 of 6 full runs on 2026-11-25; scripts/test's full
# run plays it in a process of its own, the workers beside it at the lowest CPU priority). Without it
# (scripts/test's workers), the browser groups begin at once beside the longest quiet one (two on seven
# workers), and the other quiet ones follow: so the suite ran until 2026-11-26,
# when it showed that xdist's workers, not given -n, had ordered for one worker; the quiet groups first, as
# intended, took 445 s against 422 s, and Shaka stood still in players_across_change beside three browser
# groups begun together in the second wave. Seconds each in a full run at load 9-14, for scale:
# steering_browser 120, faults_input 112, package_readme 105, package 57, nginx_cache 27, faults_http 11,
# docs_site 8, p2p_browser 234, players_across_change 125, bench_browsers 112, viewer_browser 41,
# gap_players 26; independent_players 38-45 alone at load 8-17 (31 s of CPU, 19 of them Chromium's);
# players_empty_end 37 alone at load 1 (33 s of CPU); containers 13-30 with its images kept, 60 building
# them from nothing (45 s of CPU), at load 1-3. A group not named here begins with the second wave, as a long one may be.
# Tests in no group go to whichever worker is free, in this order: the modules whose tests each take tens
# of seconds of a real stream and no browser first (they pace themselves by the stream's clock, beside
# the groups' busy browsers), then those with a browser each (after the groups' browsers, mostly), then
# every other module in file order, short tests that fill the end. In file order, test_viewers_browser's
# eight tests of 10-30 s began last, at 368 s of a 399 s run (2026-11-26, h1), the cores idle around them.
# Seconds per test, mean of two full runs (h1, h2).
LONG_QUIET = ("faults_copies_lost", "owncast_matrix", "backup_bucket", "faults_bucket", "faults_restart",
              "faults_storage", "pm2", "startup_order", "faults_owncast", "state_faults",
              "integration")  # 32 (alone) to 5 s
LONG_WITH_A_BROWSER = ("rewind_browser", "owncast_page_browser", "lowlatency_browser", "events_browser",
                       "rewind_videojs", "csp_browser", "edge", "presigned",
                       "stuck_variant")  # 36 to 6 s
FIRST = ("steering_browser",)
QUIET = ("faults_input", "package_readme", "package", "containers", "nginx_cache", "faults_http",
         "docs_site")  # no browser
LOUD = ("p2p_browser", "players_across_change", "bench_browsers", "independent_players", "viewer_browser",
        "gap_players", "players_empty_end")


def group_order(workers: int, present: Collection[str] = (*FIRST, *QUIET, *LOUD)) -> tuple[str, ...]:
    """The first wave (one group per worker): the steering module and groups without a browser, if this run
    has the steering module; else the longest group without one beside the browser groups. Then the rest."""
    first = tuple(g for g in FIRST if g in present)
    quiet = tuple(g for g in QUIET if g in present)
    calm = max(0, workers - len(first)) if first else 1
    return first + quiet[:calm] + tuple(g for g in LOUD if g in present) + quiet[calm:]


def xdist_group(item: pytest.Item) -> str | None:
    """The group pytest-xdist's loadgroup gives the item: its xdist_group names, sorted, joined by _."""
    names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                    for mark in item.iter_markers("xdist_group")})
    return "_".join(names) or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules marked xdist_group first, in GROUP_ORDER: each is one long unit of work for one worker
    (scripts/test's --dist loadgroup), best begun before the short tests, not left for the end.
    scripts/test passes --no-loadscope-reorder, so xdist keeps this order (its own puts the groups with
    the most tests first, whatever their length). Runs by hand are left out unless asked for."""
    if not config.getoption("--passthrough-runs"):
        by_hand = [item for item in items if "passthrough_run" in getattr(item, "fixturenames", ())]
        if by_hand:
            config.hook.pytest_deselected(items=by_hand)
            items[:] = [item for item in items if item not in by_hand]

    # xdist's workers, where the order counts, are not given -n: they learn the count from workerinput.
    workerinput = getattr(config, "workerinput", None)
    workers = workerinput["workercount"] if workerinput else config.getoption("numprocesses", None)
    workers = workers if isinstance(workers, int) and workers > 0 else 1
    order = group_order(workers, {g for item in items if (g := xdist_group(item)) is not None})
    second_wave = min(workers, len(order))

    ungrouped = {f"test_{name}.py": rank for rank, name in enumerate(LONG_QUIET + LONG_WITH_A_BROWSER)}

    def in_order(item: pytest.Item) -> float:
        group = xdist_group(item)
        if group is None:  # after every group: the long modules first, then the rest in file order
            return len(order) + 1.0 + ungrouped.get(item.path.name, len(ungrouped)) / (len(ungrouped) + 1)
        return order.index(group) if group in order else second_wave + 0.5

    items.sort(key=in_order)


# The run's one SeaweedFS server (tests/support/s3.py), in the xdist controller: started before the workers,
# named to each (its workerinput), stopped after them.
_RUN_WIDE_SEAWEED = pytest.StashKey[tuple["RunWideServer", str]]()  # the server, and its describe() in JSON
_SEAWEED_INPUT = "seaweed_s3"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None) or config.option.collectonly:
        return  # a worker, a run without workers, or no test to run
    from broadcaster.demo.seaweed import SeaweedError
    from tests.support.s3 import RunWideServer

    server = RunWideServer()
    try:
        described = server.start()
    except SeaweedError as err:  # each worker starts its own, and a test that needs one says why it failed
        print(f"tests/conftest.py: no SeaweedFS for the whole run, each worker starts its own: {err}")
        return
    config.stash[_RUN_WIDE_SEAWEED] = (server, json.dumps(described))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the controller: each worker is told where the run's SeaweedFS is."""
    started = node.config.stash.get(_RUN_WIDE_SEAWEED, None)
    if started is not None:
        node.workerinput[_SEAWEED_INPUT] = started[1]


def pytest_unconfigure(config: pytest.Config) -> None:
    started = config.stash.get(_RUN_WIDE_SEAWEED, None)
    if started is not None:
        started[0].stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def seaweed_server(request: pytest.FixtureRequest,
                         tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SeaweedS3]:
    """The run's one SeaweedFS S3 server, shared by every test's bucket (`seaweed`): the xdist
    controller's (pytest_configure), else one of this session's own. A server of its own cost each test
    2-3 s of start-up, some 60 times a run; one per worker, 1.1-1.4 % of a core each for the whole run."""
    from broadcaster.demo.seaweed import SeaweedS3

    described = getattr(request.config, "workerinput", {}).get(_SEAWEED_INPUT)
    if described is not None:
        yield SeaweedS3.attach(json.loads(described))
        return
    async with SeaweedS3(tmp_path_factory.mktemp("seaweed"), discard=True, shared=True) as server:
        yield server


@pytest.fixture
async def seaweed(seaweed_server: SeaweedS3) -> AsyncIterator[SeaweedS3]:
    """A bucket of its own on the run's SeaweedFS S3 server (public-read, CORS on), deleted
    with its objects afterwards: what a test does to its bucket, no other test sees."""
    from tests.support.s3 import bucket_of_its_own

    async with bucket_of_its_own(seaweed_server) as bucket:
        yield bucket


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Recordings:
    """The transcoder's encodings, each made once per run and replayed by the emulators given them
    (broadcaster/demo/recordings.py): one folder for every xdist worker of the run."""
    from broadcaster.demo.recordings import Recordings

    base = tmp_path_factory.getbasetemp()
    return Recordings((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "emulator-recordings")


@pytest.fixture
async def owncast(tmp_path: Path, recordings: Recordings) -> AsyncIterator[OwncastEmulator]:
    """A live synthetic stream (2 variants, 1 s segments) written to tmp_path/hls like Owncast (the
    transcoder's encoding replayed: recordings), with the ledger of what it finished writing (a hash
    per file) for the tests that compare bytes."""
    from broadcaster.demo.emulator import Ledger, OwncastEmulator

    async with OwncastEmulator(tmp_path / "hls", ledger=Ledger(), recordings=recordings) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto as a real S3 server over HTTP on 127.0.0.1 (fast; SeaweedFS is the thorough one)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def tracker_dir() -> Path:
    """broadcaster/tracker/ with its node_modules, installed once per lock file into a cache folder."""
    from broadcaster.demo.tracker import TrackerUnavailable, install

    try:
        return install()
    except TrackerUnavailable as err:  # scripts/test installs Node.js: missing is a broken set-up, not a skip
        pytest.fail(f"no tracker here: {err} (scripts/test installs nodejs and npm)")
