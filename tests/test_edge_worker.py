"""The Free plan's Worker (deploy/cloudflare-worker/worker.js) in workerd through miniflare, its local R2
holding a real segment: URLs signed by broadcaster/edge_token.sign are served with the bucket's bytes and
headers, a second GET is a cache hit, bad tokens get 403, and the Worker and the Python validator agree on
a table of tokens. Then `check`'s and /health's watch of the edge, against the Worker and a plain public
bucket. One miniflare process for the module."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from broadcaster.access.tokens import edge_key
from broadcaster.bucket import edge_check
from broadcaster.bucket.edge_check import Probe
from broadcaster.edge_token import SEPARATOR, checked_text, sign, valid
from broadcaster.status.edge_guard import EdgeGuard
from broadcaster.status.public_reads import PublicReads
from broadcaster.steering.first_byte import FirstByte
from broadcaster.steering.probe import PROBE_HEADERS
from tests.support.edge_worker import EdgeWorker
from tests.support.local_http import Served
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("edge_worker")]

KEY = edge_key("a private stream's secret, 32 characters or more")
PREFIX = "/live/"
WINDOW = 300
TTL = WINDOW + 90  # PRIVATE_EDGE_WINDOW + a listed URI's life
SEGMENT = "live/stream_0/seg-00001.ts"
OTHER = "live/stream_0/seg-00002.ts"
MARK = "x-hls-broadcaster-edge"


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, ts_bytes: bytes) -> Iterator[EdgeWorker]:
    seed = tmp_path_factory.mktemp("bucket")
    for key in (SEGMENT, OTHER, "elsewhere/seg.ts"):
        (seed / key).parent.mkdir(parents=True, exist_ok=True)
        (seed / key).write_bytes(ts_bytes)
    with EdgeWorker(seed, key=KEY, prefix=PREFIX, ttl=TTL, log=seed.parent / "miniflare.log") as running:
        yield running


def window(now: float) -> int:
    """The start of the edge window holding `now` (the timestamp EdgeTokens signs)."""
    return int(now) // WINDOW * WINDOW


async def get(url: str, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.read(), {k.lower(): v for k, v in resp.headers.items()}


async def test_a_listed_uri_gets_the_segment_with_the_buckets_headers(worker: EdgeWorker,
                                                                     ts_bytes: bytes) -> None:
    token = sign(KEY, PREFIX, window(time.time()))
    status, body, headers = await get(f"{worker.url}/{SEGMENT}?verify={token}", Origin="https://viewer.example")
    assert status == 200 and body == ts_bytes
    assert headers["content-type"] == "video/mp2t"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["etag"].strip('"') and headers[MARK] == "worker"
    assert headers["access-control-allow-origin"] == "*"  # a viewer page on another origin reads it
    part_status, part, part_headers = await get(f"{worker.url}/{SEGMENT}?verify={token}", Range="bytes=188-375")
    assert (part_status, part) == (206, ts_bytes[188:376])
    assert part_headers["content-range"] == f"bytes 188-375/{len(ts_bytes)}"


async def test_the_second_viewers_get_is_a_cache_hit_whatever_its_token(worker: EdgeWorker,
                                                                        ts_bytes: bytes) -> None:
    now = time.time()
    first = sign(KEY, PREFIX, window(now))
    status, body, headers = await get(f"{worker.url}/{OTHER}?verify={first}")
    assert (status, body, headers["x-cache"]) == (200, ts_bytes, "MISS")
    # The answer is stored once its body has gone (waitUntil): the first viewer's next GET says when.
    seen: list[tuple[int, str]] = []

    async def stored() -> bool:
        status, _, headers = await get(f"{worker.url}/{OTHER}?verify={first}")
        seen.append((status, headers.get("x-cache", "")))
        return headers.get("x-cache") == "HIT"

    await until(stored, "the first answer in the cache", detail=lambda: seen[-3:])
    # Another viewer with another token (its timestamp not the window's start): the same cache entry.
    other = sign(KEY, PREFIX, window(now) - 1)  # valid as long as the window's own (TTL > WINDOW)
    status, body, headers = await get(f"{worker.url}/{OTHER}?verify={other}")
    assert (status, body, headers["x-cache"]) == (200, ts_bytes, "HIT")


async def test_expired_tampered_unsigned_and_other_prefix_tokens_get_403(worker: EdgeWorker) -> None:
    now = time.time()
    token = sign(KEY, PREFIX, window(now))
    ts, mac = token.split("-")
    flipped = ("B" if mac[0] == "A" else "A") + mac[1:]
    refused = {
        "expired": f"verify={sign(KEY, PREFIX, int(now) - TTL - 5)}",
        "tampered mac": f"verify={ts}-{flipped}", "tampered timestamp": f"verify={int(ts) - WINDOW}-{mac}",
        "unsigned": "", "other prefix": f"verify={sign(KEY, '/elsewhere/', window(now))}",
        "another key": f"verify={sign('0' * 64, PREFIX, window(now))}",
    }
    for what, query in refused.items():
        status, body, headers = await get(f"{worker.url}/{SEGMENT}?{query}")
        assert status == 403 and len(body) < 40 and headers[MARK] == "worker", (what, status, body)
        assert headers["cache-control"] == "no-store"
    # A valid token of this prefix opens nothing outside it; a key it cannot name is not found (no 500).
    status, _, _ = await get(f"{worker.url}/elsewhere/seg.ts?verify={token}")
    assert status == 403
    for missing in ("live/stream_0/seg-09999.ts", "live/%E0%A4%A.ts"):
        status, _, headers = await get(f"{worker.url}/{missing}?verify={token}")
        assert (status, headers[MARK]) == (404, "worker"), missing


async def test_the_worker_and_the_python_validator_agree_on_every_token(worker: EdgeWorker) -> None:
    """Tokens of every kind, each far from its expiry's second (no clock between the two decides)."""
    now = int(time.time())
    good = sign(KEY, PREFIX, window(now))
    ts, mac = good.split("-")
    raw = sign(KEY, PREFIX, window(now)).replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")
    queries = [
        f"verify={good}", f"verify={sign(KEY, PREFIX, now - TTL - 60)}", f"verify={sign(KEY, PREFIX, now - TTL + 60)}",
        f"verify={sign(KEY, PREFIX, now + 3600)}", f"verify={ts}-{mac[:-3]}", f"verify={ts}-{mac}%3D",
        f"verify={ts}-{mac.lower()}", f"verify={int(ts) + 1}-{mac}", f"verify={good}&x=1", f"x=1&verify={good}",
        f"token={good}", f"verifyX{good}", f"verify={raw}", f"verify={ts}{mac}", "verify=", "",
        f"verify={sign(KEY, '/live', window(now))}", f"verify={sign(KEY, PREFIX + '?', window(now))}",
        f"verify=0{ts}-{mac}", f"verify={ts}-{mac.replace('%', '%25')}", f"{ts}-{mac}", f"v{ts}-{mac}",
        f"verify={ts}-{mac}%ZZ", f"verify={ts}-{mac[:-3]}%E0%A4%A",
    ]
    verdicts = {}
    for query in queries:
        status, _, _ = await get(f"{worker.url}/{SEGMENT}?{query}" if query else f"{worker.url}/{SEGMENT}")
        assert status in (200, 403), (query, status)
        python = valid(KEY, checked_text(PREFIX, query), TTL, int(time.time()), len(SEPARATOR))
        verdicts[query] = (status == 200, python)
    assert {q: v for q, v in verdicts.items() if v[0] != v[1]} == {}
    assert sum(v[0] for v in verdicts.values()) >= 4  # the table holds tokens both take, not refusals only


def plain_bucket(body: bytes) -> Served:
    """A public bucket with no edge rule: every object to anyone, whatever the query."""
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="video/mp2t", headers={"Access-Control-Allow-Origin": "*"})

    bucket = Served()
    bucket.app.router.add_get("/{key:.*}", serve)
    return bucket


async def lines_of(probe: Probe) -> list[tuple[str, str]]:
    said: list[tuple[str, str]] = []
    await edge_check.check(probe, lambda status, text: said.append((status, text)))
    return said


async def test_check_proves_the_workers_edge_and_finds_the_door_around_it(worker: EdgeWorker,
                                                                          ts_bytes: bytes) -> None:
    signed = f"{worker.url}/{SEGMENT}?verify={sign(KEY, PREFIX, window(time.time()))}"
    async with plain_bucket(ts_bytes) as r2_dev:  # the bucket's r2.dev URL, left on
        said = await lines_of(Probe(signed, SEGMENT, ts_bytes, r2_dev.url, timeout=10))
        assert [s for s, _ in said] == ["ok", "ok", "ok", "FAIL"], said
        assert "-> 403, refused by the Worker" in said[0][1]
        assert "with the window's token -> 200, same bytes (the Worker)" in said[1][1]
        assert "verify=..." in said[1][1] and "verify=" not in said[1][1].replace("verify=...", "")  # no token shown
        assert "cache hit (HIT)" in said[2][1] and "r2.dev URL serves the probe without a token" in said[3][1]
        untried = await lines_of(Probe(signed, SEGMENT, ts_bytes, None, timeout=10))
        assert untried[-1][0] == "warn" and "r2.dev URL was not tried" in untried[-1][1]
        bad_key = signed.replace(signed.partition("verify=")[2], sign("0" * 64, PREFIX, window(time.time())))
        refused = await lines_of(Probe(bad_key, SEGMENT, ts_bytes, None, timeout=10))
        assert refused[1][0] == "FAIL" and "refuses the service's own token" in refused[1][1]


async def test_check_fails_a_public_url_that_serves_strangers(ts_bytes: bytes) -> None:
    async with plain_bucket(ts_bytes) as bucket:
        url = bucket.url
        said = await lines_of(Probe(f"{url}/live/x.ts?verify=1-2", "live/x.ts", ts_bytes, None, timeout=10))
        assert said[0][0] == "FAIL" and "without a token -> 200: anyone with a segment's URL gets it" in said[0][1]
        assert "hls-broadcaster edge-rules" in said[0][1]
        not_a_url = await lines_of(Probe(f"{url}/live/x.ts?verify=1-2", "live/x.ts", ts_bytes, "pub-1.r2.dev",
                                         timeout=10))
        assert not_a_url[-1][0] == "FAIL" and "--r2-dev 'pub-1.r2.dev': not a URL" in not_a_url[-1][1]
        on_r2_dev = await lines_of(Probe("https://pub-0123.r2.dev/live/x.ts?verify=1-2", "live/x.ts", b"", None,
                                         timeout=0.01))
        assert on_r2_dev[0][0] == "FAIL" and "R2_PUBLIC_URL is on r2.dev" in on_r2_dev[0][1]


async def test_health_says_when_the_public_url_answers_strangers(worker: EdgeWorker, ts_bytes: bytes) -> None:
    """EdgeGuard with the probe's real client: refused by the Worker, nothing to say; a plain public bucket
    (the gate removed) serves the newest segment without its token: /health's reason; refused again: gone."""
    signed = f"{worker.url}/{SEGMENT}?verify={sign(KEY, PREFIX, window(time.time()))}"
    newest = [(signed, time.monotonic())]
    guard = EdgeGuard(lambda: newest[0], lambda: 30.0, FirstByte(PROBE_HEADERS))
    async with plain_bucket(ts_bytes) as bucket, contextlib.AsyncExitStack() as stopping:
        stopping.push_async_callback(guard.stop)
        plain = bucket.url
        assert await guard.look()
        assert guard.health_reason() is None
        newest[0] = (f"{plain}/{SEGMENT}?verify=x", time.monotonic())
        assert await guard.look()
        reason = guard.health_reason() or ""
        assert "answer without a token at their public URL" in reason and SEGMENT.rpartition("/")[2] not in reason
        reads = PublicReads(presigned=False, newest=lambda: None, target_duration=lambda: 2, up=lambda _: None)
        reads.guard = guard  # as the service sets it: one of /health's delivery facts
        assert reads.delivery(None)() == (None, [reason])
        newest[0] = (signed, time.monotonic())
        assert await guard.look()
        assert guard.health_reason() is None
        newest[0] = (f"{plain}/{SEGMENT}", time.monotonic() - 60)  # nothing live: no look, nothing said
        assert not await guard.look()
        assert guard.health_reason() is None
