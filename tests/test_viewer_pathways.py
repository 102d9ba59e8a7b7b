"""viewer/src/pathways.js, run by Node: a failing bucket goes behind the others for LEAVE_MS, a second bucket
before the VM, the VM never moved, the manifest's order otherwise."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.node import module_output

MODULE = Path(__file__).resolve().parents[1] / "viewer" / "src" / "pathways.js"

CASES = """
import { demoted, LEAVE_MS } from %s;
const at = (entries) => new Map(entries);
const order = ['bucket', 'backup', 'vm'];
const same = ['bucket', 'vm'];
console.log(JSON.stringify({
  none: demoted(order, at([]), 1000) === order,
  bucket: demoted(order, at([['bucket', 1000]]), 1000),
  bucketNoBackup: demoted(same, at([['bucket', 1000]]), 1000),
  bucketOnly2: demoted(['bucket', 'backup'], at([['bucket', 1000]]), 1000),
  both: demoted(order, at([['bucket', 1000], ['backup', 1500]]), 2000),
  vmNever: demoted(['vm', 'bucket'], at([['vm', 1000]]), 1000),
  over: demoted(order, at([['bucket', 1000]]), 1000 + LEAVE_MS) === order,
  justBefore: demoted(order, at([['bucket', 1000]]), 999 + LEAVE_MS),
  leave: LEAVE_MS,
}));
"""


def test_a_failing_bucket_goes_behind_the_others_for_a_while() -> None:
    got = module_output(CASES % json.dumps(MODULE.as_uri()))
    assert got == {
        "none": True,
        "bucket": ["backup", "vm", "bucket"],  # the second bucket first, as the service's policy puts it
        "bucketNoBackup": ["vm", "bucket"],
        "bucketOnly2": ["backup", "bucket"],  # PATHWAYS=bucket,backup: no VM to go to
        "both": ["vm", "bucket", "backup"],
        "vmNever": ["vm", "bucket"],  # its 503 says ask again; it is the last resort
        "over": True,
        "justBefore": ["backup", "vm", "bucket"],
        "leave": 10000,
    }, got
