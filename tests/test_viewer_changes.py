"""viewer/src/playback.js's changesOf, run by Node: each report carries what changed since the last, and
one the service did not take goes into the next."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.node import module_output

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
    """Neither lost nor counted twice."""
    got = module_output(CASES % json.dumps(MODULE.as_uri()))
    assert got["first"] == [1, 10] and got["second"] == [2, 5]
    assert got["third"] == [2, 10]  # report 1's counts, and what changed since report 2
    assert got["fourth"] == [2, 10] and got["fifth"] == [0, 0]
    # Taken: reports 2 and 4, which hold the totals, each count once. Stepping back to the totals before
    # the last take instead sent [3, 5] third: [5, 10] in all.
    assert [a + b for a, b in zip(got["second"], got["fourth"], strict=True)] == [4, 15]
