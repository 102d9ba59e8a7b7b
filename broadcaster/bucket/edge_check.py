"""`hls-broadcaster check`'s proof of a private stream's edge: the probe object fetched without a token (403),
with the window's token (200, its bytes, then a cache hit), and no door around it (r2.dev)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aiohttp

from .public_check import ORIGIN, Line  # a made-up viewer page's origin; a check's line

WORKER_MARK = "X-Hls-Broadcaster-Edge"  # deploy/cloudflare-worker/worker.js's header on every answer
RULES = "run `hls-broadcaster edge-rules` and follow docs/private-streams-edge.md"


@dataclass(frozen=True, slots=True)
class Probe:
    """The probe object as a playlist lists it (R2_PUBLIC_URL/key?verify=...), and the r2.dev URL to try."""

    signed: str
    key: str
    body: bytes
    r2_dev: str | None
    timeout: float

    @property
    def unsigned(self) -> str:
        return self.signed.partition("?")[0]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]  # names lower-cased

    @property
    def by_worker(self) -> bool:
        return self.headers.get(WORKER_MARK.lower()) == "worker"

    @property
    def by_cloudflare(self) -> bool:
        return "cf-ray" in self.headers or self.headers.get("server", "").lower() == "cloudflare"


async def _get(http: aiohttp.ClientSession, url: str) -> Answer | str:
    try:
        async with http.get(url, headers={"Origin": ORIGIN}) as resp:
            return Answer(resp.status, await resp.read(), {k.lower(): v for k, v in resp.headers.items()})
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        return f"{type(err).__name__}: cannot reach it"


async def check(probe: Probe, line: Line) -> None:
    """The lines for a private stream's public URL (PRIVATE=true, SEGMENT_URLS=public)."""
    if (host := urlsplit(probe.unsigned).hostname or "").endswith(".r2.dev"):
        line("FAIL", f"R2_PUBLIC_URL is on r2.dev ({host}): a door around the edge, where no WAF rule or Worker "
             "runs; connect a custom domain in your Cloudflare zone and use it")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=probe.timeout)) as http:
        stranger = await _get(http, probe.unsigned)
        if isinstance(stranger, str):
            line("FAIL", f"edge: GET {probe.unsigned} -> {stranger}: check R2_PUBLIC_URL")
            return
        if stranger.status == 200:
            line("FAIL", f"edge: GET {probe.unsigned} without a token -> 200: anyone with a segment's URL gets "
                 f"it; no edge rule guards R2_PUBLIC_URL: {RULES}")
        elif stranger.status == 403:
            by = ("the Worker (deploy/cloudflare-worker)" if stranger.by_worker
                  else "Cloudflare's WAF custom rule" if stranger.by_cloudflare
                  else "something in front of the bucket (not Cloudflare's answer)")
            line("ok", f"edge: GET without a token -> 403, refused by {by}")
        else:
            line("FAIL", f"edge: GET {probe.unsigned} without a token -> HTTP {stranger.status}, not 403: check "
                 "R2_PUBLIC_URL")
        await _signed(http, probe, line)
        await _r2_dev(http, probe, line)


async def _signed(http: aiohttp.ClientSession, probe: Probe, line: Line) -> None:
    shown = probe.unsigned + "?verify=..."  # the token is good for a while: not printed
    viewer = await _get(http, probe.signed)
    if isinstance(viewer, str):
        line("FAIL", f"edge: GET {shown} -> {viewer}")
        return
    if viewer.status != 200 or viewer.body != probe.body:
        why = {403: "the edge refuses the service's own token: its key, prefix or TTL differ from the "
                    f"settings' ({RULES})",
               404: "the Worker's bucket binding or PUBLIC_PATH does not match the bucket (wrangler.toml)"}
        line("FAIL", f"edge: GET {shown} -> HTTP {viewer.status}" + (", other bytes" if viewer.status == 200
             else "") + f": {why.get(viewer.status, 'check R2_PUBLIC_URL')}")
        return
    worker = " (the Worker)" if viewer.by_worker else ""
    line("ok", f"edge: GET {shown} with the window's token -> 200, same bytes{worker}")
    if viewer.headers.get("access-control-allow-origin") not in ("*", ORIGIN):
        line("FAIL", f"edge: no Access-Control-Allow-Origin for a viewer page's origin ({ORIGIN}): players on "
             "the page cannot read segments; apply deploy/r2-cors.json to the bucket")
    again = await _get(http, probe.signed)
    seen = "" if isinstance(again, str) else (again.headers.get("x-cache") or again.headers.get("cf-cache-status")
                                              or "")
    if seen.upper() == "HIT":
        line("ok", f"edge: the next GET is a cache hit ({seen})")
    elif viewer.by_worker or viewer.by_cloudflare:
        line("warn", f"edge: the next GET is not a cache hit ({seen or 'no cache status'}): every viewer's GET "
             "may reach the bucket; add the Cache Rule (ignore query string) or check the Worker's route")


async def _r2_dev(http: aiohttp.ClientSession, probe: Probe, line: Line) -> None:
    if probe.r2_dev is None:
        line("warn", "edge: the bucket's r2.dev URL was not tried (check --r2-dev URL tries it): if it is on, it "
             "serves every segment to anyone; R2 > the bucket > Settings > Public Development URL: Disable")
        return
    if urlsplit(probe.r2_dev).scheme not in ("http", "https") or not urlsplit(probe.r2_dev).hostname:
        line("FAIL", f"--r2-dev {probe.r2_dev[:80]!r}: not a URL (the bucket's https://pub-<id>.r2.dev address)")
        return
    door = f"{probe.r2_dev.rstrip('/')}/{quote(probe.key)}"
    answer = await _get(http, door)
    if isinstance(answer, Answer) and answer.status == 200 and answer.body == probe.body:
        line("FAIL", f"edge: the bucket's r2.dev URL serves the probe without a token ({door}): a door around "
             "the edge; R2 > the bucket > Settings > Public Development URL: Disable")
    else:
        found = answer if isinstance(answer, str) else f"HTTP {answer.status}"
        line("ok", f"edge: the bucket's r2.dev URL does not serve the probe ({found})")
