"""Resource ``vmdk_volume``: a VMDK in a never-powered-on shadow VM, managed as Cinder manages volumes.

Where each change happens:
- plan (``modify_plan``): shrink → error on ``size_gb``; growing a disk that cannot grow in place (COW
  snapshots, linked-clone child) → error on ``size_gb``; growing without room on a pinned datastore →
  error; growing without room → warning "moves to another datastore first" and ``datastore``/``vmdk_path``
  become unknown; retype (disk type / adapter / policy) → a warning naming the path apply takes and the
  data it copies; which computed attributes may change.
- apply (``update``): relocate (datastore) → retype → extend → name/description, each through VolumeOps.
The facts plan needs about the backing (COW snapshot count, linked clone, free space) come from the
last refresh, kept in private state, so planning costs no vSphere call.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from ..framework.diagnostics import DiagnosticError, Diagnostics
from ..framework.planmodifiers import RequiresReplace, UseStateForUnknown
from ..framework.resource import ApplyRequest, PlanRequest, ReadRequest, RequestContext, Resource
from ..framework.schema import Attribute, Schema, schema
from ..framework.timeouts import timeout_seconds, timeouts_block
from ..framework.types import Map, Number, String
from ..framework.unknowns import UNKNOWN, is_unknown
from ..framework.validators import AtLeast, NotEmpty, OneOf, WholeNumber
from .backend import DeadlineExceeded, GiB, VolumeBackend, backend_of, driver_errors, with_deadline
from .disk_types import ADAPTER_TYPES, VOLUME_DISK_TYPES

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.backing import Backing

__all__ = ["VolumeResource", "volume_state_from_backing", "VOLUME_ATTRIBUTES"]

CLONE_TYPES = ("full", "linked")
DEFAULT_TIMEOUTS = {"create": "30m", "update": "30m", "delete": "10m"}
_DEFAULT_SECONDS = {"create": 1800.0, "update": 1800.0, "delete": 600.0}
# Computed attributes that describe where the disk lives; they change when the disk moves.
LOCATION_ATTRIBUTES = ("vmdk_path", "connection_info")


def _known(v: Any) -> bool:
    return v is not None and not is_unknown(v)


VOLUME_ATTRIBUTES: dict[str, Attribute] = {
    "id": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                    description="Volume id (a UUID): the shadow VM's instance UUID and the disk's UUID."),
    "name": Attribute(String, required=True, validators=(NotEmpty(),),
                      description="Display name (kept in the shadow VM's annotation). Changes in place."),
    "description": Attribute(String, optional=True, description="Free text. Changes in place."),
    "size_gb": Attribute(
        Number, required=True, validators=(WholeNumber(), AtLeast(1)),
        description="Size in GiB, a whole number ≥ 1. Growing extends the disk in place (moving the volume "
        "to a datastore with room first when its own lacks it, which the plan warns about); shrinking is refused at "
        "plan time, and so is growing a volume that has COW snapshots or is a linked clone (vSphere cannot extend "
        "those disks): delete the COW snapshots, or recreate the volume as a full clone, first.",
    ),
    "disk_type": Attribute(
        String, optional=True, default="thin", validators=(OneOf(VOLUME_DISK_TYPES),),
        description="`thin`, `thick` (lazy zeroed) or `eagerZeroedThick`. Default `thin`. Changes in place "
        "(retype: a full copy on the same datastore, or a relocation when the volume has snapshots).",
    ),
    "adapter_type": Attribute(
        String, optional=True, default="lsiLogic", validators=(OneOf(ADAPTER_TYPES),),
        description="Controller the disk is attached to in its shadow VM: "
        + ", ".join(f"`{a}`" for a in ADAPTER_TYPES) + ". Default `lsiLogic`. Changes in place.",
    ),
    "storage_policy": Attribute(
        String, optional=True, validators=(NotEmpty(),),
        description="Storage policy (SPBM) name. Placement only uses compliant datastores. Changes in place: "
        "the volume stays if its datastore complies, else it moves to one that does.",
    ),
    "datastore": Attribute(
        String, optional=True, computed=True, plan_modifiers=(UseStateForUnknown(),),
        description="Datastore name. Unset: placement picks one (Cinder's rules) and the pick is kept. "
        "Set and changed: the volume is relocated in place.",
    ),
    "source_volume_id": Attribute(
        String, optional=True, plan_modifiers=(RequiresReplace(),),
        description="Create as a clone of this volume. Conflicts with `source_snapshot_id`.",
    ),
    "source_snapshot_id": Attribute(
        String, optional=True, plan_modifiers=(RequiresReplace(),),
        description="Create from this `vmdk_snapshot`. Conflicts with `source_volume_id`.",
    ),
    "clone_type": Attribute(
        String, optional=True, default="full", validators=(OneOf(CLONE_TYPES),), plan_modifiers=(RequiresReplace(),),
        description="`full` (an independent copy) or `linked` (a child disk of the source; only with a source, "
        "and it becomes full when the new volume is bigger than the source). Default `full`.",
    ),
    "backing_name": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                              description="Name of the shadow VM (`volume-<id>`)."),
    "backing_moref": Attribute(String, computed=True, description="Managed object id of the shadow VM."),
    "vmdk_path": Attribute(String, computed=True, description="Datastore path of the VMDK, `[datastore] dir/file.vmdk`."),
    "disk_uuid": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                           description="UUID of the virtual disk."),
    "connection_info": Attribute(
        Map(String), computed=True,
        description="What a consumer needs to attach the volume, as Cinder's initialize_connection returns it: "
        "`driver_volume_type` (`vmdk`), `volume` (shadow VM moref), `volume_id`, `vmdk_path`, `datastore`, "
        "`datacenter`.",
    ),
}


def volume_state_from_backing(backing: "Backing", datacenter: str, prior: dict[str, Any] | None = None
                              ) -> dict[str, Any]:
    """The resource/data-source attributes vSphere knows, from a backing record."""
    prior = prior or {}
    policy = prior.get("storage_policy")
    if backing.profile_id is None:
        policy = None
    size_gb = -(-backing.size_bytes // GiB)  # rounded up, as Cinder reports sizes
    return {
        "id": backing.volume_id,
        "name": backing.display_name if backing.display_name is not None else prior.get("name"),
        "description": backing.description,
        "size_gb": size_gb,
        "disk_type": backing.disk_type or prior.get("disk_type"),
        "adapter_type": backing.adapter_type or prior.get("adapter_type"),
        "storage_policy": policy,
        "datastore": backing.datastore_name,
        "backing_name": backing.name,
        "backing_moref": backing.moref_value,
        "vmdk_path": backing.vmdk_path,
        "disk_uuid": backing.disk_uuid,
        "connection_info": {
            "driver_volume_type": "vmdk",
            "volume": backing.moref_value,
            "volume_id": backing.volume_id or "",
            "vmdk_path": backing.vmdk_path or "",
            "datastore": backing.datastore_name or "",
            "datacenter": datacenter,
        },
    }


def _private_facts(backend: VolumeBackend, backing: "Backing") -> dict[str, Any]:
    """What plan needs to know about the backing without calling vSphere."""
    return {
        "cow_snapshots": len(backing.snapshots),
        "linked_clone": backing.is_linked_clone,
        "datastore_free": backend.datastore_free(backing.datastore_name),
        "profile_id": backing.profile_id,
    }


class VolumeResource(Resource):
    type_name = "vmdk_volume"

    def schema(self) -> Schema:
        return schema(
            VOLUME_ATTRIBUTES,
            blocks={"timeouts": timeouts_block("create", "update", "delete", defaults=DEFAULT_TIMEOUTS)},
            description="A VMDK volume: one virtual disk in a never-powered-on shadow VM, placed, cloned, "
            "extended and retyped the way OpenStack Cinder's VMware VMDK driver does it.",
        )

    # -- validation --------------------------------------------------------------------------------
    def validate_config(self, config: dict[str, Any], diags: Diagnostics) -> None:
        src_vol, src_snap = config.get("source_volume_id"), config.get("source_snapshot_id")
        if src_vol is not None and src_snap is not None:
            diags.error("Conflicting sources", "Set source_volume_id or source_snapshot_id, not both.",
                        "source_snapshot_id")
        if config.get("clone_type") == "linked" and src_vol is None and src_snap is None:
            diags.error("Linked clone without a source",
                        'clone_type = "linked" needs source_volume_id or source_snapshot_id.', "clone_type")

    # -- plan ----------------------------------------------------------------------------------------
    def modify_plan(self, req: PlanRequest) -> None:
        plan, prior, diags = req.plan, req.prior, req.diagnostics
        if plan is None or prior is None:
            return
        facts = req.private
        changes: list[str] = []
        moves = False

        new_size, old_size = plan.get("size_gb"), prior.get("size_gb")
        if _known(new_size) and _known(old_size) and new_size != old_size:
            if new_size < old_size:
                diags.error(
                    "Volumes cannot shrink",
                    f"size_gb is {old_size} GiB; it can grow but not shrink to {new_size} GiB (vSphere cannot "
                    "shrink a virtual disk, and a smaller replacement would lose data). To get a smaller volume, "
                    "create a new one and copy the data.",
                    "size_gb",
                )
                return
            if facts.get("cow_snapshots"):
                diags.error(
                    "Volume cannot be extended while it has snapshots",
                    f"The volume has {facts['cow_snapshots']} COW snapshot(s); vSphere cannot extend a disk with "
                    "snapshots. Delete the COW snapshots (or use template-format snapshots) and apply again.",
                    "size_gb",
                )
                return
            if facts.get("linked_clone"):
                diags.error(
                    "Linked clone cannot be extended",
                    "This volume is a linked clone (a child disk of another volume's snapshot); vSphere cannot "
                    "extend it. Recreate it with clone_type = \"full\" to get a volume that can grow.",
                    "size_gb",
                )
                return
            growth = (new_size - old_size) * GiB
            free = facts.get("datastore_free")
            needs_room = plan.get("disk_type") != "thin" and free is not None and free < growth
            if needs_room:
                if _known(req.config.get("datastore")) and req.config.get("datastore") == prior.get("datastore"):
                    diags.error(
                        "Datastore lacks room to extend",
                        f"Datastore {prior.get('datastore')} has {free / GiB:.1f} GiB free; growing by "
                        f"{new_size - old_size} GiB needs more. Unset datastore to let the volume move, or name "
                        "a datastore with room.",
                        "size_gb",
                    )
                    return
                diags.warning(
                    "Volume will move before it grows",
                    f"Datastore {prior.get('datastore')} has {free / GiB:.1f} GiB free, less than the "
                    f"{new_size - old_size} GiB this extend needs: apply relocates the volume ({old_size} GiB of "
                    "data) to a datastore with room, then extends it.",
                    "size_gb",
                )
                plan["datastore"] = UNKNOWN
                moves = True
            changes.append("extend")

        ds_cfg = req.config.get("datastore")
        if _known(ds_cfg) and ds_cfg != prior.get("datastore"):
            diags.warning(
                "Volume will be relocated",
                f"apply moves the volume from datastore {prior.get('datastore')} to {ds_cfg}, copying "
                f"{old_size} GiB.",
                "datastore",
            )
            moves = True

        retype = self._plan_retype(req)
        if retype is not None:
            if retype.path in ("clone", "relocate", "relocate-or-policy"):
                moves = True
                if retype.path != "clone" and not _known(ds_cfg):
                    plan["datastore"] = UNKNOWN
            if retype.path == "clone":
                plan["backing_moref"] = UNKNOWN
            copied = f" It copies the volume's data ({old_size} GiB)." if retype.path in (
                "clone", "relocate", "relocate-or-policy") else ""
            diags.warning(
                f"Retype: {retype.path}",
                "apply will " + "; then ".join(retype.steps) + "." + copied
                + ("".join(f" Note: {w}." for w in retype.warnings)),
            )

        # Computed attributes stay as they are unless the disk moves or is copied (a same-datastore
        # clone keeps the datastore but gets a new VM and file).
        for name in ("backing_moref", *LOCATION_ATTRIBUTES):
            if name == "backing_moref" and is_unknown(plan.get(name)) and retype is not None and retype.path == "clone":
                continue
            plan[name] = UNKNOWN if moves else prior.get(name)
        if _known(ds_cfg) and ds_cfg != prior.get("datastore"):
            plan["datastore"] = ds_cfg

    def _plan_retype(self, req: PlanRequest) -> Any:
        plan, prior = req.plan or {}, req.prior or {}
        keys = ("disk_type", "adapter_type", "storage_policy")
        if not any(plan.get(k) != prior.get(k) for k in keys):
            return None
        if any(is_unknown(plan.get(k)) for k in keys):
            req.diagnostics.warning("Retype planned", "The new disk type, adapter or policy is not known yet; "
                                    "apply decides the path (clone, relocate or policy only).")
            return None
        from ..vsphere.backing import Backing, plan_retype

        facts = req.private
        stand_in = Backing(
            moref=None, moref_value=prior.get("backing_moref") or "", name=prior.get("backing_name") or "",
            volume_id=prior.get("id"), display_name=None, description=None,
            size_bytes=int(prior.get("size_gb") or 0) * GiB, disk_type=prior.get("disk_type"),
            adapter_type=prior.get("adapter_type"), datastore_name=prior.get("datastore"), datastore=None,
            vmdk_path=prior.get("vmdk_path"), disk_uuid=None,
            snapshots=tuple(range(int(facts.get("cow_snapshots") or 0))),  # only the count matters here
            profile_id=prior.get("storage_policy"),
        )
        return plan_retype(stand_in, plan["disk_type"], plan["adapter_type"], plan.get("storage_policy"))

    # -- apply ---------------------------------------------------------------------------------------
    def create(self, req: ApplyRequest) -> dict[str, Any]:
        backend = backend_of(self.provider_data)
        volume_id = str(uuid.uuid4())
        limit = timeout_seconds(req.plan, "create", _DEFAULT_SECONDS["create"])
        try:
            return with_deadline(limit, "creating the volume", lambda: self._create(req, backend, volume_id))
        except DeadlineExceeded as exc:
            # vSphere goes on creating: record the id so Terraform keeps the volume (tainted) and the next
            # apply replaces it, or the next refresh drops it if the create failed. Nothing leaks.
            req.diagnostics.extend(exc.diagnostics)
            return {**(req.plan or {}), "id": volume_id, "backing_name": f"volume-{volume_id}"}

    def _create(self, req: ApplyRequest, backend: VolumeBackend, volume_id: str) -> dict[str, Any]:
        plan = req.plan or {}
        size_bytes = int(plan["size_gb"]) * GiB
        policy = plan.get("storage_policy")
        with backend.writing():
            placement = self._placement(backend, size_bytes, policy, plan.get("datastore"))
            src_vol, src_snap = plan.get("source_volume_id"), plan.get("source_snapshot_id")
            if src_vol or src_snap:
                backing = self._clone(backend, req, volume_id, placement, size_bytes)
            else:
                backing = driver_errors("create volume", lambda: backend.ops.create_backing(
                    volume_id, plan["name"], size_bytes, plan["disk_type"], plan["adapter_type"], placement,
                    profile_id=placement.profile_id, description=plan.get("description")))
            req.private.update(_private_facts(backend, backing))
            return self._state(backend, backing, plan)

    def _placement(self, backend: VolumeBackend, size_bytes: int, policy: str | None, datastore: Any) -> Any:
        from ..vsphere.datastore import DatastoreSelector, Requirements

        requirements = Requirements(size_bytes=size_bytes, profile_name=policy)
        if not _known(datastore):
            return driver_errors("place the volume", lambda: backend.selector.select(requirements),
                                 "storage_policy" if policy else None)
        regex = backend.settings.datastore_regex
        if regex and not re.search(regex, datastore):
            raise DiagnosticError("Datastore not allowed", f"Datastore {datastore!r} does not match the provider's "
                                  f"datastore_regex {regex!r}.", "datastore")
        pinned = DatastoreSelector(backend.client.session(), backend.inventory,
                                   name_regex=f"^{re.escape(datastore)}$",
                                   cluster_names=list(backend.settings.cluster_names) or None)
        return driver_errors(f"place the volume on datastore {datastore}", lambda: pinned.select(requirements),
                             "datastore")

    def _clone(self, backend: VolumeBackend, req: ApplyRequest, volume_id: str, placement: Any,
               size_bytes: int) -> "Backing":
        plan = req.plan or {}
        ops = backend.ops
        if plan.get("source_volume_id"):
            source: Any = backend.get(plan["source_volume_id"])
            if source is None:
                raise DiagnosticError("Source volume not found",
                                      f"No volume with id {plan['source_volume_id']} exists.", "source_volume_id")
        else:
            source = ops.find_snapshot(None, snapshot_id=plan["source_snapshot_id"])
            if source is None:
                source = self._find_cow_snapshot(backend, plan["source_snapshot_id"])
            if source is None:
                raise DiagnosticError("Source snapshot not found",
                                      f"No snapshot with id {plan['source_snapshot_id']} exists.",
                                      "source_snapshot_id")
        source_size = getattr(source, "size_bytes", None) or 0
        if source_size and size_bytes < source_size:
            raise DiagnosticError("Volume smaller than its source",
                                  f"size_gb must be at least the source's size ({-(-source_size // GiB)} GiB).",
                                  "size_gb")
        return driver_errors("clone the volume", lambda: ops.clone_backing(
            source, volume_id, plan["name"], plan["clone_type"], plan["disk_type"], placement, size_bytes,
            description=plan.get("description"), profile_id=placement.profile_id, selector=backend.selector))

    @staticmethod
    def _find_cow_snapshot(backend: VolumeBackend, snapshot_id: str) -> Any:
        for backing in backend.all_backings().values():
            for snap in backing.snapshots:
                if snap.snapshot_id == snapshot_id:
                    return snap
        return None

    def _state(self, backend: VolumeBackend, backing: "Backing", plan: dict[str, Any]) -> dict[str, Any]:
        state = volume_state_from_backing(backing, backend.inventory.datacenter_name, plan)
        for key in ("source_volume_id", "source_snapshot_id", "clone_type", "timeouts"):
            state[key] = plan.get(key)
        if plan.get("storage_policy") and backing.profile_id is not None:
            state["storage_policy"] = plan["storage_policy"]
        if _known(plan.get("name")):
            state["name"] = plan["name"]
        state["description"] = plan.get("description")
        return state

    def read(self, req: ReadRequest) -> dict[str, Any] | None:
        backend = backend_of(self.provider_data)
        backing = driver_errors("read volume", lambda: backend.get(req.state["id"]))
        if backing is None:
            return None
        state = {**req.state, **volume_state_from_backing(backing, backend.inventory.datacenter_name, req.state)}
        req.private.clear()
        req.private.update(_private_facts(backend, backing))
        return state

    def update(self, req: ApplyRequest) -> dict[str, Any]:
        backend = backend_of(self.provider_data)
        limit = timeout_seconds(req.plan, "update", _DEFAULT_SECONDS["update"])
        return with_deadline(limit, "updating the volume", lambda: self._update(req, backend))

    def _update(self, req: ApplyRequest, backend: VolumeBackend) -> dict[str, Any]:
        plan, prior = req.plan or {}, req.prior or {}
        ops = backend.ops
        with backend.writing():
            backing = driver_errors("read volume", lambda: backend.ops.find_backing(prior["id"]))
            if backing is None:
                raise DiagnosticError("Volume not found", f"The backing of volume {prior['id']} disappeared; "
                                      "run terraform apply again to recreate it.")
            ds_cfg = (req.config or {}).get("datastore")
            if _known(ds_cfg) and ds_cfg != backing.datastore_name:
                placement = self._placement(backend, backing.size_bytes, plan.get("storage_policy"), ds_cfg)
                backing = driver_errors("relocate volume", lambda: ops.relocate_backing(
                    backing, placement, profile_id=backing.profile_id), "datastore")
            if any(plan.get(k) != prior.get(k) for k in ("disk_type", "adapter_type", "storage_policy")):
                policy = plan.get("storage_policy")
                profile_id = driver_errors("find storage policy", lambda: backend.selector.profile_id(policy),
                                           "storage_policy")
                result = driver_errors("retype volume", lambda: ops.retype(
                    backing, plan["disk_type"], plan["adapter_type"], profile_id, new_profile_name=policy,
                    selector=backend.selector))
                backing = result.backing
            new_size = int(plan["size_gb"]) * GiB
            if new_size > backing.size_bytes:
                # Only move for room when the plan said the datastore may change.
                selector = backend.selector if is_unknown(plan.get("datastore")) else None
                backing = driver_errors("extend volume", lambda: ops.extend_backing(
                    backing, new_size, selector, profile_name=plan.get("storage_policy")), "size_gb")
            if plan.get("name") != prior.get("name") or plan.get("description") != prior.get("description"):
                backing = driver_errors("update name/description", lambda: ops.update_annotation(
                    backing, plan["name"], plan.get("description")))
            req.private.clear()
            req.private.update(_private_facts(backend, backing))
            return self._state(backend, backing, plan)

    def delete(self, req: ApplyRequest) -> None:
        prior = req.prior or {}
        backend = backend_of(self.provider_data)

        def work() -> None:
            with backend.writing():
                backing = driver_errors("read volume", lambda: backend.ops.find_backing(prior["id"]))
                if backing is None:
                    return  # already gone: deleting is idempotent
                driver_errors("delete volume", lambda: backend.ops.delete_backing(backing))

        with_deadline(timeout_seconds(prior, "delete", _DEFAULT_SECONDS["delete"]), "deleting the volume", work)

    def import_state(self, import_id: str, ctx: RequestContext) -> dict[str, Any]:
        backend = backend_of(self.provider_data)
        backing = driver_errors("import volume", lambda: backend.get(import_id.strip()))
        if backing is None:
            raise DiagnosticError("Cannot import vmdk_volume",
                                  f"No volume with id {import_id!r} exists (the id is the shadow VM's instance UUID).")
        state = volume_state_from_backing(backing, backend.inventory.datacenter_name)
        state["clone_type"] = "full"
        return state
