"""Attribute plan modifiers: per-attribute rules that shape the plan Terraform shows.

They run after the framework has filled defaults and marked computed attributes unknown, in the order
declared. A modifier sees the attribute's config, prior state and planned value and may change the
planned value, demand replacement, or add diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .diagnostics import Diagnostics
from .path import AttributePath
from .unknowns import is_unknown

__all__ = [
    "AttributePlanRequest",
    "AttributePlanResponse",
    "PlanModifier",
    "RequiresReplace",
    "RequiresReplaceIf",
    "UseStateForUnknown",
]


@dataclass
class AttributePlanRequest:
    path: AttributePath
    config: Any
    state: Any
    plan: Any
    config_object: dict[str, Any]
    state_object: dict[str, Any] | None  # None when creating
    plan_object: dict[str, Any] | None  # None when destroying


@dataclass
class AttributePlanResponse:
    plan: Any
    requires_replace: bool = False
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


class PlanModifier(Protocol):
    # Read-only: plan modifiers are frozen dataclasses.
    @property
    def description(self) -> str: ...

    def modify(self, req: AttributePlanRequest, resp: AttributePlanResponse) -> None: ...


def _is_update(req: AttributePlanRequest) -> bool:
    return req.state_object is not None and req.plan_object is not None


@dataclass(frozen=True)
class RequiresReplace:
    """A change to this attribute replaces the resource (it cannot be changed in place)."""

    description: str = "Changing this forces a new resource."

    def modify(self, req: AttributePlanRequest, resp: AttributePlanResponse) -> None:
        if _is_update(req) and resp.plan != req.state:
            resp.requires_replace = True


@dataclass(frozen=True)
class RequiresReplaceIf:
    """Replacement only when ``condition(req)`` says so (e.g. shrinking but not growing)."""

    condition: Callable[[AttributePlanRequest], bool]
    description: str

    def modify(self, req: AttributePlanRequest, resp: AttributePlanResponse) -> None:
        if _is_update(req) and resp.plan != req.state and self.condition(req):
            resp.requires_replace = True


@dataclass(frozen=True)
class UseStateForUnknown:
    """Keep the prior value of a computed attribute instead of showing "(known after apply)".

    For values that never change once set (ids, paths), so an unrelated update does not make the
    plan look as if they might.
    """

    description: str = "Keeps its value across updates."

    def modify(self, req: AttributePlanRequest, resp: AttributePlanResponse) -> None:
        if req.state_object is None or req.plan_object is None or req.state is None:
            return
        if not is_unknown(resp.plan) or is_unknown(req.config):
            return
        resp.plan = req.state
