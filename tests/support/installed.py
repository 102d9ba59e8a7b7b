"""What a user installs, built and run as a user runs it (tests/test_package.py): the tree copied, the sdist
and wheel built from the copy, a venv that cannot reach the checkout, and `hls-broadcaster demo` from it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .processes import alive
from .waiting import until

ROOT = Path(__file__).resolve().parents[2]

# Settings the service reads from the environment: a demo must not pick up the test run's.
_SCRUB = ("HLS_DIR", "S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_BUCKET_NAME",
          "R2_PUBLIC_URL", "PORT", "HOST", "STATE_DIR", "PYTHONPATH")


def tracked_files(root: Path = ROOT) -> list[str]:
    """Every file git tracks plus new files not ignored: what a clean clone of this working tree holds."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=root, check=True, capture_output=True).stdout
    return sorted(name for name in out.decode().split("\0") if name and (root / name).is_file())


def copy_tree(dst: Path, root: Path = ROOT) -> Path:
    """A copy of the working tree as a clone would have it (no build leftovers, no caches)."""
    for name in tracked_files(root):
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return dst


def clean_env(**over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # setuptools warns about it; a user's shell does not set it
    env.update(over)
    return env


@dataclass
class Built:
    wheel: Path
    sdist: Path
    log: str  # everything the builds printed


def build(src: Path, out: Path, *, isolated: bool = False) -> Built:
    """The sdist and the wheel of `src`, each built from the tree (`python -m build --sdist --wheel`)."""
    argv = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(src)]
    if not isolated:
        argv.insert(3, "--no-isolation")
    log = _run_build(argv, src, "build")
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, f"expected one wheel and one sdist in {out}: {wheels} {sdists}"
    return Built(wheels[0], sdists[0], log)


def build_wheel_from_sdist(sdist: Path, out: Path) -> tuple[Path, str]:
    argv = [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(out), str(sdist)]
    log = _run_build(argv, out, "wheel from the sdist")
    return next(out.glob("*.whl")), log


def _run_build(argv: list[str], cwd: Path, what: str) -> str:
    """What `argv` printed, or an AssertionError with its end."""
    done = subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise AssertionError(f"{what} failed ({done.returncode}):\n{log[-4000:]}")
    return log


# Lines setuptools prints that are not about the package: MANIFEST.in's `global-exclude` found
# nothing to exclude (a clean tree has no __pycache__), which is the point of the rule.
_BENIGN = re.compile(r"no previously-included files matching .* found anywhere in distribution")


def build_warnings(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if re.search(r"\bwarn(ing)?\b", line, re.IGNORECASE) and not _BENIGN.search(line)]


@dataclass
class Venv:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def script(self, name: str) -> Path:
        return self.path / "bin" / name

    @classmethod
    def create(cls, path: Path, *, with_test_env: bool) -> Venv:
        """A new venv. with_test_env: it also sees the packages installed for the tests, appended to
        its `sys.path` by a `.pth` line, so they need not be downloaded again; a `.pth` line does not
        run the `.pth` files of the folder it adds, so the checkout's editable install stays out."""
        subprocess.run([sys.executable, "-m", "venv", "--without-pip" if with_test_env else "--upgrade-deps",
                        str(path)], check=True, capture_output=True, timeout=300)
        venv = cls(path)
        if with_test_env:
            site = Path(venv.run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
            parents = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
            (site / "_test_env_packages.pth").write_text("".join(f"{p}\n" for p in sorted(parents)))
        return venv

    def run_python(self, code: str, cwd: Path | None = None) -> str:
        done = subprocess.run([str(self.python), "-c", code], cwd=cwd or self.path, env=clean_env(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def pip_install(self, *args: str, cwd: Path | None = None, timeout: float = 900) -> str:
        """pip of the test environment acting on this venv (a venv made `--without-pip` has none)."""
        pip = [str(self.python), "-m", "pip"] if (self.path / "bin" / "pip").exists() else [
            sys.executable, "-m", "pip", "--python", str(self.python)]
        done = subprocess.run([*pip, "install", "--disable-pip-version-check", *args], cwd=cwd or self.path,
                              env=clean_env(), capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"pip install {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (the demo's children run in process groups of their own)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses: split after the last ')'.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


_WATCH = re.compile(r"Watch it:\s+(http://\S+?)/\s*$")
_SEGMENTS_FROM = re.compile(r"segments come from (http://\S+?)\)")


@dataclass
class DemoRun:
    """`hls-broadcaster demo` as a user starts it in a terminal, and stops it with Ctrl-C."""

    argv: list[str]
    cwd: Path
    proc: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    url: str = ""
    s3_url: str = ""
    _reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        # A session of its own, as a terminal gives it: Ctrl-C goes to the demo's process group.
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.cwd, env=clean_env(), start_new_session=True,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())
        await until(lambda: bool(self.url) or self.proc is None or self.proc.returncode is not None
                    or (self._reader is not None and self._reader.done()),
                    "the demo to print its viewer URL", timeout)
        if not self.url:
            raise AssertionError("the demo did not start:\n" + "\n".join(self.lines[-30:]))

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if m := _WATCH.search(line):
                self.url = m.group(1)
            if m := _SEGMENTS_FROM.search(line):
                self.s3_url = m.group(1)

    async def ctrl_c(self, timeout: float = 30.0) -> tuple[int, set[int]]:
        """SIGINT to the demo's process group, as Ctrl-C; the exit code and the processes below it then."""
        assert self.proc is not None
        below = descendants(self.proc.pid)
        os.killpg(self.proc.pid, signal.SIGINT)
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            if self._reader is not None:
                await self._reader
        return code, below

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            below = descendants(self.proc.pid)
            for pid in [self.proc.pid, *below]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


async def demo_plays(demo: DemoRun, timeout: float = 60.0) -> None:
    """What a user checks in the first minute: /health turns ok, the multivariant playlist names the
    variants, a variant lists segments on the S3 server that download, and the viewer page loads."""
    async with aiohttp.ClientSession() as http:
        async def healthy() -> bool:
            async with http.get(f"{demo.url}/health") as resp:
                health = await resp.json()
                return resp.status == 200 and health.get("stream") == "live"

        await poll(healthy, "/health to say the stream is live", timeout)
        master = ""

        async def master_ready() -> bool:  # 503 with Retry-After until every variant has a segment listed
            nonlocal master
            async with http.get(f"{demo.url}/live/master.m3u8") as resp:
                master = await resp.text()
                return resp.status == 200

        await poll(master_ready, "the multivariant playlist", timeout)
        variants = [line for line in master.splitlines() if line and not line.startswith("#")]
        # Each variant on the bucket's pathway, then on the VM's (content steering, on by default), named
        # absolute where the viewer asked (docs/steering.md).
        assert variants == [f"{demo.url}/live/{path}{n}/playlist.m3u8" for path in ("", "vm/") for n in (0, 1)], master
        assert f'#EXT-X-CONTENT-STEERING:SERVER-URI="{demo.url}/live/steering.json"' in master, master
        async with http.get(f"{demo.url}/live/vm/0/playlist.m3u8") as resp:
            assert resp.status == 200, resp.status
            assert "/live/vm/0/" in await resp.text()
        async with http.get(f"{demo.url}/live/0/playlist.m3u8") as resp:
            assert resp.status == 200, resp.status
            media = await resp.text()
        segments = [line for line in media.splitlines() if line and not line.startswith("#")]
        assert segments and all(s.startswith(f"{demo.s3_url}/") for s in segments), (demo.s3_url, media)
        async with http.get(segments[-1]) as resp:
            assert resp.status == 200, resp.status
            body = await resp.read()
        assert body[:1] == b"\x47" and len(body) % 188 == 0, "not an MPEG-TS segment"
        async with http.get(f"{demo.url}/") as resp:
            assert resp.status == 200, resp.status
            page = await resp.text()
        assert "hls.min.js" in page, page[:500]
        async with http.get(f"{demo.url}/hls.min.js") as resp:
            assert resp.status == 200 and len(await resp.read()) > 100_000
        # Every file the page names, and every module its viewer.js imports, is in the package: each
        # answers at the versioned URL named (scripts/build-viewer), with no redirect.
        todo = re.findall(r'(?:src|href)="([\w.-]+\?v=[0-9a-f]{16})"', page)
        assert {"hls.min.js", "viewer.min.css", "viewer.min.js"} <= {u.split("?")[0] for u in todo}, page[:2000]
        while todo:
            url = todo.pop()
            async with http.get(f"{demo.url}/{url}", allow_redirects=False) as resp:
                assert resp.status == 200, (url, resp.status)
                body = await resp.read()
            todo += [m.decode() for m in re.findall(rb'import\("\./([\w.-]+\?v=[0-9a-f]{16})"\)', body)]


@contextlib.asynccontextmanager
async def playing_demo(argv: list[str], cwd: Path) -> AsyncIterator[DemoRun]:
    """The demo started and playing (demo_plays) for the block, then stopped with Ctrl-C: exit 0, and what
    ran below it (SeaweedFS, ffmpeg) gone. Killed whatever happens."""
    demo = DemoRun(argv, cwd)
    try:
        await demo.start()
        await demo_plays(demo)
        yield demo
        code, below = await demo.ctrl_c()
        assert below, "the demo runs SeaweedFS and ffmpeg below it"
        assert code == 0, demo.lines[-20:]
        await all_gone(below)
    finally:
        await demo.kill()


async def poll(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    """Asks `check` again until it says yes; a refused connection counts as no."""
    async def answered() -> bool:
        try:
            return await check()
        except aiohttp.ClientError:
            return False

    await until(answered, what, timeout, every=0.1)


async def all_gone(pids: set[int], timeout: float = 10.0) -> None:
    """Every pid has ended (a process may take a moment to be reaped once its parent is gone)."""
    await until(lambda: not any(alive(p) for p in pids), f"processes {sorted(pids)} to end", timeout)
