"""/health tells whether viewers can fetch what is listed, whatever PATHWAYS is: status/public_reads.py's
verdict, the probe against a real HTTP server, and the start's look (bucket/public_check)."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from collections.abc import Awaitable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from broadcaster.bucket.public_check import listed_answers
from broadcaster.bucket.store import StoreError
from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.status.public_reads import PublicReads
from broadcaster.steering.policy import PROBE_FAILURES
from tests.support.fakes import FakeStore
from tests.support.gates import BucketGates
from tests.support.local_http import Served
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until


def reads(gauge: list[float] | None = None, *, presigned: bool = False) -> PublicReads:
    """The verdict, each value of its gauge (up) appended to `gauge`."""
    return PublicReads(presigned=presigned, newest=lambda: None, target_duration=lambda: 2,
                       up=(gauge if gauge is not None else []).append)


def test_two_failures_in_a_row_name_r2_public_url_once_and_an_answer_clears_it(
        caplog: pytest.LogCaptureFixture) -> None:
    gauge: list[float] = []
    watch = reads(gauge)
    assert (watch.health_reason(), gauge[-1]) == (None, 1)
    caplog.set_level(logging.INFO, logger="broadcaster.status.public_reads")
    watch.heard(False, "HTTP 404")
    assert watch.health_reason() is None  # one lost request is not an outage (as steering counts)
    for _ in range(5):
        watch.heard(False, "HTTP 404")
    reason = watch.health_reason()
    assert reason is not None and "check R2_PUBLIC_URL" in reason and "(the newest: HTTP 404)" in reason, reason
    assert "does not serve this bucket's keys" in reason and gauge[-1] == 0
    errors = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in errors] == [reason]  # told once, not at every probe
    watch.heard(True, "HTTP 200")
    assert (watch.health_reason(), gauge[-1]) == (None, 1)
    assert len([r for r in caplog.records if r.levelno == logging.INFO]) == 1


@pytest.mark.parametrize(("detail", "presigned", "names"), [
    ("HTTP 403", False, "is public access on for the bucket"),
    ("HTTP 429", False, "r2.dev URLs are for development"),
    ("no answer in 2s", False, "unreachable from this machine"),
    ("HTTP 403", True, "S3_ENDPOINT_URL"),  # presigned URLs: the endpoint and the credentials
])
def test_each_answer_gives_its_likely_cause(detail: str, presigned: bool, names: str) -> None:
    watch = reads(presigned=presigned)
    for _ in range(PROBE_FAILURES):
        watch.heard(False, detail)
    reason = watch.health_reason()
    assert reason is not None and names in reason and ("R2_PUBLIC_URL" in reason) != presigned, reason


def test_a_failure_while_the_buckets_uploads_fail_says_it_may_be_the_outage() -> None:
    """A failure while uploads fail names the setting and the outage, so no right setting is changed."""
    watch = reads()
    down = [False]
    watch.in_outage = lambda: down[0]
    for _ in range(PROBE_FAILURES):
        watch.heard(False, "HTTP 404")
    alone = watch.health_reason()
    assert alone is not None and "outage" not in alone, alone
    down[0] = True
    watch.heard(False, "HTTP 404")
    both = watch.health_reason()
    assert both is not None and "check R2_PUBLIC_URL" in both and both.endswith(
        "(or the bucket's outage: its uploads fail too)"), both


def test_the_start_objects_answer_holds_until_a_probe_answers() -> None:
    gauge: list[float] = []
    watch = reads(gauge)
    watch.started("HTTP 404")
    reason = watch.health_reason()
    assert reason is not None and "stored at start" in reason and "check R2_PUBLIC_URL" in reason, reason
    assert gauge[-1] == 0
    watch.heard(True, "HTTP 200")
    assert (watch.health_reason(), gauge[-1]) == (None, 1)
    watch.started(None)
    assert watch.health_reason() is None


def test_only_the_first_buckets_probe_tells_what_is_listed() -> None:
    watch = reads()
    for _ in range(3):
        watch.pathway_heard("backup", False, "HTTP 404")
    assert watch.health_reason() is None
    for _ in range(PROBE_FAILURES):
        watch.pathway_heard("bucket", False, "HTTP 404")
    assert watch.health_reason() is not None


async def test_without_steering_it_probes_the_newest_listed_at_its_url_and_sees_it_answer_again() -> None:
    """The probe against a real server: 404s turn the verdict, 200s clear it; each GET names itself."""
    answer = {"status": 404}
    agents: list[str] = []

    async def segment(request: web.Request) -> web.Response:
        agents.append(request.headers.get("User-Agent", ""))
        return web.Response(status=answer["status"], body=b"x")

    app = web.Application()
    app.router.add_get("/live/0/1.ts", segment)
    listed: list[tuple[str, float]] = []
    watch = PublicReads(presigned=False, newest=lambda: listed[-1] if listed else None,
                        target_duration=lambda: 2, up=lambda value: None)
    async with Served(app) as bucket:
        try:
            await watch.start(probe=True)
            listed.append((f"{bucket.url}/live/0/1.ts", time.monotonic()))
            watch.wake()
            reason = await until(watch.health_reason, "the probe's 404s seen")
            assert "HTTP 404" in reason and "R2_PUBLIC_URL" in reason
            answer["status"] = 200
            listed.append((f"{bucket.url}/live/0/1.ts", time.monotonic()))  # still live
            await until(lambda: watch.health_reason() is None, "the probe's answer seen")
        finally:
            await watch.stop()
    assert agents and all("steering probe" in a for a in agents), agents


async def test_the_start_look_fetches_its_object_at_the_listed_url_and_deletes_it() -> None:
    """The object's bytes at the URL: None; served elsewhere: the status; refused: None."""
    store = FakeStore()
    app = web.Application()

    async def obj(request: web.Request) -> web.Response:
        assert request.headers["User-Agent"].startswith("hls-broadcaster/")  # not a viewer, to any log
        body = store.objects.get(request.match_info["key"])
        return web.Response(status=404) if body is None else web.Response(body=body)

    class Undeleting(FakeStore):
        async def delete(self, key: str) -> None:
            raise StoreError("SlowDown", "not now")

    app.router.add_get("/right/{key:.+}", obj)
    left: list[str] = []
    async with Served(app) as bucket:
        assert await listed_answers(store, lambda key: f"{bucket.url}/right/{key}", "live", 5, left.append) is None
        assert await listed_answers(store, lambda key: f"{bucket.url}/wrong/{key}", "live", 5,
                                    left.append) == "HTTP 404"
        assert store.objects == {} and left == []  # deleted either way
        refusing = FakeStore(down=True)
        assert await listed_answers(refusing, lambda key: f"{bucket.url}/wrong/{key}", "live", 5, left.append) is None
        # An object that may stay (its delete failed; its put timed out, and may land later) is told of.
        undeleting = Undeleting()
        assert await listed_answers(undeleting, lambda key: f"{bucket.url}/wrong/{key}", "live", 5,
                                    left.append) == "HTTP 404"
        assert left == list(undeleting.objects)
        assert await listed_answers(FakeStore(hang=True), lambda key: f"{bucket.url}/right/{key}", "live", 0.05,
                                    left.append) is None
        assert len(left) == 2 and left[1].startswith("live/.hls-broadcaster-check-")


def test_health_gets_steerings_reason_then_this_one_and_the_pathway_only_with_steering() -> None:
    watch = reads()
    assert watch.delivery(None)() == (None, [])
    for _ in range(PROBE_FAILURES):
        watch.heard(False, "HTTP 404")
    steered = SimpleNamespace(first="vm", health_reason=lambda: "players steered to the vm pathway")
    pathway, why = watch.delivery(steered)()
    assert pathway == "vm" and why[0] == "players steered to the vm pathway" and "R2_PUBLIC_URL" in why[1], why


@pytest.mark.parametrize(("found", "level"), [("HTTP 404", logging.ERROR), ("other bytes", logging.ERROR),
                                              ("HTTP 503", logging.WARNING), ("no answer: ClientConnectorError",
                                                                              logging.WARNING)])
def test_the_start_objects_refusal_is_an_error_and_an_outage_a_warning(
        caplog: pytest.LogCaptureFixture, found: str, level: int) -> None:
    caplog.set_level(logging.INFO, logger="broadcaster.status.public_reads")
    reads().started(found)
    assert [r.levelno for r in caplog.records] == [level]


@pytest.mark.integration
async def test_the_service_without_steering_tells_when_its_public_url_fails_while_players_play(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator) -> None:
    """The public URL alone answering 503: /health non-ok naming R2_PUBLIC_URL, then ok again."""
    async with BucketGates(seaweed) as gates, aiohttp.ClientSession() as http:
        env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state",
                          S3_ENDPOINT_URL=gates.service_url, R2_PUBLIC_URL=gates.public_url)
        async with ServiceProcess(env, tmp_path / "run", start_timeout=60) as service:
            async def health(playing: bool = True) -> tuple[int, str]:
                if playing:  # a player reads the stream: the probe's GETs go
                    async with http.get(f"{service.url}/live/0/playlist.m3u8") as r:
                        await r.read()
                async with http.get(f"{service.url}/health") as r:
                    return r.status, (await r.json())["status"]

            await until(lambda: _is(health(), 200, "ok"), "the stream live and ok", 30)
            await gates.close(service=False, viewers=True)
            said = await until(lambda: _is(health(), 503, "R2_PUBLIC_URL"), "/health naming R2_PUBLIC_URL", 30)
            # Told by the probe of the newest segment, or by the start's object.
            assert "the segments listed do not answer at their public URLs (" in said and "HTTP 503)" in said, said
            assert "storage unreachable" not in said  # the uploads land meanwhile
            await gates.open()
            await until(lambda: _is(health(), 200, "ok"), "/health ok once the public URL answers", 30)
        warned = [line for line in service.lines if "public_reads: the segments listed do not answer" in line]
        assert len(warned) == 1 and " WARNING " in warned[0], warned  # said once, however many probes failed


async def _is(reading: Awaitable[tuple[int, str]], status: int, says: str) -> str | None:
    got, text = await reading
    return text if got == status and says in text else None
