"""The structure docs/how-it-works.md promises, checked from the source: classes under 300 lines, modules
under 500, functions under 8 parameters, none within 5 % of its cap; the stages in one order, each importing
only stages before it (`source` and `playlist` none, none `http`); shared modules import no stage; every
stage's __init__.py says In:, Out: and Never:; only a variant's playlist holds a ManifestGenerator, and only
the generator writes its state."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "broadcaster"
# The checks fail at the headroom's edge, so a part is split by idea long before the cap becomes a target.
HEADROOM = 0.05
MAX_CLASS_LINES = int(300 * (1 - HEADROOM))  # 285
MAX_MODULE_LINES = int(500 * (1 - HEADROOM))  # 475
# The stages in docs/how-it-works.md's order: each imports only stages before it.
ORDER = ("access", "source", "playlist", "state", "tracker", "bucket", "publish", "steering", "vm", "status", "clips", "http",
         "demo")
MAX_PARAMETERS = 7  # under 8: a function that needs more takes a record of them, or does more than one thing
# Top-level modules: shared ones every stage may use (importing no stage), or ones composing the program.
SHARED_PACKAGES = {"settings"}
SHARED = {"metrics", "lograte", "numbers", "tails", "files", "fixes", "state_dir", "edge", "edge_token"} | SHARED_PACKAGES
# The program composed: the service (with how it starts, listens and delivers) and the check, each a package.
COMPOSER_PACKAGES = {"service", "preflight"}
STAGES = ({p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
          - SHARED_PACKAGES - COMPOSER_PACKAGES)
COMPOSERS = {"__init__", "__main__", "cli"} | COMPOSER_PACKAGES
MAX_FLAT_MODULES = 12  # modules at the top of broadcaster/ (a room for each idea, not a hall of files)
# Only these modules name or build (manifest.resume) a ManifestGenerator: the window, its owner
# (VariantPlaylist), and the restore that builds a saved one for it.
GENERATOR_HOLDERS = {"playlist/manifest.py", "publish/variant_playlist.py", "publish/playlist_memory.py"}
GENERATOR_MAKERS = {"ManifestGenerator", "resume"}


@functools.cache  # parsed once per run, not once per test (the trees are only read)
def modules() -> tuple[tuple[Path, ast.Module], ...]:
    return tuple((path, ast.parse(path.read_text(), str(path))) for path in sorted(PACKAGE.rglob("*.py")))


def from_module(path: Path, node: ast.ImportFrom) -> str | None:
    """The broadcaster module a `from` import in `path` reads ("playlist.manifest"; "" for the package),
    relative ones resolved; None for a module outside it."""
    if node.level:
        here = path.relative_to(PACKAGE).with_suffix("").parts[:-1]
        return ".".join([*here[: len(here) - node.level + 1], *([node.module] if node.module else [])])
    if node.module and f"{node.module}.".startswith("broadcaster."):
        return node.module.removeprefix("broadcaster").lstrip(".")
    return None


def imported(path: Path, tree: ast.Module) -> set[str]:
    """The broadcaster modules `path` imports, as dotted names below the package ("playlist.hls")."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (module := from_module(path, node)) is not None:
            # `from . import x`, `from broadcaster import x`: each name is a module
            names.update(f"{module}.{a.name}".strip(".") if not (node.module and module) else module
                         for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.removeprefix("broadcaster.") for a in node.names if a.name.startswith("broadcaster."))
    return names


def test_every_class_is_under_300_lines_with_headroom() -> None:
    long = [(str(path.relative_to(PACKAGE)), node.name, node.end_lineno - node.lineno + 1)
            for path, tree in modules() for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 >= MAX_CLASS_LINES]
    assert long == []


def test_every_module_is_under_500_lines_with_headroom() -> None:
    long = {str(path.relative_to(PACKAGE)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text().splitlines())) >= MAX_MODULE_LINES}
    assert long == {}


def stage_imports() -> set[tuple[str, str, str]]:
    """(stage, the stage it imports, the module that does) for every import across stages."""
    found = set()
    for path, tree in modules():
        parts = path.relative_to(PACKAGE).parts
        if len(parts) < 2 or parts[0] in COMPOSER_PACKAGES:  # the program composed imports any stage
            continue
        for name in imported(path, tree):
            top = name.split(".")[0]
            if top in STAGES and top != parts[0]:
                found.add((parts[0], top, "/".join(parts)))
    return found


def test_the_stages_have_one_order_and_none_imports_a_stage_after_it() -> None:
    assert set(ORDER) == STAGES, set(ORDER) ^ STAGES  # a new stage takes its place in the order
    rank = {stage: i for i, stage in enumerate(ORDER)}
    upward = sorted(f"{module} ({stage}) imports {other}, after it" for stage, other, module in stage_imports()
                    if rank[other] > rank[stage])
    assert upward == []
    # The order is the tightest the imports allow: steering above publish, below http; vm above steering.
    edges = {(stage, other) for stage, other, _ in stage_imports()}
    assert {("steering", "publish"), ("http", "steering"), ("vm", "steering"), ("http", "vm")} <= edges


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Every parameter a caller may pass (positional, keyword-only, *args and **kwargs), self and cls aside."""
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    return names[1:] if names[:1] in (["self"], ["cls"]) else names


def test_every_function_takes_under_8_parameters() -> None:
    many = [(str(path.relative_to(PACKAGE)), node.name, len(parameters(node)))
            for path, tree in modules() for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and len(parameters(node)) > MAX_PARAMETERS]
    assert many == []


def test_source_and_playlist_import_no_other_stage_and_no_stage_imports_http() -> None:
    wrong = []
    for path, tree in modules():
        parts = path.relative_to(PACKAGE).parts
        stage = parts[0] if len(parts) > 1 and parts[0] not in COMPOSER_PACKAGES else None
        for name in imported(path, tree):
            top = name.split(".")[0]
            if stage in ("source", "playlist") and top != stage and top not in SHARED - {"settings"}:
                wrong.append(f"{'/'.join(parts)} imports {name}")
            if stage is not None and stage != "http" and top == "http":
                wrong.append(f"{'/'.join(parts)} imports {name}")
    assert wrong == []


def test_shared_modules_import_no_stage_and_every_top_level_module_is_shared_or_composes() -> None:
    """A shared module importing a stage would make every stage using it depend on that stage, unseen by
    the checks above (imports under TYPE_CHECKING count too)."""
    top_level = {path.stem for path in PACKAGE.glob("*.py")} | SHARED_PACKAGES | COMPOSER_PACKAGES
    assert top_level == SHARED | COMPOSERS, top_level ^ (SHARED | COMPOSERS)
    assert len(list(PACKAGE.glob("*.py"))) <= MAX_FLAT_MODULES
    wrong = [f"{path.relative_to(PACKAGE)} imports {name}" for path, tree in modules()
             if path.relative_to(PACKAGE).parts[0].removesuffix(".py") in SHARED
             for name in imported(path, tree) if name.split(".")[0] in STAGES]
    assert wrong == []


def generator_uses(path: Path, tree: ast.Module) -> list[str]:
    """How `path` reaches a ManifestGenerator: an import of the class, of manifest.resume or of the module
    (by any route), or the name itself."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (module := from_module(path, node)) is not None:
            for a in node.names:
                name = f"{module}.{a.name}".strip(".")
                if (name == "playlist.manifest" or a.name == "ManifestGenerator"
                        or (module == "playlist.manifest" and a.name in GENERATOR_MAKERS | {"*"})):
                    found.append(f"imports {name}")
        elif isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name == "broadcaster.playlist.manifest"]
        elif (isinstance(node, ast.Name | ast.Attribute)
              and "ManifestGenerator" in (getattr(node, "id", None), getattr(node, "attr", None))):
            found.append(f"names ManifestGenerator (line {node.lineno})")
    return found


def test_only_a_variants_playlist_holds_a_manifest_generator() -> None:
    """A variant's playlist changes in VariantPlaylist's intents alone: no other module builds or holds it."""
    wrong = [f"{rel} {use}" for path, tree in modules()
             if (rel := path.relative_to(PACKAGE).as_posix()) not in GENERATOR_HOLDERS
             for use in generator_uses(path, tree)]
    assert wrong == []
    holders = {path.relative_to(PACKAGE).as_posix() for path, tree in modules() if generator_uses(path, tree)}
    assert holders == GENERATOR_HOLDERS  # each one listed still needs to be (none is listed for nothing)


@functools.cache
def generator_names() -> frozenset[str]:
    """The names a ManifestGenerator keeps its state and intents under: what it assigns on `self`, and its
    methods and properties."""
    tree = ast.parse((PACKAGE / "playlist" / "manifest.py").read_text())
    gen = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ManifestGenerator")
    names = {n.name for n in gen.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"}
    names.update(n.attr for n in ast.walk(gen) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                 and isinstance(n.value, ast.Name) and n.value.id == "self")
    return frozenset(names)


def generator_writes(tree: ast.Module) -> list[str]:
    """The writes in `tree` to a generator's attribute on an object other than `self` (assignment, `del`,
    `setattr`), and the Protocols that declare one as a field (so a holder could write it)."""
    names = generator_names()
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del) and node.attr in names
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
            found.append(f"writes {ast.unparse(node)} (line {node.lineno})")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
              and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) in {"setattr", "__setattr__"}
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value in names
              and not (isinstance(node.args[0], ast.Name) and node.args[0].id == "self")):
            found.append(f"writes {node.args[1].value} by {ast.unparse(node.func)} (line {node.lineno})")
        elif isinstance(node, ast.ClassDef) and any(ast.unparse(b).endswith("Protocol") for b in node.bases):
            found += [f"declares {node.name}.{a.target.id} writable (line {a.lineno})" for a in node.body
                      if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and a.target.id in names]
    return found


def test_only_a_generator_writes_its_own_state() -> None:
    """No module, its owner included, writes a generator's attribute; only the generator's own module does
    (manifest.frozen, manifest.resume)."""
    wrong = [f"{rel} {use}" for path, tree in modules()
             if (rel := path.relative_to(PACKAGE).as_posix()) != "playlist/manifest.py"
             for use in generator_writes(tree)]
    assert wrong == []


def test_the_write_check_sees_every_form() -> None:
    """Every form of write is found (so the test above cannot pass by finding nothing); self's are not."""
    assert {"_hold", "_window", "changes", "keep_through", "target_duration"} <= generator_names()
    forms = {
        "self._gen._hold = 1\n": ["writes self._gen._hold (line 1)"],
        "gen._hold = None\n": ["writes gen._hold (line 1)"],
        "gen.changes += 1\n": ["writes gen.changes (line 1)"],
        "p.window, q = w, 1\n": ["writes p.window (line 1)"],
        "del gen._window\n": ["writes gen._window (line 1)"],
        "setattr(gen, 'changes', 1)\n": ["writes changes by setattr (line 1)"],
        "object.__setattr__(gen, '_hold', 1)\n": ["writes _hold by object.__setattr__ (line 1)"],
        "class P(Protocol):\n    _hold: int | None\n": ["declares P._hold writable (line 2)"],
        "class P(typing.Protocol):\n    target_duration: int\n": ["declares P.target_duration writable (line 2)"],
        "self._hold = 1\nself._window = []\nx = gen.changes\ngen.keep_through(1)\n": [],
        "object.__setattr__(self, 'uris', {})\n": [],
        "class C:\n    changes: int = 0\n": [],
    }
    assert {source: generator_writes(ast.parse(source)) for source in forms} == forms


def test_the_generator_check_sees_every_route() -> None:
    """Every route to a ManifestGenerator is found, and not the playlist stage's other names."""
    lister = PACKAGE / "publish" / "lister.py"
    routes = {
        "from ..playlist.manifest import ManifestGenerator\n": ["imports playlist.manifest.ManifestGenerator"],
        "from ..playlist.manifest import resume\n": ["imports playlist.manifest.resume"],
        "from ..playlist.manifest import *\n": ["imports playlist.manifest.*"],
        "from ..playlist import manifest\n": ["imports playlist.manifest"],
        "from broadcaster.playlist.manifest import ManifestGenerator as G\n":
            ["imports playlist.manifest.ManifestGenerator"],
        "import broadcaster.playlist.manifest\n": ["imports broadcaster.playlist.manifest"],
        "from ..playlist import ManifestGenerator\n": ["imports playlist.ManifestGenerator"],
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..playlist.manifest import ManifestGenerator\n":
            ["imports playlist.manifest.ManifestGenerator"],
        "def f(m):\n    return m.ManifestGenerator(1, None)\n": ["names ManifestGenerator (line 2)"],
        "from ..playlist.manifest import SegmentRejected\nfrom ..playlist.options import WindowOptions\n": [],
    }
    seen = {source: generator_uses(lister, ast.parse(source)) for source in routes}
    assert seen == routes


def test_the_checks_see_imports() -> None:
    """The import walk finds what it must (so the test above cannot pass by finding nothing)."""
    watcher = PACKAGE / "source" / "watcher.py"
    names = imported(watcher, ast.parse(watcher.read_text()))
    assert {"metrics", "lograte", "source.owncast", "files"} <= names
    # ...in a shared module too, under TYPE_CHECKING and inside a function alike.
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from .status.playback import P\ndef f():\n    from .status import playback\n")
    assert {"status.playback", "status"} <= imported(PACKAGE / "metrics.py", tree)
    assert {"source", "playlist", "publish", "http"} <= STAGES


def test_the_parameter_count_sees_every_kind() -> None:
    """Every kind of parameter counts; only a first self or cls does not."""
    tree = ast.parse("class C:\n    def f(self, a, /, b, *c, d, e=1, **f): pass\n"
                     "def g(self_like, cls): pass\n")
    counted = {node.name: parameters(node) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert counted == {"f": ["a", "b", "d", "e", "c", "f"], "g": ["self_like", "cls"]}


def test_every_stage_says_what_comes_in_what_goes_out_and_what_it_must_never_do() -> None:
    """Each stage's __init__.py docstring: In:, Out: and Never:, the first thing a newcomer reads."""
    silent = {stage: [part for part in ("In:", "Out:", "Never:") if part not in (doc or "")]
              for stage in sorted(STAGES)
              if (doc := ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text())))
              is None or not all(part in doc for part in ("In:", "Out:", "Never:"))}
    assert silent == {}
