"""ES modules combined at serve time (issue 42, broadcaster/http/module_combine.py): the combined module
does what the modules do, loaded one by one, in Node (a real ES module loader); what it does not take
is refused with the file named, never combined wrong; the viewer's own modules combine and parse."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from broadcaster.http.module_combine import Uncombinable, combine, parse, tokens

VIEWER = Path(__file__).resolve().parent.parent / "viewer"
needs_node = pytest.mark.skipif(shutil.which("node") is None,
                                reason="needs Node.js (scripts/test installs it)")

# Each module logs when it runs, has names of its own that others share, and exports in every form the
# combination takes; the entry prints what it sees.
MODULES = {
    "shared.js": """
const secret = 'shared';   // the same top-level name as in other.js: each keeps its own
let count = 0;
export function next() { count += 1; return `${secret}:${count}`; }
export const TEXT = "export default 1; import x from './nowhere.js'";  // words in a string
export class Thing { name() { return `a ${'}'} thing`; } }
globalThis.log.push('shared', typeof this);
""",
    "other.js": """
import { next as bump, TEXT } from './shared.js';
const secret = 'other';
const notExported = /["'`]\\/import\\s/g;  // a regular expression with quotes and a slash
const ratio = 10 / 2 / 5;                   // divisions, not regular expressions
/* export const hidden = 1; */
// import './nowhere.js';
async function later() { return secret; }
function* numbers() { yield 1; yield 2; }
const template = `${`nested ${secret}`} export`;
export { later as laterName, numbers, template };
export const VALUES = { bumped: bump(), text: TEXT.length, ratio, re: notExported.source };
globalThis.log.push('other');
""",
    "side.js": """
globalThis.log.push('side');
""",
    "prelude.js": """
globalThis.log = [];
""",
    "entry.js": """
import './prelude.js';  // imports run before the module that imports them: the log is made first
import * as Shared from './shared.js';
import { laterName, numbers, template, VALUES } from './other.js';
import './side.js';
globalThis.log.push('entry');
const result = {
  log: globalThis.log, again: Shared.next(), thing: new Shared.Thing().name(), values: VALUES,
  later: await laterName(), numbers: [...numbers()], template, keys: Object.keys(Shared).sort(),
};
console.log(JSON.stringify(result));
export const ENTRY = 'entry';  // the entry's own exports stay the combined module's
""",
}


def run_node(path: Path) -> object:
    run = subprocess.run(["node", str(path)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@needs_node
def test_the_combined_module_does_what_the_modules_do(tmp_path: Path) -> None:
    files = MODULES
    apart = tmp_path / "apart"
    apart.mkdir()
    (apart / "package.json").write_text('{"type": "module"}')
    for name, text in files.items():
        (apart / name).write_text(text)
    combined = combine("entry.js", files.get)
    (tmp_path / "combined.mjs").write_text(combined.text)
    expected = run_node(apart / "entry.js")
    assert expected["log"] == ["shared", "undefined", "other", "side", "entry"]  # type: ignore[index]
    assert run_node(tmp_path / "combined.mjs") == expected
    # Dependencies first, in the order of the import statements; the entry last.
    assert combined.members == ("prelude.js", "shared.js", "other.js", "side.js", "entry.js")
    # One module: no import left; the only export is the entry's own.
    assert [t.text for t in tokens(combined.text) if t.text in ("import", "export")] == ["export"]
    assert "export const ENTRY = 'entry';" in combined.text


@pytest.mark.parametrize(("source", "why"), [
    ("import x from './a.js';", "default import"),
    ("export default 1;", "export default"),
    ("export let n = 1;", "export let"),
    ("export var n = 1;", "export var"),
    ("export * from './a.js';", "export \\*"),
    ("export { a } from './a.js';", "export ... from"),
    ("export const a = 1, b = 2;", "more than one name"),
    ("export const { a } = {};", "export const other than"),
    ("console.log(import.meta.url);", "import.meta"),
    ("await Promise.resolve();", "await at its top level"),
    ("import { a } from '../a.js';", "not a './<file>'"),
    ("import { a } from 'https://x.example/a.js';", "not a './<file>'"),
    ("import { a } from './a.js' with { type: 'json' };", "import attributes"),
    ("if (x) { f(1; }", "unbalanced"),
    ("const s = 'never closed;\n", "string never closed"),
    ("const t = `never closed;", "template never closed"),
    ("/* never closed", "comment never closed"),
    ("const __viewer_module_x = 1;", "uses the name"),
])
def test_what_it_does_not_take_is_refused_naming_the_file(source: str, why: str) -> None:
    with pytest.raises(Uncombinable, match=f"^m.js: .*{why}"):
        parse("m.js", source)


def test_imports_that_cannot_be_met_are_refused() -> None:
    with pytest.raises(Uncombinable, match="a.js: an import cycle"):
        combine("a.js", {"a.js": "import './b.js';", "b.js": "import './a.js';"}.get)
    with pytest.raises(Uncombinable, match="b.js: imported, but there is no such file"):
        combine("a.js", {"a.js": "import './b.js';"}.get)
    with pytest.raises(Uncombinable, match="a.js: imports nope, which b.js does not export"):
        combine("a.js", {"a.js": "import { nope } from './b.js';", "b.js": "export const yes = 1;"}.get)


def test_the_lexer_tells_code_from_text() -> None:
    source = ("a = b / c / d; e = /[/\"']/.test(f) ? `x${ {y: '}'} }` : 'import'; // export\n"
              "export const g = 1;")
    kinds = [(t.kind, t.text) for t in tokens(source)]
    assert ("regex", "/[/\"']/") in kinds and ("punct", "/") in kinds
    assert ("string", "'import'") in kinds and ("name", "export") in kinds
    assert [t.text for t in tokens(source) if t.kind == "name" and t.text == "export"] == ["export"]
    assert parse("m.js", source).exports == [("g", "g")]
    # A word of the same name elsewhere is not a statement: a property, a key, dynamic import().
    module = parse("m.js", "o.import = 1; const k = { export: 2 }; import('./x.js'); export function f() {}")
    assert module.imports == [] and module.exports == [("f", "f")]


def viewer_static_imports(entry: str) -> set[str]:
    found, todo = set(), [entry]
    while todo:
        text = (VIEWER / todo.pop()).read_text()
        for m in re.finditer(r"""^import\b[^;]*?from\s*'\./([^']+)'|^import\s*'\./([^']+)'""", text, re.M):
            name = m.group(1) or m.group(2)
            if name not in found:
                found.add(name)
                todo.append(name)
    return found


@needs_node
def test_the_viewers_modules_combine_into_one_that_parses(tmp_path: Path) -> None:
    combined = combine("viewer.js",
                       lambda name: (VIEWER / name).read_text() if (VIEWER / name).is_file() else None)
    assert set(combined.members) == viewer_static_imports("viewer.js") | {"viewer.js"}
    assert {"player.js", "stats.js", "status.js"} <= set(combined.members)
    assert "p2p.js" not in combined.members  # imported dynamically, only when P2P is on
    (tmp_path / "viewer.mjs").write_text(combined.text)
    run = subprocess.run(["node", "--check", str(tmp_path / "viewer.mjs")], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr
    # The vendored, minified P2P engine's modules are read right too (what they export, whom they import).
    name = "p2p-media-loader-hlsjs.es.min.js"
    hlsjs = parse(name, (VIEWER / name).read_text())
    assert [i.file for i in hlsjs.imports] == ["p2p-media-loader-core.es.min.js"]
    assert [name for name, _ in hlsjs.exports] == ["HlsJsP2PEngine"]
