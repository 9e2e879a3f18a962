"""Attaching a volume's VMDK to a VM and detaching it again, as Nova's VMware driver does.

Attach: the VM gets a device on the volume's existing file — no fileOperation, ``capacityInKB = 0`` (the
file says its size), the volume's provisioning flags, ``persistent`` or ``independent_persistent`` mode —
on a free unit of a controller of the wanted family, or on a new controller in the same ReconfigVM, which
also records ``volume-<id>`` = the disk's UUID in the VM's extraConfig. The shadow VM keeps its own device on
the file (it is never powered on, so it takes no lock) and stays the volume's identity. A lost answer is
settled by looking for a device with the volume's disk UUID: never a second device.

Detach: the device (found by disk UUID, then by the ``volume-<id>`` key, then by path) goes without its file,
and the key is cleared. When the VM's copy of the disk now lives elsewhere (storage vMotion, Storage DRS
moved it), the shadow VM first follows the file (Nova's consolidation): its stale device goes without a
file operation, its home moves to the file's datastore, and it takes the current file — so at every moment
the disk is held by the VM or by the shadow VM.

What to attach where, and what to refuse, is decided in the resources layer (``resources/attachment.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim

from .. import exceptions as exc
from ..connection import tasks as _tasks
from . import specs
from .backing import Backing, backing_chain, extra_config_dict, split_datastore_path
from .lifecycle import Lifecycle

__all__ = ["Attachments", "Instance", "VmDisk", "volume_key", "DISK_MODES"]

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")

DISK_MODES = ("persistent", "independent_persistent")
INSTANCE_PROPERTIES = ["name", "config.instanceUuid", "config.uuid", "config.hardware.device", "config.extraConfig",
                       "runtime.powerState", "runtime.host", "snapshot", "config.template", "datastore"]


def volume_key(volume_id: str) -> str:
    """The VM's extraConfig key under which Nova records an attached volume's disk UUID."""
    return f"volume-{volume_id}"


@dataclass(frozen=True)
class VmDisk:
    """A disk device of a VM, as the VM has it."""

    key: int
    controller_key: int
    unit_number: int
    bus_number: int
    adapter_type: str | None
    file_name: str
    disk_uuid: str | None
    disk_mode: str | None
    chain: tuple[str, ...]
    device: Any = field(compare=False, repr=False)

    @property
    def device_address(self) -> str:
        family = "ide" if self.adapter_type == specs.ADAPTER_IDE else "scsi"
        return f"{family}:{self.bus_number}:{self.unit_number}"

    @property
    def datastore_name(self) -> str | None:
        return split_datastore_path(self.file_name)[0]


@dataclass(frozen=True)
class Instance:
    """A VM a volume is (to be) attached to."""

    moref: Any = field(compare=False)
    moref_value: str
    name: str
    instance_uuid: str | None
    bios_uuid: str | None
    powered_on: bool
    host: Any = field(compare=False, repr=False)
    devices: tuple[Any, ...] = field(default=(), compare=False, repr=False)
    extra_config: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    has_snapshots: bool = False
    is_template: bool = False

    @property
    def ident(self) -> str:
        """The VM's id in the attachment's id: its instance UUID (vCenter) or BIOS UUID."""
        return self.instance_uuid or self.bios_uuid or self.moref_value

    def disks(self) -> list[VmDisk]:
        controllers = {d.key: d for d in self.devices if isinstance(d, vim.vm.device.VirtualController)}
        found = []
        for device in self.devices:
            if not isinstance(device, vim.vm.device.VirtualDisk):
                continue
            controller_key = int(device.controllerKey or 0)
            controller = controllers.get(controller_key)
            chain = tuple(name for b in backing_chain(device.backing) if (name := getattr(b, "fileName", None)))
            found.append(VmDisk(
                key=device.key, controller_key=controller_key, unit_number=device.unitNumber or 0,
                bus_number=getattr(controller, "busNumber", 0) or 0,
                adapter_type=specs.adapter_type_of(controller) if controller is not None else None,
                file_name=getattr(device.backing, "fileName", "") or "",
                disk_uuid=getattr(device.backing, "uuid", None), disk_mode=getattr(device.backing, "diskMode", None),
                chain=chain, device=device))
        return found


class Attachments(Lifecycle):
    # ------------------------------------------------------------------ the VM
    def find_instance(self, *, uuid: str | None = None, path: str | None = None) -> Instance | None:
        """A VM by its instance UUID or BIOS UUID (``vsphere_virtual_machine``'s id), or by inventory path."""
        vm = None
        if uuid:
            search = self.session.content.searchIndex
            for instance_uuid in (True, False):
                vm = self.session.call(search.FindByUuid, datacenter=self.inventory.datacenter, uuid=uuid,
                                       vmSearch=True, instanceUuid=instance_uuid)
                if vm is not None:
                    break
        elif path:
            vm = self.session.call(self.session.content.searchIndex.FindByInventoryPath, inventoryPath=path)
            if vm is not None and not isinstance(vm, vim.VirtualMachine):
                return None
        return None if vm is None else self.read_instance(vm)

    def read_instance(self, vm: Any) -> Instance | None:
        """The VM as vSphere holds it now; None when it is gone."""
        try:
            props = self.session.get_properties(vm, INSTANCE_PROPERTIES)
        except Exception as error:
            from .base import is_gone

            if is_gone(error):
                return None
            raise
        tree = props.get("snapshot")
        return Instance(
            moref=vm, moref_value=getattr(vm, "_moId", str(vm)), name=props.get("name") or "",
            instance_uuid=props.get("config.instanceUuid"), bios_uuid=props.get("config.uuid"),
            powered_on=props.get("runtime.powerState") == vim.VirtualMachine.PowerState.poweredOn,
            host=props.get("runtime.host"), devices=tuple(props.get("config.hardware.device") or ()),
            extra_config=extra_config_dict(props.get("config.extraConfig")),
            has_snapshots=bool(getattr(tree, "rootSnapshotList", None)), is_template=bool(props.get("config.template")))

    def attached_disk(self, instance: Instance, volume_id: str, disk_uuid: str | None,
                      paths: tuple[str, ...] = ()) -> VmDisk | None:
        """The VM's device for the volume: by disk UUID, then by the ``volume-<id>`` key, then by path."""
        disks = instance.disks()
        wanted = {u.lower() for u in (disk_uuid, instance.extra_config.get(volume_key(volume_id))) if u}
        for disk in disks:
            if disk.disk_uuid and disk.disk_uuid.lower() in wanted:
                return disk
        for disk in disks:
            if paths and set(disk.chain) & set(paths):
                return disk
        return None

    # ------------------------------------------------------------------ attach
    def _slot(self, instance: Instance, adapter_type: str, unit_number: int | None) -> tuple[list[Any], int, int]:
        """(controller specs to add, controller key, unit) for a new disk of ``adapter_type``."""
        devices = list(instance.devices)
        if adapter_type == specs.ADAPTER_IDE:
            for controller in devices:
                if isinstance(controller, vim.vm.device.VirtualIDEController):
                    used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller.key}
                    free = [u for u in (0, 1) if u not in used and (unit_number is None or u == unit_number)]
                    if free:
                        return [], controller.key, free[0]
            raise exc.InvalidAdapterType(f"VM {instance.name} has no free IDE slot"
                                         + (f" with unit number {unit_number}" if unit_number is not None else ""))
        cls = specs.CONTROLLER_CLASSES[adapter_type]
        for controller in sorted((d for d in devices if type(d) is cls), key=lambda c: c.busNumber):
            used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller.key}
            free = [u for u in range(16) if u != 7 and u not in used and (unit_number is None or u == unit_number)]
            if free:
                return [], controller.key, free[0]
        add = specs.controller_add_spec(adapter_type, specs.NEW_CONTROLLER_KEY, specs.free_scsi_bus(devices))
        return [add], add.device.key, unit_number if unit_number is not None else 0

    def attach_volume(self, instance: Instance, backing: Backing, *, adapter_type: str, unit_number: int | None,
                      disk_mode: str) -> VmDisk:
        """One ReconfigVM: the volume's existing file on a free unit, and ``volume-<id>`` = its disk UUID."""
        volume_id = backing.volume_id or ""
        if not backing.vmdk_path or backing.disk is None:
            raise exc.VirtualDiskNotFound(f"volume {volume_id} has no disk to attach")
        controllers, controller_key, unit = self._slot(instance, adapter_type, unit_number)
        disk_backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=backing.vmdk_path, diskMode=disk_mode,
            thinProvisioned=backing.disk_type == specs.DISK_THIN,
            eagerlyScrub=backing.disk_type == specs.DISK_EAGER)
        disk = vim.vm.device.VirtualDisk(
            key=specs.NEW_DISK_KEY, controllerKey=controller_key, unitNumber=unit, capacityInKB=0,
            backing=disk_backing,
            connectable=vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, connected=True,
                                                                allowGuestControl=False))
        spec = vim.vm.ConfigSpec(
            deviceChange=[*controllers, vim.vm.device.VirtualDeviceSpec(operation="add", device=disk)],
            extraConfig=specs.option_values({volume_key(volume_id): backing.disk_uuid or volume_id}))
        try:
            self._task(instance.moref.ReconfigVM_Task, spec=spec)
        except exc.OutcomeUnknown:
            _tasks.settle(self.session, instance.moref, ("VirtualMachine.reconfigure",))
            found = self._attached_now(instance, backing)
            if found is not None:
                return found
            self._task(instance.moref.ReconfigVM_Task, spec=spec)  # provably not attached: sent again
        found = self._attached_now(instance, backing)
        if found is None:
            raise exc.VMwareDriverError(f"vSphere did not attach volume {volume_id} to {instance.name}")
        return found

    def _attached_now(self, instance: Instance, backing: Backing) -> VmDisk | None:
        fresh = self.read_instance(instance.moref)
        if fresh is None:
            raise exc.NotFound(f"VM {instance.name} is gone")
        return self.attached_disk(fresh, backing.volume_id or "", backing.disk_uuid, (backing.vmdk_path or "",))

    def mark_attached(self, backing: Backing, vm_ident: str | None) -> Backing:
        """Mark on the shadow VM which VM holds its volume (None: clear it), so a read of the volume knows to
        check its file when that VM is gone (destroying a VM destroys the disks it holds)."""
        if (backing.attached_to or None) == (vm_ident or None):
            return backing
        self._reconfig(backing.moref, specs.extra_config_spec({specs.KEY_ATTACHED_TO: vm_ident or ""}))
        return self.refresh(backing)

    # ------------------------------------------------------------------ detach
    def detach_volume(self, instance: Instance, disk: VmDisk, volume_id: str) -> None:
        """Remove the device without its file, and clear ``volume-<id>`` (absolute: safe to send again)."""
        change = [vim.vm.device.VirtualDeviceSpec(operation="remove", device=disk.device)]
        spec = vim.vm.ConfigSpec(deviceChange=change, extraConfig=specs.option_values({volume_key(volume_id): ""}))
        def still_there() -> bool:
            fresh = self.read_instance(instance.moref)
            return fresh is not None and any(d.key == disk.key for d in fresh.disks())

        try:
            self._task(instance.moref.ReconfigVM_Task, spec=spec)
        except exc.OutcomeUnknown:
            _tasks.settle(self.session, instance.moref, ("VirtualMachine.reconfigure",))
            if still_there():  # provably not detached: sent again
                self._task(instance.moref.ReconfigVM_Task, spec=spec)
        except exc.VMwareDriverError:
            if still_there():
                raise  # the detach did not happen

    def clear_volume_key(self, instance: Instance, volume_id: str) -> None:
        if volume_key(volume_id) in instance.extra_config:
            self._reconfig(instance.moref, vim.vm.ConfigSpec(
                extraConfig=specs.option_values({volume_key(volume_id): ""})))

    # ------------------------------------------------------------------ consolidation (Nova)
    def follow_file(self, backing: Backing, current: str, placement: Any) -> Backing:
        """The VM's copy of the disk moved to ``current`` (storage vMotion, Storage DRS): the shadow VM follows
        it — its stale device goes without a file operation, its home moves to the file's datastore
        (``placement``), and it takes the current file. The old file is removed only when provably stale:
        nobody holds it and it is the same disk (same UUID) as the current one."""
        volume_id = backing.volume_id or ""
        stale = backing.vmdk_path
        if backing.disk is not None and stale != current:
            self._reconfig(backing.moref, vim.vm.ConfigSpec(deviceChange=[specs.disk_remove_spec(backing.disk)]))
            backing = self.refresh(backing)
        if placement is not None and placement.datastore_name != backing.datastore_name:
            spec = specs.relocate_spec(datastore=placement.datastore, disk_move_type=specs.DISK_MOVE_RELOCATE,
                                       resource_pool=placement.resource_pool, host=placement.host)
            self._task(backing.moref.RelocateVM_Task, spec=spec, idempotent=True)
            backing = self.refresh(backing)
        if backing.vmdk_path != current:
            devices = list(backing.devices)
            change = self._attach_change(devices, current, backing)
            self._reconfig(backing.moref, vim.vm.ConfigSpec(deviceChange=change))
            backing = self.refresh(backing)
        if stale and stale != current:
            self._remove_if_stale(stale, current, volume_id)
        return backing

    def _attach_change(self, devices: list[Any], path: str, backing: Backing) -> list[Any]:
        adapter = backing.adapter_type or specs.ADAPTER_LSI
        disk_type = backing.disk_type or specs.DISK_THIN
        for controller in devices:
            if isinstance(controller, specs.CONTROLLER_CLASSES[adapter]) and adapter != specs.ADAPTER_IDE:
                return [specs.disk_add_spec(0, disk_type, controller.key,
                                            unit_number=specs.free_unit_number(devices, controller.key),
                                            file_name=path)]
        return specs.disk_and_controller_specs(0, disk_type, adapter, file_name=path,
                                               bus_number=specs.free_scsi_bus(devices))

    def _remove_if_stale(self, stale: str, current: str, volume_id: str) -> None:
        vdm = self.session.content.virtualDiskManager

        def uuid_of(path: str) -> str | None:
            try:
                return str(self.session.call(vdm.QueryVirtualDiskUuid, name=path,
                                             datacenter=self.inventory.datacenter)).replace(" ", "").lower()
            except Exception:  # noqa: BLE001 - gone, or not answered: not provably stale
                return None

        old, new = uuid_of(stale), uuid_of(current)
        if old is None or old != new or self.load_index().holders_of([stale]):
            return
        LOG.info("volume %s: removing the stale copy %s (the disk lives at %s now)", volume_id, stale, current)
        try:
            self._task(vdm.DeleteVirtualDisk_Task, name=stale, datacenter=self.inventory.datacenter,
                       idempotent=True)
        except exc.NotFound:
            pass
