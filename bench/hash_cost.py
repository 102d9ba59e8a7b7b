"""What the segment hashes cost a full media playlist (issue 40, H1): its size gzipped (what players and
the tunnel carry) and plain, with no hashes (P2P off, the baseline of each row), with every segment's
hash (as before issue 40), and with only the segments near the live edge carrying theirs (now:
hls.hashed_segments, about HASHED_EDGE_SECONDS).

    python -m bench.hash_cost [--windows 300,3600,14400] [--targets 1,2,6]

The real ManifestGenerator, rendered as the service serves it (origin playlist: server control, parts,
gzip as sent), one variant, the segment URLs a real bucket gets, a distinct random SHA-256 per segment
(hashes do not compress). Bytes are deterministic: no timing here. The goal: at a 4 h window the gzipped
playlist grows by at most 10 % with hashes (exit 1 when it does not).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
from collections.abc import Iterator

from broadcaster.playlist import hls
from broadcaster.playlist.manifest import ManifestGenerator
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.segments import ListedSegment

GOAL_WINDOW = 14400  # 4 h
GOAL = 1.10  # at most 10 % more gzipped


@contextlib.contextmanager
def every_segment_hashed() -> Iterator[None]:
    """As before issue 40: every listed segment shows its hash."""
    before = hls.hashed_segments
    hls.hashed_segments = lambda target_duration: 1 << 40
    try:
        yield
    finally:
        hls.hashed_segments = before


def playlist(window: int, target: int, hashed: bool) -> Rendered:
    """A full window of `target`-second segments (and three more than fit, so that it has slid)."""
    rng = random.Random(40)
    gen = ManifestGenerator(target, WindowOptions(float(window), can_block_reload=True, start_at_edge=True))
    for i in range(window // target + 3):
        name = f"stream-q1w2e3r4t-{100000 + i}.ts"
        gen.append(ListedSegment(f"https://media.example.com/live/0/{name}", float(target), 1.8e9 + i * target,
                                 key=f"live/0/{name}", sha256=rng.randbytes(32) if hashed else None),
                   float(i * target))
    return gen.render()


def row(window: int, target: int) -> tuple[str, float]:
    plain = playlist(window, target, hashed=False)
    with every_segment_hashed():
        every = playlist(window, target, hashed=True)
    edge = playlist(window, target, hashed=True)
    base_gz, base_plain = len(plain.gzip_body), len(plain.body)
    shown = edge.body.count(hls.SEGMENT_HASH_TAG.encode())
    growth = len(edge.gzip_body) / base_gz
    cells = [f"{window} s", f"{target} s", f"{window // target}", f"{base_gz:,} / {base_plain:,}",
             f"{len(every.gzip_body):,} ({len(every.gzip_body) / base_gz:.2f}x) / {len(every.body):,} "
             f"({len(every.body) / base_plain:.2f}x)",
             f"{len(edge.gzip_body):,} ({growth:.3f}x) / {len(edge.body):,} ({len(edge.body) / base_plain:.3f}x)",
             str(shown)]
    return "| " + " | ".join(cells) + " |", growth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hash_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", default="300,3600,14400", help="window lengths in seconds, comma-separated")
    parser.add_argument("--targets", default="1,2,6", help="segment durations (target durations), comma-separated")
    args = parser.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",") if w.strip()]
    targets = [int(t) for t in args.targets.split(",") if t.strip()]
    print(f"# A full media playlist's bytes, gzipped / plain: no hashes (P2P off), every segment hashed (before "
          f"issue 40), the newest {hls.HASHED_EDGE_SECONDS} s hashed (now); ratios against no hashes\n")
    print("| window | segments of | segments | no hashes | every segment hashed | near the edge only | hashes shown |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    worst = 0.0
    for window in windows:
        for target in targets:
            line, growth = row(window, target)
            print(line)
            if window >= GOAL_WINDOW:
                worst = max(worst, growth)
    if worst:
        met = worst <= GOAL
        print(f"\ngoal: at a {GOAL_WINDOW} s window, gzipped at most {GOAL:.2f}x without hashes: worst "
              f"{worst:.3f}x, {'met' if met else 'NOT met'}")
        return 0 if met else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
