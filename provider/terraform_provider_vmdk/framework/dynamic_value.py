"""The value of a dynamically-typed attribute, carrying its concrete type.

cty's ``DynamicPseudoType`` means "any type, decided at run time", so such a value travels with its
type. Decoders wrap it in ``DynamicValue`` so that the concrete type survives a round trip; null and
wholly-unknown dynamic values need no wrapper (they stay ``None`` / ``Unknown``). Its own module because
every other value module looks through the wrapper, and it depends on nothing but the types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .types import CtyType, DynamicType

__all__ = ["DynamicValue"]


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
