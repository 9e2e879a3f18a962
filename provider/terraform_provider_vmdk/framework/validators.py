"""Attribute validators: checks on known, non-null configuration values, reported on the attribute.

Validators never see unknown values (those come from other resources and are checked again at apply
time, when they are known) and never see null (that is the schema's required/optional business).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from .diagnostics import Diagnostics
from .path import AttributePath

__all__ = [
    "Validator",
    "OneOf",
    "AtLeast",
    "WholeNumber",
    "ValidRegex",
    "NotEmpty",
    "Duration",
    "Check",
    "parse_duration",
]


class Validator(Protocol):
    # Read-only: validators are frozen dataclasses, some compute their description in a property.
    @property
    def description(self) -> str: ...

    def validate(self, value: Any, path: AttributePath, diags: Diagnostics) -> None: ...


@dataclass(frozen=True)
class OneOf:
    allowed: tuple[str, ...]

    @property
    def description(self) -> str:
        return "one of " + ", ".join(f"`{a}`" for a in self.allowed)

    def validate(self, value: Any, path: AttributePath, diags: Diagnostics) -> None:
        if value not in self.allowed:
            diags.error(
                "Invalid attribute value",
                f"{path} must be {self.description.replace('`', '')}; got {value!r}.",
                path,
            )


@dataclass(frozen=True)
class AtLeast:
    minimum: int | float

    @property
    def description(self) -> str:
        return f"at least {self.minimum}"

    def validate(self, value: Any, path: AttributePath, diags: Diagnostics) -> None:
        if value < self.minimum:
            diags.error("Invalid attribute value", f"{path} must be at least {self.minimum}; got {value}.", path)


@dataclass(frozen=True)
class WholeNumber:
    description: str = "a whole number"

    def validate(self, value: Any, path: AttributePath, diags: Diagnostics) -> None:
        if (isinstance(value, float) and not value.is_integer()) or (
            isinstance(value, Decimal) and value != value.to_integral_value()
        ):
            diags.error("Invalid attribute value", f"{path} must be a whole number; got {value}.", path)


@dataclass(frozen=True)
class NotEmpty:
    description: str = "not empty"

    def validate(self, value: Any, path: AttributePath, diags: Diagnostics) -> None:
        if (isinstance(value, str) and not value.strip()) or (isinstance(value, (list, tuple)) and not value):
            diags.error("Invalid attribute value", f"{path} must not be empty.", path)


@dataclass(frozen=True)
class ValidRegex:
    description: str = "a valid regular expression (Python `re` syntax)"

    def validate(self, value: Any, path: AttributePath, diags: Diagnostics) -> None:
        try:
            re.compile(value)
        except re.error as exc:
            diags.error("Invalid regular expression", f"{path}: {exc}.", path)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Parse a Go-style duration ("90s", "1h30m", "2.5m") into seconds; ValueError when malformed."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"{text!r} is not a duration such as \"30s\", \"10m\" or \"1h30m\"")
    return total


@dataclass(frozen=True)
class Duration:
    description: str = 'a duration such as "30s", "10m" or "1h30m"'

    def validate(self, value: Any, path: AttributePath, diags: Diagnostics) -> None:
        try:
            parse_duration(value)
        except ValueError as exc:
            diags.error("Invalid duration", f"{path}: {exc}.", path)


@dataclass(frozen=True)
class Check:
    """An ad-hoc predicate with its own message, for rules too small to deserve a class."""

    predicate: Callable[[Any], bool]
    message: str
    description: str = ""

    def validate(self, value: Any, path: AttributePath, diags: Diagnostics) -> None:
        if not self.predicate(value):
            diags.error("Invalid attribute value", f"{path}: {self.message}", path)


def describe(validators: Iterable[Validator]) -> str:
    return "; ".join(v.description for v in validators if v.description)
