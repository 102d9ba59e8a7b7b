"""The background docs live in the repository (docs/) and the citations of them hold: every cited
`docs/<name>.md#anchor` exists, nothing cites the old notes outside the repository, and every repository
path a doc names exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.cli import build_parser
from broadcaster.settings import SETTINGS, load_settings
from tests.support.prometheus import alert_rules
from tests.support.settings_env import env

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CITING = [ROOT / "broadcaster", ROOT / "tests", ROOT / "bench", ROOT / "README.md"]
# Where an old citation could hide: the citing places, plus the other text the repository ships.
SCANNED = [*CITING, ROOT / "deploy", ROOT / "scripts", ROOT / "docs", ROOT / "pyproject.toml",
           ROOT / "cloudflared.yml.example"]
_TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".yml", ".yaml", ".json", ".js", ".sh", ".example", ".service", ""}

# The notes outside the repository the code used to cite; spelled in pieces so this file does not cite them.
_OLD_NAMES = ("OWNCAST", "HLS_RULES", "R2")
_OLD_CITATION = re.compile(r"\b(?:" + "|".join(_OLD_NAMES) + r")\.md\b")
# docs/<name>.md[#anchor], not preceded by another folder (".../shared/docs/x.md" is someone else's docs).
_CITATION = re.compile(r"(?<![\w./-])docs/((?:[\w-]+/)?[\w.-]+\.md)(?:#([\w-]+))?")
# Markdown links inside docs/: [text](target.md#anchor) to another doc or the top README.
_LINK = re.compile(r"\]\(([^)\s#]+\.md)?(?:#([\w-]+))?\)")
# Repository paths a doc names in backticks.
_REPO_PATH = re.compile(r"`((?:broadcaster|tests|bench|deploy|viewer|scripts|docs)/[\w./-]*[\w]"
                        r"|pyproject\.toml|cloudflared\.yml\.example)`")


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in candidates:
            if p.suffix in _TEXT_SUFFIXES and "__pycache__" not in p.parts:
                yield p


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    """Anchors of a Markdown file's headings (fenced code skipped; repeated headings get -1, -2...)."""
    found: set[str] = set()
    fenced = False
    for line in _read(doc).splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.*)", line)):
            slug = base = _slug(m.group(1))
            n = 0
            while slug in found:
                n += 1
                slug = f"{base}-{n}"
            found.add(slug)
    return found


def citations() -> list[tuple[str, int, str, str | None]]:
    """(file, line, doc name, anchor) of every docs/*.md citation in the citing places."""
    found = []
    for path in _files(CITING):
        if path == Path(__file__).resolve():
            continue  # its own messages name the docs; they are not citations
        for lineno, line in enumerate(_read(path).splitlines(), 1):
            for m in _CITATION.finditer(line):
                found.append((str(path.relative_to(ROOT)), lineno, m.group(1), m.group(2)))
    return found


def test_slug_matches_githubs_anchors() -> None:
    assert _slug("What hls.js checks") == "what-hlsjs-checks"
    assert _slug("Owncast's own S3 mode") == "owncasts-own-s3-mode"
    assert _slug("Public access: custom domain, not r2.dev") == "public-access-custom-domain-not-r2dev"


def test_the_code_cites_the_docs() -> None:
    # A test of the finder too: if the citations were all lost, the checks below would pass on nothing.
    cited = {name for _file, _line, name, _anchor in citations()}
    assert {"owncast.md", "hls-rules.md", "r2.md"} <= cited, cited


def test_every_cited_doc_and_heading_exists() -> None:
    broken = []
    for file, line, name, anchor in citations():
        doc = DOCS / name
        if not doc.is_file():
            broken.append(f"{file}:{line}: docs/{name} does not exist")
        elif anchor is not None and anchor not in anchors(doc):
            broken.append(f"{file}:{line}: docs/{name} has no heading #{anchor} (has: {sorted(anchors(doc))})")
    assert not broken, "\n".join(broken)


def test_nothing_cites_the_old_notes_outside_the_repository() -> None:
    stale = [f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}" for path in _files(SCANNED)
             for lineno, line in enumerate(_read(path).splitlines(), 1) if _OLD_CITATION.search(line)]
    assert not stale, "cite docs/owncast.md, docs/hls-rules.md or docs/r2.md instead:\n" + "\n".join(stale)


DOC_FILES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_links_between_docs_resolve(doc: Path) -> None:
    broken = []
    for lineno, line in enumerate(_read(doc).splitlines(), 1):
        for m in _LINK.finditer(line):
            target = (doc.parent / m.group(1)).resolve() if m.group(1) else doc
            if not target.is_file():
                broken.append(f"{doc.name}:{lineno}: {m.group(1)} does not exist")
            elif m.group(2) is not None and m.group(2) not in anchors(target):
                broken.append(f"{doc.name}:{lineno}: {target.name} has no heading #{m.group(2)}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_every_repository_path_a_doc_names_exists(doc: Path) -> None:
    # Fails when a module the doc points at moves or is renamed: update the doc with the code.
    missing = [f"{doc.name}:{lineno}: {m.group(1)}" for lineno, line in enumerate(_read(doc).splitlines(), 1)
               for m in _REPO_PATH.finditer(line) if not (ROOT / m.group(1)).exists()]
    assert not missing, "paths named in docs/ that do not exist (moved? update the doc):\n" + "\n".join(missing)


# This project's issues ("issue 47", "issues 47 and 50", "#47"), dated runs ("2026-11-25") and commits
# ("(b7620df)"). Another project's issue or commit is named with its project: "hls.js issue 5747",
# "hls.js #3913", "owncast#489", "owncast/owncast 3c6ca409".
_DIARY = re.compile(r"\b[Ii]ssues?\s+\d+|(?<![\w/])#\d+\b|\b20\d\d-\d\d-\d\d\b"
                    r"|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
_UPSTREAM = re.compile(r"(?:\b(?:hls\.js|Shaka|[Oo]wncast|PeerTube|video\.js) (?:issues? )?|\b[\w.-]+/[\w.-]+ )$")


def diary_entries(text: str) -> list[str]:
    """Each issue of ours, dated run or commit id a text names, as "line: what" (another project's pass).
    Read across line breaks: a wrapped paragraph splits "issue" from its number as easily as not."""
    return [f"{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}" for m in _DIARY.finditer(text)
            if not _UPSTREAM.search(re.sub(r"\s+", " ", text[max(0, m.start() - 200):m.start()]))]


def test_the_diary_check_tells_ours_from_upstream() -> None:
    ours = ["As issue 47 asked", "see #81.", "Measured on 2026-11-25:", "the page before (b7620df)",
            "against the 558 MB/s of issue\n41; at"]
    upstream = ["(hls.js issue 5747)", "(hls.js\nissue 5747)", "(hls.js #4309, hls.js #3913)",
                "(owncast#4060)", "owncast/owncast 3c6ca409", "`max-age=31536000`", "`#EXT-X-SKIP`",
                "20261123-140000-1a2b"]
    assert [len(diary_entries(s)) for s in ours] == [1] * len(ours)
    assert [diary_entries(s) for s in upstream] == [[]] * len(upstream)


@pytest.mark.parametrize("doc", [*DOC_FILES, ROOT / "README.md"], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_page_names_an_issue_of_ours_or_a_dated_run(doc: Path) -> None:
    """A reader cannot open "issue 47" or a commit id, and a dated bench run is history: the guides say what
    is true now, with the command that measures it (the commit messages keep the history)."""
    found = [f"{doc.name}:{entry}" for entry in diary_entries(_read(doc))]
    assert not found, "\n".join(found)


def test_the_index_lists_every_doc() -> None:
    index = _read(DOCS / "README.md")
    # index.md is the documentation site's front page (docs/conf.py); the rest are its pages.
    pages = [p.relative_to(DOCS).as_posix() for p in DOC_FILES]
    unlisted = [p for p in pages if p not in ("README.md", "index.md") and f"]({p})" not in index]
    assert not unlisted, f"docs/README.md does not link {unlisted}"


# -- the facts that drift between the docs, the deploy files and the code (issue 47) ----------------------

# What an operator reads and copies: the README, the docs' pages, the deploy files and the tunnel example,
# and the tracker's own comments on how to install it.
OPERATOR_TEXT = sorted({ROOT / "README.md", ROOT / "cloudflared.yml.example", *DOC_FILES,
                        *(p for p in (ROOT / "deploy").rglob("*") if p.is_file()),
                        *(ROOT / "broadcaster" / "tracker").glob("*.?js")})


def operator_lines() -> Iterator[tuple[str, int, str]]:
    for path in OPERATOR_TEXT:
        for lineno, line in enumerate(_read(path).splitlines(), 1):
            yield str(path.relative_to(ROOT)), lineno, line


def test_the_monitoring_page_lists_every_alert_of_alerts_yml() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    table = re.findall(r"^\| `(HlsBroadcaster\w+)` \|", _read(DOCS / "monitoring.md"), re.MULTILINE)
    assert sorted(table) == sorted(names) and len(table) == len(set(table)), (
        f"docs/monitoring.md's table: {len(table)} alerts, deploy/alerts.yml: {len(names)}; "
        f"only in the table {sorted(set(table) - set(names))}, only in the file "
        f"{sorted(set(names) - set(table))}")
    counted = [(f, n, int(m.group(1))) for f, n, line in operator_lines()
               for m in re.finditer(r"\b(\d+) alerts\b", line)]
    assert all(count == len(names) for _f, _n, count in counted), counted


# A default quoted in prose: `NAME=VALUE` (the default), default `NAME=VALUE`, `NAME` (default VALUE...
_DEFAULT_AFTER = re.compile(r"`([A-Z][A-Z0-9_]{2,})=([^`]*)` \(the default|default `([A-Z][A-Z0-9_]{2,})=([^`]*)`")
_DEFAULT_IN = re.compile(r"`([A-Z][A-Z0-9_]{2,})`[^.|\n`]{0,40}?\(default:? `?([^`),;\s]+)`?")


def _same(quoted: str, default: str) -> bool:
    quoted, default = quoted.strip("'\""), default.strip("'\"")
    try:
        return float(quoted) == float(default)
    except ValueError:
        return quoted.lower() == default.lower()


def test_defaults_quoted_in_prose_are_the_code_s() -> None:
    defaults = {s.name: s.default for s in SETTINGS}
    found, wrong = 0, []
    for file, lineno, line in operator_lines():
        pairs = [(m.group(1) or m.group(3), m.group(2) if m.group(1) else m.group(4))
                 for m in _DEFAULT_AFTER.finditer(line)]
        pairs += [(m.group(1), m.group(2)) for m in _DEFAULT_IN.finditer(line)]
        for name, value in pairs:
            if name not in defaults or defaults[name] is None:
                continue
            found += 1
            if not _same(value, defaults[name] or ""):
                wrong.append(f"{file}:{lineno}: {name} default {value!r}, the code's is {defaults[name]!r}")
    assert found >= 5, "the finder found almost no default quoted in the docs: is it still right?"
    assert wrong == [], "\n".join(wrong)


def test_the_presign_expiry_figure_is_the_code_s(tmp_path: Path) -> None:
    life = load_settings(environ=env(tmp_path, SEGMENT_URLS="presigned")).segment_url_life
    figures = [(f, n, int(m.group(1))) for f, n, line in operator_lines()
               for m in re.finditer(r"\b(\d+) s with the defaults", line)]
    assert figures and all(figure == life for _f, _n, figure in figures), (life, figures)


def test_one_metrics_listen_example_and_the_ports_agree() -> None:
    # METRICS_LISTEN=..., or an example of it ("e.g. 127.0.0.1:9464"): a 9xxx port on loopback.
    texts = [*((f, line) for f, _n, line in operator_lines()), ("record.py", _read(ROOT / "broadcaster" / "settings" / "record.py"))]
    listens = {(f, m.group(0)) for f, text in texts
               for m in re.finditer(r"METRICS_LISTEN=[\w.:\[\]]+:\d+|127\.0\.0\.1:9\d{3}\b", text)}
    assert {where.removeprefix("METRICS_LISTEN=") for _f, where in listens} == {"127.0.0.1:9464"}, listens
    port = next(s.default for s in SETTINGS if s.name == "PORT")
    demo = build_parser().parse_args(["demo"]).port
    tunnel = _read(ROOT / "cloudflared.yml.example")
    unit = _read(ROOT / "deploy" / "tracker" / "hls-broadcaster-tracker.service")
    assert str(demo) == port and f"service: http://127.0.0.1:{port}" in tunnel
    assert f"Environment=TRACKER_SERVICE_URL=http://127.0.0.1:{port}" in unit
    assert f'"127.0.0.1:{port}"' in _read(ROOT / "deploy" / "prometheus.yml")
    tracker_port = re.search(r"^Environment=TRACKER_PORT=(\d+)$", unit, re.MULTILINE)
    assert tracker_port and f"service: http://127.0.0.1:{tracker_port.group(1)}" in tunnel


def _command(line: str) -> str:
    """A shell line as written in a doc, a comment or a code block: its prompt, comment mark and sudo off."""
    line = re.sub(r"^\s*(?:#|//)?\s*(?:\d+\.\s+)?", "", line).strip().strip("`")
    return re.sub(r"\s+#.*$", "", line).removeprefix("sudo ").strip()


def test_one_useradd_per_user_and_one_tracker_install() -> None:
    useradds: dict[str, set[str]] = {}
    npm: set[str] = set()
    copies: set[str] = set()
    for _f, _n, line in operator_lines():
        command = _command(line)
        if command.startswith("useradd "):
            useradds.setdefault(command.split()[-1], set()).add(command)
        for m in re.finditer(r"npm (?:ci|install)\b[^`#;&|)]*", line):
            npm.add(m.group(0).strip())
        if "broadcaster/tracker/{" in line:
            copies.add(command)
    assert set(useradds) == {"hls-broadcaster", "hls-tracker"}, useradds
    assert all(len(forms) == 1 for forms in useradds.values()), useradds
    # The tracker's packages, and pm2 for an operator who runs the service under it (docs/production.md).
    assert npm == {"npm ci --ignore-scripts --omit=dev", "npm install -g pm2"}, npm
    assert len(copies) == 1, copies


ENV_FILE = "/etc/hls-broadcaster/env"
CHECK = f"-u hls-broadcaster /opt/hls-broadcaster/venv/bin/hls-broadcaster --env-file {ENV_FILE} check"
# Under pm2 the service runs as Owncast's user (docs/production.md, "With pm2 instead of systemd").
PM2_CHECK = f"-u owncast /opt/hls-broadcaster/venv/bin/hls-broadcaster --env-file {ENV_FILE} check"
# Root's check told the user: by its full path too (sudo's secure_path does not hold the venv's bin).
CHECK_AS = f"/opt/hls-broadcaster/venv/bin/hls-broadcaster --env-file {ENV_FILE} check --as hls-broadcaster"


def test_one_story_for_the_env_file() -> None:
    """Owned by root, group hls-broadcaster (under pm2: Owncast's user's group, owncast), 0640; read by the
    service itself (--env-file) under systemd, pm2 and check alike; check run as the user the service runs
    as under each; never sourced by a shell or EnvironmentFile=."""
    installs, checks, wrong = set(), set(), []
    for file, lineno, line in operator_lines():
        command = _command(line)
        if command.startswith("install ") and command.endswith(ENV_FILE):
            installs.add(command)
        if re.search(r"hls-broadcaster\S* .*\bcheck\b", command) and "/opt/" in command:
            checks.add(command)
        if re.search(r"\. /etc/hls-broadcaster/env|^EnvironmentFile=|set -a", line):
            wrong.append(f"{file}:{lineno}: {line.strip()}")
        if ENV_FILE in line and re.search(r"\b0?600\b", line):
            wrong.append(f"{file}:{lineno}: {line.strip()}")
    assert installs == {f"install -m 0640 -o root -g {group} deploy/env.example {ENV_FILE}"
                        for group in ("hls-broadcaster", "owncast")}, installs
    assert checks == {CHECK, PM2_CHECK, CHECK_AS}, checks
    assert wrong == [], "\n".join(wrong)
    # The unit's ExecStart and pm2's arguments are test_deploy's (the unit parsed, the pm2 file run in node).
    assert f'const envFile = process.env.HLS_BROADCASTER_ENV_FILE || "{ENV_FILE}";' in _read(
        ROOT / "deploy" / "ecosystem.config.js")


# Not shown whole: the alerts' unit tests (promtool's input), the dashboard (Grafana imports it: 1000s
# of lines of JSON no one reads on a page), and the Worker's npm lock file (npm reads it).
NOT_INCLUDED = {"deploy/alerts.test.yml", "deploy/grafana-dashboard.json",
                "deploy/cloudflare-worker/package-lock.json"}


def test_the_site_shows_every_file_an_operator_copies_as_it_is() -> None:
    """The pages include the shipped files themselves ({literalinclude}, {include}): they cannot drift."""
    included = {(doc.parent / m.group(1)).resolve() for doc in DOC_FILES
                for m in re.finditer(r"^```\{(?:literal)?include\} (\S+)$", _read(doc), re.MULTILINE)}
    shipped = {ROOT / "cloudflared.yml.example", *(p for p in (ROOT / "deploy").rglob("*") if p.is_file())}
    missing = sorted(str(p.relative_to(ROOT)) for p in shipped
                     if p.resolve() not in included and str(p.relative_to(ROOT)) not in NOT_INCLUDED)
    assert missing == [], f"deploy files no page of the site includes: {missing}"


def test_the_install_time_is_given_in_one_place() -> None:
    """The README gives the first command's install time; docs/getting-started.md, which repeats the two
    commands, points there rather than giving a second figure that drifts from it."""
    readme = (ROOT / "README.md").read_text()
    started = (DOCS / "getting-started.md").read_text()
    two_commands = " ".join(started.split("## The two commands", 1)[1].split("\n## ", 1)[0].split())
    assert "How long the first command's install takes" in readme
    assert re.search(r"\b\d+ s\b", two_commands) is None, two_commands
    assert "How long that install takes is said in one place, the README's \"The two commands\"" in two_commands


def test_no_command_names_the_program_bare_after_sudo() -> None:
    """`sudo hls-broadcaster ...` finds no program (sudo's secure_path lacks the venv's bin): the docs,
    the shipped files and the program's own lines name it by its full path."""
    said = [f"{p.relative_to(ROOT)}:{n}" for p in [*ROOT.glob("docs/*.md"), *ROOT.glob("deploy/**/*"), ROOT / "README.md",
                                                   *ROOT.glob("broadcaster/**/*.py")]
            if p.is_file() for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
            if re.search(r"sudo (?:-u \S+ )?hls-broadcaster\b", line)]
    assert said == [], said
