"""Changing a volume in place: relocate, grow, convert the disk type, swap the adapter, set the policy.

Each is one vSphere step that sets absolute values — safe to send again after a lost answer — except the
disk-type conversion on the same datastore, which needs a copy: ``convert_by_clone`` makes it resumable
(the copy has an identity derived from the volume id; the original goes only once the copy is complete;
the copy then takes the volume's identity). Which of these steps a change needs is the policy's decision.
"""

from __future__ import annotations

import logging
from typing import Any

from pyVmomi import vim

from .. import exceptions as exc
from ..connection import budget as _budget
from ..connection import tasks as _tasks
from ..connection.reconcile import create_once
from ..placement import sdrs
from . import specs
from .backing import Backing
from .base import moid, vim_fault
from .clones import Clones
from .lifecycle import Lifecycle, no_recommendation

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")


class Resize(Clones):
    def relocate_backing(self, backing: Backing, placement: Any, disk_type: str | None = None, *,
                         profile_id: str | None = None, folder: Any = None) -> Backing:
        """RelocateVM_Task (a disk locator when the type or policy changes), then into ``folder`` (default:
        the volume folder, as Cinder moves a relocated backing into its folder)."""
        if disk_type is not None:
            specs.validate_disk_type(disk_type)
        spec = specs.relocate_spec(
            datastore=placement.datastore, disk_move_type=specs.DISK_MOVE_RELOCATE,
            resource_pool=placement.resource_pool, host=placement.host, disk_key=backing.disk_key,
            disk_type=disk_type, profile_id=profile_id)
        self._task(backing.moref.RelocateVM_Task, spec=spec, idempotent=True)  # to where it is: a no-op
        target = self._resolve_folder(folder)
        if moid(backing.folder) != moid(target):
            self._task(target.MoveIntoFolder_Task, list=[backing.moref], idempotent=True)
        return self.refresh(backing)

    def relocate_in_pod(self, backing: Backing, pod: Any, choice: Any,
                        reserve: Any) -> Backing:
        """Move the volume to the member of datastore cluster ``pod`` Storage DRS recommends and ``choice`` (our
        rules' verdict on the members) accepts: RecommendDatastores ``type=relocate``, then the recommendation
        applied (RelocateVM on the datastore where the server has no Apply). Absolute: after a lost answer or a
        refused key, where the VM is decides (moved into an acceptable member: done)."""
        first = choice.placements[choice.ranked[0].datastore.key]
        with sdrs.pod_lock(pod.moref._GetMoId()):
            for attempt in (1, 2, 3):
                request = sdrs.relocate_placement_spec(pod.moref, backing.moref, backing.disk_key,
                                                       first.resource_pool, None)
                answer = sdrs.recommend(self.session, request)
                picked, vetoed = Lifecycle.first_acceptable(answer, choice)
                sdrs.cancel(self.session, answer.others(picked.key if picked else None))  # their leases back
                if picked is None:
                    raise exc.NoValidDatastore(no_recommendation(pod.name, backing.size_bytes, answer, vetoed))
                release = reserve(picked.destination_key, backing.size_bytes)
                try:
                    self.run_task_of(sdrs.apply_start(self.session, picked.key))
                    break
                except Exception as error:
                    refusal = sdrs.apply_refusal(vim_fault(error) or error)
                    if isinstance(refusal, sdrs.ApplyNotImplemented):
                        return self.relocate_backing(backing, choice.placements[picked.destination_key])
                    for entity in (pod.moref, backing.moref):  # an apply whose answer was lost may still run
                        _tasks.settle(self.session, entity)
                    now = self.refresh(backing)
                    verdict = choice.verdict(now.datastore._GetMoId()) if now.datastore is not None else None
                    if verdict is not None and verdict.eligible:
                        break  # the move happened (an answer lost, or a repeat of a done apply)
                    doubt = isinstance(error, (exc.OutcomeUnknown, exc.TaskNotFound)) or refusal is not None
                    if not doubt or attempt == 3:
                        raise
                    LOG.warning("%s: the Storage DRS move's outcome was in doubt (%s) and it did not happen; asking "
                                "again", backing.name, error)
                finally:
                    release()
        target = self._resolve_folder(None)
        moved = self.refresh(backing)
        if moid(moved.folder) != moid(target):
            self._task(target.MoveIntoFolder_Task, list=[moved.moref], idempotent=True)
        return self.refresh(moved)

    def recommend_relocate_target(self, backing: Backing, pod: Any, choice: Any, profile_id: str | None) -> str:
        """The member of datastore cluster ``pod`` Storage DRS recommends for moving the volume (``type=relocate``,
        the policy ``profile_id`` in the disk's locator) that ``choice`` accepts, as its moref value. The move is
        then RelocateVM onto it (a disk-type conversion goes in the relocate's disk locator, which names the
        datastore); the recommendation is cancelled (its lease given back)."""
        first = choice.placements[choice.ranked[0].datastore.key]
        profile = specs.profile_specs(profile_id) if profile_id else None
        request = sdrs.relocate_placement_spec(pod.moref, backing.moref, backing.disk_key, first.resource_pool,
                                               None, profile)
        return self.recommended_member(request, pod, backing.size_bytes, choice)

    def run_task_of(self, start: Any) -> Any:
        """Start the task ``start`` returns (a write: a lost answer is OutcomeUnknown) and wait for it."""
        task = self.session.send(start, what="ApplyStorageDrsRecommendation_Task", idempotent=False)
        _budget.current().note_task(task)
        return self.session.wait_for_task(task)

    def grow(self, backing: Backing, new_size_bytes: int) -> Backing:
        """ReconfigVM growing the disk to ``new_size_bytes`` (eagerlyScrub kept as read)."""
        if backing.disk is None:
            raise exc.VirtualDiskNotFound(f"backing {backing.name} has no virtual disk")
        if new_size_bytes > backing.size_bytes:
            self._reconfig(backing.moref, specs.disk_grow_spec(backing.disk, new_size_bytes))
        return self.refresh(backing)

    def free_space(self, datastore: Any) -> int | None:
        if datastore is None:
            return None
        free = self.session.get_properties(datastore, ["summary.freeSpace"]).get("summary.freeSpace")
        return None if free is None else int(free)

    def set_profile(self, backing: Backing, profile_id: str | None) -> Backing:
        """VM home and disk storage policy (or none), recorded in the marks."""
        self._reconfig(backing.moref, specs.profile_change_spec(backing.disk, profile_id))
        return self.refresh(backing)

    # ------------------------------------------------------------------ swapping a volume for its copy
    # A retype by copy and a restore replace the volume's VM by a copy: make the copy (identity derived from
    # the volume id), destroy the original, the copy takes the volume's identity. The invariant, at every
    # moment: at least one complete copy of the data exists in vSphere. The copy is complete before the
    # original goes; a copy goes only while the original provably holds its whole disk; when destroying the
    # original fails, the copy stays unless that proof holds — the next refresh then finds it as the volume.
    def drop_copy(self, original: Backing, copy: Any, volume_id: str) -> bool:
        """Destroy our copy of a volume if — and only if — the original provably still holds its disk."""
        with _budget.scoped(_budget.UNLIMITED):  # an observation after a failure or a stop must still finish
            present = self.disk_present(self.reread(original))
            if present is not True:
                LOG.warning("volume %s: keeping the copy %s, since the original's disk could not be proven "
                            "complete; the next refresh finds the volume by its id", volume_id, moid(copy))
                return False
            self._destroy(copy)
        return True

    def swap_in_copy(self, original: Backing, copy: Backing) -> Backing:
        """Destroy the original and promote the copy; on a failure, roll back by observation (see above)."""
        volume_id = copy.volume_id or ""
        try:
            self._destroy(original.moref)
        except BaseException:
            try:
                if self.drop_copy(original, copy.moref, volume_id):
                    LOG.warning("volume %s: the original backing could not be removed and is intact; removed the "
                                "copy", volume_id)
            except Exception as error:  # noqa: BLE001 - the copy stays; the failure that got us here is raised
                LOG.warning("volume %s: could not settle the copy %s (%s); it stays", volume_id, copy.name, error)
            raise
        return self.promote_retype_copy(copy)

    def clear_stale_copy(self, original: Backing, what: str) -> None:
        """A copy an earlier, interrupted swap left beside a volume whose original is still there goes first —
        only when the original provably holds its disk (else the copy may be the only complete one)."""
        volume_id = original.volume_id or ""
        stale = self._copy_of(volume_id)
        if stale is None or moid(stale) == original.moref_value:
            return
        LOG.info("volume %s: removing the copy an interrupted %s left", volume_id, what)
        if not self.drop_copy(original, stale, volume_id):
            raise exc.VMwareDriverError(
                f"volume {volume_id}: an earlier {what} left a copy of the volume, and the original's disk could "
                "not be proven complete, so neither is removed", hint="Run terraform apply again; if this "
                "persists, check both VMs in vCenter")

    # ------------------------------------------------------------------ disk type by copy
    def _copy_of(self, volume_id: str) -> Any:
        vm = self.find_vm(specs.retype_uuid(volume_id))
        if vm is None:
            return None
        record = self.get_backing(vm)
        return vm if record.is_retype_copy and record.volume_id == volume_id and record.proven else None

    def convert_by_clone(self, backing: Backing, new_disk_type: str) -> Backing:
        """Same datastore, new disk type: full clone with the new type, remove the original, promote the copy.

        Resumable at every step: a copy left by an earlier attempt while the original still exists is removed
        first (with proof, see ``clear_stale_copy``); if the original is already gone, the copy is promoted
        (``find_backing`` returns it)."""
        if backing.is_retype_copy:  # an earlier attempt got as far as removing the original
            return self.promote_retype_copy(backing)
        self.clear_stale_copy(backing, "retype")
        return self.swap_in_copy(backing, self.copy_for_retype(backing, new_disk_type))

    def copy_for_retype(self, backing: Backing, new_disk_type: str) -> Backing:
        """A full clone of the volume beside it in ``new_disk_type``, with the copy's identity (exactly once)."""
        volume_id = backing.volume_id or ""
        location = specs.relocate_spec(datastore=backing.datastore, disk_move_type=specs.DISK_MOVE_FULL,
                                       resource_pool=backing.resource_pool, disk_key=backing.disk_key,
                                       disk_type=new_disk_type)
        annotation = specs.encode_annotation(backing.display_name, backing.description)
        spec = specs.clone_spec(location=location, instance_uuid=specs.retype_uuid(volume_id), annotation=annotation,
                                extra_config=specs.volume_marks(volume_id, backing.profile_id, specs.KIND_RETYPE))
        folder = backing.folder or self.volume_folder()
        vm = create_once(
            self.session, what=f"copy volume {volume_id} as {new_disk_type}",
            start=lambda: backing.moref.CloneVM_Task(folder=folder, name=specs.retype_name(volume_id), spec=spec),
            find=lambda: self._copy_of(volume_id), entity=backing.moref, description_ids=("VirtualMachine.clone",),
        )
        return self.ensure_annotation(self.get_backing(vm), annotation)

    # ------------------------------------------------------------------ adapter
    def change_adapter(self, backing: Backing, adapter_type: str) -> Backing:
        """Move the disk to a controller of ``adapter_type``: detach and re-attach the same file in ONE
        reconfigure, so no failure can leave the volume without its disk."""
        specs.validate_adapter_type(adapter_type)
        disk = backing.disk
        if disk is None:
            raise exc.VirtualDiskNotFound(f"backing {backing.name} has no virtual disk")
        if backing.adapter_type == adapter_type:
            return backing
        devices = [d for d in backing.devices if getattr(d, "key", None) != disk.key]
        spec = vim.vm.ConfigSpec(deviceChange=[specs.disk_remove_spec(disk),
                                               *self._attach_specs(backing, devices, adapter_type)])
        try:
            self._task(backing.moref.ReconfigVM_Task, spec=spec)
        except exc.OutcomeUnknown:
            _tasks.settle(self.session, backing.moref, ("VirtualMachine.reconfigure",))
            if self.refresh(backing).adapter_type != adapter_type:
                self._task(backing.moref.ReconfigVM_Task, spec=spec)
        fresh = self.refresh(backing)
        if fresh.volume_id:  # a re-attached device must keep the volume's disk UUID
            fresh = self.stamp_disk_uuid(fresh, fresh.volume_id)
        return fresh

    def _attach_specs(self, backing: Backing, devices: list[Any], adapter_type: str) -> list[Any]:
        disk = backing.disk
        disk_type = backing.disk_type or specs.DISK_THIN
        if adapter_type == specs.ADAPTER_IDE:
            for key in (specs.IDE_CONTROLLER_KEY, specs.IDE_CONTROLLER_KEY + 1):
                used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == key}
                free = [u for u in (0, 1) if u not in used]
                if free:
                    return [specs.disk_add_spec(disk.capacityInKB, disk_type, key, unit_number=free[0],
                                                file_name=backing.vmdk_path, profile_id=backing.profile_id)]
            raise exc.InvalidAdapterType("no free IDE slot on the backing VM")
        cls = specs.CONTROLLER_CLASSES[adapter_type]
        for controller in devices:
            if type(controller) is cls:
                unit = specs.free_unit_number(devices, controller.key)
                return [specs.disk_add_spec(disk.capacityInKB, disk_type, controller.key, unit_number=unit,
                                            file_name=backing.vmdk_path, profile_id=backing.profile_id)]
        return specs.disk_and_controller_specs(
            disk.capacityInKB, disk_type, adapter_type, file_name=backing.vmdk_path,
            profile_id=backing.profile_id, bus_number=specs.free_scsi_bus(devices))
