"""The viewer page (an hls.js player, built into `viewer/` by scripts/build-viewer) and its config.json,
or a plain index without it.

The page's files are cacheable by a CDN, so the VM sends each version of them about once (issue 18):

- the page (`/`, `/index.html`) names its files with their version, `hls.min.js?v=<hash of its
  content>` (the build writes those names); it is served itself with `no-cache` (revalidated by ETag: a
  304 of a few hundred bytes), any query string ignored, so a new version is seen at once;
- a file at its versioned URL is cacheable for a year and immutable;
- any other URL of a file (no query, a cache buster, an old version) is a `302` to the versioned one,
  cacheable briefly: a cache buster costs the VM a few hundred bytes, not the file.

The page starts as fast as hls.js alone would (issue 42): it carries /config.json's content and asks for
its playlist beside its scripts (viewer_page.py); its module comes combined with the modules it imports
(esbuild, at build time), and names the two it imports later by versioned URL, so none takes that 302.

The page, and its embed form (`/embed`: the video and its controls, nothing else), carry the page's
Content-Security-Policy header (page_policy.py): scripts from this service alone, connections to it, the
bucket and the trackers, and the sites that may frame them (FRAME_ANCESTORS; a `<meta>` policy cannot say
it). The page's own `<meta>` policy stays too, so a copy hosted elsewhere keeps one.

Every file is read and hashed once, when the app is made (viewer_files.py): a request is a lookup. A
large one (hls.min.js, 624 KB) is sent from its file by sendfile while the file is the one read (else
from memory): at most `max_open` at once (the file-handle budget reserves that many, limits.VIEWER_FILES),
each within `write_timeout`, so a client that never reads holds its file no longer than that.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from ..edge import SERVER_NAME, edge_headers
from .common import REVALIDATE, elsewhere, guarded
from .keys import DEFAULT_VARIANT, PAGE_POLICY, VIEWER_CONFIG, VIEWER_FILES
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
    return web.Response(body=request.app[VIEWER_CONFIG], content_type="application/json",
                        headers=edge_headers({hdrs.CACHE_CONTROL: REVALIDATE}))


@guarded
async def viewer_embed(request: web.Request) -> web.StreamResponse:
    found = request.app[VIEWER_FILES].embed()
    if found is None:
        return await elsewhere(request)
    return await _page(request, found)


@guarded
async def viewer_file(request: web.Request) -> web.StreamResponse:
    files = request.app[VIEWER_FILES]
    name = request.match_info.get("file", PAGE)
    if name == PAGE:
        found = files.page()
        if found is None:
            return await elsewhere(request)
        return await _page(request, found)
    found = files.find(name)
    if found is None:
        return await elsewhere(request)
    if request.query_string != f"v={found.version}":
        raise web.HTTPFound(f"{name}?v={found.version}", headers={hdrs.CACHE_CONTROL: REDIRECT_CACHE_CONTROL})
    return await _file(request, found, VERSIONED, {})


async def _page(request: web.Request, found: ViewerFile) -> web.StreamResponse:
    # Any query string ignored: the page is small, and names the versions. 304s carry the policy too:
    # the browser takes the stored page's headers from them.
    policy = {str(hdrs.CONTENT_SECURITY_POLICY): request.app[PAGE_POLICY]}
    return await _file(request, found, REVALIDATE, policy)


async def _file(request: web.Request, found: ViewerFile, cache_control: str,
                extra: dict[str, str]) -> web.StreamResponse:
    response = _small(request, found, cache_control, extra)
    if response is not None:
        return response
    return await request.app[VIEWER_FILES].send(request, found, _headers(found, cache_control, extra))


def _headers(found: ViewerFile, cache_control: str, extra: dict[str, str]) -> dict[str, str]:
    headers = edge_headers({hdrs.CACHE_CONTROL: cache_control, hdrs.ETAG: found.etag,
                            hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff", **extra})
    if found.content_type is not None:
        headers[hdrs.CONTENT_TYPE] = found.content_type
    return headers


def _small(request: web.Request, found: ViewerFile, cache_control: str,
           extra: dict[str, str]) -> web.Response | None:
    """A 304, or the file; None when it is large (sent within the write timeout instead)."""
    headers = _headers(found, cache_control, extra)
    if request.if_none_match and any(tag.value in (found.version, "*") for tag in request.if_none_match):
        headers.pop(hdrs.CONTENT_TYPE, None)
        return web.Response(status=304, headers=headers)
    if len(found.body) <= SMALL:
        return web.Response(body=found.body, headers=headers)
    return None
