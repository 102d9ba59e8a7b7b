"""The viewer page (an hls.js player, built into `viewer/` by scripts/build-viewer) and its config.json,
or a plain index without it.

The page's files are cacheable by a CDN, so the VM sends each version of them about once: the page
(`/`, `/index.html`) is `no-cache` (revalidated by ETag) and names its files by version
(`hls.min.js?v=<hash>`); a file at its versioned URL is immutable for a year; any other URL of it is a
brief `302` to the versioned one (a cache buster costs a few hundred bytes, not the file). The page
carries /config.json's content and asks for its playlist beside its scripts (viewer_page.py).

The page and its embed form (`/embed`) carry the Content-Security-Policy header (page_policy.py; a
`<meta>` policy cannot say FRAME_ANCESTORS). Every file is read and hashed once, when the app is made
(viewer_files.py); a large one is sent by sendfile, at most `max_open` at once (limits.VIEWER_FILES),
each within `write_timeout`.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from ..edge import SERVER_NAME, edge_headers
from ..vm.ranges import none_match
from .common import REVALIDATE, elsewhere, guarded
from .keys import DEFAULT_VARIANT, VIEWER_FILES
from .viewer_files import REDIRECT_CACHE_CONTROL, SMALL, VERSIONED, ViewerFile
from .viewer_page import PAGE


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
    return web.Response(body=request.app[VIEWER_FILES].config, content_type="application/json",
                        headers=edge_headers({hdrs.CACHE_CONTROL: REVALIDATE}))


@guarded
async def viewer_embed(request: web.Request) -> web.StreamResponse:
    return await _file(request, request.app[VIEWER_FILES].embed, page=True)


@guarded
async def viewer_file(request: web.Request) -> web.StreamResponse:
    files = request.app[VIEWER_FILES]
    name = request.match_info.get("file", PAGE)
    if name == PAGE:
        return await _file(request, files.page, page=True)
    found = files.find(name)
    if found is not None and request.query_string != f"v={found.version}":
        raise web.HTTPFound(f"{name}?v={found.version}", headers={hdrs.CACHE_CONTROL: REDIRECT_CACHE_CONTROL})
    return await _file(request, found)


async def _file(request: web.Request, found: ViewerFile | None, page: bool = False) -> web.StreamResponse:
    """A 304, the file, or a large one sent within the write timeout (viewer_files.ViewerFiles.send). The
    page (or its embed form) at any query string: it is small, and names the versions; with its policy,
    304s too: the browser takes the stored page's headers from them."""
    if found is None:
        return await elsewhere(request)
    headers = edge_headers({hdrs.CACHE_CONTROL: REVALIDATE if page else VERSIONED, hdrs.ETAG: found.etag,
                            hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff"})
    if page:
        headers[str(hdrs.CONTENT_SECURITY_POLICY)] = request.app[VIEWER_FILES].policy
    if none_match(request, found.etag):
        return web.Response(status=304, headers=headers)
    if found.content_type is not None:
        headers[hdrs.CONTENT_TYPE] = found.content_type
    if len(found.body) <= SMALL:
        return web.Response(body=found.body, headers=headers)
    return await request.app[VIEWER_FILES].send(request, found, headers)
