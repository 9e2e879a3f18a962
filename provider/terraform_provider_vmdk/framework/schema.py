"""Declarative schemas: what a provider, resource or data source accepts and exposes.

A schema is data. The plan pipeline (``planning``), the validators and the plugin layer's protobuf
conversion all read the same declaration, so an attribute's behaviour is stated in one place: its type,
whether users set it, whether we compute it, its default, its validators and its plan modifiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from .types import CtyType, List, Map, Object, Set

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .planmodifiers import PlanModifier
    from .validators import Validator

__all__ = ["Attribute", "Block", "NestedBlock", "Nesting", "Schema"]


@dataclass(frozen=True)
class Attribute:
    """One attribute. ``default`` implies ``computed`` (Terraform requires optional+computed for defaults)."""

    type: CtyType
    description: str = ""
    required: bool = False
    optional: bool = False
    computed: bool = False
    sensitive: bool = False
    default: Any = None
    deprecation_message: str = ""
    validators: Sequence[Validator] = ()
    plan_modifiers: Sequence[PlanModifier] = ()
    env_fallback: Sequence[str] = ()  # provider config only: documented environment variables

    def __post_init__(self) -> None:
        if self.default is not None:
            object.__setattr__(self, "computed", True)
            object.__setattr__(self, "optional", True)
        if self.required and (self.optional or self.computed):
            raise ValueError("an attribute is either required, or optional and/or computed")
        if not (self.required or self.optional or self.computed):
            raise ValueError("an attribute must be required, optional or computed")


class Nesting(Enum):
    SINGLE = "single"
    LIST = "list"
    SET = "set"
    MAP = "map"


@dataclass(frozen=True)
class Block:
    attributes: Mapping[str, Attribute] = field(default_factory=dict)
    blocks: Mapping[str, NestedBlock] = field(default_factory=dict)
    description: str = ""
    deprecation_message: str = ""

    def object_type(self) -> Object:
        """The cty object type of a value conforming to this block (what goes over the wire). Computed once:
        every RPC decodes with it, and a block never changes after it is built."""
        cached: Object | None = self.__dict__.get("_object_type")
        if cached is None:
            attrs: dict[str, CtyType] = {name: a.type for name, a in self.attributes.items()}
            for name, nb in self.blocks.items():
                attrs[name] = nb.value_type()
            cached = Object(attrs)
            object.__setattr__(self, "_object_type", cached)  # frozen dataclass: a memo, not a field
        return cached

    def names(self) -> list[str]:
        return sorted([*self.attributes, *self.blocks])


@dataclass(frozen=True)
class NestedBlock:
    block: Block
    nesting: Nesting = Nesting.SINGLE
    min_items: int = 0
    max_items: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if self.nesting is Nesting.SINGLE and self.min_items != self.max_items:
            # Terraform rejects such a schema ("MinItems and MaxItems must match in NestingSingle mode")
            raise ValueError("a SINGLE nested block takes no min_items/max_items (it holds at most one)")

    def value_type(self) -> CtyType:
        obj = self.block.object_type()
        return {
            Nesting.SINGLE: obj,
            Nesting.LIST: List(obj),
            Nesting.SET: Set(obj),
            Nesting.MAP: Map(obj),
        }[self.nesting]


@dataclass(frozen=True)
class Schema:
    """A top-level schema; ``version`` drives state upgrades for resources."""

    block: Block
    version: int = 0

    @property
    def attributes(self) -> Mapping[str, Attribute]:
        return self.block.attributes

    @property
    def blocks(self) -> Mapping[str, NestedBlock]:
        return self.block.blocks

    def object_type(self) -> Object:
        return self.block.object_type()


def schema(
    attributes: Mapping[str, Attribute],
    *,
    blocks: Mapping[str, NestedBlock] | None = None,
    description: str = "",
    version: int = 0,
    deprecation_message: str = "",
) -> Schema:
    """Shorthand for the common case of one top-level block."""
    return Schema(Block(dict(attributes), dict(blocks or {}), description, deprecation_message), version)
