"""Rules the suite keeps about itself: a test file imports from tests/support, never another test file; a
unit test (no `integration` mark) loads neither moto nor the demo's process-running parts, importing or
running; a wait is the one `until` (tests/support/waiting.py); a browser wait polls on a timer (POLL_MS)."""

from __future__ import annotations

import ast
import collections
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# What costs a unit test its import time (moto: ~0.6 s of CPU, the emulator and SeaweedFS's client: ~0.8 s,
# in every xdist worker): the demo's format helpers (owncast_files, ledger) and small ones stay allowed.
HEAVY = ("moto", "broadcaster.demo.emulator", "broadcaster.demo.seaweed", "broadcaster.demo.run",
         "broadcaster.demo.tracker", "broadcaster.demo.transcoder")


def modules() -> list[Path]:
    return sorted(TESTS.glob("test_*.py"))


@functools.cache  # each test module parsed once per run, not once per rule (the trees are only read)
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imports(path: Path, source: str | None = None) -> set[str]:
    """Every module the file (or `source`, read as that file) imports anywhere, by its absolute name
    (relative ones resolved; each name of a `from` import counted too: it may be a module)."""
    tree = _parsed(path) if source is None else ast.parse(source, str(path))
    package = path.resolve().parent.relative_to(ROOT).parts
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_relative_imports_are_seen_by_their_absolute_names() -> None:
    source = "from .test_x import env\nfrom . import test_y, conftest\nfrom .support.world import World\n"
    assert {"tests.test_x", "tests.test_y", "tests.support.world"} <= imports(TESTS / "test_probe.py", source)
    assert "tests.support.test_w" in imports(TESTS / "support" / "probe.py", "from .test_w import b\n")
    assert "tests.test_v" in imports(TESTS / "support" / "probe.py", "from ..test_v import c\n")


def test_no_test_file_imports_another() -> None:
    """Neither a test file nor a module of tests/support imports a test file: what they share is in tests/support."""
    files = [*modules(), *sorted((TESTS / "support").rglob("*.py"))]
    wrong = {p.relative_to(TESTS).as_posix(): sorted({".".join(m.split(".")[:2]) for m in imports(p)
                                                      if m.startswith("tests.test_")}) for p in files}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_unit_tests_import_neither_moto_nor_the_demos_processes() -> None:
    # A unit test: no `integration` mark on the module (pytestmark) nor on any of its tests.
    units = [f"tests.{p.stem}" for p in modules() if "mark.integration" not in p.read_text()]
    assert len(units) > 20, units  # the check sees the unit tests (they are most of the files)
    code = ("import importlib, json, sys\n"
            "loaded = {}\n"
            f"for name in ['tests.conftest', *{units!r}]:\n"
            "    before = set(sys.modules)\n"
            "    importlib.import_module(name)\n"
            f"    loaded[name] = sorted(m for m in set(sys.modules) - before if m.startswith({HEAVY!r}))\n"
            "print(json.dumps(loaded))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=True)
    loaded = json.loads(done.stdout)
    assert {name: heavy for name, heavy in loaded.items() if heavy} == {}


def marked_integration(decorators: list[ast.expr]) -> bool:
    """`@pytest.mark.integration` (or a call of it) among the decorators, or in a `pytestmark` value."""
    return any(isinstance(n, ast.Attribute) and n.attr == "integration" and ast.unparse(n.value).endswith("mark")
               for d in decorators for n in ast.walk(d))


def heavy_imports_in_unit_functions(path: Path, source: str | None = None) -> list[str]:
    """Each import of a HEAVY module inside a function that runs without the `integration` mark (on itself,
    its class or pytestmark), unseen by the module-level check; those under `if TYPE_CHECKING:` aside."""
    tree = _parsed(path) if source is None else ast.parse(source, str(path))
    module_marks = [node.value for node in tree.body if isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)]
    found: list[str] = []

    def visit(node: ast.AST, marked: bool, where: str) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            marked = marked or marked_integration(node.decorator_list)
            where = f"{where}.{node.name}" if where else node.name
        if where and not marked and isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(f"{node.module}.{name}" for name in names)]
            heavy = sorted({n for n in names if any(n == h or n.startswith(f"{h}.") for h in HEAVY)})
            if heavy:
                found.append(f"{path.name}:{node.lineno} {where}: {', '.join(heavy)}")
        for child in ast.iter_child_nodes(node):
            visit(child, marked, where)

    visit(tree, marked_integration(module_marks), "")
    return found


def test_the_heavy_import_check_sees_a_test_function_import() -> None:
    source = ("import pytest\nfrom typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from broadcaster.demo.emulator import OwncastEmulator\n"
              "def test_a() -> None:\n    from broadcaster.demo import run\n"
              "@pytest.mark.integration\nasync def test_b() -> None:\n    import moto\n"
              "class TestC:\n    def test_d(self) -> None:\n        import moto.server\n"
              "def test_e() -> None:\n    from broadcaster.demo.owncast_files import pdt\n    import motorway\n")
    assert heavy_imports_in_unit_functions(TESTS / "test_probe.py", source) == [
        "test_probe.py:6 test_a: broadcaster.demo.run", "test_probe.py:12 TestC.test_d: moto.server"]
    marked = "import pytest\npytestmark = [pytest.mark.integration]\ndef test_a() -> None:\n    import moto\n"
    assert heavy_imports_in_unit_functions(TESTS / "test_probe.py", marked) == []


def test_unit_tests_import_no_heavy_module_inside_a_function() -> None:
    """Nor where it runs (a type goes under TYPE_CHECKING; a stub of the demo's runner, in its place)."""
    assert [hit for p in modules() for hit in heavy_imports_in_unit_functions(p)] == []


_HOSTILE = ("test_playback_reports.py::"
            "test_a_hostile_client_moves_the_real_services_figures_no_further_than_its_pages_could")
_STUCK = "test_stuck_variant.py::test_a_viewer_on_the_variant_whose_file_never_finishes_does_not_stand_still"
_BUSY = "test_input_bounds.py::test_a_variant_folder_that_appears_while_the_others_are_busy_is_noticed"
# Loops that sleep and are not waits: they pace a writer, a load or an observer (each ends when its task is
# cancelled or its time is up), or stand in for a clock. Every wait on a condition is `until`
# (tests/support/waiting.py). "file::function" -> why it is not a wait.
PACING = {
    "support/browser_slots.py::BrowserSlots.take": "a worker's wait for another's browser module to end, in "
                                                   "pytest's own hook, outside any event loop (bounded: WAIT)",
    "support/fault_proxy.py::FaultProxy._read_slowly": "reads a slow client's body at the rate it was set to",
    "support/hostile.py::forge_reports": "made-up pages' beats, one a second, for the test's time",
    "support/hostile.py::Fetcher.run": "a hostile client's requests, paced after a refusal, until stopped",
    "support/owncast_writer.py::keep_writing": "Owncast's writes, one segment a second on the stream's clock",
    "support/owncast_viewers.py::OwncastViewers._prune_loop": "Owncast's viewer pruning, every prune_every",
    "support/players.py::Client.wait_for_sequence": "a held request on the client's scripted clock, as the "
                                                    "service holds one (None at its timeout)",
    "test_faults_http.py::test_a_request_split_across_slow_writes_is_answered":
        "other clients' requests while the slow one writes: each answer is the check",
    "test_faults_input.py::quiet_for": "a negative (nothing logged again) watched for a time: no condition",
    "test_faults_input.py::_swap_loop": "the fault: swaps two folders back and forth until told to stop",
    "test_faults_restart.py::_note_owncast": "an observer: notes Owncast's playlists until cancelled",
    "test_faults_storage.py::Watch.run": "an observer: polls the service until cancelled",
    f"{_BUSY}.owncast_writes": "Owncast's writes, paced, until told to stop",
    "test_mirror.py::test_writes_to_one_key_start_at_least_a_second_apart.fake_sleep":
        "the fake clock's sleep handed to the code under test",
    "test_monitoring.py::blocking_viewer": "a viewer's load, until cancelled",
    "test_monitoring.py::viewer_page": "a page's heartbeats, one a second, until cancelled",
    "test_owncast_matrix.py::Matrix.watch": "an observer: Owncast's and the service's playlists",
    "test_owncast_matrix.py::Matrix.follow": "an observer: each version by blocking reload, until cancelled",
    "support/first_listed.py::FirstListed.fetch": "a player's fetch asked again after a 503's Retry-After, "
                                                   "as the answer says (at most LATE_UPLOAD)",
    "test_pathway_http.py::Waiting.wait_for_sequence": "a fake of VisiblePlaylists' held request (None at "
                                                       "its timeout, as the service's)",
    f"{_HOSTILE}.greedy_page": "a page's beats for the test's 6 s",
    f"{_HOSTILE}.careful_page": "a page's beats for the test's 6 s",
    f"{_HOSTILE}.made_up": "made-up pages' beats for the test's 6 s",
    "test_start_clock.py::expiry": "measures StartClock itself: the clock under test ends the loop",
    "test_startup_order.py::_polling.poll": "an observer: reads every version until cancelled",
    "test_stuck_variant.py::poll_until_cancelled": "an observer: reads every version until cancelled",
    f"{_STUCK}.owncast": "Owncast's writes, one segment a second",
}


def sleeping_loops(path: Path, source: str | None = None) -> list[str]:
    """The function (dotted, within the file) of each `while` whose body awaits asyncio.sleep or calls
    time.sleep (as `sleep` too, when imported so), once per loop."""
    tree = _parsed(path) if source is None else ast.parse(source, str(path))
    bare = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
            and n.module in ("asyncio", "time") for a in n.names if a.name == "sleep"}

    def sleeps(node: ast.AST) -> bool:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return False  # defined here, run elsewhere
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "sleep" and isinstance(f.value, ast.Name)
                    and f.value.id in ("asyncio", "time")) or (isinstance(f, ast.Name) and f.id in bare):
                return True
        return any(sleeps(child) for child in ast.iter_child_nodes(node))

    found: list[str] = []

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            where = f"{where}.{node.name}" if where else node.name
        if isinstance(node, ast.While) and any(sleeps(statement) for statement in node.body):
            found.append(where or "<module>")
        for child in ast.iter_child_nodes(node):
            visit(child, where)

    visit(tree, "")
    return found


def test_sleeping_loops_are_found() -> None:
    source = ("import asyncio, time\nfrom asyncio import sleep as nap\n"
              "async def a() -> None:\n    while True:\n        if x():\n"
              "            await asyncio.sleep(0.1)\n"
              "def b() -> None:\n    while x():\n        time.sleep(1)\n"
              "class C:\n    async def d(self) -> None:\n        while x():\n            await nap(1)\n"
              "async def e() -> None:\n    while x():\n        await other.sleep(1)\n"
              "        def later() -> None:\n            time.sleep(1)\n"
              "async def f() -> None:\n    for _ in range(3):\n        await asyncio.sleep(1)\n")
    assert sleeping_loops(TESTS / "test_probe.py", source) == ["a", "b", "C.d"]


def test_waits_are_until_and_only_pacing_loops_sleep() -> None:
    """A `while` that sleeps is a hand-made wait, unless PACING says why it is not one."""
    found: dict[str, list[str]] = {}
    for path in [*modules(), *sorted((TESTS / "support").rglob("*.py"))]:
        if path.name == "waiting.py":
            continue
        name = path.relative_to(TESTS).as_posix()
        found[name] = [f"{name}::{where}" for where in sleeping_loops(path)]
    loops = {loop for file, found_in in found.items() if file not in PACING for loop in found_in}
    assert sorted(loops - PACING.keys()) == []
    # An entry for a loop that is gone goes too (a whole file's entry may outlast its loops).
    assert sorted(key for key in PACING if "::" in key and key not in loops) == []


def frame_polled_waits(path: Path, source: str | None = None) -> list[int]:
    """The lines of wait_for_function calls not given `polling=POLL_MS` (Playwright's default polls on
    every animation frame, keeping Chromium drawing for as long as the wait lasts)."""
    tree = _parsed(path) if source is None else ast.parse(source, str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "wait_for_function"
            and not any(k.arg == "polling" and isinstance(k.value, ast.Name) and k.value.id == "POLL_MS"
                        for k in node.keywords)]


def test_browser_waits_poll_on_a_timer() -> None:
    source = "async def f(page):\n    await page.wait_for_function('x', timeout=1)\n" \
             "    await page.frames[0].wait_for_function('y', polling=POLL_MS)\n" \
             "    await page.wait_for_function('z', polling='raf')\n"
    assert frame_polled_waits(TESTS / "test_probe.py", source) == [2, 4]
    files = [*modules(), *sorted((TESTS / "support").rglob("*.py")), *sorted((ROOT / "bench").glob("*.py"))]
    found = {p.relative_to(ROOT).as_posix(): lines for p in files if (lines := frame_polled_waits(p))}
    assert found == {}


def test_the_runs_order_is_made_from_data_that_names_the_modules_there_are() -> None:
    """The seconds data (tests/support/order.py) names modules there are, and covers the long ones."""
    from tests.support import order

    recorded = order.read()
    assert recorded, "tests/durations.json is empty: run scripts/test --write-durations"
    assert [name for name in recorded if not (TESTS / name).is_file()] == []
    grouped = {path.name for path in modules()  # those that mark an xdist_group("name")
               if re.search(r"""xdist_group\(\s*["']([\w-]+)["']""", path.read_text())}
    assert grouped - set(recorded) == set(), "a grouped module has no recorded seconds: scripts/test --write-durations"


def test_the_order_begins_the_longest_groups_then_the_long_ones() -> None:
    from tests.support.order import Module, group_order, ungrouped_rank

    groups = {"short": (10.0, False), "long": (100.0, False), "p2p": (200.0, True), "gap": (20.0, True)}
    # The longest quiet one, then the browser groups longest first, the other quiet ones after.
    assert group_order(groups) == ("long", "p2p", "gap", "short")
    modules = {"test_a.py": Module(60.0, 2), "test_b.py": Module(40.0, 1), "test_c.py": Module(3.0, 3)}
    ranks = sorted([("test_a.py", False), ("test_b.py", True), ("test_c.py", False), ("test_new.py", False)],
                   key=lambda m: ungrouped_rank(modules, *m))
    assert [name for name, _ in ranks] == ["test_a.py", "test_b.py", "test_c.py", "test_new.py"]


def test_browser_slots_hold_the_browser_modules_to_their_number(tmp_path: Path) -> None:
    from tests.support.browser_slots import BrowserSlots

    first, second = BrowserSlots.make(tmp_path, 1), BrowserSlots(tmp_path)
    first.take("first")
    with pytest.raises(RuntimeError, match="no 1 browser slot"):
        second.take("second", wait=0.3)
    first.give()
    second.take("second")
    assert second.held and not first.held
    second.give()


def test_a_module_of_two_slots_waits_for_two_free_at_once_holding_none(tmp_path: Path) -> None:
    from tests.support.browser_slots import BrowserSlots

    one, two, three = BrowserSlots.make(tmp_path, 3), BrowserSlots(tmp_path), BrowserSlots(tmp_path)
    one.take("one")
    two.take("two", weight=2)  # the other two
    with pytest.raises(RuntimeError, match="no 1 browser slot"):
        three.take("three", wait=0.3)
    one.give()
    with pytest.raises(RuntimeError, match="no 2 browser slot"):
        one.take("one again", weight=2, wait=0.3)
    three.take("three")  # the slot `one again` did not keep while it waited
    two.give()
    three.give()
    one.take("one again", weight=5, wait=0.3)  # more than there are: every one
    with pytest.raises(RuntimeError, match="no 1 browser slot"):
        three.take("three", wait=0.3)
    one.give()


def test_the_scheduler_hands_out_other_work_while_the_browser_slots_are_full(tmp_path: Path) -> None:
    from tests.support.browser_slots import BrowserBound, BrowserSlots

    slots = BrowserSlots.make(tmp_path, 2)
    slots.note_tests({"t/a.py::x@a": 1, "t/a.py::y@a": 1, "t/b.py::x@b": 1, "t/c.py::x@c": 1, "t/e.py::x": 1})
    bound = BrowserBound.__new__(BrowserBound)  # its state alone: no xdist run behind it
    bound.slots, bound._browser, bound.assigned_work = slots, None, {}
    bound.workqueue = collections.OrderedDict((s, {}) for s in ["a", "b", "c", "d", "t/e.py::x", "t/f.py::x"])
    assert bound.browser_units() == {"a": 1, "b": 1, "c": 1, "t/e.py::x": 1}
    assert bound.next_unit() == "a"
    bound.assigned_work = {"one": {"a": {"t/a.py::x@a": True, "t/a.py::y@a": False}}, "two": {"b": {"t/b.py::x@b": False}}}
    for done in ("a", "b"):
        del bound.workqueue[done]
    assert bound.next_unit() == "d"  # two out: the browser units wait, in order
    del bound.workqueue["d"]
    assert bound.next_unit() == "t/f.py::x"
    bound.assigned_work["one"]["a"]["t/a.py::y@a"] = True
    assert bound.next_unit() == "c"  # one came back
    bound.assigned_work["three"] = {"c": {"t/c.py::x@c": False}}
    del bound.workqueue["c"], bound.workqueue["t/f.py::x"]
    assert bound.next_unit() == "t/e.py::x"  # only browser units left: the slots bound them


def test_the_scheduler_counts_a_module_of_two_slots_as_two(tmp_path: Path) -> None:
    from tests.support.browser_slots import BrowserBound, BrowserSlots

    slots = BrowserSlots.make(tmp_path, 3)
    slots.note_tests({"t/a.py::x@a": 2, "t/a.py::y@a": 2, "t/b.py::x@b": 1, "t/c.py::x@c": 2, "t/d.py::x@d": 1})
    bound = BrowserBound.__new__(BrowserBound)
    bound.slots, bound._browser = slots, None
    bound.assigned_work = {"one": {"a": {"t/a.py::x@a": False, "t/a.py::y@a": False}}}
    bound.workqueue = collections.OrderedDict((s, {}) for s in ["c", "b", "d", "t/e.py::x"])
    assert bound.next_unit() == "b"  # two out: one more fits, two do not
    bound.assigned_work["two"] = {"b": {"t/b.py::x@b": False}}
    del bound.workqueue["b"]
    assert bound.next_unit() == "t/e.py::x"  # three out
    bound.assigned_work = {}
    assert bound.next_unit() == "c"
