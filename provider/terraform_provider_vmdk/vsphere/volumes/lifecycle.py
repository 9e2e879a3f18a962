"""Making, changing and removing a volume's shadow VM, each write safe to repeat or reconcile.

The create fixes the volume's identity before the call (instanceUuid = volume id, marks in extraConfig),
so a lost answer is settled by ``reconcile.create_once`` with one FindByUuid. Everything after the
create — the disk UUID, the annotation — sets absolute values and may simply be sent again.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pyVmomi import vim, vmodl

from .. import exceptions as exc
from ..connection import tasks as _tasks
from ..connection.reconcile import create_once
from ..placement import sdrs
from ..placement.rules import format_size
from . import specs
from .backing import Backing
from .base import vim_fault
from .lookup import Lookup

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")


def _refused_spec(error: BaseException) -> bool:
    """vSphere refused the create's configuration itself (not a lack of space, a name taken, doubt)."""
    return isinstance(vim_fault(error), (vim.fault.VmConfigFault, vmodl.fault.InvalidArgument,
                                         vmodl.fault.NotSupported))


class Lifecycle(Lookup):
    _disk_uuid_in_create = True  # cleared for this process when the server refuses it (see create_backing)

    def create_backing(
        self,
        volume_id: str,
        name: str | None,
        size_bytes: int,
        disk_type: str,
        adapter_type: str,
        placement: Any,
        folder: Any = None,
        profile_id: str | None = None,
        description: str | None = None,
    ) -> Backing:
        """CreateVM_Task with controller + disk (exactly once), the disk's UUID = the volume id.

        The UUID goes into the create spec, which saves a ReconfigVM per volume where vSphere honours it;
        where it does not (the disk comes back with another UUID) it is stamped afterwards, as Cinder always
        does. A server that refuses the UUID in a create spec gets the create again without it (it made
        nothing: the refusal is definite), and this process stops asking.

        A failure after the VM exists leaves it in place: the caller has the id in its state already, and
        the next apply replaces (or completes) it."""
        specs.validate_disk_type(disk_type)
        specs.validate_adapter_type(adapter_type)
        kb = specs.size_kb(size_bytes)
        profile_id = profile_id or getattr(placement, "profile_id", None)
        target = self._resolve_folder(folder)

        def create(with_disk_uuid: bool) -> Any:
            spec = specs.create_spec(
                name=specs.backing_name(volume_id),
                volume_id=volume_id,
                size_in_kb=kb,
                disk_type=disk_type,
                adapter_type=adapter_type,
                datastore_name=placement.datastore_name,
                profile_id=profile_id,
                annotation=specs.encode_annotation(name, description),
                hw_version=self.hw_version,
                disk_uuid=volume_id if with_disk_uuid else None,
            )
            return create_once(
                self.session, what=f"create the backing of volume {volume_id}",
                start=lambda: target.CreateVM_Task(config=spec, pool=placement.resource_pool, host=placement.host),
                find=lambda: self.find_vm(volume_id), entity=target, description_ids=("Folder.createVm",),
            )

        if not self._disk_uuid_in_create:
            vm = create(False)
        else:
            try:
                vm = create(True)
            except Exception as error:
                if not _refused_spec(error):
                    raise
                vm = self.find_vm(volume_id)
                if vm is None:
                    LOG.warning("vSphere refused a disk UUID in the create spec (%s); creating volume %s without "
                                "it and setting the UUID afterwards", type(vim_fault(error)).__name__, volume_id)
                    self._disk_uuid_in_create = False
                    vm = create(False)
        return self.stamp_disk_uuid(self.get_backing(vm), volume_id)

    def create_backing_in_pod(
        self,
        volume_id: str,
        name: str | None,
        size_bytes: int,
        disk_type: str,
        adapter_type: str,
        pod: Any,
        choice: Any,
        reserve: Callable[[str, int], Callable[[], None]],
        description: str | None = None,
    ) -> tuple[Backing, str]:
        """Create the shadow VM where Storage DRS recommends, within our rules (exactly once).

        ``pod`` (a placement ``PodInfo``) is asked with the create's spec, identity fixed (instanceUuid =
        volume id) and no datastore named; the first recommendation whose datastore ``choice`` (our rules'
        verdict on the members, ``DatastoreSelector.in_pod``) finds eligible is applied, and the task's result
        names the VM. A lost answer is settled by the instanceUuid; a key vCenter refuses is recommended again,
        once; a server without Apply gets the create on the recommended member. Returns the backing and how it
        was placed (for the log and the caller's messages)."""
        specs.validate_disk_type(disk_type)
        specs.validate_adapter_type(adapter_type)
        target = self._resolve_folder(None)
        first = choice.ranked[0]
        where = choice.placements[first.datastore.key]
        spec = self._pod_create_spec(volume_id, size_bytes, disk_type, adapter_type, choice.profile_id,
                                     specs.encode_annotation(name, description))
        with sdrs.pod_lock(pod.moref._GetMoId()):
            for attempt in (1, 2):
                request = sdrs.create_placement_spec(pod.moref, spec, target, where.resource_pool, None)
                answer = sdrs.recommend(self.session, request)
                picked, vetoed = self.first_acceptable(answer, choice)
                sdrs.cancel(self.session, answer.others(picked.key if picked else None))  # their leases back
                if picked is None:
                    raise exc.NoValidDatastore(no_recommendation(pod.name, size_bytes, answer, vetoed))
                release = reserve(picked.destination_key, size_bytes)
                try:
                    vm = self._apply(volume_id, picked, spec, target, choice, pod.moref)
                except sdrs.KeyRefused:
                    if attempt == 2:
                        raise
                    LOG.warning("volume %s: vCenter refused Storage DRS recommendation %s; asking again",
                                volume_id, picked.key)
                    continue
                finally:
                    release()
                backing = self.stamp_disk_uuid(self.get_backing(vm), volume_id)
                return backing, f"Storage DRS recommendation {picked.key}"
        raise AssertionError("unreachable")

    def recommend_create_target(self, volume_id: str, size_bytes: int, disk_type: str, adapter_type: str, pod: Any,
                                choice: Any) -> str:
        """The member of datastore cluster ``pod`` Storage DRS recommends for a new shadow VM with a disk of
        ``size_bytes`` (``type=create``, as for an empty volume) that ``choice`` accepts, as its moref value: for
        volumes whose disk comes from elsewhere (an image, a backup), made on that member by their own path. The
        recommendation is cancelled (its lease given back)."""
        spec = self._pod_create_spec(volume_id, size_bytes, disk_type, adapter_type, choice.profile_id, None)
        first = choice.placements[choice.ranked[0].datastore.key]
        request = sdrs.create_placement_spec(pod.moref, spec, self._resolve_folder(None), first.resource_pool, None)
        return self.recommended_member(request, pod, size_bytes, choice)

    def _pod_create_spec(self, volume_id: str, size_bytes: int, disk_type: str, adapter_type: str,
                         profile_id: str | None, annotation: str | None) -> Any:
        """A shadow VM's create spec with no datastore anywhere (Storage DRS chooses)."""
        spec = specs.create_spec(
            name=specs.backing_name(volume_id), volume_id=volume_id, size_in_kb=specs.size_kb(size_bytes),
            disk_type=disk_type, adapter_type=adapter_type, datastore_name="", profile_id=profile_id,
            annotation=annotation, hw_version=self.hw_version)
        spec.files = vim.vm.FileInfo()
        return spec

    def recommended_member(self, request: Any, pod: Any, size_bytes: int, choice: Any) -> str:
        """The moref value of the first member Storage DRS recommends for ``request`` that ``choice`` (our rules)
        accepts, for a volume the provider then makes or moves itself: every recommendation is cancelled, giving
        its lease back. NoValidDatastore, naming each vetoed member, when none is acceptable."""
        answer = sdrs.recommend(self.session, request)
        sdrs.cancel(self.session, answer.keys)
        picked, vetoed = self.first_acceptable(answer, choice)
        if picked is None:
            raise exc.NoValidDatastore(no_recommendation(pod.name, size_bytes, answer, vetoed))
        return str(picked.destination_key)

    @staticmethod
    def first_acceptable(answer: Any, choice: Any) -> tuple[Any, list[str]]:
        """The first recommendation whose datastore our rules accept, and why each one before it was vetoed."""
        vetoed: list[str] = []
        for rec in answer.items:
            verdict = choice.verdict(rec.destination_key)
            if verdict is not None and verdict.eligible:
                return rec, vetoed
            name = verdict.datastore.name if verdict is not None else rec.destination_key
            vetoed.append(f"{name}: {verdict.reason if verdict is not None else 'not a member we can judge'}")
        return None, vetoed

    def _settled_find(self, volume_id: str, entities: tuple[Any, ...]) -> Any:
        """The volume's VM once no task runs on ``entities`` (the apply on the pod, its create in the folder): a
        lost answer's task still in flight is not taken for one that never started."""
        for entity in entities:
            _tasks.settle(self.session, entity)
        return self.find_vm(volume_id)

    def _apply(self, volume_id: str, picked: Any, spec: Any, target: Any, choice: Any, pod_moref: Any) -> Any:
        """Apply one recommendation (the new VM); on a server without Apply, CreateVM on its datastore."""
        what = f"create the backing of volume {volume_id} (Storage DRS)"
        try:
            result = create_once(self.session, what=what, start=sdrs.apply_start(self.session, picked.key),
                                 find=lambda: self._settled_find(volume_id, (pod_moref, target)))
        except Exception as error:
            refusal = sdrs.apply_refusal(vim_fault(error) or error)
            if refusal is None:
                raise
            if not isinstance(refusal, sdrs.ApplyNotImplemented):
                made = self.find_vm(volume_id)  # a refused key may be a repeat of an apply that did happen
                if made is not None:
                    return made
                raise refusal from None
            placement = choice.placements[picked.destination_key]
            LOG.info("volume %s: the server has no ApplyStorageDrsRecommendation_Task; creating on the recommended "
                     "datastore %s", volume_id, placement.datastore_name)
            on_member = copy.copy(spec)
            on_member.files = vim.vm.FileInfo(vmPathName=f"[{placement.datastore_name}]")
            return create_once(
                self.session, what=f"create the backing of volume {volume_id}",
                start=lambda: target.CreateVM_Task(config=on_member, pool=placement.resource_pool,
                                                   host=placement.host),
                find=lambda: self.find_vm(volume_id), entity=target, description_ids=("Folder.createVm",))
        vm = sdrs.new_vm(result)
        if vm is None:  # an apply that reports no VM: vCenter made it all the same, under our identity
            vm = self.find_vm(volume_id)
        if vm is None:
            raise exc.VMwareDriverError(f"Storage DRS applied recommendation {picked.key} but no VM has volume "
                                        f"{volume_id}'s identity")
        return vm

    def stamp_disk_uuid(self, backing: Backing, disk_uuid: str) -> Backing:
        """Set the VMDK's UUID (Cinder sets it to the volume id); nothing to do when it already is."""
        if backing.disk is None:
            raise exc.VirtualDiskNotFound(f"backing {backing.name} has no virtual disk")
        if (backing.disk_uuid or "").lower() == disk_uuid.lower():
            return backing
        self._reconfig(backing.moref, specs.disk_uuid_spec(backing.disk, disk_uuid))
        # The task succeeded: vSphere holds this UUID and nothing else of the backing changed, so no re-read
        # (a whole VM read is most of a create's cost). The disk device we return must say so too: a later
        # edit of this device (an extend) sends it back whole, and an old UUID in it would undo the stamp.
        disk = copy.deepcopy(backing.disk)
        disk.backing.uuid = disk_uuid
        devices = tuple(disk if getattr(d, "key", None) == disk.key else d for d in backing.devices)
        return replace(backing, disk_uuid=disk_uuid, disk=disk, devices=devices)

    def ensure_annotation(self, backing: Backing, annotation: str) -> Backing:
        """The annotation a clone's config carried, as vSphere holds it (read with the backing): vSphere applies
        a clone's config, govmomi's simulator drops its annotation. Whatever the server did, the record read
        back decides and a missing annotation is sent again — the same code on every server, no guessing."""
        if (backing.display_name, backing.description) == specs.decode_annotation(annotation):
            return backing
        self._reconfig(backing.moref, specs.extra_config_spec({}, annotation=annotation))
        return self.refresh(backing)

    def delete_backing(self, backing: Backing) -> None:
        """Destroy_Task (which deletes the VMDK); a VM already gone counts as deleted."""
        self._destroy(backing.moref)

    def release_disk(self, backing: Backing) -> str | None:
        """Cinder's unmanage: detach the VMDK from the shadow VM (its file stays), then destroy the VM, which
        now owns no disk. The kept file's path (None when an earlier attempt detached it already). Each step
        is safe to repeat: a lost answer to the detach is settled by the read the destroy starts from."""
        if backing.disk is not None:
            try:
                self._reconfig(backing.moref, vim.vm.ConfigSpec(deviceChange=[specs.disk_remove_spec(backing.disk)]))
            except exc.VMwareDriverError:
                if self.refresh(backing).disk is not None:  # not a repeat of a detach that did happen
                    raise
        fresh = self.refresh(backing)
        if fresh.disk is not None:
            raise exc.VMwareDriverError(f"vSphere kept the disk {fresh.vmdk_path} in {backing.name}; nothing "
                                        "was destroyed")
        self._destroy(backing.moref)
        return backing.vmdk_path

    def rename_backing(self, backing: Backing, new_name: str) -> Backing:
        """Rename_Task; sent again after a lost answer, when vSphere may refuse it (the name is taken — by
        the VM itself): the name the VM has then decides."""
        if backing.name != new_name:
            try:
                self._task(backing.moref.Rename_Task, newName=new_name, idempotent=True)
            except exc.VMwareDriverError:
                if self.refresh(backing).name != new_name:
                    raise
        return self.refresh(backing)

    def update_annotation(self, backing: Backing, name: str | None, description: str | None) -> Backing:
        """Display name and description live in the VM annotation (JSON)."""
        annotation = specs.encode_annotation(name, description)
        self._reconfig(backing.moref, specs.extra_config_spec({}, annotation=annotation))
        return self.refresh(backing)

    def take_over(self, backing: Backing) -> Backing:
        """Mark a backing OpenStack Cinder made as ours (an imported volume's first write): our marks beside
        Cinder's, instanceUuid and disk UUID = the volume id. Absolute values: an interrupted take-over is
        finished by running it again."""
        volume_id = backing.volume_id or ""
        if backing.name != specs.backing_name(volume_id):
            backing = self.rename_backing(backing, specs.backing_name(volume_id))
        marks = specs.volume_marks(volume_id, backing.profile_id)
        self._reconfig(backing.moref, specs.extra_config_spec(marks, instance_uuid=volume_id))
        backing = self.refresh(backing)
        if (backing.disk_uuid or "").lower() != volume_id.lower() and backing.disk is not None:
            backing = self.stamp_disk_uuid(backing, volume_id)
        LOG.info("volume %s: took over the backing %s that OpenStack Cinder made", volume_id, backing.moref_value)
        return backing

    def promote_retype_copy(self, copy: Backing) -> Backing:
        """Make a retype's converted copy the volume: its name, instanceUuid, marks and disk UUID.

        Only once the original backing is gone (the copy cannot take the instanceUuid before). Each step
        sets absolute values, so an interrupted promotion is finished by running it again."""
        volume_id = copy.volume_id or ""
        backing = self.rename_backing(copy, specs.backing_name(volume_id))
        marks = specs.volume_marks(volume_id, backing.profile_id)
        self._reconfig(backing.moref, specs.extra_config_spec(marks, instance_uuid=volume_id))
        backing = self.stamp_disk_uuid(self.refresh(backing), volume_id)
        LOG.info("volume %s: the retyped copy %s is now the volume's backing", volume_id, backing.moref_value)
        return backing


def no_recommendation(pod: str, size_bytes: int, answer: Any, vetoed: list[str]) -> str:
    """Why no recommendation of datastore cluster ``pod`` could be used: each vetoed one, and SDRS's own fault."""
    text = f"Storage DRS of datastore cluster {pod!r} recommended no datastore the provider's rules accept for a " \
        f"{format_size(size_bytes)} volume"
    if vetoed:
        text += ": " + "; ".join(vetoed)
    elif not answer.items:
        text += ": it made no recommendation"
    if answer.fault:
        text += f" (Storage DRS: {answer.fault})"
    return text
