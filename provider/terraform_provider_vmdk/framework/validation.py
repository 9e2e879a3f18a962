"""Schema-driven validation of configuration: attribute validators and deprecation warnings.

Terraform core already checks types, required attributes and unknown names before it calls us;
what is left is the meaning of values, which the schema's validators state.
"""

from __future__ import annotations

from typing import Any

from .diagnostics import Diagnostics
from .path import AttributePath
from .schema import Block, Nesting
from .unknowns import is_unknown

__all__ = ["validate_block"]


def validate_block(block: Block, value: dict[str, Any] | None, diags: Diagnostics,
                   base: AttributePath | None = None) -> None:
    if value is None or is_unknown(value):
        return
    base = base or AttributePath.empty()
    for name, attr in block.attributes.items():
        v = value.get(name)
        if v is None or is_unknown(v):
            continue
        path = base.attr(name)
        if attr.deprecation_message:
            diags.warning("Deprecated attribute", f"{path}: {attr.deprecation_message}", path)
        for validator in attr.validators:
            validator.validate(v, path, diags)
    for name, nested in block.blocks.items():
        v = value.get(name)
        if v is None or is_unknown(v):
            continue
        path = base.attr(name)
        if nested.nesting is Nesting.SINGLE:
            validate_block(nested.block, v, diags, path)
        elif nested.nesting is Nesting.MAP:
            for key, item in v.items():
                validate_block(nested.block, item, diags, path.key(str(key)))
        else:  # list; sets are walked by position, which our paths stop at
            for i, item in enumerate(v):
                validate_block(nested.block, item, diags, path.key(i) if nested.nesting is Nesting.LIST else path)
