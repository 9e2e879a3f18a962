"""Checking Python values against cty types: the error the value modules raise, and the checks the
msgpack and JSON codecs share, so both reject the same values with the same messages.

Errors are ``CtyValueError`` (a ``ValueError``) whose message starts with the cty-style path, e.g.
``.disks[0].size: expected number, got str``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from .dynamic_value import DynamicValue
from .path import AttributePath
from .types import CtyType, Object, Tuple

__all__ = [
    "CtyValueError",
    "describe",
    "unsupported_type",
    "unwrap_dynamic",
    "expect_string",
    "expect_number",
    "expect_bool",
    "expect_sequence",
    "expect_tuple",
    "expect_mapping",
    "expect_str_key",
    "reject_extra_attributes",
]

T = TypeVar("T")


class CtyValueError(ValueError):
    """A value does not match its type (or the wire data is malformed); ``.path`` says where."""

    def __init__(self, path: AttributePath, message: str) -> None:
        super().__init__(f"{path.display()}: {message}")
        self.path = path
        self.detail = message


def describe(v: Any) -> str:
    """What ``v`` is, for "expected X, got Y" messages."""
    if isinstance(v, DynamicValue):
        return f"dynamic value of {v.type.friendly_name()}"
    return type(v).__name__


def unsupported_type(ty: CtyType, path: AttributePath) -> CtyValueError:
    return CtyValueError(path, f"unsupported type {ty!r}")


def unwrap_dynamic(v: Any, ty: CtyType, path: AttributePath) -> Any:
    """A ``DynamicValue`` under a concrete type must carry that very type; give its inner value."""
    if not isinstance(v, DynamicValue):
        return v
    if v.type != ty:
        raise CtyValueError(path, f"expected {ty.friendly_name()}, got {describe(v)}")
    return v.value


def expect_string(v: Any, path: AttributePath) -> str:
    """A string, normalised to NFC as cty does (``cty.StringVal``)."""
    if not isinstance(v, str):
        raise CtyValueError(path, f"expected string, got {describe(v)}")
    return unicodedata.normalize("NFC", v)


def expect_number(v: Any, path: AttributePath, write: Callable[[Any], T]) -> T:
    """A number (int, float or Decimal; not bool), given to ``write``; its ``ValueError`` (NaN,
    infinity in JSON) becomes a ``CtyValueError`` at ``path``."""
    if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
        raise CtyValueError(path, f"expected number, got {describe(v)}")
    try:
        return write(v)
    except ValueError as exc:
        raise CtyValueError(path, str(exc)) from None


def expect_bool(v: Any, path: AttributePath) -> bool:
    if not isinstance(v, bool):
        raise CtyValueError(path, f"expected bool, got {describe(v)}")
    return v


def expect_sequence(v: Any, ty: CtyType, path: AttributePath, allow_set: bool = False) -> Sequence[Any]:
    """A list or tuple (or, for a set type, a Python set) as a sequence."""
    if isinstance(v, (list, tuple)):
        return v
    if allow_set and isinstance(v, (set, frozenset)):
        return list(v)
    raise CtyValueError(path, f"expected {ty.friendly_name()}, got {describe(v)}")


def expect_tuple(v: Any, ty: Tuple, path: AttributePath) -> Sequence[Any]:
    """A list or tuple with exactly one element per element type of ``ty``."""
    seq = expect_sequence(v, ty, path)
    if len(seq) != len(ty.elements):
        raise CtyValueError(path, f"expected tuple of {len(ty.elements)} elements, got {len(seq)}")
    return seq


def expect_mapping(v: Any, ty: CtyType, path: AttributePath) -> Mapping[Any, Any]:
    if not isinstance(v, Mapping):
        raise CtyValueError(path, f"expected {ty.friendly_name()}, got {describe(v)}")
    return v


def expect_str_key(k: Any, path: AttributePath) -> str:
    """A map key given by Python code (the decoders word their own message)."""
    if not isinstance(k, str):
        raise CtyValueError(path, f"map keys must be str, got {type(k).__name__}")
    return k


def reject_extra_attributes(v: Mapping[Any, Any], ty: Object, path: AttributePath, *,
                            name_declared: bool = False) -> None:
    """Refuse keys ``ty`` does not declare; ``name_declared`` adds the declared ones to the message."""
    extra = sorted(str(k) for k in v if k not in ty.attributes)
    if not extra:
        return
    declared = f" (object has {', '.join(ty.attributes) or 'no attributes'})" if name_declared else ""
    raise CtyValueError(path, f"unsupported attribute(s) {', '.join(map(repr, extra))}{declared}")
