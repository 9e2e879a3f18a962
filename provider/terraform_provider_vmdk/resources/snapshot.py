"""Resource ``vmdk_snapshot``: a point-in-time copy of a ``vmdk_volume``, in Cinder's two formats.

* ``COW``: a vSphere snapshot of the volume's shadow VM. Cheap, but it lives and dies with the volume
  (deleting the volume deletes it; a volume with COW snapshots cannot grow).
* ``template``: a full clone of the volume into the ``Snapshots`` folder, marked as a template. It
  outlives its volume and is deleted by deleting the template.

The default format is the provider's ``snapshot_format`` (Cinder's default: ``template``).
``name`` and ``description`` change in place: a COW snapshot is renamed with RenameSnapshot, a
template's display name and description live in its annotation. Import with
``terraform import vmdk_snapshot.s <volume id>/<snapshot name>`` (a snapshot id works too).

Also home of ``gib``, which the data sources share.
"""

from __future__ import annotations

import datetime as _dt
import logging
import uuid
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from ..framework.diagnostics import DiagnosticError
from ..framework.planmodifiers import RequiresReplace, UseStateForUnknown
from ..framework.resource import ApplyRequest, PlanRequest, ReadRequest, RequestContext, Resource
from ..framework.schema import Attribute, Schema, schema
from ..framework.timeouts import timeout_seconds, timeouts_block
from ..framework.types import Number, String
from ..framework.unknowns import UNKNOWN, is_unknown
from ..framework.validators import NotEmpty, OneOf
from .backend import VolumeBackend, backend_of, driver_errors, run_bounded, settle_pending, still_running
from .client import VSphereClient
from .volume_policy import refuse_in_use

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.volumes.backing import Backing, SnapshotInfo

__all__ = ["SnapshotResource", "gib", "rfc3339", "FORMATS"]

LOG = logging.getLogger(__name__)

FORMAT_COW = "COW"
FORMAT_TEMPLATE = "template"
FORMATS = (FORMAT_COW, FORMAT_TEMPLATE)
GiB = 1024**3
DEFAULT_TIMEOUTS = {"create": "60m", "delete": "20m"}


# ------------------------------------------------------------------------------------ shared helpers
def gib(size_bytes: int | None) -> int | float | None:
    """Bytes as GiB for a ``number`` attribute: an int when whole, else rounded to 3 decimals."""
    if size_bytes is None:
        return None
    if size_bytes % GiB == 0:
        return size_bytes // GiB
    return round(size_bytes / GiB, 3)


def rfc3339(when: _dt.datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------ the resource
T = TypeVar("T")


def _known(v: T | None) -> TypeGuard[T]:
    return v is not None and not is_unknown(v)


class SnapshotResource(Resource):
    type_name = "vmdk_snapshot"

    def schema(self) -> Schema:
        return schema(
            {
                "id": Attribute(
                    String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                    description="Snapshot id (a UUID): the template VM's instance UUID, or recorded in the "
                    "COW snapshot's description.",
                ),
                "volume_id": Attribute(
                    String, required=True, validators=(NotEmpty(),), plan_modifiers=(RequiresReplace(),),
                    description="Id of the `vmdk_volume` to snapshot. Changing it replaces the snapshot.",
                ),
                "name": Attribute(
                    String, required=True, validators=(NotEmpty(),),
                    description="Snapshot name. Changes in place (COW: RenameSnapshot; template: its annotation).",
                ),
                "description": Attribute(String, optional=True, description="Free text. Changes in place."),
                "format": Attribute(
                    String, optional=True, computed=True, validators=(OneOf(FORMATS),),
                    plan_modifiers=(UseStateForUnknown(), RequiresReplace()),
                    description="`COW` (a vSphere snapshot, deleted with its volume) or `template` (a full copy "
                    "that outlives its volume). Default: the provider's `snapshot_format`. Changing it "
                    "replaces the snapshot.",
                ),
                "size_gb": Attribute(
                    Number, computed=True, plan_modifiers=(UseStateForUnknown(),),
                    description="Size of the volume, in GiB, when the snapshot was taken.",
                ),
                "created_at": Attribute(
                    String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                    description="When the snapshot was taken (RFC 3339, UTC).",
                ),
            },
            blocks={"timeouts": timeouts_block("create", "delete", defaults=DEFAULT_TIMEOUTS)},
            description="A snapshot of a `vmdk_volume`, as Cinder's VMDK driver makes them: a COW VM "
            "snapshot or a template (full copy).",
        )

    # -- helpers ---------------------------------------------------------------------------------
    def _backend(self) -> VolumeBackend:
        return backend_of(getattr(self, "provider_data", None))

    @staticmethod
    def _find(backend: VolumeBackend, volume_id: str | None, snapshot_id: str, fmt: str | None,
              *, fresh: bool = False) -> SnapshotInfo | None:
        """The snapshot by id: COW in the volume's snapshot tree, template by its instance UUID."""
        if fmt != FORMAT_TEMPLATE and volume_id:
            backing = backend.choice(volume_id, fresh=fresh).primary
            if backing is not None:
                for info in backing.snapshots:
                    if info.snapshot_id == snapshot_id:
                        return info
        if fmt != FORMAT_COW:
            from ..vsphere.volumes.backing import template_snapshot

            record = None if fresh else backend.index().templates.get(snapshot_id)
            found = template_snapshot(record) if record is not None else backend.ops.find_snapshot(
                None, snapshot_id=snapshot_id)
            if (found is not None and found.format == FORMAT_TEMPLATE
                    and (not volume_id or found.volume_id == volume_id)):
                return found
        return None

    @staticmethod
    def _state(info: SnapshotInfo, prior: dict[str, Any] | None, backing: Backing | None = None,
               created_at: str | None = None) -> dict[str, Any]:
        prior = prior or {}
        size = prior.get("size_gb") if _known(prior.get("size_gb")) else None
        if info.format == FORMAT_TEMPLATE:
            size = gib(info.size_bytes)
        elif size is None and backing is not None:
            size = gib(backing.size_bytes)  # COW: a volume with snapshots cannot grow, so still its size
        when = rfc3339(info.create_time) or (prior.get("created_at") if _known(prior.get("created_at")) else None)
        state = {
            "id": info.snapshot_id,
            "volume_id": info.volume_id or prior.get("volume_id"),
            "name": info.name,
            "description": info.description,
            "format": info.format,
            "size_gb": size,
            "created_at": when or created_at,
            "timeouts": prior.get("timeouts"),
        }
        return state

    @staticmethod
    def _template_created(backend: VolumeBackend, info: SnapshotInfo) -> str | None:
        """A template's creation time: config.createDate where vSphere has it (6.7+; vcsim does not)."""
        return rfc3339(info.template.create_date) if info.template is not None else None

    # -- plan --------------------------------------------------------------------------------------
    def modify_plan(self, req: PlanRequest) -> None:
        plan = req.plan
        if plan is None:
            return
        if req.config.get("format") is None:
            if req.prior is not None and _known(req.prior.get("format")):
                plan["format"] = req.prior["format"]  # a changed provider default never replaces snapshots
            elif isinstance(getattr(self, "provider_data", None), VSphereClient):
                plan["format"] = self.provider_data.settings.snapshot_format
            else:
                plan["format"] = UNKNOWN

    # -- create ------------------------------------------------------------------------------------
    def create(self, req: ApplyRequest) -> dict[str, Any]:
        plan = req.plan or {}
        backend = self._backend()
        volume_id = plan["volume_id"]
        fmt_plan = plan.get("format")
        fmt = fmt_plan if _known(fmt_plan) else backend.settings.snapshot_format
        name, description = plan["name"], plan.get("description")
        snapshot_id = str(uuid.uuid4())
        # The identity is fixed before vSphere is asked: a failed or cancelled create keeps it in the state.
        req.partial = {**plan, "id": snapshot_id, "format": fmt}
        limit = timeout_seconds(plan, "create", 3600.0)

        def work() -> tuple[SnapshotInfo, Backing]:
            # the process's batched read names the VM; the snapshot is then read back on its own
            backing = driver_errors("find the volume", lambda: backend.choice(volume_id).primary, "volume_id")
            if backing is None:
                raise DiagnosticError(
                    "Volume not found",
                    f"No vmdk_volume with id {volume_id!r} exists in vSphere (deleted outside Terraform?).",
                    "volume_id",
                )
            refuse_in_use(backend.users_of(backing), "snapshot it", "volume_id")
            info = driver_errors(
                "create the snapshot",
                lambda: backend.ops.create_snapshot(backing, name, description, fmt, snapshot_id=snapshot_id),
            )
            if info.template is not None:
                backend.remember(info.template)
            return info, backing

        info, backing = run_bounded(f"snapshot {name!r} of volume {volume_id}", limit, req.stop, work, req.private)
        created = rfc3339(info.create_time) or (
            self._template_created(backend, info) if info.format == FORMAT_TEMPLATE else None
        ) or rfc3339(_dt.datetime.now(_dt.UTC))
        state = self._state(info, None, backing, created)
        state["size_gb"] = gib(info.size_bytes if info.size_bytes is not None else backing.size_bytes)
        state["timeouts"] = plan.get("timeouts")
        return state

    # -- read --------------------------------------------------------------------------------------
    def read(self, req: ReadRequest) -> dict[str, Any] | None:
        state = req.state
        backend = self._backend()
        snapshot_id, volume_id = state.get("id"), state.get("volume_id")
        if not snapshot_id:
            return None
        fmt = state.get("format") if _known(state.get("format")) else None
        info = driver_errors("read the snapshot", lambda: self._find(backend, volume_id, snapshot_id, fmt))
        running = driver_errors("read the snapshot", lambda: still_running(backend, req.private))
        if running:
            req.private["pending_tasks"] = running
        else:
            req.private.pop("pending_tasks", None)
        if info is None:
            if running:  # an interrupted apply's create may still make it: keep the state until it ends
                req.diagnostics.warning(
                    "The snapshot's creation is still running in vSphere",
                    f"Task(s) {', '.join(running)} that an interrupted apply started have not ended; the snapshot "
                    "stays in the state until they do.")
                return state
            return None
        backing = backend.get(info.volume_id) if info.format == FORMAT_COW and info.volume_id else None
        created = None
        if info.format == FORMAT_TEMPLATE and not _known(state.get("created_at")):
            created = self._template_created(backend, info)  # after import
        return self._state(info, state, backing, created)

    # -- update --------------------------------------------------------------------------------------
    def update(self, req: ApplyRequest) -> dict[str, Any]:
        plan, prior = req.plan or {}, req.prior or {}
        backend = self._backend()
        name, description = plan["name"], plan.get("description")
        info = driver_errors(
            "find the snapshot",
            lambda: self._find(backend, prior.get("volume_id"), prior["id"], prior.get("format"), fresh=True),
        )
        if info is None:
            raise DiagnosticError(
                "Snapshot not found",
                f"Snapshot {prior.get('name')!r} ({prior['id']}) no longer exists in vSphere; run "
                "`terraform apply` again to create it.",
            )
        if info.format == FORMAT_COW:
            driver_errors("rename the COW snapshot",
                          lambda: backend.ops.rename_cow_snapshot(info, name, description), "name")
        else:
            self._rename_template(backend, info, name, description)
        fresh = driver_errors(
            "read the snapshot",
            lambda: self._find(backend, prior.get("volume_id"), prior["id"], info.format, fresh=True),
        )
        state = self._state(fresh or info, prior)
        state["timeouts"] = plan.get("timeouts")
        req.partial = state
        if fresh is not None and fresh.name != name:
            req.diagnostics.error("vSphere did not apply name", f"The plan asked for name = {name!r}, but vSphere "
                                  f"reports {fresh.name!r} after the rename; the state records {fresh.name!r}.", "name")
        if fresh is not None and (fresh.description or None) != (description or None):
            req.diagnostics.error("vSphere did not apply description", f"The plan asked for description = "
                                  f"{description!r}, but vSphere reports {fresh.description!r} after the rename.",
                                  "description")
        return state

    @staticmethod
    def _rename_template(backend: VolumeBackend, info: SnapshotInfo, name: str, description: str | None) -> None:
        """The name and description are the template's annotation (see VolumeOps.update_template_annotation)."""
        template = info.template if info.template is not None else backend.ops.get_backing(info.moref)

        def host_and_pool() -> tuple[Any, Any]:
            from ..vsphere.placement.datastore import Requirements

            evaluation = backend.selector.evaluate_one(template.datastore, Requirements(size_bytes=0))
            if not evaluation.hosts:
                raise DiagnosticError("Cannot rename the template snapshot",
                                      f"No usable host mounts datastore {template.datastore_name}.", "name")
            host = evaluation.hosts[0]
            return host.moref, host.resource_pool or backend.inventory.resource_pool_for_host(host.moref)

        driver_errors("rename the template snapshot",
                      lambda: backend.ops.update_template_annotation(template, name, description, host_and_pool),
                      "name")

    # -- delete --------------------------------------------------------------------------------------
    def delete(self, req: ApplyRequest) -> None:
        prior = req.prior or {}
        backend = self._backend()
        snapshot_id, volume_id = prior.get("id"), prior.get("volume_id")
        if not snapshot_id:
            return
        fmt = prior.get("format") if _known(prior.get("format")) else None
        limit = timeout_seconds(prior, "delete", 1200.0)

        def work() -> None:
            driver_errors("wait for the snapshot's running tasks", lambda: settle_pending(backend, req.private, None))
            info = driver_errors(
                "find the snapshot", lambda: self._find(backend, volume_id, snapshot_id, fmt, fresh=True)
            )
            if info is None:
                return  # COW snapshots went with their volume; a template deleted outside Terraform: nothing to do
            if info.format == FORMAT_COW and info.volume_id:
                # Removing a COW snapshot merges its delta into the disk below: decided on a read made now, it is
                # refused while an instance holds the volume's files (its device may be on that very delta).
                choice, index = driver_errors("find the volume", lambda: backend.decide_on(info.volume_id or ""))
                if choice.primary is not None:
                    refuse_in_use(index.users_of(choice.primary), "delete its COW snapshot", "volume_id")
            driver_errors("delete the snapshot", lambda: backend.ops.delete_snapshot(None, snapshot=info))
            if info.template is not None:
                backend.forget(info.template)

        run_bounded(f"delete snapshot {prior.get('name')!r}", limit, req.stop, work, req.private)

    # -- import --------------------------------------------------------------------------------------
    def import_state(self, import_id: str, ctx: RequestContext) -> dict[str, Any]:
        volume_id, sep, key = import_id.partition("/")
        if not sep or not volume_id or not key:
            raise DiagnosticError(
                "Invalid import id",
                f"Expected <volume id>/<snapshot name> (or <volume id>/<snapshot id>), got {import_id!r}.",
            )
        backend = self._backend()

        def lookup() -> list[SnapshotInfo]:
            found: dict[str, SnapshotInfo] = {}
            backing = backend.ops.find_backing(volume_id)
            for info in backing.snapshots if backing is not None else ():
                if info.snapshot_id and key in (info.name, info.snapshot_id):
                    found[info.snapshot_id] = info
            for sid, info in backend.ops.list_snapshot_templates(volume_id).items():
                if key in (info.name, sid):
                    found[sid] = info
            return list(found.values())

        matches = driver_errors("look up the snapshot", lookup)
        if not matches:
            raise DiagnosticError(
                "Snapshot not found",
                f"Volume {volume_id} has no snapshot named (or with id) {key!r} made by this provider "
                "(COW snapshots live in the volume, template snapshots in the Snapshots folder).",
            )
        if len(matches) > 1:
            ordered = sorted(matches, key=lambda m: m.snapshot_id or "")
            listing = ", ".join(f"{m.snapshot_id} ({m.format})" for m in ordered)
            raise DiagnosticError(
                "Ambiguous snapshot name",
                f"Volume {volume_id} has {len(matches)} snapshots named {key!r}: {listing}. Import by id: "
                f"{volume_id}/<snapshot id>.",
            )
        info = matches[0]
        return {"id": info.snapshot_id, "volume_id": volume_id, "format": info.format, "name": info.name}
