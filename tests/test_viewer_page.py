"""The viewer's page and files as the service serves them: what it needs to start comes with it, no file
takes a redirect, and the built files are served as they are, read once."""

from __future__ import annotations

import hashlib
import html
import json
import logging
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
# A module's dynamic imports as built: import("./x.js?v=...").
IMPORTED = re.compile(r"""\bimport\(\s*(["'])\./([^"']+)\1\s*\)""")


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
    """(script and stylesheet URL by name, modulepreload hrefs, other preload hrefs, the config in the page)."""
    files = {name: url for url, name in re.findall(r'(?:src|href)="(([^"?]+)\?v=[^"]*)"', page)}
    modules = re.findall(r'<link rel="modulepreload" href="([^"]+)">', page)
    preloads = re.findall(r'<link rel="preload" href="([^"]+)" as="fetch" crossorigin="anonymous">', page)
    meta = re.search(r'<meta name="viewer-config" content="([^"]*)">', page)
    assert meta is not None, page
    return files, modules, preloads, json.loads(html.unescape(meta.group(1)))


async def crawl(client: Client, urls: list[str]) -> dict[str, bytes]:
    """Every file reached from `urls` by imports: {url: body}, each 200 at its version, cacheable for good."""
    seen: dict[str, bytes] = {}
    todo = list(urls)
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        status, headers, raw = await fetch(client, "/" + url)
        assert status == 200, f"{url}: {status} {headers.get('Location', '')}"
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable", url
        assert url.endswith(f"?v={hashlib.sha256(raw).hexdigest()[:16]}"), url
        assert headers["ETag"] == f'"{url.rsplit("=", 1)[1]}"'
        seen[url] = raw
        if url.split("?")[0].endswith(".js"):
            todo += [m.group(2) for m in IMPORTED.finditer(raw.decode("utf-8", "replace"))]
    return seen


async def test_the_page_starts_with_its_config_one_module_and_no_redirect(
        aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, VIEWER, viewer_timeout=30.0)
    page = await text(client, "/")
    files, modules, preloads, config = page_parts(page)
    # config.json's content comes with the page: the player needs no request to know where to play from.
    assert config == json.loads(await text(client, "/config.json"))
    # ...and the playlist it names is asked for beside the page's scripts.
    assert preloads == ["live/master.m3u8"]
    # viewer.js is one file, every module it imports statically inside it: nothing else is preloaded,
    # and what it imports later (watching.js; p2p.js with P2P on) is named by a versioned URL.
    assert sorted(files) == ["hls.min.js", "viewer.min.css", "viewer.min.js"] and modules == []
    reached = await crawl(client, list(files.values()))
    assert {url.split("?")[0] for url in reached} == {"hls.min.js", "viewer.min.css", "viewer.min.js",
                                                      "watching.min.js", "p2p.min.js"}
    # Without P2P the page names nothing of it; /embed is the same page.
    assert "p2p.min.js" not in page
    assert await text(client, "/embed") == page.replace("<html", '<html class="embed"', 1)


async def test_with_p2p_the_page_asks_for_its_engine_beside_its_scripts(
        aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, VIEWER, p2p_trackers=("wss://t.example.com",), p2p_swarm="s",
                              p2p_stun=())
    page = await text(client, "/")
    files, modules, _, config = page_parts(page)
    assert config["p2p"]["trackers"] == ["wss://t.example.com"]
    assert [m.split("?")[0] for m in modules] == ["p2p.min.js"]
    # The preload is the very URL viewer.js imports (a browser keys modules by URL), and answers at once.
    reached = await crawl(client, [files["viewer.min.js"]])
    assert set(modules) <= set(reached)


async def test_a_private_streams_page_preloads_no_playlist(aiohttp_client: AiohttpClient) -> None:
    """Before it has a token (a preload would go without one)."""
    client = await client_for(aiohttp_client, VIEWER, private=True)
    _, _, preloads, config = page_parts(await text(client, "/"))
    assert config["private"] is True and preloads == []


async def test_a_request_reads_no_file(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    """Every file is read when the app is made: with the folder gone, every answer is the same."""
    viewer = tmp_path / "viewer"
    shutil.copytree(VIEWER, viewer, ignore=shutil.ignore_patterns("src"))
    client = await client_for(aiohttp_client, viewer, p2p_trackers=("wss://t.example.com",), p2p_swarm="s",
                              p2p_stun=())
    page = await text(client, "/?x=1")
    files, modules, _, _ = page_parts(page)
    before = await crawl(client, [*files.values(), *modules])
    shutil.rmtree(viewer)
    assert await text(client, "/?x=2") == page and await text(client, "/embed?x=3") != ""
    assert await crawl(client, [*files.values(), *modules]) == before
    status, headers, _ = await fetch(client, "/viewer.min.js?x=4")
    assert status == 302 and headers["Location"] == files["viewer.min.js"]


async def test_a_page_not_built_from_its_files_is_named_in_the_log(
        aiohttp_client: AiohttpClient, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The page still plays (its stale URL redirected), and the log says what to run."""
    viewer = tmp_path / "viewer"
    shutil.copytree(VIEWER, viewer, ignore=shutil.ignore_patterns("src"))
    (viewer / "viewer.min.js").write_bytes((viewer / "viewer.min.js").read_bytes() + b"\n// edited\n")
    caplog.set_level(logging.WARNING)
    client = await client_for(aiohttp_client, viewer)
    files, _, _, _ = page_parts(await text(client, "/"))
    status, headers, _ = await fetch(client, "/" + files["viewer.min.js"])
    assert status == 302 and headers["Location"] != files["viewer.min.js"]
    warnings = [r.getMessage() for r in caplog.records if "scripts/build-viewer" in r.getMessage()]
    assert len(warnings) == 1 and "viewer.min.js" in warnings[0] and "viewer.min.css" not in warnings[0], warnings


@pytest.mark.parametrize("name", ["watching.min.js", "p2p.min.js"])
async def test_a_module_named_only_inside_viewer_min_js_edited_by_hand_is_named_at_start(
        aiohttp_client: AiohttpClient, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str) -> None:
    """In one line, with its recorded hash and its own."""
    viewer = tmp_path / "viewer"
    shutil.copytree(VIEWER, viewer, ignore=shutil.ignore_patterns("src"))
    caplog.set_level(logging.WARNING)
    await client_for(aiohttp_client, viewer)
    assert not [r for r in caplog.records if "viewer" in r.getMessage()], caplog.records  # as built: silent
    (viewer / name).write_bytes((viewer / name).read_bytes() + b"\n// edited\n")
    recorded = re.search(rf"\./{re.escape(name)}\?v=([0-9a-f]{{16}})", (viewer / "viewer.min.js").read_text())
    assert recorded is not None
    now = hashlib.sha256((viewer / name).read_bytes()).hexdigest()[:16]
    await client_for(aiohttp_client, viewer)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"viewer: {viewer}: not the files scripts/build-viewer wrote (edited by hand?): viewer.min.js "
                        f"names {name} at v={recorded[1]}, the file is v={now}; build them again "
                        "(scripts/build-viewer) or reinstall"], warnings


@pytest.mark.parametrize(("title", "description"), [
    ("Friday <b>jazz</b> & \"friends\"", "Live from the <cellar>, every week"),
    ("", ""),
])
async def test_the_stream_s_words_come_from_the_settings_escaped(
        aiohttp_client: AiohttpClient, title: str, description: str) -> None:
    client = await client_for(aiohttp_client, VIEWER, title=title, description=description)
    page = await text(client, "/")
    shown = html.escape(title, quote=False) if title else "Live stream"
    assert f"<title>{shown}</title>" in page and f'<h1 id="title">{shown}</h1>' in page
    if description:
        assert f'<p id="description" class="description">{html.escape(description, quote=False)}</p>' in page
    else:
        assert '<p id="description" class="description" hidden></p>' in page
    assert "<b>" not in page and "<cellar>" not in page
    # The embed form carries them too (its stylesheet hides the heading).
    assert f"<title>{shown}</title>" in await text(client, "/embed")
    assert "details" not in json.loads(await text(client, "/config.json"))


@pytest.mark.parametrize(("title", "description", "details"), [
    ("", "", {"title": True, "description": True}),
    ("Mine", "", {"title": False, "description": True}),
    ("Mine", "Also mine", None),
])
async def test_with_owncast_the_words_no_setting_gives_come_from_its_config(
        aiohttp_client: AiohttpClient, title: str, description: str, details: dict[str, bool] | None) -> None:
    client = await client_for(aiohttp_client, VIEWER, owncast_url="https://owncast.example", title=title,
                              description=description)
    config = json.loads(await text(client, "/config.json"))
    if details is None:
        assert "details" not in config
    else:
        assert config["details"] == {"url": "https://owncast.example/api/config", **details}
