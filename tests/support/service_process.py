"""The service in tests, one way per kind.

- `ServiceProcess`: the real service as an operator runs it, `python -m broadcaster run` in its own
  process. The way to run it, unless a test needs what only the next one gives.
- `running_service`: the service in the test's own process, for tests that fake at a seam
  (monkeypatch) or look at its parts (its audience, its clips, its status).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import boto3

import broadcaster
from broadcaster.demo.children import StartClock
from broadcaster.service import Service
from broadcaster.settings import SETTINGS, Settings, load_settings
from tests.support.public_bucket import readable_by_anyone

if TYPE_CHECKING:
    from broadcaster.demo.seaweed import SeaweedS3

_RECORD = re.compile(r"\d{4}-\d\d-\d\d ")  # cli.py's format: a record begins with its time
_SERVING = re.compile(r"serving (http://\S+?)/live/master\.m3u8")


def _environ() -> dict[str, str]:
    """This process's environment without any of the service's settings (the test sets those)."""
    return {k: v for k, v in os.environ.items() if k not in {s.name for s in SETTINGS}}


def service_env(hls_dir: Path, s3: SeaweedS3, state_dir: Path, **over: str) -> dict[str, str]:
    """The service on SeaweedFS, with Owncast's folder `hls_dir`."""
    env = _environ()
    env.update(
        HLS_DIR=str(hls_dir), S3_ENDPOINT_URL=s3.endpoint_url, AWS_ACCESS_KEY_ID=s3.access_key,
        AWS_SECRET_ACCESS_KEY=s3.secret_key, AWS_BUCKET_NAME=s3.bucket, R2_PUBLIC_URL=s3.public_url,
        PORT="0", STATE_DIR=str(state_dir), LOG_LEVEL="info",
        # The live window alone, as tests of it expect; tests of rewind set it.
        REWIND_SECONDS="0",
    )
    env.update(over)
    return env


def moto_env(moto_url: str, tmp_path: Path, **over: str) -> dict[str, str]:
    """The service on moto's S3 server (conftest's `moto_url`), HLS_DIR and STATE_DIR in tmp_path.
    Keys no log line could contain by chance: the service masks its secrets in every line."""
    s3 = boto3.client("s3", endpoint_url=moto_url, aws_access_key_id="lockkey-0a9",
                      aws_secret_access_key="locksecret-0a9", region_name="us-east-1")
    if not any(b["Name"] == "locktest" for b in s3.list_buckets()["Buckets"]):
        s3.create_bucket(Bucket="locktest")
    readable_by_anyone(s3, "locktest")  # as an R2 bucket behind its public URL: what /health checks
    (tmp_path / "hls").mkdir(exist_ok=True)
    env = _environ()
    env.update(HLS_DIR=str(tmp_path / "hls"), S3_ENDPOINT_URL=moto_url, AWS_ACCESS_KEY_ID="lockkey-0a9",
               AWS_SECRET_ACCESS_KEY="locksecret-0a9", AWS_BUCKET_NAME="locktest",
               R2_PUBLIC_URL=f"{moto_url}/locktest", PORT="0", STATE_DIR=str(tmp_path / "state"), LOG_LEVEL="info")
    env.update(over)
    return env


def with_this_code(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child `python -m broadcaster` that imports the package this process imported (the
    checkout under test), not whichever copy pip last installed in editable mode."""
    code = str(Path(broadcaster.__file__).resolve().parent.parent)
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (code, env.get("PYTHONPATH", "")) if p)}


class ServiceProcess:
    def __init__(self, env: dict[str, str], cwd: Path, *, nofile: int | None = None,
                 start_timeout: float = 20.0, prefix: Sequence[str] = ()) -> None:
        """nofile: the child's RLIMIT_NOFILE, soft and hard (as systemd's default 1024 is).
        start_timeout: how long `async with` waits for it to serve, in seconds of its CPU or of its
        standing still (StartClock), not of wall time. prefix: a command it runs under (a bench's
        valgrind), whose process is then the service's pid."""
        self._env, self._cwd = env, cwd
        self._prefix = tuple(prefix)
        self._nofile = nofile
        self._start_timeout = start_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self, timeout: float = 20.0) -> ServiceProcess:
        self._cwd.mkdir(parents=True, exist_ok=True)  # its own folder: no stray .env is read
        self.proc = await asyncio.create_subprocess_exec(
            *self._prefix, sys.executable, "-m", "broadcaster", "run", env=with_this_code(self._env), cwd=self._cwd,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            preexec_fn=self._limit if self._nofile is not None else None,
        )
        self._reader = asyncio.create_task(self._read())
        done = asyncio.ensure_future(self.proc.wait())
        ready = asyncio.ensure_future(self._ready.wait())
        # Waited for while it gets on: on a loaded machine its start-up (imports, the bucket, the first
        # scan) took over 20 s of wall time for a second or two of CPU.
        clock, why = StartClock(self.proc.pid, busy=timeout, still=timeout), None
        while not (done.done() or ready.done()) and (why := clock.expired()) is None:
            await asyncio.wait({done, ready}, timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        done.cancel()
        if not self.url:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
            raise RuntimeError(f"service did not start ({why or 'it exited'}):\n" + "\n".join(self.lines[-20:]))
        return self

    async def refused(self, timeout: float = 20.0, code: int = 2) -> list[str]:
        """Start it, expecting start-up to fail: it must not serve and must exit with `code`; its
        `hls-broadcaster: error:` lines."""
        try:
            await self.start(timeout)
        except RuntimeError:
            pass
        else:
            raise AssertionError(f"the service started at {self.url}")
        assert await self.exited() == code, self.lines[-20:]
        return [line for line in self.lines if line.startswith("hls-broadcaster: error:")]

    def _limit(self) -> None:  # in the child, before exec
        assert self._nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self._nofile, self._nofile))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            m = _SERVING.search(line)
            if m and not self.url:
                self.url = m.group(1)
                self._ready.set()

    def problems(self) -> list[str]:
        """Log records an operator would be alarmed by (errors and tracebacks), each whole: a traceback's
        lines follow its record without a timestamp, and a failure's message needs them to name the cause."""
        found: list[str] = []
        alarming = False
        for line in self.lines:
            if _RECORD.match(line):
                alarming = " ERROR " in line or "Exception in" in line
            alarming = alarming or "Traceback" in line
            if alarming:
                found.append(line)
        return found

    def warnings(self) -> list[str]:
        """Problems, and the warnings a benchmark reports next to its figures."""
        problems = set(self.problems())
        return [line for line in self.lines if " WARNING " in line or line in problems]

    async def exited(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
        if self._reader is not None:
            await self._reader
        return code

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else 0  # type: ignore[return-value]
        self.proc.send_signal(sig)
        try:
            return await self.exited(timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise

    async def __aenter__(self) -> ServiceProcess:
        return await self.start(self._start_timeout)

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if et is not None:  # shown by pytest with the failure: what the service was saying
            print("--- service log (last 60 lines) ---", *self.lines[-60:], sep="\n")
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


@contextlib.asynccontextmanager
async def running_service(service: Service | Settings | dict[str, str]) -> AsyncIterator[Service]:
    """The service in this process (built, from settings, or from an environment such as service_env's),
    started for the block and stopped after it whatever happens, through its public start() and stop()."""
    if not isinstance(service, Service):
        service = Service(service if isinstance(service, Settings) else load_settings(environ=service))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
