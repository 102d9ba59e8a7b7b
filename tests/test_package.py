"""The installed package is the product: the wheel and sdist built from a copy of this tree, the wheel
installed in a venv that cannot import the checkout (every other test imports the source tree, so none
would see a module the wheel leaves out), and the commands run from there.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from broadcaster import __version__

from .support.installed import (
    ROOT, Built, Venv, build, build_warnings, build_wheel_from_sdist, copy_tree, playing_demo, tracked_files,
)

# One xdist worker builds the wheel and its venv once for the whole module (scripts/test).
pytestmark = [pytest.mark.integration, pytest.mark.package, pytest.mark.xdist_group("package")]


@dataclass
class Installed:
    built: Built
    venv: Venv
    outside: Path  # a working folder outside the checkout and the venv


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tree = copy_tree(tmp_path_factory.mktemp("tree"))
    return build(tree, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = Venv.create(tmp_path_factory.mktemp("venv") / "v", with_test_env=True)
    venv.pip_install("--no-deps", str(built.wheel))
    return Installed(built, venv, tmp_path_factory.mktemp("elsewhere"))


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return {n for n in zf.namelist() if not n.endswith("/")}


def _wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


def test_the_wheel_holds_every_file_git_tracks_in_the_package_and_the_viewer(built: Built) -> None:
    expected = set()
    for name in tracked_files():
        if name.startswith("broadcaster/tracker/node-tests/"):
            continue  # the tracker's own tests (Node's runner) stay in the sdist, as tests/ does
        if name.startswith("broadcaster/"):
            expected.add(name)
        elif name.startswith("viewer/") and not name.startswith("viewer/src/"):
            # The viewer ships inside the package as built; its sources (viewer/src/) stay in the sdist.
            expected.add("broadcaster/" + name)
    names = _wheel_names(built.wheel)
    shipped = {n for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert expected - shipped == set(), "tracked but not in the wheel"
    assert shipped - expected == set(), "in the wheel but not tracked"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)


def test_the_sdist_builds_the_same_wheel(built: Built, tmp_path: Path) -> None:
    again, _ = build_wheel_from_sdist(built.sdist, tmp_path)
    with zipfile.ZipFile(built.wheel) as a, zipfile.ZipFile(again) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        for name in a.namelist():
            if not name.endswith("/RECORD"):  # RECORD differs only if a file does, checked here one by one
                assert a.read(name) == b.read(name), name
    with tarfile.open(built.sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
    for name in ("LICENSE", "README.md", "pyproject.toml", "setup.py", "cloudflared.yml.example"):
        assert name in members, name
    assert "tests/support/installed.py" in members  # the tests travel with the source


def test_the_build_prints_no_warning(built: Built) -> None:
    assert build_warnings(built.log) == []


def test_the_version_has_one_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    init = (ROOT / "broadcaster" / "__init__.py").read_text()
    assert init.count(__version__) == 1


def test_the_wheel_declares_the_dependencies_of_pyproject(built: Built) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def key(req: Requirement, extra: str) -> tuple[str, str, tuple[str, ...], str]:
        return canonicalize_name(req.name), str(req.specifier), tuple(sorted(req.extras)), extra

    declared = {key(Requirement(r), "") for r in project["dependencies"]}
    for extra, reqs in project["optional-dependencies"].items():
        declared |= {key(Requirement(r), extra) for r in reqs}
    meta = _wheel_metadata(built.wheel)
    found = set()
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        extra = ""
        if req.marker is not None:
            # setuptools writes an optional dependency as `name; extra == "demo"`
            extra = str(req.marker).split("==")[1].strip().strip('"')
        found.add(key(req, extra))
    assert found == declared
    assert meta["Version"] == __version__
    assert meta["License-Expression"] == project["license"]
    assert sorted(meta.get_all("Provides-Extra") or []) == sorted(project["optional-dependencies"])


def _run(installed: Installed, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=installed.outside, capture_output=True, text=True, timeout=60)


def test_the_installed_package_is_imported_from_the_venv_not_the_checkout(installed: Installed) -> None:
    where = installed.venv.run_python("import broadcaster; print(broadcaster.__file__)", cwd=installed.outside)
    assert Path(where.strip()).is_relative_to(installed.venv.path), where
    # Every module of the wheel imports there: a subpackage left out fails here by name.
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__") for n in _wheel_names(installed.built.wheel)
                     if n.endswith(".py") and n != "broadcaster/__main__.py")
    code = "import importlib\nfor m in %r: importlib.import_module(m)\nprint('ok')" % modules
    assert installed.venv.run_python(code, cwd=installed.outside).strip() == "ok"
    viewer = installed.venv.run_python(
        "from importlib.resources import files; print(files('broadcaster.viewer').joinpath('index.html').is_file())",
        cwd=installed.outside)
    assert viewer.strip() == "True"


def test_version_and_help_answer_from_the_console_script_and_python_m(installed: Installed) -> None:
    for argv in ([str(installed.venv.script("hls-broadcaster"))],
                 [str(installed.venv.python), "-m", "broadcaster"]):
        version = _run(installed, *argv, "--version")
        assert (version.returncode, version.stdout.strip()) == (0, f"hls-broadcaster {__version__}"), version
        helped = _run(installed, *argv, "--help")
        assert helped.returncode == 0 and "demo" in helped.stdout and "HLS_DIR" in helped.stdout, helped
        for command in ("run", "check", "demo"):
            sub = _run(installed, *argv, command, "--help")
            assert sub.returncode == 0 and sub.stdout.startswith("usage: hls-broadcaster"), (command, sub)
    bad = _run(installed, str(installed.venv.script("hls-broadcaster")), "run")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    # Every required setting missing, a line each, all at once (not one a run).
    lines = bad.stderr.strip().splitlines()
    assert all(line.startswith("hls-broadcaster: error: ") for line in lines), bad.stderr
    assert [line.split()[2] for line in lines] == [
        "HLS_DIR", "S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_BUCKET_NAME"], bad.stderr


async def test_demo_from_the_installed_wheel_plays_and_stops_on_ctrl_c(installed: Installed) -> None:
    argv = [str(installed.venv.script("hls-broadcaster")), "demo", "--port", "0"]
    async with playing_demo(argv, installed.outside) as demo:
        pass
    assert demo.lines[-1] == "stopped; nothing left running."
    assert not [line for line in demo.lines if "Traceback" in line or " ERROR " in line]


async def test_demo_p2p_from_the_installed_wheel_runs_the_tracker_it_ships(installed: Installed) -> None:
    """`demo --p2p` from the wheel runs the tracker it ships; Ctrl-C stops the tracker too."""
    if shutil.which("node") is None or shutil.which("npm") is None:  # scripts/test installs them
        pytest.fail("node and npm are needed for the tracker: apt-get install nodejs npm (scripts/test does)")
    argv = [str(installed.venv.script("hls-broadcaster")), "demo", "--port", "0", "--p2p"]
    async with playing_demo(argv, installed.outside) as demo:
        said = [line for line in demo.lines if "P2P:" in line]
        async with aiohttp.ClientSession() as http, http.get(f"{demo.url}/config.json") as resp:
            config = await resp.json()
        assert "p2p" in config, (said, config)
        tracker = config["p2p"]["trackers"][0]
        assert any(tracker in line for line in said), said
        async with aiohttp.ClientSession() as http, http.ws_connect(tracker) as ws:  # as P2P Media Loader does
            assert not ws.closed


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Iterator[Path]:
    yield copy_tree(tmp_path / "hls-broadcaster")


# Its own xdist group: it shares no fixture with the module.
@pytest.mark.readme
@pytest.mark.xdist_group("readme")
# A guard against a hang, not a time it must keep.
@pytest.mark.timeout(900)
async def test_the_readmes_first_command_in_a_clean_venv(fresh_clone: Path, tmp_path: Path) -> None:
    """Exactly the README's first command, in a venv with nothing but pip."""
    readme = (ROOT / "README.md").read_text()
    assert "pip install '.[demo]' && hls-broadcaster demo" in readme
    venv = Venv.create(tmp_path / "venv", with_test_env=False)
    venv.pip_install(".[demo]", cwd=fresh_clone)
    # (`python -c` would put the working folder first on sys.path; the console script does not)
    where = venv.run_python("import broadcaster; print(broadcaster.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv.path), where
    async with playing_demo([str(venv.script("hls-broadcaster")), "demo", "--port", "0"], fresh_clone):
        pass

