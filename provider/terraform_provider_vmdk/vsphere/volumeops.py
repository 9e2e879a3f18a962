"""Volume operations on shadow VMs, after Cinder's VMware VMDK driver (1.5.0).

A volume is a never-powered-on VM named ``volume-<id>`` with one VMDK; its
instanceUuid is the volume id and extraConfig marks it ours (see specs.py).
This module decides *how* to drive vSphere; request objects come from the pure
builders in specs.py, records and retype planning from backing.py.

Design notes (where we differ from, or pin down, Cinder):
* Disk UUID: set with ReconfigVM editing ``backing.uuid`` (Cinder's way; works on
  vSphere and in vcsim, where VirtualDiskManager.SetVirtualDiskUuid is a no-op).
* Extend: ReconfigVM growing capacityInKB/capacityInBytes, not ExtendVirtualDisk_Task
  (deprecated since 6.5, absent in vcsim); a disk with snapshots or a linked-clone
  child is refused up front with a clear message (vSphere refuses those too, later
  and obscurely).
* Snapshots of a volume attached to another VM are refused (VolumeInUse) in both
  formats; Cinder's template path through the instance VM is not implemented.
"""

from __future__ import annotations

import logging
import threading
import uuid as _uuid
from collections.abc import Iterable
from typing import Any

from pyVmomi import vim, vmodl

from . import exceptions as exc
from . import specs, transfer
from .backing import (
    BACKING_PROPERTIES,
    FORMAT_COW,
    FORMAT_TEMPLATE,
    SNAPSHOT_FORMATS,
    Backing,
    RetypePlan,
    RetypeResult,
    SnapshotInfo,
    backing_from_props,
    is_ours,
    plan_retype,
    template_snapshot,
)

__all__ = [
    "VolumeOps",
    "Backing",
    "SnapshotInfo",
    "RetypePlan",
    "RetypeResult",
    "plan_retype",
    "ExtendRefused",
    "CLONE_FULL",
    "CLONE_LINKED",
]

LOG = logging.getLogger(__name__)

CLONE_FULL = "full"
CLONE_LINKED = "linked"
CLONE_TYPES = (CLONE_FULL, CLONE_LINKED)

_NO_SPACE_FAULTS = (vim.fault.NoDiskSpace, vim.fault.InsufficientStorageSpace, vim.fault.InsufficientDisks)


class ExtendRefused(exc.InvalidVolume):
    """Growing this disk is impossible in its current state (snapshots, linked clone)."""


def _vim_fault(error: BaseException | None) -> Any:
    """The vSphere fault behind an exception, however the session wrapped it."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, vmodl.MethodFault):
            return error
        fault = getattr(error, "fault", None)
        if isinstance(fault, vmodl.MethodFault):
            return fault
        error = error.__cause__ or error.__context__
    return None


def _fault_named(error: BaseException, *names: str) -> bool:
    """TaskFailed may carry only the fault's type name (e.g. 'vim.fault.NoDiskSpace')."""
    fault_type = getattr(error, "fault_type", "") or ""
    return any(fault_type.rsplit(".", 1)[-1] == n for n in names)


def _is_no_space(error: BaseException) -> bool:
    return (
        isinstance(error, exc.NoDiskSpace)
        or isinstance(_vim_fault(error), _NO_SPACE_FAULTS)
        or _fault_named(error, "NoDiskSpace", "InsufficientStorageSpace", "InsufficientDisks")
    )


def _is_gone(error: BaseException) -> bool:
    return isinstance(_vim_fault(error), vmodl.fault.ManagedObjectNotFound) or _fault_named(
        error, "ManagedObjectNotFound"
    )


def _moid(obj: Any) -> str | None:
    return getattr(obj, "_moId", None) if obj is not None else None


class VolumeOps:
    """Shadow-VM operations for one datacenter; safe to share between threads."""

    def __init__(
        self,
        session: Any,
        inventory: Any,
        *,
        volume_folder: str = "Volumes",
        snapshot_folder: str = "Snapshots",
        hw_version: str | None = None,
    ) -> None:
        self.session = session
        self.inventory = inventory
        self.volume_folder_path = volume_folder
        self.snapshot_folder_path = f"{volume_folder}/{snapshot_folder}"
        self.hw_version = hw_version
        self._folders: dict[str, Any] = {}
        self._folder_lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self.session.call(fn, *args, **kwargs)

    def _task(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self.session.run_task(fn, *args, **kwargs)

    def _content(self) -> Any:
        return self.session.content

    def folder(self, path: str) -> Any:
        """VM folder under the datacenter's vmFolder, created when missing (cached)."""
        with self._folder_lock:  # serialised: parallel first uses must not race to create it
            found = self._folders.get(path)
            if found is None:
                found = self.inventory.get_or_create_folder(path)
                self._folders[path] = found
            return found

    def volume_folder(self) -> Any:
        return self.folder(self.volume_folder_path)

    def snapshot_folder(self) -> Any:
        return self.folder(self.snapshot_folder_path)

    def _resolve_folder(self, folder: Any) -> Any:
        if folder is None:
            return self.volume_folder()
        if isinstance(folder, str):
            return self.folder(folder)
        return folder

    def _scan(self, properties: Iterable[str] = BACKING_PROPERTIES) -> list[Any]:
        """All VMs of the datacenter with the given properties: one PropertyCollector round trip."""
        return self.session.retrieve(vim.VirtualMachine, list(properties), container=self.inventory.vm_folder)

    def _reconfig(self, vm: Any, spec: vim.vm.ConfigSpec) -> None:
        self._task(vm.ReconfigVM_Task, spec=spec)

    # ------------------------------------------------------------------ lookups
    def get_backing(self, vm: Any) -> Backing:
        """Fresh record for a VM we hold a reference to (one property read)."""
        props = self.session.get_properties(vm, list(BACKING_PROPERTIES))
        return backing_from_props(vm, props)

    def refresh(self, backing: Backing) -> Backing:
        return self.get_backing(backing.moref)

    def _find_by_uuid(self, instance_uuid: str) -> Any | None:
        return self._call(
            self._content().searchIndex.FindByUuid,
            datacenter=self.inventory.datacenter,
            uuid=instance_uuid,
            vmSearch=True,
            instanceUuid=True,
        )

    def find_backing(self, volume_id: str) -> Backing | None:
        """The volume's backing by instanceUuid, only if our extraConfig marks it as that volume."""
        vm = self._find_by_uuid(volume_id)
        if vm is None:
            return None
        try:
            backing = self.get_backing(vm)
        except Exception as error:  # deleted between the search and the read
            if _is_gone(error) or isinstance(error, exc.NotFound):
                return None
            raise
        if not is_ours(backing.extra_config) or backing.volume_id != volume_id or backing.kind != specs.KIND_VOLUME:
            LOG.warning("VM %s has instanceUuid %s but is not our backing for it; ignoring", backing.name, volume_id)
            return None
        return backing

    def _our_records(self) -> list[Backing]:
        out = []
        for item in self._scan():
            ec_props = item.props
            record = backing_from_props(item.obj, ec_props)
            if is_ours(record.extra_config):
                out.append(record)
        return out

    @staticmethod
    def _prefer(current: Backing | None, candidate: Backing, key: str | None) -> Backing:
        """Two records for one id only exist mid-retype: keep the one owning the instanceUuid."""
        if current is None:
            return candidate
        return candidate if candidate.instance_uuid == key and current.instance_uuid != key else current

    def list_backings(self) -> dict[str, Backing]:
        """Every volume backing of ours, keyed by volume id, read in one PropertyCollector call."""
        result: dict[str, Backing] = {}
        for record in self._our_records():
            if record.kind == specs.KIND_VOLUME and record.volume_id:
                result[record.volume_id] = self._prefer(result.get(record.volume_id), record, record.volume_id)
        return result

    def list_snapshot_templates(self, volume_id: str | None = None) -> dict[str, SnapshotInfo]:
        """Template-format snapshots (template VMs we marked), keyed by snapshot id."""
        result: dict[str, SnapshotInfo] = {}
        for record in self._our_records():
            if record.kind == specs.KIND_SNAPSHOT and record.snapshot_id:
                if volume_id is None or record.volume_id == volume_id:
                    result[record.snapshot_id] = template_snapshot(record)
        return result

    def disk_uuid(self, backing: Backing) -> str | None:
        return self.refresh(backing).disk_uuid

    def is_in_use(self, backing: Backing) -> list[str]:
        """Names of OTHER VMs with a disk whose file is this volume's VMDK (one retrieve)."""
        if not backing.vmdk_path:
            return []
        users = []
        for item in self._scan(("name", "config.hardware.device")):
            if _moid(item.obj) == backing.moref_value:
                continue
            for device in item.props.get("config.hardware.device") or ():
                if isinstance(device, vim.vm.device.VirtualDisk):
                    if getattr(device.backing, "fileName", None) == backing.vmdk_path:
                        users.append(item.props.get("name") or _moid(item.obj))
                        break
        return sorted(users)

    def _refuse_in_use(self, backing: Backing, action: str) -> None:
        users = self.is_in_use(backing)
        if users:
            raise exc.VolumeInUse(users)

    # ------------------------------------------------------------------ files
    def _datacenter_path(self) -> str:
        name = getattr(self.inventory, "datacenter_name", None)
        if name:
            return name
        return self.session.get_properties(self.inventory.datacenter, ["name"])["name"]

    def upload_file(self, datastore_name: str, path: str, data: Any, *, size: int | None = None) -> int:
        """PUT a file onto a datastore of this datacenter (HTTPS /folder, session cookie)."""
        return transfer.upload_file(self.session, self._datacenter_path(), datastore_name, path, data, size=size)

    def download_file(self, datastore_name: str, path: str, dest: Any = None) -> bytes | int:
        """GET a datastore file: bytes, or the count written to ``dest``."""
        return transfer.download_file(self.session, self._datacenter_path(), datastore_name, path, dest)

    # ------------------------------------------------------------------ create/delete
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
        """CreateVM_Task with controller + disk, then stamp the disk UUID with the volume id."""
        specs.validate_disk_type(disk_type)
        specs.validate_adapter_type(adapter_type)
        kb = specs.size_kb(size_bytes)
        profile_id = profile_id or getattr(placement, "profile_id", None)
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
        )
        target = self._resolve_folder(folder)
        vm = self._task(target.CreateVM_Task, config=spec, pool=placement.resource_pool, host=placement.host)
        try:
            backing = self.get_backing(vm)
            return self._stamp_disk_uuid(backing, volume_id)
        except BaseException:
            self._destroy_quietly(vm)
            raise

    def _stamp_disk_uuid(self, backing: Backing, disk_uuid: str) -> Backing:
        if backing.disk is None:
            raise exc.VirtualDiskNotFound(f"backing {backing.name} has no virtual disk")
        if (backing.disk_uuid or "").lower() == disk_uuid.lower():
            return backing
        self._reconfig(backing.moref, specs.disk_uuid_spec(backing.disk, disk_uuid))
        return self.refresh(backing)

    def _ensure_annotation(self, backing: Backing, annotation: str) -> Backing:
        """Clone config carries the annotation; re-send it when the server did not apply it (vcsim)."""
        current = self.session.get_properties(backing.moref, ["config.annotation"]).get("config.annotation")
        if current == annotation:
            return backing
        self._reconfig(backing.moref, specs.extra_config_spec({}, annotation=annotation))
        return self.refresh(backing)

    def _destroy_quietly(self, vm: Any) -> None:
        try:
            self._task(vm.Destroy_Task)
        except Exception:  # cleanup of a half-made backing must not hide the real error
            LOG.exception("could not destroy half-created VM %s", vm)

    def delete_backing(self, backing: Backing | str) -> None:
        """Destroy_Task (which deletes the VMDK); refused while another VM uses the disk."""
        if isinstance(backing, str):
            found = self.find_backing(backing)
            if found is None:
                return
            backing = found
        self._refuse_in_use(backing, "delete")
        try:
            self._task(backing.moref.Destroy_Task)
        except Exception as error:
            if _is_gone(error) or isinstance(error, exc.NotFound):
                return
            raise

    def rename_backing(self, backing: Backing, new_name: str) -> Backing:
        self._task(backing.moref.Rename_Task, newName=new_name)
        return self.refresh(backing)

    def update_annotation(self, backing: Backing, name: str | None, description: str | None) -> Backing:
        """Display name and description live in the VM annotation (JSON)."""
        self._reconfig(backing.moref, specs.extra_config_spec({}, annotation=specs.encode_annotation(name, description)))
        return self.refresh(backing)

    # ------------------------------------------------------------------ snapshots
    def create_snapshot(
        self,
        backing: Backing,
        name: str,
        description: str | None = None,
        format: str = FORMAT_TEMPLATE,  # noqa: A002 - Cinder's option name
        *,
        snapshot_id: str | None = None,
    ) -> SnapshotInfo:
        """COW: a VM snapshot (no memory, no quiesce). template: full clone into Snapshots + MarkAsTemplate."""
        if format not in SNAPSHOT_FORMATS:
            raise exc.InvalidSnapshot(f"invalid snapshot format {format!r}; expected one of {', '.join(SNAPSHOT_FORMATS)}")
        self._refuse_in_use(backing, "snapshot")
        snapshot_id = snapshot_id or str(_uuid.uuid4())
        if format == FORMAT_COW:
            snap = self._task(
                backing.moref.CreateSnapshot_Task,
                name=name,
                description=specs.encode_snapshot_description(snapshot_id, description),
                memory=False,
                quiesce=False,
            )
            for info in self.refresh(backing).snapshots:
                if _moid(info.moref) == _moid(snap):
                    return info
            return SnapshotInfo(name, FORMAT_COW, snap, backing.volume_id, description, None, snapshot_id, backing.moref)

        location = specs.relocate_spec(datastore=backing.datastore, disk_move_type=specs.DISK_MOVE_FULL)
        annotation = specs.encode_annotation(name, description)
        spec = specs.clone_spec(
            location=location,
            extra_config=specs.snapshot_marks(backing.volume_id or "", snapshot_id),
            instance_uuid=snapshot_id,
            annotation=annotation,
        )
        vm = self._task(
            backing.moref.CloneVM_Task, folder=self.snapshot_folder(), name=f"snapshot-{snapshot_id}", spec=spec
        )
        try:
            self._ensure_annotation(self.get_backing(vm), annotation)
            self._call(vm.MarkAsTemplate)
            return template_snapshot(self.get_backing(vm))
        except BaseException:
            self._destroy_quietly(vm)
            raise

    def find_snapshot(
        self, backing: Backing | None, name: str | None = None, *, snapshot_id: str | None = None
    ) -> SnapshotInfo | None:
        """By snapshot id (either format) or by name: COW in the VM's tree, else our templates."""
        if backing is not None:
            for info in self.refresh(backing).snapshots:
                if (snapshot_id and info.snapshot_id == snapshot_id) or (not snapshot_id and name and info.name == name):
                    return info
        if snapshot_id:
            vm = self._find_by_uuid(snapshot_id)
            if vm is None:
                return None
            record = self.get_backing(vm)
            if is_ours(record.extra_config) and record.kind == specs.KIND_SNAPSHOT and record.snapshot_id == snapshot_id:
                return template_snapshot(record)
            return None
        if name and backing is not None:
            for info in self.list_snapshot_templates(backing.volume_id).values():
                if info.name == name:
                    return info
        return None

    def delete_snapshot(
        self,
        backing: Backing | None,
        name: str | None = None,
        *,
        snapshot_id: str | None = None,
        snapshot: SnapshotInfo | None = None,
    ) -> None:
        """Remove a COW snapshot (children kept, disks consolidated) or destroy a template; missing → no-op."""
        info = snapshot or self.find_snapshot(backing, name, snapshot_id=snapshot_id)
        if info is None:
            return
        try:
            if info.format == FORMAT_COW:
                self._task(info.moref.RemoveSnapshot_Task, removeChildren=False, consolidate=True)
            else:
                self._task(info.moref.Destroy_Task)
        except Exception as error:
            if _is_gone(error) or isinstance(error, exc.NotFound):
                return
            raise

    def revert_to_snapshot(self, backing: Backing, name: str | None = None, *, snapshot_id: str | None = None) -> Backing:
        """COW only: a template snapshot is a separate VM and cannot be reverted to."""
        info = self.find_snapshot(backing, name, snapshot_id=snapshot_id)
        if info is None:
            raise exc.SnapshotNotFound(f"snapshot {snapshot_id or name!r} of volume {backing.volume_id} not found")
        if info.format != FORMAT_COW:
            raise exc.InvalidSnapshot(
                f"snapshot {info.name!r} is in template format; only COW snapshots can be reverted to"
            )
        self._refuse_in_use(backing, "revert")
        self._task(info.moref.RevertToSnapshot_Task, suppressPowerOn=True)
        return self.refresh(backing)

    # ------------------------------------------------------------------ clone
    def clone_backing(
        self,
        source: Backing | SnapshotInfo,
        new_id: str,
        name: str | None,
        clone_type: str,
        disk_type: str,
        placement: Any,
        size_bytes: int,
        *,
        folder: Any = None,
        description: str | None = None,
        profile_id: str | None = None,
        selector: Any = None,
    ) -> Backing:
        """Full clone (moveAllDiskBackingsAndDisallowSharing, placement's datastore, type via a disk locator)
        or linked clone (createNewChildDiskBacking on the source's datastore from a snapshot point).

        A linked clone falls back to full when the new volume is bigger (a child disk can't
        grow) or the source is a template snapshot (no snapshot point to link to).
        """
        if clone_type not in CLONE_TYPES:
            raise exc.VMwareDriverError(f"invalid clone type {clone_type!r}; expected full or linked")
        specs.validate_disk_type(disk_type)
        specs.size_kb(size_bytes)
        profile_id = profile_id or getattr(placement, "profile_id", None)

        temp_snapshot = None
        snapshot_ref = None
        if isinstance(source, SnapshotInfo):
            if source.format == FORMAT_COW:
                owner = self.get_backing(source.backing)
                src_vm, snapshot_ref = owner.moref, source.moref
                src = owner
            else:
                src = source.template if source.template is not None else self.get_backing(source.moref)
                src_vm = src.moref
        else:
            src, src_vm = source, source.moref
        if size_bytes < src.size_bytes:
            raise exc.InvalidVolume(
                f"a clone cannot be smaller than its source ({src.size_bytes // specs.GiB} GiB)"
            )
        effective = clone_type
        if clone_type == CLONE_LINKED and (size_bytes > src.size_bytes or src.is_template):
            LOG.info("linked clone of %s becomes a full clone (bigger size or template source)", src.name)
            effective = CLONE_FULL

        if effective == CLONE_LINKED:
            location = specs.relocate_spec(
                datastore=src.datastore,
                disk_move_type=specs.DISK_MOVE_LINKED,
                resource_pool=getattr(placement, "resource_pool", None) or src.resource_pool,
                host=getattr(placement, "host", None),
            )
            if snapshot_ref is None:
                temp_snapshot = self._task(
                    src_vm.CreateSnapshot_Task,
                    name=f"clone-{new_id}",
                    description=specs.encode_snapshot_description(None, f"temporary, for linked clone {new_id}"),
                    memory=False,
                    quiesce=False,
                )
                snapshot_ref = temp_snapshot
        else:
            location = specs.relocate_spec(
                datastore=placement.datastore,
                disk_move_type=specs.DISK_MOVE_FULL,
                resource_pool=placement.resource_pool,
                host=placement.host,
                disk_key=src.disk_key,
                disk_type=disk_type,
                profile_id=profile_id,
            )
        marks = specs.volume_marks(new_id, profile_id)
        marks[specs.KEY_SNAPSHOT_ID] = ""
        annotation = specs.encode_annotation(name, description)
        spec = specs.clone_spec(
            location=location,
            snapshot=snapshot_ref,
            extra_config=marks,
            instance_uuid=new_id,
            annotation=annotation,
        )
        if profile_id and effective == CLONE_FULL:
            spec.config.vmProfile = specs.profile_specs(profile_id)
        try:
            vm = self._task(src_vm.CloneVM_Task, folder=self._resolve_folder(folder), name=specs.backing_name(new_id), spec=spec)
        finally:
            if temp_snapshot is not None:
                try:
                    self._task(temp_snapshot.RemoveSnapshot_Task, removeChildren=False, consolidate=True)
                except Exception:
                    LOG.exception("could not remove temporary snapshot clone-%s of %s", new_id, src.name)
        try:
            backing = self._ensure_annotation(self.get_backing(vm), annotation)
            backing = self._stamp_disk_uuid(backing, new_id)
            if size_bytes > backing.size_bytes:
                # a volume that did not exist a moment ago cannot be attached: skip the in-use scan
                backing = self._extend(backing, size_bytes, selector, None)
            return backing
        except BaseException:
            self._destroy_quietly(vm)
            raise

    # ------------------------------------------------------------------ relocate / extend
    def relocate_backing(
        self,
        backing: Backing,
        placement: Any,
        disk_type: str | None = None,
        *,
        profile_id: str | None = None,
        folder: Any = None,
    ) -> Backing:
        """RelocateVM_Task (disk locator when the type or policy changes), then into the volume folder."""
        if disk_type is not None:
            specs.validate_disk_type(disk_type)
        spec = specs.relocate_spec(
            datastore=placement.datastore,
            disk_move_type=specs.DISK_MOVE_RELOCATE,
            resource_pool=placement.resource_pool,
            host=placement.host,
            disk_key=backing.disk_key,
            disk_type=disk_type,
            profile_id=profile_id,
        )
        self._task(backing.moref.RelocateVM_Task, spec=spec)
        target = self._resolve_folder(folder)
        if _moid(backing.folder) != _moid(target):
            self._task(target.MoveIntoFolder_Task, list=[backing.moref])
        return self.refresh(backing)

    def _check_extendable(self, backing: Backing, new_size_bytes: int) -> None:
        specs.size_kb(new_size_bytes)
        if new_size_bytes < backing.size_bytes:
            raise exc.InvalidVolume(
                f"volume {backing.volume_id} cannot shrink from {backing.size_bytes // specs.GiB} GiB to "
                f"{new_size_bytes // specs.GiB} GiB: VMDKs only grow (replace the volume to make it smaller)"
            )
        if backing.has_snapshots:
            raise ExtendRefused(
                f"volume {backing.volume_id} has {len(backing.snapshots)} COW snapshot(s) "
                f"({', '.join(s.name for s in backing.snapshots)}); vSphere cannot grow a disk with snapshots: "
                "delete them (which consolidates the disk) first, or use template-format snapshots"
            )
        if backing.is_linked_clone:
            raise ExtendRefused(
                f"volume {backing.volume_id} is a linked clone of {backing.parent_vmdk_path}; a child disk "
                "cannot grow: recreate it as a full clone (clone_type = full) first"
            )

    def _free_space(self, datastore: Any) -> int | None:
        if datastore is None:
            return None
        props = self.session.get_properties(datastore, ["summary.freeSpace"])
        free = props.get("summary.freeSpace")
        return None if free is None else int(free)

    def extend_backing(self, backing: Backing, new_size_bytes: int, selector: Any = None, *, profile_name: str | None = None) -> Backing:
        """Grow in place with ReconfigVM; without room, relocate to a datastore the selector picks, then grow."""
        self._check_extendable(backing, new_size_bytes)
        if new_size_bytes == backing.size_bytes:
            return backing
        self._refuse_in_use(backing, "extend")
        return self._extend(backing, new_size_bytes, selector, profile_name)

    def _extend(self, backing: Backing, new_size_bytes: int, selector: Any, profile_name: str | None) -> Backing:
        self._check_extendable(backing, new_size_bytes)
        needed = 0 if backing.disk_type == specs.DISK_THIN else new_size_bytes - backing.size_bytes
        free = self._free_space(backing.datastore) if needed > 0 else None
        relocated = False
        if needed > 0 and free is not None and free < needed:
            LOG.info("datastore %s has %s bytes free, %s needed to grow %s; relocating",
                     backing.datastore_name, free, needed, backing.name)
            backing = self._relocate_for_size(backing, new_size_bytes, selector, profile_name)
            relocated = True
        try:
            self._reconfig(backing.moref, specs.disk_grow_spec(backing.disk, new_size_bytes))
        except Exception as error:
            if not _is_no_space(error) or relocated:
                raise
            backing = self._relocate_for_size(backing, new_size_bytes, selector, profile_name)
            self._reconfig(backing.moref, specs.disk_grow_spec(backing.disk, new_size_bytes))
        return self.refresh(backing)

    def _relocate_for_size(self, backing: Backing, size_bytes: int, selector: Any, profile_name: str | None) -> Backing:
        if selector is None:
            raise exc.NoDiskSpace(
                f"datastore {backing.datastore_name} has no room to grow volume {backing.volume_id} "
                f"to {size_bytes // specs.GiB} GiB and no datastore selector was given to move it"
            )
        from .datastore import Requirements

        placement = selector.select(
            Requirements(
                size_bytes=size_bytes,
                profile_name=profile_name,
                excluded_datastores=frozenset({backing.datastore} if backing.datastore is not None else ()),
            )
        )
        return self.relocate_backing(backing, placement, profile_id=backing.profile_id, folder=backing.folder)

    # ------------------------------------------------------------------ retype
    def plan_retype(
        self,
        backing: Backing,
        new_disk_type: str,
        new_adapter_type: str,
        new_profile_id: str | None = None,
        *,
        current_datastore_compliant: bool | None = None,
    ) -> RetypePlan:
        return plan_retype(
            backing, new_disk_type, new_adapter_type, new_profile_id, current_datastore_compliant=current_datastore_compliant
        )

    def retype(
        self,
        backing: Backing,
        new_disk_type: str,
        new_adapter_type: str,
        new_profile_id: str | None = None,
        *,
        new_profile_name: str | None = None,
        selector: Any = None,
    ) -> RetypeResult:
        """Cinder's retype: relocate / same-datastore clone / adapter swap / policy, in that order."""
        specs.validate_disk_type(new_disk_type)
        specs.validate_adapter_type(new_adapter_type)
        self._refuse_in_use(backing, "retype")
        compliant: bool | None = None
        profile_change = (backing.profile_id or None) != (new_profile_id or None)
        if profile_change and new_profile_id and selector is not None:
            from .datastore import Requirements

            compliant = bool(selector.is_usable(backing.datastore, Requirements(size_bytes=0, profile_name=new_profile_name)))
        plan = plan_retype(backing, new_disk_type, new_adapter_type, new_profile_id, current_datastore_compliant=compliant)
        if plan.relocate is None:  # policy change, compliance unknown (no selector): must not guess
            raise exc.VMwareDriverError("retype to a new storage policy needs a datastore selector to check compliance")
        path = "none"
        relocated_to = None
        if plan.relocate:
            if selector is None:
                raise exc.VMwareDriverError("retype needs a datastore selector to relocate the volume")
            from .datastore import Requirements

            excluded = frozenset({backing.datastore}) if plan.exclude_current_datastore else frozenset()
            placement = selector.select(
                Requirements(size_bytes=backing.size_bytes, profile_name=new_profile_name, excluded_datastores=excluded)
            )
            if _moid(placement.datastore) != _moid(backing.datastore):
                backing = self.relocate_backing(
                    backing,
                    placement,
                    new_disk_type if plan.disk_type_change else None,
                    profile_id=new_profile_id,
                    folder=backing.folder,
                )
                path, relocated_to = "relocate", placement.datastore_name
            elif plan.disk_type_change:
                backing, path = self._retype_by_clone(backing, new_disk_type), "clone"
        elif plan.disk_type_change:
            backing, path = self._retype_by_clone(backing, new_disk_type), "clone"
        if plan.adapter_change:
            backing = self._change_adapter(backing, new_adapter_type)
            if backing.volume_id:  # a re-attached device must keep the volume's disk UUID
                backing = self._stamp_disk_uuid(backing, backing.volume_id)
            path = path if path != "none" else "adapter"
        if plan.profile_change:
            self._reconfig(backing.moref, specs.profile_change_spec(backing.disk, new_profile_id))
            backing = self.refresh(backing)
            path = path if path != "none" else "policy"
        return RetypeResult(plan=plan, path=path, backing=backing, relocated_to=relocated_to)

    def _retype_by_clone(self, backing: Backing, new_disk_type: str) -> Backing:
        """Same datastore: rename aside, full clone with the new type, delete the old, restore ids."""
        volume_id = backing.volume_id or ""
        original_name = backing.name
        temp_name = f"{original_name}-retype-{_uuid.uuid4().hex[:8]}"
        self._task(backing.moref.Rename_Task, newName=temp_name)
        location = specs.relocate_spec(
            datastore=backing.datastore,
            disk_move_type=specs.DISK_MOVE_FULL,
            resource_pool=backing.resource_pool,
            disk_key=backing.disk_key,
            disk_type=new_disk_type,
        )
        annotation = specs.encode_annotation(backing.display_name, backing.description)
        spec = specs.clone_spec(
            location=location, extra_config=specs.volume_marks(volume_id, backing.profile_id), annotation=annotation
        )
        try:
            vm = self._task(backing.moref.CloneVM_Task, folder=backing.folder or self.volume_folder(), name=original_name, spec=spec)
        except BaseException:
            try:
                self._task(backing.moref.Rename_Task, newName=original_name)
            except Exception:
                LOG.exception("could not undo the rename of %s (now %s)", original_name, temp_name)
            raise
        self._task(backing.moref.Destroy_Task)
        self._reconfig(vm, specs.extra_config_spec({}, instance_uuid=volume_id))
        new = self._ensure_annotation(self.get_backing(vm), annotation)
        return self._stamp_disk_uuid(new, volume_id)

    def _change_adapter(self, backing: Backing, adapter_type: str) -> Backing:
        """Detach the disk (file kept) and re-attach it on a controller of the new type."""
        disk = backing.disk
        if disk is None:
            raise exc.VirtualDiskNotFound(f"backing {backing.name} has no virtual disk")
        old_controller_key = disk.controllerKey
        old_unit = disk.unitNumber
        devices = [d for d in backing.devices if getattr(d, "key", None) != disk.key]
        self._reconfig(backing.moref, vim.vm.ConfigSpec(deviceChange=[specs.disk_remove_spec(disk)]))
        try:
            self._reconfig(backing.moref, vim.vm.ConfigSpec(deviceChange=self._attach_specs(backing, devices, adapter_type)))
        except BaseException:
            LOG.exception("re-attaching %s on a %s controller failed; restoring the old attachment", backing.vmdk_path, adapter_type)
            restore = specs.disk_add_spec(
                disk.capacityInKB, backing.disk_type or specs.DISK_THIN, old_controller_key,
                unit_number=old_unit, file_name=backing.vmdk_path,
            )
            self._reconfig(backing.moref, vim.vm.ConfigSpec(deviceChange=[restore]))
            raise
        return self.refresh(backing)

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
            profile_id=backing.profile_id, bus_number=specs.free_scsi_bus(devices),
        )
