"""The documentation site (docs/, Sphinx with MyST) builds with warnings as errors: a broken link or anchor,
a page outside the table of contents or a reference that cannot be written fails here. Its reference
pages are written from the code at build time (docs/_ext/reference.py); this checks they hold every
setting and every exported series, so a new one cannot be missing from the docs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from broadcaster.settings import SETTINGS
from tests.support.metrics import exported_series

ROOT = Path(__file__).resolve().parent.parent

# One worker builds the site once for the module (scripts/test's --dist loadgroup): spread over three
# workers, each built it again (3 x 19 s in a full run at load 15).
pytestmark = pytest.mark.xdist_group("docs_site")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", str(ROOT / "docs"),
               str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    said = (run.stdout + run.stderr).splitlines()
    warnings = [line for line in said if "WARNING" in line or "ERROR" in line]
    assert run.returncode == 0 and not warnings, "\n".join(warnings) or run.stderr[-3000:]
    return out


def test_the_site_builds_with_warnings_as_errors(site: Path) -> None:
    assert (site / "index.html").is_file() and (site / "searchindex.js").is_file()


def test_the_settings_reference_has_every_setting(site: Path) -> None:
    page = (site / "reference" / "settings.html").read_text()
    code = '<code class="docutils literal notranslate"><span class="pre">'
    assert [s.name for s in SETTINGS if f"{code}{s.name}<" not in page] == []


def test_the_metrics_reference_has_every_series(site: Path) -> None:
    page = (site / "reference" / "metrics.html").read_text()
    suffixes = ("_total", "_bucket", "_sum", "_count", "_created", "_info")
    families = {next((n.removesuffix(x) for x in suffixes if n.endswith(x)), n) for n in exported_series()}
    assert sorted(f for f in families if f not in page) == []


def test_every_route_docs_entry_names_a_route_and_every_route_has_one(tmp_path: Path) -> None:
    """broadcaster/http/route_docs.py against the routes a service with every feature on registers (the
    build refuses a route without an entry; this refuses an entry without a route)."""
    import asyncio

    from broadcaster.http.route_docs import ROUTE_DOCS
    from broadcaster.service import Service
    from broadcaster.settings import load_settings

    (tmp_path / "hls").mkdir()
    service = Service(load_settings(environ={
        "HLS_DIR": str(tmp_path / "hls"), "STATE_DIR": str(tmp_path / "state"),
        "S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_BUCKET_NAME": "docs",
        "R2_PUBLIC_URL": "https://cdn.example", "P2P_TRACKERS": "wss://tracker.example/",
        "OWNCAST_URL": "https://owncast.example",
        "PRIVATE": "true", "PRIVATE_SECRET": "docs-" * 8,  # and its /live/access
        # and a second bucket as a third pathway: its routes and metrics too
        "PATHWAYS": "bucket,backup,vm", "BACKUP_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "BACKUP_ACCESS_KEY_ID": "docs", "BACKUP_SECRET_ACCESS_KEY": "docs", "BACKUP_BUCKET_NAME": "backup",
        "BACKUP_PUBLIC_URL": "https://backup.example",
    }))  # fmt: skip
    try:
        routes = set()
        for route in service.app.router.routes():
            info = route.resource.get_info() if route.resource is not None else {}
            routes.add((route.method, str(info.get("path") or info.get("formatter"))))
    finally:
        asyncio.run(service.stop())
    paths = {path for _method, path in routes}
    keys = {f"{method} {path}" for method, path in routes} | paths
    assert sorted(set(ROUTE_DOCS) - keys) == []
    undocumented = [p for p in paths if p not in ROUTE_DOCS and not any(k.endswith(" " + p) for k in ROUTE_DOCS)]
    assert sorted(undocumented) == []
