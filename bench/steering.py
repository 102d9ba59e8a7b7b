"""What content steering costs the VM (issue 48): its egress per viewer while players are steered to
it, straight and with nginx (deploy/nginx-cache.conf, the CDN stand-in) in front, and what the steering
manifest adds when nothing fails; every figure against a baseline of the same run.

    python -m bench.steering [--viewers 20] [--seconds 30] [--warmup 8]

Real parts: SeaweedFS on 127.0.0.1 behind the test rig's two gates (tests/support/gates.py: one on the
service's way to the bucket, one on the viewers'), the whole service in a process of its own as an
operator runs it with the VM's pathway (PATHWAYS=bucket,vm), fed by bench/rig.py's Owncast writer (real
ffmpeg 1 s segments, 1200 kbit/s, written in place the way Owncast writes them), Debian's nginx running
deploy/nginx-cache.conf as shipped but for the three strings its header names.

Viewers: --viewers clients in this process (aiohttp), each doing what a steering player does: the
multivariant playlist once, the steering manifest every TTL (asking with _HLS_pathway, following
RELOAD-URI) and the variant of the first pathway of its PATHWAY-PRIORITY, its media playlist with
blocking reload (_HLS_msn) and each new segment once; a switch of pathway reloads the playlist of the
new one at once. A client without steering support plays the first variant listed (the bucket's).

Phases, each --seconds measured after the viewers started (and switched, where the phase says so):
  no steering     the baseline: the viewers never read the steering manifest, the bucket serves
  steering        the same viewers reading the manifest every TTL; nothing fails
  steered         both gates closed (R2 down for everyone): the service steers to the VM, the viewers
                  follow; the VM's segment bytes (its hls_broadcaster_vm_segment_bytes_total) per
                  viewer, against one copy of the stream (what Owncast wrote in the same seconds)
  steered, nginx  the same through nginx: the VM's segment bytes against one copy of the stream
Between the steered phases the gates open and the service steers back to the bucket.

Reported: per phase, requests and bytes (headers and body as sent, gzip where the service zips) each
viewer got from the VM (the service, or nginx) and from the bucket, the VM's segment bytes (steered
and not), the service's (and nginx's) CPU, the steering manifests the service answered, and the
bucket reads the service's own probe made (one a second, whatever the audience). Goals: no VM
segment bytes while the bucket serves; steered straight, about one copy of the stream per viewer (0.9
to 1.1); through nginx, at most two copies in all, whatever the audience.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp

from bench.rig import NGINX, NginxCache, cpu_seconds, scrape_metrics, start_service, workspace
from tests.support.gates import BucketGates
from tests.support.service_process import ServiceProcess

MASTER = "/live/master.m3u8"
STREAM_KBPS = 1200
WINDOW = 10  # seconds: the playlists' size steady after --warmup
_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


# -- a steering player, reduced to what it asks for ------------------------------------------------


@dataclass
class Master:
    variants: dict[str, str]  # PATHWAY-ID -> the first variant's media playlist URL (absolute)
    order: list[str]  # pathways in the order the playlist lists them
    steering: str | None  # the steering manifest's URL
    first: str  # the pathway to play until the manifest is read


def parse_master(text: str, url: str) -> Master:
    variants: dict[str, str] = {}
    order: list[str] = []
    steering, first, pending = None, "", None
    for line in text.splitlines():
        if line.startswith("#EXT-X-CONTENT-STEERING:"):
            attrs = {k: v.strip('"') for k, v in _ATTR.findall(line.partition(":")[2])}
            steering = urljoin(url, attrs["SERVER-URI"]) if "SERVER-URI" in attrs else None
            first = attrs.get("PATHWAY-ID", "")
        elif line.startswith("#EXT-X-STREAM-INF:"):
            attrs = {k: v.strip('"') for k, v in _ATTR.findall(line.partition(":")[2])}
            pending = attrs.get("PATHWAY-ID", ".")
        elif line and not line.startswith("#") and pending is not None:
            if pending not in variants:
                variants[pending] = urljoin(url, line)
                order.append(pending)
            pending = None
    if not order:
        raise RuntimeError(f"no variant in the multivariant playlist:\n{text}")
    return Master(variants, order, steering, first if first in variants else order[0])


def parse_media(text: str, url: str) -> list[tuple[int, str]]:
    """(media sequence number, absolute URL) of each segment listed."""
    sequence = 0
    out: list[tuple[int, str]] = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.partition(":")[2])
        elif line and not line.startswith("#"):
            out.append((sequence + len(out), urljoin(url, line)))
    return out


@dataclass
class Tally:
    """What every viewer asked for and got, by what and from where ("vm": the host the viewers were
    given, the service or nginx; "bucket": the public URL's)."""

    requests: Counter[str] = field(default_factory=Counter)  # "<from> <kind>"
    bytes: Counter[str] = field(default_factory=Counter)  # "<from> <kind>": body bytes
    failed: Counter[str] = field(default_factory=Counter)  # "<from> <kind> <status>"

    def copy(self) -> Tally:
        return Tally(Counter(self.requests), Counter(self.bytes), Counter(self.failed))

    def since(self, earlier: Tally) -> Tally:
        return Tally(self.requests - earlier.requests, self.bytes - earlier.bytes, self.failed - earlier.failed)


class Viewer:
    def __init__(self, http: aiohttp.ClientSession, base: str, steering: bool, tally: Tally) -> None:
        self.http, self.base, self.steering, self.tally = http, base, steering, tally
        self.vm_host = urlsplit(base).netloc
        self.pathway = ""
        self.switched = asyncio.Event()
        self.played = 0  # segments fetched

    async def _get(self, url: str, kind: str, timeout: float = 10) -> tuple[int, bytes]:
        where = "vm" if urlsplit(url).netloc == self.vm_host else "bucket"
        self.tally.requests[f"{where} {kind}"] += 1
        try:
            async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=timeout),
                                     headers={"Accept-Encoding": "gzip"}) as r:
                body = await r.read()  # as sent (the session does not unzip)
                status, zipped = r.status, r.headers.get("Content-Encoding") == "gzip"
                head = 17 + sum(len(k) + len(v) + 4 for k, v in r.raw_headers)  # status line, headers
        except (aiohttp.ClientError, TimeoutError):
            status, body, zipped, head = 0, b"", False, 0
        if status == 200:
            self.tally.bytes[f"{where} {kind}"] += head + len(body)  # the bytes on the wire, but TCP's
        else:
            self.tally.failed[f"{where} {kind} {status}"] += 1
        return status, gzip.decompress(body) if zipped else body

    async def run(self) -> None:
        status, body = await self._get(self.base + MASTER, "master")
        if status != 200:
            raise RuntimeError(f"multivariant playlist: {status}")
        master = parse_master(body.decode(), self.base + MASTER)
        self.pathway = master.first if self.steering else master.order[0]
        tasks = [asyncio.create_task(self._play(master))]
        if self.steering and master.steering is not None:
            tasks.append(asyncio.create_task(self._steer(master, master.steering)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _steer(self, master: Master, url: str) -> None:
        while True:
            status, body = await self._get(f"{url}{'&' if '?' in url else '?'}_HLS_pathway={self.pathway}",
                                           "steering")
            ttl = 1.0
            if status == 200:
                manifest = json.loads(body)
                ttl = float(manifest.get("TTL", 1))
                best = next((p for p in manifest.get("PATHWAY-PRIORITY", []) if p in master.variants), None)
                if best is not None and best != self.pathway:
                    self.pathway = best
                    self.switched.set()
                if "RELOAD-URI" in manifest:
                    url = urljoin(url, manifest["RELOAD-URI"])
            await asyncio.sleep(ttl)

    async def _play(self, master: Master) -> None:
        last: int | None = None
        playing = ""
        while True:
            pathway = self.pathway
            url = master.variants[pathway]
            if pathway == playing and last is not None:
                url += f"{'&' if '?' in url else '?'}_HLS_msn={last + 1}"
            self.switched.clear()
            fetch = asyncio.create_task(self._get(url, "playlist"))
            switched = asyncio.create_task(self.switched.wait())
            try:
                await asyncio.wait({fetch, switched}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                switched.cancel()
                if not fetch.done():  # steered elsewhere while held (or stopped): ask the new pathway at once
                    fetch.cancel()
                await asyncio.gather(fetch, switched, return_exceptions=True)
            if fetch.cancelled():
                continue
            status, body = fetch.result()
            playing = pathway
            if status != 200:
                await asyncio.sleep(0.5)
                continue
            listed = parse_media(body.decode(), url)
            todo = listed[-1:] if last is None else [(n, u) for n, u in listed if n > last]
            for msn, segment in todo:
                await self._get(segment, "segment")
                self.played += 1
                last = msn
            if not todo:
                await asyncio.sleep(0.2)  # nothing new answered at once (a pathway's playlist behind)


# -- the phases ----------------------------------------------------------------------------------


@dataclass
class Reading:
    vm_bytes: dict[str, float]  # the VM's segment bytes, steered "yes" / "no"
    vm_503: float  # segment requests the VM refused at a bound
    steering: float  # steering manifest requests the service answered
    cpu: dict[str, float]  # process -> CPU seconds


@dataclass
class Phase:
    name: str
    viewers: int
    seconds: float
    tally: Tally
    vm_bytes: dict[str, float]
    vm_503: float
    steering: float
    probe_reads: int  # the service's own reads of the bucket's public URL (steering/probe.py)
    cpu: dict[str, float]


def metric(text: str, name: str) -> dict[str, float]:
    """A metric's samples by their labels' values joined by ','."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            labels = key[len(name):].strip("{}")
            out[",".join(p.split("=", 1)[1].strip('"') for p in labels.split(",") if p)] = float(value)
    return out


def _cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:  # an nginx helper (the cache loader) gone meanwhile
        return 0.0


Before = Callable[[list["Viewer"]], Awaitable[None]]


class Rig:
    def __init__(self, service: ServiceProcess, gates: BucketGates, nginx: NginxCache) -> None:
        self.service, self.gates, self.nginx = service, gates, nginx
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    async def health(self) -> dict[str, object]:
        async with self.http.get(f"{self.service.url}/health") as r:
            body: dict[str, object] = json.loads(await r.text())
            return body

    async def until_pathway(self, pathway: str, timeout: float) -> float:
        """Seconds until /health says players are steered to `pathway`."""
        t0 = time.monotonic()
        async with asyncio.timeout(timeout):
            while (await self.health()).get("pathway") != pathway:
                await asyncio.sleep(0.2)
        return time.monotonic() - t0

    async def reading(self) -> Reading:
        text = await scrape_metrics(self.http, self.service.url)
        return Reading(metric(text, "hls_broadcaster_vm_segment_bytes_total"),
                       metric(text, "hls_broadcaster_vm_segment_requests_total").get("503", 0.0),
                       sum(metric(text, "hls_broadcaster_steering_requests_total").values()),
                       {"service": cpu_seconds(self.service.pid),
                        "nginx": sum(_cpu(pid) for pid in self.nginx.pids())})

    async def measure(self, name: str, base: str, viewers: int, steering: bool, seconds: float,
                      before: Before | None = None) -> Phase:
        """`viewers` at `base` until each has a segment, then `before(viewers)`, then `seconds` measured."""
        tally = Tally()
        clients = [Viewer(self.http, base, steering, tally) for _ in range(viewers)]
        tasks = [asyncio.create_task(c.run()) for c in clients]

        def check() -> None:
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise RuntimeError(f"{name}: a viewer failed: {task.exception()!r}")

        try:
            async with asyncio.timeout(60):
                while not all(c.played for c in clients):
                    check()
                    await asyncio.sleep(0.2)
            if before is not None:
                await before(clients)
            start_tally, start = tally.copy(), await self.reading()
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            check()
            end, got, t1 = await self.reading(), tally.since(start_tally), time.monotonic()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        seen = sum(1 for s in self.gates.viewers.seen() if t0 <= s.started <= t1 and s.method == "GET")
        bucket_gets = sum(n for k, n in got.requests.items() if k.startswith("bucket "))
        return Phase(name, viewers, t1 - t0, got,
                     {k: end.vm_bytes.get(k, 0.0) - start.vm_bytes.get(k, 0.0) for k in ("yes", "no")},
                     end.vm_503 - start.vm_503, end.steering - start.steering, max(0, seen - bucket_gets),
                     {k: end.cpu[k] - start.cpu[k] for k in end.cpu})

    async def close(self) -> None:
        await self.http.close()


async def on_vm(clients: list[Viewer], timeout: float = 30) -> None:
    """Until every viewer plays the VM's pathway (steered there and a segment since)."""
    async with asyncio.timeout(timeout):
        while not all(c.pathway == "vm" for c in clients):
            await asyncio.sleep(0.1)
        marks = [c.played for c in clients]
        while not all(c.played > m for c, m in zip(clients, marks, strict=True)):
            await asyncio.sleep(0.1)


# -- the report --------------------------------------------------------------------------------


def kb(n: float) -> str:
    return f"{n / 1000:9.1f} KB"


def report(phases: list[Phase], rate: float, ttl: float) -> bool:
    """Print each phase and its ratios; whether the goals are met."""
    print(f"\none copy of the stream: {rate / 1000:.1f} KB/s (Owncast's segments, {STREAM_KBPS} kbit/s video and "
          f"64 kbit/s sound); steering TTL {ttl:g} s")
    print(f"{'per viewer and second':<24}" + "".join(f"{p.name:>18}" for p in phases))

    def row(label: str, values: list[str]) -> None:
        print(f"  {label:<22}" + "".join(f"{v:>18}" for v in values))

    def per(p: Phase, n: float) -> float:
        return n / p.viewers / p.seconds

    for where in ("vm", "bucket"):
        for kind in ("master", "playlist", "steering", "segment"):
            key = f"{where} {kind}"
            if any(p.tally.requests[key] for p in phases):
                row(f"{where} {kind} requests", [f"{per(p, p.tally.requests[key]):.3f}" for p in phases])
                row(f"{where} {kind} bytes", [f"{per(p, p.tally.bytes[key]) / 1000:.2f} KB" for p in phases])
    print(f"{'per phase':<24}" + "".join(f"{p.name:>18}" for p in phases))
    row("viewers x seconds", [f"{p.viewers} x {p.seconds:.1f}" for p in phases])
    row("VM segment bytes/s", [f"{p.vm_bytes['yes'] / p.seconds / 1000:.1f} KB" for p in phases])
    row("  of them not steered", [f"{p.vm_bytes['no'] / p.seconds / 1000:.1f} KB" for p in phases])
    row("  copies of the stream", [f"{(p.vm_bytes['yes'] + p.vm_bytes['no']) / p.seconds / rate:.2f}" for p in phases])
    row("VM segment 503s", [f"{p.vm_503:.0f}" for p in phases])
    row("steering answers/s", [f"{p.steering / p.seconds:.2f}" for p in phases])
    row("service probe reads/s", [f"{p.probe_reads / p.seconds:.2f}" for p in phases])
    row("service CPU", [f"{p.cpu['service'] / p.seconds * 100:.1f} %" for p in phases])
    row("nginx CPU", [f"{p.cpu['nginx'] / p.seconds * 100:.1f} %" for p in phases])
    row("failed fetches", [str(sum(p.tally.failed.values())) for p in phases])
    by = {p.name: p for p in phases}
    base, steer, vm, edge = by["no steering"], by["steering"], by["steered"], by["steered, nginx"]

    def vm_sent(p: Phase) -> float:
        return p.vm_bytes["yes"] + p.vm_bytes["no"]

    cpu_ratio = steer.cpu["service"] / base.cpu["service"] if base.cpu["service"] else float("nan")
    extra = per(steer, steer.tally.bytes["vm steering"])
    print(f"\nsteering/no steering: service CPU {cpu_ratio:.2f}x; the manifest adds "
          f"{per(steer, steer.tally.requests['vm steering']):.2f} requests and {extra * 3600 / 1e6:.2f} MB an hour "
          f"per viewer ({extra / rate * 100:.3f} % of the stream's bytes)")
    direct = vm_sent(vm) / vm.viewers / vm.seconds / rate
    cached = vm_sent(edge) / edge.seconds / rate
    print(f"steered/bucket: the VM sends {direct:.2f} copies of the stream per viewer straight "
          f"({vm_sent(vm) / vm.seconds / 1000:.0f} KB/s for {vm.viewers}), {cached:.2f} copies in all through nginx "
          f"({cached / direct / edge.viewers * 100 if direct else float('nan'):.0f} % of straight for "
          f"{edge.viewers} viewers); on the bucket it sent {vm_sent(base) + vm_sent(steer):.0f} segment bytes")
    quiet = vm_sent(base) + vm_sent(steer) == 0
    one_each = 0.9 <= direct <= 1.1
    one_copy = cached <= 2.0
    print(f"goals: no VM segment bytes on the bucket: {'met' if quiet else 'NOT met'}; steered straight, "
          f"one copy per viewer (0.9 to 1.1): {'met' if one_each else 'NOT met'}; through nginx, at most two "
          f"copies in all: {'met' if one_copy else 'NOT met'}")
    return quiet and one_each and one_copy


async def main(args: argparse.Namespace) -> int:
    if shutil.which(NGINX) is None:
        sys.exit(f"bench/steering.py needs {NGINX}: apt-get install nginx-light")
    async with workspace("steering") as ws:
        segments = await ws.encoded(kbps=STREAM_KBPS)
        rate = sum(len(s.data) for s in segments) / sum(s.duration for s in segments)
        hls_dir, writer = ws.owncast(segments)
        try:
            async with BucketGates(ws.s3) as gates:
                env = ws.env(hls_dir, S3_ENDPOINT_URL=gates.service_url, R2_PUBLIC_URL=gates.public_url,
                             UPLOAD_TIMEOUT="2", WINDOW_SECONDS=str(WINDOW), PATHWAYS="bucket,vm")
                service = await start_service(env, ws.folder("service"))
                nginx = NginxCache(ws.work / "nginx", service.url.removeprefix("http://"))
                rig = Rig(service, gates, nginx)
                try:
                    nginx.start()
                    print(f"service (pid {service.pid}) at {service.url}, nginx at 127.0.0.1:{nginx.port}; "
                          f"{args.warmup:g} s of stream first ...", flush=True)
                    await asyncio.sleep(args.warmup)
                    phases = await run(rig, args, f"http://127.0.0.1:{nginx.port}")
                    async with rig.http.get(f"{service.url}/live/steering.json") as r:
                        ttl = float(json.loads(await r.text())["TTL"])
                finally:
                    await rig.close()
                    nginx.stop()
                    await service.stop()
        finally:
            await writer.stop()
        return 0 if report(phases, rate, ttl) else 1


async def run(rig: Rig, args: argparse.Namespace, edge: str) -> list[Phase]:
    url, n, seconds = rig.service.url, args.viewers, args.seconds
    phases = []

    async def steered(clients: list[Viewer]) -> None:
        await rig.gates.close(service=True, viewers=True)
        waited = await rig.until_pathway("vm", 60)
        await on_vm(clients)
        print(f"  steered to the VM {waited:.1f} s after the gates closed", flush=True)

    for name, base, steering, before in (("no steering", url, False, None), ("steering", url, True, None),
                                         ("steered", url, True, steered), ("steered, nginx", edge, True, steered)):
        print(f"{name}: {n} viewers, {seconds:g} s ...", flush=True)
        phases.append(await rig.measure(name, base, n, steering, seconds, before))
        if before is not None:
            await rig.gates.open()
            back = await rig.until_pathway("bucket", 90)
            print(f"  back on the bucket {back:.1f} s after the gates opened", flush=True)
    return phases


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=20, help="viewers in each phase (default 20: 25 Mbit/s "
                        "straight from the VM, under VM_SEGMENT_MBPS's default 50)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per phase (default 30)")
    parser.add_argument("--warmup", type=float, default=WINDOW + 2.0,
                        help=f"seconds of stream before the first phase (default {WINDOW + 2}: the "
                             f"{WINDOW} s window fills)")
    return parser


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_parser().parse_args())))
