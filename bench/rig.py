"""The one rig every bench stands on: a temporary work folder with SeaweedFS in it, the service's
environment, an Owncast writer in a process of its own (real ffmpeg segments, written in place the way
Owncast writes them), and the readings benches take (/metrics, CPU and memory from /proc).

    async with workspace("edge") as ws:        # bench-edge-XXXX/ with SeaweedFS on 127.0.0.1
        hls = ws.folder("hls")
        env = ws.env(hls, LOG_LEVEL="warning")  # the service as an operator runs it, from this checkout
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import signal
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from broadcaster.demo.ports import kept_port
from broadcaster.playlist.manifest import ManifestGenerator

from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.segments import ListedSegment

if TYPE_CHECKING:
    from broadcaster.demo.recordings import Recordings
    from broadcaster.demo.seaweed import SeaweedS3
    from tests.support.owncast_writer import OwncastReplay
    from tests.support.service_process import ServiceProcess

# The bucket, ffmpeg and the service's process are imported where they are used: the benches that
# count instructions run their child under callgrind, where every import costs a second or more.

REPO = Path(__file__).resolve().parent.parent

SEGMENT_SECONDS = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the work folder and its bucket -------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    work: Path  # removed with everything in it when the bench ends
    s3: SeaweedS3

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, hls_dir: Path, state: str = "state", **over: str) -> dict[str, str]:
        """The service's environment: this HLS_DIR, the bucket, STATE_DIR `work/state`, and `over`."""
        return service_env(hls_dir, self.s3, self.work / state, **over)

    async def encoded(self, count: int = 5, kbps: int = 1200) -> list[Segment]:
        """Real ffmpeg segments (encode_segments), made once per machine (cached_segments)."""
        return await asyncio.to_thread(cached_segments, self.work, count, kbps)

    def owncast(self, segments: list[Segment], **options: Any) -> tuple[Path, OwncastReplay]:
        """HLS_DIR (work/hls) and an Owncast writing into it from now on, in a process of its own
        (tests/support/owncast_writer.py's OwncastReplay and its options: the one writer's format)."""
        from tests.support.owncast_writer import OwncastReplay

        hls_dir = self.folder("hls")
        return hls_dir, OwncastReplay(hls_dir, segments, **options)


@contextlib.asynccontextmanager
async def workspace(name: str) -> AsyncIterator[Workspace]:
    from broadcaster.demo.seaweed import SeaweedS3

    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        async with SeaweedS3(work / "s3", discard=True) as s3:
            yield Workspace(work, s3)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- small helpers ---------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}ms"


def free_port() -> int:
    """A port for a server started next, reserved on this machine until the bench ends
    (broadcaster/demo/ports.py): none of our servers, nor an outgoing connection, takes it first."""
    return kept_port()


def wait_listening(port: int, timeout: float = 120, alive: Callable[[], bool] = lambda: True) -> None:
    """Until something accepts on 127.0.0.1:port (a server started in another process, `alive` while it
    runs). The bound is for a server that never comes: a new interpreter pinned to one busy CPU of a
    loaded machine took more than 15 s to import the service (a full run of the suite)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if not alive():
            raise RuntimeError(f"the server for 127.0.0.1:{port} exited before it listened")
        time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start within {timeout:.0f}s")


# Servers on one CPU, the load generator (wrk) on the other: on a VM the two vCPUs can differ for
# minutes (steal), and a server left to the scheduler may sit on the slower one for a whole run.
SERVER_CPU, WRK_CPU = 1, 0


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def parse_playlist(body: bytes) -> tuple[int, list[str]]:
    """(EXT-X-MEDIA-SEQUENCE, segment file names) of a media playlist."""
    sequence = 0
    names: list[str] = []
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.partition(":")[2])
        elif line and not line.startswith("#"):
            names.append(line.rsplit("/", 1)[-1])
    return sequence, names


# -- real ffmpeg segments, encoded once ----------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    data: bytes
    duration: float


def encode_segments(work: Path, count: int, kbps: int) -> list[Segment]:
    """`count` 1 s MPEG-TS segments of a 1280x720 test picture with sound, as Owncast's ffmpeg makes
    them (keyframe every second, -hls_time 1); constant bitrate so each is about kbps/8 KB."""
    from broadcaster.demo.ffmpeg import ffmpeg_exe

    out = work / "encoded"
    out.mkdir(parents=True, exist_ok=True)
    fps = 30
    subprocess.run([
        ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc=size=1280x720:rate={fps}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:beep_factor=4",
        "-t", str(count * SEGMENT_SECONDS), "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-b:v", f"{kbps}k", "-minrate", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k",
        "-x264-params", "nal-hrd=cbr", "-g", str(fps * SEGMENT_SECONDS), "-keyint_min", str(fps * SEGMENT_SECONDS),
        "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k",
        "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_list_size", "0",
        "-hls_segment_filename", str(out / "seg%d.ts"), str(out / "out.m3u8"),
    ], check=True)  # fmt: skip
    segments: list[Segment] = []
    duration = 0.0
    for line in (out / "out.m3u8").read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:"):].split(",")[0])
        elif line and not line.startswith("#"):
            segments.append(Segment((out / line).read_bytes(), duration))
    full = [s for s in segments if round(s.duration) == SEGMENT_SECONDS]
    if not full:
        raise RuntimeError(f"ffmpeg made no {SEGMENT_SECONDS} s segment: {[s.duration for s in segments]}")
    return full


def cached_segments(work: Path, count: int, kbps: int) -> list[Segment]:
    """encode_segments' output, kept in the system's temporary folder: the same picture every time,
    and encoding takes seconds of both cores that the benches (and their short runs, side by side in
    the suite) would otherwise each spend. Published by a rename, so a bench beside never reads half."""
    cache = Path(tempfile.gettempdir()) / "hls-broadcaster-bench" / f"segments-{count}x{SEGMENT_SECONDS}s-{kbps}k"
    if not cache.is_dir():
        print(f"encoding {count} x {SEGMENT_SECONDS} s segments at {kbps} kbit/s ...", flush=True)
        fresh = Path(tempfile.mkdtemp(prefix="encoding-", dir=work))
        for i, segment in enumerate(encode_segments(work, count, kbps)):
            (fresh / f"{i}-{segment.duration!r}.ts").write_bytes(segment.data)
        cache.parent.mkdir(exist_ok=True)
        try:
            os.rename(fresh, cache)  # another bench may have been first: keep theirs
        except OSError:
            pass
    files = sorted(cache.glob("*.ts"), key=lambda f: int(f.name.split("-")[0]))
    return [Segment(f.read_bytes(), float(f.stem.split("-", 1)[1])) for f in files]


async def start_service(env: dict[str, str], cwd: Path, *, nofile: int | None = None,
                        prefix: Sequence[str] = ()) -> ServiceProcess:
    """The service as an operator runs it, a process of its own (tests/support/service_process.py),
    allowed a minute to start: a bench shares the machine with whatever else runs (its short run in
    tests/test_benches.py, with the whole suite). `prefix`: a command to run it under (valgrind)."""
    from tests.support.service_process import ServiceProcess

    return await ServiceProcess(env, cwd, nofile=nofile, prefix=prefix).start(timeout=60.0)


def service_env(hls_dir: Path, s3: SeaweedS3, state_dir: Path, **over: str) -> dict[str, str]:
    """The tests' environment for the service, plus this checkout on PYTHONPATH (no install needed)."""
    from tests.support.service_process import service_env as _service_env

    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    return _service_env(hls_dir, s3, state_dir, **{"PYTHONPATH": path, **over})


# -- the emulator's encoding: live, or recorded once and replayed ----------------------------------


def add_recordings_option(parser: argparse.ArgumentParser) -> None:
    """--recordings DIR: the benches whose figures are not the encoder's own replay the transcoder's
    encoding, recorded once in DIR (broadcaster/demo/recordings.py), rather than encode as they go. The
    suite's short runs pass the tests' folder: the recordings are made there once per run, and a short
    run no longer spends a core-second of x264 per few seconds of stream beside the suite."""
    parser.add_argument("--recordings", type=Path, default=None, metavar="DIR",
                        help="replay the emulator's encoding recorded once in DIR (default: encode live)")


def recordings_of(args: argparse.Namespace) -> Recordings | None:
    from broadcaster.demo.recordings import Recordings

    return Recordings(args.recordings) if args.recordings is not None else None


# -- nginx with deploy/nginx-cache.conf (the CDN stand-in: bench/edge.py, bench/steering.py) ----------

CONF = REPO / "deploy" / "nginx-cache.conf"
NGINX = "/usr/sbin/nginx"
# The three strings deploy/nginx-cache.conf's header names, as shipped.
LISTEN, UPSTREAM, FOLDER = "listen 127.0.0.1:8081 ", "server 127.0.0.1:3000;", "/var/cache/nginx/hls-broadcaster"


def render_conf(port: int, upstream: str, folder: Path) -> str:
    text = CONF.read_text()
    for old in (LISTEN, UPSTREAM, FOLDER):
        if old not in text:
            sys.exit(f"bench: deploy/nginx-cache.conf no longer contains {old!r}")
    return (text.replace(LISTEN, f"listen 127.0.0.1:{port} ")
            .replace(UPSTREAM, f"server {upstream};")
            .replace(FOLDER, str(folder)))


def nofile_to_hard() -> None:
    """In a child before exec: soft RLIMIT_NOFILE up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


class NginxCache:
    """nginx in the foreground as this user, everything it writes under `work`."""

    def __init__(self, work: Path, upstream: str) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.work = work
        conf = work / "nginx.conf"
        conf.write_text(render_conf(self.port, upstream, work))
        main = f"daemon off; pid {work / 'nginx.pid'}; error_log {work / 'error.log'} warn;"
        if os.geteuid() == 0:  # else the workers run as nobody, who cannot enter our private tmp folder
            main += " user root;"
        self.args = [NGINX, "-p", str(work), "-c", str(conf), "-g", main]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        check = subprocess.run([*self.args, "-t"], capture_output=True, text=True)
        if check.returncode != 0:
            sys.exit(f"bench: nginx -t failed:\n{check.stderr}")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, preexec_fn=nofile_to_hard)
        deadline = time.monotonic() + 10
        while not self.workers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"bench: nginx did not start:\n{self.log()}")
            time.sleep(0.05)

    def workers(self) -> list[int]:
        """The master's children: its workers, the cache manager and the cache loader."""
        return _children(self.proc.pid) if self.proc is not None else []

    def pids(self) -> list[int]:
        return ([self.proc.pid] if self.proc is not None else []) + self.workers()

    def log(self) -> str:
        path = self.work / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- /metrics ------------------------------------------------------------------------------------


@dataclass
class Histogram:
    buckets: list[tuple[float, float]]  # (upper bound, cumulative count)
    total: float
    count: float

    def minus(self, earlier: Histogram) -> Histogram:
        before = dict(earlier.buckets)
        return Histogram([(le, n - before.get(le, 0.0)) for le, n in self.buckets],
                         self.total - earlier.total, self.count - earlier.count)

    def quantile(self, q: float) -> float:
        """Linear interpolation inside the bucket, as Prometheus' histogram_quantile does."""
        if self.count <= 0:
            return math.nan
        rank = q * self.count
        lower, below = 0.0, 0.0
        for le, n in self.buckets:
            if n >= rank:
                if math.isinf(le):
                    return lower
                return lower + (le - lower) * ((rank - below) / (n - below) if n > below else 1.0)
            lower, below = le, n
        return lower

    def describe(self) -> str:
        if self.count <= 0:
            return "no observations"
        return (f"mean {self.total / self.count * 1000:6.1f}ms  ~p50 {self.quantile(0.5) * 1000:6.1f}ms  "
                f"~p95 {self.quantile(0.95) * 1000:6.1f}ms  ({self.count:.0f} observations)")


async def scrape_metrics(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(f"{url}/metrics") as r:
        return await r.text()


def counters(text: str, *names: str) -> dict[str, float]:
    """Non-zero samples of the named counters, as 'name{label=value,...}': value."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name in names:
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    out[f"{family.name}{{{labels}}}"] = sample.value
    return out


async def scrape_histograms(session: aiohttp.ClientSession, url: str) -> dict[str, Histogram]:
    from prometheus_client.parser import text_string_to_metric_families

    text = await scrape_metrics(session, url)
    out: dict[str, Histogram] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        buckets = sorted((float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket"))
        total = sum(s.value for s in family.samples if s.name.endswith("_sum"))
        count = sum(s.value for s in family.samples if s.name.endswith("_count"))
        out[family.name] = Histogram(buckets, total, count)
    return out


async def wait_listed(session: aiohttp.ClientSession, url: str, timeout: float = 60.0) -> tuple[int, list[str]]:
    """The first 200 of the plain playlist (503 until the first segments are listed)."""
    async with asyncio.timeout(timeout):
        while True:
            async with session.get(url) as r:
                body = await r.read()
                if r.status == 200:
                    return parse_playlist(body)
            await asyncio.sleep(0.1)



# -- a process's cost, from /proc ------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children are not counted)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def written_bytes(pid: int) -> int:
    """Bytes the process caused to be written to storage (/proc/<pid>/io write_bytes: its files' pages,
    not its sockets)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"no write_bytes for pid {pid}")


def machine_idle() -> tuple[float, float]:
    """(idle + iowait, total) jiffies of the whole machine."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return values[3] + values[4], sum(values[:8])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -- the playlist path without the rest of the service ------------------------------------------


def live_generator(segments: int = 12, window: float = 10) -> ManifestGenerator:
    """A 1 s live playlist of `window` seconds after `segments` appends (the benches' usual one)."""
    gen = ManifestGenerator(1, WindowOptions(window))
    for i in range(segments):
        gen.append(ListedSegment(f"https://media.example.com/live/0/stream-abcdefghi-{i}.ts", 1.0, 1.8e9 + i), i)
    return gen


def playlist_app(render: Callable[[int], Rendered | None], target: int = 1, **app_options: Any) -> web.Application:
    """The service's public app (create_app: routing, CORS, ETag, gzip, metrics) over playlists
    already made: `render(variant)` answers every media request, blocking ones at once."""
    from broadcaster.http import create_app
    from broadcaster.metrics import Metrics
    from broadcaster.playlist import hls
    from broadcaster.status.assessment import Assessment
    from broadcaster.status.stream import StreamState

    class Source:
        target_duration = target
        held_requests = 0

        def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
            return None

        def media_playlist(self, variant: int) -> Rendered | None:
            return render(variant)

        def assess(self) -> Assessment:
            return Assessment(True, StreamState.LIVE, "ok", {"status": "ok"})

        async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
            return render(variant)

    source = Source()
    return create_app(source, source, Metrics(), **app_options)


def live_app() -> web.Application:
    """bench/serve.py's "ours": live_generator's playlist (variant 0) through the whole app."""
    gen = live_generator()
    return playlist_app(lambda variant: gen.render() if variant == 0 else None)


def steered_app() -> web.Application:
    """live_app with content steering on (PATHWAYS=bucket,vm) as the service wires its manifest route: the
    policy (the bucket first), the steering manifest it renders, the request counted by _HLS_pathway."""
    from broadcaster.http import Pathways, PlaylistOptions
    from broadcaster.playlist.master import Pathway
    from broadcaster.steering.masters import SteeredMasters
    from broadcaster.steering.metrics import PathwayCounts
    from broadcaster.steering.policy import BucketSignals, SteeringPolicy

    gen = live_generator()
    policy = SteeringPolicy(("bucket", "vm"), {"bucket": BucketSignals(behind=lambda: 0.0)}, lambda: 1,
                            interval=5.0)
    counts = PathwayCounts(lambda: policy.first != "bucket", ("bucket", "vm"))
    playlists: Any = None  # the masters are not asked here: only the manifest is

    pathways = Pathways(masters=SteeredMasters([Pathway("bucket"), Pathway("vm", "vm")], lambda: policy.first,
                                               {"bucket": playlists}),
                        steering=policy, newest=lambda variant: None, count_steering=counts.manifest)
    return playlist_app(lambda variant: gen.render() if variant == 0 else None,
                        playlist_options=PlaylistOptions(pathways=pathways))


def bare_app() -> web.Application:
    """bench/serve.py's baseline: the same playlist's bytes from a bare aiohttp handler."""
    body = live_generator().render().body

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/vnd.apple.mpegurl")

    app = web.Application()
    app.router.add_get("/live/playlist.m3u8", handler)
    return app


# -- requests fed through aiohttp's own handler, no socket (counted under callgrind) -------------

WARM_UP = 200  # requests before those counted: the first ones fill caches


class MemoryTransport(asyncio.Transport):
    """Keeps what aiohttp writes (a small response is one write: head and body together)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.last = b""
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes += 1
        self.last = data  # aiohttp hands over bytes it does not touch again: no copy, no cost

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


@contextlib.asynccontextmanager
async def in_memory(app: web.Application, transport: asyncio.Transport) -> AsyncIterator[Any]:
    """The protocol aiohttp's AppRunner.server() makes for one connection, on `transport`; for the
    service's app (create_app's), behind the connection gate with its quick answers, as it listens."""
    from broadcaster.http.connections import ConnectionGate, GateOptions
    from broadcaster.http.keys import QUICK

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    quick = app.get(QUICK)
    protocol = runner.server() if quick is None else ConnectionGate(runner.server, GateOptions(8, quick=quick))()
    protocol.connection_made(transport)
    try:
        yield protocol
    finally:
        await runner.cleanup()


async def feed(app: web.Application, kind: str, requests: list[bytes], count: int) -> MemoryTransport:
    """`count` requests (cycling through `requests`) one at a time on one keep-alive connection, as a
    player sends them: each once the answer to the one before is written and aiohttp waits for the next
    (as over a socket, where the answer travels to the player and back); exits on any answer but 200.
    What this loop costs is counted for every kind alike; it is kept to a few cheap operations."""
    from broadcaster.http.quick import idle

    transport = MemoryTransport()
    async with in_memory(app, transport) as protocol:
        handler = getattr(protocol, "_inner", protocol)  # aiohttp's, behind the gate or not
        for i in range(count):
            written = transport.writes
            protocol.data_received(requests[i % len(requests)])
            while transport.writes == written or not idle(handler):
                await asyncio.sleep(0)
            if not transport.last.startswith(b"HTTP/1.1 200 "):
                sys.exit(f"{kind}: unexpected response {transport.last[:200]!r}")
    return transport


def instructions(module: str, kind: str, *child_args: str) -> int:
    """Instructions `python -m <module> --child <kind> <child_args>` executes under callgrind (the
    benches that count rather than time requests: serve_cost and heartbeat)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", module, "--child", kind, *child_args],
        capture_output=True, text=True, env=env, check=False, cwd=REPO,  # its stderr is reported below
    )
    if out.returncode != 0:
        sys.exit(f"{module}: the {kind} run failed:\n{out.stderr[-2000:]}")
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        sys.exit(f"{module}: no instruction count from valgrind:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def counted(module: str, kinds: tuple[str, ...], n: int, *child_args: str) -> dict[str, float]:
    """Instructions per request of each kind: runs of n and 2n requests under callgrind, subtracted
    (start-up and warm-up cancel out), the four runs on as many cores as there are."""
    jobs = [(kind, count) for kind in kinds for count in (n, 2 * n)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        runs = pool.map(lambda job: instructions(module, job[0], str(job[1]), *child_args), jobs)
        counts = dict(zip(jobs, runs, strict=True))
    return {kind: (counts[(kind, 2 * n)] - counts[(kind, n)]) / n for kind in kinds}


# -- a running service's instructions over a window (callgrind, instrumented only meanwhile) ----------

class CountedWindow:
    """Services run under callgrind with instrumentation off (`prefix()`: valgrind's start-up is slow, but
    the service's imports are not counted), switched on for a window and dumped at its end
    (callgrind_control): the instructions each executed meanwhile, every thread's. Timings of a whole
    service scatter by a few percent between identical services; its instructions barely move, but they
    do not weigh what they cost alike (a cold cache, a wake-up), so the timed figure stays the one judged."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def prefix(self) -> list[str]:
        self._n += 1
        return ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={self.out}/service-{self._n}.%p.out"]

    @staticmethod
    def _control(*args: str) -> None:
        done = subprocess.run(["callgrind_control", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"callgrind_control {' '.join(args)} failed:\n{done.stdout[-1000:]}{done.stderr[-1000:]}")

    def begin(self, pids: Sequence[int]) -> None:
        for pid in pids:
            self._control("--instr=on", str(pid))

    async def end(self, pids: Sequence[int]) -> list[int]:
        """Each service's instructions since begin(), in pids' order; instrumentation off again."""
        counts = []
        for pid in pids:
            before = set(self.out.glob(f"*.{pid}.out.*"))
            self._control("--dump=window", str(pid))
            self._control("--instr=off", str(pid))
            async with asyncio.timeout(60):
                while not (new := set(self.out.glob(f"*.{pid}.out.*")) - before):
                    await asyncio.sleep(0.2)
            path = max(new, key=lambda p: int(p.name.rsplit(".", 1)[1]))
            async with asyncio.timeout(60):  # written whole once its totals line is there
                while (m := re.search(r"^totals: (\d+)", path.read_text(errors="replace"), re.M)) is None:
                    await asyncio.sleep(0.2)
            counts.append(int(m.group(1)))
        return counts
