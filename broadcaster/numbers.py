"""Whole numbers from text the service does not control, in ASCII digits only (int() takes others)."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")
INT64_DIGITS = 19  # any number of 19 digits or fewer fits in an int64


def whole_number(text: str, most_digits: int = INT64_DIGITS) -> int | None:
    """The number `text` spells in 1 to `most_digits` ASCII digits, else None."""
    if len(text) > most_digits or not _DIGITS.fullmatch(text):
        return None
    return int(text)
