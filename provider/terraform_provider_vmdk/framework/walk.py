"""Visiting and rebuilding every nested value of a typed value, each with its path.

The server uses it to find unknowns left after apply (naming their attribute) and to null them in a
partial result. Dynamic wrappers are transparent: a node is seen with its concrete type and inner value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeAlias

from .dynamic_value import DynamicValue
from .path import AttributeName, AttributePath, ElementKeyString
from .type_inference import concrete
from .types import CollectionType, CtyType, List, Map, Object, Set, Tuple
from .unknowns import Unknown

__all__ = ["walk", "transform"]

Node: TypeAlias = tuple[AttributePath, Any, CtyType]
"""``(path, value, type)`` of one nested value."""


def walk(value: Any, ty: CtyType) -> Iterator[Node]:
    """Yield ``(path, value, type)`` for the value and every nested value, parents before children.

    Dynamic wrappers are transparent (the concrete type and inner value are yielded). Set elements get
    ``ElementKeyInt(position)`` steps (see ``path`` module). Missing object attributes are yielded as null.
    """
    stack = [(AttributePath(), value, ty)]
    while stack:
        path, v, t = stack.pop()
        v, t = concrete(v, t, path)
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
    v, t = concrete(value, ty, path)
    out = fn(path, _rebuild_children(v, t, fn, path), t)
    if isinstance(value, DynamicValue) and not isinstance(out, DynamicValue):
        return DynamicValue(t, out)
    return out


def _rebuild_children(v: Any, t: CtyType, fn: Callable[[AttributePath, Any, CtyType], Any],
                      path: AttributePath) -> Any:
    """``v`` with its children transformed, as a fresh list or dict; a leaf as it is."""
    if v is None or isinstance(v, Unknown):
        return v
    if isinstance(t, (List, Set, Tuple)) and isinstance(v, (list, tuple, set, frozenset)):
        return [_transform(e, et, fn, p) for p, e, et in _children(v, t, path)]
    if isinstance(t, (Map, Object)) and isinstance(v, Mapping):
        return {_last_key(p): _transform(e, et, fn, p) for p, e, et in _children(v, t, path)}
    return v


def _children(v: Any, ty: CtyType, path: AttributePath) -> Iterator[Node]:
    """The direct children of a known value; nothing for a leaf, or a value that does not fit ``ty``."""
    if v is None or isinstance(v, Unknown):
        return iter(())
    children = _CHILDREN.get(ty.kind)
    return children(v, ty, path) if children else iter(())


def _sequence_children(v: Any, ty: CollectionType, path: AttributePath) -> Iterator[Node]:
    """Of a list or a set."""
    if isinstance(v, (list, tuple, set, frozenset)):
        for i, e in enumerate(v):
            yield path.index(i), e, ty.element


def _tuple_children(v: Any, ty: Tuple, path: AttributePath) -> Iterator[Node]:
    if isinstance(v, (list, tuple)):
        for i, (e, t) in enumerate(zip(v, ty.elements, strict=False)):  # not checked here: the shorter wins
            yield path.index(i), e, t


def _map_children(v: Any, ty: Map, path: AttributePath) -> Iterator[Node]:
    if isinstance(v, Mapping):
        for k, e in v.items():
            yield path.key(k), e, ty.element


def _object_children(v: Any, ty: Object, path: AttributePath) -> Iterator[Node]:
    if isinstance(v, Mapping):
        for name, aty in ty.attributes.items():
            yield path.attr(name), v.get(name), aty


# Keyed by CtyType.kind: the kinds that have children.
_CHILDREN: dict[str, Callable[[Any, Any, AttributePath], Iterator[Node]]] = {
    "list": _sequence_children,
    "set": _sequence_children,
    "tuple": _tuple_children,
    "map": _map_children,
    "object": _object_children,
}


def _last_key(p: AttributePath) -> str:
    step = p.last
    if isinstance(step, AttributeName):
        return step.name
    if isinstance(step, ElementKeyString):
        return step.key
    raise AssertionError(f"unexpected step {step!r}")  # pragma: no cover
