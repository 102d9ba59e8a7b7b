"""Sphinx configuration of the documentation site (python -m sphinx -W -b html docs docs/_build/html).

Sphinx with MyST rather than MkDocs: MkDocs 1.x has had no release since 2024 and Material for MkDocs is
in maintenance mode, while Sphinx is maintained and MyST reads the Markdown these pages are written in.
The reference pages are written at build time from the code (docs/_ext/reference.py): the settings
from broadcaster/settings/, the metrics from the registry the service builds, the endpoints from the
routes its app registers, so they cannot drift. Built with warnings as errors (-W -n): a broken link
or anchor fails the build, and tests/test_docs_site.py builds it in the suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the checkout's broadcaster, which the reference is read from

project = "hls-broadcaster"
author = "the hls-broadcaster authors"
copyright = "the hls-broadcaster authors, MIT licence"  # noqa: A001 (Sphinx's name)
extensions = ["myst_parser", "reference"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]
myst_heading_anchors = 4  # [text](page.md#a-heading) links to headings, checked like any reference
myst_enable_extensions = ["colon_fence"]
nitpicky = True
html_theme = "furo"
html_title = "hls-broadcaster"
html_static_path: list[str] = []
