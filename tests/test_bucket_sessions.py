"""broadcaster/bucket/sessions.py: botocore's data files are parsed once per process, whatever the
session, the thread or the kind of client (async for the bucket, synchronous for signed URLs)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import botocore.loaders
import botocore.session
import pytest
from aiobotocore.session import get_session

from broadcaster.bucket.sessions import aio_session, sync_session

CLIENT = {"endpoint_url": "http://127.0.0.1:9", "region_name": "auto",  # no request is made
          "aws_access_key_id": "key", "aws_secret_access_key": "secret"}


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The botocore data files parsed from now on (after one client has parsed what the process needs)."""
    asyncio.run(_client(aio_session()))
    files: list[str] = []
    load = botocore.loaders.JSONFileLoader.load_file

    def counted(self: Any, file_path: str) -> Any:
        files.append(file_path)
        return load(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counted)
    return files


async def _client(session: Any) -> None:
    async with session.create_client("s3", **CLIENT) as client:
        assert client.meta.region_name == "auto"


def test_a_new_aiobotocore_session_parses_nothing_again(parsed: list[str]) -> None:
    asyncio.run(_client(aio_session()))
    assert parsed == []
    asyncio.run(_client(get_session()))  # a session of botocore's own parses them all again
    assert any(path.endswith("endpoints") for path in parsed), parsed


def test_a_synchronous_session_and_one_in_another_thread_share_it_too(parsed: list[str]) -> None:
    sync_session().create_client("s3", **CLIENT).close()
    made: list[BaseException | None] = []  # the thread's outcome: an error there would not fail the test

    def in_another_thread() -> None:
        try:
            asyncio.run(_client(aio_session()))
            made.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the test's thread
            made.append(err)

    elsewhere = threading.Thread(target=in_another_thread)
    elsewhere.start()
    elsewhere.join(timeout=30)
    assert made == [None], made
    assert parsed == []
    botocore.session.get_session().create_client("s3", **CLIENT).close()
    assert parsed, "a botocore session of its own parsed nothing: this test could not tell"
