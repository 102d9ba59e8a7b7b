"""The emulator's ffmpeg processes, supervised: Owncast's transcoder and, with passthrough, the
broadcaster piping an encoded stream into it. Each runs in its own process group, is never left
behind (a finalizer kills it if its owner is dropped), and an unexpected exit is kept as the failure."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import weakref

from broadcaster.demo.children import GroupKiller, child_argv, stop_child

log = logging.getLogger("broadcaster.demo.emulator")
ffmpeg_log = logging.getLogger("broadcaster.demo.emulator.ffmpeg")

_STOP_TIMEOUT = 10.0
_STDERR_TAIL = 40


class EmulatorError(RuntimeError):
    """ffmpeg failed (exited unexpectedly, or could not make the offline clip)."""


async def run_once(argv: list[str], timeout: float = 60.0) -> None:
    """Run a short ffmpeg job; raise EmulatorError with its output if it fails."""
    proc = await asyncio.create_subprocess_exec(
        *child_argv(argv),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        GroupKiller(proc.pid)()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise EmulatorError(f"ffmpeg failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")


class _Child:
    """One running ffmpeg, with the killer its finalizer calls if nobody stops it."""

    def __init__(self, owner: Transcoder, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.killer = GroupKiller(proc.pid)
        self.finalizer = weakref.finalize(owner, self.killer)


class Transcoder:
    """Owncast's transcoder ffmpeg (and its broadcaster), started and stopped as one."""

    def __init__(self) -> None:
        self._ffmpeg: _Child | None = None
        self._source: _Child | None = None
        self._stopping = False
        self._stderr_tasks: list[asyncio.Task[None]] = []
        self._watch_task: asyncio.Task[None] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self.failure: EmulatorError | None = None  # set when ffmpeg exits without being asked to

    @staticmethod
    def _alive(child: _Child | None) -> int | None:
        return child.proc.pid if child is not None and child.proc.returncode is None else None

    @property
    def pid(self) -> int | None:
        return self._alive(self._ffmpeg)

    @property
    def source_pid(self) -> int | None:
        return self._alive(self._source)

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr_tail)

    async def start(self, argv: list[str], source_argv: list[str] | None) -> None:
        """Start ffmpeg; with source_argv, first a pipe and then the broadcaster writing into it."""
        self.failure = None
        self._stderr_tail.clear()
        read_fd = write_fd = -1
        if source_argv is not None:
            read_fd, write_fd = os.pipe()  # Owncast's io.Pipe from the RTMP server to ffmpeg's stdin
        try:
            proc = await asyncio.create_subprocess_exec(
                *child_argv(argv),
                stdin=read_fd if source_argv is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # own process group, killable as a whole
            )
        finally:
            if source_argv is not None:
                os.close(read_fd)
        self._ffmpeg = _Child(self, proc)
        self._stopping = False
        self._stderr_tasks = [asyncio.create_task(self._read_stderr(proc, "ffmpeg"))]
        if source_argv is not None:
            log.debug("starting the broadcaster: %s", " ".join(source_argv))
            try:
                src = await asyncio.create_subprocess_exec(
                    *child_argv(source_argv),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=write_fd,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
            except BaseException:
                os.close(write_fd)
                await self.stop()
                raise
            os.close(write_fd)
            self._source = _Child(self, src)
            self._stderr_tasks.append(asyncio.create_task(self._read_stderr(src, "source")))
        self._watch_task = asyncio.create_task(self._watch(proc))

    async def _read_stderr(self, proc: asyncio.subprocess.Process, name: str) -> None:
        assert proc.stderr is not None
        while True:
            try:
                line = await proc.stderr.readline()
            except ValueError:  # an absurdly long line: take a piece, keep draining the pipe
                line = await proc.stderr.read(65536)
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if text:
                self._stderr_tail.append(text if name == "ffmpeg" else f"[{name}] {text}")
                ffmpeg_log.info("[%s %d] %s", name, proc.pid, text)

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        mine = self._ffmpeg is not None and self._ffmpeg.proc is proc
        if mine and self._ffmpeg is not None:
            self._ffmpeg.killer.done = True
        if self._stopping or not mine:
            return
        if self._stderr_tasks:
            await asyncio.wait(self._stderr_tasks, timeout=2.0)  # collect its last words
        tail = "\n".join(self._stderr_tail) or "(no output)"
        source = self._source.proc if self._source is not None else None
        if source is not None:  # the usual cause: its input ended
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(source.wait()), 2.0)
        fed = "" if source is None else f" (its broadcaster pid {source.pid}: exit code {source.returncode})"
        self.failure = EmulatorError(
            f"ffmpeg (pid {proc.pid}) exited unexpectedly with code {code}{fed}; last stderr lines:\n{tail}"
        )
        log.error("%s", self.failure)

    async def stop(self) -> bool:
        """Stop ffmpeg (and its broadcaster) if there is one; True if a stream was on."""
        ffmpeg, source = self._ffmpeg, self._source
        if ffmpeg is None:
            return False
        proc = ffmpeg.proc
        self._stopping = True
        try:
            if source is not None:
                # The broadcaster disconnects: ffmpeg reads the end of its input, finishes the
                # current segment and playlist, and exits, as in Owncast.
                await stop_child(source.proc, source.killer, source.finalizer,
                                 name="broadcaster ffmpeg", timeout=_STOP_TIMEOUT, whole_group=False)
                try:
                    await asyncio.wait_for(asyncio.shield(proc.wait()), _STOP_TIMEOUT)
                except TimeoutError:
                    log.warning("ffmpeg pid %d did not end with its input; stopping it", proc.pid)
            # SIGTERM to ffmpeg alone makes it finish the current segment and playlist, like an RTMP
            # input that ends; the group is SIGKILLed only if it hangs.
            await stop_child(proc, ffmpeg.killer, ffmpeg.finalizer, name="ffmpeg", timeout=_STOP_TIMEOUT,
                             whole_group=False)
        finally:
            if source is not None and source.proc.returncode is None:
                source.killer()  # cancelled half-way: never leave the broadcaster running
            tasks = [*self._stderr_tasks, *([self._watch_task] if self._watch_task is not None else [])]
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)
            self._ffmpeg = self._source = None
            self._stderr_tasks = []
            self._watch_task = None
            log.debug("ffmpeg pid %d stopped with code %s", proc.pid, proc.returncode)
        return True
