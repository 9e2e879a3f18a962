"""Diagnostics: the only way errors and warnings reach a Terraform user.

Every failure a user can cause or meet becomes a ``Diagnostic`` with a summary, a detail that says what
to do, and, where one attribute is at fault, its path, so Terraform underlines that attribute in the
configuration. Code deep in a request raises ``DiagnosticError`` instead of threading a list through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from .path import AttributePath

__all__ = ["Severity", "Diagnostic", "Diagnostics", "DiagnosticError"]


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    summary: str
    detail: str = ""
    path: AttributePath | None = None

    def __str__(self) -> str:
        where = f" [{self.path}]" if self.path is not None else ""
        return f"{self.severity.value}: {self.summary}{where}: {self.detail}"


class Diagnostics:
    """An ordered collection of diagnostics with the two questions everyone asks: any errors? add one."""

    def __init__(self, items: Iterable[Diagnostic] = ()) -> None:
        self._items: list[Diagnostic] = list(items)

    def error(self, summary: str, detail: str = "", path: AttributePath | str | None = None) -> None:
        self._items.append(Diagnostic(Severity.ERROR, summary, detail, _as_path(path)))

    def warning(self, summary: str, detail: str = "", path: AttributePath | str | None = None) -> None:
        self._items.append(Diagnostic(Severity.WARNING, summary, detail, _as_path(path)))

    def append(self, diag: Diagnostic) -> None:
        self._items.append(diag)

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self._items.extend(other)

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self._items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self._items if d.severity is Severity.ERROR]

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __repr__(self) -> str:
        return f"Diagnostics({self._items!r})"


class DiagnosticError(Exception):
    """Raised to abort a request with diagnostics (at least one of them an error)."""

    def __init__(self, summary: str, detail: str = "", path: AttributePath | str | None = None) -> None:
        super().__init__(f"{summary}: {detail}" if detail else summary)
        self.diagnostics = Diagnostics()
        self.diagnostics.error(summary, detail, path)

    @classmethod
    def of(cls, diags: Diagnostics) -> DiagnosticError:
        err = cls.__new__(cls)
        Exception.__init__(err, "; ".join(str(d) for d in diags))
        err.diagnostics = diags
        return err


def _as_path(path: AttributePath | str | None) -> AttributePath | None:
    if path is None or isinstance(path, AttributePath):
        return path
    return AttributePath.parse(path)
