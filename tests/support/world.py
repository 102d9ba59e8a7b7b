"""World: an HLS folder, a scripted bucket (FakeStore) and a real Publisher with the real Uploader, every
playlist version it renders checked by the HLS checker. Tests tell it what Owncast lists."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from broadcaster.playlist.rendered import Version
from broadcaster.metrics import Metrics
from broadcaster.source.owncast import SourcePlaylist, SourceSegment
from broadcaster.bucket.cleaner import Cleaner
from broadcaster.bucket.recorder import Recorder
from broadcaster.status.assessment import HealthReport, Readings
from broadcaster.playlist.options import WindowOptions
from broadcaster.publish.config import PublisherConfig
from broadcaster.publish.publisher import Publisher
from broadcaster.publish.uploads import UNFINISHED_LIMIT, WriteWatch
from broadcaster.publish.release import Outlets
from broadcaster.state.snapshots import Snapshots, register_parts
from broadcaster.state.disk import StateFile
from broadcaster.bucket.uploader import Backoff, Holder, Uploader
from broadcaster.playlist.pathway import BUCKET, VM, BaseUris, Pathway, VmUris
from broadcaster.publish.pathways import FIRST, PathwayPlan
from broadcaster.bucket.urls import PublicUrls
from broadcaster.publish.visible import VisiblePlaylists
from broadcaster.vm.held import Held
from tests.support.fakes import FakeStore, WrittenWhole
from tests.support.hls_checker import VariantSetChecker
from tests.support.listing import Listed, listing
from tests.support.waiting import until

PUBLIC = "https://cdn.example"


class Recording(VisiblePlaylists):
    """VisiblePlaylists that keep every version made visible, in order: what a player could have seen."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[tuple[int, str]] = []

    def show(self, renderings: Mapping[int, Version]) -> None:
        super().show(renderings)
        self.shown += [(v, r.rendered.body.decode()) for v, r in renderings.items()]

    def replace(self, renderings: Mapping[int, Version]) -> None:
        super().replace(renderings)
        self.shown += [(v, r.rendered.body.decode()) for v, r in renderings.items()]


class World:
    """An HLS folder, a scripted bucket and a publisher, with every playlist version checked.

    `writes` says when Owncast has finished a file (by default: at once; tests write whole files).
    With `state`, the publisher saves into it before each version is shown, as the service does (call
    `pub.start()`); `snapshots` restores from it. With `stepped`, the publisher's monotonic clock is
    `self.now`, moved by the test (`step`), so windows slide without waiting for the real one."""

    def __init__(self, tmp_path: Path, window: float = 4.0, state: StateFile | None = None,
                 align_by: str = "msn", stepped: bool = False, segment_hashes: bool = False,
                 writes: WriteWatch | None = None, unfinished_limit: float = UNFINISHED_LIMIT,
                 can_block_reload: bool = False, holder: Holder | None = None,
                 pathways: tuple[str, ...] = ("bucket", "vm"), recordings: Path | None = None) -> None:
        """`holder`: each file is held first (content steering, with `pathways`: the VM's, and `backup`, a
        second bucket, `backup_store`): `shown[pathway]` records each pathway's versions (`ahead`: the
        VM's, which list each segment once held), `playlists` the first bucket's. The VM's pathway lists
        what it holds while `redirects` is False (players steered to it), else what the first bucket
        lists; `fallbacks[pathway]`: where a bucket's pathway lists what it lacks (players steered away).
        `recordings`: a STATE_DIR where streams are kept (KEEP_RECORDINGS), their VOD playlists uploaded to
        the same bucket."""
        self.dir = tmp_path
        self.store = FakeStore()
        self.metrics = Metrics()
        self.uploader = Uploader(self.store, self.metrics, concurrency=4, attempt_timeout=5,
                                 backoff=Backoff(base=0.001, cap=0.001), holder=holder)
        self.redirects = False
        self.fallbacks: dict[str, tuple[str, ...]] = {}
        records = [FIRST]
        others: dict[str, Uploader] = {}
        self.backup_store = FakeStore()
        for pid in pathways[1:] if holder is not None else ():
            if pid == "vm":
                records.append(Pathway("vm", VM, "vm", VmUris()))
            else:
                records.append(Pathway(pid, BUCKET, pid, BaseUris("https://b2.example")))
                others[pid] = Uploader(self.backup_store, self.metrics, concurrency=4, attempt_timeout=5,
                                       backoff=Backoff(base=0.001, cap=0.001), holder=holder, pathway=pid)
        plan = PathwayPlan(tuple(records), lambda pid: self.fallbacks.get(pid, ()), lambda: self.redirects)
        self.shown = {p.id: Recording() for p in records[1:]}
        self.ahead = self.shown.get("vm")
        self.listed: list[tuple[int, int, str]] = []
        self.clock = 1_800_000_000.0
        self.now = 0.0
        mono: Callable[[], float] = (lambda: self.now) if stepped else time.monotonic
        self.playlists = Recording()
        self.snapshots = Snapshots(state, self.metrics) if state is not None else None
        self.recorder = Recorder(self.uploader, recordings, "live") if recordings is not None else None
        self.pub = Publisher(PublisherConfig(hls_dir=tmp_path, key_prefix="live", urls=PublicUrls(PUBLIC),
                                             window=WindowOptions(window, can_block_reload=can_block_reload), wall_clock=lambda: self.clock, monotonic=mono,
                                             segment_hashes=segment_hashes, unfinished_limit=unfinished_limit,
                                             pathways=plan),
                             uploader=self.uploader, writes=writes or WrittenWhole(), metrics=self.metrics,
                             others=others,
                             outlets=Outlets(self.playlists, self.snapshots,
                                             on_listed=(lambda v, n, s, _u: self.listed.append((v, n, s.name)),),
                                             pathways=self.shown),
                             recorder=self.recorder)
        self.release = self.pub.release
        if self.snapshots is not None:
            register_parts(self.snapshots, self.pub)  # as the service does (without a cleaner)
        snapshots = self.snapshots
        self.report = HealthReport(self.pub.facts, self.uploader, readings=Readings(
            state_error=lambda: snapshots.error if snapshots else None, listing_held=lambda: self.release.held))
        self.checker = VariantSetChecker(allow_resume_after_endlist=True, allow_restart=True, align_by=align_by)
        self.segments: dict[int, list[SourceSegment]] = {}

    def write(self, variant: int, name: str, size: int = 376) -> None:
        folder = self.dir / str(variant)
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"\x47" * size)

    def owncast_lists(self, variant: int | tuple[int, ...], *names: str, ended: bool = False,
                      duration: float = 1.0, discontinuity_before: str | None = None, init: str | None = None,
                      media_sequence: int | None = None, write: bool = True, target: int = 1,
                      date: float | None = None) -> None:
        """`variant`: one, or each of several in turn. `date`: the seconds after the epoch of segment 0 the
        (one) segment named starts at, when its number does not say (a copied variant, cut at other
        instants than the transcoded ones)."""
        for v in variant if isinstance(variant, tuple) else (variant,):
            listed = self.segments.setdefault(v, [])
            for name in names:
                if write:
                    self.write(v, name)
                # Owncast's PDT: the same instant for the same segment number in every variant.
                start = _number(name) if date is None else date
                listed.append(SourceSegment(name, duration, 1_800_000_000.0 + start, name == discontinuity_before,
                                            init))
            window = listed[-10:]
            ms = media_sequence if media_sequence is not None else _number(window[0].name) if window else 0
            window = [dataclasses.replace(s, position=i) for i, s in enumerate(window)]  # as the parser numbers them
            self.pub.on_variant_playlist(v, SourcePlaylist(target, ms, tuple(window), ended, True))

    async def until(self, condition: Callable[[], object], what: str) -> None:
        """Until `condition()`, looked at every millisecond for at most 5 s: the fake bucket answers at once."""
        await until(condition, what, 5, every=0.001)

    async def settle(self) -> None:
        """Wait until every upload finished and was drained (condition, not a sleep)."""
        await self.until(lambda: not self.pub.queue_depth, "the publisher's queue drained")
        self.check()

    def check(self) -> None:
        for v in self.pub.variants():
            rendered = self.playlists.media_playlist(v)
            if rendered is not None:
                self.checker.assert_ok(str(v), rendered.body.decode())

    def health(self) -> tuple[bool, dict[str, object]]:
        reading = self.report.assess()
        return reading.ok, reading.body

    def sample(self, name: str, **labels: str) -> float | None:
        """A sample of the publisher's metrics: `name` without the hls_broadcaster_ prefix."""
        return self.metrics.registry.get_sample_value(f"hls_broadcaster_{name}", labels)

    def uris(self, variant: int) -> list[str]:
        gen = self.pub.playlist(variant)
        assert gen is not None
        return [u.removeprefix(f"{PUBLIC}/live/{variant}/") for u in gen.uris()]

    def text(self, variant: int = 0) -> str:
        rendered = self.playlists.media_playlist(variant)
        assert rendered is not None
        return rendered.body.decode()

    def views(self, pathway: str) -> Recording:
        """The versions `pathway` shows (`bucket`: the first bucket's, `playlists`)."""
        return self.playlists if pathway == "bucket" else self.shown[pathway]

    def entries(self, pathway: str, variant: int = 0) -> list[Listed]:
        """What the newest version `pathway` shows of `variant` lists."""
        rendered = self.views(pathway).media_playlist(variant)
        return [] if rendered is None else listing(rendered.body.decode())


def _number(name: str) -> int:
    """The number Owncast's name for a segment ends with (0 for a name without one: offline.ts)."""
    return int(name.rsplit("-", 1)[1].split(".")[0]) if name[-4:-3].isdigit() else 0


def opened_held(folder: Path, max_bytes: int = 1 << 20, buckets: tuple[str, ...] = ("bucket",)) -> Held:
    """What the service holds of Owncast's files (vm/held.py), opened: Owncast's folder `folder`/hls (its
    variant 0's folder made), the copies (up to `max_bytes`) in `folder`/state."""
    (folder / "state").mkdir(parents=True, exist_ok=True)
    (folder / "hls" / "0").mkdir(parents=True, exist_ok=True)
    held = Held(folder / "hls", folder / "state", max_bytes=max_bytes, keep_for=600, buckets=buckets)
    held.open()
    return held


def held_world(make: Callable[..., World], folder: Path, pathways: tuple[str, ...] = ("bucket", "vm"),
               max_bytes: int = 1 << 20, **options: Any) -> tuple[World, Held]:
    """A World (made by `make`: the make_world fixture) whose uploads hold each file first (opened_held)."""
    held = opened_held(folder, max_bytes, tuple(p for p in pathways if p != "vm"))
    return make(folder / "hls", holder=held, pathways=pathways, **options), held


async def stopped(world: World, saved: dict[str, object], folder: Path) -> StateFile:
    """`saved` written into `folder` as the service saves at a stop, then the publisher closed."""
    folder.mkdir()
    state = StateFile(folder)
    assert snapshots_of(state, world.pub).save_now(saved) is None
    await world.pub.close()
    return state


def passes(versions: list[tuple[int, str]], allow_restart: bool = False) -> None:
    """Every version of one pathway through one checker, in the order shown: what a player polling it saw."""
    checker = VariantSetChecker(allow_restart=allow_restart)
    for v, body in versions:
        checker.assert_ok(str(v), body)


def snapshots_of(file: StateFile | None, pub: Publisher, cleaner: Cleaner | None = None) -> Snapshots:
    """The durable parts wired as the service wires them: the cleaner under "cleaner", the publisher on top."""
    snapshots = Snapshots(file)
    register_parts(snapshots, pub, {"bucket": cleaner} if cleaner is not None else None)
    return snapshots
