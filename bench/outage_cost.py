"""What a bucket outage costs while uploads wait: failed attempts a second and the memory each waiting
upload holds, this checkout against a baseline revision, in one process.

    python -m bench.outage_cost [--base REV] [--uploads 400] [--seconds 20] [--rounds 1]

Each run is the real Uploader (bucket/uploader.py) with `--uploads` segment files to send and a bucket
that refuses every PutObject, with the service's own backoff (0.25 s doubling to 15 s, full jitter). Once
every upload has failed once (each then waits), the run counts the attempts over `--seconds` and reads
tracemalloc's growth since before the uploads began (every Python allocation: tasks, frames, timers,
bodies in flight), per waiting upload. The baseline (by default the commit of main this checkout started
from) is exported from git and imported beside this checkout's (bench/memory_cost.py's `export`); the two
alternate, round by round. No goal: figures to read (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

from bench.memory_cost import BASE_NAME, REPO, export, module

SEGMENT = b"\x47" * 188 * 320  # 60 KB: what the emulator's segments weigh


class RefusingBucket:
    """The bucket down: every put fails as R2's 503 would (the package's StoreError)."""

    def __init__(self, store_error: type[Exception]) -> None:
        self._error = store_error
        self.attempts = 0

    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
        self.attempts += 1
        raise self._error("ServiceUnavailable", "bucket down")

    async def probe(self) -> None:
        raise self._error("ServiceUnavailable", "bucket down")


async def run(package: str, folder: Path, uploads: int, seconds: float) -> tuple[float, float]:
    """Failed attempts a second and KB per waiting upload, of one run of `package`'s Uploader."""
    uploader = module(package, "bucket.uploader")
    bucket = RefusingBucket(module(package, "bucket.store").StoreError)
    up = uploader.Uploader(bucket, module(package, "metrics").Metrics(), concurrency=8, attempt_timeout=5)
    paths = []
    for n in range(uploads):
        path = folder / f"stream-bench-{n}.ts"
        path.write_bytes(SEGMENT)
        paths.append(path)
    loop = asyncio.get_running_loop()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.ensure_future(up.upload_file(p, f"live/0/{p.name}", "0")) for p in paths]
    while bucket.attempts < uploads:  # every upload has failed once, and waits
        await asyncio.sleep(0.05)
    counted, began = bucket.attempts, loop.time()
    await asyncio.sleep(seconds)
    rate = (bucket.attempts - counted) / (loop.time() - began)
    gc.collect()
    per_upload = (tracemalloc.get_traced_memory()[0] - before) / uploads / 1024
    tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rate, per_upload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outage_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="the baseline revision (default: merge-base with main)")
    parser.add_argument("--uploads", type=int, default=400,
                        help="uploads waiting (400: a 200 s outage, 2 variants)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds the attempts are counted")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each, alternated")
    args = parser.parse_args(argv)
    base = args.base or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=REPO, check=True,
                                       capture_output=True, text=True).stdout.strip()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="bench-outage-", dir=shm if shm.is_dir() else None) as tmp:
        work = Path(tmp)
        commit = export(base, work)
        sys.path.insert(0, str(work))
        print(f"# A bucket outage, {args.uploads} uploads waiting: this checkout against "
              f"{args.base or 'main'} ({commit}), {args.seconds:g} s counted, {args.rounds} round(s), "
              "medians\n")
        figures: dict[str, list[tuple[float, float]]] = {BASE_NAME: [], "broadcaster": []}
        n = 0
        for _ in range(args.rounds):
            for package in figures:
                n += 1
                (work / f"run-{n}").mkdir()
                figure = asyncio.run(run(package, work / f"run-{n}", args.uploads, args.seconds))
                figures[package].append(figure)
        print("| figure | baseline | this checkout | ratio |")
        print("|---|---|---|---|")
        rows = (("failed attempts a second", "/s"), ("memory per waiting upload", " KB"))
        for i, (name, unit) in enumerate(rows):
            old, new = (statistics.median(f[i] for f in figures[p]) for p in (BASE_NAME, "broadcaster"))
            ratio = f"x{new / old:.3f}" if old > 0 else "n/a"
            print(f"| {name} | {old:.2f}{unit} | {new:.2f}{unit} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
