"""The viewer's ES modules as the service serves them (issue 42): what the page needs to start comes in
one file, and no module is reached through a redirect.

- The page's module (viewer.js, its `<script type="module">`) is served combined with the modules it
  imports statically (module_combine.py): one request where there was one per module, each a round
  trip later than the module importing it.
- Every module's relative imports, static and dynamic (`import('./p2p.js')`), name the imported file's
  versioned URL (`./p2p.js?v=<hash>`), so the browser asks for that at once (no 302) and keeps it. A
  module's version is the hash of the module as served, which holds its imports' versions: it changes
  when anything it imports does. (Within an import cycle, the import closing it keeps its plain name.)
- The combination is refused when a module uses what it does not take, or when a module outside the
  combined file imports one inside it (that one would then run twice, with two states). The page's
  module is then served on its own, its imports versioned, and `preload` names the modules it imports
  so the page asks for them all at once (<link rel="modulepreload">): no redirect, no waterfall, and one
  warning in the log naming why.

Each file is read once per change (the caller's `read`, cached by stat); the graph, the combined module
and the versions are made again only when a file in the graph changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from .module_combine import Uncombinable, combine

log = logging.getLogger(__name__)

# A relative import of a file of the same folder: from './x.js', import './x.js', import('./x.js').
_IMPORT = re.compile(r"""\b(?P<how>from\s*|import\s*\(\s*|import\s*)"""
                     r"""(?P<q>["'])\./(?P<file>[A-Za-z0-9][A-Za-z0-9_.-]{0,199})(?P=q)""")
_STATIC = ("from", "import")  # how a static import starts; a dynamic one has "("


class Source(Protocol):
    """A file as read (viewer_files.ViewerFile): its path, version (a hash of its content), and its
    content when kept in memory."""

    @property
    def path(self) -> Path: ...

    @property
    def version(self) -> str: ...

    @property
    def body(self) -> bytes | None: ...


@dataclasses.dataclass(frozen=True)
class Served:
    path: Path
    version: str
    body: bytes | None  # None: the file as it is on disk (nothing in it changed)
    imports: tuple[str, ...]  # the files it imports statically, as served


@dataclasses.dataclass(frozen=True)
class ServedModules:
    files: dict[str, Served]  # every module reached from the entries, by file name
    combined: dict[str, tuple[str, ...]]  # entry -> the files in its combined form
    refused: str  # why an entry is served uncombined; "" when none is

    def preload(self, name: str) -> list[str]:
        """The modules `name` imports statically as served, and theirs (each once), in a stable order."""
        found: list[str] = []
        todo = list(self.files[name].imports) if name in self.files else []
        while todo:
            file = todo.pop(0)
            if file not in found and file in self.files:
                found.append(file)
                todo += self.files[file].imports
        return found


def references(text: str, known: Callable[[str], bool]) -> list[tuple[str, bool]]:
    """(file, static) for each relative import in `text` of a file for which known(file) holds."""
    out: list[tuple[str, bool]] = []
    for m in _IMPORT.finditer(text):
        if known(m.group("file")):
            out.append((m.group("file"), "(" not in m.group("how")))
    return out


class ViewerModules:
    """The served forms of the modules reached from the page's module scripts (`entries`)."""

    def __init__(self, read: Callable[[str], Source | None]) -> None:
        self._read = read
        self._refs: dict[tuple[str, str], tuple[tuple[str, bool], ...]] = {}  # (file, version) -> references
        self._served: tuple[tuple[object, ...], ServedModules] | None = None

    def last(self) -> ServedModules | None:
        """The modules as last made (None before the first time)."""
        return None if self._served is None else self._served[1]

    def served(self, entries: Sequence[str]) -> ServedModules:
        """Blocking (stat, and reads when a file changed): run it in a thread."""
        sources: dict[str, Source] = {}
        todo = list(entries)
        while todo:
            name = todo.pop()
            if name in sources:
                continue
            found = self._read(name)
            refs = None if found is None else self._references(name, found)
            if found is None or refs is None:
                continue
            sources[name] = found
            todo += [file for file, _ in refs]
        key = (tuple(entries), *sorted((name, s.version) for name, s in sources.items()))
        if self._served is not None and self._served[0] == key:
            return self._served[1]
        served = self._build(entries, sources)
        self._served = (key, served)
        return served

    def _references(self, name: str, found: Source) -> tuple[tuple[str, bool], ...] | None:
        """What the file imports; None when it cannot be read (gone since it was found)."""
        known = self._refs.get((name, found.version))
        if known is None:
            text = _text(found)
            if text is None:
                return None
            known = tuple(references(text, lambda file: self._read(file) is not None))
            self._refs[(name, found.version)] = known
        return known

    def _build(self, entries: Sequence[str], sources: dict[str, Source]) -> ServedModules:
        texts = {name: text for name, found in sources.items() if (text := _text(found)) is not None}
        combined: dict[str, tuple[str, ...]] = {}
        refusals: list[str] = []
        for entry in entries:
            if entry not in texts:
                continue
            try:
                result = combine(entry, texts.get)
                shared = _shared(entry, result.members, result.text, texts, combined)
                if shared:
                    raise Uncombinable(shared)
            except Uncombinable as err:
                refusals.append(f"{entry}: {err}")
                continue
            combined[entry] = result.members
            texts[entry] = result.text
        if refusals:
            log.warning("viewer modules served one by one, not combined (issue 42): %s", "; ".join(refusals))
        files: dict[str, Served] = {}
        visiting: set[str] = set()

        def serve(name: str) -> Served:
            if name in files:
                return files[name]
            visiting.add(name)
            text = texts[name]
            versions = {file: serve(file).version for file, _ in references(text, texts.__contains__)
                        if file not in visiting}
            visiting.discard(name)
            rewritten = _versioned(text, versions)
            source = sources[name]
            if rewritten == text and name not in combined:
                served = Served(source.path, source.version, source.body,
                                _static(text, texts.__contains__))
            else:
                body = rewritten.encode()
                served = Served(source.path, hashlib.sha256(body).hexdigest()[:16], body,
                                _static(text, texts.__contains__))
            files[name] = served
            return served

        for name in sorted(texts):
            serve(name)
        return ServedModules(files, combined, "; ".join(refusals))


def _text(found: Source) -> str | None:
    try:
        data = found.body if found.body is not None else found.path.read_bytes()
    except OSError:
        return None
    return data.decode("utf-8", "replace")


def _static(text: str, known: Callable[[str], bool]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(file for file, static in references(text, known) if static))


def _versioned(text: str, versions: dict[str, str]) -> str:
    def named(m: re.Match[str]) -> str:
        version = versions.get(m.group("file"))
        if version is None:
            return m.group(0)
        return f"{m.group('how')}{m.group('q')}./{m.group('file')}?v={version}{m.group('q')}"

    return _IMPORT.sub(named, text)


def _shared(entry: str, members: Iterable[str], text: str, texts: dict[str, str],
            combined: dict[str, tuple[str, ...]]) -> str:
    """Why combining `entry` would run one of its modules twice ("" when it would not): a module
    outside it, or its own dynamic imports, import one of the modules inside it."""
    inside = set(members) - {entry}
    taken = {file for files in combined.values() for file in files}
    if inside & taken:
        return f"{', '.join(sorted(inside & taken))} already in another combined module"
    outside = {name: body for name, body in texts.items() if name not in inside and name != entry}
    outside[entry] = text
    for name, body in sorted(outside.items()):
        for file, _ in references(body, inside.__contains__):
            return f"{name} imports {file}, which would then run twice"
    return ""
