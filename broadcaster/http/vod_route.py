"""A private stream's clips and recordings (kept off the bucket: clips/kept.py), served at the bucket's
layout below /live/, each route behind the gate like every other door: a stranger learns nothing, not
even whether a clip exists."""

from __future__ import annotations

import functools

from aiohttp import hdrs, web

from ..clips.book import CLIP_ID
from ..clips.served import ServedVod
from ..edge import edge_headers
from ..playlist import hls
from .answers import accepts_gzip
from .common import elsewhere, guarded
from .gate import Gate

# A recording's run as the recorder names its playlists (recorder._SAFE: anything else became "_").
RUN = r"[A-Za-z0-9_-]{1,200}"
VARIANT = r"[0-9]{1,4}"
# `private`: gated (a cache keying by path would hand it to anyone); no-cache: a later window's tokens.
CACHE_CONTROL = "private, no-cache"


async def _answer(served: ServedVod, layout: str, request: web.Request) -> web.StreamResponse:
    """One kept playlist: `layout`, its path (clips/served.py), with the request's `{id}`, `{run}`, `{n}`."""
    info = request.match_info
    relative = layout.format(id=info.get("id"), run=info.get("run"), n=int(info.get("n", 0)))
    answer = await served.playlist(relative, media="{n}" in layout)
    if answer is None:  # none kept (a clip deleted): as any path nothing serves
        return await elsewhere(request)
    headers = edge_headers({hdrs.CACHE_CONTROL: CACHE_CONTROL, hdrs.VARY: hdrs.ACCEPT_ENCODING})
    body = answer.body
    if answer.gzipped is not None and accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, "")):
        headers[hdrs.CONTENT_ENCODING] = "gzip"
        body = answer.gzipped
    return web.Response(body=body, content_type=hls.PLAYLIST_CONTENT_TYPE, headers=headers)


def add_vod_routes(app: web.Application, served: ServedVod, gate: Gate) -> None:
    """The routes, each behind `gate` (the multivariant playlists' URIs carry the viewer's token)."""
    clip, n, run = f"/live/clips/{{id:{CLIP_ID.pattern}}}", f"{{n:{VARIANT}}}", f"{{run:{RUN}}}"
    for path, relative, door in (
            (f"{clip}/{hls.MASTER_PLAYLIST_NAME}", f"clips/{{id}}/{hls.MASTER_PLAYLIST_NAME}", gate.master),
            (f"{clip}/{n}/{hls.MEDIA_PLAYLIST_NAME}", f"clips/{{id}}/{{n}}/{hls.MEDIA_PLAYLIST_NAME}",
             gate.playlist),
            (f"/live/recording-{run}.m3u8", "recording-{run}.m3u8", gate.master),
            (f"/live/{n}/recording-{run}.m3u8", "{n}/recording-{run}.m3u8", gate.playlist)):
        # guarded inside the gate: a bug answers one line and a 500 to a viewer let in, never a stranger.
        app.router.add_get(path, door(guarded(functools.partial(_answer, served, relative))))
