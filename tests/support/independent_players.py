"""The independent players (tests/test_independent_players.py), each playing the service's multivariant
playlist through the tunnel stand-in as a machine of its own (its own User-Agent): in headless Chromium
Shaka 4.16 and 5.2 (and 5.2 low-latency), video.js with Owncast's and with VHS's default options, and the
viewer page (tests/support/player_pages.py); as processes streamlink, GStreamer's hlsdemux and hlsdemux2,
and VLC. What each fetched is recorded on the wire (`Wire`), with a hash of every segment's body."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcaster.demo.ledger import Finished
from tests.support.local_http import Served
from tests.support.page_open import Agents, Opened, open_page
from tests.support.player_pages import PAGES, PROBE_JS, player_pages
from tests.support.player_run import read_with_ffmpeg

SEGMENT_SUFFIXES = (".ts", ".m4s", ".mp4", ".aac")
NOBODY = 65534


@dataclass(frozen=True)
class Player:
    """One independent player: `steering` when it implements HLS Content Steering; its requests carry
    `marker` in their User-Agent (`prefix`: the User-Agent starts with it, the player's own that no
    option changes)."""

    name: str
    steering: bool
    marker: str
    prefix: bool = False

    def made(self, agent: str) -> bool:
        return agent.startswith(self.marker) if self.prefix else self.marker in agent


def page_player(name: str, steering: bool = True) -> Player:
    return Player(name, steering, f"(independent player {name})")


SHAKA_416, SHAKA_52, SHAKA_52_LL = "shaka-4.16", "shaka-5.2", "shaka-5.2-low-latency"
VIDEOJS_OWNCAST, VIDEOJS_DEFAULTS, VIEWER_PAGE = "videojs-owncast", "videojs-defaults", "viewer"
STREAMLINK, HLSDEMUX, HLSDEMUX2, VLC = "streamlink", "gstreamer-hlsdemux", "gstreamer-hlsdemux2", "vlc"

PLAYERS = (
    page_player(SHAKA_416), page_player(SHAKA_52), page_player(SHAKA_52_LL),
    page_player(VIDEOJS_OWNCAST), page_player(VIDEOJS_DEFAULTS), page_player(VIEWER_PAGE),
    Player(STREAMLINK, False, "(independent player streamlink)"),
    # hlsdemux sends the User-Agent set on the source element for the multivariant playlist only, its own
    # for the rest; hlsdemux2 takes the source's for every request.
    Player(HLSDEMUX, False, "GStreamer souphttpsrc", prefix=True),
    Player(HLSDEMUX2, False, "(independent player gstreamer-hlsdemux2)"),
    Player(VLC, False, "VLC/", prefix=True),
)
BY_NAME = {p.name: p for p in PLAYERS}


# -- the pages -------------------------------------------------------------------------------------------

SHAKA_5_PAGE = PAGES["shaka"].replace("/shaka/shaka-player.compiled.js", "/shaka5/shaka-player.compiled.js")
SHAKA_5_LOW_LATENCY_PAGE = SHAKA_5_PAGE.replace(
    "  await player.attach(video);",
    "  player.configure({ streaming: { lowLatencyMode: true } });\n  await player.attach(video);")
# video.js with VHS as it comes (Chromium 156 can play HLS itself, but VHS overrides the native player
# everywhere but Safari and iOS: VhsSourceHandler.getOverrideNative).
VIDEOJS_DEFAULTS_PAGE = PAGES["videojs"].replace(
    PAGES["videojs"][PAGES["videojs"].index("{\n    autoplay: 'muted', controls: true"):
                     PAGES["videojs"].index("  });\n  const vhs")],
    "{ autoplay: 'muted', muted: true,\n")
BROWSER_PAGES = {SHAKA_416: PAGES["shaka"], SHAKA_52: SHAKA_5_PAGE, SHAKA_52_LL: SHAKA_5_LOW_LATENCY_PAGE,
                 VIDEOJS_OWNCAST: PAGES["videojs"], VIDEOJS_DEFAULTS: VIDEOJS_DEFAULTS_PAGE}
assert SHAKA_5_LOW_LATENCY_PAGE != SHAKA_5_PAGE != PAGES["shaka"]
assert "vhs:" not in VIDEOJS_DEFAULTS_PAGE and "vhs:" in PAGES["videojs"]


def served_pages(pages: Mapping[str, str] = BROWSER_PAGES) -> Served:
    """The players' pages (`pages`, by name: player_pages.player_pages), served from 127.0.0.1 (another origin
    than the service's, as a site embedding a player is), each loading the stream from `?src=`."""
    return Served(player_pages(pages))


# The TypeError Shaka 4.16 and 5.2 throw when their first steering reload (a TTL after the first manifest)
# falls inside load(), before the Player made its ABR manager (`this.abrManager_.getBandwidthEstimate()` of
# null, and no reload is scheduled again): a player's own start-up race, not the service's.
SHAKA_LOAD_RACE = "getBandwidthEstimate"


class Browser:
    """The players' pages in one Chromium, each in a context of its own whose User-Agent is Chromium's
    with the player's marker; each page counts what it plays (player_pages.PROBE_JS)."""

    def __init__(self, chromium: Any, urls: dict[str, str], clock: Callable[[], float]) -> None:
        self.chromium = chromium
        self.urls = urls  # player -> the page it plays in
        self.clock = clock
        self.agents = Agents(chromium)

    async def open(self, player: Player) -> Opened:
        return await open_page(self.chromium, self.urls[player.name], scripts=(PROBE_JS,),
                               user_agent=await self.agents.tagged(player.marker), clock=self.clock)

    async def again(self, player: Player, opened: Opened) -> Opened:
        """The player's page closed and opened anew (a new session of the player)."""
        await opened.context.close()
        return await self.open(player)


# -- the processes ---------------------------------------------------------------------------------------


class Native:
    """A player process of our own: its command, a folder for its output and log, started and stopped by
    its PID (SIGTERM, then SIGKILL after `grace` seconds)."""

    def __init__(self, player: Player, argv: Sequence[str], folder: Path, output: Path | None,
                 env: dict[str, str] | None = None) -> None:
        self.player = player
        self.argv = list(argv)
        self.folder = folder
        self.output = output
        self.env = env
        self.log = folder / "log.txt"
        self.proc: asyncio.subprocess.Process | None = None
        self.exited: int | None = None  # its exit status, when it ended before it was stopped
        self.media = 0.0  # seconds of media in its output, once stopped (media_seconds)

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.folder,
                env=self.env, start_new_session=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, grace: float = 10.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is not None:
            self.exited = proc.returncode
            return
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def finish(self, work: Path) -> bytes:
        """Once stopped: its output's bytes (b"" without), its log kept under `work` and a folder of the
        system's own removed."""
        output = self.output.read_bytes() if self.output is not None and self.output.exists() else b""
        if self.output is not None:
            self.media = media_seconds(self.output)
        if not self.folder.is_relative_to(work):
            kept = work / self.player.name
            kept.mkdir(parents=True, exist_ok=True)
            if self.log.exists():
                shutil.copyfile(self.log, kept / self.log.name)
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder, self.log = kept, kept / self.log.name
        return output

    def said(self, lines: int = 12) -> list[str]:
        """The last lines it wrote, for a failure's message."""
        if not self.log.exists():
            return []
        text = self.log.read_text(errors="replace").replace("\r", "\n")
        return [line[:300] for line in text.splitlines() if line.strip()][-lines:]


def as_nobody(argv: list[str], folder: Path) -> tuple[list[str], dict[str, str]]:
    """VLC refuses to run as root ("VLC is not supposed to be run as root"), which the tests are here and
    on CI: it runs as nobody (setpriv, util-linux), its home and output in a folder nobody may write."""
    env = {**os.environ, "HOME": str(folder), "XDG_CONFIG_HOME": str(folder), "XDG_CACHE_HOME": str(folder)}
    if os.geteuid() != 0:
        return argv, env
    folder.chmod(0o777)
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv], env


NATIVE = (STREAMLINK, HLSDEMUX, HLSDEMUX2, VLC)


def native_player(name: str, src: str, work: Path, *, lowest: bool = False, ends: bool = False) -> Native:
    """One of NATIVE playing `src`, its folder under `work`. `lowest`: held on the lowest variant
    (streamlink's "worst", hlsdemux at connection-speed 1 kbps, hlsdemux2 in uridecodebin3, which passes
    connection-speed on, VLC's lowest adaptive logic). `ends`: VLC quits at the end of its playlist
    (--play-and-exit), as the others do at the end of the stream, and hlsdemux chooses its variant."""
    player = BY_NAME[name]
    if name == VLC and os.geteuid() == 0:
        # Nobody enters pytest's folders (root's, 0700): a folder of its own in the system's temp.
        folder = Path(tempfile.mkdtemp(prefix="hls-broadcaster-vlc-"))
    else:
        folder = work / name
        folder.mkdir(parents=True)
    output: Path | None = folder / "out.ts"
    env: dict[str, str] | None = None
    if name == STREAMLINK:
        argv = [sys.executable, "-m", "streamlink", "--loglevel", "info", "--http-header",
                f"User-Agent=streamlink {player.marker}", "--output", str(output), src, "worst" if lowest else "best"]
    elif name == HLSDEMUX:
        # hlsdemux passes each segment's bytes on as they came (MPEG-TS in, MPEG-TS out). Held on the
        # first variant by a connection speed of its own (100 Mbit/s): its own estimate falls on a starved
        # machine, and a switch of variant mid-move is not what is judged here.
        speed = ["connection-speed=1"] if lowest else [] if ends else ["connection-speed=100000"]
        argv = ["gst-launch-1.0", "-q", "souphttpsrc", f"location={src}", "!", "hlsdemux", *speed,
                "!", "filesink", f"location={output}"]
    elif name == HLSDEMUX2:
        # hlsdemux2 needs a bin that handles streams (parsebin, decodebin3, playbin3): parsebin plugs it,
        # tsdemux and the parsers; the sinks keep the clock, as a player's do. No decoder: Debian's are
        # in another package.
        output = None
        sinks = ["p.", "!", "queue", "!", "fakesink", "sync=true", "p.", "!", "queue", "!", "fakesink", "sync=true"]
        if lowest:
            argv = ["gst-launch-1.0", "-q", "uridecodebin3", f"uri={src}", "connection-speed=1",
                    "caps=video/x-h264;audio/mpeg", "name=p", *sinks]
        else:
            argv = ["gst-launch-1.0", "-q", "souphttpsrc", f"location={src}",
                    f"user-agent=GStreamer {player.marker}", "!", "parsebin", "name=p", *sinks]
        env = {**os.environ, "GST_PLUGIN_FEATURE_RANK": "hlsdemux:NONE"}
    elif name == VLC:
        argv, env = as_nobody(["cvlc", "--verbose=1", "--no-stats", *(["--adaptive-logic=lowest"] if lowest else []),
                               *(["--play-and-exit"] if ends else []), src,
                               "--sout", f"#std{{access=file,mux=ts,dst={output}}}"], folder)
    else:
        raise ValueError(name)
    return Native(player, argv, folder, output, env)


def missing_programs() -> list[str]:
    """The programs of the native players not installed (scripts/test installs them)."""
    missing = [program for program in ("gst-launch-1.0", "cvlc") if shutil.which(program) is None]
    # Looked for, not imported: importing streamlink renames the logging levels of the whole process
    # ("warning" for WARNING: its logger module), which every other test sharing the worker then reads.
    if importlib.util.find_spec("streamlink") is None:
        missing.append("streamlink")
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        missing.append("setpriv")
    return missing


# -- the wire -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Carried:
    """One answer, as a proxy passed it on to a player."""

    at: float  # time.monotonic() when the whole answer was read
    side: str  # "service" (through the tunnel stand-in) or "bucket" (its public URL)
    player: str
    method: str
    path: str  # path and query, as asked
    status: int
    body: Finished | None  # a segment's, of a 200
    data: bytes | None = None  # its bytes, kept for the players whose output is compared with them

    @property
    def segment(self) -> bool:
        return self.path.split("?")[0].endswith(SEGMENT_SUFFIXES)

    @property
    def variant_and_name(self) -> tuple[int, str]:
        pieces = self.path.split("?")[0].split("/")
        return (int(pieces[-2]) if pieces[-2].isdigit() else -1), pieces[-1]


class Wire:
    """Every answer the players got from the service and the bucket, by player (their User-Agents)."""

    def __init__(self, players: Sequence[Player], clock: Callable[[], float], keep: Sequence[str] = ()) -> None:
        """`keep`: the players whose segments' bytes are kept (their output is compared with them)."""
        self.players = tuple(players)
        self.clock = clock
        self.keep = frozenset(keep)
        self.carried: list[Carried] = []
        self.strangers: set[str] = set()  # User-Agents of no player (the service's own probe)

    def observer(self, side: str) -> Callable[[Any, int, bytes], None]:
        def observe(request: Any, status: int, body: bytes) -> None:
            agent = request.headers.get("User-Agent", "")
            owner = next((p.name for p in self.players if p.made(agent)), None)
            if owner is None:
                self.strangers.add(agent)
                return
            path = request.path_qs
            segment = path.split("?")[0].endswith(SEGMENT_SUFFIXES) and request.method == "GET"
            got = segment and status == 200
            self.carried.append(Carried(self.clock(), side, owner, request.method, path, status,
                                        Finished.of(body) if got else None,
                                        body if got and owner in self.keep else None))
        return observe

    def of(self, player: str, since: float = 0.0, before: float = float("inf")) -> list[Carried]:
        return [c for c in self.carried if c.player == player and since <= c.at < before]

    def segments(self, player: str, since: float = 0.0, before: float = float("inf"),
                 side: str | None = None) -> list[Carried]:
        """Its segments' 200s, from either side (`side`: one of them)."""
        return [c for c in self.of(player, since, before)
                if c.segment and c.status == 200 and (side is None or c.side == side)]

    def asked(self, player: str, kind: str, since: float = 0.0, before: float = float("inf")) -> list[Carried]:
        """Its answered requests (200) of a `kind`: "steering" (the steering manifest), "vm" (a media
        playlist of the VM's pathway), "bucket" (one of the bucket's pathway, served by the service)."""
        return [c for c in self.of(player, since, before) if c.side == "service" and c.status == 200
                and _kind(c.path) == kind]

    def timeline(self, player: str, since: float) -> list[tuple[float, str, int, str]]:
        """For a failure's message: (seconds after `since`, side, status, path) of what it asked."""
        return [(round(c.at - since, 1), c.side, c.status, c.path.split("/", 2)[-1][-48:])
                for c in self.of(player, since - 2)][-24:]


def _kind(path: str) -> str:
    plain = path.split("?")[0]
    pieces = plain.strip("/").split("/")
    if pieces[-1] == "steering.json":
        return "steering"
    if plain.endswith(".m3u8"):
        if len(pieces) == 4 and pieces[1] == "vm":
            return "vm"
        if len(pieces) == 3 and pieces[1].isdigit():
            return "bucket"
        return "master" if pieces[-1] in ("master.m3u8", "stream.m3u8") else "other"
    return "segment" if plain.endswith(SEGMENT_SUFFIXES) else "other"


def concatenated(output: bytes, fetched: Sequence[Carried]) -> tuple[int, str | None]:
    """How many of `fetched` (segment 200s with their bytes, in the order they came) `output` holds one
    after another, whole and byte for byte, skipping any it left out, and what is wrong (None: nothing; the
    last may be cut short where the player was stopped, a beginning of the next one fetched)."""
    pos, next_one, whole = 0, 0, 0
    while pos < len(output):
        for j in range(next_one, len(fetched)):
            data = fetched[j].data
            assert data is not None, "the wire kept no bytes of this player's segments"
            piece = output[pos:pos + len(data)]
            if piece == data:
                pos, next_one, whole = pos + len(data), j + 1, whole + 1
                break
            if pos + len(piece) == len(output) and len(piece) < len(data) and data.startswith(piece):
                return whole, None  # cut short when the player was stopped
        else:
            return whole, (f"byte {pos} of {len(output)} begins none of the {len(fetched) - next_one} "
                           "segments fetched after the last one found")
    return whole, None


def media_seconds(path: Path) -> float:
    """How much media ffmpeg reads from `path` (read_with_ffmpeg's, on a loop of its own: Native.finish runs
    in a thread)."""
    return asyncio.run(read_with_ffmpeg(str(path), 60)).out_time if path.exists() else 0.0
