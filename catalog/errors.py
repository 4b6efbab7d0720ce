"""The one catalog error: each problem names the file, the JSON pointer and the rule."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def json_pointer(path: Iterable[object]) -> str:
    """RFC 6901 pointer of a path; the whole document is '/'."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "/"


@dataclass(frozen=True)
class CatalogIssue:
    """One problem in one catalog file."""

    file: str
    pointer: str
    message: str
    rule: str

    def __str__(self) -> str:
        return f"{self.file}: {self.pointer}: {self.message} [{self.rule}]"


class CatalogError(Exception):
    """A catalog could not be loaded; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[CatalogIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))
