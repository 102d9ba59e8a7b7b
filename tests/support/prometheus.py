"""Debian's Prometheus and promtool for the tests: the shipped deploy/prometheus.yml and deploy/alerts.yml
run against a service on a free port (tests/test_monitoring.py, tests/test_p2p_browser.py)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent.parent / "deploy"
SCRAPE = "1s"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install prometheus (scripts/test does)")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape_config_for(target: str, scrape: str = SCRAPE) -> dict[str, Any]:
    """deploy/prometheus.yml as shipped, with only the target and the intervals substituted (a test
    cannot wait 5 s scrapes): the job, its labels, metrics_path and rule_files are the operator's."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=scrape, evaluation_interval=scrape)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "hls-broadcaster"]
    job.update(scrape_interval=scrape, scrape_timeout=scrape)
    (static,) = job["static_configs"]
    static["targets"] = [target]
    return config


@asynccontextmanager
async def prometheus(workdir: Path, target: str) -> AsyncIterator[str]:
    """Debian's Prometheus on its own port and data folder; yields its URL; stopped by its PID."""
    workdir.mkdir()
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(scrape_config_for(target)))
    shutil.copy(DEPLOY / "alerts.yml", workdir / "alerts.yml")  # rule_files is relative to the config
    url = f"http://127.0.0.1:{_free_port()}"
    log = (workdir / "prometheus.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        tool("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
        f"--web.listen-address={url.removeprefix('http://')}", f"--storage.tsdb.path={workdir / 'data'}",
        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(20):
            while True:
                if proc.returncode is not None:
                    raise RuntimeError("prometheus exited")  # its log is printed below
                try:
                    async with http.get(f"{url}/-/ready") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        yield url
    except BaseException:
        print("--- prometheus log ---", (workdir / "prometheus.log").read_text()[-3000:], sep="\n")
        raise
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


class PromAPI:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url

    async def get(self, path: str, **params: str) -> Any:
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as r:
            body = await r.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.get("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def value(self, expr: str) -> float | None:
        result = await self.query(expr)
        return float(result[0]["value"][1]) if result else None

    async def until(self, what: str, check: Any, timeout: float = 20) -> Any:
        """Polls `check()` (async, returns a truthy value when done) until done; fails naming `what`."""
        try:
            async with asyncio.timeout(timeout):
                while not (done := await check()):
                    await asyncio.sleep(0.25)
                return done
        except TimeoutError:
            pytest.fail(f"Prometheus: {what} within {timeout:.0f} s")
