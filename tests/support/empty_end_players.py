"""The players of tests/test_players_empty_end.py against tests/support/empty_end.py's scripted stream:
every independent player (tests/support/independent_players.py) at once, each a client of its own,
held on the transcoded variant where a page or a command lets it choose; what each did (`Outcome`).

`python -m tests.support.empty_end_players [--unpinned] SCRIPT...` plays every player against each script
and prints what each did.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.empty_end import LAST, EndStream, Media, after_end, make_media, segments_of
from tests.support.independent_players import (BROWSER_PAGES, NATIVE, SHAKA_52, SHAKA_52_LL, SHAKA_416,
                                               VIDEOJS_DEFAULTS, VIDEOJS_OWNCAST, VIEWER_PAGE, native_player,
                                               served_pages)
from tests.support.page_open import Opened, open_page
from tests.support.player_pages import PROBE_JS, page_state
from tests.support.scripted_stream import Asked, StreamServer
from tests.support.waiting import TimedOut, until


# -- the players' pages ------------------------------------------------------------------------------------

# Every page's probe (player_pages.PROBE_JS; the viewer page's an init script) counts it `stuck` once it has
# played to the stream's last moment (within half a second of LAST) and then not moved for 8 s.
WATCHED = f"stuck=8000&last={LAST - 0.5:g}"

# The viewer page's hls.js (viewer/hls.min.js, as viewer/player.js makes it), through its global: every
# ERROR event, each media playlist it loaded, each fragment buffered and BUFFER_EOS, on window.probe.hooked.
# With PIN it starts on the lowest level (hls.js sorts its levels by bitrate: variant 1) and is held on
# variant 1 (loadLevel: a manual level, as the viewer's quality menu sets one).
HLSJS_HOOK_JS = """
(() => {
  const PIN = %s;
  let made;
  Object.defineProperty(window, 'Hls', { configurable: true, enumerable: true, get: () => made, set: (Hls) => {
    made = class extends Hls {
      constructor(config) {
        super(PIN ? Object.assign({}, config, { startLevel: 0 }) : config);
        const w = window.probe.hooked, E = Hls.Events, video = () => document.querySelector('video');
        const variantOf = (level) => Number((/\\/live\\/(\\d+)\\//.exec(this.levels[level].url) || [0, -1])[1]);
        this.on(E.ERROR, (e, d) => w.errors.push({
          details: d.details, fatal: !!d.fatal, level: d.level === undefined ? null : d.level,
          reason: String(d.reason || (d.error && d.error.message) || ''),
          action: d.errorAction ? d.errorAction.action : null, t: video() ? video().currentTime : null }));
        this.on(E.LEVEL_LOADED, (e, d) => w.levels.push({
          variant: variantOf(d.level), target: d.details.targetduration, live: d.details.live,
          segments: d.details.fragments.length, first: d.details.startSN, last: d.details.endSN }));
        this.on(E.FRAG_BUFFERED, (e, d) => w.frags.push([variantOf(d.frag.level), d.frag.sn]));
        this.on(E.BUFFER_EOS, () => w.frags.push(['eos']));
        if (PIN) {
          this.on(E.MANIFEST_PARSED, (e, d) => {
            this.loadLevel = d.levels.findIndex((l) => /\\/live\\/1\\//.test(l.url));
          });
        }
      }
    };
  } });
})();
"""

# The pages of tests/support/independent_players.py, with their players held on the transcoded variant where
# a page can choose one (PIN): Shaka without ABR, starting from a bandwidth estimate that only variant 1
# fits (not the browser's: useNetworkInformation off); video.js with variant 1's representation alone
# enabled once it has the multivariant playlist (VHS's quality API; Owncast's options start on the lowest
# anyway). Shaka's errors are recorded whole (its page keeps their codes only).
SHAKA_PIN = ("  player.configure({ abr: { enabled: false, defaultBandwidthEstimate: 100000,"
             " useNetworkInformation: false } });\n")
SHAKA_ERRORS = ("  player.addEventListener('error', (e) => window.probe.hooked.errors.push({ code: e.detail.code,"
                " severity: e.detail.severity, message: String(e.detail.message || e.detail).slice(0, 200) }));\n")
VIDEOJS_PIN = ("  player.one('loadedmetadata', () => vhs().representations().forEach((r) => {\n"
               "    r.enabled(variantOf(r.playlist && r.playlist.resolvedUri) === 1);\n  }));\n")


def page_of(name: str, pin: bool) -> str:
    page = BROWSER_PAGES[name]
    if name.startswith("shaka"):
        anchor, more = "  await player.attach(video);", (SHAKA_PIN if pin else "") + SHAKA_ERRORS
    else:
        anchor, more = "  player.src({ src, type: 'application/x-mpegURL' });", VIDEOJS_PIN if pin else ""
    if page.count(anchor) != 1:
        raise ValueError(f"{name}'s page changed: {anchor!r} is not there once")
    return page.replace(anchor, more + anchor)


PAGES = {pin: {name: page_of(name, pin) for name in BROWSER_PAGES} for pin in (True, False)}


# -- one run of every player -------------------------------------------------------------------------------

PAGE_PLAYERS = (VIEWER_PAGE, SHAKA_416, SHAKA_52, SHAKA_52_LL, VIDEOJS_OWNCAST, VIDEOJS_DEFAULTS)
PROCESS_PLAYERS = NATIVE
ALL_PLAYERS = PAGE_PLAYERS + PROCESS_PLAYERS
# A process still running this long after the end was shown to it (on its clock) is judged not to end:
# streamlink stops on a playlist with no new segment for 3 target durations (15 s under the new target).
GRACE = 25.0
BOUND = 150.0  # a net for the whole run, on a loaded machine: every wait ends on its condition first

@dataclass
class Outcome:
    """What one player did with one script."""

    name: str
    script: str
    page: dict[str, Any] = field(default_factory=dict)  # its page's state (player_pages.page_state)
    exit: int | None = None  # a process's exit status; None: still running GRACE after the end (stopped)
    ran: float = 0.0  # a process's seconds from start to exit (or to being stopped)
    media: float = 0.0  # seconds of media in a process's output (streamlink, hlsdemux, VLC)
    said: list[str] = field(default_factory=list)  # a process's last lines, or a page's console errors
    asked: list[Asked] = field(default_factory=list)  # what the server answered it

    @property
    def process(self) -> bool:
        return self.name in PROCESS_PLAYERS

    @property
    def ended(self) -> bool:
        """A page's video fired 'ended'; a process exited 0 by itself."""
        return self.exit == 0 if self.process else bool(self.page.get("ended"))

    @property
    def offline(self) -> bool:
        """The viewer page says the stream is offline (its end, or its fallback for one)."""
        return (self.page.get("viewer") or {}).get("state") == "offline"

    @property
    def fatal(self) -> list[str]:
        page = self.page
        out = [str(e.get("details")) for e in page.get("errors", []) if e.get("fatal")]
        out += [str(e.get("message")) for e in page.get("errors", []) if e.get("severity") == 2]  # Shaka's CRITICAL
        out += page.get("fatal", [])
        if page.get("mediaError"):
            out.append(f"media element: {page['mediaError']}")
        return out

    def errors(self) -> collections.Counter[str]:
        """Every error the player reported, by what it said (video.js's: its page's)."""
        own = self.page.get("errors", [])
        if not own:
            return collections.Counter(self.page.get("said", []))
        return collections.Counter(
            f"{e.get('details') or e.get('code')}: {e.get('reason') or e.get('message') or ''}"[:160]
            + (" (fatal)" if e.get("fatal") or e.get("severity") == 2 else "") for e in own)

    @property
    def stood_still(self) -> bool:
        """A page that played to the stream's last moment and then stood still, without 'ended'."""
        return bool(self.page.get("stuck")) and self.page.get("furthest", 0) >= LAST - 0.5

    def segments(self) -> list[tuple[int, str]]:
        return [(a.variant, a.name) for a in self.asked if a.name.endswith(".ts") and a.status == 200]

    def got_the_last(self, variant: int = 1) -> bool:
        return (variant, segments_of(variant)[-1].name) in self.segments()

    def reloads_after_end(self, variant: int = 1) -> list[float]:
        return [a.at for a in self.asked if a.variant == variant and after_end(a)]

    def summary(self) -> str:
        page = self.page
        after = self.reloads_after_end()
        rate = (len(after) - 1) / (after[-1] - after[0]) if len(after) > 2 and after[-1] > after[0] else 0.0
        missing = [a.name for a in self.asked if a.status != 200]
        variants = list(dict.fromkeys(v for v, _ in self.segments()))
        common = (f"{len(missing)} answers not 200, variants {variants}, got v1's last segment "
                  f"{self.got_the_last()}, v1 ended version asked {len(after)}x ({rate:.1f}/s)")
        if self.process:
            return (f"{self.name}: exit {self.exit} after {self.ran:.1f} s, media {self.media:.2f} s, {common}; "
                    f"said {self.said[-4:]}")
        viewer = page.get("viewer") or {}
        return (f"{self.name}: ended {self.ended}, stood still {self.stood_still} (furthest "
                f"{page.get('furthest', 0):.2f}, still {page.get('stillMs')} ms), fatal {self.fatal}, "
                f"errors {dict(self.errors())}, {common}"
                + (f"; viewer state {viewer.get('state')}, hls.js levels {page.get('levels', [])[-2:]}, "
                   f"EOS {['eos'] in page.get('frags', [])}" if viewer else "")
                + f"; events {page.get('events', [])[-4:]}; console {self.said[-3:]}")


async def play_all(chromium: Any, server: StreamServer, media: Media, script: str, work: Path,
                   pin: bool = True, players: Sequence[str] = ALL_PLAYERS) -> dict[str, Outcome]:
    """Every player at once against `script` (each a client of its own on `server`), until each has ended,
    stood still, failed, or (a process) outlived the end by GRACE; what each did."""
    outcomes = {name: Outcome(name, script) for name in players}
    streams = {name: EndStream(media, script) for name in players}
    srcs = {name: server.add(f"{script}-{name}", stream) for name, stream in streams.items()}
    natives = {name: native_player(name, srcs[name], work, lowest=pin, ends=True)
               for name in players if name in PROCESS_PLAYERS}
    started: dict[str, float] = {}
    stopped: dict[str, float] = {}  # when each process was seen ended (by itself, or stopped)
    outlived: set[str] = set()  # the processes stopped GRACE after the end
    opened: dict[str, Opened] = {}  # the pages
    async with served_pages(PAGES[pin]) as pages:
        try:
            for native in natives.values():
                await native.start()
                started[native.player.name] = time.monotonic()
            for name in (n for n in players if n in PAGE_PLAYERS):
                src = srcs[name]
                if name == VIEWER_PAGE:
                    page_url = f"{pages.url}/js/index.html?{WATCHED}&src={src}"
                    scripts: tuple[str, ...] = (PROBE_JS, HLSJS_HOOK_JS % ("true" if pin else "false"))
                else:
                    page_url, scripts = f"{pages.url}/page/{name}?{WATCHED}&src={src}", ()
                opened[name] = await open_page(chromium, page_url, scripts=scripts)
                outcomes[name].said = opened[name].said

            async def settled() -> bool:
                done = True
                for name, one in opened.items():
                    state = outcomes[name].page = await page_state(one.page)
                    viewer = state.get("viewer") or {}
                    done = done and bool(state["ended"] or outcomes[name].fatal or state["stuck"]
                                         or (state["started"] and viewer.get("state") == "offline"))
                for name, native in natives.items():
                    client = streams[name]
                    end = client.shown_the_end()
                    if native.running and end is not None and client.clock() > end + GRACE:
                        outlived.add(name)
                        await native.stop()
                    if not native.running:
                        stopped.setdefault(name, time.monotonic())
                    done = done and not native.running
                return done

            def where() -> dict[str, str]:
                return {n: o.summary()[:300] for n, o in outcomes.items()}

            try:
                await until(settled, f"every player ended, stood still or outlived the end ({script})", BOUND,
                            every=0.5, detail=where)
            except TimedOut:
                pass  # a player that never got that far: its outcome says where it stood, its tests judge it
        finally:
            for native in natives.values():
                await native.stop()
            for name, one in opened.items():
                with contextlib.suppress(Exception):  # a page that died: its outcome says what it had
                    outcomes[name].page = await page_state(one.page)
                with contextlib.suppress(Exception):
                    await one.context.close()
    for name, native in natives.items():
        outcome = outcomes[name]
        outcome.exit = None if name in outlived else native.exited
        outcome.ran = stopped.get(name, time.monotonic()) - started[name]
        await asyncio.to_thread(native.finish, work)
        outcome.media = native.media
        outcome.said = native.said(40)
    for name, one in opened.items():
        outcomes[name].said += [f"pageerror: {error}" for error in one.thrown]
    for name, outcome in outcomes.items():
        outcome.asked = list(streams[name].asked)
    return outcomes


async def _main(scripts: list[str], pin: bool) -> None:
    from tests.support.browser import shared_chromium

    work = Path(tempfile.mkdtemp(prefix="empty-end-"))
    media = make_media(work / "media")
    async with StreamServer() as server, shared_chromium() as chromium:
        for script in scripts:
            t0 = time.monotonic()
            outcomes = await play_all(chromium, server, media, script, work / script, pin)
            print(f"== {script} ({'held on variant 1' if pin else 'players choosing'}): {time.monotonic() - t0:.1f} s")
            for outcome in outcomes.values():
                print("  " + outcome.summary())


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(_main([a for a in args if a != "--unpinned"] or ["ended_empty"], "--unpinned" not in args))
