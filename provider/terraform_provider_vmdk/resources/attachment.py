"""Resource ``vmdk_volume_attachment``: a volume attached to a VM, with Nova's attach, detach and consolidation.

What to do is decided here; how, in ``vsphere/volumes/attachments.py``:

* attach: the VM is found by its instance or BIOS UUID (``vsphere_virtual_machine.x.id`` plugs in) or its
  inventory path; a device already holding the volume's disk UUID settles a lost answer; a volume another
  VM holds is refused (no multi-attach), and so is an IDE disk on a powered-on VM; when the VM's host cannot
  see the volume's datastore, the volume moves first to one it can (Cinder's placement at attach) — the plan
  warns how many GiB move, and ``allow_relocation = false`` makes that an error;
* detach: refused while a snapshot of the VM holds the disk; when the VM's copy of the disk lives elsewhere
  now (storage vMotion, Storage DRS), the shadow VM follows it first; then the device goes without its file;
* read: the device by disk UUID, then by the VM's ``volume-<id>`` key, then by path; a moved file is a warning
  and the new ``vmdk_path``; the VM or the device gone removes the attachment from the state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..framework.diagnostics import DiagnosticError, Diagnostics
from ..framework.planmodifiers import RequiresReplace, UseStateForUnknown
from ..framework.resource import ApplyRequest, PlanRequest, ReadRequest, RequestContext, Resource
from ..framework.schema import Attribute, Schema, schema
from ..framework.timeouts import timeout_seconds, timeouts_block
from ..framework.types import Bool, Number, String
from ..framework.unknowns import is_unknown
from ..framework.validators import AtLeast, NotEmpty, OneOf, WholeNumber
from .backend import VolumeBackend, backend_of, driver_errors, run_bounded
from .client import VSphereClient
from .disk_types import ADAPTER_TYPES
from .volume_policy import Executor, GiB

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.volumes.attachments import Instance, VmDisk
    from ..vsphere.volumes.backing import Backing

__all__ = ["AttachmentResource"]

LOG = logging.getLogger("terraform_provider_vmdk.resources")
DISK_MODES = ("persistent", "independent_persistent")
_DEFAULT_SECONDS = {"create": 1800.0, "delete": 1800.0}


def _known(value: Any) -> bool:
    return value is not None and not is_unknown(value)


class AttachmentResource(Resource):
    type_name = "vmdk_volume_attachment"

    def schema(self) -> Schema:
        replace = (UseStateForUnknown(), RequiresReplace())
        return schema(
            {
                "id": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                                description="`<VM uuid>:<volume id>`; import by it."),
                "volume_id": Attribute(String, required=True, validators=(NotEmpty(),),
                                       plan_modifiers=(RequiresReplace(),),
                                       description="The `vmdk_volume` to attach. A change attaches another volume."),
                "virtual_machine_id": Attribute(
                    String, optional=True, validators=(NotEmpty(),), plan_modifiers=(RequiresReplace(),),
                    description="The VM's instance UUID or BIOS UUID (`vsphere_virtual_machine.x.id`). Conflicts "
                    "with `virtual_machine`; one of them is required."),
                "virtual_machine": Attribute(
                    String, optional=True, validators=(NotEmpty(),), plan_modifiers=(RequiresReplace(),),
                    description="The VM's inventory path, e.g. `DC0/vm/app-1`."),
                "adapter_type": Attribute(
                    String, optional=True, computed=True, validators=(OneOf(ADAPTER_TYPES),), plan_modifiers=replace,
                    description="Controller family on the VM. Default: the volume's own adapter type. `ide` only on "
                    "a powered-off VM (IDE cannot be hot-added)."),
                "unit_number": Attribute(
                    Number, optional=True, computed=True, validators=(WholeNumber(), AtLeast(0)),
                    plan_modifiers=replace,
                    description="Unit on the controller (SCSI 0-15 but 7, IDE 0-1). Default: the first free one."),
                "disk_mode": Attribute(
                    String, optional=True, default="persistent", validators=(OneOf(DISK_MODES),),
                    plan_modifiers=(RequiresReplace(),),
                    description="`persistent` (Nova's: the VM's snapshots include the volume) or "
                    "`independent_persistent` (they do not, so they never block a detach)."),
                "allow_relocation": Attribute(
                    Bool, optional=True, default=True,
                    description="When the VM's host cannot see the volume's datastore, move the volume to one it can "
                    "before attaching (the plan says how many GiB move). `false` makes that a plan error."),
                "controller_key": Attribute(Number, computed=True, plan_modifiers=(UseStateForUnknown(),),
                                            description="Key of the controller the disk is on."),
                "device_address": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                                            description="`scsi:<bus>:<unit>` or `ide:<bus>:<unit>`."),
                "vmdk_path": Attribute(String, computed=True,
                                       description="The VMDK as the VM sees it (after storage vMotion: its new "
                                       "path)."),
                "disk_uuid": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                                       description="UUID of the disk (the volume's)."),
            },
            blocks={"timeouts": timeouts_block("create", "delete", defaults={"create": "30m", "delete": "30m"})},
            description="Attaches a `vmdk_volume` to a VM the way Nova's VMware driver does: the VM gets a device on "
            "the volume's file (no copy), the volume's shadow VM keeps its own; detach consolidates when the VM's copy "
            "moved, and never deletes the file.",
        )

    # -- validation and plan -------------------------------------------------------------------------
    def validate_config(self, config: dict[str, Any], diags: Diagnostics) -> None:
        given = [k for k in ("virtual_machine_id", "virtual_machine") if config.get(k) is not None]
        if len(given) != 1:
            diags.error("Which VM?", "Set exactly one of virtual_machine_id (the VM's instance or BIOS UUID) and "
                        "virtual_machine (its inventory path).", given[-1] if given else "virtual_machine_id")

    def modify_plan(self, req: PlanRequest) -> None:
        if req.plan is None or req.prior is not None:
            return  # destroy, or an update of allow_relocation / timeouts alone
        plan = req.plan
        client = getattr(self, "provider_data", None)
        wanted = (plan.get("volume_id"), plan.get("virtual_machine_id") or plan.get("virtual_machine"))
        if not isinstance(client, VSphereClient) or not all(_known(v) for v in wanted):
            return  # not known before apply: apply decides and says so
        try:
            backend = backend_of(client)
            instance = _instance(backend, plan)
            backing = backend.get(plan["volume_id"])
        except Exception:  # noqa: BLE001 - plan checks are best effort; apply decides with its own reads
            return
        if instance is None or backing is None:
            return  # apply reports it on the attribute
        # What apply will refuse is a warning here, not an error: Terraform's destroy first runs a normal plan of
        # the whole configuration, so a plan error on an attachment still to be made (its volume made by an
        # apply that then failed to attach it) would block `terraform destroy` too.
        refusal = _refusal(backend, instance, backing, plan)
        if refusal is not None:
            for diag in refusal.diagnostics:
                req.diagnostics.warning(f"{diag.summary} (apply refuses it)", diag.detail, diag.path)
            return
        move = _needs_move(backend, instance, backing)
        if move:
            if plan.get("allow_relocation") is False:
                req.diagnostics.warning(
                    "The VM's host cannot see the volume's datastore (apply refuses it)",
                    f"VM {instance.name} runs on a host that does not mount datastore {backing.datastore_name}, and "
                    "allow_relocation = false. Move the volume (its datastore attribute) or allow the relocation.",
                    "allow_relocation")
            else:
                req.diagnostics.warning(
                    "The volume moves before it is attached",
                    f"VM {instance.name}'s host cannot see datastore {backing.datastore_name}: apply relocates the "
                    f"volume ({-(-backing.size_bytes // GiB)} GiB of data) to a datastore that host mounts, then "
                    "attaches it.", "volume_id")
        req.private["relocate"] = move

    # -- create (attach) ---------------------------------------------------------------------------------
    def create(self, req: ApplyRequest) -> dict[str, Any]:
        plan = req.plan or {}
        backend = backend_of(self.provider_data)
        limit = timeout_seconds(plan, "create", _DEFAULT_SECONDS["create"])
        return run_bounded("attach the volume", limit, req.stop, lambda: self._attach(req, backend), req.private)

    def _attach(self, req: ApplyRequest, backend: VolumeBackend) -> dict[str, Any]:
        plan = req.plan or {}
        volume_id = plan["volume_id"]
        instance = driver_errors("find the VM", lambda: _instance(backend, plan), _vm_attribute(plan))
        if instance is None:
            raise DiagnosticError("VM not found", f"No VM has {_vm_description(plan)}.", _vm_attribute(plan))
        executor = Executor(backend)
        found = driver_errors("find the volume", lambda: executor.resolve(volume_id), "volume_id")
        if found is None:
            raise DiagnosticError("Volume not found", f"No vmdk_volume with id {volume_id} exists.", "volume_id")
        backing: Backing = found
        # The identity is fixed before vSphere is asked: a failed attach still leaves its id in the state.
        req.partial = {**plan, "id": f"{instance.ident}:{volume_id}"}
        existing = backend.ops.attached_disk(instance, volume_id, backing.disk_uuid, backing.own_files)
        if existing is None:
            refusal = _refusal(backend, instance, backing, plan, index=executor.index)
            if refusal is not None:
                raise refusal
            if _needs_move(backend, instance, backing):
                if plan.get("allow_relocation") is False or req.private.get("relocate") is False:
                    raise DiagnosticError(
                        "The VM's host cannot see the volume's datastore",
                        f"VM {instance.name}'s host does not mount datastore {backing.datastore_name} (it moved since "
                        "the plan, or allow_relocation = false). Run terraform apply again to plan the move.",
                        "allow_relocation")
                backing = driver_errors("move the volume where the VM's host can see it",
                                        lambda: _relocate_for(backend, instance, backing), "volume_id")
            backing = driver_errors("mark the volume attached", lambda: backend.ops.mark_attached(
                backing, instance.ident), "volume_id")
            adapter = plan.get("adapter_type") if _known(plan.get("adapter_type")) else backing.adapter_type
            unit = int(plan["unit_number"]) if _known(plan.get("unit_number")) else None
            existing = driver_errors("attach the volume", lambda: backend.ops.attach_volume(
                instance, backing, adapter_type=adapter or "lsiLogic", unit_number=unit,
                disk_mode=plan.get("disk_mode") or "persistent"), "volume_id")
            backend.invalidate()  # who holds the volume changed: the next decision reads again
        return _state(plan, instance, existing)

    # -- read ----------------------------------------------------------------------------------------------
    def read(self, req: ReadRequest) -> dict[str, Any] | None:
        state = req.state
        backend = backend_of(self.provider_data)
        vm_uuid, _, volume_id = str(state.get("id") or "").partition(":")
        volume_id = volume_id or state.get("volume_id") or ""
        instance = driver_errors("read the VM", lambda: backend.ops.find_instance(uuid=vm_uuid) if vm_uuid else None)
        if instance is None:
            return None  # the VM is gone: so is the attachment
        backing = driver_errors("read the volume", lambda: backend.get(volume_id))
        paths = tuple(p for p in (state.get("vmdk_path"), *(backing.own_files if backing is not None else ()))
                      if isinstance(p, str) and p)
        disk = backend.ops.attached_disk(instance, volume_id, state.get("disk_uuid") or (
            backing.disk_uuid if backing is not None else None), paths)
        if disk is None:
            return None  # detached outside Terraform
        if backing is not None and backing.vmdk_path and disk.file_name != backing.vmdk_path:
            req.diagnostics.warning(
                "The VM's copy of the volume moved",
                f"VM {instance.name} holds the volume at {disk.file_name} now (storage vMotion or Storage DRS moved "
                f"it); its shadow VM still names {backing.vmdk_path}. Detaching makes the shadow VM follow the file.")
        return _state(state, instance, disk)

    def import_state(self, import_id: str, ctx: RequestContext) -> dict[str, Any]:
        vm_uuid, sep, volume_id = import_id.strip().partition(":")
        if not sep or not vm_uuid or not volume_id:
            raise DiagnosticError("Invalid import id", "A vmdk_volume_attachment is imported by "
                                  f"`<VM uuid>:<volume id>`, got {import_id!r}.")
        backend = backend_of(self.provider_data)
        instance = driver_errors("find the VM", lambda: backend.ops.find_instance(uuid=vm_uuid))
        if instance is None:
            raise DiagnosticError("VM not found", f"No VM has the instance or BIOS UUID {vm_uuid}.")
        return {"id": f"{instance.ident}:{volume_id}", "volume_id": volume_id, "virtual_machine_id": vm_uuid,
                "disk_mode": "persistent", "allow_relocation": True}

    # -- update (allow_relocation, timeouts) ------------------------------------------------------------------
    def update(self, req: ApplyRequest) -> dict[str, Any]:
        return {**(req.prior or {}), "allow_relocation": (req.plan or {}).get("allow_relocation"),
                "timeouts": (req.plan or {}).get("timeouts")}

    # -- delete (detach) ---------------------------------------------------------------------------------------
    def delete(self, req: ApplyRequest) -> None:
        prior = req.prior or {}
        backend = backend_of(self.provider_data)
        limit = timeout_seconds(prior, "delete", _DEFAULT_SECONDS["delete"])
        run_bounded("detach the volume", limit, req.stop, lambda: self._detach(prior, backend), req.private)

    def _detach(self, prior: dict[str, Any], backend: VolumeBackend) -> None:
        vm_uuid, _, volume_id = str(prior.get("id") or "").partition(":")
        volume_id = volume_id or prior.get("volume_id") or ""
        instance = driver_errors("find the VM", lambda: backend.ops.find_instance(uuid=vm_uuid) if vm_uuid else None)
        if instance is None:
            return  # the VM is gone: nothing holds the volume any more
        choice, _ = driver_errors("find the volume", lambda: backend.decide_on(volume_id))
        backing = choice.primary
        paths = tuple(p for p in (prior.get("vmdk_path"), *(backing.own_files if backing is not None else ()))
                      if isinstance(p, str) and p)
        disk = backend.ops.attached_disk(instance, volume_id, prior.get("disk_uuid") or (
            backing.disk_uuid if backing is not None else None), paths)
        if disk is None:
            driver_errors("clear the VM's volume key", lambda: backend.ops.clear_volume_key(instance, volume_id))
            if backing is not None:
                driver_errors("mark the volume detached", lambda: backend.ops.mark_attached(backing, None))
            return
        if backing is not None and _held_by_a_snapshot(disk, backing):
            raise DiagnosticError(
                "A snapshot of the VM holds the volume",
                f"VM {instance.name} has a snapshot taken while the volume was attached: it runs on "
                f"{disk.file_name}, a delta of the volume's disk, and vSphere cannot remove a disk a snapshot holds. "
                "Delete the VM's snapshots first, then apply again (or attach with disk_mode = "
                "\"independent_persistent\").")
        if backing is not None and disk.file_name not in backing.own_files:
            driver_errors("make the shadow VM follow the moved disk", lambda: _follow(backend, backing, disk, instance))
        driver_errors("detach the volume", lambda: backend.ops.detach_volume(instance, disk, volume_id))
        if backing is not None:
            fresh = driver_errors("find the volume", lambda: backend.ops.reread(backing))
            if fresh is not None:
                driver_errors("mark the volume detached", lambda: backend.ops.mark_attached(fresh, None))
        backend.invalidate()


# ---------------------------------------------------------------------------------------------- helpers
def _vm_attribute(plan: dict[str, Any]) -> str:
    return "virtual_machine_id" if plan.get("virtual_machine_id") else "virtual_machine"


def _vm_description(plan: dict[str, Any]) -> str:
    if plan.get("virtual_machine_id"):
        return f"the instance or BIOS UUID {plan['virtual_machine_id']}"
    return f"the inventory path {plan.get('virtual_machine')!r}"


def _instance(backend: VolumeBackend, plan: dict[str, Any]) -> Instance | None:
    if plan.get("virtual_machine_id"):
        return backend.ops.find_instance(uuid=plan["virtual_machine_id"])
    return backend.ops.find_instance(path=plan.get("virtual_machine"))


def _refusal(backend: VolumeBackend, instance: Instance, backing: Backing, plan: dict[str, Any],
             index: Any = None) -> DiagnosticError | None:
    """What Nova and Cinder refuse at attach, as a diagnostic on the attribute."""
    if instance.is_template:
        return DiagnosticError("A template cannot hold a volume", f"{instance.name} is a template.",
                               _vm_attribute(plan))
    from ..vsphere.volumes.backing import is_ours

    if is_ours(instance.extra_config):
        return DiagnosticError("A shadow VM holds no volume but its own",
                               f"{instance.name} is a volume's shadow VM (or a copy of one), not a VM to attach to.",
                               _vm_attribute(plan))
    holders = [h for h in (index or backend.index()).holders_of(backing.own_files, backing.moref_value)
               if h.moref != instance.moref_value]
    if holders:
        return DiagnosticError(
            "The volume is attached elsewhere",
            f"Volume {backing.volume_id}'s disk is held by {', '.join(h.name for h in holders)}; a volume is attached "
            "to one VM at a time (no multi-attach). Detach it there first.", "volume_id")
    adapter = plan.get("adapter_type") if _known(plan.get("adapter_type")) else backing.adapter_type
    if adapter == "ide" and instance.powered_on:
        return DiagnosticError(
            "IDE disks cannot be hot-added",
            f"VM {instance.name} is powered on and adapter_type is ide: power the VM off, or attach on a SCSI "
            "controller (adapter_type = \"lsiLogic\", \"paraVirtual\"...).", "adapter_type")
    return None


def _needs_move(backend: VolumeBackend, instance: Instance, backing: Backing) -> bool:
    """Whether the VM's host cannot use the volume's datastore (Cinder's placement at attach)."""
    from ..vsphere.placement.datastore import Requirements

    if instance.host is None or backing.datastore is None:
        return False
    host = getattr(instance.host, "_moId", str(instance.host))
    return not backend.selector.is_usable(backing.datastore, Requirements(size_bytes=0, hosts=frozenset({host})))


def _relocate_for(backend: VolumeBackend, instance: Instance, backing: Backing) -> Backing:
    from ..vsphere.placement.datastore import Requirements

    host = getattr(instance.host, "_moId", str(instance.host))
    placement = backend.selector.select(Requirements(size_bytes=backing.size_bytes, hosts=frozenset({host})),
                                        reserve=True)
    try:
        moved = backend.ops.relocate_backing(backing, placement, profile_id=backing.profile_id)
    finally:
        placement.release()
    backend.remember(moved)
    return moved


def _held_by_a_snapshot(disk: VmDisk, backing: Backing) -> bool:
    """The VM runs on a delta over the volume's disk: a snapshot of the VM holds it."""
    own = set(backing.own_files)
    return disk.file_name not in own and bool(own & set(disk.chain[1:]))


def _follow(backend: VolumeBackend, backing: Backing, disk: VmDisk, instance: Instance) -> None:
    """Nova's consolidation: the shadow VM takes the file the VM holds now, its home on that datastore."""
    from ..vsphere.placement.datastore import Requirements

    host = getattr(instance.host, "_moId", str(instance.host)) if instance.host is not None else None
    placement = backend.selector.select(Requirements(size_bytes=0, datastore=disk.datastore_name,
                                                     hosts=frozenset({host}) if host else None))
    try:
        backend.remember(backend.ops.follow_file(backing, disk.file_name, placement))
    finally:
        placement.release()


def _state(base: dict[str, Any], instance: Instance, disk: VmDisk) -> dict[str, Any]:
    volume_id = base.get("volume_id")
    return {
        **base,
        "id": f"{instance.ident}:{volume_id}",
        "adapter_type": disk.adapter_type,
        "unit_number": disk.unit_number,
        "controller_key": disk.controller_key,
        "device_address": disk.device_address,
        "vmdk_path": disk.file_name,
        "disk_uuid": disk.disk_uuid,
        "disk_mode": disk.disk_mode or base.get("disk_mode"),
        "allow_relocation": base.get("allow_relocation") if base.get("allow_relocation") is not None else True,
    }
