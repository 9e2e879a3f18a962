"""cty values as plain Python data, to and from msgpack: the wire form of every value in the protocol
(``DynamicValue.msgpack``: configuration, plans, state).

Representation (chosen so resource code reads like ordinary Python; the JSON codec uses it too):

* null            -> ``None`` (for every type; there is one null per type, so no typed-null object).
* unknown         -> an ``Unknown`` instance; ``UNKNOWN`` is the unrefined one (see ``unknowns``).
* string          -> ``str``. Encoding normalises to NFC as cty does (``cty.StringVal``).
* number          -> ``int`` when integral, ``float`` when exactly a float64, else ``decimal.Decimal``
  (decoders always normalise that way; encoders accept any of the three, not ``bool``; see ``numbers``).
* bool            -> ``bool``.
* list / tuple    -> ``list`` (encoders also accept ``tuple``).
* set             -> ``list`` (encoders also accept ``set``/``frozenset``). A list because set elements may
  be dicts or unknowns, which are unhashable or have no identity; order is whatever the wire had and
  means nothing. Duplicates are not removed: produce unique elements.
* map / object    -> ``dict`` with ``str`` keys. Encoders treat a missing object attribute as null.
* dynamic         -> ``DynamicValue(type, value)`` when decoded, so the concrete type survives a round
  trip; null and wholly-unknown dynamic values stay ``None`` / ``Unknown``. Encoders also accept a plain
  value under a dynamic type and infer its type like cty's JSON ``ImpliedType`` (list -> tuple,
  dict -> object; see ``type_inference``).

Errors are ``CtyValueError`` naming the path (see ``value_checks``). Stdlib + msgpack only: this loads
at every provider start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from . import value_checks as check
from .dynamic_value import DynamicValue
from .numbers import number_from_wire, number_to_wire
from .path import AttributePath
from .type_inference import concrete
from .types import CollectionType, CtyType, DynamicType, Object, Set, Tuple
from .unknowns import UNKNOWN, Refinements, Unknown
from .value_checks import CtyValueError

__all__ = ["encode", "decode"]

_UNKNOWN_EXT_CODE = 0
_REFINED_EXT_CODE = 12

# ----------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------


def encode(value: Any, ty: CtyType, *, refinements: bool = True) -> bytes:
    """msgpack-encode ``value`` as ``ty`` (the ``DynamicValue.msgpack`` bytes of the protocol).

    Unrefined unknowns are written as ``ExtType(0, b"\\x00")``; refined ones as ext 12 carrying only the
    refinements valid for the type (``refinements=False`` writes every unknown unrefined).
    Raises ``CtyValueError`` naming the path on any mismatch.
    """
    wire = _to_wire(value, ty, AttributePath(), refinements)
    try:
        packed: bytes = msgpack.packb(wire, use_bin_type=True)
    except UnicodeEncodeError as exc:  # lone surrogates in a str
        raise CtyValueError(AttributePath(), f"string is not valid Unicode text: {exc}") from None
    return packed


def _to_wire(v: Any, ty: CtyType, path: AttributePath, refine: bool) -> Any:
    """Validate ``v`` against ``ty`` and build the msgpack-able structure."""
    if isinstance(ty, DynamicType):
        return _dynamic_to_wire(v, ty, path, refine)
    v = check.unwrap_dynamic(v, ty, path)
    if v is None:
        return None
    if isinstance(v, Unknown):
        return _unknown_to_wire(v, ty, refine)
    encoder = _ENCODERS.get(ty.kind)
    if encoder is None:
        raise check.unsupported_type(ty, path)
    return encoder(v, ty, path, refine)


def _dynamic_to_wire(v: Any, ty: DynamicType, path: AttributePath, refine: bool) -> Any:
    """``[type JSON bytes, value]``; null and unknown go out bare."""
    if v is None:
        return None
    if isinstance(v, Unknown):
        return _unknown_to_wire(v, ty, refine)
    inner, inner_ty = concrete(v, ty, path)
    return [inner_ty.to_json_bytes(), _to_wire(inner, inner_ty, path, refine)]


def _unknown_to_wire(u: Unknown, ty: CtyType, refine: bool) -> msgpack.ExtType:
    r = u.refinements.for_type(ty) if (refine and u.refinements) else None
    if r is None:
        return msgpack.ExtType(_UNKNOWN_EXT_CODE, b"\x00")
    return msgpack.ExtType(_REFINED_EXT_CODE, msgpack.packb(r.to_wire(), use_bin_type=True))


def _string_to_wire(v: Any, ty: CtyType, path: AttributePath, refine: bool) -> str:
    return check.expect_string(v, path)


def _number_to_wire(v: Any, ty: CtyType, path: AttributePath, refine: bool) -> int | float | str:
    return check.expect_number(v, path, number_to_wire)


def _bool_to_wire(v: Any, ty: CtyType, path: AttributePath, refine: bool) -> bool:
    return check.expect_bool(v, path)


def _list_to_wire(v: Any, ty: CollectionType, path: AttributePath, refine: bool) -> list[Any]:
    """A list or a set: a msgpack array."""
    seq = check.expect_sequence(v, ty, path, allow_set=isinstance(ty, Set))
    return [_to_wire(e, ty.element, path.index(i), refine) for i, e in enumerate(seq)]


def _tuple_to_wire(v: Any, ty: Tuple, path: AttributePath, refine: bool) -> list[Any]:
    seq = check.expect_tuple(v, ty, path)
    return [_to_wire(e, t, path.index(i), refine) for i, (e, t) in enumerate(zip(seq, ty.elements, strict=True))]


def _map_to_wire(v: Any, ty: CollectionType, path: AttributePath, refine: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, e in check.expect_mapping(v, ty, path).items():
        key = check.expect_str_key(k, path)
        out[key] = _to_wire(e, ty.element, path.key(key), refine)
    return out


def _object_to_wire(v: Any, ty: Object, path: AttributePath, refine: bool) -> dict[str, Any]:
    """Every attribute of the type; a missing one as null."""
    m = check.expect_mapping(v, ty, path)
    check.reject_extra_attributes(m, ty, path, name_declared=True)
    return {name: _to_wire(m.get(name), aty, path.attr(name), refine) for name, aty in ty.attributes.items()}


# Keyed by CtyType.kind; each gets a value that is neither null nor unknown.
_ENCODERS: dict[str, Callable[[Any, Any, AttributePath, bool], Any]] = {
    "string": _string_to_wire,
    "number": _number_to_wire,
    "bool": _bool_to_wire,
    "list": _list_to_wire,
    "set": _list_to_wire,
    "tuple": _tuple_to_wire,
    "map": _map_to_wire,
    "object": _object_to_wire,
}

# ----------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------


def decode(data: bytes, ty: CtyType) -> Any:
    """Decode msgpack ``data`` as a value of ``ty``.

    Any extension type is an unknown (code 12's refinements are kept when valid for the type, dropped
    otherwise, never an error). Objects must carry every attribute: Terraform always sends them all.
    """
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True, ext_hook=_ext_hook)
    except (ValueError, TypeError) as exc:  # msgpack's errors are ValueErrors; unhashable keys TypeError
        raise CtyValueError(AttributePath(), f"invalid msgpack: {exc}") from None
    return _from_wire(raw, ty, AttributePath())


def _ext_hook(code: int, data: bytes) -> Unknown:
    if code == _REFINED_EXT_CODE and len(data) > 1:
        return Unknown(_refinements_from_payload(data))
    return UNKNOWN


def _refinements_from_payload(payload: bytes) -> Refinements | None:
    try:
        wire = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
    except Exception:  # noqa: BLE001 - refinements are advisory; a bad payload is just "unknown"
        return None
    return Refinements.from_wire(wire)


def _from_wire(raw: Any, ty: CtyType, path: AttributePath) -> Any:
    if isinstance(raw, Unknown):
        return raw if raw.refinements is None else Unknown(raw.refinements.for_type(ty))
    if isinstance(ty, DynamicType):
        return _dynamic_from_wire(raw, path)
    if raw is None:
        return None
    decoder = _DECODERS.get(ty.kind)
    if decoder is None:
        raise check.unsupported_type(ty, path)
    return decoder(raw, ty, path)


def _dynamic_from_wire(raw: Any, path: AttributePath) -> Any:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 2:
        raise CtyValueError(path, "dynamic value must be a [type, value] array")
    inner_ty = _wire_type(raw[0], path)
    if isinstance(inner_ty, DynamicType):
        return _pseudo_typed(raw[1], path)
    return DynamicValue(inner_ty, _from_wire(raw[1], inner_ty, path))


def _wire_type(tjson: Any, path: AttributePath) -> CtyType:
    if not isinstance(tjson, (bytes, str)):
        raise CtyValueError(path, "dynamic value type must be JSON bytes")
    try:
        return CtyType.from_json_bytes(tjson)
    except ValueError as exc:
        raise CtyValueError(path, str(exc)) from None


def _pseudo_typed(raw: Any, path: AttributePath) -> Any:
    """Only null and unknown can have the pseudo-type itself; the wrapper then adds nothing."""
    if raw is None:
        return None
    if isinstance(raw, Unknown):
        return UNKNOWN
    raise CtyValueError(path, "a known value cannot have the dynamic pseudo-type")


def _string_from_wire(raw: Any, ty: CtyType, path: AttributePath) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CtyValueError(path, "string is not valid UTF-8") from None
    if not isinstance(raw, str):
        raise CtyValueError(path, f"expected string, got {check.describe(raw)}")
    return raw


def _number_from_wire(raw: Any, ty: CtyType, path: AttributePath) -> Any:
    try:
        return number_from_wire(raw)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise CtyValueError(path, f"expected number, got {check.describe(raw)} {raw!r:.40}") from None


def _bool_from_wire(raw: Any, ty: CtyType, path: AttributePath) -> bool:
    return check.expect_bool(raw, path)


def _list_from_wire(raw: Any, ty: CollectionType, path: AttributePath) -> list[Any]:
    """A list or a set."""
    return [_from_wire(e, ty.element, path.index(i)) for i, e in enumerate(check.expect_sequence(raw, ty, path))]


def _tuple_from_wire(raw: Any, ty: Tuple, path: AttributePath) -> list[Any]:
    seq = check.expect_tuple(raw, ty, path)
    return [_from_wire(e, t, path.index(i)) for i, (e, t) in enumerate(zip(seq, ty.elements, strict=True))]


def _map_from_wire(raw: Any, ty: CollectionType, path: AttributePath) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, e in check.expect_mapping(raw, ty, path).items():
        if not isinstance(k, str):
            raise CtyValueError(path, f"map keys must be strings, got {check.describe(k)}")
        out[k] = _from_wire(e, ty.element, path.key(k))
    return out


def _object_from_wire(raw: Any, ty: Object, path: AttributePath) -> dict[str, Any]:
    """Exactly the attributes of the type: Terraform always sends them all."""
    m = check.expect_mapping(raw, ty, path)
    check.reject_extra_attributes(m, ty, path)
    missing = [k for k in ty.attributes if k not in m]
    if missing:
        raise CtyValueError(path, f"missing attribute(s) {', '.join(map(repr, missing))}"
                            " (an object must carry every attribute of its type)")
    return {name: _from_wire(m[name], aty, path.attr(name)) for name, aty in ty.attributes.items()}


# Keyed by CtyType.kind; each gets a wire value that is neither nil nor an extension (unknown).
_DECODERS: dict[str, Callable[[Any, Any, AttributePath], Any]] = {
    "string": _string_from_wire,
    "number": _number_from_wire,
    "bool": _bool_from_wire,
    "list": _list_from_wire,
    "set": _list_from_wire,
    "tuple": _tuple_from_wire,
    "map": _map_from_wire,
    "object": _object_from_wire,
}
