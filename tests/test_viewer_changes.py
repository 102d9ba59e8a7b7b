"""The viewer page's report counts (viewer/src/playback.js's changesOf), run by Node as the module the page
bundles: what each heartbeat's report carries is what changed since the last, and a report the service
did not take goes into the next, also when another report went before its answer came."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[1] / "viewer" / "src" / "playback.js"

CASES = """
import { changesOf } from %s;
let totals = [0, 0];
const view = changesOf(() => totals);
totals = [1, 10];
const first = view.take();           // report 1
totals = [3, 15];
const second = view.take();          // report 2, sent before report 1's answer came
view.undo(first);                    // report 1 answered: not taken (a 503, "too soon")
totals = [4, 15];
const third = view.take();           // carries report 1's counts
view.undo(third);                    // not taken either (its beat failed on the way)
const fourth = view.take();          // nothing new since: what did not go, all of it
const fifth = view.take();
console.log(JSON.stringify({ first, second, third, fourth, fifth }));
"""


def test_a_report_not_taken_goes_into_the_next_even_after_another_went() -> None:
    """Report 1 answered "not taken" after report 2 went: the next report carries report 1's counts, and
    report 2's are not sent again (neither lost nor counted twice)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed (scripts/test installs it)")
    script = CASES % json.dumps(MODULE.as_uri())
    done = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["first"] == [1, 10] and got["second"] == [2, 5]
    assert got["third"] == [2, 10]  # report 1's counts, and what changed since report 2
    assert got["fourth"] == [2, 10] and got["fifth"] == [0, 0]
    # Taken: reports 2 and 4, which hold the totals, each count once. Stepping back to the totals before
    # the last take instead sent [3, 5] third: [5, 10] in all.
    assert [a + b for a, b in zip(got["second"], got["fourth"], strict=True)] == [4, 15]
