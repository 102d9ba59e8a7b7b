"""SeaweedFS as a stand-in for R2: signed writes, public reads, CORS (a wrong secret or key refused:
tests/test_preflight.py names each on the bucket's first call)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import aiohttp
import pytest
from botocore.exceptions import ClientError

from broadcaster.demo import seaweed
from broadcaster.demo.seaweed import SeaweedError, SeaweedS3
from tests.support.processes import alive

pytestmark = pytest.mark.integration

SEGMENT_HEADERS = {"ContentType": "video/mp2t", "CacheControl": "public, max-age=31536000, immutable"}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code"))


async def test_put_and_get_with_credentials(seaweed: SeaweedS3) -> None:
    async with seaweed.client() as s3:
        await s3.put_object(Bucket=seaweed.bucket, Key="0/seg-1.ts", Body=b"\x47" * 188, **SEGMENT_HEADERS)
        got = await s3.get_object(Bucket=seaweed.bucket, Key="0/seg-1.ts")
        assert await got["Body"].read() == b"\x47" * 188
        assert got["ContentType"] == "video/mp2t"
        await s3.delete_object(Bucket=seaweed.bucket, Key="0/seg-1.ts")
        with pytest.raises(ClientError) as missing:
            await s3.get_object(Bucket=seaweed.bucket, Key="0/seg-1.ts")
        assert error_code(missing.value) == "NoSuchKey"
        with pytest.raises(ClientError) as no_bucket:  # no auto-created buckets, like R2
            await s3.put_object(Bucket="not-there", Key="x", Body=b"x")
        assert error_code(no_bucket.value) == "NoSuchBucket"


async def test_anonymous_reads_with_cors(seaweed: SeaweedS3) -> None:
    async with seaweed.client() as s3:
        await s3.put_object(Bucket=seaweed.bucket, Key="0/seg-2.ts", Body=b"segment", **SEGMENT_HEADERS)
    origin = "http://viewer.example"
    url = f"{seaweed.public_url}/0/seg-2.ts"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Origin": origin}) as resp:
            assert resp.status == 200
            assert await resp.read() == b"segment"
            assert resp.headers["Content-Type"] == "video/mp2t"
            assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert resp.headers["Access-Control-Allow-Origin"] in (origin, "*")
        preflight = {"Origin": origin, "Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "range"}
        async with http.options(url, headers=preflight) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] in (origin, "*")
            assert "GET" in resp.headers["Access-Control-Allow-Methods"]
        # Public means read-only: no anonymous writes and no listing.
        async with http.put(f"{seaweed.public_url}/0/evil.ts", data=b"x") as resp:
            assert resp.status == 403
        async with http.get(f"{seaweed.public_url}/?list-type=2") as resp:
            assert resp.status == 403


async def test_another_process_attached_to_a_shared_server_makes_buckets_and_stops_nothing(
        seaweed_server: SeaweedS3) -> None:
    """SeaweedS3.attach (each xdist worker's): its close() leaves the server running."""
    attached = SeaweedS3.attach(seaweed_server.describe())
    assert attached.pid == seaweed_server.pid and attached.endpoint_url == seaweed_server.endpoint_url
    name = f"attached-{os.getpid()}"
    bucket = await attached.make_bucket(name)
    try:
        async with bucket.client() as s3:
            await s3.put_object(Bucket=name, Key="a/seg.ts", Body=b"segment bytes", **SEGMENT_HEADERS)
        async with aiohttp.ClientSession() as http, http.get(f"{bucket.public_url}/a/seg.ts") as resp:
            assert resp.status == 200 and await resp.read() == b"segment bytes"
    finally:
        await attached.drop_bucket(name)
    await bucket.close()
    await attached.close()
    pid = seaweed_server.pid
    assert pid is not None and alive(pid) and attached.pid == pid
    with pytest.raises(RuntimeError, match="runs in the process that started it"):
        await attached.start()


@pytest.mark.parametrize("discard", [False, True], ids=["sigterm", "discard"])
async def test_close_stops_the_server(tmp_path: Path, discard: bool) -> None:
    """Gracefully, or (discard: a test's data) killed at once; either way nothing is left behind."""
    server = SeaweedS3(tmp_path / "s3", bucket="other", discard=discard)
    await server.start()
    pid = server.pid
    assert pid is not None and alive(pid)
    assert server.startup_seconds is not None
    await server.close()
    await server.close()  # idempotent
    assert server.pid is None
    assert not alive(pid)
    port = server.endpoint_url.rsplit(":", 1)[1]
    assert not [p for p in Path("/tmp").glob("seaweedfs-*.sock") if p.name.endswith(f"-{port}.sock")]


async def test_start_failure_shows_weed_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = seaweed.weed_argv

    def argv(exe: str, work_dir: Path, ports: dict[str, int], config: Path) -> list[str]:
        return [*broken(exe, work_dir, ports, config), "-no-such-flag"]

    monkeypatch.setattr(seaweed, "weed_argv", argv)
    server = SeaweedS3(tmp_path / "s3")
    with pytest.raises(SeaweedError, match=r"(?s)exited with code \d+ during start-up.*no-such-flag"):
        await server.start()
    assert server.pid is None
    await server.close()


async def test_a_port_taken_before_weed_binds_it_is_tried_again_on_others(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """weed 4.48 says "Port allocation failed ... is not available" and exits: a start on fresh ports."""
    spawn = SeaweedS3._spawn
    taken: list[socket.socket] = []

    async def spawn_after_a_stranger(self: SeaweedS3, exe: str, config: Path) -> None:
        if not taken:  # the first time, someone binds its S3 port in between
            stranger = socket.socket()
            stranger.bind(("127.0.0.1", int(self.endpoint_url.rsplit(":", 1)[1])))
            stranger.listen()
            taken.append(stranger)
        await spawn(self, exe, config)

    monkeypatch.setattr(SeaweedS3, "_spawn", spawn_after_a_stranger)
    try:
        async with SeaweedS3(tmp_path / "s3", discard=True) as server:
            assert server.endpoint_url != f"http://127.0.0.1:{taken[0].getsockname()[1]}"
            async with server.client() as s3:
                await s3.put_object(Bucket=server.bucket, Key="x.ts", Body=b"x")
        assert "Port allocation failed" in server.log_path.read_text()
    finally:
        for sock in taken:
            sock.close()
