"""Start-up fails at each step in turn and leaves nothing behind; a start and stop leaves nothing either:
the STATE_DIR lock and every port can be taken again, the control socket is gone, no thread, task or file
handle of the service remains. In-process against moto, each failure injected at one part's seam.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.bucket.cleaner import Cleaner
from broadcaster.bucket.store import S3Store
from broadcaster.clips.book import socket_path
from broadcaster.demo.ports import kept_port
from broadcaster.publish.publisher import Publisher
from broadcaster.service import Service
from broadcaster.settings import Address, Settings, load_settings
from broadcaster.source.watcher import HlsWatcher
from broadcaster.state.disk import DirectoryBusy, DirectoryLock
from broadcaster.status.hub import StatusWatcher
from broadcaster.status.trackers import TrackerProbe
from tests.support.service_process import moto_env
from tests.support.sse import Event, SseReader
from tests.support.waiting import WAIT, until

Stack = contextlib.ExitStack[bool | None]


@pytest.fixture
def settings(tmp_path: Path, moto_url: str) -> Settings:
    """Every part that holds something on: mirror, cleaner, tracker probe, listeners, socket."""
    return load_settings(environ=moto_env(
        moto_url, tmp_path, HOST="127.0.0.1", PORT=str(kept_port()), METRICS_LISTEN=f"127.0.0.1:{kept_port()}",
        PUBLISH_PLAYLISTS="true", P2P_TRACKERS=f"ws://127.0.0.1:{kept_port()}/announce", UPLOAD_TIMEOUT="5"))


@dataclass
class Before:
    threads: set[threading.Thread]
    tasks: set[asyncio.Task[Any]]
    fds: dict[str, str]  # fd -> what it is


def _threads() -> set[threading.Thread]:
    # The loop's default executor keeps idle workers for whoever calls to_thread next: not held by anyone.
    return {t for t in threading.enumerate() if not t.name.startswith("asyncio_")}


def _fd_names() -> dict[str, str]:
    names = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            names[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return names


def _before() -> Before:
    return Before(_threads(), set(asyncio.all_tasks()), _fd_names())


async def nothing_left(settings: Settings, before: Before) -> None:
    lock = DirectoryLock(settings.state_dir)
    try:
        lock.acquire()  # flock: a second open file in this process is refused while the first holds it
    except DirectoryBusy:
        raise AssertionError("the STATE_DIR lock is still held") from None
    lock.release()
    assert isinstance(settings.metrics_listen, Address)
    for port in (settings.port, settings.metrics_listen.port):
        with socket.socket() as s:
            # Connections the service closed may wait out TIME_WAIT; a listener left would still refuse.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((settings.host, port))  # EADDRINUSE while the service still listens
            s.listen()
    assert not socket_path(settings.state_dir).exists()
    assert {t for t in asyncio.all_tasks() if not t.done()} - before.tasks == set()
    # moto answers each request on a thread of its own, which ends once the service's client hung up.
    await gone("threads", lambda: _threads() - before.threads)
    await gone("file handles", lambda: {fd: it for fd, it in _fd_names().items() if before.fds.get(fd) != it})


async def gone(what: str, left: Callable[[], Collection[object]]) -> None:
    try:
        await until(lambda: not left(), f"{what} to close")
    except AssertionError:
        raise AssertionError(f"{what} left: {left()}") from None


Inject = Callable[[pytest.MonkeyPatch, Stack, Settings], Settings]


def part(cls: type, what: str) -> Inject:
    """`cls`'s start raises."""
    async def start(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"injected: {what} cannot start")

    def inject(mp: pytest.MonkeyPatch, _: Stack, settings: Settings) -> Settings:
        mp.setattr(cls, "start", start)
        return settings
    return inject


def port_taken(port: Callable[[Settings], int]) -> Inject:
    """Someone else listens on the port until the test ends."""
    def inject(_: pytest.MonkeyPatch, stack: Stack, settings: Settings) -> Settings:
        holder = stack.enter_context(socket.socket())
        holder.bind(("127.0.0.1", port(settings)))
        holder.listen()
        return settings
    return inject


def metrics_port(s: Settings) -> int:
    assert isinstance(s.metrics_listen, Address)
    return s.metrics_listen.port


# In the order the service takes them; each fails start-up there, with the error start-up raises.
STEPS: list[tuple[str, Inject, str]] = [
    ("store", part(S3Store, "the store's client"), "injected"),
    ("bucket-refuses", lambda _, __, s: dataclasses.replace(
        s, buckets=(dataclasses.replace(s.first_bucket, bucket="nobody-s"),)), "refused us"),
    ("cleaner", part(Cleaner, "the cleaner"), "injected"),
    ("publisher", part(Publisher, "the publisher"), "injected"),
    ("watcher", part(HlsWatcher, "the watcher"), "injected"),
    ("tracker-probe", part(TrackerProbe, "the tracker probe"), "injected"),
    ("metrics-port-taken", port_taken(metrics_port), "METRICS_LISTEN"),
    ("state-events", part(StatusWatcher, "the state events (the public app's startup)"), "injected"),
    ("public-port-taken", port_taken(lambda s: s.port), "HOST/PORT"),
]


@pytest.mark.parametrize("inject,error", [(inject, error) for _, inject, error in STEPS],
                         ids=[name for name, _, _ in STEPS])
async def test_a_start_that_fails_at_any_step_leaves_nothing(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, inject: Inject, error: str) -> None:
    before = _before()
    with contextlib.ExitStack() as stack:
        service = Service(inject(monkeypatch, stack, settings))
        with pytest.raises(RuntimeError, match=error):
            await service.start()
    await nothing_left(settings, before)
    await service.stop()  # a stop after a failed start has nothing left to do


async def test_a_failure_while_building_after_the_lock_lets_it_go(settings: Settings, tmp_path: Path) -> None:
    before = _before()
    with pytest.raises(ValueError, match="not a directory"):
        Service(settings, viewer_dir=tmp_path / "hls" / "missing")
    await nothing_left(settings, before)


async def test_a_control_socket_that_fails_half_way_costs_the_clips_and_leaves_nothing(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listening already when making it private fails: that listener is closed and its file removed."""
    before = _before()
    chmod, control = os.chmod, socket_path(settings.state_dir)

    def refuse(path: Any, mode: int, **kwargs: Any) -> None:
        if Path(path) == control:
            raise PermissionError(1, "Operation not permitted")
        chmod(path, mode, **kwargs)

    monkeypatch.setattr(os, "chmod", refuse)
    service = Service(settings)
    await service.start()
    try:
        assert service.control_socket is None
        assert not socket_path(settings.state_dir).exists()
    finally:
        await service.stop()
    await nothing_left(settings, before)


async def test_a_start_and_stop_leaves_nothing_and_ends_the_event_streams(settings: Settings) -> None:
    before = _before()
    service = Service(settings)
    await service.start()
    try:
        assert service.control_socket is not None and service.control_socket.exists()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{service.url}/live/events") as response:
                reader = SseReader(response)
                first = await reader.next()
                while isinstance(first, str):  # comments
                    first = await reader.next()
                assert isinstance(first, Event) and first.type == "state", first
                # Open now: the app's on_shutdown must end it.
                stopping = asyncio.create_task(service.stop())
                async with asyncio.timeout(WAIT):
                    assert await response.content.read() == b""
                await stopping
    finally:
        await service.stop()
    await nothing_left(settings, before)
    await service.stop()  # once more: nothing to do


async def test_a_handler_still_running_at_stop_is_cut_off_after_a_few_seconds(settings: Settings) -> None:
    """A handler that never finishes is cancelled after HANDLER_STOP_TIMEOUT; a clean stop."""
    before = _before()
    service = Service(settings)
    entered = asyncio.Event()

    async def never_done(_request: aiohttp.web.Request) -> aiohttp.web.Response:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    service.app.router.add_get("/test-never-done", never_done)  # a seam: the app before it is frozen
    await service.start()
    try:
        async with aiohttp.ClientSession() as http:
            request = asyncio.create_task(http.get(f"{service.url}/test-never-done"))
            async with asyncio.timeout(WAIT):
                await entered.wait()
            async with asyncio.timeout(WAIT):  # 60 s without the bound
                await service.stop()
            with contextlib.suppress(aiohttp.ClientError):
                (await request).close()
    finally:
        await service.stop()
    await nothing_left(settings, before)
