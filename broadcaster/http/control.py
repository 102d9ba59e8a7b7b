"""The operator's control socket (`hls-broadcaster clip`): making, listing and deleting clips. A Unix
socket in STATE_DIR, never on HOST:PORT, that only the service's user (or root) can connect to.

  POST   /clips        {"last": 30} or {"from": <Unix s>, "to": <Unix s>}  -> 201 the clip
  GET    /clips        -> 200 {"clips": [...]}
  DELETE /clips/{id}   -> 200 the clip deleted
Errors answer {"error": "<one line>"} with 400 (what was asked cannot be made), 404 (no such clip),
503 (the bucket did not take it in time) or 500 (STATE_DIR refused the list)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from ..clips.book import CLIP_ID, LATEST, SOCKET_NAME, ClipBook, ClipError, socket_path
from ..files import NOT_FOLLOWED_ERRNOS

log = logging.getLogger(__name__)

MAX_SOCKET_PATH = 107  # AF_UNIX's limit
# The bucket takes a clip's few playlists in well under a second; past this it is down (see /health).
MAKE_TIMEOUT = 30.0
BOOK: web.AppKey[ClipBook] = web.AppKey("clip_book", ClipBook)


def _error(status: int, why: str) -> web.Response:
    return web.json_response({"error": why}, status=status)


def _seconds(body: dict[str, Any], name: str) -> float | None:
    """A number of seconds as JSON gave it (the book checks its range); a huge integer is one too."""
    value = body.get(name)
    if value is None:
        return None
    if type(value) not in (int, float):
        raise ClipError(f"{name!r} must be a number of seconds, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond any float
        seconds = math.inf
    if not 0 <= seconds <= LATEST:  # NaN too
        raise ClipError(f"{name!r} must be a number of seconds from 0 to {LATEST:.0f} (9999-12-31)")
    return seconds


async def make_clip(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        return _error(400, 'expected a JSON object: {"last": 30} or {"from": <Unix s>, "to": <Unix s>}')
    try:
        last, start, end = _seconds(body, "last"), _seconds(body, "from"), _seconds(body, "to")
        async with asyncio.timeout(MAKE_TIMEOUT):
            clip = await request.app[BOOK].make(last=last, start=start, end=end)
    except ClipError as err:
        return _error(400, str(err))
    except TimeoutError:
        return _error(503, f"the bucket did not take the clip's playlists within {MAKE_TIMEOUT:.0f}s (see /health)")
    except OSError as err:
        return _error(500, f"cannot save the list of clips in STATE_DIR: {err.strerror or err}")
    return web.json_response(clip.describe(), status=201)


async def list_clips(request: web.Request) -> web.Response:
    book = request.app[BOOK]
    span = book.span()
    return web.json_response({"clips": [c.describe() for c in book.clips()],
                              "window": None if span is None else {"start": span[0], "end": span[1]}})


async def delete_clip(request: web.Request) -> web.Response:
    clip_id = request.match_info["id"]
    if not CLIP_ID.fullmatch(clip_id):
        return _error(404, f"no clip {clip_id!r}")
    try:
        clip = await request.app[BOOK].delete(clip_id)
    except KeyError:
        return _error(404, f"no clip {clip_id!r}")
    except ClipError as err:
        return _error(503, str(err))
    except OSError as err:
        return _error(500, f"cannot save the list of clips in STATE_DIR: {err.strerror or err}")
    return web.json_response(clip.describe())


def create_control_app(book: ClipBook) -> web.Application:
    app = web.Application(client_max_size=4096)
    app[BOOK] = book
    app.router.add_post("/clips", make_clip)
    app.router.add_get("/clips", list_clips)
    app.router.add_delete("/clips/{id}", delete_clip)
    return app


def prepare_socket(state_dir: Path) -> Path:
    """The socket's private folder made (0700, before the socket is bound), no symlink and the service
    user's own, and a stale socket removed. Raises OSError, or ValueError (one line) for a folder refused."""
    path = socket_path(state_dir)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ValueError(f"{path} is longer than {MAX_SOCKET_PATH} bytes, the limit of a Unix socket's path")
    folder = path.parent
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        if err.errno in NOT_FOLLOWED_ERRNOS:
            raise ValueError(f"{folder} is not a folder but a symlink or a file: remove it, the service makes "
                             "its own") from None
        raise
    try:
        owner, user = os.fstat(fd).st_uid, os.geteuid()
        if owner != user:
            raise ValueError(f"{folder} belongs to uid {owner}, not to the service's user (uid {user}): "
                             "remove it, the service makes its own")
        os.fchmod(fd, 0o700)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(SOCKET_NAME, dir_fd=fd)
    finally:
        os.close(fd)
    return path
