"""The viewer page (an hls.js player in `viewer/`) and its config.json, or a plain index without it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import hdrs, web

from .common import REVALIDATE, SERVER_NAME, edge_headers, elsewhere, guarded
from .keys import DEFAULT_VARIANT, VIEWER_CONFIG, VIEWER_DIR

# The viewer's files: plain, visible names directly inside viewer_dir (no folders, "..", dotfiles).
_VIEWER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# mimetypes reads the host's tables; these are the types browsers insist on for a page and its scripts.
_VIEWER_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
}


@guarded
async def index_text(request: web.Request) -> web.Response:
    default = request.app[DEFAULT_VARIANT]
    text = (
        f"{SERVER_NAME}\n\n"
        f"/live/playlist.m3u8       media playlist of variant {default}\n"
        "/live/{n}/playlist.m3u8   media playlist of variant n\n"
        "/live/master.m3u8         multivariant playlist\n"
    )
    return web.Response(text=text, headers=edge_headers({hdrs.CACHE_CONTROL: REVALIDATE}))


@guarded
async def viewer_config(request: web.Request) -> web.Response:
    return web.Response(body=request.app[VIEWER_CONFIG], content_type="application/json",
                        headers=edge_headers({hdrs.CACHE_CONTROL: REVALIDATE}))


@guarded
async def viewer_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("file", "index.html")
    path = await asyncio.to_thread(_find_viewer_file, request.app[VIEWER_DIR], name)
    if path is None:
        return await elsewhere(request)
    headers = edge_headers({hdrs.CACHE_CONTROL: REVALIDATE, hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff"})
    content_type = _VIEWER_TYPES.get(path.suffix.lower())
    if content_type is not None:
        headers[hdrs.CONTENT_TYPE] = content_type
    return web.FileResponse(path, headers=headers)


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
