"""Reading back what was saved: every value checked at the boundary, so a crafted or damaged file raises
ValueError naming the value, never another error or a number that breaks something later."""

from __future__ import annotations

import re
import reprlib
from typing import Any

INT64 = (1 << 63) - 1
# Text the service wrote into its state and may write into a playlist again: one visible line.
_LINE = re.compile(r"[^\x00-\x1f\x7f]*")
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlevel = 2


def describe(value: object) -> str:
    """A value for an error message: short, one line."""
    return _short.repr(value)


def integer(value: object, what: str, low: int = 0, high: int = INT64) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{what} is {describe(value)}, not a whole number from {low} to {high}")
    return value


def number(value: object, what: str, low: float = 0.0, high: float = 1e15) -> float:
    if (type(value) is not int and type(value) is not float) or not low <= value <= high:  # NaN: false
        raise ValueError(f"{what} is {describe(value)}, not a number from {low:g} to {high:g}")
    return float(value)


def flag(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{what} is {describe(value)}, not true or false")
    return value


def text(value: object, what: str, max_length: int = 8192, *, one_line: bool = True) -> str:
    """Text; one_line: no control characters (it may be written into a playlist again)."""
    if type(value) is not str or len(value) > max_length or (one_line and not _LINE.fullmatch(value)):
        raise ValueError(f"{what} is {describe(value)}, not one line of text up to {max_length} characters")
    return value


def array(value: object, what: str, max_length: int) -> list[Any]:
    if type(value) is not list or len(value) > max_length:
        raise ValueError(f"{what} is {describe(value)}, not a list of up to {max_length} items")
    return value


def mapping(value: object, what: str, max_length: int) -> dict[str, Any]:
    if type(value) is not dict or len(value) > max_length:
        raise ValueError(f"{what} is {describe(value)}, not an object of up to {max_length} keys")
    return value


def field(data: dict[str, Any], key: str, what: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise ValueError(f"{what}: {key} is missing") from None
