"""What a segment costs the publisher in CPU, this checkout against a baseline revision, in one process
(issue 43: a version carries its memory as a value, tails.py).

    python -m bench.memory_cost [--base REV] [--variants 1,3,5] [--segments 300] [--window 30]
                                [--rounds 3]

Each run is the real path a segment takes through the publisher with a state file kept: a Publisher
with the real Uploader (a bucket in memory), Owncast's playlists fed a segment a second on a stepped
clock (so the window slides), each version saved through the real JournaledState (on /dev/shm when
there is one) before it is shown, as the service does. CPU is the process's (time.process_time: the
saves' worker threads included), per segment (one slot listed in every variant), over the segments
after the first window. The baseline is the same run of `--base`'s package (by default the commit of
main this checkout started from: what it changed), exported from git into a temporary folder and
imported under another name beside this checkout's; the two alternate, round by round, and each row
gives the medians and their ratio. No goal: a figure to read (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BASE_NAME = "broadcaster_base"
EPOCH = 1_800_000_000.0
SEGMENT = b"\x47" * 188 * 20  # what each file holds: the bytes do not matter, the uploads read them


def export(rev: str, into: Path) -> str:
    """`rev`'s broadcaster package as BASE_NAME in `into` (its absolute imports renamed); its commit."""
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, "broadcaster"], cwd=REPO, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    package = into / BASE_NAME
    (into / "broadcaster").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text()
        renamed = re.sub(r"\b(from|import) broadcaster\b", rf"\1 {BASE_NAME}", text)
        if renamed != text:
            path.write_text(renamed)
    return commit


def module(package: str, name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{name}")


class MemoryBucket:
    """The bucket: every put lands at once."""

    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
        return None

    async def probe(self) -> None:
        return None


def whole_writes(finish: Any) -> Any:
    """The writes' watch when every file is finished as asked (`finish`: the package's Finish)."""

    class Whole:
        async def finished(self, path: Path, limit: float, on_writing: Any = None) -> Any:
            return finish.READY

        def follow(self, hook: Any) -> None:  # nothing is written again (asked of the publisher since issue 67)
            pass

    return Whole()


class Listings:
    """The Release's on_listed hook: counts the listings told; `reach(n)` waits until n were."""

    def __init__(self) -> None:
        self.count = 0
        self._want = 0
        self._reached = asyncio.Event()

    def __call__(self, *_args: object) -> None:
        self.count += 1
        if self.count >= self._want:
            self._reached.set()

    async def reach(self, n: int, timeout: float = 30.0) -> None:
        self._want = n
        if self.count < n:
            self._reached.clear()
            async with asyncio.timeout(timeout):
                await self._reached.wait()


async def feed(pub: Any, owncast: ModuleType, hls_dir: Path, variants: int, total: int, clock: list[float],
               listings: Listings, segment: bytes, on_slot: Callable[[int], None] = lambda n: None) -> None:
    """Owncast's folder with `total` segments in each variant, then its playlists fed to `pub` a slot a
    second on the stepped `clock` (Owncast lists its last 10), each slot listed, saved and shown in every
    variant before the next (`on_slot(n)` before slot n is fed)."""
    names = [f"stream-bench-{n}.ts" for n in range(total)]
    for v in range(variants):
        (hls_dir / str(v)).mkdir()
        for name in names:
            (hls_dir / str(v) / name).write_bytes(segment)
    pub.on_master([owncast.SourceVariant(v, 1_000_000 // (v + 1)) for v in range(variants)])
    for n in range(total):
        on_slot(n)
        clock[0] += 1.0
        first = max(0, n - 9)
        listing = tuple(owncast.SourceSegment(names[k], 1.0, EPOCH + k, False, None, position=k - first)
                        for k in range(first, n + 1))
        for v in range(variants):
            pub.on_variant_playlist(v, owncast.SourcePlaylist(1, first, listing, False, True))
        await listings.reach(variants * (n + 1))


async def run(package: str, folder: Path, variants: int, segments: int, window: float) -> float:
    """CPU seconds per segment, after the first window, of one run of `package`'s publisher."""
    m: dict[str, ModuleType] = {n: module(package, n) for n in (
        "metrics", "bucket.uploader", "bucket.urls", "publish.publisher", "publish.release",
        "publish.visible", "state.snapshots", "state.journal", "source.owncast", "source.writes")}
    has_config = (Path(m["publish.publisher"].__file__ or "").parent / "config.py").exists()
    config_module = module(package, "publish.config") if has_config else m["publish.publisher"]
    owncast = m["source.owncast"]
    hls_dir, state_dir = folder / "hls", folder / "state"
    hls_dir.mkdir()
    state_dir.mkdir()
    clock = [0.0]
    metrics = m["metrics"].Metrics()
    uploader = m["bucket.uploader"].Uploader(MemoryBucket(), metrics, concurrency=8, attempt_timeout=5,
                                             backoff=m["bucket.uploader"].Backoff(base=0.001, cap=0.001))
    listings = Listings()
    snapshots = m["state.snapshots"].Snapshots(m["state.journal"].JournaledState(state_dir), metrics)
    outlets = m["publish.release"].Outlets(m["publish.visible"].VisiblePlaylists(), snapshots,
                                           on_listed=(listings,))
    # Since issue 49 the window's options travel as one record (playlist/options.py); a baseline before
    # it takes the seconds alone.
    fields = getattr(config_module.PublisherConfig, "__dataclass_fields__", {})
    window_option = ({"window": module(package, "playlist.options").WindowOptions(window)} if "window" in fields
                     else {"window_seconds": window})
    config = config_module.PublisherConfig(
        hls_dir=hls_dir, key_prefix="live", urls=m["bucket.urls"].PublicUrls("https://cdn.example"),
        wall_clock=lambda: EPOCH + clock[0], monotonic=lambda: clock[0], **window_option)
    writes = whole_writes(m["source.writes"].Finish)
    pub = m["publish.publisher"].Publisher(config, uploader=uploader, writes=writes, metrics=metrics,
                                           outlets=outlets)
    m["state.snapshots"].register_parts(snapshots, pub)
    await pub.start()
    warm = int(window) + 1 if segments > int(window) + 1 else 0  # the window slides from here on
    started = [0.0]

    def on_slot(n: int) -> None:
        if n == warm:
            started[0] = time.process_time()

    await feed(pub, owncast, hls_dir, variants, segments, clock, listings, SEGMENT, on_slot)
    spent = time.process_time() - started[0]
    await pub.close()
    return spent / max(1, segments - warm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="the baseline revision (default: merge-base with main)")
    parser.add_argument("--variants", default="1,3,5", help="variant counts, comma separated")
    parser.add_argument("--segments", type=int, default=300, help="segments per run")
    parser.add_argument("--window", type=float, default=30.0, help="WINDOW_SECONDS")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, alternated")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.variants.split(",")]
    base = args.base or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=REPO, check=True,
                                       capture_output=True, text=True).stdout.strip()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=shm if shm.is_dir() else None) as tmp:
        work = Path(tmp)
        commit = export(base, work)
        sys.path.insert(0, str(work))
        print(f"# CPU per segment: this checkout against {args.base or 'main'} ({commit}), {args.segments} "
              f"segments, a {args.window:g} s window, {args.rounds} round(s), medians\n")
        print("| variants | baseline | this checkout | ratio |")
        print("|---|---|---|---|")
        n = 0
        for variants in counts:
            times: dict[str, list[float]] = {BASE_NAME: [], "broadcaster": []}
            for _ in range(args.rounds):
                for package in times:
                    n += 1
                    (work / f"run-{n}").mkdir()
                    spent = asyncio.run(run(package, work / f"run-{n}", variants, args.segments, args.window))
                    times[package].append(spent)
            base, new = (statistics.median(times[p]) for p in (BASE_NAME, "broadcaster"))
            print(f"| {variants} | {base * 1000:.3f} ms | {new * 1000:.3f} ms | x{new / base:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
