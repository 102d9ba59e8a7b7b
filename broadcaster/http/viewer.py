"""The viewer page (built into `viewer/` by scripts/build-viewer) and its files, or a plain index without
it. Read and hashed once: the page is `no-cache` and names its files by version, immutable for a year at
that URL (any other URL of one: a brief 302 there); large files go by sendfile, `max_open` at once."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import html
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import ETag
from aiohttp.typedefs import Handler

from ..edge import SERVER_NAME, edge_headers, unavailable
from ..vm.ranges import none_match
from .common import REVALIDATE, elsewhere, guarded

log = logging.getLogger(__name__)

# The viewer's files: plain, visible names directly inside viewer_dir (no folders, "..", dotfiles).
_VIEWER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# mimetypes reads the host's tables; these are the types browsers insist on for a page and its scripts.
VIEWER_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".json": "application/json", ".map": "application/json", ".svg": "image/svg+xml"}
VERSIONED = "public, max-age=31536000, immutable"  # a versioned URL's content never changes
# A redirect to the versioned URL: short, since the version changes when the file does.
REDIRECT_CACHE_CONTROL = "public, max-age=60"
SMALL = 64 * 1024  # answers up to this size are left to aiohttp; larger ones are sent within write_timeout
OPEN_WAIT = 10.0  # seconds a request may wait for one of the max_open large sends, then 503
BUSY_RETRY_AFTER = "2"
# The embed form is the page with class="embed" on its <html>: viewer.css then shows the video alone.
_HTML_TAG = re.compile(rb"<html\b", re.IGNORECASE)
PAGE = "index.html"
_CONFIG_META = '<meta name="viewer-config" content="">'
# The page's own words, as viewer/src/index.html has them: replaced by the settings' when they are set.
DEFAULT_TITLE = "Live stream"
_TITLE = f"<title>{DEFAULT_TITLE}</title>"
_HEADING = f'<h1 id="title">{DEFAULT_TITLE}</h1>'
_DESCRIPTION = '<p id="description" class="description" hidden></p>'
# Modules viewer.js imports before its player starts when config.json has the key.
PRELOAD_WHEN = {"p2p": "p2p.min.js"}
# A file the built page names by version: src="x?v=<16 hex digits>" or href="x?v=...".
_VERSIONED = re.compile(r"""\b(?:src|href)=(["'])([A-Za-z0-9][A-Za-z0-9_.-]{0,199})\?v=([0-9a-f]{16})\1""")
# A file a built module imports by version (viewer/src/build.mjs): import("./x?v=<16 hex digits>").
_IMPORTED = re.compile(r"""\bimport\(\s*(["'])\./([A-Za-z0-9][A-Za-z0-9_.-]{0,199})\?v=([0-9a-f]{16})\1""")


@dataclasses.dataclass(frozen=True)
class Words:
    """The stream's title and description as the page shows them ("": the page's own)."""

    title: str = ""
    description: str = ""


class Config:
    """/config.json's content, as the page is given it."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {}
        parsed = parsed if isinstance(parsed, dict) else {}
        src = parsed.get("src")
        # A private stream's page asks for the playlist with its token: a preload would be refused.
        self.playlist = src if isinstance(src, str) and not parsed.get("private") else ""
        self.preload = tuple(PRELOAD_WHEN[key] for key in sorted(parsed.keys() & PRELOAD_WHEN.keys()))


def versions_named(text: str, module: bool = False) -> dict[str, str]:
    """The files the page names by version, or those a built `module` imports: {name: version}."""
    return {m.group(2): m.group(3) for m in (_IMPORTED if module else _VERSIONED).finditer(text)}


def render(text: str, config: Config, words: Words, modules: Sequence[tuple[str, str]]) -> str:
    """The page: config.json in its meta, the stream's words, the preloads (`modules`: (name, version))."""
    if config.body:
        # Attribute-escaped JSON: data, never run (the page's policy allows no inline script).
        meta = f'<meta name="viewer-config" content="{html.escape(config.body.decode(), quote=True)}">'
        text = text.replace(_CONFIG_META, meta, 1)
    if words.title:
        title = html.escape(words.title, quote=False)
        text = text.replace(_TITLE, f"<title>{title}</title>", 1)
        text = text.replace(_HEADING, f'<h1 id="title">{title}</h1>', 1)
    if words.description:
        text = text.replace(_DESCRIPTION, '<p id="description" class="description">'
                            f"{html.escape(words.description, quote=False)}</p>", 1)
    links = "".join(f'  <link rel="modulepreload" href="{name}?v={version}">\n' for name, version in modules)
    if config.playlist:
        # crossorigin: hls.js asks in CORS mode, and a preload serves only a request of its own mode.
        href = html.escape(config.playlist)
        links += f'  <link rel="preload" href="{href}" as="fetch" crossorigin="anonymous">\n'
    return text.replace("</head>", links + "</head>", 1) if links else text


def stale(named: Mapping[str, str], versions: Mapping[str, str]) -> list[str]:
    """The files named at a version they do not have (scripts/build-viewer was not run)."""
    return sorted(name for name, version in named.items() if versions.get(name) != version)


def index_text(default: int) -> Handler:
    """/ without a viewer: the playlists' paths, as text."""
    text = (f"{SERVER_NAME}\n\n"
            f"/live/playlist.m3u8       media playlist of variant {default}\n"
            "/live/{n}/playlist.m3u8   media playlist of variant n\n"
            "/live/master.m3u8         multivariant playlist\n")

    @guarded
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=text, headers=edge_headers({hdrs.CACHE_CONTROL: REVALIDATE}))

    return index


_StatKey = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class ViewerFile:
    name: str
    version: str  # a hash of the content: the `v` of its versioned URL, and its ETag
    body: bytes
    path: Path | None = None  # where it was read from (None: made in memory, the page)
    stat: _StatKey | None = None  # that file's (mtime, size, inode) when it was read

    def unchanged_path(self) -> Path | None:
        """The file it was read from, while it still holds these bytes (by stat); else None."""
        if self.path is None:
            return None
        try:
            return self.path if _stat_key(self.path) == self.stat else None
        except OSError:
            return None

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    @property
    def content_type(self) -> str | None:
        return VIEWER_TYPES.get(Path(self.name).suffix.lower())


def _file(name: str, body: bytes, path: Path | None = None, stat: _StatKey | None = None) -> ViewerFile:
    return ViewerFile(name, hashlib.sha256(body).hexdigest()[:16], body, path, stat)


def _stat_key(path: Path) -> _StatKey:
    st = path.stat()
    return st.st_mtime_ns, st.st_size, st.st_ino


class ViewerFiles:
    """The viewer's routes and files, read once: the page (py), its embed form, the rest."""

    def __init__(self, root: Path, *, max_open: int, write_timeout: float,
                 on_write_timeout: Callable[[], None] | None = None, config: bytes = b"",
                 words: Words = Words(), policy: str = "") -> None:
        """Blocking (reads every file of root)."""
        self.config = config
        self.policy = policy
        self.write_timeout = write_timeout
        self.on_write_timeout = on_write_timeout
        self._open = asyncio.Semaphore(max_open)  # large sends at once: each holds a slow client's buffer
        self._files = _read_folder(root)
        self.page: ViewerFile | None = None  # index.html as served (py)
        self.embed: ViewerFile | None = None  # its embed form (/embed)
        raw = self._files.pop(PAGE, None)
        if raw is None:
            return
        text = raw.body.decode("utf-8", "replace")
        versions = {name: found.version for name, found in self._files.items()}
        _check_versions(root, text, self._files, versions)
        config_read = Config(config)
        preload = [(name, versions[name]) for name in config_read.preload if name in versions]
        body = render(text, config_read, words, preload).encode()
        self.page = _file(PAGE, body)
        self.embed = _file(PAGE, _HTML_TAG.sub(b'<html class="embed"', body, count=1))

    async def config_json(self, request: web.Request) -> web.Response:
        return web.Response(body=self.config, content_type="application/json",
                            headers=edge_headers({hdrs.CACHE_CONTROL: REVALIDATE}))

    async def embed_page(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, self.embed, page=True)

    async def file(self, request: web.Request) -> web.StreamResponse:
        """The page (at / and /index.html), or another file: at its versioned URL, else a redirect there."""
        name = request.match_info.get("file", PAGE)
        if name == PAGE:
            return await self._answer(request, self.page, page=True)
        found = self._files.get(name)
        if found is not None and request.query_string != f"v={found.version}":
            raise web.HTTPFound(f"{name}?v={found.version}", headers={hdrs.CACHE_CONTROL: REDIRECT_CACHE_CONTROL})
        return await self._answer(request, found)

    async def _answer(self, request: web.Request, found: ViewerFile | None,
                      page: bool = False) -> web.StreamResponse:
        """A 304, the file, or a large one (`_send`); the page's policy on 304s too (a browser keeps it)."""
        if found is None:
            return await elsewhere(request)
        headers = edge_headers({hdrs.CACHE_CONTROL: REVALIDATE if page else VERSIONED, hdrs.ETAG: found.etag,
                                hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff"})
        if page:
            headers[str(hdrs.CONTENT_SECURITY_POLICY)] = self.policy
        if none_match(request, found.etag):
            return web.Response(status=304, headers=headers)
        if found.content_type is not None:
            headers[hdrs.CONTENT_TYPE] = found.content_type
        if len(found.body) <= SMALL:
            return web.Response(body=found.body, headers=headers)
        return await self._send(request, found, headers)

    async def _send(self, request: web.Request, found: ViewerFile,
                    headers: dict[str, str]) -> web.StreamResponse:
        """A large answer, within one of the max_open slots and write_timeout (blocking for one stat)."""
        try:
            async with asyncio.timeout(OPEN_WAIT):
                await self._open.acquire()
        except TimeoutError:
            return unavailable("busy, try again shortly\n", BUSY_RETRY_AFTER)
        try:
            path = found.unchanged_path()
            response: web.StreamResponse
            if path is not None:
                response = _SentFile(path, found.version, headers)
            else:
                response = web.StreamResponse(headers=headers)
                response.content_length = len(found.body)
            try:
                async with asyncio.timeout(self.write_timeout):
                    await response.prepare(request)
                    if path is None:
                        await response.write(found.body)
                    await response.write_eof()
            except ConnectionError as err:  # the client left halfway
                log.debug("viewer file client went away: %r", err)
            except TimeoutError:
                log.debug("a client took over %.0f s to accept %s; dropped", self.write_timeout, found.name)
                if self.on_write_timeout is not None:
                    self.on_write_timeout()
                if request.transport is not None:
                    request.transport.abort()  # or aiohttp's own final write would wait on it too
            return response
        finally:
            self._open.release()


class _SentFile(web.FileResponse):
    """A FileResponse sent within the handler (not again after it), its ETag the file's version."""

    def __init__(self, path: Path, version: str, headers: dict[str, str]) -> None:
        self._version = version
        super().__init__(path, headers=headers)

    @property
    def etag(self) -> ETag | None:
        return super().etag

    @etag.setter
    def etag(self, value: ETag | str | None) -> None:
        self.headers[hdrs.ETAG] = f'"{self._version}"'

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        return await super().prepare(request)


def _check_versions(root: Path, page: str, files: dict[str, ViewerFile], versions: dict[str, str]) -> None:
    """Warns of a built file naming another at a version it does not have (edited by hand?)."""
    named = [(PAGE, versions_named(page))]
    named += [(name, versions_named(f.body.decode("utf-8", "replace"), module=True))
              for name, f in sorted(files.items()) if name.endswith(".js")]
    wrong = [f"{namer} names {name} at v={listed[name]}, the file is v={versions.get(name, 'missing')}"
             for namer, listed in named for name in stale(listed, versions)]
    if wrong:
        log.warning("viewer: %s: not the files scripts/build-viewer wrote (edited by hand?): %s; build them "
                    "again (scripts/build-viewer) or reinstall", root, "; ".join(wrong))


def _read_folder(root: Path) -> dict[str, ViewerFile]:
    """Every plain, visible file directly inside root (after symlinks that stay inside it), by name."""
    files: dict[str, ViewerFile] = {}
    try:
        entries = sorted(root.iterdir())
    except OSError as err:
        raise ValueError(f"viewer folder {root} cannot be listed: {err.strerror or err}") from None
    for entry in entries:
        path = _viewer_file(root, entry.name)
        if path is None:
            continue
        try:
            stat = _stat_key(path)
            files[entry.name] = _file(entry.name, path.read_bytes(), path, stat)
        except OSError as err:
            log.warning("viewer: cannot read %s (%s); it is not served", entry, err.strerror or err)
    return files


def _viewer_file(root: Path, name: str) -> Path | None:
    """The file `name` directly inside `root` (resolved), after symlinks; None for anything else."""
    if not _VIEWER_NAME.fullmatch(name):
        return None
    try:
        path = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return None
    # A symlink may point elsewhere inside root, but not out of it, into a folder or at a dotfile.
    return path if path.parent == root and _VIEWER_NAME.fullmatch(path.name) and path.is_file() else None
