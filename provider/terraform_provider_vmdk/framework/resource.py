"""What a provider, a managed resource and a data source implement.

The framework server (``server``) owns the protocol-shaped flow — decoding, the plan pipeline,
validation, invariants Terraform checks — and calls these hooks with plain Python values
(dicts keyed by attribute name, ``UNKNOWN`` for values not known yet, ``None`` for null).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .diagnostics import DiagnosticError, Diagnostics
from .schema import Schema

__all__ = [
    "RequestContext",
    "PlanRequest",
    "ApplyRequest",
    "ReadRequest",
    "Resource",
    "DataSource",
    "Provider",
]


@dataclass
class RequestContext:
    """Per-request facts: the diagnostics to add to and the provider-wide stop signal."""

    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class PlanRequest(RequestContext):
    config: dict[str, Any] = field(default_factory=dict)
    prior: dict[str, Any] | None = None  # None: create
    plan: dict[str, Any] | None = None  # mutable; None: destroy
    private: dict[str, Any] = field(default_factory=dict)  # mutable
    requires_replace: set[str] = field(default_factory=set)  # top-level attribute names


@dataclass
class ApplyRequest(RequestContext):
    config: dict[str, Any] | None = None
    prior: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    private: dict[str, Any] = field(default_factory=dict)  # mutable; persisted with the new state
    # The state to save if the request fails from here on: a create sets it as soon as the new object's
    # identity is fixed (before vSphere is asked), so a failed create still leaves its id in the state
    # (Terraform keeps it tainted) and nothing vSphere made is forgotten.
    partial: dict[str, Any] | None = None


@dataclass
class ReadRequest(RequestContext):
    state: dict[str, Any] = field(default_factory=dict)
    private: dict[str, Any] = field(default_factory=dict)  # mutable


class Resource:
    """A managed resource type. Override what applies; defaults are safe no-ops or clear errors."""

    type_name: ClassVar[str]
    # False for a resource that records an action (nothing in the world to import): import is refused
    importable: ClassVar[bool] = True
    # version -> function(raw state dict as stored) -> state dict in the *next* version's shape
    state_upgraders: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}

    def schema(self) -> Schema:
        raise NotImplementedError

    def configure(self, provider_data: Any) -> None:
        self.provider_data = provider_data

    def validate_config(self, config: dict[str, Any], diags: Diagnostics) -> None:
        """Cross-attribute checks; ``config`` may hold unknowns."""

    def modify_plan(self, req: PlanRequest) -> None:
        """Resource-level plan decisions after attribute defaults and plan modifiers ran."""

    def create(self, req: ApplyRequest) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, req: ReadRequest) -> dict[str, Any] | None:
        """Return the refreshed state, or None when the object is gone (Terraform then plans a create)."""
        return req.state

    def update(self, req: ApplyRequest) -> dict[str, Any]:
        raise NotImplementedError

    def delete(self, req: ApplyRequest) -> None:
        raise NotImplementedError

    def import_state(self, import_id: str, ctx: RequestContext) -> dict[str, Any]:
        """Return a partial state (missing attributes become null); Terraform then calls read."""
        if not self.importable:
            raise DiagnosticError("Import not supported", f"{self.type_name} records an action, not an object that "
                                  "exists in the world: there is nothing to import. Declare it in the "
                                  "configuration instead.")
        return {"id": import_id}


class DataSource:
    type_name: ClassVar[str]

    def schema(self) -> Schema:
        raise NotImplementedError

    def configure(self, provider_data: Any) -> None:
        self.provider_data = provider_data

    def validate_config(self, config: dict[str, Any], diags: Diagnostics) -> None:
        """Cross-attribute checks; ``config`` may hold unknowns."""

    def read(self, config: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        raise NotImplementedError


class Provider:
    type_name: ClassVar[str]
    version: ClassVar[str]

    def schema(self) -> Schema:
        raise NotImplementedError

    def validate_config(self, config: dict[str, Any], diags: Diagnostics) -> None:
        """Cross-attribute checks; ``config`` may hold unknowns."""

    def configure(self, config: dict[str, Any], ctx: RequestContext) -> Any:
        """Return what resources and data sources receive in ``configure``."""
        return None

    def resources(self) -> list[Resource]:
        return []

    def data_sources(self) -> list[DataSource]:
        return []

    def stop(self) -> None:
        """Cancel in-flight work (StopProvider)."""

    def shutdown(self) -> None:
        """Release sessions before the process exits."""
