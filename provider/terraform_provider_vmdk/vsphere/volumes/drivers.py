"""The two drivers, after Cinder's ``VMwareVcVmdkDriver`` and ``VMwareEsxVmdkDriver``: everything that differs
between a vCenter and a standalone ESXi host is here, in one place.

``volume_ops`` picks the driver by what the server says it is (``about.apiType``: "VirtualCenter" or
"HostAgent"), never by guessing from names.

On a standalone ESXi host there are no folders below the datacenter's VM folder, no CloneVM_Task and no
RelocateVM_Task ("The operation is not supported on the object"), no storage policies (PBM is a vCenter
service); VirtualDiskManager.CopyVirtualDisk does take a destination spec there. So every operation that
needs a copy of a disk — a clone, a template snapshot, a volume from a snapshot, a retype of the disk type,
a move to another datastore of the host — makes a new shadow VM without a disk, with the new object's
identity fixed before the call as everywhere, and copies the VMDK into it in the wanted type (Cinder's
``_create_backing_by_copying``). A move or a retype then swaps the copy in for the original with the same
resumable, observed steps as on vCenter (``swap_in_copy``). Extend, COW snapshots, revert, adapter changes,
images, exports and adopting a VMDK are the same on both.
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any

from pyVmomi import vim

from .. import exceptions as exc
from ..connection.reconcile import create_once
from ..placement.pbm import NO_POLICIES
from . import specs
from .backing import Backing, SnapshotInfo, is_ours, template_snapshot
from .volumeops import VolumeOps

__all__ = ["VcenterVolumeOps", "EsxVolumeOps", "volume_ops"]

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")



class VcenterVolumeOps(VolumeOps):
    """vCenter: volumes in a folder of their own, clones and moves by CloneVM_Task and RelocateVM_Task,
    storage policies through PBM (all of ``VolumeOps``)."""

    host_agent = False


class EsxVolumeOps(VolumeOps):
    """A standalone ESXi host: copies instead of clones and moves (see the module's notes)."""

    host_agent = True

    # ------------------------------------------------------------------ where shadow VMs live
    def folder(self, path: str) -> Any:
        """The datacenter's VM folder itself: a host has no folders below it (``volume_folder`` is unused)."""
        return self.inventory.vm_folder

    # ------------------------------------------------------------------ a shadow VM filled by a copy
    def _owned(self, identity: str, marks: dict[str, str]) -> Any:
        """The VM that owns ``identity`` and carries ``marks`` (what a create with a lost answer made), or None."""
        vm = self.find_vm(identity)
        if vm is None:
            return None
        record = self._record(vm)
        if record is None or not is_ours(record.extra_config):
            return None
        wanted = {k: v for k, v in marks.items() if k in (specs.KEY_VOLUME_ID, specs.KEY_KIND, specs.KEY_SNAPSHOT_ID)}
        return vm if all(record.extra_config.get(k, "") == v for k, v in wanted.items()) else None

    def _shell(self, *, identity: str, name: str, marks: dict[str, str], annotation: str, datastore_name: str,
               pool: Any, host: Any, what: str) -> Backing:
        """A shadow VM without a disk, with its identity fixed before the call (exactly once)."""
        config = specs.create_spec(name=name, volume_id=identity, size_in_kb=specs.MIN_DISK_KB,
                                   disk_type=specs.DISK_THIN, adapter_type=specs.ADAPTER_LSI,
                                   datastore_name=datastore_name, annotation=annotation, hw_version=self.hw_version,
                                   with_disk=False)
        config.extraConfig = specs.option_values(marks)
        target = self.inventory.vm_folder
        vm = create_once(self.session, what=what,
                         start=lambda: target.CreateVM_Task(config=config, pool=pool, host=host),
                         find=lambda: self._owned(identity, marks), entity=target,
                         description_ids=("Folder.createVm",))
        return self.get_backing(vm)

    def _fill_by_copy(self, shell: Backing, source_vmdk: str, capacity_bytes: int, disk_type: str,
                      adapter_type: str, *, stamp: bool) -> Backing:
        """CopyVirtualDisk the source (a whole chain becomes one disk) into the shell's folder in ``disk_type``,
        then attach it. An interrupted fill is finished by running it again (the copy overwrites)."""
        ds, folder = self.vm_directory(shell)
        dest = f"[{ds}] {posixpath.join(folder, shell.name)}.vmdk"
        if shell.vmdk_path == dest:
            return shell
        made = self._copy_disk(source_vmdk, dest, disk_type, adapter_type)
        return self.attach_existing_disk(self.refresh(shell), dest, capacity_bytes, made, adapter_type, stamp=stamp)

    def _source_file(self, src: Backing, snapshot_ref: Any) -> str:
        """The disk file to copy: the volume's current disk, or the file a COW snapshot holds its state in."""
        if snapshot_ref is None:
            if not src.vmdk_path:
                raise exc.VirtualDiskNotFound(f"backing {src.name} has no virtual disk")
            return src.vmdk_path
        devices = self.session.get_properties(snapshot_ref, ["config.hardware.device"]).get(
            "config.hardware.device") or ()
        for device in devices:
            if isinstance(device, vim.vm.device.VirtualDisk) and (src.disk_key is None or device.key == src.disk_key):
                return str(getattr(device.backing, "fileName", ""))
        raise exc.VirtualDiskNotFound(f"the snapshot of {src.name} holds no virtual disk")

    # ------------------------------------------------------------------ clones and volumes from snapshots
    def clone_backing(self, source: Backing | SnapshotInfo, new_id: str, name: str | None, *, linked: bool,
                      disk_type: str, placement: Any, folder: Any = None, description: str | None = None,
                      profile_id: str | None = None) -> Backing:
        """A new volume holding a copy of the source's disk (a host cannot clone VMs, and so cannot link a
        clone to its source: a linked clone is a full copy here)."""
        specs.validate_disk_type(disk_type)
        if profile_id:
            raise exc.ProfileNotFound(NO_POLICIES)
        src, snapshot_ref = self.clone_source(source)
        if linked:
            LOG.info("volume %s: a standalone host makes a full copy for a linked clone", new_id)
        shell = self._shell(identity=new_id, name=specs.backing_name(new_id), marks=specs.volume_marks(new_id),
                            annotation=specs.encode_annotation(name, description),
                            datastore_name=placement.datastore_name, pool=placement.resource_pool,
                            host=placement.host, what=f"create the backing of volume {new_id}")
        return self._fill_by_copy(shell, self._source_file(src, snapshot_ref), src.size_bytes, disk_type,
                                  src.adapter_type or specs.ADAPTER_LSI, stamp=True)

    # ------------------------------------------------------------------ template-format snapshots
    def create_template_snapshot(self, backing: Backing, name: str, description: str | None,
                                 snapshot_id: str) -> SnapshotInfo:
        """A copy of the volume's disk in a shadow VM of its own (kind snapshot), beside the volume."""
        annotation = specs.encode_annotation(name, description)
        shell = self._shell(identity=snapshot_id, name=f"snapshot-{snapshot_id}",
                            marks=specs.snapshot_marks(backing.volume_id or "", snapshot_id), annotation=annotation,
                            datastore_name=backing.datastore_name or "", pool=backing.resource_pool, host=None,
                            what=f"template snapshot {name!r} of {backing.name}")
        record = self._fill_by_copy(shell, self._source_file(backing, None), backing.size_bytes,
                                    backing.disk_type or specs.DISK_THIN, backing.adapter_type or specs.ADAPTER_LSI,
                                    stamp=False)
        return self.finish_template(record, annotation)

    def finish_template(self, record: Backing, annotation: str) -> SnapshotInfo:
        """Templates are a vCenter feature: on a host the snapshot's copy stays a powered-off VM (its marks say
        what it is), with its annotation checked as everywhere."""
        record = self.ensure_annotation(record, annotation)
        return template_snapshot(record)

    # ------------------------------------------------------------------ moves and retypes by copy
    def _copy_as(self, backing: Backing, disk_type: str, datastore_name: str, pool: Any, host: Any) -> Backing:
        """The volume's copy (the identity a retype's copy has) on ``datastore_name`` in ``disk_type``."""
        volume_id = backing.volume_id or ""
        shell = self._shell(identity=specs.retype_uuid(volume_id), name=specs.retype_name(volume_id),
                            marks=specs.volume_marks(volume_id, None, specs.KIND_RETYPE),
                            annotation=specs.encode_annotation(backing.display_name, backing.description),
                            datastore_name=datastore_name, pool=pool, host=host,
                            what=f"copy volume {volume_id} as {disk_type} to {datastore_name}")
        return self._fill_by_copy(shell, self._source_file(backing, None), backing.size_bytes, disk_type,
                                  backing.adapter_type or specs.ADAPTER_LSI, stamp=True)

    def copy_for_retype(self, backing: Backing, new_disk_type: str) -> Backing:
        return self._copy_as(backing, new_disk_type, backing.datastore_name or "", backing.resource_pool, None)

    def relocate_backing(self, backing: Backing, placement: Any, disk_type: str | None = None, *,
                         profile_id: str | None = None, folder: Any = None) -> Backing:
        """A move to another datastore of the host: a copy there swapped in for the original (never
        RelocateVM_Task, which a host refuses). A copy would drop COW snapshots, so a volume with them stays."""
        if profile_id:
            raise exc.ProfileNotFound(NO_POLICIES)
        wanted_type = disk_type or backing.disk_type or specs.DISK_THIN
        if placement.datastore_name == backing.datastore_name and wanted_type == backing.disk_type:
            return backing
        if backing.user_snapshots:
            raise exc.InvalidVolume(
                f"volume {backing.volume_id} has {len(backing.user_snapshots)} COW snapshot(s): on a standalone "
                "ESXi host a move to another datastore copies the disk, which would drop them",
                hint="Delete the COW snapshots first, or keep the volume on its datastore")
        self.clear_stale_copy(backing, "move")
        copy = self._copy_as(backing, wanted_type, placement.datastore_name, placement.resource_pool, placement.host)
        return self.swap_in_copy(backing, copy)

    def set_profile(self, backing: Backing, profile_id: str | None) -> Backing:
        if profile_id:
            raise exc.ProfileNotFound(NO_POLICIES)
        return backing


def volume_ops(session: Any, inventory: Any, **settings: Any) -> VolumeOps:
    """The driver for the server ``session`` talks to."""
    if session.is_host_agent:
        return EsxVolumeOps(session, inventory, **settings)
    return VcenterVolumeOps(session, inventory, **settings)
