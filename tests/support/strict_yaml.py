"""YAML as yaml.v3 reads it (cloudflared's config, Prometheus' files): PyYAML's safe loader, with a mapping key
defined twice an error rather than the last value kept silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # (PyYAML without stubs)
    """PyYAML's safe loader with yaml.v3's rule: a mapping key defined twice is an error ("mapping key already
    defined"), not the last value kept silently."""


def _unique_mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"mapping key {key!r} already defined at line {seen[key] + 1}", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    return mapping


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def strict_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)
