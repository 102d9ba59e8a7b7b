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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
                          str(ROOT / "docs"), str(out)], capture_output=True, text=True, timeout=300)
    warnings = [line for line in (run.stdout + run.stderr).splitlines() if "WARNING" in line or "ERROR" in line]
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
    families = {name.removesuffix("_total").removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
                .removesuffix("_created").removesuffix("_info") for name in exported_series()}
    assert sorted(f for f in families if f not in page) == []
