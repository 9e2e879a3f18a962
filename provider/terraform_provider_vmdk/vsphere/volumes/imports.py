"""Volumes whose disk comes from elsewhere: an image file, a backup, or an existing VMDK (Cinder's
copy_image_to_volume, restore_backup and manage_existing).

* streamOptimized (an image or a backup): ImportVApp makes the shadow VM with the volume's identity and the
  disk is streamed into it (``nfc``).
* sparse (monolithicSparse), preallocated (a raw flat extent) and "thin" (a flat extent to be made thin):
  the shadow VM is made without a disk, the image goes next to it on the datastore (a flat extent gets the
  descriptor we write), VirtualDiskManager copies it into the volume's own VMDK in the volume's disk type,
  the upload is removed and the VMDK attached.
* an existing VMDK: detached from the VM that has it (when named), moved into the shadow VM's folder with
  MoveVirtualDisk, attached.
Every step after the shadow VM exists checks what is already done, so an interrupted create continues.
"""

from __future__ import annotations

import io
import logging
import posixpath
from collections.abc import Callable
from typing import Any

from pyVmomi import vim

from .. import exceptions as exc
from ..connection.reconcile import create_once
from ..connection.transfer import ReadStream, WriteStream
from . import specs
from .backing import Backing, split_datastore_path
from .nfc import Nfc
from .resize import Resize

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")

IMAGE_STREAM = "streamOptimized"
IMAGE_SPARSE = "sparse"
IMAGE_PREALLOCATED = "preallocated"
IMAGE_THIN = "thin"
IMAGE_DISK_TYPES = (IMAGE_STREAM, IMAGE_SPARSE, IMAGE_PREALLOCATED, IMAGE_THIN)


class Imports(Resize, Nfc):
    # ------------------------------------------------------------------ the shadow VM
    def _config(self, volume_id: str, name: str | None, description: str | None, placement: Any, *,
                size_bytes: int, disk_type: str, adapter_type: str, profile_id: str | None,
                with_disk: bool) -> vim.vm.ConfigSpec:
        return specs.create_spec(
            name=specs.backing_name(volume_id), volume_id=volume_id, size_in_kb=specs.size_kb_any(size_bytes),
            disk_type=disk_type, adapter_type=adapter_type, datastore_name=placement.datastore_name,
            profile_id=profile_id, annotation=specs.encode_annotation(name, description), hw_version=self.hw_version,
            with_disk=with_disk)

    def create_diskless_backing(self, volume_id: str, name: str | None, description: str | None, placement: Any,
                                profile_id: str | None = None) -> Backing:
        """The shadow VM alone (exactly once): its disk is attached later."""
        config = self._config(volume_id, name, description, placement, size_bytes=specs.GiB,
                              disk_type=specs.DISK_THIN, adapter_type=specs.ADAPTER_LSI, profile_id=profile_id,
                              with_disk=False)
        target = self.volume_folder()
        vm = create_once(
            self.session, what=f"create the backing of volume {volume_id}",
            start=lambda: target.CreateVM_Task(config=config, pool=placement.resource_pool, host=placement.host),
            find=lambda: self.find_vm(volume_id), entity=target, description_ids=("Folder.createVm",),
        )
        return self.get_backing(vm)

    def vm_directory(self, backing: Backing) -> tuple[str, str]:
        """(datastore name, folder) of the shadow VM's files."""
        path = self.session.get_properties(backing.moref, ["config.files.vmPathName"]).get("config.files.vmPathName")
        ds, rel = split_datastore_path(path)
        if not ds:
            raise exc.VMwareDriverError(f"cannot tell where the files of {backing.name} are ({path!r})")
        return ds, posixpath.dirname(rel or "")

    def attach_existing_disk(self, backing: Backing, vmdk_path: str, capacity_bytes: int, disk_type: str,
                             adapter_type: str, profile_id: str | None = None, *, stamp: bool = True) -> Backing:
        """Attach a VMDK file to the shadow VM (nothing to do when that file is its disk already); ``stamp``:
        its disk UUID becomes the volume id (not for a template snapshot's copy, which is not the volume)."""
        if backing.vmdk_path == vmdk_path:
            return backing
        if backing.disk is not None:
            raise exc.VMwareDriverError(f"{backing.name} already has a disk ({backing.vmdk_path})")
        devices = list(backing.devices)
        change = self._attach_specs_for(devices, capacity_bytes, disk_type, adapter_type, vmdk_path, profile_id)
        self._reconfig(backing.moref, vim.vm.ConfigSpec(deviceChange=change))
        fresh = self.refresh(backing)
        if fresh.volume_id and stamp:
            fresh = self.stamp_disk_uuid(fresh, fresh.volume_id)
        return fresh

    @staticmethod
    def _attach_specs_for(devices: list[Any], capacity_bytes: int, disk_type: str, adapter_type: str,
                          vmdk_path: str, profile_id: str | None) -> list[Any]:
        kb = specs.size_kb_any(capacity_bytes)
        if adapter_type == specs.ADAPTER_IDE:
            return [specs.disk_add_spec(kb, disk_type, specs.IDE_CONTROLLER_KEY, file_name=vmdk_path,
                                        profile_id=profile_id)]
        cls = specs.CONTROLLER_CLASSES[adapter_type]
        for controller in devices:
            if type(controller) is cls:
                return [specs.disk_add_spec(kb, disk_type, controller.key,
                                            unit_number=specs.free_unit_number(devices, controller.key),
                                            file_name=vmdk_path, profile_id=profile_id)]
        return specs.disk_and_controller_specs(kb, disk_type, adapter_type, file_name=vmdk_path,
                                               profile_id=profile_id, bus_number=specs.free_scsi_bus(devices))

    # ------------------------------------------------------------------ datastore files
    def delete_datastore_file(self, ds_path: str) -> None:
        """FileManager.DeleteDatastoreFile (a missing file counts as deleted)."""
        try:
            self._task(self.session.content.fileManager.DeleteDatastoreFile_Task, name=ds_path,
                       datacenter=self.inventory.datacenter, idempotent=True)
        except exc.NotFound:
            pass

    def _copy_disk(self, source: str, dest: str, disk_type: str, adapter_type: str) -> str:
        """VirtualDiskManager.CopyVirtualDisk; the disk type the copy has. An ESXi host takes a destination
        spec (the copy is made in ``disk_type``); vCenter does not implement one (NotImplemented: govmomi's
        datastore_file_manager passes none "as it is not implemented by vCenter", Cinder's copy_vmdk_file
        sends none), so there the copy is made as vSphere makes it — "a preallocated format ... is assumed"
        — and its type is read from the copy itself; the volume's own type follows by a retype."""
        vdm = self.session.content.virtualDiskManager
        spec = {"destSpec": specs.disk_copy_spec(disk_type, adapter_type)} if self.host_agent else {}

        def copy() -> None:
            self._task(vdm.CopyVirtualDisk_Task, sourceName=source, sourceDatacenter=self.inventory.datacenter,
                       destName=dest, destDatacenter=self.inventory.datacenter, force=True, idempotent=True, **spec)

        try:
            copy()
        except exc.FileAlreadyExists:
            # vSphere ignores ``force`` ("The FileAlreadyExists fault is thrown if the destination file already
            # exists"): what is there is an earlier attempt's copy — callers copy only into their own shadow VM's
            # folder, under its own name, while that VM does not hold the disk — which may be incomplete.
            LOG.info("%s exists from an earlier attempt; copying it again", dest)
            try:
                self._task(vdm.DeleteVirtualDisk_Task, name=dest, datacenter=self.inventory.datacenter,
                           idempotent=True)
            except exc.FileNotFound:
                pass  # a repeat of a delete that did happen
            copy()
        if spec:
            return disk_type
        _, thin = descriptor_facts(self.read_descriptor(dest))
        return specs.DISK_THIN if thin else specs.DISK_THICK

    # ------------------------------------------------------------------ images
    def import_stream_optimized(self, volume_id: str, name: str | None, description: str | None, *,
                                opener: Callable[[], ReadStream], size: int, capacity_bytes: int, disk_type: str,
                                adapter_type: str, placement: Any, profile_id: str | None, what: str,
                                as_copy: bool = False) -> Backing:
        """ImportVApp + the lease upload of a streamOptimized VMDK into a new shadow VM with the volume's identity
        (``as_copy``: the identity of a copy that will replace the volume's backing, see ``restore_stream``)."""
        config = self._config(volume_id, name, description, placement, size_bytes=capacity_bytes,
                              disk_type=disk_type, adapter_type=adapter_type, profile_id=profile_id, with_disk=True)
        instance_uuid = volume_id
        if as_copy:
            instance_uuid = config.instanceUuid = specs.retype_uuid(volume_id)
            config.name = specs.retype_name(volume_id)
            config.extraConfig = specs.option_values(specs.volume_marks(volume_id, profile_id, specs.KIND_RETYPE))
        vm = self.import_stream(pool=placement.resource_pool, folder=self.volume_folder(), host=placement.host,
                                config=config, volume_id=instance_uuid, opener=opener, size=size, what=what)
        return self.stamp_disk_uuid(self.get_backing(vm), volume_id)

    def restore_stream(self, backing: Backing, *, opener: Callable[[], ReadStream], size: int, capacity_bytes: int,
                       placement: Any, what: str) -> Backing:
        """Replace the volume's disk with a streamOptimized VMDK (Cinder's restore_backup): import it as a copy
        with the volume's disk type, adapter and policy, remove the original, the copy takes the volume's
        identity — the same resumable swap as a retype by copy (``swap_in_copy``)."""
        volume_id = backing.volume_id or ""
        self.clear_stale_copy(backing, "restore")
        copy = self.import_stream_optimized(
            volume_id, backing.display_name, backing.description, opener=opener, size=size,
            capacity_bytes=capacity_bytes, disk_type=backing.disk_type or specs.DISK_THIN,
            adapter_type=backing.adapter_type or specs.ADAPTER_LSI, placement=placement,
            profile_id=backing.profile_id, what=what, as_copy=True)
        return self.swap_in_copy(backing, copy)

    def import_hosted(self, backing: Backing, *, image_kind: str, opener: Callable[[], ReadStream], size: int,
                      capacity_bytes: int, disk_type: str, adapter_type: str, profile_id: str | None,
                      what: str) -> Backing:
        """Upload a sparse or flat image next to the disk-less shadow VM, copy it into the volume's own VMDK
        (in ``disk_type`` where the server can, see ``_copy_disk``), remove the upload, attach the VMDK; the
        caller retypes the volume when the copy's type is not ``disk_type``."""
        ds, folder = self.vm_directory(backing)
        volume_vmdk = f"[{ds}] {posixpath.join(folder, specs.backing_name(backing.volume_id or ''))}.vmdk"
        made_type = disk_type
        if backing.vmdk_path != volume_vmdk:  # not attached yet (a copy an earlier attempt made is overwritten)
            upload = posixpath.join(folder, f"image-{backing.volume_id}.vmdk")
            extent = f"image-{backing.volume_id}-flat.vmdk"
            uploaded = [f"[{ds}] {upload}"]
            if image_kind != IMAGE_SPARSE:
                uploaded.append(f"[{ds}] {posixpath.join(folder, extent)}")
            try:  # every upload is inside: a failed or partial one is removed too, never left on the datastore
                if image_kind == IMAGE_SPARSE:
                    self._upload(ds, upload, opener, size, what)
                else:  # a raw flat extent: the descriptor is ours
                    self._upload(ds, posixpath.join(folder, extent), opener, size, what)
                    text = specs.flat_descriptor(extent, capacity_bytes, adapter_type).encode()
                    self._upload(ds, upload, lambda: io.BytesIO(text), len(text), f"{what} (descriptor)")
                made_type = self._copy_disk(f"[{ds}] {upload}", volume_vmdk, disk_type, adapter_type)
            finally:
                self._remove_uploads(uploaded)
        return self.attach_existing_disk(self.refresh(backing), volume_vmdk, capacity_bytes, made_type, adapter_type,
                                         profile_id)

    def _remove_uploads(self, paths: list[str]) -> None:
        """Remove the uploaded image files. Called in a ``finally``: a failure here is logged, not raised, so it
        never hides the error that ended the import (the next attempt overwrites and removes them)."""
        for path in paths:
            try:
                self.delete_datastore_file(path)
            except Exception as error:  # noqa: BLE001 - reported, and the import's own outcome stands
                LOG.warning("could not remove the uploaded image file %s: %s", path, error)

    def _upload(self, datastore: str, path: str, opener: Callable[[], ReadStream], size: int, what: str) -> None:
        from ..connection import transfer

        dc = self.inventory.datacenter_name
        transfer.upload(self.session, transfer.folder_url(self.session, dc, datastore, path), opener, size, what=what)

    # ------------------------------------------------------------------ existing VMDKs
    def find_vm_by_path(self, inventory_path: str) -> Any:
        """A VM by its inventory path (``DC0/vm/folder/name``), or None."""
        return self.session.call(self.session.content.searchIndex.FindByInventoryPath, inventoryPath=inventory_path)

    def disk_attached(self, vm: Any, vmdk_path: str) -> Any:
        """The VirtualDisk of ``vm`` whose file is ``vmdk_path``, or None."""
        devices = self.session.get_properties(vm, ["config.hardware.device"]).get("config.hardware.device") or []
        for device in devices:
            if isinstance(device, vim.vm.device.VirtualDisk) and getattr(device.backing, "fileName", None) == vmdk_path:
                return device
        return None

    def detach_disk(self, vm: Any, vmdk_path: str) -> None:
        """Remove the disk from the VM, keeping its file (nothing to do when it is not attached)."""
        device = self.disk_attached(vm, vmdk_path)
        if device is not None:
            self._reconfig(vm, vim.vm.ConfigSpec(deviceChange=[specs.disk_remove_spec(device)]))

    def read_descriptor(self, vmdk_path: str) -> str:
        """A VMDK's descriptor text (NotFound when there is no such file)."""
        from ..connection import transfer

        ds, rel = split_datastore_path(vmdk_path)
        if not ds or not rel:
            raise exc.NotFound(f"{vmdk_path!r} is not a datastore path ([datastore] dir/disk.vmdk)")
        text = io.BytesIO()
        transfer.download(self.session, transfer.folder_url(self.session, self.inventory.datacenter_name, ds, rel),
                          lambda: _Keep(text), what=f"read of {vmdk_path}")
        return text.getvalue()[:1 << 20].decode("utf-8", "replace")

    def move_disk(self, source: str, dest: str) -> None:
        """MoveVirtualDisk (a lost answer: the source is gone and the destination there, which is success)."""
        vdm = self.session.content.virtualDiskManager
        try:
            self._task(vdm.MoveVirtualDisk_Task, sourceName=source, sourceDatacenter=self.inventory.datacenter,
                       destName=dest, destDatacenter=self.inventory.datacenter, force=False, idempotent=True)
        except (exc.FileNotFound, exc.FileAlreadyExists):
            try:
                self.read_descriptor(dest)
            except exc.NotFound:
                raise exc.VirtualDiskNotFound(f"{source} is not there to move") from None

    def adopt_disk(self, backing: Backing, *, vmdk_path: str, vm: Any, capacity_bytes: int, disk_type: str,
                   adapter_type: str, profile_id: str | None) -> Backing:
        """Cinder's manage_existing: detach the VMDK from ``vm`` (when given), move it into the shadow VM's
        folder as the volume's VMDK, attach it. Each step checks what an earlier attempt already did."""
        ds, folder = self.vm_directory(backing)
        target = f"[{ds}] {posixpath.join(folder, specs.backing_name(backing.volume_id or ''))}.vmdk"
        if backing.vmdk_path == target:
            return backing
        if vm is not None:
            self.detach_disk(vm, vmdk_path)
        if vmdk_path != target:
            self.move_disk(vmdk_path, target)
        return self.attach_existing_disk(self.refresh(backing), target, capacity_bytes, disk_type, adapter_type,
                                         profile_id)

    # ------------------------------------------------------------------ export
    def export_flat(self, backing: Backing, opener: Callable[[], WriteStream], *, what: str) -> int:
        """The disk's raw bytes (its flat extent, which the descriptor names) into ``opener()``."""
        from ..connection import transfer

        ds, rel = split_datastore_path(backing.vmdk_path)
        if not ds or not rel:
            raise exc.VirtualDiskNotFound(f"{backing.name} has no disk to export")
        dc = self.inventory.datacenter_name
        text = io.BytesIO()
        transfer.download(self.session, transfer.folder_url(self.session, dc, ds, rel), lambda: _Keep(text),
                          what=f"{what} (descriptor)")
        extent = _extent_of(text.getvalue().decode("utf-8", "replace"))
        if extent is None:
            raise exc.VMwareDriverError(f"{what}: {backing.vmdk_path} is not a flat disk (no extent in its descriptor)")
        path = posixpath.join(posixpath.dirname(rel), extent)
        return transfer.download(self.session, transfer.folder_url(self.session, dc, ds, path), opener, what=what)


class _Keep(io.BytesIO):
    """A sink that outlives its ``with`` block, for a small download kept in memory."""

    def __init__(self, target: io.BytesIO) -> None:
        super().__init__()
        target.seek(0)
        target.truncate()  # a new attempt starts over
        self.target = target

    def write(self, data: Any) -> int:
        return self.target.write(data)

    def __exit__(self, *exc_info: Any) -> None:
        pass


def _extent_of(descriptor: str) -> str | None:
    """The extent file a VMDK descriptor names (``RW <sectors> VMFS "name-flat.vmdk"``)."""
    for line in descriptor.splitlines():
        parts = line.strip().split(None, 3)
        if len(parts) == 4 and parts[0] in ("RW", "RDONLY") and parts[2] in ("VMFS", "FLAT"):
            return parts[3].strip().strip('"')
    return None


def descriptor_facts(descriptor: str) -> tuple[int, bool]:
    """(capacity in bytes, thin) from a VMDK descriptor's extent line and ddb.thinProvisioned."""
    sectors, thin = 0, False
    for line in descriptor.splitlines():
        parts = line.strip().split(None, 3)
        if len(parts) == 4 and parts[0] in ("RW", "RDONLY") and parts[1].isdigit():
            sectors += int(parts[1])
        key, _, value = line.partition("=")
        if key.strip() == "ddb.thinProvisioned":
            thin = value.strip().strip('"') == "1"
    return sectors * 512, thin
