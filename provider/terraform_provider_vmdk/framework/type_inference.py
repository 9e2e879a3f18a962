"""The cty type a plain Python value implies, for values under a dynamic type.

Code may put a plain ``dict`` or ``list`` where the schema says "dynamic"; encoders and the walker then
need its concrete type. The rules are cty JSON's ``ImpliedType`` (list -> tuple, dict -> object).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from .dynamic_value import DynamicValue
from .path import AttributePath
from .types import Bool, CtyType, DynamicPseudoType, DynamicType, Number, Object, Set, String, Tuple
from .unknowns import Unknown
from .value_checks import CtyValueError

__all__ = ["implied_type", "concrete"]


def implied_type(value: Any, path: AttributePath | None = None) -> CtyType:
    """The cty type a plain value implies (cty JSON ``ImpliedType`` rules: list -> tuple, dict -> object).

    ``None`` and unknowns imply ``DynamicPseudoType``; a ``DynamicValue`` implies its own type.
    """
    path = path or AttributePath()
    if value is None or isinstance(value, Unknown):
        return DynamicPseudoType
    if isinstance(value, DynamicValue):
        return value.type
    for python_types, infer in _INFERENCE:
        if isinstance(value, python_types):
            return infer(value, path)
    raise CtyValueError(path, f"cannot infer a cty type for {type(value).__name__}")


def concrete(v: Any, ty: CtyType, path: AttributePath) -> tuple[Any, CtyType]:
    """Look through dynamic wrappers: (inner value, its concrete type). A plain known value under a
    dynamic type gets its implied type; null and unknown keep ``ty``."""
    if isinstance(v, DynamicValue):
        return v.value, v.type
    if isinstance(ty, DynamicType) and v is not None and not isinstance(v, Unknown):
        return v, implied_type(v, path)
    return v, ty


def _tuple_type(value: list[Any] | tuple[Any, ...], path: AttributePath) -> CtyType:
    return Tuple(implied_type(v, path.index(i)) for i, v in enumerate(value))


def _object_type(value: Mapping[Any, Any], path: AttributePath) -> CtyType:
    attrs: dict[str, CtyType] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise CtyValueError(path, f"object keys must be str, got {type(k).__name__}")
        attrs[k] = implied_type(v, path.attr(k))
    return Object(attrs)


def _set_type(value: set[Any] | frozenset[Any], path: AttributePath) -> CtyType:
    etys = {implied_type(v, path) for v in value}
    if len(etys) > 1:
        raise CtyValueError(path, "cannot infer a set type from elements of different types")
    return Set(etys.pop() if etys else DynamicPseudoType)


# In order: bool before the numbers, since bool is an int.
_INFERENCE: tuple[tuple[type | tuple[type, ...], Callable[[Any, AttributePath], CtyType]], ...] = (
    (bool, lambda _v, _p: Bool),
    ((int, float, Decimal), lambda _v, _p: Number),
    (str, lambda _v, _p: String),
    ((list, tuple), _tuple_type),
    (Mapping, _object_type),
    ((set, frozenset), _set_type),
)
