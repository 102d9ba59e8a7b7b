"""The operator's control socket: making, listing and deleting clips.

Served on a Unix socket in STATE_DIR (control.sock, mode 0600), never on HOST:PORT: the tunnel and
anyone who can reach the public port cannot reach it, and only the user the service runs as (or
root) can connect. `hls-broadcaster clip` is its client.

  POST   /clips        {"last": 30} or {"from": <Unix s>, "to": <Unix s>}  -> 201 the clip
  GET    /clips        -> 200 {"clips": [...]}
  DELETE /clips/{id}   -> 200 the clip deleted
Errors answer {"error": "<one line>"} with 400 (what was asked cannot be made), 404 (no such clip),
503 (the bucket did not take it in time) or 500 (STATE_DIR refused the list).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from ..clips.book import CLIP_ID, ClipBook, ClipError

log = logging.getLogger(__name__)

# In a folder of its own, mode 0700, made before the socket is bound: no moment where others could
# connect. AF_UNIX paths are at most 107 bytes.
SOCKET_FOLDER = "control"
SOCKET_NAME = "control.sock"
MAX_SOCKET_PATH = 107
# The bucket takes a clip's few playlists in well under a second; past this it is down (see /health).
MAKE_TIMEOUT = 30.0
BOOK: web.AppKey[ClipBook] = web.AppKey("clip_book", ClipBook)


def _error(status: int, why: str) -> web.Response:
    return web.json_response({"error": why}, status=status)


def _seconds(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ClipError(f"{name!r} must be a number of seconds")
    return float(value)


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
    return web.json_response({
        "clips": [c.describe() for c in book.clips()],
        "window": None if span is None else {"start": span[0], "end": span[1]},
    })


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



def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_FOLDER / SOCKET_NAME


def prepare_socket(state_dir: Path) -> Path:
    """The socket's private folder made (0700) and a stale socket from an earlier run removed: the
    service holds STATE_DIR's lock, so no other service listens there. Raises OSError, or ValueError
    when the path is too long for a Unix socket."""
    path = socket_path(state_dir)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ValueError(f"{path} is longer than {MAX_SOCKET_PATH} bytes, the limit of a Unix socket's path")
    path.parent.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path.parent, 0o700)
    path.unlink(missing_ok=True)
    return path
