"""Cloning a volume (or a snapshot) into a new volume's backing, exactly once.

Full clones copy the disk to the placement's datastore (``moveAllDiskBackingsAndDisallowSharing``, the
new disk type in a locator); linked clones make a child disk on the source's datastore
(``createNewChildDiskBacking``) from a snapshot point — the COW snapshot given, or a temporary one that
is removed right after. The new VM's instanceUuid is the new volume id, fixed before the call.
Which kind of clone to make (a linked clone cannot be bigger than its source) is the policy's decision.
"""

from __future__ import annotations

import logging
from typing import Any

from ..connection.reconcile import create_once
from ..placement import sdrs
from . import specs
from .backing import FORMAT_COW, Backing, SnapshotInfo, is_ours
from .base import is_gone
from .snapshots import Snapshots

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")


class Clones(Snapshots):
    def clone_source(self, source: Backing | SnapshotInfo) -> tuple[Backing, Any]:
        """(the VM to clone, the snapshot point or None) for a volume, a COW snapshot or a template."""
        if isinstance(source, SnapshotInfo):
            if source.format == FORMAT_COW:
                return self.get_backing(source.backing), source.moref
            return (source.template if source.template is not None else self.get_backing(source.moref)), None
        return source, None

    def _volume_by_id(self, volume_id: str) -> Any:
        vm = self.find_vm(volume_id)
        if vm is None:
            return None
        record = self.get_backing(vm)
        return vm if is_ours(record.extra_config) and record.volume_id == volume_id else None

    def clone_backing(self, source: Backing | SnapshotInfo, new_id: str, name: str | None, *, linked: bool,
                      disk_type: str, placement: Any, folder: Any = None, description: str | None = None,
                      profile_id: str | None = None) -> Backing:
        """CloneVM_Task into ``volume-<new_id>`` (exactly once), then its annotation and disk UUID."""
        specs.validate_disk_type(disk_type)
        src, snapshot_ref = self.clone_source(source)
        profile_id = profile_id or getattr(placement, "profile_id", None)
        temporary = None
        if linked:
            location = specs.relocate_spec(
                datastore=src.datastore, disk_move_type=specs.DISK_MOVE_LINKED,
                resource_pool=getattr(placement, "resource_pool", None) or src.resource_pool,
                host=getattr(placement, "host", None))
            if snapshot_ref is None:
                temporary = self._temporary_snapshot(src, new_id)
                snapshot_ref = temporary
        else:
            location = specs.relocate_spec(
                datastore=placement.datastore, disk_move_type=specs.DISK_MOVE_FULL,
                resource_pool=placement.resource_pool, host=placement.host, disk_key=src.disk_key,
                disk_type=disk_type, profile_id=profile_id)
        annotation = specs.encode_annotation(name, description)
        marks = specs.volume_marks(new_id, profile_id)
        marks[specs.KEY_SNAPSHOT_ID] = ""
        spec = specs.clone_spec(location=location, snapshot=snapshot_ref, extra_config=marks, instance_uuid=new_id,
                                annotation=annotation)
        if profile_id and not linked:
            assert spec.config is not None  # clone_spec always sets config
            spec.config.vmProfile = specs.profile_specs(profile_id)
        target = self._resolve_folder(folder)
        try:
            vm = create_once(
                self.session, what=f"clone {src.name} into volume {new_id}",
                start=lambda: src.moref.CloneVM_Task(folder=target, name=specs.backing_name(new_id), spec=spec),
                find=lambda: self._volume_by_id(new_id), entity=src.moref,
                description_ids=("VirtualMachine.clone",),
            )
        finally:
            if temporary is not None:
                self._drop_temporary(src, temporary)
        backing = self.ensure_annotation(self.get_backing(vm), annotation)
        return self.stamp_disk_uuid(backing, new_id)

    def recommend_clone_target(self, source: Backing | SnapshotInfo, new_id: str, pod: Any, choice: Any) -> str:
        """The member of datastore cluster ``pod`` Storage DRS recommends for a full clone of ``source`` (a
        ``type=clone`` request) that ``choice`` (our rules) accepts, as its moref value. The clone itself is then
        made by CloneVM on it, as govc does: the disk-type conversion and the policy go in the clone's disk locator,
        which names the datastore. The recommendation is cancelled (its lease given back)."""
        src, _ = self.clone_source(source)
        first = choice.placements[choice.ranked[0].datastore.key]
        request = sdrs.clone_placement_spec(pod.moref, src.moref, src.disk_key, self._resolve_folder(None),
                                            specs.backing_name(new_id), first.resource_pool)
        return self.recommended_member(request, pod, src.size_bytes, choice)

    def _temporary_snapshot(self, src: Backing, new_id: str) -> Any:
        name = specs.temporary_snapshot_name(new_id)
        text = specs.encode_snapshot_description(None, specs.TEMPORARY_SNAPSHOT + new_id)
        return self.take_cow_snapshot(src, name, text, lambda info: info.name == name)

    def _drop_temporary(self, src: Backing, snapshot: Any) -> None:
        try:
            self._task(snapshot.RemoveSnapshot_Task, removeChildren=False, consolidate=True, idempotent=True)
        except Exception as error:
            if is_gone(error):
                return
            LOG.exception("could not remove the temporary snapshot of %s; the next change of that volume removes it",
                          src.name)
