"""cty values as plain Python data, and their msgpack / JSON wire forms.

Representation (chosen so resource code reads like ordinary Python):

* null            -> ``None`` (for every type; there is one null per type, so no typed-null object).
* unknown         -> an ``Unknown`` instance; ``UNKNOWN`` is the unrefined singleton-by-equality.
  ``Unknown`` refuses ``bool()`` so ``if plan["x"]:`` cannot silently treat "not known yet" as truthy.
* string          -> ``str``. Encoding normalises to NFC as cty does (``cty.StringVal``).
* number          -> ``int`` when integral, ``float`` when exactly a float64, else ``decimal.Decimal``
  (decoders always normalise that way; encoders accept any of the three, not ``bool``).
* bool            -> ``bool``.
* list / tuple    -> ``list`` (encoders also accept ``tuple``).
* set             -> ``list`` (encoders also accept ``set``/``frozenset``). A list because set elements may
  be dicts or unknowns, which are unhashable or have no identity; order is whatever the wire had and
  means nothing. Duplicates are not removed: produce unique elements.
* map / object    -> ``dict`` with ``str`` keys. Encoders treat a missing object attribute as null.
* dynamic         -> ``DynamicValue(type, value)`` when decoded, so the concrete type survives a round
  trip; null and wholly-unknown dynamic values stay ``None`` / ``Unknown``. Encoders also accept a plain
  value under a dynamic type and infer its type like cty's JSON ``ImpliedType`` (list -> tuple,
  dict -> object).

Errors are ``CtyValueError`` (a ``ValueError``) whose message starts with the cty-style path, e.g.
``.disks[0].size: expected number, got str``. Stdlib + msgpack only: this loads at every provider start.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

import msgpack

from .path import AttributeName, AttributePath, ElementKeyString
from .types import (
    Bool,
    CollectionType,
    CtyType,
    DynamicPseudoType,
    DynamicType,
    List,
    Map,
    Number,
    Object,
    PrimitiveType,
    Set,
    String,
    Tuple,
)

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

NumberValue: TypeAlias = int | float | Decimal

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Integral Decimals beyond this many digits stay Decimal: int() of "1e999999999" would eat memory.
_MAX_INT_DIGITS = 4300
_UNKNOWN_EXT_CODE = 0
_REFINED_EXT_CODE = 12


class CtyValueError(ValueError):
    """A value does not match its type (or the wire data is malformed); ``.path`` says where."""

    def __init__(self, path: AttributePath, message: str) -> None:
        super().__init__(f"{path.display()}: {message}")
        self.path = path
        self.detail = message


# ----------------------------------------------------------------------------------------------
# Unknown values and refinements
# ----------------------------------------------------------------------------------------------


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
    def from_wire(cls, payload: bytes) -> Refinements | None:
        """Parse an ext-12 payload leniently: bad or unknown entries are dropped, never raised."""
        try:
            m = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
        except Exception:  # noqa: BLE001 - refinements are advisory; a bad payload is just "unknown"
            return None
        if not isinstance(m, dict):
            return None
        kw: dict[str, Any] = {}
        v = m.get(1)
        if isinstance(v, bool):
            kw["nullness"] = v
        v = m.get(2)
        if isinstance(v, str):
            kw["string_prefix"] = v
        for key, name in ((3, "number_lower"), (4, "number_upper")):
            v = m.get(key)
            if isinstance(v, list) and len(v) == 2 and isinstance(v[1], bool):
                try:
                    kw[name] = (_number_from_wire(v[0]), v[1])
                except (ValueError, TypeError):
                    pass
        for key, name in ((5, "length_lower"), (6, "length_upper")):
            v = m.get(key)
            if isinstance(v, int) and not isinstance(v, bool):
                kw[name] = v
        r = cls(**kw)
        return r if r else None

    def to_wire(self) -> dict[int, Any]:
        """The msgpack map for an ext-12 payload (only the entries that are set)."""
        out: dict[int, Any] = {}
        if self.nullness is not None:
            out[1] = self.nullness
        if self.string_prefix is not None:
            out[2] = unicodedata.normalize("NFC", self.string_prefix)
        if self.number_lower is not None:
            out[3] = [_number_to_wire(self.number_lower[0]), bool(self.number_lower[1])]
        if self.number_upper is not None:
            out[4] = [_number_to_wire(self.number_upper[0]), bool(self.number_upper[1])]
        if self.length_lower is not None:
            out[5] = int(self.length_lower)
        if self.length_upper is not None:
            out[6] = int(self.length_upper)
        return out

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


@dataclass(frozen=True, slots=True)
class DynamicValue:
    """A value of a dynamically-typed attribute together with its concrete type."""

    type: CtyType
    value: Any

    def __post_init__(self) -> None:
        if not isinstance(self.type, CtyType):
            raise TypeError(f"DynamicValue.type must be a CtyType, got {self.type!r}")
        if isinstance(self.type, DynamicType):
            raise TypeError("DynamicValue needs a concrete type; use None / UNKNOWN for null / unknown dynamic")


def is_unknown(v: Any) -> bool:
    """True if ``v`` itself is unknown (refined or not). A ``DynamicValue`` holding an unknown counts."""
    if isinstance(v, DynamicValue):
        v = v.value
    return isinstance(v, Unknown)


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


# ----------------------------------------------------------------------------------------------
# Numbers
# ----------------------------------------------------------------------------------------------


def normalize_number(x: Any) -> NumberValue:
    """Canonical Python form of a cty number: int if integral, float if exactly a float64, else Decimal.

    Accepts int, float, Decimal and decimal strings; rejects bool and NaN (cty has no NaN). Infinities
    stay ``float``. Integral values with more than ~4300 digits stay Decimal to bound memory.
    """
    if isinstance(x, bool):
        raise TypeError("bool is not a number")
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        if math.isnan(x):
            raise ValueError("NaN is not a valid cty number")
        if math.isinf(x) or not x.is_integer():
            return x
        return int(x)
    if isinstance(x, str):
        try:
            x = Decimal(x.strip())
        except InvalidOperation:
            raise ValueError(f"invalid number {x!r}") from None
    if isinstance(x, Decimal):
        if x.is_nan():
            raise ValueError("NaN is not a valid cty number")
        if x.is_infinite():
            return float(x)
        if x == x.to_integral_value() and x.adjusted() < _MAX_INT_DIGITS:
            return int(x)
        f = float(x)
        if not math.isinf(f) and Decimal(f) == x:
            return f
        return x
    raise TypeError(f"not a number: {type(x).__name__}")


def _number_to_wire(x: Any) -> int | float | str:
    """cty's choice: int64 if exact, else float64 if exact, else a plain decimal string."""
    n = normalize_number(x)
    if isinstance(n, int):
        if INT64_MIN <= n <= INT64_MAX:
            return n
        try:
            f = float(n)
        except OverflowError:
            return str(n)
        return f if int(f) == n else str(n)
    if isinstance(n, float):
        return n
    return _decimal_text(n)


def _decimal_text(d: Decimal) -> str:
    """Plain digits like cty's ``Text('f')``; exponent form only when plain would be absurdly long."""
    return format(d, "f") if -1000 < d.adjusted() < 1000 else str(d)


def _number_from_wire(raw: Any) -> NumberValue:
    if isinstance(raw, bool):
        raise TypeError("bool is not a number")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if isinstance(raw, (int, float, str)):
        return normalize_number(raw)
    raise TypeError(f"not a number: {type(raw).__name__}")


# ----------------------------------------------------------------------------------------------
# Type inference for plain values under a dynamic type
# ----------------------------------------------------------------------------------------------


def implied_type(value: Any, path: AttributePath | None = None) -> CtyType:
    """The cty type a plain value implies (cty JSON ``ImpliedType`` rules: list -> tuple, dict -> object).

    ``None`` and unknowns imply ``DynamicPseudoType``; a ``DynamicValue`` implies its own type.
    """
    path = path or AttributePath()
    if value is None or isinstance(value, Unknown):
        return DynamicPseudoType
    if isinstance(value, DynamicValue):
        return value.type
    if isinstance(value, bool):
        return Bool
    if isinstance(value, (int, float, Decimal)):
        return Number
    if isinstance(value, str):
        return String
    if isinstance(value, (list, tuple)):
        return Tuple(implied_type(v, path.index(i)) for i, v in enumerate(value))
    if isinstance(value, Mapping):
        attrs: dict[str, CtyType] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CtyValueError(path, f"object keys must be str, got {type(k).__name__}")
            attrs[k] = implied_type(v, path.attr(k))
        return Object(attrs)
    if isinstance(value, (set, frozenset)):
        etys = {implied_type(v, path) for v in value}
        if len(etys) > 1:
            raise CtyValueError(path, "cannot infer a set type from elements of different types")
        return Set(etys.pop() if etys else DynamicPseudoType)
    raise CtyValueError(path, f"cannot infer a cty type for {type(value).__name__}")


# ----------------------------------------------------------------------------------------------
# msgpack
# ----------------------------------------------------------------------------------------------


def _got(v: Any) -> str:
    if isinstance(v, DynamicValue):
        return f"dynamic value of {v.type.friendly_name()}"
    return type(v).__name__


def _unknown_to_wire(u: Unknown, ty: CtyType, refine: bool) -> msgpack.ExtType:
    r = u.refinements.for_type(ty) if (refine and u.refinements) else None
    if r is None:
        return msgpack.ExtType(_UNKNOWN_EXT_CODE, b"\x00")
    return msgpack.ExtType(_REFINED_EXT_CODE, msgpack.packb(r.to_wire(), use_bin_type=True))


def _seq(v: Any, ty: CtyType, path: AttributePath, allow_set: bool = False) -> list[Any] | tuple[Any, ...]:
    if isinstance(v, (list, tuple)):
        return v
    if allow_set and isinstance(v, (set, frozenset)):
        return list(v)
    raise CtyValueError(path, f"expected {ty.friendly_name()}, got {_got(v)}")


def _to_wire(v: Any, ty: CtyType, path: AttributePath, refine: bool) -> Any:
    """Validate ``v`` against ``ty`` and build the msgpack-able structure."""
    if isinstance(ty, DynamicType):
        if v is None:
            return None
        if isinstance(v, Unknown):
            return _unknown_to_wire(v, ty, refine)
        concrete = v.type if isinstance(v, DynamicValue) else implied_type(v, path)
        inner = v.value if isinstance(v, DynamicValue) else v
        return [concrete.to_json_bytes(), _to_wire(inner, concrete, path, refine)]
    if isinstance(v, DynamicValue):
        if v.type != ty:
            raise CtyValueError(path, f"expected {ty.friendly_name()}, got {_got(v)}")
        v = v.value
    if v is None:
        return None
    if isinstance(v, Unknown):
        return _unknown_to_wire(v, ty, refine)
    if isinstance(ty, PrimitiveType):
        if ty == String:
            if not isinstance(v, str):
                raise CtyValueError(path, f"expected string, got {_got(v)}")
            return unicodedata.normalize("NFC", v)
        if ty == Number:
            if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
                raise CtyValueError(path, f"expected number, got {_got(v)}")
            try:
                return _number_to_wire(v)
            except ValueError as exc:
                raise CtyValueError(path, str(exc)) from None
        if not isinstance(v, bool):
            raise CtyValueError(path, f"expected bool, got {_got(v)}")
        return v
    if isinstance(ty, (List, Set)):
        seq = _seq(v, ty, path, allow_set=isinstance(ty, Set))
        return [_to_wire(e, ty.element, path.index(i), refine) for i, e in enumerate(seq)]
    if isinstance(ty, Tuple):
        seq = _seq(v, ty, path)
        if len(seq) != len(ty.elements):
            raise CtyValueError(path, f"expected tuple of {len(ty.elements)} elements, got {len(seq)}")
        return [_to_wire(e, t, path.index(i), refine) for i, (e, t) in enumerate(zip(seq, ty.elements))]
    if isinstance(ty, Map):
        if not isinstance(v, Mapping):
            raise CtyValueError(path, f"expected {ty.friendly_name()}, got {_got(v)}")
        out: dict[str, Any] = {}
        for k, e in v.items():
            if not isinstance(k, str):
                raise CtyValueError(path, f"map keys must be str, got {type(k).__name__}")
            out[k] = _to_wire(e, ty.element, path.key(k), refine)
        return out
    if isinstance(ty, Object):
        if not isinstance(v, Mapping):
            raise CtyValueError(path, f"expected object, got {_got(v)}")
        extra = [k for k in v if k not in ty.attributes]
        if extra:
            raise CtyValueError(path, f"unsupported attribute(s) {', '.join(map(repr, sorted(map(str, extra))))}"
                                f" (object has {', '.join(ty.attributes) or 'no attributes'})")
        return {name: _to_wire(v.get(name), aty, path.attr(name), refine) for name, aty in ty.attributes.items()}
    raise CtyValueError(path, f"unsupported type {ty!r}")


def encode(value: Any, ty: CtyType, *, refinements: bool = True) -> bytes:
    """msgpack-encode ``value`` as ``ty`` (the ``DynamicValue.msgpack`` bytes of the protocol).

    Unrefined unknowns are written as ``ExtType(0, b"\\x00")``; refined ones as ext 12 carrying only the
    refinements valid for the type (``refinements=False`` writes every unknown unrefined).
    Raises ``CtyValueError`` naming the path on any mismatch.
    """
    wire = _to_wire(value, ty, AttributePath(), refinements)
    try:
        return msgpack.packb(wire, use_bin_type=True)
    except UnicodeEncodeError as exc:  # lone surrogates in a str
        raise CtyValueError(AttributePath(), f"string is not valid Unicode text: {exc}") from None


def _ext_hook(code: int, data: bytes) -> Unknown:
    if code == _REFINED_EXT_CODE and len(data) > 1:
        return Unknown(Refinements.from_wire(data))
    return UNKNOWN


def _from_wire(raw: Any, ty: CtyType, path: AttributePath) -> Any:
    if isinstance(raw, Unknown):
        if raw.refinements is None:
            return raw
        return Unknown(raw.refinements.for_type(ty))
    if isinstance(ty, DynamicType):
        if raw is None:
            return None
        if not isinstance(raw, list) or len(raw) != 2:
            raise CtyValueError(path, "dynamic value must be a [type, value] array")
        tjson = raw[0]
        if not isinstance(tjson, (bytes, str)):
            raise CtyValueError(path, "dynamic value type must be JSON bytes")
        try:
            concrete = CtyType.from_json_bytes(tjson)
        except ValueError as exc:
            raise CtyValueError(path, str(exc)) from None
        if isinstance(concrete, DynamicType):
            # Only null and unknown can have the pseudo-type itself; the wrapper then adds nothing.
            if raw[1] is None:
                return None
            if isinstance(raw[1], Unknown):
                return UNKNOWN
            raise CtyValueError(path, "a known value cannot have the dynamic pseudo-type")
        return DynamicValue(concrete, _from_wire(raw[1], concrete, path))
    if raw is None:
        return None
    if isinstance(ty, PrimitiveType):
        if ty == String:
            if isinstance(raw, bytes):
                try:
                    raw = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise CtyValueError(path, "string is not valid UTF-8") from None
            if not isinstance(raw, str):
                raise CtyValueError(path, f"expected string, got {_got(raw)}")
            return raw
        if ty == Number:
            try:
                return _number_from_wire(raw)
            except (ValueError, TypeError, UnicodeDecodeError):
                raise CtyValueError(path, f"expected number, got {_got(raw)} {raw!r:.40}") from None
        if not isinstance(raw, bool):
            raise CtyValueError(path, f"expected bool, got {_got(raw)}")
        return raw
    if isinstance(ty, (List, Set)):
        if not isinstance(raw, list):
            raise CtyValueError(path, f"expected {ty.friendly_name()}, got {_got(raw)}")
        return [_from_wire(e, ty.element, path.index(i)) for i, e in enumerate(raw)]
    if isinstance(ty, Tuple):
        if not isinstance(raw, list):
            raise CtyValueError(path, f"expected tuple, got {_got(raw)}")
        if len(raw) != len(ty.elements):
            raise CtyValueError(path, f"expected tuple of {len(ty.elements)} elements, got {len(raw)}")
        return [_from_wire(e, t, path.index(i)) for i, (e, t) in enumerate(zip(raw, ty.elements))]
    if isinstance(ty, Map):
        if not isinstance(raw, dict):
            raise CtyValueError(path, f"expected {ty.friendly_name()}, got {_got(raw)}")
        out: dict[str, Any] = {}
        for k, e in raw.items():
            if not isinstance(k, str):
                raise CtyValueError(path, f"map keys must be strings, got {_got(k)}")
            out[k] = _from_wire(e, ty.element, path.key(k))
        return out
    if isinstance(ty, Object):
        if not isinstance(raw, dict):
            raise CtyValueError(path, f"expected object, got {_got(raw)}")
        extra = sorted(str(k) for k in raw if k not in ty.attributes)
        if extra:
            raise CtyValueError(path, f"unsupported attribute(s) {', '.join(map(repr, extra))}")
        missing = [k for k in ty.attributes if k not in raw]
        if missing:
            raise CtyValueError(path, f"missing attribute(s) {', '.join(map(repr, missing))}"
                                " (an object must carry every attribute of its type)")
        return {name: _from_wire(raw[name], aty, path.attr(name)) for name, aty in ty.attributes.items()}
    raise CtyValueError(path, f"unsupported type {ty!r}")


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


# ----------------------------------------------------------------------------------------------
# JSON (raw state in UpgradeResourceState; never contains unknowns)
# ----------------------------------------------------------------------------------------------


def _json_from(raw: Any, ty: CtyType, path: AttributePath, lenient: bool) -> Any:
    if raw is None:
        return None
    if isinstance(ty, DynamicType):
        if not isinstance(raw, dict):
            raise CtyValueError(path, "dynamic value must be a JSON object with \"type\" and \"value\"")
        bad = sorted(set(raw) - {"type", "value"})
        if bad:
            raise CtyValueError(path, f"invalid key(s) {', '.join(map(repr, bad))} in dynamically-typed value")
        if "type" not in raw or "value" not in raw:
            raise CtyValueError(path, "dynamically-typed value needs both \"type\" and \"value\"")
        try:
            concrete = CtyType.from_json(raw["type"])
        except ValueError as exc:
            raise CtyValueError(path, str(exc)) from None
        if isinstance(concrete, DynamicType):
            if raw["value"] is not None:
                raise CtyValueError(path, "a known value cannot have the dynamic pseudo-type")
            return None
        return DynamicValue(concrete, _json_from(raw["value"], concrete, path, lenient))
    if isinstance(ty, PrimitiveType):
        if ty == String:
            if isinstance(raw, str):
                return raw
            if isinstance(raw, bool):  # cty's JSON decoder converts bool/number to string
                return "true" if raw else "false"
            if isinstance(raw, (int, Decimal)):
                return _number_text(normalize_number(raw))
            raise CtyValueError(path, f"expected string, got {_got(raw)}")
        if ty == Number:
            if isinstance(raw, bool) or not isinstance(raw, (int, Decimal, str)):
                raise CtyValueError(path, f"expected number, got {_got(raw)}")
            try:
                return normalize_number(raw)
            except ValueError:
                raise CtyValueError(path, f"expected number, got {raw!r:.40}") from None
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw in ("true", "false"):
            return raw == "true"
        raise CtyValueError(path, f"expected bool, got {_got(raw)}")
    if isinstance(ty, (List, Set, Tuple)):
        if not isinstance(raw, list):
            raise CtyValueError(path, f"expected {ty.friendly_name()}, got {_got(raw)}")
        if isinstance(ty, Tuple):
            if len(raw) != len(ty.elements):
                raise CtyValueError(path, f"expected tuple of {len(ty.elements)} elements, got {len(raw)}")
            return [_json_from(e, t, path.index(i), lenient) for i, (e, t) in enumerate(zip(raw, ty.elements))]
        return [_json_from(e, ty.element, path.index(i), lenient) for i, e in enumerate(raw)]
    if isinstance(ty, Map):
        if not isinstance(raw, dict):
            raise CtyValueError(path, f"expected {ty.friendly_name()}, got {_got(raw)}")
        return {k: _json_from(e, ty.element, path.key(k), lenient) for k, e in raw.items()}
    if isinstance(ty, Object):
        if not isinstance(raw, dict):
            raise CtyValueError(path, f"expected object, got {_got(raw)}")
        extra = sorted(k for k in raw if k not in ty.attributes)
        if extra and not lenient:
            raise CtyValueError(path, f"unsupported attribute(s) {', '.join(map(repr, extra))}")
        return {
            name: _json_from(raw.get(name), aty, path.attr(name), lenient) for name, aty in ty.attributes.items()
        }
    raise CtyValueError(path, f"unsupported type {ty!r}")


def decode_json(data: bytes | str, ty: CtyType, *, ignore_undeclared: bool = False) -> Any:
    """Decode state JSON as ``ty``: missing object attributes become null, numbers stay exact.

    Undeclared object attributes are an error unless ``ignore_undeclared`` (useful when upgrading state
    written by an older schema that had attributes since removed).
    """
    try:
        raw = json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CtyValueError(AttributePath(), f"invalid JSON: {exc}") from None
    return _json_from(raw, ty, AttributePath(), ignore_undeclared)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid cty number")


def _number_text(n: NumberValue) -> str:
    """Exact JSON text: ``decode_json`` must get the very same number back."""
    if isinstance(n, int):
        return str(n)
    if isinstance(n, float):
        if math.isinf(n):
            raise ValueError("infinity cannot be written as JSON")
        short = repr(n)
        # repr is the shortest text that rounds to n, not n itself (0.1 is really 0.1000000000000000055...).
        return short if Decimal(short) == Decimal(n) else _decimal_text(Decimal(n))
    return _decimal_text(n)


def _json_text(v: Any, ty: CtyType, path: AttributePath) -> str:
    if isinstance(v, Unknown) or (isinstance(v, DynamicValue) and isinstance(v.value, Unknown)):
        raise CtyValueError(path, "unknown values cannot be written as JSON")
    if isinstance(ty, DynamicType):
        if v is None:
            return "null"
        concrete = v.type if isinstance(v, DynamicValue) else implied_type(v, path)
        inner = v.value if isinstance(v, DynamicValue) else v
        return f'{{"value":{_json_text(inner, concrete, path)},"type":{concrete.to_json_bytes().decode()}}}'
    # Reuse the msgpack validator for type checking and number choice, then print.
    if isinstance(v, DynamicValue):
        if v.type != ty:
            raise CtyValueError(path, f"expected {ty.friendly_name()}, got {_got(v)}")
        v = v.value
    if v is None:
        return "null"
    if ty == Number:
        if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
            raise CtyValueError(path, f"expected number, got {_got(v)}")
        try:
            return _number_text(normalize_number(v))
        except ValueError as exc:
            raise CtyValueError(path, str(exc)) from None
    if isinstance(ty, PrimitiveType):  # string / bool: the msgpack validator already checks and normalises
        return json.dumps(_to_wire(v, ty, path, False), ensure_ascii=False)
    if isinstance(ty, (List, Set)):
        seq = _seq(v, ty, path, allow_set=isinstance(ty, Set))
        return "[" + ",".join(_json_text(e, ty.element, path.index(i)) for i, e in enumerate(seq)) + "]"
    if isinstance(ty, Tuple):
        seq = _seq(v, ty, path)
        if len(seq) != len(ty.elements):
            raise CtyValueError(path, f"expected tuple of {len(ty.elements)} elements, got {len(seq)}")
        return "[" + ",".join(_json_text(e, t, path.index(i)) for i, (e, t) in enumerate(zip(seq, ty.elements))) + "]"
    if isinstance(ty, Map):
        if not isinstance(v, Mapping):
            raise CtyValueError(path, f"expected {ty.friendly_name()}, got {_got(v)}")
        parts = []
        for k in sorted(v, key=str):
            if not isinstance(k, str):
                raise CtyValueError(path, f"map keys must be str, got {type(k).__name__}")
            parts.append(f"{json.dumps(k, ensure_ascii=False)}:{_json_text(v[k], ty.element, path.key(k))}")
        return "{" + ",".join(parts) + "}"
    if isinstance(ty, Object):
        if not isinstance(v, Mapping):
            raise CtyValueError(path, f"expected object, got {_got(v)}")
        extra = [k for k in v if k not in ty.attributes]
        if extra:
            raise CtyValueError(path, f"unsupported attribute(s) {', '.join(map(repr, sorted(map(str, extra))))}")
        return "{" + ",".join(
            f"{json.dumps(k, ensure_ascii=False)}:{_json_text(v.get(k), aty, path.attr(k))}"
            for k, aty in ty.attributes.items()
        ) + "}"
    raise CtyValueError(path, f"unsupported type {ty!r}")


def encode_json(value: Any, ty: CtyType) -> bytes:
    """State-style JSON for ``value`` (compact, exact numbers, every object attribute, no unknowns)."""
    return _json_text(value, ty, AttributePath()).encode("utf-8")


# ----------------------------------------------------------------------------------------------
# Traversal
# ----------------------------------------------------------------------------------------------


def _children(v: Any, ty: CtyType, path: AttributePath) -> Iterator[tuple[AttributePath, Any, CtyType]]:
    if v is None or isinstance(v, Unknown):
        return
    if isinstance(ty, (List, Set)) and isinstance(v, (list, tuple, set, frozenset)):
        for i, e in enumerate(v):
            yield path.index(i), e, ty.element
    elif isinstance(ty, Tuple) and isinstance(v, (list, tuple)):
        for i, (e, t) in enumerate(zip(v, ty.elements)):
            yield path.index(i), e, t
    elif isinstance(ty, Map) and isinstance(v, Mapping):
        for k, e in v.items():
            yield path.key(k), e, ty.element
    elif isinstance(ty, Object) and isinstance(v, Mapping):
        for name, aty in ty.attributes.items():
            yield path.attr(name), v.get(name), aty


def _concrete(v: Any, ty: CtyType, path: AttributePath) -> tuple[Any, CtyType]:
    """Look through dynamic wrappers: (inner value, its concrete type)."""
    if isinstance(v, DynamicValue):
        return v.value, v.type
    if isinstance(ty, DynamicType) and v is not None and not isinstance(v, Unknown):
        return v, implied_type(v, path)
    return v, ty


def walk(value: Any, ty: CtyType) -> Iterator[tuple[AttributePath, Any, CtyType]]:
    """Yield ``(path, value, type)`` for the value and every nested value, parents before children.

    Dynamic wrappers are transparent (the concrete type and inner value are yielded). Set elements get
    ``ElementKeyInt(position)`` steps (see ``path`` module). Missing object attributes are yielded as null.
    """
    stack = [(AttributePath(), value, ty)]
    while stack:
        path, v, t = stack.pop()
        v, t = _concrete(v, t, path)
        yield path, v, t
        stack.extend(reversed(list(_children(v, t, path))))


def transform(
    value: Any,
    ty: CtyType,
    fn: Callable[[AttributePath, Any, CtyType], Any],
) -> Any:
    """Rebuild ``value`` bottom-up: ``fn(path, v, type)`` gets each node after its children were rebuilt
    and returns the replacement (return ``v`` to keep it). Containers come back as fresh lists/dicts;
    dynamic wrappers are rebuilt around the transformed inner value. Example: unknowns -> null::

        transform(v, ty, lambda p, x, t: None if is_unknown(x) else x)
    """
    return _transform(value, ty, fn, AttributePath())


def _transform(value: Any, ty: CtyType, fn: Callable[[AttributePath, Any, CtyType], Any],
               path: AttributePath) -> Any:
    wrapped = isinstance(value, DynamicValue)
    v, t = _concrete(value, ty, path)
    if v is not None and not isinstance(v, Unknown):
        if isinstance(t, (List, Set, Tuple)) and isinstance(v, (list, tuple, set, frozenset)):
            v = [_transform(e, et, fn, p) for p, e, et in _children(v, t, path)]
        elif isinstance(t, (Map, Object)) and isinstance(v, Mapping):
            v = {_last_key(p): _transform(e, et, fn, p) for p, e, et in _children(v, t, path)}
    out = fn(path, v, t)
    if wrapped and not isinstance(out, DynamicValue):
        return DynamicValue(t, out)
    return out


def _last_key(p: AttributePath) -> str:
    step = p.last
    if isinstance(step, AttributeName):
        return step.name
    if isinstance(step, ElementKeyString):
        return step.key
    raise AssertionError(f"unexpected step {step!r}")  # pragma: no cover

