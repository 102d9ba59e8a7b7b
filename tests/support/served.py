"""The app (create_app) over a World (tests/support/world.py): its playlists, health and metrics,
asked through aiohttp's test client. A pytest plugin (tests/conftest.py registers it): `serve_world`
makes a test's World in its tmp_path, and closes its publisher after the test; `make_world` makes Worlds
(in tmp_path unless told a folder) and closes their publishers after the test; `ts_bytes` is one real
MPEG-TS segment, made once for the run, for the Worlds' writers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from pytest_aiohttp import AiohttpClient

if TYPE_CHECKING:
    from tests.support.client import Client
    from tests.support.world import World


class ServeWorld(Protocol):
    def __call__(self, *, app: dict[str, Any] | None = None, decompress: bool = True,
                 **world: Any) -> Awaitable[tuple[World, Client]]:
        """A World made with the options `world`, served by create_app with the options `app`;
        `decompress` False: the client hands the test the bytes sent."""


class MakeWorld(Protocol):
    def __call__(self, folder: Path | None = None, **world: Any) -> World:
        """A World made with the options `world` in `folder` (the test's tmp_path by default)."""


@pytest.fixture(scope="session")
def ts_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from tests.support.owncast_writer import real_ts_segment

    return real_ts_segment(tmp_path_factory.mktemp("ts"))


@pytest.fixture
async def make_world(tmp_path: Path) -> AsyncIterator[MakeWorld]:
    from tests.support.world import World

    worlds: list[World] = []

    def make(folder: Path | None = None, **world: Any) -> World:
        worlds.append(World(folder or tmp_path, **world))
        return worlds[-1]

    yield make
    for made in worlds:
        await made.pub.close()


@pytest.fixture
async def serve_world(tmp_path: Path, aiohttp_client: AiohttpClient) -> AsyncIterator[ServeWorld]:
    # Imported here, not when the plugin loads: a unit test's run imports none of the service's parts.
    from broadcaster.http import create_app
    from tests.support.world import World

    worlds: list[World] = []  # one a test: it is made in the test's tmp_path

    async def serve(*, app: dict[str, Any] | None = None, decompress: bool = True,
                    **world: Any) -> tuple[World, Client]:
        assert not worlds, "one World a test"
        made = World(tmp_path, **world)
        worlds.append(made)
        served = create_app(made.playlists, made.report, made.metrics, **(app or {}))
        client: Client = await aiohttp_client(served, auto_decompress=decompress)
        return made, client

    yield serve
    for made in worlds:
        await made.pub.close()
