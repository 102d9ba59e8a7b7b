"""The deployment files parse and agree with the code: unit, pm2, tunnel, alerts, CORS, env, hls.js."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import re2
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from dotenv import dotenv_values

from broadcaster.http.route_docs import ROUTE_DOCS
from broadcaster.playlist import hls
from broadcaster.publish.uploads import init_section_name
from broadcaster.settings import SETTINGS, load_settings, lookalike_keys
from broadcaster.settings.buckets import bucket_rows
from tests.support.metrics import exported_series
from tests.support.prometheus import alert_rules, tool
from tests.support.restart_rules import pm2_app, unit_sections
from tests.support.strict_yaml import StrictLoader, strict_yaml
from tests.support.tunnel import (OWNCAST, OWNCAST_HOST, OWNCAST_PLAYLISTS, SERVICE, TRACKER, TRACKER_HOST, go_search,
                                  route, tunnel_rules)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
VIEWER = ROOT / "viewer"
UNIT = DEPLOY / "hls-broadcaster.service"
EXEC_START = "/opt/hls-broadcaster/venv/bin/hls-broadcaster"
DRAIN_SECONDS = 5  # Service.stop()'s default drain timeout


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, **kwargs)


# -- systemd -------------------------------------------------------------------------------------


def test_unit_file_has_the_required_settings() -> None:
    unit = unit_sections(UNIT)
    assert set(unit) == {"Unit", "Service", "Install"}
    svc = {key: values[-1] for key, values in unit["Service"].items()}  # the last assignment wins
    # The service reads its env file itself, as check and pm2 do (no EnvironmentFile=: one reader).
    assert svc["ExecStart"] == f"{EXEC_START} --env-file /etc/hls-broadcaster/env run"
    assert "EnvironmentFile" not in svc and not any(v.startswith("STATE_DIR=") for v in unit["Service"]["Environment"])
    # The env file's STATE_DIR is the folder systemd makes and opens for writing.
    state_dir = dotenv_values(DEPLOY / "env.example")["STATE_DIR"]
    assert svc["StateDirectory"] == "hls-broadcaster" and state_dir == "/var/lib/hls-broadcaster"
    assert svc["ReadWritePaths"] == state_dir
    assert "2" in svc["RestartPreventExitStatus"].split()  # a set-up mistake: no restart loop
    assert svc["User"] == "hls-broadcaster" or svc.get("DynamicUser") == "yes"
    assert svc["Restart"] == "on-failure" and float(svc["RestartSec"]) > 0
    assert float(svc["TimeoutStopSec"]) >= 2 * DRAIN_SECONDS  # the drain, then the rest of the stop
    hardening = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "CAP_LEASE", "AmbientCapabilities": "CAP_LEASE", "RestrictNamespaces": "yes",
    }  # fmt: skip
    assert {key: svc.get(key) for key in hardening} == hardening
    assert svc["ProtectHome"] in ("read-only", "yes", "tmpfs") or "ReadOnlyPaths" in svc
    assert set(svc["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert unit["Service"]["SystemCallFilter"][0] == "@system-service"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


UNITS = sorted(DEPLOY.rglob("*.service"))


def test_every_unit_is_found() -> None:
    assert [p.relative_to(DEPLOY).as_posix() for p in UNITS] == [
        "hls-broadcaster.service", "tracker/hls-broadcaster-tracker.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_every_unit_passes_systemd_analyze_verify(unit: Path) -> None:
    result = run(["systemd-analyze", "verify", str(unit)])
    # What the unit runs is not installed on this machine (the venv, or Node.js where it is missing);
    # anything else (unknown keys, bad values, a bad section) is a bug.
    not_installed = re.compile(r"Command (/opt/hls-broadcaster/\S+|/usr/bin/node) is not executable")
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line and not not_installed.search(line)]
    assert problems == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_file_sandbox_scores_well() -> None:
    result = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)])
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    if found is None:
        pytest.skip(f"this systemd-analyze cannot score unit files offline: {result.stderr.strip()[:200]}")
    assert float(found.group(1)) <= 2.5  # systemd's scale: 0 (locked down) to 10 (exposed)


# -- pm2 -----------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_pm2_file_loads_and_runs_the_console_script(tmp_path: Path) -> None:
    app = pm2_app(DEPLOY / "ecosystem.config.js", {"HLS_BROADCASTER_HOME": str(tmp_path)})  # its one app
    assert app["name"] == "hls-broadcaster"
    assert app["script"] == str(tmp_path / "venv" / "bin" / "hls-broadcaster")
    assert app["interpreter"] == "none"
    assert app["args"] == ["--env-file", "/etc/hls-broadcaster/env", "run"]
    assert app["autorestart"] is True and app["instances"] == 1
    assert app["kill_timeout"] >= 2 * DRAIN_SECONDS * 1000
    assert 2 in app["stop_exit_codes"]  # a bad setting: no restart loop
    assert app["out_file"] and app["error_file"]


# -- YAML as yaml.v3 reads it -----------------------------------------------------------------------


def tracked(*patterns: str) -> list[Path]:
    """The repository's files matching the patterns, as git tracks them (every file a user copies)."""
    done = run(["git", "ls-files", "-z", "--", *patterns], cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return sorted(ROOT / name for name in done.stdout.split("\0") if name)


YAML_FILES = tracked("*.yml", "*.yaml", "*.yml.example", "*.yaml.example")


def test_the_strict_loader_refuses_a_key_defined_twice_as_yaml_v3_does() -> None:
    twice = "tunnel: the playlists point at the bucket\n# a comment\ntunnel: x0\ningress: []\n"
    with pytest.raises(yaml.constructor.ConstructorError, match="'tunnel' already defined at line 1"):
        yaml.load(twice, Loader=StrictLoader)  # noqa: S506
    assert yaml.safe_load(twice)["tunnel"] == "x0"  # what PyYAML alone makes of it: no error
    nested = "a:\n  b: 1\n  b: 2\n"
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.load(nested, Loader=StrictLoader)  # noqa: S506


def test_every_yaml_file_is_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in YAML_FILES}
    assert {"cloudflared.yml.example", "deploy/alerts.yml", "deploy/alerts.test.yml", "deploy/prometheus.yml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_yaml_file_loads_without_a_key_defined_twice(path: Path) -> None:
    assert strict_yaml(path) is not None


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.json")), ids=lambda p: p.name)
def test_every_json_file_loads_without_a_key_defined_twice(path: Path) -> None:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        assert len(keys) == len(set(keys)), f"{path.name}: a key defined twice among {keys}"
        return dict(pairs)

    json.loads(path.read_text(), object_pairs_hook=unique)


# -- cloudflared ---------------------------------------------------------------------------------
# The rules and cloudflared's routing of a request are in tests/support/tunnel.py (test_backup_settings uses them too).


def test_go_search_has_re2s_meaning_not_pythons() -> None:
    assert go_search("^/a$", "/a") and not go_search("^/a$", "/a\n") and re.search("^/a$", "/a\n")
    assert not go_search(r"^\d$", "٣") and re.search(r"^\d$", "٣")  # Go's \d is [0-9]


def test_every_path_rule_compiles_as_re2() -> None:
    for rule in tunnel_rules():
        if "path" in rule:
            re2.compile(rule["path"])  # raises on what Go's regexp refuses (lookaround, backreferences)


def test_tunnel_ends_with_a_catch_all_404_and_every_other_rule_is_narrow() -> None:
    rules = tunnel_rules()
    assert rules[-1] == {"service": "http_status:404"}
    for rule in rules[:-1]:
        assert rule.get("hostname"), f"a rule for every hostname exposes its paths on all of them: {rule}"
        if rule["hostname"] == OWNCAST_HOST:
            continue  # layout B: checked on its own below
        if rule["hostname"] == TRACKER_HOST:
            assert rule == {"hostname": TRACKER_HOST, "service": TRACKER}  # a hostname of its own, all of it
            continue
        assert rule["service"] == SERVICE and rule["hostname"] and rule["path"].startswith("^"), rule
        assert rule["path"].endswith("$") or rule["path"] == "^/$", rule


def test_same_hostname_layout_is_the_playlist_rule_then_owncast() -> None:
    rules = [rule for rule in tunnel_rules() if rule.get("hostname") == OWNCAST_HOST]
    assert [rule.get("path") for rule in rules] == [OWNCAST_PLAYLISTS, rules[1]["path"], None], rules
    assert [rule["service"] for rule in rules] == [SERVICE, SERVICE, OWNCAST], rules  # content steering second
    assert rules[1]["path"].startswith("^/(hls/") and rules[1]["path"].endswith("$"), rules[1]
    # In this order, and after every rule of the other layout: nothing else decides for this hostname.
    everything = tunnel_rules()
    at = [everything.index(rule) for rule in rules]
    assert at == [len(everything) - 4, len(everything) - 3, len(everything) - 2], at


LAYOUTS = {"A": "live.example.com", "B": OWNCAST_HOST}
# Where each layout's players find the multivariant playlist, and what its variants' playlists are named.
MASTERS = {"A": ("/live/master.m3u8", "playlist.m3u8"), "B": ("/hls/stream.m3u8", "stream.m3u8")}


def player_paths(layout: str) -> list[str]:
    """Every path the service's playlists send a player to through the tunnel in `layout` (content
    steering and a second bucket on), from the rules that name them (broadcaster/playlist/hls.py)."""
    master, media = MASTERS[layout]
    relative = [hls.variant_uri(3, media), hls.STEERING_MANIFEST_NAME,
                *(f"{folder}/{hls.variant_uri(3, media)}" for folder in (hls.VM_FOLDER, hls.BACKUP_PATHWAY))]
    segment = "stream-_mN9yQ90a-41.m4s"
    absolute = [hls.vm_segment_uri(3, hls.object_key("live", 3, segment)),
                hls.vm_segment_uri(3, hls.object_key("live", 3, init_section_name(segment, "init_3.mp4", 1))),
                hls.vm_segment_uri(12, hls.object_key("live", 12, "stream-abc-1234.ts"))]
    return [master, *(urljoin(master, uri) for uri in relative), *absolute]


@pytest.mark.parametrize("layout", ["A", "B"])
def test_every_path_the_service_names_for_players_reaches_it_in_its_layout(layout: str) -> None:
    paths = player_paths(layout)
    assert len(paths) == 8 and all(p.startswith("/") for p in paths), paths
    wrong = [f"{path}: {route(path, LAYOUTS[layout])}" for path in paths if route(path, LAYOUTS[layout]) != SERVICE]
    assert wrong == [], f"layout {layout}: paths the service names for players that the tunnel does not pass"
    documented = {path for paths_, a, b, _why in documented_routes() for path in paths_
                  if (a if layout == "A" else b) == "service"}
    forms = [form for form, a, b in documented_forms() if (a if layout == "A" else b) == "service"]
    missing = [p for p in paths if p not in documented and not any(form.fullmatch(p) for form in forms)]
    assert missing == [], f"layout {layout}: not in docs/production.md's table: {missing}"


@pytest.mark.parametrize("shortid", ["_mN9yQ90a", "-mN9yQ90a", "amN9yQ90a"])
def test_an_init_section_the_vm_lists_reaches_the_service(shortid: str) -> None:
    """Every name the VM's pathway lists passes the tunnel's rule and nginx-cache.conf's: a segment and its
    init section as the uploads name it, whatever Owncast's shortid begins with ('_' and '-' too)."""
    conf = (ROOT / "deploy" / "nginx-cache.conf").read_text()
    location = re.search(r"location ~ (\^/\(live\|hls\)/vm/\S+) \{", conf)
    assert location is not None
    segment = f"stream-{shortid}-0.m4s"
    for name in (segment, init_section_name(segment, "init_0.mp4", 1)):
        path = hls.vm_segment_uri(0, name)
        assert route(path) == SERVICE and route(path, host=OWNCAST_HOST) == SERVICE, path  # both layouts' VM lists
        assert re.search(location[1], path), path


def owncast_playlist_path(path: str) -> bool:
    """What the rule must match, written without a regular expression."""
    if not path.startswith("/hls/") or not path.endswith("stream.m3u8"):
        return False
    middle = path.removeprefix("/hls/").removesuffix("stream.m3u8")
    return middle == "" or (middle.endswith("/") and middle[:-1].isascii() and middle[:-1].isdigit())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["", "/", "/hls/", "/hls/1/", "/hls/stream.m3u8"]),
       st.lists(st.sampled_from(["/", "hls", "stream", ".", "m3u8", "0", "7", "x", "\n", "-", "ts", "٣"]),
                max_size=6).map("".join),
       st.sampled_from(["", "stream.m3u8", "/stream.m3u8", "/"]))
def test_the_playlist_rule_matches_exactly_owncasts_playlist_paths(head: str, middle: str, tail: str) -> None:
    path = head + middle + tail
    assert go_search(OWNCAST_PLAYLISTS, path) == owncast_playlist_path(path), path


A = "live.example.com"
NOT_THE_SERVICE = "anything but the service"


@pytest.mark.parametrize(("host", "path", "expected"), [
    *((A, path, SERVICE) for path in [
        "/live/master.m3u8", "/live/playlist.m3u8", "/live/0/playlist.m3u8", "/live/12/playlist.m3u8", "/",
        "/index.html", "/hls.min.js", "/viewer.min.js", "/viewer.min.css", "/config.json", "/health", "/live/events",
        "/watching.min.js", "/p2p.min.js"]),
    *((A, path, "http_status:404") for path in [
        "/metrics", "/metrics/", "/live/../metrics", "/live/", "/live/0/segment.ts", "/VENDOR.md",
        "/index.html/../metrics", "/healthz", "/state"]),
    ("other.example.com", "/live/master.m3u8", "http_status:404"),
    # The tracker's hostname goes to the tracker alone (a playlist's path too: the tracker's own 404).
    *((TRACKER_HOST, path, TRACKER) for path in ["/", "/announce", "/live/master.m3u8"]),
    # Each layout's steering rule passes its own paths only (the rule without a hostname would pass both
    # layouts' on every hostname), and narrowly.
    *((host, path, NOT_THE_SERVICE) for host, path in [
        (A, "/hls/steering.json"), (A, "/hls/vm/1/stream.m3u8"), (A, "/live/vm/0/stream.m3u8"),
        (OWNCAST_HOST, "/live/steering.json"), (OWNCAST_HOST, "/live/vm/0/playlist.m3u8"),
        (OWNCAST_HOST, "/hls/vm/0/stream-abc-12.ts"), (OWNCAST_HOST, "/live/backup/0/playlist.m3u8"),
        (A, "/live/vm/0/../../metrics"), (A, "/live/vm/0/a.ts/x"), (A, "/live/vm/x/a.ts"),
        (A, "/live/steering.json.bak"), (A, "/hls/vm/0/.a.ts"), (A, "/live/vm/0/a.m3u8%0A")]),
    # A leading zero or a huge number reaches the service, which answers 404 (tests/test_owncast_paths.py).
    *((OWNCAST_HOST, path, SERVICE) for path in [
        "/hls/stream.m3u8", "/hls/0/stream.m3u8", "/hls/1/stream.m3u8", "/hls/12/stream.m3u8",
        "/hls/00/stream.m3u8", "/hls/" + "9" * 30 + "/stream.m3u8"]),
    # The same hostname sends everything else to Owncast, never /metrics to the service.
    *((OWNCAST_HOST, path, OWNCAST) for path in [
        "/", "/index.html", "/api/status", "/api/chat", "/ws", "/embed/video", "/hls/", "/hls/0/",
        "/hls/0/stream-1700000000.ts", "/hls/0/playlist.m3u8", "/hls/stream.m3u8/", "/hls/stream.m3u8x",
        "/hls/streamXm3u8", "/hls/0/streamXm3u8", "/hls//stream.m3u8", "/hls/-1/stream.m3u8", "/hls/x/stream.m3u8",
        "/hls/0/1/stream.m3u8", "/x/hls/stream.m3u8", "/hls/stream.m3u8\n", "/HLS/stream.m3u8",
        "/live/master.m3u8", "/live/0/playlist.m3u8", "/health", "/metrics", "/metrics/", "/hls/../metrics"]),
])
def test_the_tunnel_sends_each_path_where_it_belongs(host: str, path: str, expected: str) -> None:
    got = route(path, host=host)
    assert got != SERVICE if expected == NOT_THE_SERVICE else got == expected, got


# -- the routes docs/production.md names ----------------------------------------------------------------

ROUTE_WORDS = {"service": SERVICE, "Owncast": OWNCAST, "404": "http_status:404"}


def _table_rows() -> list[tuple[list[str], str, str, str]]:
    """docs/production.md's path table: (the paths cell's backticks, layout A, layout B, why) per row."""
    text = (ROOT / "docs" / "production.md").read_text()
    section = text[text.index("## The tunnel and its routes"):]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1] in ROUTE_WORDS and cells[2] in ROUTE_WORDS:
            named = [p.replace("\\n", "\n") for p in re.findall(r"`([^`]+)`", cells[0])]
            rows.append((named, cells[1], cells[2], cells[3]))
    return rows


def documented_routes() -> list[tuple[list[str], str, str, str]]:
    """The table's example paths (every named path that is not a form), layouts and why, per row."""
    return [([p for p in named if "<" not in p], a, b, why) for named, a, b, why in _table_rows()]


# What a form's placeholders stand for: a variant's number; a segment's or init section's file name.
_PLACEHOLDERS = {"<n>": "[0-9]+", "<segment>": r"[^/]+\.(ts|m4s|mp4|aac)", "<id>": "[0-9]{8}-[0-9]{6}-[0-9a-f]{4}",
                 "<run>": "[A-Za-z0-9_-]+"}


def documented_forms() -> list[tuple[re.Pattern[str], str, str]]:
    """The table's path forms (/live/<n>/playlist.m3u8) as patterns, and the layouts of their row."""
    found = []
    for named, a, b, _why in _table_rows():
        for form in (p for p in named if "<" in p):
            pattern = re.escape(form)
            for placeholder, meaning in _PLACEHOLDERS.items():
                pattern = pattern.replace(re.escape(placeholder), meaning)
            assert "<" not in pattern.replace("\\<", ""), f"a placeholder the test does not know: {form}"
            found.append((re.compile(pattern), a, b))
    return found


def test_the_docs_route_table_is_found() -> None:
    rows = documented_routes()
    assert len(rows) >= 8 and sum(len(paths) for paths, _a, _b, _w in rows) >= 30, rows
    assert len(documented_forms()) >= 7
    assert all(why for _p, _a, _b, why in rows), "every row says why its paths are public, or that they are not"


@pytest.mark.parametrize("layout", ["A", "B"])
def test_every_path_a_rule_sends_to_the_service_is_one_the_docs_name(layout: str) -> None:
    """The tunnel exposes exactly what the table says: the paths each rule to the service matches (made
    by hypothesis from the rule's own expression) each fit a form or an example the table says reaches
    the service in that layout; and the table's examples are routed as it says (the test below)."""
    host = LAYOUTS[layout]
    rules = [rule for rule in tunnel_rules() if rule.get("hostname") == host and rule["service"] == SERVICE]
    assert rules, layout
    named = {p for paths, a, b, _w in documented_routes() for p in paths if (a if layout == "A" else b) == "service"}
    forms = [form for form, a, b in documented_forms() if (a if layout == "A" else b) == "service"]

    @settings(max_examples=150, deadline=None)
    @given(st.sampled_from(rules).flatmap(lambda rule: st.from_regex(rule["path"], fullmatch=True)))
    def each(path: str) -> None:
        if route(path, host) != SERVICE:  # an earlier rule sends it elsewhere; it is not this rule's to expose
            return
        assert path in named or any(form.fullmatch(path) for form in forms), \
            f"layout {layout}: {path!r} reaches the service, and docs/production.md's table does not say so"

    each()


@pytest.mark.parametrize(("layout", "host"), [("A", "live.example.com"), ("B", OWNCAST_HOST)])
def test_every_path_the_docs_name_goes_where_they_say(layout: str, host: str) -> None:
    wrong = []
    for paths, a, b, _why in documented_routes():
        expected = ROUTE_WORDS[a if layout == "A" else b]
        wrong += [f"{path!r}: {route(path, host)} (the docs say {expected})" for path in paths
                  if route(path, host) != expected]
    assert wrong == [], f"layout {layout} in cloudflared.yml.example against docs/production.md:\n" + "\n".join(wrong)


def test_the_docs_route_table_names_every_route_the_service_has() -> None:
    """broadcaster/http/route_docs.py has an entry per route of the app (tests/test_docs_site.py checks
    both ways); each one must be in the table, with {n} as 0, a viewer file for /{file}, and a row for
    anything else (/{tail})."""
    rows = documented_routes()
    named = {path for paths, _a, _b, _w in rows for path in paths}
    missing = []
    for key in ROUTE_DOCS:
        path = key.split()[-1]
        if path == "/{file}":
            if not any((VIEWER / p.lstrip("/")).is_file() and p not in ("/", "/index.html") for p in named):
                missing.append(path)
        elif path == "/{tail}":
            if not any("anything else" in " ".join(paths) or "/state" in paths for paths, _a, _b, _w in rows):
                missing.append(path)
        elif "{" in path.replace("{n}", "0"):  # e.g. /{folder}/vm/{n}/{file}: a path of its form
            form = re.escape(path).replace(r"\{n\}", "[0-9]+").replace(r"\{folder\}", "(live|hls)")
            form = form.replace(r"\{id\}", "[^/]+").replace(r"\{run\}", "[^/]+")
            if not any(re.fullmatch(form.replace(r"\{file\}", "[^/]+"), p) for p in named):
                missing.append(path)
        elif path.replace("{n}", "0") not in named:
            missing.append(path)
    assert missing == [], f"routes of the service docs/production.md's table leaves out: {missing}"


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.files: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") if tag == "script" else values.get("href") if tag == "link" else None
        if tag == "script" and url is None:
            self.inline.append("<script> without src")
        if "style" in values or any(name.startswith("on") for name in values):
            self.inline.append(f"<{tag}> with an inline style or handler")
        if tag == "style":
            self.inline.append("<style>")
        if url and not url.startswith(("data:", "http:", "https:", "/")):
            self.files.append(url)


def test_the_viewer_files_exist_are_routed_and_need_no_csp_exception() -> None:
    assets = _Assets()
    assets.feed((VIEWER / "index.html").read_text())
    names = [url.split("?v=")[0] for url in assets.files]  # named by version (scripts/build-viewer)
    assert sorted(names) == ["hls.min.js", "viewer.min.css", "viewer.min.js"]
    assert assets.inline == []
    for name in names:
        assert (VIEWER / name).is_file(), name
        assert route(f"/{name}") == SERVICE, name


# A module's dynamic import as built: import("./x.js?v=...") (viewer/src/build.mjs).
_IMPORT = re.compile(r"""\bimport\(\s*(["'])\./([^"'?]+)(?:\?v=[0-9a-f]+)?\1""")


def viewer_modules() -> set[str]:
    """The files viewer.min.js imports, and theirs (p2p.min.js with P2P on, watching.min.js)."""
    found: set[str] = set()
    todo = ["viewer.min.js"]
    while todo:
        for m in _IMPORT.finditer((VIEWER / todo.pop()).read_text()):
            if m.group(2) not in found:
                found.add(m.group(2))
                todo.append(m.group(2))
    return found


def test_every_module_the_viewer_imports_exists_and_is_routed() -> None:
    modules = viewer_modules()
    assert modules == {"p2p.min.js", "watching.min.js"}, modules
    for name in sorted(modules):
        assert (VIEWER / name).is_file(), name
        assert route(f"/{name}") == SERVICE, f"{name}: add it to the viewer's files in cloudflared.yml.example"

# -- Prometheus ----------------------------------------------------------------------------------


def test_alerts_parse_and_every_expression_uses_real_metrics() -> None:
    series = exported_series()
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {"HlsBroadcasterUploadsFailing", "HlsBroadcasterNoSegmentListed", "HlsBroadcasterSegmentsLost",
            "HlsBroadcasterSlowUploads", "HlsBroadcasterStorageDown"} <= names  # fmt: skip
    for rule in rules:
        used = set(re.findall(r"\bhls_broadcaster_\w+", rule["expr"]))
        assert used <= series, (rule["alert"], used - series)
        # Prometheus' own `up` watches the scrape itself; every other alert reads our metrics.
        assert used or rule["expr"].startswith('up{job="hls-broadcaster"}'), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]


def test_prometheus_scrapes_the_local_metrics_endpoint() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "hls-broadcaster"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:3000"]
    assert (DEPLOY / config["rule_files"][0]).resolve() == (DEPLOY / "alerts.yml").resolve()


def test_promtool_accepts_the_config_and_the_rules() -> None:
    promtool = tool("promtool")  # scripts/test installs it: missing is a broken set-up, not a skip
    rules = run([promtool, "check", "rules", str(DEPLOY / "alerts.yml")])
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = run([promtool, "check", "config", "prometheus.yml"], cwd=DEPLOY)
    assert config.returncode == 0, config.stdout + config.stderr


# -- nginx ---------------------------------------------------------------------------------------------


def test_every_nginx_file_is_checked_by_nginx_t() -> None:
    """nginx reads a shipped file only with its documented paths replaced, so `nginx -t` runs on each as the
    test named here renders it; a new file must be added here."""
    checked = {"nginx-cache.conf": ("tests/test_nginx_cache.py", "def test_nginx_accepts_the_shipped_config"),
               "nginx-proxy.conf": ("tests/test_reverse_proxy.py", "def test_nginx_accepts_the_shipped_proxy_config")}
    found = {p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file() and "nginx" in p.name}
    assert found == set(checked), "an nginx file without its nginx -t test: add one and name it here"
    for test, function in checked.values():
        assert function in (ROOT / test).read_text(), test


# -- R2 and settings -----------------------------------------------------------------------------


def test_r2_cors_policy_allows_get_and_head() -> None:
    policy = json.loads((DEPLOY / "r2-cors.json").read_text())
    (rule,) = policy["CORSRules"]
    assert {"GET", "HEAD"} <= set(rule["AllowedMethods"]) and set(rule["AllowedMethods"]) <= {"GET", "HEAD"}
    assert rule["AllowedOrigins"]
    assert isinstance(rule["MaxAgeSeconds"], int) and rule["MaxAgeSeconds"] > 0


def test_env_example_documents_every_setting_and_loads(tmp_path: Path) -> None:
    text = (DEPLOY / "env.example").read_text()
    lines = text.splitlines()
    assigned = [line.split("=", 1)[0] for line in lines if re.match(r"[A-Z0-9_]+=", line)]
    # each exactly once, and the second bucket's <ID>_* block as its pathway `backup` reads it
    assert sorted(assigned) == sorted([s.name for s in SETTINGS] + [s.name for s in bucket_rows("backup")])
    for i, line in enumerate(lines):
        if re.match(r"[A-Z0-9_]+=", line):
            above = [previous for previous in lines[:i] if previous.strip()]
            assert above and (above[-1].startswith("#") or re.match(r"[A-Z0-9_]+=", above[-1])), line
    values = {k: v for k, v in dotenv_values(DEPLOY / "env.example").items() if v is not None}
    values.update(HLS_DIR=str(tmp_path), STATE_DIR=str(tmp_path / "state"))
    settings = load_settings(environ=values)
    assert settings.first_bucket.region == "auto" and settings.r2_key_prefix == "live" and settings.port == 3000
    # Read as the service reads it (--env-file), every line taken and none looking like a misspelt key.
    copy = tmp_path / "env"
    copy.write_text(text.replace("HLS_DIR=/home/owncast/owncast/data/hls", f"HLS_DIR={tmp_path}")
                    .replace("STATE_DIR=/var/lib/hls-broadcaster", f"STATE_DIR={tmp_path / 'state'}"))
    assert load_settings(environ={}, env_file=copy) == settings
    assert lookalike_keys(environ={}, env_file=copy) == []


# -- the vendored player -------------------------------------------------------------------------


def test_vendored_hls_js_matches_the_recorded_checksum() -> None:
    vendor = (VIEWER / "VENDOR.md").read_text()
    recorded = re.search(r"^- SHA-256: `([0-9a-f]{64})`", vendor, re.MULTILINE)
    version = re.search(r"^- Version: `(\d+\.\d+\.\d+)`", vendor, re.MULTILINE)
    assert recorded and version, "VENDOR.md lost its SHA-256 or Version line"
    data = (VIEWER / "hls.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == recorded.group(1)
    assert f'"{version.group(1)}"'.encode() in data  # the version string hls.js reports as Hls.version


def test_vendored_p2p_media_loader_matches_the_recorded_checksums() -> None:
    vendor = (VIEWER / "VENDOR.md").read_text()
    section = vendor[vendor.index("## P2P Media Loader"):]
    recorded = dict(re.findall(r"-> `([\w.-]+)`, SHA-256: `([0-9a-f]{64})`", section))
    assert set(recorded) == {"p2p-media-loader-core.es.min.js", "p2p-media-loader-hlsjs.es.min.js",
                             "p2p-media-loader-LICENSE.txt"}, "VENDOR.md lost a checksum line"
    for name, digest in recorded.items():
        assert hashlib.sha256((VIEWER / name).read_bytes()).hexdigest() == digest, name
    # The one change to the published integration: its import of the core names the vendored file.
    hlsjs = (VIEWER / "p2p-media-loader-hlsjs.es.min.js").read_text()
    assert re.findall(r"^import .* from \"([^\"]+)\";$", hlsjs, re.MULTILINE) == ["./p2p-media-loader-core.es.min.js"]


def test_the_vendored_core_is_the_published_one_with_the_patch_only() -> None:
    """The vendored core is the published file (SHA-256 in VENDOR.md) plus scripts/p2p-media-loader-core.patch
    and nothing else: the patch taken back out gives the published bytes."""
    section = (VIEWER / "VENDOR.md").read_text().split("## P2P Media Loader\n", 1)[1]
    published = re.search(r"dist/p2p-media-loader-core\.es\.min\.js` \(published SHA-256: `([0-9a-f]{64})`", section)
    assert published, "VENDOR.md lost the published core's SHA-256"
    vendored = (VIEWER / "p2p-media-loader-core.es.min.js").read_text()
    patch = (ROOT / "scripts" / "p2p-media-loader-core.patch").read_text()
    original = unpatch(vendored, patch)
    assert hashlib.sha256(original.encode()).hexdigest() == published.group(1)
    assert original != vendored


def unpatch(text: str, patch: str) -> str:
    """`text` with a unified diff taken back out: each hunk's new lines, found where the hunk says,
    replaced by its old lines (exact context, no fuzz)."""
    lines = text.split("\n")
    hunks = re.split(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@.*\n", patch, flags=re.MULTILINE)[1:]
    for start, body in reversed(list(zip(hunks[::2], hunks[1::2], strict=True))):
        old = [line[1:] for line in body.splitlines() if line[:1] in (" ", "-")]
        new = [line[1:] for line in body.splitlines() if line[:1] in (" ", "+")]
        at = int(start) - 1
        assert lines[at:at + len(new)] == new, f"the patch's hunk at line {start} is not in the vendored file"
        lines[at:at + len(new)] = old
    return "\n".join(lines)


def test_vendored_video_js_matches_the_recorded_checksums() -> None:
    folder = ROOT / "tests" / "support" / "videojs"
    vendor = (folder / "VENDOR.md").read_text()
    recorded = dict(re.findall(r"-> `([\w.-]+)`, SHA-256: `([0-9a-f]{64})`", vendor))
    assert set(recorded) == {"video.min.js", "video-js.min.css", "LICENSE"}, "VENDOR.md lost a checksum line"
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    version = re.search(r"^- Version: `(\d+\.\d+\.\d+)`", vendor, re.MULTILINE)
    assert version and f"Video.js {version.group(1)} ".encode() in (folder / "video.min.js").read_bytes()[:200]


def test_production_md_says_where_every_other_path_goes_in_each_layout() -> None:
    """docs/production.md's words on the paths the tunnel does not give the service hold for both layouts:
    layout A answers them with cloudflared's 404, layout B hands them to Owncast (not a 404 there)."""
    text = " ".join((ROOT / "docs" / "production.md").read_text().split())
    assert "in layout A every other path gets cloudflared's 404" in text
    assert "in layout B every other path of Owncast's hostname goes to Owncast (`127.0.0.1:8080`)" in text
    for path in ("/nothing-here", "/api/status", "/metrics"):
        assert route(path, host="live.example.com") == "http_status:404", path
        assert route(path, host=OWNCAST_HOST) == OWNCAST == "http://127.0.0.1:8080", path


def test_the_unit_and_the_docs_grant_owncasts_files_the_same_way() -> None:
    """docs/production.md grants the service's user Owncast's files by an ACL, never a group to join; the
    unit neither suggests a group (SupplementaryGroups) in its comments nor sets one."""
    unit = (ROOT / "deploy" / "hls-broadcaster.service").read_text()
    docs = " ".join((ROOT / "docs" / "production.md").read_text().split())
    assert "never a group to join" in docs
    assert "SupplementaryGroups" not in unit
    assert "never a group to join" in " ".join(unit.replace("#", " ").split())
