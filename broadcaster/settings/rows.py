"""A setting declared once, as the record field it fills: `port: int = setting(...)`. The field's type
is what its parser returns (mypy checks the annotation against it), its name the field's in capitals,
and the table (`rows`) is read from the record's fields, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar, cast

T = TypeVar("T")
_ROW = "setting"


@dataclass(frozen=True)
class Setting:
    name: str
    help: str
    parse: Callable[[str], Any]
    default: str | None = None  # None: required
    secret: bool = False
    # What the documentation's settings reference says of it (Markdown, docs/reference/settings.md, which
    # is written from these when the site is built; empty: `help`, the one line `--help` prints).
    doc: str = ""
    attr: str = ""  # the record's field it fills

    @property
    def flag(self) -> str:
        return "--" + self.name.lower().replace("_", "-")


def setting(help: str, parse: Callable[[str], T], default: str | None = None, *, secret: bool = False,
            doc: str = "", name: str = "") -> T:
    """A record's field and the setting that fills it (`name`: when it is not the field's in capitals)."""
    return cast(T, field(repr=not secret, metadata={_ROW: Setting(name, help, parse, default, secret, doc)}))


def rows(record: type) -> tuple[Setting, ...]:
    """The settings a record's fields are declared with, in its order."""
    return tuple(replace(row, name=row.name or f.name.upper(), attr=f.name)
                 for f in fields(record) if (row := f.metadata.get(_ROW)) is not None)
