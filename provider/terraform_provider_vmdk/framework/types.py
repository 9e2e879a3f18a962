"""cty types as small immutable Python objects.

Terraform describes every attribute type with cty's compact JSON form (``Schema.Attribute.type`` and the
first element of a msgpack dynamic value), so the JSON form is the canonical one here: ``to_json()``
produces it, ``CtyType.from_json()`` parses it. Types compare and hash by structure, so they can key dicts
and be compared with ``==``. Stdlib only: this module loads at every provider start.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias

__all__ = [
    "CtyType",
    "PrimitiveType",
    "DynamicType",
    "String",
    "Number",
    "Bool",
    "DynamicPseudoType",
    "List",
    "Set",
    "Map",
    "Tuple",
    "Object",
    "CollectionType",
    "TypeJSON",
    "type_from_json",
]

TypeJSON: TypeAlias = str | list[Any]
"""The JSON-able form of a type: a primitive name or a ``[kind, argument(, optional)]`` list."""


class CtyType:
    """Base of all cty types; concrete subclasses are immutable and compare structurally."""

    __slots__ = ()

    def to_json(self) -> TypeJSON:
        """Return the JSON-able representation (``"string"``, ``["list", "string"]``, ...)."""
        raise NotImplementedError

    def to_json_bytes(self) -> bytes:
        """Return the compact UTF-8 JSON bytes Terraform expects in schemas and dynamic values."""
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def friendly_name(self) -> str:
        """A short human name for error messages (``list of string``)."""
        raise NotImplementedError

    @property
    def kind(self) -> str:
        """The first word of the JSON form (``string``, ``list``, ``object``, ``dynamic``, ...): what the
        value codecs dispatch on. Empty for a type that is none of cty's kinds."""
        return ""

    @property
    def is_primitive(self) -> bool:
        return isinstance(self, PrimitiveType)

    @property
    def is_dynamic(self) -> bool:
        return isinstance(self, DynamicType)

    @property
    def is_collection(self) -> bool:
        """List, set or map: the kinds with a single element type (and length refinements)."""
        return isinstance(self, CollectionType)

    @staticmethod
    def from_json(obj: Any) -> CtyType:
        """Parse the JSON-able form; also accepts ``bytes``/``str`` holding JSON text."""
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return CtyType.from_json_bytes(bytes(obj))
        return _parse(obj, "")

    @staticmethod
    def from_json_bytes(data: bytes | str) -> CtyType:
        """Parse JSON text (the protocol's bytes form)."""
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"invalid type JSON: {exc}") from None
        return _parse(obj, "")

    def __repr__(self) -> str:
        return f"CtyType({self.to_json_bytes().decode()})"

    # Immutable, so copies are the object itself; pickling goes through the JSON form.
    def __copy__(self) -> CtyType:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> CtyType:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (type_from_json, (self.to_json(),))


class PrimitiveType(CtyType):
    """string, number or bool. Use the module constants rather than constructing these."""

    __slots__ = ("name",)
    name: str
    NAMES: ClassVar[frozenset[str]] = frozenset({"string", "number", "bool"})

    def __init__(self, name: str) -> None:
        if name not in self.NAMES:
            raise ValueError(f"invalid primitive type name {name!r}")
        object.__setattr__(self, "name", name)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("cty types are immutable")

    @property
    def kind(self) -> str:
        return self.name

    def to_json(self) -> TypeJSON:
        return self.name

    def friendly_name(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrimitiveType) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("primitive", self.name))

    def __repr__(self) -> str:
        return self.name.capitalize()


class DynamicType(CtyType):
    """cty's DynamicPseudoType: "any type, decided at runtime". Values carry their type on the wire."""

    __slots__ = ()

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("cty types are immutable")

    @property
    def kind(self) -> str:
        return "dynamic"

    def to_json(self) -> TypeJSON:
        return "dynamic"

    def friendly_name(self) -> str:
        return "dynamic"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DynamicType)

    def __hash__(self) -> int:
        return hash("dynamic")

    def __repr__(self) -> str:
        return "DynamicPseudoType"


String = PrimitiveType("string")
Number = PrimitiveType("number")
Bool = PrimitiveType("bool")
DynamicPseudoType = DynamicType()


class CollectionType(CtyType):
    """Common base of List, Set and Map: one element type."""

    __slots__ = ("element",)
    element: CtyType
    KIND: ClassVar[str] = ""

    def __init__(self, element: CtyType) -> None:
        if not isinstance(element, CtyType):
            raise TypeError(f"{type(self).__name__} element must be a CtyType, got {element!r}")
        object.__setattr__(self, "element", element)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("cty types are immutable")

    @property
    def kind(self) -> str:
        return self.KIND

    def to_json(self) -> TypeJSON:
        return [self.KIND, self.element.to_json()]

    def friendly_name(self) -> str:
        return f"{self.KIND} of {self.element.friendly_name()}"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.element == self.element

    def __hash__(self) -> int:
        return hash((self.KIND, self.element))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.element!r})"


class List(CollectionType):
    __slots__ = ()
    KIND = "list"


class Set(CollectionType):
    __slots__ = ()
    KIND = "set"


class Map(CollectionType):
    __slots__ = ()
    KIND = "map"


class Tuple(CtyType):
    """Fixed-length sequence with a type per position."""

    __slots__ = ("elements",)
    elements: tuple[CtyType, ...]

    def __init__(self, elements: Iterable[CtyType]) -> None:
        elems = tuple(elements)
        for e in elems:
            if not isinstance(e, CtyType):
                raise TypeError(f"Tuple element types must be CtyType, got {e!r}")
        object.__setattr__(self, "elements", elems)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("cty types are immutable")

    @property
    def kind(self) -> str:
        return "tuple"

    def to_json(self) -> TypeJSON:
        return ["tuple", [e.to_json() for e in self.elements]]

    def friendly_name(self) -> str:
        return "tuple"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tuple) and other.elements == self.elements

    def __hash__(self) -> int:
        return hash(("tuple", self.elements))

    def __repr__(self) -> str:
        return f"Tuple({list(self.elements)!r})"


class Object(CtyType):
    """Named attributes, each with its own type.

    ``optional`` names attributes that type *conversion* may fill with null (cty's optional attributes);
    it is part of the type's identity, and it is only written to JSON when non-empty because
    Terraform 1.0.x rejects the three-element form.
    """

    __slots__ = ("attributes", "optional")
    attributes: Mapping[str, CtyType]
    optional: frozenset[str]

    def __init__(self, attributes: Mapping[str, CtyType], optional: Iterable[str] = frozenset()) -> None:
        attrs: dict[str, CtyType] = {}
        for name in sorted(attributes):
            aty = attributes[name]
            if not isinstance(name, str):
                raise TypeError(f"Object attribute names must be str, got {name!r}")
            if not isinstance(aty, CtyType):
                raise TypeError(f"Object attribute {name!r} type must be a CtyType, got {aty!r}")
            attrs[name] = aty
        opt = frozenset(optional)
        unknown = opt - attrs.keys()
        if unknown:
            raise ValueError(f"optional attributes not in the object type: {sorted(unknown)}")
        object.__setattr__(self, "attributes", MappingProxyType(attrs))
        object.__setattr__(self, "optional", opt)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("cty types are immutable")

    def attribute_type(self, name: str) -> CtyType:
        """The type of one attribute; ``KeyError`` if the object has no such attribute."""
        return self.attributes[name]

    @property
    def kind(self) -> str:
        return "object"

    def to_json(self) -> TypeJSON:
        out: list[Any] = ["object", {k: v.to_json() for k, v in self.attributes.items()}]
        if self.optional:
            out.append(sorted(self.optional))
        return out

    def friendly_name(self) -> str:
        return "object"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Object)
            and dict(other.attributes) == dict(self.attributes)
            and other.optional == self.optional
        )

    def __hash__(self) -> int:
        return hash(("object", tuple(self.attributes.items()), self.optional))

    def __repr__(self) -> str:
        opt = f", optional={set(self.optional)!r}" if self.optional else ""
        return f"Object({dict(self.attributes)!r}{opt})"


_COLLECTIONS: dict[str, type[CollectionType]] = {"list": List, "set": Set, "map": Map}


def _parse(obj: Any, where: str) -> CtyType:
    at = f" at {where}" if where else ""
    if isinstance(obj, str):
        if obj == "dynamic":
            return DynamicPseudoType
        if obj in PrimitiveType.NAMES:
            return {"string": String, "number": Number, "bool": Bool}[obj]
        raise ValueError(f"invalid primitive type name {obj!r}{at}")
    if not isinstance(obj, (list, tuple)) or not obj or not isinstance(obj[0], str):
        raise ValueError(f"invalid type description {obj!r}{at}")
    kind = obj[0]
    if kind in _COLLECTIONS:
        if len(obj) != 2:
            raise ValueError(f"{kind} type needs exactly one element type{at}")
        return _COLLECTIONS[kind](_parse(obj[1], f"{where}[1]"))
    if kind == "tuple":
        if len(obj) != 2 or not isinstance(obj[1], (list, tuple)):
            raise ValueError(f"tuple type needs a list of element types{at}")
        return Tuple(_parse(e, f"{where}[1][{i}]") for i, e in enumerate(obj[1]))
    if kind == "object":
        if len(obj) not in (2, 3) or not isinstance(obj[1], dict):
            raise ValueError(f"object type needs a map of attribute types{at}")
        optional: list[Any] = []
        if len(obj) == 3:
            if not isinstance(obj[2], (list, tuple)) or not all(isinstance(n, str) for n in obj[2]):
                raise ValueError(f"object optional attributes must be a list of names{at}")
            optional = list(obj[2])
        attrs = {k: _parse(v, f"{where}[1].{k}") for k, v in obj[1].items()}
        return Object(attrs, optional)
    raise ValueError(f"invalid complex type kind {kind!r}{at}")


def type_from_json(obj: Any) -> CtyType:
    """Module-level alias of ``CtyType.from_json`` (JSON-able object, or bytes/str of JSON text)."""
    return CtyType.from_json(obj)
