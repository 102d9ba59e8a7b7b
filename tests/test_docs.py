"""The background docs live in the repository (docs/) and the code's citations of them hold.

Every `docs/<name>.md` (with an optional `#anchor`) cited by the package, the tests, the benchmarks
and the top README names a file here, and a heading in it; nothing cites the notes that used to live
outside the repository; and every repository path a doc names exists, so a moved module shows up here
as a doc to update.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    stale = [
        f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}"
        for path in _files(SCANNED)
        for lineno, line in enumerate(_read(path).splitlines(), 1)
        if _OLD_CITATION.search(line)
    ]
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
    missing = [
        f"{doc.name}:{lineno}: {m.group(1)}"
        for lineno, line in enumerate(_read(doc).splitlines(), 1)
        for m in _REPO_PATH.finditer(line)
        if not (ROOT / m.group(1)).exists()
    ]
    assert not missing, "paths named in docs/ that do not exist (moved? update the doc):\n" + "\n".join(missing)


def test_the_index_lists_every_doc() -> None:
    index = _read(DOCS / "README.md")
    # index.md is the documentation site's front page (docs/conf.py); the rest are its pages.
    pages = [p.relative_to(DOCS).as_posix() for p in DOC_FILES]
    unlisted = [p for p in pages if p not in ("README.md", "index.md") and f"]({p})" not in index]
    assert not unlisted, f"docs/README.md does not link {unlisted}"
