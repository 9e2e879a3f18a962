"""Values Terraform does not know yet, and what it may already know about them.

During planning an attribute may be "known after apply". Such a value is an ``Unknown``; ``UNKNOWN`` is
the plain one. Terraform >= 1.6 may add ``Refinements`` (not null, a string prefix, number bounds,
collection length bounds), which travel in msgpack extension 12; this module holds them as plain data
and converts them to and from that extension's decoded map, leaving the msgpack bytes to the codec.

``Unknown`` refuses ``bool()``, so ``if plan["x"]:`` cannot silently treat "not known yet" as truthy:
test ``is_unknown(v)`` first.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .dynamic_value import DynamicValue
from .numbers import NumberValue, number_from_wire, number_to_wire
from .types import CollectionType, CtyType, DynamicType, Number, String

__all__ = ["UNKNOWN", "Unknown", "Refinements", "is_unknown"]


@dataclass(frozen=True, slots=True)
class Refinements:
    """What Terraform (>= 1.6) may know about an unknown value. ``None`` fields are "no information".

    ``nullness``: True = will be null, False = definitely not null. Number bounds are
    ``(number, inclusive)``; length bounds are inclusive ints (collections only).
    """

    nullness: bool | None = None
    string_prefix: str | None = None
    number_lower: tuple[NumberValue, bool] | None = None
    number_upper: tuple[NumberValue, bool] | None = None
    length_lower: int | None = None
    length_upper: int | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, f) is not None for f in self.__slots__)

    def __repr__(self) -> str:
        set_fields = (f"{f}={getattr(self, f)!r}" for f in self.__slots__ if getattr(self, f) is not None)
        return f"Refinements({', '.join(set_fields)})"

    @classmethod
    def from_wire(cls, wire: object) -> Refinements | None:
        """Read the decoded map of an ext-12 payload leniently: bad or unknown entries are dropped, never
        raised (refinements are advisory). ``None`` when nothing usable is left."""
        if not isinstance(wire, dict):
            return None
        fields = {name: v for key, name, read, _ in _WIRE_FIELDS if (v := read(wire.get(key))) is not None}
        r = cls(**fields)
        return r if r else None

    def to_wire(self) -> dict[int, Any]:
        """The msgpack map for an ext-12 payload (only the entries that are set)."""
        return {key: write(v) for key, name, _, write in _WIRE_FIELDS if (v := getattr(self, name)) is not None}

    def for_type(self, ty: CtyType) -> Refinements | None:
        """Only the refinements cty allows for ``ty`` (newer cores reject the others)."""
        if isinstance(ty, DynamicType):
            return None
        kw: dict[str, Any] = {"nullness": self.nullness}
        if ty == String:
            kw["string_prefix"] = self.string_prefix or None
        if ty == Number:
            kw["number_lower"] = self.number_lower
            kw["number_upper"] = self.number_upper
        if isinstance(ty, CollectionType):
            kw["length_lower"] = self.length_lower
            kw["length_upper"] = self.length_upper
        r = Refinements(**kw)
        return r if r else None


def _read_bool(v: object) -> bool | None:
    return v if isinstance(v, bool) else None


def _read_str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _read_bound(v: object) -> tuple[NumberValue, bool] | None:
    if not (isinstance(v, list) and len(v) == 2 and isinstance(v[1], bool)):
        return None
    try:
        return (number_from_wire(v[0]), v[1])
    except (ValueError, TypeError):
        return None


def _read_length(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _write_bound(bound: tuple[NumberValue, bool]) -> list[Any]:
    return [number_to_wire(bound[0]), bool(bound[1])]


# ext-12 map key, Refinements field, how to read the wire entry (None = drop it), how to write the field.
_WIRE_FIELDS: tuple[tuple[int, str, Callable[[Any], Any], Callable[[Any], Any]], ...] = (
    (1, "nullness", _read_bool, lambda v: v),
    (2, "string_prefix", _read_str, lambda v: unicodedata.normalize("NFC", v)),
    (3, "number_lower", _read_bound, _write_bound),
    (4, "number_upper", _read_bound, _write_bound),
    (5, "length_lower", _read_length, int),
    (6, "length_upper", _read_length, int),
)


class Unknown:
    """A value Terraform does not know yet (decided during apply).

    Immutable; equal when the refinements are equal, so ``v == UNKNOWN`` tests for an *unrefined*
    unknown while ``is_unknown(v)`` tests for any unknown.
    """

    __slots__ = ("refinements",)
    refinements: Refinements | None

    def __init__(self, refinements: Refinements | None = None) -> None:
        if refinements is not None and not isinstance(refinements, Refinements):
            raise TypeError(f"refinements must be Refinements, got {refinements!r}")
        object.__setattr__(self, "refinements", refinements if refinements else None)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Unknown is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown) and other.refinements == self.refinements

    def __hash__(self) -> int:
        return hash(("cty-unknown", self.refinements))

    def __bool__(self) -> bool:
        raise TypeError("the truth of an unknown value is not known; test is_unknown(v) first")

    def __repr__(self) -> str:
        return "UNKNOWN" if self.refinements is None else f"Unknown({self.refinements!r})"

    def __copy__(self) -> Unknown:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Unknown:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Unknown, (self.refinements,))


UNKNOWN = Unknown()


def is_unknown(v: Any) -> bool:
    """True if ``v`` itself is unknown (refined or not). A ``DynamicValue`` holding an unknown counts."""
    if isinstance(v, DynamicValue):
        v = v.value
    return isinstance(v, Unknown)
