"""One hostile client against the service at systemd's default open-file limit (issue 11, finding 1).

    python -m bench.overload [--nofile 1024] [--baseline 10] [--load 30] [--extra 0.1]

The real service in a process of its own with RLIMIT_NOFILE soft = hard = --nofile (as under systemd
without LimitNOFILE), fed by the synthetic Owncast of bench/rig.py (real ffmpeg 1 s
segments, written in place, 1 s cadence) and uploading to SeaweedFS on 127.0.0.1. The caps are read
from the service's /metrics (hls_broadcaster_connections_limit), then one client opens, for --load
seconds, the caps plus --extra (10 %) of:

- event streams (GET /live/events), each reopened when it ends;
- held blocking requests (_HLS_msn = the next segment), each asked again as soon as it is answered,
  a refused one 0.2 s later;
- idle connections (nothing sent) and half-sent requests (a head without its blank line), half and
  half, as many as the connection cap plus --extra; each reopened 0.1 s after the service closes it.

Two more loads (issue 18), chosen with --kinds, each from one client process too:

- files: --files clients (700) each asking for the viewer's hls.min.js at its versioned URL and never
  reading the answer (each answer holds a file handle besides its connection);
- pipeline: as many clients as the connection cap, each pipelining playlist requests as fast as its
  socket takes them and never reading an answer.

Their clients stay for the whole load (they do not reconnect); the service drops them after its
WRITE_TIMEOUT (--write-timeout, 30 s by default, as the service's default: make --load longer to see it).

Baseline: the same service in the same run, before the load (--baseline seconds). Reported:

- /health from a fresh connection every 50 ms: p50/p99/max and answers that were not 200, against the
  baseline (goal: p99 < 100 ms under load);
- segments missed: written by the synthetic Owncast (all but the last 3) and never in the service's
  playlist (polled every 0.5 s on a connection of its own), plus hls_broadcaster_segments_lost_total
  (goal 0);
- log bytes the service wrote during the load (goal < 1 MB), and its ERROR/Traceback lines;
- the service's VmRSS, open file handles and CPU before (baseline), at their highest during the load,
  and --settle seconds after the client left, each as a ratio against the baseline;
- how fast it answers past its caps: p50/p99 of the 503s to event streams and held requests (from
  the request sent to the answer), and how many of each; the rejections /metrics counted by reason.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import resource
import socket
import sys
import time
from dataclasses import dataclass, field, fields
from multiprocessing.connection import Connection
from pathlib import Path

from bench.rig import cpu_seconds, start_service, workspace
from tests.support.owncast_writer import OwncastReplay
from tests.support.service_process import ServiceProcess
from tests.support.stats import pct

PROBE_EVERY = 0.05  # /health probes
PROBE_TIMEOUT = 5.0  # a probe without an answer this long counts as a timeout
POLL_EVERY = 0.5  # playlist polls, for the segments listed
HELD_RETRY = 0.2  # a refused held request asks again after this
HALF_SENT = b"GET /health HTTP/1.1\r\nHost: x\r\n"


@dataclass
class Probes:
    times: list[float] = field(default_factory=list)  # seconds, answered ones
    other: dict[str, int] = field(default_factory=dict)  # non-200 answers and failures, by kind

    def note(self, what: str) -> None:
        self.other[what] = self.other.get(what, 0) + 1


@dataclass
class Load:
    """What the load process saw; sent back to the coordinator."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reconnect: float = 1.0  # an idle or half-sent connection the service closed is reopened after this
    refused_events: list[float] = field(default_factory=list)  # 503 answer times
    refused_held: list[float] = field(default_factory=list)
    refused_connection: int = 0  # 503 at accept (nothing idle to close)
    streams_open: int = 0
    held_answered: int = 0
    idle_closed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    error_times: list[float] = field(default_factory=list)  # seconds into the load
    started: float = 0.0
    next_msn: int = 0  # the segment held requests ask for
    flood_open: int = 0  # files/pipeline clients connected and sending
    flood_dropped: int = 0  # ... whose connection the service closed (found when writing)
    pipelined: int = 0  # requests sent by the pipelining clients

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1
        self.error_times.append(time.monotonic() - self.started)


async def read_head(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head[9:12]), head


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    return await reader.readexactly(int(m.group(1))) if m else b""


CONNECT_TIMES: list[float] = []


async def get(host: str, port: int, path: str, timeout: float = PROBE_TIMEOUT) -> tuple[int, bytes, float]:
    """One GET on a fresh connection: (status, body, seconds)."""
    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        CONNECT_TIMES.append(time.perf_counter() - started)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            status, head = await read_head(reader)
            body = await read_body(reader, head)
        finally:
            writer.close()
    return status, body, time.perf_counter() - started


async def probe_health(host: str, port: int, stop: asyncio.Event, probes: Probes) -> None:
    while not stop.is_set():
        try:
            status, _, took = await get(host, port, "/health")
            if status == 200:
                probes.times.append(took)
            else:
                probes.note(f"HTTP {status}")
        except TimeoutError:
            probes.note("timeout")
        except OSError as err:
            probes.note(type(err).__name__)
        await asyncio.sleep(PROBE_EVERY)


async def poll_listed(host: str, port: int, stop: asyncio.Event, listed: set[str], load: Load) -> None:
    """The segment names variant 0 lists (and the next media sequence number, for held requests)."""
    while not stop.is_set():
        try:
            status, body, _ = await get(host, port, "/live/0/playlist.m3u8")
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            await asyncio.sleep(POLL_EVERY)
            continue
        if status == 200:
            text = body.decode()
            names = [line.rsplit("/", 1)[-1] for line in text.splitlines() if line and not line.startswith("#")]
            listed.update(names)
            m = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
            if m:
                load.next_msn = int(m.group(1)) + len(names)
        await asyncio.sleep(POLL_EVERY)


async def event_stream(host: str, port: int, load: Load) -> None:
    while not load.stop.is_set():
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(host, port)
            sent = time.perf_counter()
            writer.write(b"GET /live/events HTTP/1.1\r\nHost: x\r\n\r\n")
            status, head = await read_head(reader)
            if status != 200:
                took = time.perf_counter() - sent
                body = await read_body(reader, head)
                if body.startswith(b"too many event streams"):
                    load.refused_events.append(took)
                elif body.startswith(b"too many connections"):
                    load.refused_connection += 1
                else:
                    load.error(f"event stream: HTTP {status}")
                await wait_or_stop(load, HELD_RETRY)
                continue
            load.streams_open += 1
            try:
                while not load.stop.is_set() and await reader.read(65536):
                    pass
            finally:
                load.streams_open -= 1
        except (OSError, asyncio.IncompleteReadError) as err:
            load.error(f"event stream: {type(err).__name__}")
            await wait_or_stop(load, load.reconnect)
        finally:
            if writer is not None:
                writer.close()


async def held_request(host: str, port: int, load: Load) -> None:
    writer: asyncio.StreamWriter | None = None
    msn = 0
    while not load.stop.is_set():
        try:
            msn = max(msn, load.next_msn)  # as a player does: the one after the last it got
            if writer is None or writer.is_closing():
                reader, writer = await asyncio.open_connection(host, port)
            sent = time.perf_counter()
            writer.write(f"GET /live/0/playlist.m3u8?_HLS_msn={msn} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, head = await read_head(reader)
            body = await read_body(reader, head)
            took = time.perf_counter() - sent
            if b"connection: close" in head.lower():
                writer.close()
                writer = None
            if status == 200:
                load.held_answered += 1
                msn += 1
            elif body.startswith(b"too many held"):
                load.refused_held.append(took)
                await wait_or_stop(load, HELD_RETRY)
            elif body.startswith(b"too many connections"):
                load.refused_connection += 1
                await wait_or_stop(load, HELD_RETRY)
            else:
                load.error(f"held request: HTTP {status} {body[:40]!r}")
                await wait_or_stop(load, HELD_RETRY)
        except (OSError, asyncio.IncompleteReadError) as err:
            load.error(f"held request: {type(err).__name__}")
            if writer is not None:
                writer.close()
            writer = None
            await wait_or_stop(load, load.reconnect)
    if writer is not None:
        writer.close()


async def idle_connection(host: str, port: int, load: Load, half: bool) -> None:
    while not load.stop.is_set():
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(host, port)
            if half:
                writer.write(HALF_SENT)
            done = asyncio.ensure_future(reader.read())
            stopping = asyncio.ensure_future(load.stop.wait())
            await asyncio.wait({done, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if done.done():
                data = done.result() if not done.exception() else b""
                if data.startswith(b"HTTP/1.1 503"):
                    load.refused_connection += 1
                else:
                    load.idle_closed += 1
            else:
                done.cancel()
        except (OSError, asyncio.IncompleteReadError):
            load.idle_closed += 1  # reset by the service: closed to make room or at the header timeout
        finally:
            if writer is not None:
                writer.close()
        await wait_or_stop(load, load.reconnect)


async def never_reading(host: str, port: int, load: Load, request: bytes, keep_sending: bool) -> None:
    """Sends `request` (over and over if `keep_sending`, as fast as the socket takes them) and never reads.
    Non-blocking sends, never cancelled halfway: a request cut in two would be a bad one, not a load."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (host, port))
        load.flood_open += 1
        pending = request * 64 if keep_sending else request
        while not load.stop.is_set():
            try:
                sent = sock.send(pending)
            except BlockingIOError:  # the socket takes no more: the service stopped reading
                await wait_or_stop(load, 0.2)
                continue
            pending = pending[sent:]
            if keep_sending:
                load.pipelined += sent // len(request)
                pending = pending or request * 64
            elif not pending:
                await wait_or_stop(load, 1.0)
                pending = b"\r\n"  # a blank line now and then (ignored before a request): a closed one errs
    except OSError:
        load.flood_dropped += 1
    finally:
        sock.close()


def run_load(host: str, port: int, counts: tuple[int, int, int], seconds: float, reconnect: float,
             conn: Connection, floods: tuple[int, int] = (0, 0), file_path: str = "") -> None:
    """Process target: the hostile client, on a core of its own (the coordinator's probes must not
    wait behind its thousands of sockets); sends Load's figures back."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)

    async def main() -> dict[str, object]:
        load = Load(reconnect=reconnect)
        n_events, n_held, n_idle = counts
        listed: set[str] = set()
        tasks = [asyncio.create_task(poll_listed(host, port, load.stop, listed, load))]
        async with asyncio.timeout(10):
            while not load.next_msn:
                await asyncio.sleep(0.05)
        tasks += [asyncio.create_task(event_stream(host, port, load)) for _ in range(n_events)]
        tasks += [asyncio.create_task(held_request(host, port, load)) for _ in range(n_held)]
        # The idle flood once those are in: opened all at once, this one process would be too busy
        # opening sockets to send their requests, and the service would rightly take them for idle.
        await asyncio.sleep(2)
        tasks += [asyncio.create_task(idle_connection(host, port, load, half=i % 2 == 1)) for i in range(n_idle)]
        n_files, n_pipeline = floods
        file_request = f"GET {file_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        playlist_request = b"GET /live/0/playlist.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n"
        for n, request, keep in ((n_files, file_request, False), (n_pipeline, playlist_request, True)):
            for i in range(n):
                tasks.append(asyncio.create_task(never_reading(host, port, load, request, keep)))
                if i % 50 == 49:
                    await asyncio.sleep(0.05)  # let them connect in batches, as a crowd would
        load.started = time.monotonic()
        conn.send("started")
        await asyncio.sleep(seconds)
        streams_open = load.streams_open
        load.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        flood_open = load.flood_open - load.flood_dropped
        figures: dict[str, object] = {f.name: getattr(load, f.name) for f in fields(load) if f.name != "stop"}
        figures["streams_open"] = streams_open
        figures["flood_open"] = flood_open
        return figures

    conn.send(asyncio.run(main()))


async def wait_or_stop(load: Load, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await load.stop.wait()
    except TimeoutError:
        pass


def vmrss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


async def watch_process(pid: int, stop: asyncio.Event, peaks: dict[str, int]) -> None:
    while not stop.is_set():
        try:
            peaks["rss"] = max(peaks.get("rss", 0), vmrss_kb(pid))
            peaks["fds"] = max(peaks.get("fds", 0), open_files(pid))
        except OSError:
            return
        await wait_until(stop, 0.2)


async def wait_until(stop: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}{{{wanted}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


def ms(values: list[float], p: float) -> str:
    return f"{pct(values, p) * 1000:.1f} ms" if values else "-"


async def main(args: argparse.Namespace) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the client holds a few thousand sockets
    async with workspace("overload") as ws:
        work = ws.work
        hls_dir, writer = ws.owncast(await ws.encoded())
        extra = {"WRITE_TIMEOUT": str(args.write_timeout)} if args.write_timeout else {}
        env = ws.env(hls_dir, LOG_LEVEL="info", **extra)
        service = await start_service(env, work / "cwd", nofile=args.nofile)
        try:
            return await measure(args, service, writer)
        finally:
            await writer.stop()
            await service.stop()


async def measure(args: argparse.Namespace, service: ServiceProcess, writer: OwncastReplay) -> int:
    host, port_text = service.url.removeprefix("http://").rsplit(":", 1)
    port = int(port_text)
    # The stream is listed and the service says it is healthy: the baseline is a healthy service's (on a
    # loaded machine /health said 503 through a whole 2 s baseline just after the third segment).
    async with asyncio.timeout(60):
        while True:
            status, body, _ = await get(host, port, "/live/0/playlist.m3u8")
            if status == 200 and body.count(b"#EXTINF") >= 3 and (await get(host, port, "/health"))[0] == 200:
                break
            await asyncio.sleep(0.2)
    _, text, _ = await get(host, port, "/metrics")
    caps = {k: int(metric(text.decode(), "hls_broadcaster_connections_limit", kind=k))
            for k in ("connections", "events", "held")}
    if not all(caps.values()):
        caps = dict(zip(("connections", "events", "held"), (int(n) for n in args.caps.split(","))))
        print(f"the service reports no connection limits (hls_broadcaster_connections_limit), a build without "
              f"the budget: loading it as if its caps were --caps {caps}")
    budget_line = next((line for line in service.lines if "file handles: limit" in line), "(no budget line)")
    print(f"service pid {service.pid}, RLIMIT_NOFILE {args.nofile}: {budget_line.split(' INFO ')[-1]}")

    listed: set[str] = set()
    load = Load()
    poll_stop = asyncio.Event()
    poller = asyncio.create_task(poll_listed(host, port, poll_stop, listed, load))

    # Baseline: the same probes without load.
    base = Probes()
    base_stop = asyncio.Event()
    base_peaks: dict[str, int] = {}
    cpu_start, base_started = cpu_seconds(service.pid), time.monotonic()
    base_tasks = [asyncio.create_task(probe_health(host, port, base_stop, base)),
                  asyncio.create_task(watch_process(service.pid, base_stop, base_peaks))]
    await asyncio.sleep(args.baseline)
    base_stop.set()
    await asyncio.gather(*base_tasks)
    cpu_base = (cpu_seconds(service.pid) - cpu_start) / (time.monotonic() - base_started)
    rss_before = vmrss_kb(service.pid)
    fds_before = open_files(service.pid)
    log_before = sum(len(line) + 1 for line in service.lines)
    lines_before = len(service.lines)

    kinds = set(args.kinds.split(","))
    n_events = int(caps["events"] * (1 + args.extra)) if "events" in kinds else 0
    n_held = int(caps["held"] * (1 + args.extra)) if "held" in kinds else 0
    n_idle = int(caps["connections"] * (1 + args.extra)) if "idle" in kinds else 0
    n_files = args.files if "files" in kinds else 0
    n_pipeline = caps["connections"] if "pipeline" in kinds else 0
    file_path = ""
    if n_files:
        _, page, _ = await get(host, port, "/")
        m = re.search(rb"hls\.min\.js\?v=[0-9a-f]+", page)  # a build without versioned names: the plain one
        file_path = "/" + m.group(0).decode() if m else "/hls.min.js"
    print(f"load: {n_events} event streams, {n_held} held requests, {n_idle} idle/half-sent connections "
          f"(each reopened {args.reconnect:g} s after the service closes it), {n_files} clients asking for "
          f"{file_path or 'hls.min.js'} and {n_pipeline} pipelining playlist requests, none of them reading, "
          f"{args.load:.0f} s", flush=True)
    peaks: dict[str, int] = {}
    loaded = Probes()
    recv, send = multiprocessing.get_context("spawn").Pipe(duplex=False)
    proc = multiprocessing.get_context("spawn").Process(
        target=run_load, args=(host, port, (n_events, n_held, n_idle), args.load, args.reconnect, send,
                               (n_files, n_pipeline), file_path), daemon=True)
    proc.start()
    send.close()
    assert await asyncio.to_thread(recv.recv) == "started"
    cpu_before, started = cpu_seconds(service.pid), time.monotonic()
    tasks = [asyncio.create_task(watch_process(service.pid, load.stop, peaks)),
             asyncio.create_task(probe_health(host, port, load.stop, loaded))]
    figures = await asyncio.to_thread(recv.recv)
    cpu_load = (cpu_seconds(service.pid) - cpu_before) / (time.monotonic() - started)
    await asyncio.to_thread(proc.join)
    load.stop.set()
    await asyncio.gather(*tasks)
    # After: the client is gone; what the service gives back.
    after = Probes()
    after_stop = asyncio.Event()
    cpu_start, after_started = cpu_seconds(service.pid), time.monotonic()
    after_task = asyncio.create_task(probe_health(host, port, after_stop, after))
    await asyncio.sleep(args.settle)
    after_stop.set()
    await after_task
    cpu_after = (cpu_seconds(service.pid) - cpu_start) / (time.monotonic() - after_started)
    rss_after, fds_after = vmrss_kb(service.pid), open_files(service.pid)
    for name, value in figures.items():
        setattr(load, name, value)
    open_streams = load.streams_open
    log_load = sum(len(line) + 1 for line in service.lines) - log_before
    alarming = [line for line in service.lines[lines_before:] if " ERROR " in line or "Traceback" in line]

    # Segments: all the writer listed, but the last few (maybe not uploaded yet), must have been listed.
    await asyncio.sleep(3)
    poll_stop.set()
    await poller
    _, text, _ = await get(host, port, "/metrics")
    metrics = text.decode()
    await writer.stop()
    written = sorted(writer.glass, key=writer.glass.__getitem__)[:-3]
    missed = [name for name in written if name not in listed]
    lost = sum(float(v) for v in re.findall(r"^hls_broadcaster_segments_lost_total\{[^}]*\} (\S+)$", metrics, re.M))
    rejected = {r: int(metric(metrics, "hls_broadcaster_connections_rejected_total", reason=r))
                for r in ("connections", "events", "held", "held_per_client", "header_timeout", "idle_evicted",
                          "write_timeout")}

    def ratio(value: float, baseline: float) -> str:
        return f"{value / baseline:.2f}x" if baseline else "-"

    print()
    print(f"{'':>34} {'baseline (no load)':>18} {'under load':>14} {'x baseline':>10} "
          f"{f'{args.settle:.0f} s after':>14} {'x baseline':>10}")
    for label, p in (("/health p50", 50), ("/health p99", 99), ("/health max", 100)):
        b, u, a = (pct(t, p) if t else 0.0 for t in (base.times, loaded.times, after.times))
        print(f"{label:>34} {ms(base.times, p):>18} {ms(loaded.times, p):>14} {ratio(u, b):>10} "
              f"{ms(after.times, p):>14} {ratio(a, b):>10}")
    print(f"{'/health answered 200':>34} {len(base.times):>18} {len(loaded.times):>14} {'':>10} {len(after.times):>14}")
    print(f"{'/health otherwise':>34} {str(base.other or '-'):>18} {str(loaded.other or '-'):>14} {'':>10} "
          f"{str(after.other or '-'):>14}")
    rss_peak = peaks.get("rss", 0)
    print(f"{'VmRSS (MB; load: the highest)':>34} {rss_before / 1024:>18.0f} {rss_peak / 1024:>14.0f} "
          f"{ratio(rss_peak, rss_before):>10} {rss_after / 1024:>14.0f} {ratio(rss_after, rss_before):>10}")
    print(f"{'service CPU (1 core = 100 %)':>34} {cpu_base * 100:>17.1f}% {cpu_load * 100:>13.1f}% "
          f"{ratio(cpu_load, cpu_base):>10} {cpu_after * 100:>13.1f}% {ratio(cpu_after, cpu_base):>10}")
    fds_peak = peaks.get("fds", 0)
    print(f"{'open file handles (load: highest)':>34} {fds_before:>18} {fds_peak:>14} {ratio(fds_peak, fds_before):>10} "
          f"{fds_after:>14} {ratio(fds_after, fds_before):>10}   (limit {args.nofile})")
    print(f"connect p99 {ms(CONNECT_TIMES, 99)} max {ms(CONNECT_TIMES, 100)}")
    if n_files or n_pipeline:
        print(f"never-reading clients: {n_files + n_pipeline}, still connected at the end of the load "
              f"{load.flood_open}, closed by the service (found when writing) {load.flood_dropped}; "
              f"playlist requests pipelined {load.pipelined}")
    print(f"event streams open at the end of the load: {open_streams} (cap {caps['events']})")
    print(f"503 past the event-stream cap: {len(load.refused_events)}, p50 {ms(load.refused_events, 50)}, "
          f"p99 {ms(load.refused_events, 99)}")
    print(f"503 past the held cap: {len(load.refused_held)}, p50 {ms(load.refused_held, 50)}, "
          f"p99 {ms(load.refused_held, 99)}; held requests answered 200: {load.held_answered}")
    print(f"503 at accept (nothing idle to close): {load.refused_connection}; idle/half-sent connections closed "
          f"by the service: {load.idle_closed}")
    print(f"service's count of rejections: {rejected}")
    if load.errors:
        times = sorted(load.error_times)
        print(f"client-side errors: {load.errors}; at {times[0]:.1f} to {times[-1]:.1f} s into the load, "
              f"median {times[len(times) // 2]:.1f} s")
    print(f"segments written {len(written)} (last 3 not counted), missed {len(missed)}"
          f"{': ' + ', '.join(missed[:5]) if missed else ''}; hls_broadcaster_segments_lost_total {lost:.0f}")
    print(f"log written during the load: {log_load} bytes; ERROR/Traceback lines: {len(alarming)}")
    for line in alarming[:3]:
        print(f"  {line[:200]}")
    goals = {
        "/health p99 < 100 ms": bool(loaded.times) and pct(loaded.times, 99) < 0.1 and not loaded.other,
        "no segment missed": not missed and lost == 0,
        "log < 1 MB": log_load < 1_000_000,
    }
    print("goals: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in goals.items()))
    return 0 if all(goals.values()) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nofile", type=int, default=1024,
                        help="the service's RLIMIT_NOFILE, soft and hard (default 1024: systemd's default)")
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds of probes without load (default 10)")
    parser.add_argument("--load", type=float, default=30.0, help="seconds under load (default 30)")
    parser.add_argument("--reconnect", type=float, default=1.0,
                        help="seconds before an idle or half-sent connection the service closed is reopened "
                             "(default 1; 0.1 is a reconnect storm)")
    parser.add_argument("--caps", default="799,199,199",
                        help="connections,events,held to load a service that reports no caps with (default: "
                             "what the budget gives at 1024 handles)")
    parser.add_argument("--kinds", default="events,held,idle",
                        help="which loads to apply, comma-separated: events, held, idle, files, pipeline "
                             "(default events,held,idle)")
    parser.add_argument("--extra", type=float, default=0.1, help="how far past each cap (default 0.1: 10 %%)")
    parser.add_argument("--files", type=int, default=700,
                        help="clients asking for hls.min.js without reading, with --kinds files (default 700)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds after the load before the 'after' figures (default 10)")
    parser.add_argument("--write-timeout", type=float, default=None,
                        help="the service's WRITE_TIMEOUT (default: the service's own, 30 s)")
    return parser


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_parser().parse_args())))
