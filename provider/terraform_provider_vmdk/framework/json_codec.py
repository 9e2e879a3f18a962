"""cty values to and from JSON: the form of raw state in ``UpgradeResourceState``.

State never holds unknowns, so neither direction knows them. Same Python representation as the msgpack
codec (see ``msgpack_codec``); on top of it, decoding follows cty's JSON decoder: a missing object
attribute is null, strings may arrive as bools or numbers and bools as ``"true"``/``"false"``, numbers
stay exact (no float detour), and a dynamic value is ``{"value": ..., "type": ...}``. Stdlib only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from . import value_checks as check
from .dynamic_value import DynamicValue
from .numbers import normalize_number, number_text
from .path import AttributePath
from .type_inference import concrete
from .types import CollectionType, CtyType, DynamicType, Object, Set, Tuple
from .unknowns import Unknown
from .value_checks import CtyValueError

__all__ = ["encode_json", "decode_json"]

# ----------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------


def decode_json(data: bytes | str, ty: CtyType, *, ignore_undeclared: bool = False) -> Any:
    """Decode state JSON as ``ty``: missing object attributes become null, numbers stay exact.

    Undeclared object attributes are an error unless ``ignore_undeclared`` (useful when upgrading state
    written by an older schema that had attributes since removed).
    """
    try:
        raw = json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CtyValueError(AttributePath(), f"invalid JSON: {exc}") from None
    return _from_json(raw, ty, AttributePath(), ignore_undeclared)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid cty number")


def _from_json(raw: Any, ty: CtyType, path: AttributePath, lenient: bool) -> Any:
    if raw is None:
        return None
    decoder = _DECODERS.get(ty.kind)
    if decoder is None:
        raise check.unsupported_type(ty, path)
    return decoder(raw, ty, path, lenient)


def _dynamic_from_json(raw: Any, ty: DynamicType, path: AttributePath, lenient: bool) -> Any:
    """``{"value": ..., "type": ...}``; a null of the pseudo-type itself is plain null."""
    inner_ty = _wrapper_type(raw, path)
    if isinstance(inner_ty, DynamicType):
        if raw["value"] is not None:
            raise CtyValueError(path, "a known value cannot have the dynamic pseudo-type")
        return None
    return DynamicValue(inner_ty, _from_json(raw["value"], inner_ty, path, lenient))


def _wrapper_type(raw: Any, path: AttributePath) -> CtyType:
    """Check the shape of a dynamic value's JSON object and parse its ``type``."""
    if not isinstance(raw, dict):
        raise CtyValueError(path, "dynamic value must be a JSON object with \"type\" and \"value\"")
    bad = sorted(set(raw) - {"type", "value"})
    if bad:
        raise CtyValueError(path, f"invalid key(s) {', '.join(map(repr, bad))} in dynamically-typed value")
    if "type" not in raw or "value" not in raw:
        raise CtyValueError(path, "dynamically-typed value needs both \"type\" and \"value\"")
    try:
        return CtyType.from_json(raw["type"])
    except ValueError as exc:
        raise CtyValueError(path, str(exc)) from None


def _string_from_json(raw: Any, ty: CtyType, path: AttributePath, lenient: bool) -> str:
    """cty's JSON decoder also converts a bool or a number to string."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, Decimal)):
        return number_text(raw)
    raise CtyValueError(path, f"expected string, got {check.describe(raw)}")


def _number_from_json(raw: Any, ty: CtyType, path: AttributePath, lenient: bool) -> Any:
    """A JSON number, or a string holding one."""
    if isinstance(raw, bool) or not isinstance(raw, (int, Decimal, str)):
        raise CtyValueError(path, f"expected number, got {check.describe(raw)}")
    try:
        return normalize_number(raw)
    except ValueError:
        raise CtyValueError(path, f"expected number, got {raw!r:.40}") from None


def _bool_from_json(raw: Any, ty: CtyType, path: AttributePath, lenient: bool) -> bool:
    """A JSON bool, or the string ``"true"`` / ``"false"``."""
    if isinstance(raw, str) and raw in ("true", "false"):
        return raw == "true"
    return check.expect_bool(raw, path)


def _list_from_json(raw: Any, ty: CollectionType, path: AttributePath, lenient: bool) -> list[Any]:
    """A list or a set."""
    seq = check.expect_sequence(raw, ty, path)
    return [_from_json(e, ty.element, path.index(i), lenient) for i, e in enumerate(seq)]


def _tuple_from_json(raw: Any, ty: Tuple, path: AttributePath, lenient: bool) -> list[Any]:
    seq = check.expect_tuple(raw, ty, path)
    return [_from_json(e, t, path.index(i), lenient) for i, (e, t) in enumerate(zip(seq, ty.elements, strict=True))]


def _map_from_json(raw: Any, ty: CollectionType, path: AttributePath, lenient: bool) -> dict[str, Any]:
    m = check.expect_mapping(raw, ty, path)
    return {k: _from_json(e, ty.element, path.key(k), lenient) for k, e in m.items()}


def _object_from_json(raw: Any, ty: Object, path: AttributePath, lenient: bool) -> dict[str, Any]:
    """Missing attributes are null; undeclared ones an error unless ``lenient``."""
    m = check.expect_mapping(raw, ty, path)
    if not lenient:
        check.reject_extra_attributes(m, ty, path)
    return {name: _from_json(m.get(name), aty, path.attr(name), lenient) for name, aty in ty.attributes.items()}


# Keyed by CtyType.kind; each gets a JSON value that is not null.
_DECODERS: dict[str, Callable[[Any, Any, AttributePath, bool], Any]] = {
    "dynamic": _dynamic_from_json,
    "string": _string_from_json,
    "number": _number_from_json,
    "bool": _bool_from_json,
    "list": _list_from_json,
    "set": _list_from_json,
    "tuple": _tuple_from_json,
    "map": _map_from_json,
    "object": _object_from_json,
}

# ----------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------


def encode_json(value: Any, ty: CtyType) -> bytes:
    """State-style JSON for ``value`` (compact, exact numbers, every object attribute, no unknowns)."""
    return _json_text(value, ty, AttributePath()).encode("utf-8")


def _json_text(v: Any, ty: CtyType, path: AttributePath) -> str:
    if isinstance(v, Unknown) or (isinstance(v, DynamicValue) and isinstance(v.value, Unknown)):
        raise CtyValueError(path, "unknown values cannot be written as JSON")
    if isinstance(ty, DynamicType):
        return _dynamic_text(v, ty, path)
    v = check.unwrap_dynamic(v, ty, path)
    if v is None:
        return "null"
    writer = _WRITERS.get(ty.kind)
    if writer is None:
        raise check.unsupported_type(ty, path)
    return writer(v, ty, path)


def _dynamic_text(v: Any, ty: DynamicType, path: AttributePath) -> str:
    if v is None:
        return "null"
    inner, inner_ty = concrete(v, ty, path)
    return f'{{"value":{_json_text(inner, inner_ty, path)},"type":{inner_ty.to_json_bytes().decode()}}}'


def _string_text(v: Any, ty: CtyType, path: AttributePath) -> str:
    return json.dumps(check.expect_string(v, path), ensure_ascii=False)


def _number_text(v: Any, ty: CtyType, path: AttributePath) -> str:
    return check.expect_number(v, path, number_text)


def _bool_text(v: Any, ty: CtyType, path: AttributePath) -> str:
    return json.dumps(check.expect_bool(v, path), ensure_ascii=False)


def _list_text(v: Any, ty: CollectionType, path: AttributePath) -> str:
    """A list or a set."""
    seq = check.expect_sequence(v, ty, path, allow_set=isinstance(ty, Set))
    return "[" + ",".join(_json_text(e, ty.element, path.index(i)) for i, e in enumerate(seq)) + "]"


def _tuple_text(v: Any, ty: Tuple, path: AttributePath) -> str:
    seq = check.expect_tuple(v, ty, path)
    pairs = enumerate(zip(seq, ty.elements, strict=True))  # expect_tuple checked the length
    return "[" + ",".join(_json_text(e, t, path.index(i)) for i, (e, t) in pairs) + "]"


def _map_text(v: Any, ty: CollectionType, path: AttributePath) -> str:
    """Keys sorted, like cty."""
    m = check.expect_mapping(v, ty, path)
    parts = []
    for k in sorted(m, key=str):
        key = check.expect_str_key(k, path)
        parts.append(f"{json.dumps(key, ensure_ascii=False)}:{_json_text(m[key], ty.element, path.key(key))}")
    return "{" + ",".join(parts) + "}"


def _object_text(v: Any, ty: Object, path: AttributePath) -> str:
    """Every attribute of the type, in the type's (sorted) order; a missing one as null."""
    m = check.expect_mapping(v, ty, path)
    check.reject_extra_attributes(m, ty, path)
    return "{" + ",".join(
        f"{json.dumps(k, ensure_ascii=False)}:{_json_text(m.get(k), aty, path.attr(k))}"
        for k, aty in ty.attributes.items()
    ) + "}"


# Keyed by CtyType.kind; each gets a value that is neither null nor unknown.
_WRITERS: dict[str, Callable[[Any, Any, AttributePath], str]] = {
    "string": _string_text,
    "number": _number_text,
    "bool": _bool_text,
    "list": _list_text,
    "set": _list_text,
    "tuple": _tuple_text,
    "map": _map_text,
    "object": _object_text,
}
