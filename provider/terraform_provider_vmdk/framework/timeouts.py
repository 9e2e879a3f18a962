"""The standard ``timeouts`` block (``create``/``read``/``update``/``delete`` durations).

Shaped as terraform-plugin-framework's timeouts block so module authors meet what they know:
``timeouts { create = "30m" }``. Values are Go-style durations.
"""

from __future__ import annotations

from typing import Any

from .schema import Attribute, Block, NestedBlock, Nesting
from .types import String
from .validators import Duration, parse_duration

__all__ = ["timeouts_block", "timeout_seconds", "TIMEOUTS"]

TIMEOUTS = "timeouts"


def timeouts_block(*operations: str, defaults: dict[str, str] | None = None) -> NestedBlock:
    defaults = defaults or {}
    attrs = {
        op: Attribute(
            String,
            description=(
                f'How long {op} may take, as a duration such as "30s" or "1h"'
                + (f" (default {defaults[op]})." if op in defaults else ".")
            ),
            optional=True,
            validators=(Duration(),),
        )
        for op in operations
    }
    return NestedBlock(
        Block(attrs, description="Time limits for operations."), Nesting.SINGLE,
        description="Time limits for operations.",
    )


def timeout_seconds(resource_value: dict[str, Any] | None, operation: str, default: float) -> float:
    """Seconds allowed for ``operation`` from a resource value's ``timeouts`` block, else ``default``."""
    if not resource_value:
        return default
    block = resource_value.get(TIMEOUTS)
    if not isinstance(block, dict):
        return default
    text = block.get(operation)
    if not isinstance(text, str):
        return default
    return parse_duration(text)
