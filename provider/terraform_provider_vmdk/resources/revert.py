"""Resource ``vmdk_snapshot_revert``: put a volume back to a COW snapshot (Cinder's revert_to_snapshot).

The revert happens when the resource is created and whenever ``triggers`` change; deleting the resource
changes nothing. Only a COW snapshot can be reverted to — a template snapshot is a separate copy (make a
volume from it instead) — and a volume attached to a VM is refused.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from functools import partial
from typing import Any

from ..framework.diagnostics import DiagnosticError
from ..framework.planmodifiers import RequiresReplace, UseStateForUnknown
from ..framework.resource import ApplyRequest, Resource
from ..framework.schema import Attribute, Schema, schema
from ..framework.timeouts import timeout_seconds, timeouts_block
from ..framework.types import Map, String
from ..framework.validators import NotEmpty
from .backend import VolumeBackend, backend_of, driver_errors, run_bounded
from .volume_policy import refuse_in_use

__all__ = ["RevertResource"]


class RevertResource(Resource):
    type_name = "vmdk_snapshot_revert"
    importable = False

    def schema(self) -> Schema:
        return schema(
            {
                "id": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                                description="Revert id (a UUID)."),
                "snapshot_id": Attribute(String, required=True, validators=(NotEmpty(),),
                                         plan_modifiers=(RequiresReplace(),),
                                         description="The COW `vmdk_snapshot` to revert its volume to."),
                "triggers": Attribute(Map(String), optional=True,
                                      description="Any change reverts the volume again."),
                "volume_id": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                                       description="The volume that was reverted."),
                "reverted_at": Attribute(String, computed=True,
                                         description="When the volume was last reverted (RFC 3339, UTC)."),
            },
            blocks={"timeouts": timeouts_block("create", "update", defaults={"create": "30m", "update": "30m"})},
            description="Reverts a volume to a COW snapshot (Cinder's revert_to_snapshot) when created and whenever "
            "`triggers` change. Deleting it changes nothing.",
        )

    def _revert(self, req: ApplyRequest, operation: str) -> dict[str, Any]:
        plan = req.plan or {}
        backend = backend_of(self.provider_data)
        limit = timeout_seconds(plan, operation, 1800.0)
        volume_id = run_bounded(f"revert to snapshot {plan['snapshot_id']}", limit, req.stop,
                                lambda: revert(backend, plan["snapshot_id"]), req.private)
        ident = plan.get("id") if isinstance(plan.get("id"), str) else str(uuid.uuid4())
        when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {**plan, "id": ident, "volume_id": volume_id, "reverted_at": when}

    def create(self, req: ApplyRequest) -> dict[str, Any]:
        return self._revert(req, "create")

    def update(self, req: ApplyRequest) -> dict[str, Any]:
        plan, prior = req.plan or {}, req.prior or {}
        if plan.get("triggers") == prior.get("triggers"):
            return {**plan, "volume_id": prior.get("volume_id"), "reverted_at": prior.get("reverted_at")}
        return self._revert(req, "update")

    def delete(self, req: ApplyRequest) -> None:
        return None  # a revert is a past event: nothing to undo


def revert(backend: VolumeBackend, snapshot_id: str) -> str:
    """Revert the snapshot's volume to it; the volume id."""
    index = driver_errors("find the snapshot", backend.index, "snapshot_id")
    if snapshot_id in index.templates:
        raise DiagnosticError(
            "A template snapshot cannot be reverted to",
            f"Snapshot {snapshot_id} is in template format: a separate copy of the volume, not a point in its "
            "history. Create a volume from it (source_snapshot_id) instead.", "snapshot_id")
    owners = [vid for vid in list(index.volumes)
              if any(s.snapshot_id == snapshot_id for s in getattr(index.primary(vid), "snapshots", ()))]
    for volume_id in owners:  # the one volume the batched read saw it in, read again now with its holders
        choice, fresh = driver_errors("find the volume", partial(backend.decide_on, volume_id), "snapshot_id")
        backing = choice.primary
        if backing is None:
            continue
        for snapshot in backing.snapshots:
            if snapshot.snapshot_id == snapshot_id:
                refuse_in_use(fresh.users_of(backing), "revert it", "snapshot_id")
                reverted = driver_errors("revert the volume",
                                         partial(backend.ops.revert_to_snapshot, backing, snapshot),
                                         "snapshot_id")
                backend.remember(reverted)
                return volume_id
    raise DiagnosticError("Snapshot not found", f"No snapshot with id {snapshot_id!r} exists (a COW snapshot lives in "
                          "its volume: was the volume deleted?).", "snapshot_id")
