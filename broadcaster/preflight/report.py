"""`hls-broadcaster check`'s report: one line per check, every secret masked, the failures counted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PrintLine = Callable[[str], None]


@dataclass
class Report:
    print_line: PrintLine
    secrets: list[str]
    failures: int = 0

    def line(self, status: str, text: str) -> None:
        """A check's line, `status` ok, warn, FAIL (counted) or skip."""
        self.failures += status == "FAIL"
        self.note(f"{status:<4} {text}")

    def note(self, text: str) -> None:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        self.print_line(text)

    def ok(self, text: str) -> None:
        self.line("ok", text)

    def warn(self, text: str) -> None:
        self.line("warn", text)

    def skip(self, text: str) -> None:
        self.line("skip", text)

    def fail(self, text: str) -> None:
        self.line("FAIL", text)
