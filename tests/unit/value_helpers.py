"""Test oracles for cty values (shared by the path and value tests; holds no tests).

The provider never needs these: they answer, independently of ``walk``, what a value holds at a path and
whether it holds an unknown anywhere, so the property tests can check ``walk`` and the codecs against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from terraform_provider_vmdk.framework.dynamic_value import DynamicValue
from terraform_provider_vmdk.framework.path import AttributeName, AttributePath, ElementKeyString, Step
from terraform_provider_vmdk.framework.unknowns import Unknown

__all__ = ["PathError", "apply_path", "is_known_deep"]


class PathError(LookupError):
    """A path step does not fit the value it is applied to."""


def apply_path(path: AttributePath, value: Any) -> Any:
    """Return the part of ``value`` (our plain value representation) ``path`` points at.

    Stepping through null gives null and stepping through an unknown gives that unknown (both are
    what the whole sub-tree is); a missing dict key gives null (objects may omit null attributes).
    ``PathError`` when a step cannot apply: an index out of range, an int key on a dict, a name on a
    list, or any step into a primitive. Dynamic wrappers are looked through.
    """
    cur = value
    for depth, step in enumerate(path.steps):
        cur = _unwrap_dynamic(cur)
        if cur is None or isinstance(cur, Unknown):
            return cur
        cur = _step_into(cur, step, AttributePath(path.steps[:depth]))
    return _unwrap_dynamic(cur)


def _step_into(cur: Any, step: Step, at: AttributePath) -> Any:
    """The child of ``cur`` (found at ``at``) that ``step`` names."""
    if isinstance(step, (AttributeName, ElementKeyString)):
        if not isinstance(cur, Mapping):
            raise PathError(f"{at.display()}: cannot apply {step} to {type(cur).__name__}")
        return cur.get(step.name if isinstance(step, AttributeName) else step.key)
    if not isinstance(cur, (list, tuple)):
        raise PathError(f"{at.display()}: cannot index {type(cur).__name__} with {step}")
    if not 0 <= step.key < len(cur):
        raise PathError(f"{at.then(step).display()}: index out of range (length {len(cur)})")
    return cur[step.key]


def _unwrap_dynamic(v: Any) -> Any:
    return v.value if isinstance(v, DynamicValue) else v


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
