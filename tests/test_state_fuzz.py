"""Property: whatever bytes state.json holds (a real saved state mutated, or arbitrary bytes), start-up
restores it, the publisher usable and its next save restoring again, or moves it aside with exactly one
ERROR line and starts afresh. Anything else fails."""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.bucket.cleaner import Cleaner
from broadcaster.state.disk import StateFile
from tests.support.fakes import Bucket
from tests.support.world import World, snapshots_of
from tests.support.saved_state import saved_state

Path_ = list[str | int]


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(saved_state(Path(folder)))


def _paths(node: object, prefix: Path_) -> Iterator[Path_]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, [*prefix, k])
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, [*prefix, i])


_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70), st.integers(min_value=-3, max_value=40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["stream-a-1.ts", "https://x/\n#EXT-X-ENDLIST", "0", "-1", '"']),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)), max_leaves=10)
# Text-level damage: what json.dumps cannot write (1e400, deep nesting) and what a cut write leaves.
_TOKENS = ["1e400", "-1e400", "Infinity", "NaN", "[]", "{}", "null", '"x"', "9" * 25, "1" * 5000,
           "[" * 3000, "]", ",", ":", '"\\ud800"', "\x00", "true", "-0", "0.5"]


@st.composite
def damaged(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    kind = draw(st.sampled_from(["values", "values", "values", "text", "bytes", "reformatted"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "reformatted":
        # The same values written another way: it must restore. Without this kind almost every draw is
        # damage the checks refuse (1 to 4 of 200 restored), and whether the usable path was taken at
        # all depended on the base state of the run.
        return json.dumps(base, indent=draw(st.sampled_from([None, 0, 1, 4]))).encode()
    data = json.loads(json.dumps(base))
    paths = [p for p in _paths(data, []) if p]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        parent: Any = data
        try:
            for step in path[:-1]:
                parent = parent[step]
            old = parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced what led here
        action = draw(st.sampled_from(["replace", "replace", "delete", "nudge"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "nudge" and type(old) in (int, float):
            parent[path[-1]] = old + draw(st.sampled_from([-1, 1, -(10**6), 10**18, 2**63, 0.5]))
        else:
            parent[path[-1]] = draw(_values)
    body = json.dumps(data, allow_nan=True)
    if kind == "text":
        at = draw(st.integers(0, len(body)))
        cut = draw(st.integers(0, 20))
        body = body[:at] + draw(st.sampled_from(_TOKENS)) + body[at + cut:]
        if draw(st.booleans()):
            body = body[:draw(st.integers(0, len(body)))]  # a write cut short
    return body.encode(errors="surrogatepass")


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def _check(folder: Path, content: bytes) -> None:
    (folder / "state").mkdir()
    (folder / "hls").mkdir()
    (folder / "state" / "state.json").write_bytes(content)
    w = World(folder / "hls")
    cleaner = Cleaner(Bucket(), w.metrics, margin=5)
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    try:
        restored = snapshots_of(StateFile(folder / "state"), w.pub, cleaner).restore()
        if not restored:
            assert len(errors.messages) == 1 and "moved it to" in errors.messages[0], errors.messages
            assert not (folder / "state" / "state.json").exists()
            aside = [p for p in (folder / "state").iterdir() if p.name != "served"]  # made at start
            assert len(aside) == 1 and aside[0].read_bytes() == content
            assert w.pub.variants() == [] and w.pub.target_duration is None and cleaner.pending == 0
            return
        assert not errors.messages
        # Usable: it serves, reports, lists what Owncast writes next, and its next save restores.
        for v in w.pub.variants():
            rendered = w.playlists.media_playlist(v)
            assert rendered is None or rendered.body.startswith(b"#EXTM3U\n")
        w.health()
        # Two reads: after a state not saved at a clean stop, what the first read lists is not listed.
        for v in w.pub.variants() or [0]:
            w.owncast_lists(v, "stream-z-0.ts", "stream-z-1.ts")
        for v in w.pub.variants():
            w.owncast_lists(v, "stream-z-2.ts")
        await w.until(lambda: not w.pub.queue_depth, "the publisher's queue drained")
        for v in w.pub.variants():
            gen = w.pub.playlist(v)
            assert gen is not None and gen.uris()[-1].endswith("/stream-z-2.ts")  # a new stream is listed
            rendered = w.playlists.media_playlist(v)
            assert rendered is not None and b"stream-z-2.ts" in rendered.body
        again = StateFile(folder / "again")
        (folder / "again").mkdir()
        again.save({**w.pub.snapshot(), "cleaner": cleaner.snapshot()})
        w2 = World(folder / "hls")
        try:
            assert snapshots_of(again, w2.pub, Cleaner(Bucket(), w2.metrics, margin=5)).restore()
        finally:
            await w2.pub.close()
        assert not errors.messages
    finally:
        logging.getLogger().removeHandler(errors)
        await w.pub.close()


def test_any_state_file_restores_or_is_set_aside(base: dict[str, Any]) -> None:
    outcomes: list[bool] = []

    @settings(max_examples=200, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(content=damaged(base))
    def run(content: bytes) -> None:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(_check(Path(folder), content))
            outcomes.append((Path(folder) / "state" / "state.json").exists())

    run()
    assert True in outcomes and False in outcomes  # both ways were taken


def test_the_unchanged_state_restores(base: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_check(Path(folder), json.dumps(base).encode()))
        assert (Path(folder) / "state" / "state.json").exists()
