"""The viewer's files, as the viewer handlers (viewer.py) answer them: see there for the rules."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from . import viewer_page
from .common import unavailable
from .viewer_modules import ServedModules, ViewerModules
from .viewer_page import PAGE

log = logging.getLogger(__name__)

# The viewer's files: plain, visible names directly inside viewer_dir (no folders, "..", dotfiles).
_VIEWER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# mimetypes reads the host's tables; these are the types browsers insist on for a page and its scripts.
VIEWER_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
}
VERSIONED = "public, max-age=31536000, immutable"  # a versioned URL's content never changes
# A redirect to the versioned URL: short, since the version changes when the file does.
REDIRECT_CACHE_CONTROL = "public, max-age=60"
SMALL = 64 * 1024  # files up to this size are answered from memory
OPEN_WAIT = 10.0  # seconds a request may wait for one of the max_open file sends, then 503
BUSY_RETRY_AFTER = "2"
# The embed form is the page with class="embed" on its <html>: viewer.css then shows the video alone.
_HTML_TAG = re.compile(rb"<html\b", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class ViewerFile:
    path: Path
    version: str  # a hash of the content: the `v` of its versioned URL, and its ETag
    body: bytes | None  # the content, when it is small (and the page, rewritten); else sent from the file

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


_StatKey = tuple[int, int, int]


class ViewerFiles:
    """The files of viewer_dir by name, each read and hashed once per change (by mtime, size, inode), as
    served: the page (viewer_page.py) and its modules (viewer_modules.py) rewritten, the rest as they are."""

    def __init__(self, root: Path, *, max_open: int, write_timeout: float,
                 on_write_timeout: Callable[[], None] | None = None, config: bytes = b"") -> None:
        """config: /config.json's content, which the page carries (empty: the page fetches it)."""
        self.root = root
        self.config = viewer_page.Config(config)
        self.modules = ViewerModules(self._find_file)  # the page's ES modules as served
        self.write_timeout = write_timeout
        self.on_write_timeout = on_write_timeout
        self.max_open = max_open
        self._open = asyncio.Semaphore(max_open)  # file sends at once: each holds the file's handle
        self._known: dict[str, tuple[_StatKey, ViewerFile]] = {}
        self._entries: tuple[str, tuple[str, ...]] | None = None  # (the page's version, its module scripts)
        self._page: tuple[tuple[object, ...], ViewerFile] | None = None
        self._embed: tuple[str, ViewerFile] | None = None  # (the page's version, its embed form)

    def find(self, name: str) -> ViewerFile | None:
        """The file `name` directly inside root (resolved), after symlinks, as served (a module of the
        page's as viewer_modules.py serves it); None for anything else. Blocking (stat, and a read when
        it changed): run it in a thread."""
        found = self._find_file(name)
        if found is None or not self._may_be_module(name):
            return found
        return self._served(self._modules(), name) or found

    def _may_be_module(self, name: str) -> bool:
        # Only a file of the module graph last seen, or any .js before one was: a client can know a
        # module's served version only from a graph made since it last changed.
        last = self.modules.last()
        return name.endswith((".js", ".mjs")) and (last is None or name in last.files)

    @staticmethod
    def _served(modules: ServedModules, name: str) -> ViewerFile | None:
        served = modules.files.get(name)
        return None if served is None else ViewerFile(served.path, served.version, served.body)

    def _modules(self) -> ServedModules:
        raw = self._find_file(PAGE)
        if raw is None:
            return self.modules.served(())
        if self._entries is None or self._entries[0] != raw.version:
            text = _text(raw)
            self._entries = (raw.version, viewer_page.module_entries(text or ""))
        return self.modules.served(self._entries[1])

    def _find_file(self, name: str) -> ViewerFile | None:
        """The file as it is on disk, read and hashed once per change."""
        path = _find_viewer_file(self.root, name)
        if path is None:
            return None
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            known = self._known.get(name)
            if known is not None and known[0] == key:
                return known[1]
            content = path.read_bytes()
        except OSError:
            return None
        found = ViewerFile(path, hashlib.sha256(content).hexdigest()[:16], content if len(content) <= SMALL else None)
        self._known[name] = (key, found)
        return found

    def page(self) -> ViewerFile | None:
        """index.html as served (viewer_page.py): its files by their versioned URLs, config.json in it,
        its preloads. Blocking, like find()."""
        raw = self._find_file(PAGE)
        text = None if raw is None else _text(raw)
        if raw is None or text is None:
            return None
        modules = self._modules()
        names = viewer_page.referenced(text)
        files = {name: self._served(modules, name) or self._find_file(name) for name in names}
        versions = {name: f.version for name, f in files.items() if f is not None}
        preload = [(name, modules.files[name].version) for name in self._preloads(modules, names)]
        key = (raw.version, *sorted(versions.items()), *preload)
        if self._page is not None and self._page[0] == key:
            return self._page[1]
        body = viewer_page.render(text, versions, self.config, preload).encode()
        page = ViewerFile(raw.path, hashlib.sha256(body).hexdigest()[:16], body)
        self._page = (key, page)
        return page

    def _preloads(self, modules: ServedModules, named: list[str]) -> list[str]:
        """The modules the page asks for beside its own files: those its module scripts import (when
        not combined into them), and those config.json turns on before the player starts."""
        wanted: list[str] = []
        for name in named:
            wanted += modules.preload(name)
        for name in self.config.preload:
            if name in modules.files:
                wanted += [name, *modules.preload(name)]
        return [name for name in dict.fromkeys(wanted) if name not in named]

    def embed(self) -> ViewerFile | None:
        """The page's embed form (/embed): the same page, marked so its stylesheet shows the video alone.
        Blocking, like find()."""
        page = self.page()
        if page is None or page.body is None:
            return None
        if self._embed is not None and self._embed[0] == page.version:
            return self._embed[1]
        body = _HTML_TAG.sub(b'<html class="embed"', page.body, count=1)
        embed = ViewerFile(page.path, hashlib.sha256(body).hexdigest()[:16], body)
        self._embed = (page.version, embed)
        return embed

    async def send(self, request: web.Request, found: ViewerFile, headers: dict[str, str]) -> web.StreamResponse:
        """A large file from disk, within one of the max_open slots and write_timeout."""
        try:
            async with asyncio.timeout(OPEN_WAIT):
                await self._open.acquire()
        except TimeoutError:
            return unavailable("busy, try again shortly\n", BUSY_RETRY_AFTER)
        try:
            response = _SentFile(found.path, headers=headers)
            try:
                async with asyncio.timeout(self.write_timeout):
                    await response.prepare(request)
                    await response.write_eof()
            except ConnectionError as err:  # the client left halfway
                log.debug("viewer file client went away: %r", err)
            except TimeoutError:
                log.debug("a client took over %.0f s to accept %s; dropped", self.write_timeout, found.path.name)
                if self.on_write_timeout is not None:
                    self.on_write_timeout()
                if request.transport is not None:
                    request.transport.abort()  # or aiohttp's own final write would wait on it too
            return response
        finally:
            self._open.release()


class _SentFile(web.FileResponse):
    """A FileResponse sent within the handler (under its write timeout): aiohttp's own prepare after
    the handler returns must not send it a second time."""

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        return await super().prepare(request)


def _text(found: ViewerFile) -> str | None:
    try:
        return (found.body if found.body is not None else found.path.read_bytes()).decode("utf-8", "replace")
    except OSError:
        return None


def _find_viewer_file(root: Path, name: str) -> Path | None:
    """The file `name` directly inside `root` (resolved), after symlinks; None for anything else."""
    if not _VIEWER_NAME.fullmatch(name):
        return None
    try:
        path = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return None
    # A symlink may point elsewhere inside root, but not out of it, into a folder or at a dotfile.
    if path.parent != root or not _VIEWER_NAME.fullmatch(path.name) or not path.is_file():
        return None
    return path
