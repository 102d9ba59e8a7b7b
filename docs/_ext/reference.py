"""Directives that write the reference tables from the code, at build time, so they cannot drift.

- `{settings-reference}`: every setting of broadcaster/settings/ (SETTINGS, and the <ID>_* block of another bucket), its default and its help.
- `{metrics-reference}`: every series the service exports, from the registry a Service builds.
- `{endpoints-reference}`: every route the service's app registers, from a Service built with every
  feature on, described by broadcaster/http/route_docs.py.
- `{modules-reference}`: every module of the folders named in its content, with its docstring's first
  paragraph.

A Service is built, never started: nothing listens and nothing reaches the bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


@contextlib.contextmanager
def _service() -> Iterator[Any]:
    """A Service with every feature on, in a temporary folder; built, not started."""
    from broadcaster.service import Service
    from broadcaster.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="hls-broadcaster-docs-") as tmp:
        (Path(tmp) / "hls").mkdir()
        settings = load_settings(environ={
            "HLS_DIR": f"{tmp}/hls", "STATE_DIR": f"{tmp}/state", "S3_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_ACCESS_KEY_ID": "docs", "AWS_SECRET_ACCESS_KEY": "docs", "AWS_BUCKET_NAME": "docs",
            "R2_PUBLIC_URL": "https://cdn.example", "P2P_TRACKERS": "wss://tracker.example/",
            "OWNCAST_URL": "https://owncast.example",
            "PRIVATE": "true", "PRIVATE_SECRET": "docs-" * 8,  # and its /live/access
            # and a second bucket as a third pathway: its routes and metrics too
            "PATHWAYS": "bucket,backup,vm", "BACKUP_S3_ENDPOINT_URL": "http://127.0.0.1:9",
            "BACKUP_ACCESS_KEY_ID": "docs", "BACKUP_SECRET_ACCESS_KEY": "docs", "BACKUP_BUCKET_NAME": "backup",
            "BACKUP_PUBLIC_URL": "https://backup.example",
        })  # fmt: skip
        service = Service(settings)
        try:
            yield service
        finally:
            asyncio.run(service.stop())


class _Table(SphinxDirective):
    has_content = False

    def lines(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(self.lines(), source=self.get_source_info()[0]), self.content_offset,
                                container)
        return list(container.children)


class SettingsReference(_Table):
    def lines(self) -> list[str]:
        from broadcaster.settings import SETTINGS
        from broadcaster.settings.buckets import bucket_rows

        rows = ["| setting | default | what it does |", "| --- | --- | --- |"]
        for s in SETTINGS:
            default = "required" if s.default is None else (f"`{s.default}`" if s.default != "" else "empty")
            rows.append(f"| `{s.name}` | {_cell(default)} | {_cell(s.doc or s.help)} |")
        # Every other bucket PATHWAYS names: the same six, after its ID (`backup`: BACKUP_S3_ENDPOINT_URL...).
        for s in bucket_rows("<id>"):
            default = f"`{s.default}`" if s.default else "required with `<id>` in `PATHWAYS`"
            rows.append(f"| `{s.name}` | {_cell(default)} | another bucket's: {_cell(s.help)} |")
        return rows


class MetricsReference(_Table):
    def lines(self) -> list[str]:
        suffix = {"counter": "_total", "histogram": " (`_bucket`, `_sum`, `_count`)", "info": "_info"}
        rows = ["| series | type | labels | what it counts |", "| --- | --- | --- | --- |"]
        with _service() as service:
            registry = service.metrics.registry
            labels_of = {getattr(c, "_name", None): tuple(getattr(c, "_labelnames", ()))
                         for c in list(registry._collector_to_names)}  # noqa: SLF001 (the registry's own map)
            for family in sorted(registry.collect(), key=lambda f: f.name):
                labels = sorted({k for s in family.samples for k in s.labels if k not in ("le", "quantile")}
                                | set(labels_of.get(family.name, ())))
                shown = ", ".join(f"`{label}`" for label in labels) or "none"
                name = f"`{family.name}{suffix.get(family.type, '')}`" if family.type != "histogram" else \
                    f"`{family.name}`{suffix['histogram']}"
                rows.append(f"| {name} | {family.type} | {shown} | {_cell(family.documentation)} |")
        return rows


class EndpointsReference(_Table):
    def lines(self) -> list[str]:
        from broadcaster.http.route_docs import ROUTE_DOCS

        rows = ["| path | methods | what it answers |", "| --- | --- | --- |"]
        with _service() as service:
            grouped: dict[str, tuple[str, list[str]]] = {}  # ROUTE_DOCS key -> path, methods
            for path, method in routes(service.app):
                key = f"{method} {path}" if f"{method} {path}" in ROUTE_DOCS else path
                if key not in ROUTE_DOCS:
                    raise ValueError(f"{method} {path} has no entry in broadcaster/http/route_docs.py")
                grouped.setdefault(key, (path, []))[1].append(method)
            for key, (path, methods) in grouped.items():
                rows.append(f"| `{path}` | {', '.join(methods)} | {_cell(ROUTE_DOCS[key])} |")
        return rows


def routes(app: Any) -> list[tuple[str, str]]:
    """(path as aiohttp formats it, method) of every route of `app`, in the order they were added."""
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        out.append((str(info.get("path") or info.get("formatter") or ""), route.method))
    return out


class ModulesReference(_Table):
    """Every Python module under the folders given (relative to the repository), with the first sentence of its
    docstring: what each file is for, read from the files themselves."""

    has_content = True

    def lines(self) -> list[str]:
        import ast

        root = Path(__file__).resolve().parents[2]
        rows = ["| file | what it is for |", "| --- | --- |"]
        for folder in self.content:
            for path in sorted((root / folder.strip()).glob("*.py")):
                doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
                if path.name == "__init__.py" and not doc:
                    continue
                first = doc.split("\n\n")[0]
                if not first:
                    raise ValueError(f"{path.relative_to(root)} has no docstring: the modules reference needs one")
                rows.append(f"| `{path.relative_to(root).as_posix()}` | {_cell(first)} |")
        return rows


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("settings-reference", SettingsReference)
    app.add_directive("metrics-reference", MetricsReference)
    app.add_directive("endpoints-reference", EndpointsReference)
    app.add_directive("modules-reference", ModulesReference)
    return {"parallel_read_safe": True, "version": "1"}
