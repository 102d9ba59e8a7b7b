"""Debian's Prometheus and promtool for the tests: the shipped deploy/prometheus.yml and deploy/alerts.yml
run against a service on a free port (tests/test_monitoring.py, tests/test_p2p_browser.py)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from broadcaster.demo.children import StartClock
from broadcaster.demo.ports import Reserved, reserve_port
from tests.support.waiting import until

DEPLOY = Path(__file__).resolve().parent.parent.parent / "deploy"
SCRAPE = "1s"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install prometheus (scripts/test does)")
    return path


def alert_rules() -> list[dict[str, Any]]:
    """deploy/alerts.yml's rules, every group's."""
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


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
    log = (workdir / "prometheus.log").open("wb")
    proc: asyncio.subprocess.Process | None = None
    held: Reserved | None = None
    try:
        for attempt in range(5):  # on a fresh port if a program we do not know took it before the bind
            held = reserve_port()
            url = f"http://127.0.0.1:{held.ports[0]}"
            proc = await asyncio.create_subprocess_exec(
                tool("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
                f"--web.listen-address={url.removeprefix('http://')}", f"--storage.tsdb.path={workdir / 'data'}",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
            if await _ready(proc, url):
                break
            held.release()
            taken = "address already in use" in (workdir / "prometheus.log").read_text(errors="replace")
            if attempt == 4 or not taken:
                raise RuntimeError("prometheus did not start")  # its log is printed below
        yield url
    except BaseException:
        print("--- prometheus log ---", (workdir / "prometheus.log").read_text()[-3000:], sep="\n")
        raise
    finally:
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if held is not None:
            held.release()
        log.close()


async def _ready(proc: asyncio.subprocess.Process, url: str) -> bool:
    """Until /-/ready answers 200 (True) or it exits or stops getting on (False; StartClock)."""
    clock = StartClock(proc.pid)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        async def verdict() -> str | None:
            if proc.returncode is not None or clock.expired() is not None:
                return "gave up"
            try:
                async with http.get(f"{url}/-/ready") as r:
                    return "ready" if r.status == 200 else None
            except (aiohttp.ClientError, TimeoutError):
                return None

        if await until(verdict, "Prometheus' start", None, every=0.1) == "ready":
            return True
    if proc.returncode is None:
        proc.kill()
    await proc.wait()
    return False


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
        return await until(check, f"Prometheus: {what}", timeout, every=0.25)
