"""Shared fixtures for the integration tests.

Each imports what it runs (moto, the demo's parts) when a test asks for it, not here: a unit test
(tests/test_manifest.py, ...) imports neither moto nor broadcaster.demo (tests/test_suite_rules.py).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from tests.support import order

if TYPE_CHECKING:
    from broadcaster.demo.emulator import OwncastEmulator
    from broadcaster.demo.recordings import Recordings
    from broadcaster.demo.seaweed import SeaweedS3
    from tests.support.browser_slots import BrowserSlots
    from tests.support.s3 import RunWideServer

# The fixtures several modules share, each kind in one support module.
pytest_plugins = ("tests.support.served",)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hls-broadcaster", "runs by hand")
    group.addoption("--passthrough-runs", type=int, default=0, metavar="N",
                    help="issue 39: run the Owncast matrix's chains with passthrough N times in a row (tests/"
                         "test_owncast_matrix.py::test_the_passthrough_chains_again); left out without it")
    group.addoption("--write-durations", action="store_true",
                    help="record each module's seconds in tests/durations.json, the data the suite's order is "
                         "made from (tests/support/order.py): run with a full scripts/test")
    group.addoption("--browsers-at-once", type=int, default=0, metavar="N",
                    help="with xdist workers: at most N browser modules at once (default: the machine's cores "
                         "plus one, tests/support/browser_slots.py)")
    group.addoption("--passthrough-late-tails", action="store_true",
                    help="with --passthrough-runs: hold every segment's last bytes until its playlist names "
                         "it, as the matrix's rows do, rather than leave the race to chance")


def xdist_group(item: pytest.Item) -> str | None:
    """The group pytest-xdist's loadgroup gives the item: its xdist_group names, sorted, joined by _."""
    names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                    for mark in item.iter_markers("xdist_group")})
    return "_".join(names) or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The groups and the long modules first, in tests/support/order.py's order (xdist keeps it:
    --no-loadscope-reorder): each group is one long unit of work, best begun before the short tests. Runs by
    hand are left out unless asked for."""
    if not config.getoption("--passthrough-runs"):
        by_hand = [item for item in items if "passthrough_run" in getattr(item, "fixturenames", ())]
        if by_hand:
            config.hook.pytest_deselected(items=by_hand)
            items[:] = [item for item in items if item not in by_hand]

    modules = order.read()
    groups: dict[str, tuple[float, bool]] = {}
    counted: set[str] = set()  # the modules whose seconds a group has counted
    for item in items:
        if (group := xdist_group(item)) is None:
            continue
        seconds, browser = groups.get(group, (0.0, False))
        if item.path.name not in counted:
            counted.add(item.path.name)
            seconds += modules[item.path.name].seconds if item.path.name in modules else 0.0
        groups[group] = (seconds, browser or item.get_closest_marker("browser") is not None)
    group_rank = {g: n for n, g in enumerate(order.group_order(groups))}

    def in_order(item: pytest.Item) -> tuple[float, int, float]:
        group = xdist_group(item)
        if group is not None:
            return group_rank[group], 0, 0.0
        kind, per_test = order.ungrouped_rank(modules, item.path.name, item.get_closest_marker("browser") is not None)
        return len(group_rank) + 1.0, kind, per_test

    items.sort(key=in_order)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each module's seconds in this run (setup, call and teardown; in xdist's controller, every worker's),
    for --write-durations."""
    module = report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    _seconds[module] += report.duration
    if report.when == "call" or (report.when == "setup" and report.outcome == "skipped"):
        _tests[module] += 1


_seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
_tests: collections.Counter[str] = collections.Counter()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.getoption("--write-durations") and not hasattr(session.config, "workerinput"):
        order.write({name: order.Module(seconds, _tests[name]) for name, seconds in _seconds.items()
                     if _tests[name]})


# The run's one SeaweedFS server (tests/support/s3.py), in the xdist controller: started before the workers,
# named to each (its workerinput), stopped after them.
_RUN_WIDE_SEAWEED = pytest.StashKey[tuple["RunWideServer", str]]()  # the server, and its describe() in JSON
_SEAWEED_INPUT = "seaweed_s3"


# The run's browser slots (tests/support/browser_slots.py): made by the controller, their folder named to
# each worker, which holds one for as long as it runs a browser module's tests.
_SLOTS = pytest.StashKey["BrowserSlots"]()
_SLOTS_INPUT = "browser_slots"


def pytest_configure(config: pytest.Config) -> None:
    from tests.support.browser_slots import BrowserSlots

    if (folder := getattr(config, "workerinput", {}).get(_SLOTS_INPUT)) is not None:
        config.stash[_SLOTS] = BrowserSlots(Path(folder))
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None) or config.option.collectonly:
        return  # a worker, a run without workers, or no test to run
    _make_slots(config)
    from broadcaster.demo.seaweed import SeaweedError
    from tests.support.s3 import RunWideServer

    server = RunWideServer()
    try:
        described = server.start()
    except SeaweedError as err:  # each worker starts its own, and a test that needs one says why it failed
        print(f"tests/conftest.py: no SeaweedFS for the whole run, each worker starts its own: {err}")
        return
    config.stash[_RUN_WIDE_SEAWEED] = (server, json.dumps(described))


def _make_slots(config: pytest.Config) -> None:
    from tests.support.browser_slots import BrowserSlots, at_once

    count = config.getoption("--browsers-at-once") or at_once()
    config.stash[_SLOTS] = BrowserSlots.make(Path(tempfile.mkdtemp(prefix="hlsb-browser-slots-")), count)


def pytest_report_header(config: pytest.Config) -> str | None:
    slots = config.stash.get(_SLOTS, None)
    return None if slots is None else f"browser modules at once: {slots.count} (tests/support/browser_slots.py)"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """scripts/test's loadgroup, holding the browser units to the run's slots."""
    from tests.support.browser_slots import BrowserBound

    slots = config.stash.get(_SLOTS, None)
    return BrowserBound(config, log, slots) if slots is not None and config.getvalue("dist") == "loadgroup" else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """A worker notes which tests are browser tests for the scheduler, before xdist's own hook sends the
    collection to the controller (tryfirst): the scheduler reads them when it hands out the first unit."""
    slots = session.config.stash.get(_SLOTS, None)
    if slots is not None and hasattr(session.config, "workerinput"):
        slots.note_tests({item.nodeid: _weight(item) for item in session.items if _browser(item)})


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the controller: each worker is told where the run's SeaweedFS and slots are."""
    started = node.config.stash.get(_RUN_WIDE_SEAWEED, None)
    if started is not None:
        node.workerinput[_SEAWEED_INPUT] = started[1]
    if (slots := node.config.stash.get(_SLOTS, None)) is not None:
        node.workerinput[_SLOTS_INPUT] = str(slots.folder)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A worker takes a browser slot before a browser module's first test (outside pytest-timeout's bound:
    this hook wraps its own) and gives it back after the module's last test here, its module fixtures'
    teardown included."""
    slots = item.config.stash.get(_SLOTS, None)
    if slots is not None and hasattr(item.config, "workerinput") and _browser(item) and not slots.held:
        waited = slots.take(item.nodeid, _weight(item))
        item.user_properties.append(("browser_slot_wait_s", round(waited, 1)))
    yield
    if slots is not None and slots.held and not (nextitem is not None and nextitem.path == item.path
                                                 and _browser(nextitem)):
        slots.give()


def _browser(item: pytest.Item) -> bool:
    return item.get_closest_marker("browser") is not None


def _weight(item: pytest.Item) -> int:
    """The browser slots a test's module takes: `browser(slots=N)`, else one."""
    marker = item.get_closest_marker("browser")
    return int(marker.kwargs.get("slots", 1)) if marker is not None else 0


def pytest_unconfigure(config: pytest.Config) -> None:
    started = config.stash.get(_RUN_WIDE_SEAWEED, None)
    if started is not None:
        started[0].stop()
    slots = config.stash.get(_SLOTS, None)
    if slots is not None and not hasattr(config, "workerinput"):
        shutil.rmtree(slots.folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def seaweed_server(request: pytest.FixtureRequest,
                         tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SeaweedS3]:
    """The run's one SeaweedFS S3 server, shared by every test's bucket (`seaweed`): the xdist
    controller's (pytest_configure), else one of this session's own."""
    from broadcaster.demo.seaweed import SeaweedS3

    described = getattr(request.config, "workerinput", {}).get(_SEAWEED_INPUT)
    if described is not None:
        yield SeaweedS3.attach(json.loads(described))
        return
    async with SeaweedS3(tmp_path_factory.mktemp("seaweed"), discard=True, shared=True) as server:
        yield server


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder under /tmp anyone may enter (pytest's tmp_path is in root's 0700 folder), removed after."""
    from tests.support.as_user import open_folder

    folder = Path(tempfile.mkdtemp(prefix="hlsb-place-"))
    try:
        yield open_folder(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
