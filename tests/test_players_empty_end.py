"""What an ended EMPTY media playlist does to the players (docs/hls-rules.md: "A variant with nothing
new to list under the new target"): the copied variant's last segment raises the target 2 -> 5 as the
stream ends, and the transcoded variant's playlist ends with no segment. The rig (tests/support/
empty_end.py, empty_end_players.py) plays it; each player must end without a fatal error within GRACE,
or is a strict expected failure whose reason is checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.browser import needs_chromium, shared_chromium
from tests.support.empty_end import LAST, SCRIPTS, make_media, segments_of, service_versions, versions
from tests.support.empty_end_players import ALL_PLAYERS, GRACE, PROCESS_PLAYERS, Outcome, play_all
from tests.support.hls_checker import VariantSetChecker
from tests.support.independent_players import (HLSDEMUX, HLSDEMUX2, SHAKA_52, SHAKA_52_LL, SHAKA_416, STREAMLINK,
                                               VIDEOJS_DEFAULTS, VIDEOJS_OWNCAST, VIEWER_PAGE, missing_programs)
from tests.support.scripted_stream import StreamServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.skipif(bool(missing_programs()),
                       reason=f"not installed (scripts/test installs them): {missing_programs()}"),
    pytest.mark.xdist_group("players_empty_end"),  # one worker plays the module's fixture once (scripts/test)
    pytest.mark.asyncio(loop_scope="module"),
]

SCRIPT = "ended_empty"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Outcome]]:
    work = tmp_path_factory.mktemp("empty_end")
    media = await asyncio.to_thread(make_media, work / "media")
    async with StreamServer() as server, shared_chromium() as chromium:
        outcomes = await play_all(chromium, server, media, SCRIPT, work / SCRIPT)
    print("\n".join(o.summary() for o in outcomes.values()))
    yield outcomes


# -- the script ----------------------------------------------------------------------------------------


async def test_the_script_is_what_the_service_shows(tmp_path: Path) -> None:
    """The same listings told to the service's own Publisher show the script's versions, line for line."""
    shown = await service_versions(tmp_path)
    for variant in (0, 1):
        assert shown[variant] == [v.text for v in versions(SCRIPT, variant)], variant
    assert shown[1][-1].splitlines()[2:] == ["#EXT-X-TARGETDURATION:5", "#EXT-X-MEDIA-SEQUENCE:7",
                                             "#EXT-X-DISCONTINUITY-SEQUENCE:0", "#EXT-X-INDEPENDENT-SEGMENTS",
                                             "#EXT-X-ENDLIST"]


def checked(script: str) -> list[str]:
    """Every version of the script through the checker (new playlists allowed, aligned by date)."""
    checker = VariantSetChecker(allow_restart=True, align_by="time")
    shown = sorted(((v.at, variant, v.text) for variant in (0, 1) for v in versions(script, variant)),
                   key=lambda x: (x[0], x[1]))
    return [f"{at} s, variant {variant}: {found}" for at, variant, text in shown
            for found in checker.check(str(variant), text)]


async def test_the_checker_passes_the_ended_empty_playlist_and_not_the_carried_one() -> None:
    """The service's end passes the checker; "carried" changes a target (6.2.1); the formers pass."""
    assert set(SCRIPTS) == {"ended_empty", "former", "ended_under_former_target", "carried"}
    assert checked("ended_empty") == []
    carried = checked("carried")
    assert len(carried) == 1 and "target-duration-changed" in carried[0], carried


# -- the players -----------------------------------------------------------------------------------------


class KnownFailure(Exception):
    """A player failed exactly as its xfail's `raises` says; any other failure fails the test."""


@dataclass(frozen=True)
class Known:
    reason: str
    seen: Callable[[Outcome], bool]  # the failure the reason describes, exactly


SHAKA_LOOP = "Cannot read properties of null (reading 'length')"


def shaka_loops(o: Outcome) -> bool:
    """Stuck at the end, only that error, the ended playlist reloaded 5 times a second apart or less."""
    errors = o.page.get("errors", [])
    after = o.reloads_after_end()
    return (not o.ended and o.stood_still and o.fatal == [] and len(errors) >= 5
            and all(e.get("message") == SHAKA_LOOP and e.get("severity") == 1 for e in errors)
            and len(after) >= 5 and (len(after) - 1) / max(after[-1] - after[0], 0.001) >= 1.0)


def videojs_stands_still(o: Outcome) -> bool:
    return not o.ended and o.stood_still and o.fatal == [] and not o.errors()


KNOWN = {
    **{name: Known(
        "Shaka stands still at the stream's last moment: each reload of the ended empty playlist throws "
        f"TypeError \"{SHAKA_LOOP}\" (RECOVERABLE) and is retried at once, several times a second, for good",
        shaka_loops) for name in (SHAKA_416, SHAKA_52, SHAKA_52_LL)},
    **{name: Known(
        "video.js (VHS 3.17.5) stands still at the stream's last moment without an error: it ends a stream "
        "only when it appends a segment of a playlist known to have ended, and the ENDLIST comes in a later "
        "reload (as in the service's ordinary end, and in both alternatives)",
        videojs_stands_still) for name in (VIDEOJS_OWNCAST, VIDEOJS_DEFAULTS)},
    HLSDEMUX: Known(
        "hlsdemux cannot parse the empty playlist (\"Couldn't update playlist\"), never retries, never ends: "
        f"still running {GRACE:g} s after the end",
        lambda o: o.exit is None),
    HLSDEMUX2: Known(
        "hlsdemux2 cannot parse the empty playlist (\"Couldn't parse playlist\", three times) and fails: "
        "exit 1, \"Could not update playlist\"",
        lambda o: o.exit == 1 and any("Could not update playlist" in line for line in o.said)),
}


def claimed(names: tuple[str, ...]) -> list[object]:
    return [pytest.param(n, marks=pytest.mark.xfail(
                strict=True, raises=KnownFailure, reason=KNOWN[n].reason))
            if n in KNOWN else n for n in names]


@pytest.mark.parametrize("name", claimed(ALL_PLAYERS))
async def test_every_player_ends_without_a_fatal_error(run: dict[str, Outcome], name: str) -> None:
    """A page's video ends (the viewer says "offline"), a process exits 0; last segment fetched."""
    o = run[name]
    known = KNOWN.get(name)
    if known is not None and known.seen(o):
        raise KnownFailure(f"{known.reason}: {o.summary()}")
    assert o.got_the_last(1), f"{name} never fetched variant 1's last segment: {o.summary()}"
    if name in PROCESS_PLAYERS:
        assert o.exit == 0, f"{name}: {o.summary()}"
        return
    assert o.fatal == [], f"{name}: {o.summary()}"
    if name == VIEWER_PAGE:
        assert o.offline and o.page.get("furthest", 0) >= LAST - 0.5, f"{name}: {o.summary()}"
    else:
        assert o.ended, f"{name}: {o.summary()}"


@pytest.mark.parametrize("name", ALL_PLAYERS)
async def test_every_player_played_the_transcoded_variant(run: dict[str, Outcome], name: str) -> None:
    """The rig did what it says: each player on variant 1, to its last segment, every answer a 200."""
    o = run[name]
    got = o.segments()
    assert got and got[0][0] == 1, f"{name} did not start on variant 1: {o.summary()}"
    assert [n for v, n in got if v == 1][-1] == segments_of(1)[-1].name, o.summary()
    assert all(a.status == 200 for a in o.asked), o.summary()
    assert o.reloads_after_end(1), f"{name} never asked for variant 1's ended playlist: {o.summary()}"


@pytest.mark.xfail(strict=True, raises=KnownFailure,
                   reason="hls.js 1.7.4 never ends the video: the empty playlist is a levelEmptyError, on which "
                          "it leaves the (manual) level for variant 0 and loads its 5 s segment again; no "
                          "BUFFER_EOS, the video stands still at 14 s (only the viewer page's own fallback, "
                          "ENDED_STALL_MS, ends it)")
async def test_the_viewer_pages_video_ends(run: dict[str, Outcome]) -> None:
    o = run[VIEWER_PAGE]
    page = o.page
    left = [level["variant"] for level in page.get("levels", [])][-1:] == [0]
    if (not o.ended and left and ["eos"] not in page.get("frags", []) and o.offline
            and any(e.get("details") == "levelEmptyError" and not e.get("fatal") for e in page.get("errors", []))):
        raise KnownFailure(o.summary())
    assert o.ended, o.summary()


async def test_streamlink_ends_on_its_stall_timeout_not_the_endlist(run: dict[str, Outcome]) -> None:
    """streamlink ignores an empty ENDLIST: stops after 3 target durations, cleanly, output whole."""
    o = run[STREAMLINK]
    assert any("No new segments for more than 15.00s" in line for line in o.said), o.summary()
    assert o.media >= LAST - 0.5, o.summary()
