"""Podman for the container tests (tests/test_containers.py): a runtime that can run here, the images built
once and kept, and a configuration of the tests' own given to podman alone (CONTAINERS_CONF): no registry,
no default rlimits, runc rather than crun (docs/containers.md, "How it is tested"). The Debian base image
(mmdebstrap) is tagged by a hash of what made it and built once per machine; the images on it follow
podman's layer cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
"""
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_SUITE = "bookworm"
CACHE = Path("/var/tmp/hls-broadcaster-containers")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")  # pip in a build trusts what the host trusts


class Unavailable(Exception):
    """No container runtime can run here: why, for the skip."""


@dataclass(frozen=True)
class Podman:
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 600,
            compose_in: Path | None = None) -> subprocess.CompletedProcess[str]:
        """podman ARGS (or podman-compose ARGS in the folder `compose_in`), with this configuration, its
        output captured (a bound, not a timing: a build on a loaded machine)."""
        argv = ["podman-compose" if compose_in else "podman", *args]
        done = subprocess.run(argv, cwd=compose_in, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv[:4])} ...: exit {done.returncode}\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done

    def has_image(self, name: str) -> bool:
        return self.run("image", "exists", name, check=False).returncode == 0


def podman() -> Podman:
    """A podman that runs containers here, or Unavailable saying why not."""
    if shutil.which("podman") is None:
        raise Unavailable("podman is not installed (scripts/test installs podman, runc and mmdebstrap as root)")
    CACHE.mkdir(parents=True, exist_ok=True)
    conf = CACHE / "containers.conf"
    if not conf.exists() or conf.read_text() != CONF:
        conf.write_text(CONF)
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    runtime = Podman(env)
    image = base_image(runtime)
    tried = runtime.run("run", "--rm", "--network=host", image, "true", check=False, timeout=120)
    if tried.returncode != 0:
        raise Unavailable(f"podman cannot run a container here: {tried.stderr.strip()[-300:]}")
    return runtime


def base_image(runtime: Podman) -> str:
    """The Debian base (localhost/hls-broadcaster-base:HASH), made from Debian's packages if missing."""
    key = hashlib.sha256(f"{BASE_SUITE} {' '.join(BASE_PACKAGES)} apt".encode()).hexdigest()[:12]
    name = f"localhost/hls-broadcaster-base:{key}"
    if runtime.has_image(name):
        return name
    if shutil.which("mmdebstrap") is None:
        raise Unavailable("mmdebstrap is not installed: the base image is built from Debian's packages")
    with tempfile.TemporaryDirectory(dir=CACHE) as folder:
        tar = Path(folder) / "base.tar"
        made = subprocess.run(["mmdebstrap", "--quiet", "--variant=apt", f"--include={','.join(BASE_PACKAGES)}",
                               BASE_SUITE, str(tar)], capture_output=True, text=True, timeout=600)
        if made.returncode != 0:
            raise Unavailable(f"mmdebstrap could not make the base: {made.stderr.strip()[-300:]}")
        runtime.run("import", "-q", str(tar), name)
    return name


def build_args() -> list[str]:
    """What a build here needs beyond the Containerfile: the host's network and CA (pip reaches the
    package index through them)."""
    args = ["--network=host", "--format", "docker"]  # docker's format keeps HEALTHCHECK (OCI's has none)
    if HOST_CA.exists():
        args += ["-v", f"{HOST_CA}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
    return args


def service_image(runtime: Podman, base: str) -> str:
    """The service's image from this checkout, deploy/container/Containerfile on the Debian base."""
    name = "localhost/hls-broadcaster:tests"
    runtime.run("build", "-q", *build_args(), "--build-arg", f"BASE={base}",
                "-f", str(REPO / "deploy/container/Containerfile"), "-t", name, str(REPO))
    return name


def owncast_image(runtime: Podman, service: str) -> str:
    """The stand-in for Owncast's image (tests/support/owncast_standin/)."""
    name = "localhost/hls-broadcaster-owncast-standin:tests"
    runtime.run("build", "-q", "--format", "docker", "--build-arg", f"SERVICE={service}", "-t", name,
                str(Path(__file__).parent / "owncast_standin"))
    return name
