"""Owncast's file writer receiver (fileWriterReceiverService.go): the small HTTP server ffmpeg PUTs
every segment and playlist to, which writes each body in place under its final name."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from aiohttp import web

from broadcaster.demo.late_tails import LateTails
from broadcaster.demo.ledger import Ledger
from broadcaster.demo.owncast_files import copy_in_place, copy_late_tail

log = logging.getLogger("broadcaster.demo.emulator")


def resolve_inside(root: Path, relative: str) -> Path | None:
    """Return root/relative, or None if it would land outside root (or on root itself)."""
    parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root.resolve()):  # symlinks pointing out
        return None
    return target


class PutReceiver:
    """Serves PUT and DELETE into hls_dir on 127.0.0.1 and owns a temp folder beside hls_dir (Owncast's
    data/tmp, on the same file system so a move into hls_dir is a rename). write_delay > 0: each body
    is written in 8 pieces with this pause before each (readers reliably catch half-written files).
    ledger: each file written is recorded there once closed. late_tails: media segments' last bytes
    are written only after the playlist naming them (issue 39's race, on every segment; write_delay
    then applies to the other files only)."""

    def __init__(self, hls_dir: Path, write_delay: float = 0.0, *, ledger: Ledger | None = None,
                 late_tails: LateTails | None = None) -> None:
        self.hls_dir = hls_dir
        self.write_delay = write_delay
        self.ledger = ledger
        self._late_tails = late_tails
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.tmp_dir: Path | None = None

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.hls_dir.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=".owncast-emulator-tmp-", dir=self.hls_dir.parent))
        log.debug("PUT receiver listening on 127.0.0.1:%d", self.port)

    @property
    def late_tails(self) -> LateTails | None:
        return self._late_tails

    @late_tails.setter
    def late_tails(self, tails: LateTails | None) -> None:
        if self._late_tails is not None and self._late_tails is not tails:
            self._late_tails.release_all()  # nothing held by the old one outlives the change
        self._late_tails = tails

    async def close(self) -> None:
        if self._late_tails is not None:
            self._late_tails.release_all()  # every held file finished before the handlers are let go
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.tmp_dir = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        target = resolve_inside(self.hls_dir, request.match_info["path"])
        if target is None:
            log.warning("refused %s %s: outside %s", request.method, request.path, self.hls_dir)
            return web.Response(status=403, text="path outside the HLS folder\n")
        if request.method == "PUT":
            try:
                size = await self._write(target, request)
            except OSError as exc:
                log.warning("could not write %s: %s", target, exc)
                return web.Response(status=500, text=f"{exc}\n")
            log.debug("PUT %s: %d bytes", request.path, size)
            return web.Response()
        if request.method == "DELETE":
            # ffmpeg sends DELETE only with -hls_flags delete_segments, which Owncast does not use.
            target.unlink(missing_ok=True)
            return web.Response(status=204)
        return web.Response(status=400, text="Bad Request\n")

    async def _write(self, target: Path, request: web.Request) -> int:
        tails = self._late_tails
        if tails is not None and tails.applies(target):
            return await copy_late_tail(target, request.content.iter_any(), lambda: tails.hold(target),
                                        share=tails.share, ledger=self.ledger)
        size = await copy_in_place(target, request.content.iter_any(), delay=self.write_delay,
                                   ledger=self.ledger)
        if tails is not None and target.suffix == ".m3u8":
            # Read back as just closed (nothing awaited since): the segments it names may be finished.
            tails.playlist_written(target, target.read_text(errors="replace"))
        return size
