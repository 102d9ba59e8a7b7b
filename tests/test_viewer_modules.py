"""The viewer's page and modules as the service serves them (issue 42): what the page needs to start
comes with it or beside it, and no module it reaches takes a redirect. Through the real app (aiohttp's
test client), on the shipped viewer/ and on copies of it changed the ways a developer would."""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient

from broadcaster.http import ViewerOptions, create_app
from broadcaster.metrics import Metrics
from tests.support.client import Client
from tests.support.fakes import FakeHealth, FakePlaylists

VIEWER = Path(__file__).resolve().parent.parent / "viewer"
# A module's relative imports as served: from './x.js?v=...', import('./x.js?v=...'), import './x.js'.
IMPORTED = re.compile(r"""\b(?:from|import)\s*\(?\s*(["'])\./([^"']+)\1""")
STATIC = re.compile(r"""^\s*import\b[^;('"]*?(?:from\s*)?(["'])\./[^"']+\1""", re.M)


async def client_for(aiohttp_client: AiohttpClient, viewer: Path, **options: Any) -> Client:
    app = create_app(FakePlaylists(6, 2), FakeHealth(), Metrics(),
                     viewer_options=ViewerOptions(viewer, **options))
    return await aiohttp_client(app, auto_decompress=False)


async def fetch(client: Client, path: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with client.get(path, allow_redirects=False) as r:
        return r.status, CIMultiDict(r.headers), await r.read()


async def text(client: Client, path: str) -> str:
    status, _, body = await fetch(client, path)
    assert status == 200, path
    return body.decode()


def page_parts(page: str) -> tuple[dict[str, str], list[str], list[str], dict[str, Any]]:
    """(script src by name, modulepreload hrefs, other preload hrefs, the config in the page)."""
    scripts = {name: url for url, name in re.findall(r'<script src="(([^"?]+)\?[^"]*)"', page)}
    modules = re.findall(r'<link rel="modulepreload" href="([^"]+)">', page)
    preloads = re.findall(r'<link rel="preload" href="([^"]+)" as="fetch" crossorigin="anonymous">', page)
    meta = re.search(r'<meta name="viewer-config" content="([^"]*)">', page)
    assert meta is not None, page
    return scripts, modules, preloads, json.loads(html.unescape(meta.group(1)))


async def crawl(client: Client, urls: list[str]) -> dict[str, str]:
    """Every module reached from `urls` by the imports as served: {url: body}. Each answers 200 at the URL
    named (a redirect fails here), at the version its content has."""
    seen: dict[str, str] = {}
    todo = list(urls)
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        status, headers, raw = await fetch(client, "/" + url)
        assert status == 200, f"{url}: {status} {headers.get('Location', '')}"
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable", url
        assert url.endswith(f"?v={hashlib.sha256(raw).hexdigest()[:16]}"), url
        body = raw.decode("utf-8", "replace")
        seen[url] = body
        todo += [m.group(2) for m in IMPORTED.finditer(body)]
    return seen


async def test_the_page_starts_with_its_config_one_module_and_no_redirect(
        aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, VIEWER, viewer_timeout=30.0)
    page = await text(client, "/")
    scripts, modules, preloads, config = page_parts(page)
    # config.json's content comes with the page: the player needs no request to know where to play from.
    assert config == json.loads(await text(client, "/config.json"))
    # ...and the playlist it names is asked for beside the page's scripts.
    assert preloads == ["live/master.m3u8"]
    # viewer.js comes combined with every module it imports statically: nothing else is preloaded, and
    # what it imports (dynamically: watching.js) is named by a versioned URL that answers at once.
    assert modules == []
    reached = await crawl(client, [scripts["viewer.js"]])
    viewer = reached[scripts["viewer.js"]]
    assert STATIC.search(viewer) is None, STATIC.search(viewer)
    for module in ("player.js", "stats.js", "status.js", "controls.js"):
        assert f"// -- {module} --" in viewer
    assert {url.split("?")[0] for url in reached} == {
        "viewer.js", "watching.js", "p2p.js", "p2p-trust.js", "p2p-media-loader-hlsjs.es.min.js",
        "p2p-media-loader-core.es.min.js"}
    # Without P2P the page names nothing of it; /embed is the same page.
    assert "p2p" not in page
    assert await text(client, "/embed") == page.replace("<html", '<html class="embed"', 1)


async def test_with_p2p_the_page_asks_for_its_engine_beside_its_scripts(
        aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, VIEWER, p2p_trackers=("wss://t.example.com",), p2p_swarm="s",
                              p2p_stun=())
    page = await text(client, "/")
    scripts, modules, _, config = page_parts(page)
    assert config["p2p"]["trackers"] == ["wss://t.example.com"]
    assert [m.split("?")[0] for m in modules] == [
        "p2p.js", "p2p-media-loader-hlsjs.es.min.js", "p2p-trust.js", "p2p-media-loader-core.es.min.js"]
    # The preloads are the very URLs the modules import (a browser keys modules by URL), and answer at once.
    reached = await crawl(client, [scripts["viewer.js"]])
    assert set(modules) <= set(reached)


async def test_a_changed_module_changes_every_url_that_leads_to_it(aiohttp_client: AiohttpClient,
                                                                   tmp_path: Path) -> None:
    viewer = tmp_path / "viewer"
    shutil.copytree(VIEWER, viewer)
    client = await client_for(aiohttp_client, viewer)
    before, _, _, _ = page_parts(await text(client, "/"))
    old = await crawl(client, [before["viewer.js"]])
    # stats.js is inside viewer.js as served; p2p-trust.js is two imports away from it (p2p.js).
    for name in ("stats.js", "p2p-trust.js"):
        path = viewer / name
        path.write_text(path.read_text() + f"\n// changed {name}\n")
        os.utime(path, ns=(1, 1))
    after, _, _, _ = page_parts(await text(client, "/"))
    assert after["viewer.js"] != before["viewer.js"] and after["hls.min.js"] == before["hls.min.js"]
    new = await crawl(client, [after["viewer.js"]])
    assert "// changed stats.js" in new[after["viewer.js"]]
    changed = {url.split("?")[0] for url in set(new) - set(old)}
    assert changed == {"viewer.js", "p2p.js", "p2p-trust.js"}  # watching.js and P2P Media Loader's: the same
    # The old URL of the old viewer.js now leads to the new one.
    status, headers, _ = await fetch(client, "/" + before["viewer.js"])
    assert status == 302 and headers["Location"] == after["viewer.js"]


@pytest.mark.parametrize(("change", "why"), [
    # A module outside the combined one imports one inside it: combined, it would run twice.
    ("watching.js", "watching.js imports stats.js, which would then run twice"),
    # A module inside uses what the combination does not take.
    ("status.js", "status.js: export default"),
])
async def test_modules_it_cannot_combine_are_served_one_by_one_without_redirect(
        aiohttp_client: AiohttpClient, tmp_path: Path, caplog: pytest.LogCaptureFixture, change: str,
        why: str) -> None:
    viewer = tmp_path / "viewer"
    shutil.copytree(VIEWER, viewer)
    path = viewer / change
    if change == "watching.js":
        path.write_text("import { formatBytes } from './stats.js';\n" + path.read_text())
    else:
        path.write_text(path.read_text() + "\nexport default 1;\n")
    caplog.set_level(logging.WARNING)
    client = await client_for(aiohttp_client, viewer)
    page = await text(client, "/")
    scripts, modules, _, _ = page_parts(page)
    reached = await crawl(client, [scripts["viewer.js"]])
    viewer_js = reached[scripts["viewer.js"]]
    assert STATIC.search(viewer_js) is not None and "// -- player.js --" not in viewer_js
    # Each module it imports is preloaded at the URL it imports: asked for at once, beside viewer.js.
    imported = [m.group(2) for m in IMPORTED.finditer(viewer_js) if not m.group(0).startswith("import(")]
    static = re.findall(r"^import .* from '\./[\w.-]+\.js';$", (VIEWER / "viewer.js").read_text(), re.M)
    assert set(imported) <= set(modules) and len(set(imported)) == len(static)
    assert set(modules) <= set(reached)
    warnings = [r.getMessage() for r in caplog.records if "not combined" in r.getMessage()]
    assert len(warnings) == 1 and why in warnings[0], warnings
