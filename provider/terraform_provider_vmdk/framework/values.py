"""Compatibility re-export of the value modules this file was split into (being phased out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .dynamic_value import DynamicValue
from .json_codec import decode_json, encode_json
from .msgpack_codec import decode, encode
from .numbers import NumberValue, normalize_number
from .type_inference import implied_type
from .types import CtyType, Object
from .unknowns import UNKNOWN, Refinements, Unknown, is_unknown
from .value_checks import CtyValueError
from .walk import transform, walk

__all__ = [
    "UNKNOWN",
    "Unknown",
    "Refinements",
    "DynamicValue",
    "CtyValueError",
    "NumberValue",
    "is_unknown",
    "is_null",
    "is_known_deep",
    "contains_unknown",
    "null_value_for",
    "object_of_nulls",
    "normalize_number",
    "implied_type",
    "encode",
    "decode",
    "encode_json",
    "decode_json",
    "walk",
    "transform",
]


def is_null(v: Any) -> bool:
    """True for ``None`` and for a typed null under a dynamic attribute."""
    if isinstance(v, DynamicValue):
        v = v.value
    return v is None


def null_value_for(ty: CtyType) -> None:
    """The null of any type. Always ``None`` in this representation; exists so callers say what they mean."""
    if not isinstance(ty, CtyType):
        raise TypeError(f"expected a CtyType, got {ty!r}")
    return None


def object_of_nulls(ty: Object) -> dict[str, Any]:
    """A known object whose attributes are all null (e.g. a block Terraform synthesises for GROUP nesting)."""
    return {name: None for name in ty.attributes}


def is_known_deep(value: Any) -> bool:
    """True if no unknown appears anywhere in ``value`` (no type needed: unknowns are self-identifying)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Unknown):
            return False
        if isinstance(v, DynamicValue):
            stack.append(v.value)
        elif isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
    return True


def contains_unknown(value: Any) -> bool:
    """Negation of ``is_known_deep``."""
    return not is_known_deep(value)
