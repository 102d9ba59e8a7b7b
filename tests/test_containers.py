"""The container image and the compose file beside Owncast's container (deploy/container/), run with podman:
the image built from this checkout, Owncast stood in for by the emulator as uid 101, the run's SeaweedFS as
the bucket; skipped, saying why, where no container runtime can run. One worker (xdist_group) builds the
images once and owns the runtime's storage."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import imageio_ffmpeg
import pytest

from broadcaster.demo.ports import kept_port
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.containers import REPO, Podman, Unavailable, base_image, owncast_image, podman, service_image
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("containers")]

OWNCAST_UID = 101
STARTED = 120.0  # bound on a container's start on a loaded machine (the service's own start: 1-3 s)


@dataclass(frozen=True)
class Images:
    podman: Podman
    service: str
    owncast: str


@pytest.fixture(scope="module")
def images() -> Images:
    try:
        runtime = podman()
        service = service_image(runtime, base_image(runtime))
    except Unavailable as why:
        pytest.skip(f"no container runtime can run here: {why}")
    return Images(runtime, service, owncast_image(runtime, service))


def test_the_image_runs_as_owncasts_user_and_stops_at_a_mistake_with_one_line(images: Images) -> None:
    """uid/gid 101 (Owncast's image's), a HEALTHCHECK on /health, STATE_DIR a volume; no settings:
    one line per setting missing, exit 2, no traceback."""
    inspected = json.loads(images.podman.run("image", "inspect", images.service).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == f"{OWNCAST_UID}:{OWNCAST_UID}"
    assert "/health" in " ".join(inspected["Healthcheck"]["Test"])
    assert "/var/lib/hls-broadcaster" in config["Volumes"]
    ran = images.podman.run("run", "--rm", "--health-interval=disable", images.service, "run", check=False)
    assert ran.returncode == 2, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if not line.startswith("time=")]  # podman's own
    assert lines and all(line.startswith("hls-broadcaster: error: ") for line in lines), lines
    assert any("AWS_BUCKET_NAME is not set" in line for line in lines)


@dataclass
class Stack:
    """The shipped compose file in a folder of Owncast's, run with podman-compose under a project name of
    its own; its service on the host's network (the run's SeaweedFS listens on loopback)."""

    podman: Podman
    folder: Path
    project: str
    port: int

    def compose(self, *args: str, check: bool = True) -> str:
        done = self.podman.run("-p", self.project, "-f", "compose.yml", "-f", "compose.test.yml", *args,
                               compose_in=self.folder, check=check, timeout=300)
        return done.stdout + done.stderr

    @property
    def service(self) -> str:
        return f"{self.project}_hls-broadcaster_1"

    def inspect(self) -> dict[str, Any]:
        got: dict[str, Any] = json.loads(self.podman.run("inspect", self.service).stdout)[0]
        return got

    def logs(self) -> str:
        done = self.podman.run("logs", self.service)
        return done.stdout + done.stderr

    def set(self, **values: str) -> None:
        env = self.folder / ".env"
        kept = [line for line in env.read_text().splitlines() if line.split("=", 1)[0] not in values]
        env.write_text("\n".join([*kept, *(f"{k}={v}" for k, v in values.items())]) + "\n")


@pytest.fixture
def stack(images: Images, tmp_path: Path, seaweed: SeaweedS3) -> Iterator[Stack]:
    if shutil.which("podman-compose") is None:
        pytest.skip("podman-compose is not installed (pip install 'hls-broadcaster[test]')")
    folder = tmp_path / "owncast"
    (folder / "data").mkdir(parents=True)
    os.chown(folder / "data", OWNCAST_UID, OWNCAST_UID)  # Owncast's container writes it
    shutil.copy(REPO / "deploy/container/compose.yml", folder / "compose.yml")
    ffmpeg = Path(imageio_ffmpeg.__file__).parent
    port = kept_port()
    # What the test changes: the images (no registry; Owncast's stood in for), the host's network.
    (folder / "compose.test.yml").write_text(f"""\
services:
  owncast:
    image: {images.owncast}
    network_mode: host
    ports: []
    volumes:
      - {ffmpeg}:/opt/extra/imageio_ffmpeg:ro
    tmpfs:
      - /var/lib/hls-broadcaster  # the service image's VOLUME, unused here: no anonymous volume left behind
  hls-broadcaster:
    image: {images.service}
    network_mode: host
  cloudflared:
    # The tunnel stood in for: from its place in the service's network, the service's /health on
    # loopback, where cloudflared.yml.example's routes send it.
    image: {images.service}
    restart: "no"
    entrypoint: ["python3", "-c"]
    command: ["import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['PORT'], timeout=10)"]
    environment:
      PORT: "{port}"
""")
    (folder / ".env").write_text(f"""\
HLS_BROADCASTER_SRC={REPO}
S3_ENDPOINT_URL={seaweed.endpoint_url}
S3_REGION=us-east-1
AWS_ACCESS_KEY_ID={seaweed.access_key}
AWS_SECRET_ACCESS_KEY={seaweed.secret_key}
AWS_BUCKET_NAME={seaweed.bucket}
R2_PUBLIC_URL={seaweed.public_url}
PORT={port}
TUNNEL_TOKEN=not-used-here
""")
    made = Stack(images.podman, folder, f"hlsb{os.getpid()}x{port}", port)
    try:
        yield made
    finally:
        made.compose("down", "-v", "-t", "5", check=False)


async def served(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    try:
        async with http.get(url) as resp:
            return resp.status, await resp.text()
    except aiohttp.ClientError:
        return 0, ""


async def test_the_compose_file_runs_beside_owncasts_container(stack: Stack, seaweed: SeaweedS3) -> None:
    """`check` as a one-off, `up`: healthy, segments in the bucket; SIGTERM stops it cleanly; a new
    container goes on from the volume's state; a set-up mistake: one line, exit 2, and the runtime gives up
    after 3 tries."""
    # docs/containers.md's steps: Owncast first (it makes data/hls), the check, then the service.
    stack.compose("up", "-d", "owncast")
    await until((stack.folder / "data/hls/stream.m3u8").exists, "Owncast's master playlist", STARTED, every=0.2)
    checked = stack.compose("run", "--rm", "hls-broadcaster", "check")
    assert "fail" not in checked.lower() and seaweed.bucket in checked, checked
    stack.compose("up", "-d", "hls-broadcaster")
    base = f"http://127.0.0.1:{stack.port}"
    async with aiohttp.ClientSession() as http:
        await until(lambda: ok(http, f"{base}/health"), "/health 200", STARTED, every=0.5, detail=stack.logs)
        assert stack.inspect()["RestartCount"] == 0, stack.logs()
        stack.compose("up", "-d", "cloudflared")
        tunnel = f"{stack.project}_cloudflared_1"

        def tunnel_done() -> Any:
            state = json.loads(stack.podman.run("inspect", tunnel).stdout)[0]["State"]
            return state if state["Status"] == "exited" else None

        reached = await until(tunnel_done, "the tunnel's stand-in done", STARTED, every=0.2)
        assert reached["ExitCode"] == 0, stack.podman.run("logs", tunnel).stderr
        stack.podman.run("rm", "-v", tunnel)  # it holds the service's network: the service is made again below
        playlist = await until(lambda: listed(http, f"{base}/live/0/playlist.m3u8", seaweed.public_url),
                               "a playlist listing segments in the bucket", STARTED, every=0.5)
        async with http.get(playlist[0]) as resp:
            assert resp.status == 200 and len(await resp.read()) > 0
        assert stack.podman.run("healthcheck", "run", stack.service, check=False).returncode == 0

        assert "state: state.json" not in stack.logs()  # a first start: no state yet
        # 10 s: Docker's and podman's default wait before SIGKILL (which would make it exit 137).
        stack.compose("stop", "-t", "10", "hls-broadcaster")
        assert stack.inspect()["State"]["ExitCode"] == 0, stack.logs()
        assert "SIGTERM: stopping" in stack.logs()
        stack.podman.run("rm", "-f", "-v", stack.service)  # podman-compose has no rm
        stack.compose("up", "-d", "hls-broadcaster")
        await until(lambda: ok(http, f"{base}/health"), "/health 200 again", STARTED, every=0.5, detail=stack.logs)
        assert "state: state.json" in stack.logs()  # the new container read the volume's state

    stack.compose("stop", "-t", "10", "hls-broadcaster")
    stack.podman.run("rm", "-f", "-v", stack.service)
    stack.set(AWS_BUCKET_NAME="no-such-bucket")
    stack.compose("up", "-d", "hls-broadcaster")

    def gave_up() -> bool:
        seen = stack.inspect()
        return bool(seen["State"]["Status"] == "exited" and seen["RestartCount"] >= 3)

    # 3: compose.yml's on-failure:3, the runtime's tries after the first start; then it stays exited.
    await until(gave_up, "the runtime giving up on exit 2", STARTED, every=0.5, detail=stack.inspect)
    seen = stack.inspect()
    assert seen["State"]["ExitCode"] == 2 and seen["RestartCount"] == 3
    errors = [line for line in stack.logs().splitlines() if line.startswith("hls-broadcaster: error:")]
    assert len(errors) == 4 and len(set(errors)) == 1 and "no-such-bucket" in errors[0], errors
    assert "Traceback" not in stack.logs()


async def ok(http: aiohttp.ClientSession, url: str) -> bool:
    return (await served(http, url))[0] == 200


async def listed(http: aiohttp.ClientSession, url: str, bucket: str) -> list[str]:
    status, body = await served(http, url)
    uris = [line for line in body.splitlines() if line and not line.startswith("#")]
    return uris if status == 200 and uris and all(u.startswith(bucket) for u in uris) else []
