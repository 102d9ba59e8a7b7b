"""A second bucket as a pathway (PATHWAYS names `backup`; BACKUP_* settings): its uploads, its media
playlists and its probe.

Uploads: every finished segment the VM keeps a copy of (copies.py: the uploader reads each file once
and keeps it, Teed tells us) is put into the second bucket under the same key, read from that copy,
with its own retries (uploader.py's Backoff), concurrency and record of what landed: one failing bucket
never waits for the other, and the first bucket's uploader is unchanged. A segment whose copy is gone
before it landed (VM_COPIES_MB, disk full) is given up and counted.

Playlists: the VM pathway's versions (publish/release.py's `ahead`: every segment kept) as the backup
shows them: for each variant, the newest version none of whose segments is still on its way to the
second bucket, its URIs replaced by BACKUP_PUBLIC_URL/<key>. So a segment is listed there only once its
upload to THAT bucket landed, or as an EXT-X-GAP entry once given up (its copy gone before it landed,
as the first bucket lists an upload that failed for good), with the same numbers, discontinuities and
dates as the other pathways (6.2.4), behind them by its uploads on their way. A segment listed before
the service started (a restored state) was never told to this uploader: it is looked up in the second
bucket first (a HEAD each), listed once found there, and as a gap where it is not.

Probe: like the first bucket's (probe.py), a GET of the newest listed segment's first byte at the URL
viewers fetch it at; two failures in a row put the pathway behind (policy.PROBE_FAILURES).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp

from ..bucket.store import StoreError
from ..bucket.uploader import Backoff
from ..lograte import RateLimitedLog
from ..playlist import hls
from ..playlist.rendered import Rendered
from ..publish.visible import VisiblePlaylists
from .probe import EVALUATE_EVERY, PROBE_HEADERS, probe_pathway
from .policy import BucketSignals, SteeringPolicy

log = logging.getLogger(__name__)

_MAP = b'#EXT-X-MAP:URI="'
_EXTINF = b"#EXTINF:"
_GAP = hls.GAP_TAG.encode()
T = TypeVar("T")
HISTORY = 64  # versions kept per variant while the newest wait for their uploads to the second bucket
MAX_GIVEN_UP = 65536  # keys given up remembered (each listed as a gap while a window lists it)


class Store(Protocol):
    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None: ...

    async def exists(self, key: str) -> bool: ...


class KeptCopies(Protocol):
    """The VM's copies (copies.py): what the second bucket's uploads send."""

    def keep(self, key: str, body: bytes) -> object | None: ...

    def read_kept(self, key: str) -> bytes | None: ...


class _CopyGone(Exception):
    """The VM's copy a second-bucket upload sends is gone (VM_COPIES_MB, the disk)."""


class BackupUploads:
    """The second bucket's uploads: `add(key)` (on the event loop) puts `key`'s kept copy there, retried
    until it lands or the copy is gone. `pending`: keys not landed yet; `behind()`: how long the oldest
    has waited (the policy's signal); `on_settled` is called with each key that landed or was given up."""

    def __init__(self, store: Store, copies: KeptCopies, *, concurrency: int, attempt_timeout: float,
                 backoff: Backoff = Backoff(), clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._copies = copies
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout = attempt_timeout
        self._backoff = backoff
        self._clock = clock
        self.pending: dict[str, float] = {}  # key -> when it was added (in order)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()  # kept again while its upload ran: uploaded once more after it
        self._working = asyncio.Event()
        self._said = RateLimitedLog(log)
        self.on_settled: Callable[[str], None] = lambda key: None
        self.ok: bool | None = None  # None until the first outcome
        self.last_error: str | None = None
        self.landed = 0
        self.failed_attempts = 0
        self.given_up = 0
        # Listed as gaps there: the newest MAX_GIVEN_UP (a 4 h rewind of three variants of 1 s segments
        # is 43,200 keys; older ones left every window listed).
        self.given_up_keys: dict[str, None] = {}
        self.bytes = 0
        self._closed = False
        self._started = False
        self._to_verify: list[str] = []  # keys `verify` was given before `start`

    def behind(self) -> float:
        oldest = next(iter(self.pending.values()), None)
        return 0.0 if oldest is None else self._clock() - oldest

    def signals(self) -> BucketSignals:
        """What the steering policy reads of the second bucket, read as the first's are."""
        return BucketSignals.of_uploads(self.behind, lambda: (self.ok, self.last_error))

    def add(self, key: str) -> None:
        if self._closed:
            return
        if key in self._tasks:  # Owncast rewrote it: the upload running may send the bytes before
            self._again.add(key)
            return
        self.pending.pop(key, None)  # kept again (Owncast rewrote it): uploaded again, waiting from now
        self.pending[key] = self._clock()
        self._tasks[key] = asyncio.get_running_loop().create_task(self._upload(key), name="backup-upload")

    def verify(self, keys: list[str]) -> None:
        """Keys a restored state lists that this run never uploaded (a former run did, or gave up, or
        stopped first): each is looked up in the second bucket (retried while it fails) and settles as
        landed when there, else as given up (a gap there), so no player is sent to a key it lacks."""
        if self._closed:
            return
        for key in keys:
            if key in self._tasks or key in self.pending:
                continue
            self.pending[key] = self._clock()
            if self._started:
                loop = asyncio.get_running_loop()
                self._tasks[key] = loop.create_task(self._look_up(key), name="backup-verify")
            else:
                self._to_verify.append(key)

    def start(self) -> None:
        """The store runs: the look-ups `verify` was given before start on their way (the service
        restores its state before it starts the second bucket's store)."""
        self._started = True
        keys, self._to_verify = self._to_verify, []
        loop = asyncio.get_running_loop()
        for key in keys:
            if key in self.pending and key not in self._tasks:
                self._tasks[key] = loop.create_task(self._look_up(key), name="backup-verify")

    async def _look_up(self, key: str) -> None:
        try:
            if not await self._answered(lambda: self._store.exists(key)):
                self._give_up(key)
                self._said.warning("restored", "the second bucket lacks %s, which the restored playlists "
                                   "list: its pathway lists it as a gap (EXT-X-GAP)", key)
        finally:
            self._tasks.pop(key, None)
            if self.pending.pop(key, None) is not None:
                self.on_settled(key)

    async def _answered(self, ask: Callable[[], Awaitable[T]]) -> T:
        """`ask()`, one request to the second bucket within a slot and the attempt timeout, made again
        after a backoff until the bucket answers it; each outcome recorded (ok, last_error)."""
        attempt = 0
        while True:
            async with self._slots:
                try:
                    async with asyncio.timeout(self._timeout):
                        answer = await ask()
                except (StoreError, TimeoutError) as err:
                    self.failed_attempts += 1
                    self._record(False, err.reason if isinstance(err, StoreError) else "Timeout")
                else:
                    self._record(True)
                    return answer
            await self._wait(self._backoff.delay(attempt))
            attempt += 1

    def _give_up(self, key: str) -> None:
        self.given_up += 1
        self.given_up_keys[key] = None
        if len(self.given_up_keys) > MAX_GIVEN_UP:
            del self.given_up_keys[next(iter(self.given_up_keys))]

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _upload(self, key: str) -> None:
        content_type = hls.segment_content_type(key) or "application/octet-stream"

        async def put() -> None:
            # The copy read again for each attempt: one gone meanwhile is given up, not retried.
            body = await asyncio.to_thread(self._copies.read_kept, key)
            if body is None:
                raise _CopyGone
            await self._store.put(key, body, content_type=content_type, cache_control=hls.SEGMENT_CACHE_CONTROL)
            self.landed += 1
            self.bytes += len(body)

        try:
            await self._answered(put)
        except _CopyGone:
            self._give_up(key)
            self._said.warning("gone", "the second bucket never got %s: the VM's copy is gone "
                               "(VM_COPIES_MB, disk): its pathway lists it as a gap (EXT-X-GAP)", key)
        finally:
            self._tasks.pop(key, None)
            if key in self._again:
                self._again.discard(key)
                if not self._closed:
                    self._tasks[key] = asyncio.get_running_loop().create_task(self._upload(key),
                                                                              name="backup-upload")
                    return  # still pending: listed once the copy kept last landed
            if self.pending.pop(key, None) is not None:
                self.on_settled(key)

    def _record(self, ok: bool, reason: str | None = None) -> None:
        was, self.ok = self.ok, ok
        if ok:
            self._working.set()
            self.last_error = None
            if was is False:
                log.info("the second bucket (backup pathway) takes uploads again")
        else:
            self._working.clear()
            self.last_error = reason
            if was is not False:
                log.warning("uploads to the second bucket (backup pathway) fail (%s); retried while the VM "
                            "keeps each copy; its pathway lists only what landed", reason)

    async def _wait(self, delay: float) -> None:
        """`delay`, or less once the second bucket is seen working again."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._working.wait()


class Teed:
    """The uploader's keeper (bucket/uploader.py Keeper): the VM keeps each copy, and each kept copy is
    told to the second bucket's uploads (from the uploader's worker thread onto the event loop, before
    the uploader's own `on_kept`: the VM's pathway cannot list it before the backup knows it waits)."""

    def __init__(self, copies: KeptCopies, uploads: BackupUploads,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._copies = copies
        self._uploads = uploads
        self._loop = loop

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def keep(self, key: str, body: bytes) -> object | None:
        kept = self._copies.keep(key, body)
        loop = self._loop
        if loop is not None and hls.segment_content_type(key) is not None:
            loop.call_soon_threadsafe(self._uploads.add, key)  # not kept: given up there, counted
        return kept

    def read_kept(self, key: str) -> bytes | None:
        return self._copies.read_kept(key)


class BackupPlaylists:
    """The backup pathway's media playlists (the server's PlaylistSource for /live/backup/<n>/...):
    `ahead_shown` is told each version the VM's pathway shows, `settled` each key that landed in the
    second bucket (or was given up)."""

    def __init__(self, uploads: BackupUploads, key_for: Callable[[int, str], str], public_url: str,
                 target_duration: Callable[[], int | None], clock: Callable[[], float] = time.monotonic) -> None:
        self._uploads = uploads
        self._key_for = key_for
        self._base = public_url.rstrip("/")
        self._target = target_duration
        self._clock = clock
        self._shown = VisiblePlaylists()
        self._history: dict[int, deque[tuple[Rendered, frozenset[str]]]] = {}
        self._current: dict[int, Rendered] = {}  # variant -> the VM pathway's version shown here
        self.newest: tuple[str, float] | None = None  # the newest segment's URL here, when it was listed
        uploads.on_settled = self.settled

    # -- the PlaylistSource ------------------------------------------------------------------------

    @property
    def target_duration(self) -> int | None:
        return self._target()

    @property
    def held_requests(self) -> int:
        return self._shown.held_requests

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
        return None  # the multivariant playlist names these; it has no copy of its own here

    def media_playlist(self, variant: int) -> Rendered | None:
        return self._shown.media_playlist(variant)

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
        return await self._shown.wait_for_sequence(variant, sequence, timeout)

    def answer_held(self) -> None:
        self._shown.answer_held()

    def release_waiters(self) -> None:
        self._shown.release_waiters()

    # -- told --------------------------------------------------------------------------------------

    def ahead_shown(self, renderings: Mapping[int, Rendered]) -> None:
        for variant, rendered in renderings.items():
            history = self._history.setdefault(variant, deque(maxlen=HISTORY))
            if history and history[-1][0] is rendered:
                continue
            history.append((rendered, frozenset(self._keys(variant, rendered.body))))
        self._advance()

    def ahead_replaced(self, renderings: Mapping[int, Rendered]) -> None:
        """A restored state's versions: their segments were never told to these uploads, and each is
        looked up in the second bucket before a version lists it (BackupUploads.verify)."""
        self._history.clear()
        self._current.clear()
        self._uploads.verify([key for variant, rendered in renderings.items()
                              for key in self._keys(variant, rendered.body)])
        self.ahead_shown(renderings)

    def settled(self, key: str) -> None:
        self._advance()

    def _advance(self) -> None:
        pending = self._uploads.pending
        shown: dict[int, Rendered] = {}
        for variant, history in self._history.items():
            best = None
            for i in range(len(history) - 1, -1, -1):
                if history[i][1].isdisjoint(pending):  # walks `pending` (a few keys), not the version
                    best = i
                    break
            if best is None:
                continue
            rendered = history[best][0]
            for _ in range(best):  # older versions are never shown again here
                history.popleft()
            if self._current.get(variant) is not rendered:
                self._current[variant] = rendered
                shown[variant] = rendered.replaced(functools.partial(self._replace, variant))
        if shown:
            self._shown.show(shown)

    # -- URIs ----------------------------------------------------------------------------------------

    def _keys(self, variant: int, body: bytes) -> list[str]:
        return [self._key_for(variant, name) for name in _names(body)]

    def _replace(self, variant: int, body: bytes) -> bytes:
        """The VM pathway's version with this bucket's URIs; a segment given up here (its copy gone
        before it landed) an EXT-X-GAP entry, as the first bucket lists an upload that failed for good
        (hls.GAP_TAG: no player asks for its URI, which holds nothing)."""
        lines = body.split(b"\n")
        newest = None
        given_up = self._uploads.given_up_keys
        gaps: list[int] = []  # where a gap tag goes (before the entry's EXTINF)
        extinf, gap = 0, False  # the entry's EXTINF line; it is a gap already (the VM lacked it too)
        for i, line in enumerate(lines):
            if line.startswith(_MAP):
                end = line.index(b'"', len(_MAP))
                lines[i] = _MAP + self._uri(variant, line[len(_MAP):end]) + line[end:]
            elif line.startswith(_EXTINF):
                extinf = i
            elif line == _GAP:
                gap = True
            elif line and not line.startswith(b"#"):
                lines[i] = uri = self._uri(variant, line)
                name = urlsplit(line.decode()).path.rpartition("/")[2]
                if not gap and given_up and self._key_for(variant, name) in given_up:
                    gaps.append(extinf)
                elif not gap:
                    newest = uri  # what the probe fetches: never a gap's URI
                gap = False
        for at in reversed(gaps):
            lines.insert(at, _GAP)
        if newest is not None:
            self.newest = (newest.decode(), self._clock())
        return b"\n".join(lines)

    def _uri(self, variant: int, uri: bytes) -> bytes:
        name = urlsplit(uri.decode()).path.rpartition("/")[2]
        return f"{self._base}/{self._key_for(variant, name)}".encode()


def _names(body: bytes) -> list[str]:
    """The file name of each URI a media playlist lists (segments and EXT-X-MAP)."""
    out = []
    for raw in body.split(b"\n"):
        if raw.startswith(_MAP):
            raw = raw[len(_MAP):raw.index(b'"', len(_MAP))]
        elif not raw or raw.startswith(b"#"):
            continue
        out.append(urlsplit(raw.decode()).path.rpartition("/")[2])
    return out


class AheadPlaylists(VisiblePlaylists):
    """The VM pathway's playlists (publish/release.py's `ahead`), telling the backup each version shown."""

    def __init__(self, backup: BackupPlaylists) -> None:
        super().__init__()
        self._backup = backup

    def show(self, renderings: dict[int, Rendered]) -> None:
        super().show(renderings)
        self._backup.ahead_shown(renderings)

    def replace(self, renderings: dict[int, Rendered]) -> None:
        super().replace(renderings)
        self._backup.ahead_replaced(renderings)


class BackupProbe:
    """The service's own look at the second bucket's public URL (as probe.py's at the first's); and when
    players are steered away from the second bucket, the requests held on its playlists are answered at
    once (as the first bucket's are, probe.py's on_away: a player reads the new priority sooner)."""

    def __init__(self, policy: SteeringPolicy, playlists: BackupPlaylists,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._playlists = playlists
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._probe_now = asyncio.Event()  # set when pages reported failures on it (policy.probe_wanted)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False, headers=PROBE_HEADERS)
        self._tasks = [asyncio.create_task(self._probing(), name="backup-probe"),
                       asyncio.create_task(self._watching(), name="backup-away")]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _watching(self) -> None:
        was = self._policy.first
        while True:
            await asyncio.sleep(EVALUATE_EVERY)
            first = self._policy.first
            if was == hls.BACKUP_PATHWAY and first != was:
                self._playlists.answer_held()
            was = first
            if self._policy.probe_wanted(hls.BACKUP_PATHWAY):
                self._probe_now.set()

    async def _probing(self) -> None:
        assert self._session is not None
        await probe_pathway(self._policy, hls.BACKUP_PATHWAY, lambda: self._playlists.newest, self._session,
                            self._clock, now=self._probe_now)
