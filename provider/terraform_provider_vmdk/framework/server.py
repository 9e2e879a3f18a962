"""The framework server: one method per provider RPC, in plain Python values.

It owns everything that is the same for every resource — looking types up, decoding and encoding values,
validation, the plan pipeline, private state, state upgrades, import, and the checks Terraform applies
to our answers — so resources only decide what to do. The plugin layer translates protobuf to these
calls and back; nothing here knows about gRPC.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import DiagnosticError, Diagnostics
from .json_codec import decode_json
from .msgpack_codec import decode, encode
from .path import AttributePath
from .planning import plan_resource_change
from .resource import ApplyRequest, DataSource, PlanRequest, Provider, ReadRequest, RequestContext, Resource
from .schema import Schema
from .types import Object
from .unknowns import is_unknown
from .validation import validate_block
from .value_checks import CtyValueError
from .walk import transform, walk

__all__ = ["FrameworkServer", "Result"]

log = logging.getLogger("terraform_provider_vmdk.framework")


@dataclass
class Result:
    """What every RPC returns: a value (or values) plus diagnostics."""

    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    value: bytes | None = None  # msgpack
    private: bytes = b""
    requires_replace: list[AttributePath] = field(default_factory=list)
    imported: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (type, state, private)


class FrameworkServer:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.resources: dict[str, Resource] = {r.type_name: r for r in provider.resources()}
        self.data_sources: dict[str, DataSource] = {d.type_name: d for d in provider.data_sources()}
        self.stop_event = threading.Event()
        self._schemas: dict[tuple[str, str], Schema] = {}
        self.configured = False

    # -- schemas ---------------------------------------------------------------------------------
    def schema_of(self, kind: str, type_name: str = "") -> Schema:
        key = (kind, type_name)
        if key not in self._schemas:
            if kind == "provider":
                self._schemas[key] = self.provider.schema()
            elif kind == "resource":
                self._schemas[key] = self._resource(type_name).schema()
            else:
                self._schemas[key] = self._data_source(type_name).schema()
        return self._schemas[key]

    def _resource(self, type_name: str) -> Resource:
        try:
            return self.resources[type_name]
        except KeyError:
            raise DiagnosticError(
                "Unknown resource type", f"This provider has no resource type {type_name!r}.") from None

    def _data_source(self, type_name: str) -> DataSource:
        try:
            return self.data_sources[type_name]
        except KeyError:
            raise DiagnosticError("Unknown data source", f"This provider has no data source {type_name!r}.") from None

    def _ctx(self, diags: Diagnostics) -> RequestContext:
        return RequestContext(diagnostics=diags, stop=self.stop_event)

    @staticmethod
    def _decode(data: bytes | None, ty: Object, what: str) -> dict[str, Any] | None:
        if not data:
            return None
        try:
            value: dict[str, Any] = decode(data, ty)  # a known Object decodes to a dict
            return value
        except CtyValueError as exc:
            raise DiagnosticError(
                f"Invalid {what} value", f"Terraform sent a value that does not fit the schema: {exc}") from exc

    @staticmethod
    def _encode(value: dict[str, Any] | None, ty: Object, what: str) -> bytes:
        full = None if value is None else {name: value.get(name) for name in ty.attributes}
        try:
            return encode(full, ty)
        except CtyValueError as exc:
            raise DiagnosticError(
                f"Provider produced an invalid {what}",
                f"{exc}. This is a bug in terraform-provider-vmdk; please report it.",
            ) from exc

    # -- provider ----------------------------------------------------------------------------------
    def validate_provider_config(self, config: bytes) -> Result:
        res = Result()
        schema = self.schema_of("provider")
        cfg = self._decode(config, schema.object_type(), "provider configuration") or {}
        validate_block(schema.block, cfg, res.diagnostics)
        self.provider.validate_config(cfg, res.diagnostics)
        return res

    def configure_provider(self, config: bytes) -> Result:
        res = Result()
        schema = self.schema_of("provider")
        cfg = self._decode(config, schema.object_type(), "provider configuration") or {}
        validate_block(schema.block, cfg, res.diagnostics)
        if res.diagnostics.has_errors:
            return res
        data = self.provider.configure(cfg, self._ctx(res.diagnostics))
        if res.diagnostics.has_errors:
            return res
        for r in self.resources.values():
            r.configure(data)
        for d in self.data_sources.values():
            d.configure(data)
        self.configured = True
        return res

    def stop(self) -> None:
        self.stop_event.set()
        self.provider.stop()

    # -- validation ----------------------------------------------------------------------------------
    def validate_resource_config(self, type_name: str, config: bytes) -> Result:
        res = Result()
        resource = self._resource(type_name)
        schema = self.schema_of("resource", type_name)
        cfg = self._decode(config, schema.object_type(), "resource configuration") or {}
        validate_block(schema.block, cfg, res.diagnostics)
        resource.validate_config(cfg, res.diagnostics)
        return res

    def validate_data_source_config(self, type_name: str, config: bytes) -> Result:
        res = Result()
        ds = self._data_source(type_name)
        schema = self.schema_of("data", type_name)
        cfg = self._decode(config, schema.object_type(), "data source configuration") or {}
        validate_block(schema.block, cfg, res.diagnostics)
        ds.validate_config(cfg, res.diagnostics)
        return res

    # -- state upgrade -----------------------------------------------------------------------------
    def upgrade_resource_state(self, type_name: str, version: int, raw_json: bytes | None,
                               flatmap: dict[str, str] | None = None) -> Result:
        res = Result()
        resource = self._resource(type_name)
        schema = self.schema_of("resource", type_name)
        ty = schema.object_type()
        if not raw_json:
            if flatmap:
                raise DiagnosticError(
                    "Unsupported state format",
                    "This state was written in the legacy flatmap format, which this provider never used.",
                )
            res.value = encode(None, ty)
            return res
        if version > schema.version:
            raise DiagnosticError(
                "State written by a newer provider",
                f"The {type_name} state has schema version {version} but this provider knows versions up to "
                f"{schema.version}. Upgrade terraform-provider-vmdk.",
            )
        if version < schema.version:
            state = json.loads(raw_json)
            for v in range(version, schema.version):
                upgrader = resource.state_upgraders.get(v)
                if upgrader is None:
                    raise DiagnosticError(
                        "Cannot upgrade state",
                        f"No upgrade is defined for {type_name} state from schema version {v} to {v + 1}.",
                    )
                state = upgrader(state)
            raw_json = json.dumps(state).encode()
        try:
            value = decode_json(raw_json, ty, ignore_undeclared=True)
        except CtyValueError as exc:
            raise DiagnosticError(
                "Invalid stored state", f"The stored {type_name} state does not fit the schema: {exc}") from exc
        res.value = self._encode(value, ty, "upgraded state")
        return res

    # -- managed resources ---------------------------------------------------------------------------
    def read_resource(self, type_name: str, state: bytes, private: bytes) -> Result:
        res = Result()
        resource = self._resource(type_name)
        ty = self.schema_of("resource", type_name).object_type()
        current = self._decode(state, ty, "state")
        priv = _load_private(private)
        if current is None:
            res.value = encode(None, ty)
            return res
        req = ReadRequest(diagnostics=res.diagnostics, stop=self.stop_event, state=current, private=priv)
        try:
            new = resource.read(req)
        except DiagnosticError as exc:
            res.diagnostics.extend(exc.diagnostics)
            new = current  # a failed refresh keeps the state as it was
        except Exception:  # noqa: BLE001
            _unexpected(res.diagnostics, type_name, "read")
            new = current
        res.value = self._encode(new, ty, "state")
        res.private = _dump_private(req.private if new is not None else {})
        return res

    def plan_resource_change(self, type_name: str, prior: bytes, proposed: bytes, config: bytes,
                             prior_private: bytes) -> Result:
        res = Result()
        resource = self._resource(type_name)
        ty = self.schema_of("resource", type_name).object_type()
        prior_v = self._decode(prior, ty, "prior state")
        proposed_v = self._decode(proposed, ty, "proposed state")
        config_v = self._decode(config, ty, "configuration") or {}
        req = PlanRequest(diagnostics=res.diagnostics, stop=self.stop_event, config=config_v, prior=prior_v,
                          private=_load_private(prior_private))
        outcome = plan_resource_change(resource, req, proposed_v)
        res.value = self._encode(outcome.plan, ty, "plan")
        res.requires_replace = outcome.requires_replace
        res.private = _dump_private(outcome.private)
        return res

    def apply_resource_change(self, type_name: str, prior: bytes, planned: bytes, config: bytes,
                              planned_private: bytes) -> Result:
        res = Result()
        resource = self._resource(type_name)
        ty = self.schema_of("resource", type_name).object_type()
        prior_v = self._decode(prior, ty, "prior state")
        planned_v = self._decode(planned, ty, "planned state")
        config_v = self._decode(config, ty, "configuration")
        req = ApplyRequest(diagnostics=res.diagnostics, stop=self.stop_event, config=config_v, prior=prior_v,
                           plan=planned_v, private=_load_private(planned_private))
        if planned_v is None:
            if prior_v is not None:
                try:
                    resource.delete(req)
                except DiagnosticError as exc:
                    res.diagnostics.extend(exc.diagnostics)
                except Exception:  # noqa: BLE001
                    _unexpected(res.diagnostics, type_name, "delete")
            if res.diagnostics.has_errors:  # keep the object in state (and its private record): nothing was lost
                res.value = self._encode(prior_v, ty, "state")
                res.private = _dump_private(req.private)
                return res
            res.value = encode(None, ty)
            return res
        operation = "create" if prior_v is None else "update"
        new: dict[str, Any] | None
        try:
            new = resource.create(req) if prior_v is None else resource.update(req)
        except DiagnosticError as exc:
            res.diagnostics.extend(exc.diagnostics)
            new = req.partial if req.partial is not None else prior_v  # failed create: only what was made
        except Exception:  # noqa: BLE001 - a bug: the user gets a diagnostic, the log the traceback
            _unexpected(res.diagnostics, type_name, operation)
            new = req.partial if req.partial is not None else prior_v
        if new is not None:
            if not res.diagnostics.has_errors:
                _check_known(new, ty, res.diagnostics)
            if res.diagnostics.has_errors:  # partial result: keep what is known, so nothing is lost
                new = transform(new, ty, lambda _p, v, _t: None if is_unknown(v) else v)
        res.value = self._encode(new, ty, "state")
        res.private = _dump_private(req.private)
        return res

    def import_resource_state(self, type_name: str, import_id: str) -> Result:
        res = Result()
        resource = self._resource(type_name)
        ty = self.schema_of("resource", type_name).object_type()
        partial = resource.import_state(import_id, self._ctx(res.diagnostics))
        if res.diagnostics.has_errors:
            return res
        res.imported.append((type_name, self._encode(partial, ty, "imported state"), b""))
        return res

    # -- data sources --------------------------------------------------------------------------------
    def read_data_source(self, type_name: str, config: bytes) -> Result:
        res = Result()
        ds = self._data_source(type_name)
        ty = self.schema_of("data", type_name).object_type()
        cfg = self._decode(config, ty, "data source configuration") or {}
        state = ds.read(cfg, self._ctx(res.diagnostics))
        if res.diagnostics.has_errors:
            return res
        merged = {**cfg, **(state or {})}
        _check_known(merged, ty, res.diagnostics)
        res.value = self._encode(merged, ty, "data source result")
        return res


def _unexpected(diags: Diagnostics, type_name: str, operation: str) -> None:
    """An error we did not foresee: named by resource and operation, its text only in the log."""
    log.exception("unexpected error in %s %s", type_name, operation)  # noqa: LOG004 - called in except blocks
    diags.error(
        f"Unexpected error in {type_name} ({operation})",
        f"The provider failed unexpectedly while running the {operation} of a {type_name}. Nothing was lost: the "
        "state keeps what vSphere is known to hold, and the next terraform apply checks vSphere again. The "
        "provider log (TF_LOG_PROVIDER=DEBUG) has the details; please report this as a bug.",
    )


def _check_known(value: dict[str, Any], ty: Object, diags: Diagnostics) -> None:
    """Terraform rejects unknown values after apply/read; report which, naming the attribute."""
    for path, v, _ in walk(value, ty):
        if is_unknown(v):
            diags.error(
                "Provider returned an unknown value",
                f"{path} is still unknown after the operation. This is a bug in terraform-provider-vmdk.",
                path,
            )


def _load_private(data: bytes | None) -> dict[str, Any]:
    if not data:
        return {}
    try:
        loaded = json.loads(data)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _dump_private(private: dict[str, Any]) -> bytes:
    return json.dumps(private, sort_keys=True, separators=(",", ":")).encode() if private else b""
