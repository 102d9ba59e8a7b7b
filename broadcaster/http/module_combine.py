"""ES modules combined into one at serve time (issue 42): an entry module and the modules it imports
statically, so a page asks for one file where it asked for one per module (each a round trip deeper).

Each imported module is evaluated in a function of its own (its names stay its own), in the order a
browser evaluates them (dependencies first, in the order of the import statements), and hands on a
frozen object of its exports; an import becomes a `const` taken from that object, at the top of the
importing module's function; the entry runs at the top level of the combined module, so its own exports
stay the module's. The sources are untouched: this is only how they are served.

Only what the viewer's modules use is combined; anything else raises Uncombinable (the caller then
serves the modules one by one):

    import * as NS from './x.js';    import { a, b as c } from './x.js';    import './x.js';
    export function f ...  export async function f ...  export function* f ...  export class C ...
    export const NAME = ...;          export { a, b as c };

Not: default imports and exports, `export let` / `export var` (a binding its module may reassign, which
a copy would not follow), `export ... from`, `import.meta`, import cycles, `await` at a module's top
level (it would be a syntax error inside the function), import specifiers other than './<file>'.

The statements are found by a small JavaScript lexer (comments, strings, templates, regular
expressions, brackets), enough to tell a top-level `import` or `export` from the same word anywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

PREFIX = "__viewer_module_"  # the combined module's own names; no source may use it


class Uncombinable(ValueError):
    """What the combination does not support, naming the file."""


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "string", "punct", "regex", "template", "number"
    text: str
    start: int
    end: int
    depth: int  # brackets open around it: (, [, { and template ${


_NAME = re.compile(r"#?[A-Za-z_$\u0080-\uffff][\w$\u0080-\uffff]*")
_NUMBER = re.compile(r"0[xXbBoO][\da-fA-F_]+n?|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?n?")
_PUNCT = sorted(
    "{ } ( ) [ ] ; , < > + - * / % & | ^ ! ~ ? : = . @ ... == != === !== <= >= => && || ?? ?. ++ -- "
    "+= -= *= /= %= &= |= ^= **= <<= >>= >>>= &&= ||= ??= ** << >> >>>".split(),
    key=len, reverse=True)
# A '/' after these starts a regular expression; after a name, a number, ')' or ']' it divides.
_BEFORE_REGEX = {"return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case",
                 "do", "else", "yield", "await"}
_OPEN = {"(": ")", "[": "]", "{": "}"}


def tokens(source: str, name: str = "module") -> list[Token]:
    """The source's tokens, comments and white space left out."""
    out: list[Token] = []
    stack: list[str] = []  # the closing bracket each open one wants; "`" for a template's ${
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c.isspace():
            i += 1
            continue
        if source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        if source.startswith("/*", i):
            end = source.find("*/", i + 2)
            if end < 0:
                raise Uncombinable(f"{name}: a comment never closed")
            i = end + 2
            continue
        depth = len(stack)
        if c in "'\"":
            end = _string_end(source, i, name)
            out.append(Token("string", source[i:end], i, end, depth))
            i = end
        elif c == "`" or (c == "}" and stack and stack[-1] == "`"):
            if c == "}":
                stack.pop()
            end, opened = _template(source, i + 1, name)
            out.append(Token("template", source[i:end], i, end, len(stack)))
            if opened:
                stack.append("`")
            i = end
        elif c == "/" and _regex_allowed(out):
            end = _regex_end(source, i, name)
            out.append(Token("regex", source[i:end], i, end, depth))
            i = end
        elif (m := _NAME.match(source, i)) is not None:
            out.append(Token("name", m.group(), i, m.end(), depth))
            i = m.end()
        elif (m := _NUMBER.match(source, i)) is not None and (c.isdigit() or m.end() > i + 1):
            out.append(Token("number", m.group(), i, m.end(), depth))
            i = m.end()
        else:
            punct = next((p for p in _PUNCT if source.startswith(p, i)), None)
            if punct is None:
                raise Uncombinable(f"{name}: unexpected {c!r} at offset {i}")
            if punct in _OPEN:
                stack.append(_OPEN[punct])
            elif punct in (")", "]", "}"):
                if not stack or stack.pop() != punct:
                    raise Uncombinable(f"{name}: unbalanced {punct!r} at offset {i}")
                depth = len(stack)
            out.append(Token("punct", punct, i, i + len(punct), depth))
            i += len(punct)
    if stack:
        raise Uncombinable(f"{name}: {len(stack)} bracket(s) never closed")
    return out


def _string_end(source: str, i: int, name: str) -> int:
    quote, j = source[i], i + 1
    while j < len(source):
        if source[j] == "\\":
            j += 2
        elif source[j] == quote:
            return j + 1
        elif source[j] == "\n":
            break
        else:
            j += 1
    raise Uncombinable(f"{name}: a string never closed at offset {i}")


def _template(source: str, j: int, name: str) -> tuple[int, bool]:
    """From inside a template: where this part ends, and whether a ${ opened there (else a backtick)."""
    start = j
    while j < len(source):
        if source[j] == "\\":
            j += 2
        elif source[j] == "`":
            return j + 1, False
        elif source.startswith("${", j):
            return j + 2, True
        else:
            j += 1
    raise Uncombinable(f"{name}: a template never closed at offset {start}")


def _regex_allowed(before: list[Token]) -> bool:
    if not before:
        return True
    last = before[-1]
    if last.kind == "name":
        return last.text in _BEFORE_REGEX
    if last.kind == "punct":
        return last.text not in (")", "]", "++", "--")
    return False  # a number, a string, a regular expression, a template's end


def _regex_end(source: str, i: int, name: str) -> int:
    j, in_class = i + 1, False
    while j < len(source) and source[j] != "\n":
        c = source[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            j += 1
            while j < len(source) and (source[j].isalnum() or source[j] in "_$"):
                j += 1
            return j
        j += 1
    raise Uncombinable(f"{name}: a regular expression never closed at offset {i}")


# -- a module's imports and exports ---------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    file: str  # the imported module's file name ('./x.js' -> 'x.js')
    namespace: str | None  # import * as NS
    names: tuple[tuple[str, str], ...]  # import { imported as local }


@dataclass
class Module:
    file: str
    source: str
    imports: list[Import] = field(default_factory=list)
    exports: list[tuple[str, str]] = field(default_factory=list)  # (exported name, local name)
    import_spans: list[tuple[int, int]] = field(default_factory=list)  # the import statements
    export_spans: list[tuple[int, int]] = field(default_factory=list)  # 'export ' keywords, export { } lists


def parse(file: str, source: str, *, entry: bool = False) -> Module:
    """The module's static imports and its exports, or Uncombinable."""
    if PREFIX in source:
        raise Uncombinable(f"{file}: uses the name {PREFIX}, the combined module's own")
    toks = tokens(source, file)
    module = Module(file, source)
    for k, tok in enumerate(toks):
        if tok.kind != "name" or tok.text not in ("import", "export", "await"):
            continue
        before = toks[k - 1] if k else None
        after = toks[k + 1] if k + 1 < len(toks) else None
        if (before is not None and before.text in (".", "?.")) or (after is not None and after.text == ":"):
            continue  # a property of that name: obj.import, { export: 1 }
        if tok.text == "import":
            if after is not None and after.text == ".":
                raise Uncombinable(f"{file}: import.meta (its URL would be the combined module's)")
            if after is not None and after.text == "(":
                continue  # import('./x.js'): loaded on its own when it runs
            if tok.depth:
                raise Uncombinable(f"{file}: an import statement inside a block at offset {tok.start}")
            _import(module, toks, k)
        elif tok.text == "export":
            if tok.depth:
                raise Uncombinable(f"{file}: an export inside a block at offset {tok.start}")
            _export(module, toks, k)
        elif tok.depth == 0 and not entry:
            raise Uncombinable(f"{file}: await at its top level")
    seen = [exported for exported, _ in module.exports]
    if len(seen) != len(set(seen)):
        raise Uncombinable(f"{file}: a name exported twice")
    return module


def _at(toks: list[Token], j: int, file: str) -> Token:
    if j >= len(toks):
        raise Uncombinable(f"{file}: ends inside an import or export statement")
    return toks[j]


def _specifier(tok: Token, file: str) -> str:
    text = tok.text[1:-1]
    m = re.fullmatch(r"\./([A-Za-z0-9][A-Za-z0-9_.-]{0,199})", text) if tok.kind == "string" else None
    if m is None:
        raise Uncombinable(f"{file}: imports {tok.text}, not a './<file>' of the same folder")
    return m.group(1)


def _names(toks: list[Token], j: int, file: str) -> tuple[list[tuple[str, str]], int]:
    """`{ a, b as c }` from the `{` at j: the (name, alias) pairs and the index after the `}`."""
    pairs: list[tuple[str, str]] = []
    j += 1
    while _at(toks, j, file).text != "}":
        first = _at(toks, j, file)
        if first.kind != "name":
            raise Uncombinable(f"{file}: {first.text!r} in an import or export list")
        alias = first.text
        j += 1
        if _at(toks, j, file).text == "as":
            alias = _at(toks, j + 1, file).text
            j += 2
        pairs.append((first.text, alias))
        if _at(toks, j, file).text == ",":
            j += 1
    return pairs, j + 1


def _end(toks: list[Token], j: int) -> int:
    """Where the statement whose last token is at j - 1 ends in the source: after its `;` if it has one."""
    return toks[j].end if j < len(toks) and toks[j].text == ";" else toks[j - 1].end


def _import(module: Module, toks: list[Token], k: int) -> None:
    file = module.file
    j = k + 1
    first = _at(toks, j, file)
    namespace: str | None = None
    names: list[tuple[str, str]] = []
    if first.kind != "string":
        if first.text == "*":
            if _at(toks, j + 1, file).text != "as":
                raise Uncombinable(f"{file}: import * without 'as'")
            namespace = _at(toks, j + 2, file).text
            j += 3
        elif first.text == "{":
            names, j = _names(toks, j, file)
        else:
            raise Uncombinable(f"{file}: a default import ({first.text}), which the combination does not "
                               "take")
        if _at(toks, j, file).text != "from":
            raise Uncombinable(f"{file}: an import without 'from' at offset {toks[k].start}")
        j += 1
    spec = _at(toks, j, file)
    target = _specifier(spec, file)
    if j + 1 < len(toks) and toks[j + 1].text in ("with", "assert") and toks[j + 1].depth == 0:
        raise Uncombinable(f"{file}: import attributes")
    module.imports.append(Import(target, namespace, tuple(names)))
    module.import_spans.append((toks[k].start, _end(toks, j + 1)))


def _export(module: Module, toks: list[Token], k: int) -> None:
    file = module.file
    first = _at(toks, k + 1, file)
    keyword = (toks[k].start, first.start)  # 'export ' taken out, the declaration kept
    if first.text == "{":
        pairs, j = _names(toks, k + 1, file)
        if j < len(toks) and toks[j].text == "from":
            raise Uncombinable(f"{file}: export ... from, which the combination does not take")
        module.exports += [(alias, local) for local, alias in pairs]
        module.export_spans.append((toks[k].start, _end(toks, j)))
        return
    j = k + 1
    if first.text == "async":
        j += 1
        if _at(toks, j, file).text != "function":
            raise Uncombinable(f"{file}: export async other than a function at offset {toks[k].start}")
    kind = _at(toks, j, file).text
    j += 1
    if kind == "function" and _at(toks, j, file).text == "*":
        j += 1
    elif kind == "const":
        if _at(toks, j, file).kind != "name" or _at(toks, j + 1, file).text != "=":
            raise Uncombinable(f"{file}: export const other than 'export const NAME = ...'")
        _one_declarator(toks, j + 2, file)
    elif kind not in ("function", "class"):
        raise Uncombinable(f"{file}: export {kind} (the combination takes functions, classes and consts)")
    name = _at(toks, j, file)
    if name.kind != "name":
        raise Uncombinable(f"{file}: an export it cannot name at offset {toks[k].start}")
    module.exports.append((name.text, name.text))
    module.export_spans.append(keyword)


def _one_declarator(toks: list[Token], j: int, file: str) -> None:
    """From the value of `export const NAME =`: no second name before the statement's end."""
    for tok in toks[j:]:
        if tok.depth:
            continue
        if tok.text == ";" or (tok.kind == "name" and tok.text in ("export", "import")):
            return
        if tok.text == ",":
            raise Uncombinable(f"{file}: export const with more than one name")


# -- combined -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Combined:
    text: str
    members: tuple[str, ...]  # every file in it, the entry last (the order they run in)


def combine(entry: str, read: Callable[[str], str | None]) -> Combined:
    """The entry module and every module it imports statically, as one module. `read(file)` is a
    file's source (None: missing). Uncombinable for what it does not support."""
    parsed: dict[str, Module] = {}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(file: str) -> None:
        if file in parsed:
            return
        if file in visiting:
            raise Uncombinable(f"{file}: an import cycle")
        source = read(file)
        if source is None:
            raise Uncombinable(f"{file}: imported, but there is no such file")
        visiting.add(file)
        module = parse(file, source, entry=file == entry)
        for imported in module.imports:
            visit(imported.file)
        visiting.discard(file)
        parsed[file] = module
        order.append(file)

    visit(entry)
    names = {file: f"{PREFIX}{i}_{re.sub(r'[^A-Za-z0-9_]', '_', file.removesuffix('.js'))}"
             for i, file in enumerate(order)}
    parts = [f"// {entry} as served: {', '.join(order)}, combined by the service so the page asks for one\n"
             "// file (issue 42; broadcaster/http/module_combine.py). Each module below is its source file,\n"
             "// unchanged but for its import and export keywords, in a function of its own.\n"]
    for file in order:
        module = parsed[file]
        for imported in module.imports:
            offered = {exported for exported, _ in parsed[imported.file].exports}
            missing = [name for name, _ in imported.names if name not in offered]
            if missing:
                raise Uncombinable(f"{file}: imports {', '.join(missing)}, which {imported.file} does not "
                                   "export")
        bindings = "".join(_binding(imported, names[imported.file]) for imported in module.imports)
        if file == entry:  # at the top level: its exports stay the combined module's
            parts.append(f"// -- {file} --\n{bindings}{_without(module.source, module.import_spans)}")
        else:
            body = _without(module.source, module.import_spans + module.export_spans)
            fields = ", ".join(f"{exported}: {local}" for exported, local in module.exports)
            parts.append(f"// -- {file} --\nconst {names[file]} = (() => {{ {bindings}{body}\n"
                         f"return Object.freeze({{ __proto__: null, {fields} }});\n}})();\n")
    return Combined("".join(parts), tuple(order))


def _binding(imported: Import, name: str) -> str:
    if imported.namespace is not None:
        return f"const {imported.namespace} = {name}; "
    if imported.names:
        names = ", ".join(n if n == a else f"{n}: {a}" for n, a in imported.names)
        return f"const {{ {names} }} = {name}; "
    return ""  # import './x.js': run, nothing bound


def _without(source: str, spans: list[tuple[int, int]]) -> str:
    """The source with the spans taken out, each line kept (a removed statement leaves its line breaks)."""
    out, at = [], 0
    for start, end in sorted(spans):
        out.append(source[at:start])
        out.append("\n" * source.count("\n", start, end))
        at = end
    out.append(source[at:])
    return "".join(out)
