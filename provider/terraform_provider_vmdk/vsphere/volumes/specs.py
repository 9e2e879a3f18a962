"""Pure builders for the vSphere request objects our volume operations send.

Nothing here talks to vSphere: every function takes plain values (or morefs the
caller already holds) and returns pyVmomi data objects, so unit tests can check
the exact shape real vSphere needs without a server.  The shapes follow Cinder's
VMware VMDK driver (volumeops.py): a controller + disk device pair on create, a
relocate spec with a per-disk locator carrying the target backing type, clone
specs with a disk move type, and device "edit" specs for grow/profile/UUID.
"""

from __future__ import annotations

import copy
import json
import uuid as _uuid
from collections.abc import Mapping
from typing import Any

from pyVmomi import vim

from ..exceptions import InvalidAdapterType, InvalidDiskType, InvalidVolume

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# Disk types as the user names them (Cinder's vmware:vmdk_type extra spec).
DISK_THIN = "thin"
DISK_THICK = "thick"  # lazy zeroed thick ("preallocated")
DISK_EAGER = "eagerZeroedThick"
DISK_TYPES: tuple[str, ...] = (DISK_THIN, DISK_THICK, DISK_EAGER)

ADAPTER_LSI = "lsiLogic"
ADAPTER_BUS = "busLogic"
ADAPTER_LSISAS = "lsiLogicsas"
ADAPTER_PVSCSI = "paraVirtual"
ADAPTER_IDE = "ide"
ADAPTER_TYPES: tuple[str, ...] = (ADAPTER_LSI, ADAPTER_BUS, ADAPTER_LSISAS, ADAPTER_PVSCSI, ADAPTER_IDE)

CONTROLLER_CLASSES: dict[str, type[vim.vm.device.VirtualController]] = {
    ADAPTER_LSI: vim.vm.device.VirtualLsiLogicController,
    ADAPTER_BUS: vim.vm.device.VirtualBusLogicController,
    ADAPTER_LSISAS: vim.vm.device.VirtualLsiLogicSASController,
    ADAPTER_PVSCSI: vim.vm.device.ParaVirtualSCSIController,
    ADAPTER_IDE: vim.vm.device.VirtualIDEController,
}

# vSphere creates two IDE controllers (keys 200 and 201) on every new VM; IDE
# disks go on the first one instead of adding a controller (as Cinder does).
IDE_CONTROLLER_KEY = 200
NEW_CONTROLLER_KEY = -100
NEW_DISK_KEY = -101
MAX_SCSI_BUSES = 4
# VASA providers refuse disks smaller than 4 MiB.
MIN_DISK_KB = 4 * 1024

GUEST_ID = "otherGuest"
NUM_CPUS = 1
MEMORY_MB = 128

DISK_MOVE_FULL = "moveAllDiskBackingsAndDisallowSharing"
DISK_MOVE_LINKED = "createNewChildDiskBacking"
DISK_MOVE_RELOCATE = "moveAllDiskBackingsAndAllowSharing"

# extraConfig keys that mark a VM as one of ours.  Read them from the whole
# config.extraConfig array (vcsim returns nothing for config.extraConfig["k"]).
KEY_VOLUME_ID = "vmdk.volume_id"
KEY_MANAGED_BY = "vmdk.managed_by"
KEY_KIND = "vmdk.kind"
KEY_SNAPSHOT_ID = "vmdk.snapshot_id"
KEY_PROFILE_ID = "vmdk.profile_id"
KEY_ATTACHED_TO = "vmdk.attached_to"  # on a shadow VM: the VM its volume is attached to (vmdk_volume_attachment)
MANAGED_BY = "terraform-provider-vmdk"
KIND_VOLUME = "volume"
KIND_SNAPSHOT = "snapshot"  # a template-format snapshot (a template VM)
CINDER_VOLUME_ID = "cinder.volume.id"  # the mark OpenStack Cinder's VMDK driver puts on its backings
KIND_RETYPE = "volume-retype"  # the converted copy a same-datastore retype makes, until it replaces the volume

# A retype's copy has an instanceUuid derived from the volume id, so a lost answer is reconciled with one
# FindByUuid, and a volume whose old backing is already gone is still found by its id.
_RETYPE_NAMESPACE = _uuid.UUID("5b0f1c55-6a43-4f0e-9d0b-9f1d2c8a7e31")
# Temporary COW snapshots (a linked clone's snapshot point) carry this description prefix.
TEMPORARY_SNAPSHOT = "temporary, for linked clone "

OWN_KEYS: tuple[str, ...] = (KEY_VOLUME_ID, KEY_MANAGED_BY, KEY_KIND, KEY_SNAPSHOT_ID, KEY_PROFILE_ID)


# --------------------------------------------------------------------- validation
def validate_disk_type(disk_type: str) -> str:
    """Reject unknown disk types before anything reaches vSphere."""
    if disk_type not in DISK_TYPES:
        raise InvalidDiskType(f"invalid disk type {disk_type!r}; expected one of {', '.join(DISK_TYPES)}")
    return disk_type


def validate_adapter_type(adapter_type: str) -> str:
    """Reject unknown adapter types before anything reaches vSphere."""
    if adapter_type not in ADAPTER_TYPES:
        raise InvalidAdapterType(
            f"invalid adapter type {adapter_type!r}; expected one of {', '.join(ADAPTER_TYPES)}"
        )
    return adapter_type


def size_kb(size_bytes: int) -> int:
    """Volume sizes are whole GiB; vSphere wants KiB (and at least 4 MiB)."""
    if not isinstance(size_bytes, int) or size_bytes <= 0 or size_bytes % GiB:
        raise InvalidVolume(f"volume size must be a positive whole number of GiB, got {size_bytes!r} bytes")
    return max(MIN_DISK_KB, size_bytes // KiB)


def size_kb_any(size_bytes: int) -> int:
    """Any disk capacity (an image's need not be whole GiB) in KiB, rounded up, at least 4 MiB."""
    return max(MIN_DISK_KB, -(-int(size_bytes) // KiB))


# ------------------------------------------------------------------ naming/marks
def backing_name(volume_id: str) -> str:
    return f"volume-{volume_id}"


def retype_uuid(volume_id: str) -> str:
    """instanceUuid of the copy a same-datastore retype of ``volume_id`` makes (stable: see KIND_RETYPE)."""
    return str(_uuid.uuid5(_RETYPE_NAMESPACE, volume_id.lower()))


def retype_name(volume_id: str) -> str:
    return f"volume-{volume_id}.retype"


def temporary_snapshot_name(new_volume_id: str) -> str:
    return f"clone-{new_volume_id}"


def encode_annotation(name: str | None, description: str | None) -> str:
    """The VM annotation carries the user's display name and description as JSON."""
    return json.dumps({"name": name, "description": description}, sort_keys=True)


def decode_annotation(annotation: str | None) -> tuple[str | None, str | None]:
    """Inverse of encode_annotation; foreign free text becomes the description."""
    if not annotation:
        return None, None
    try:
        data = json.loads(annotation)
    except ValueError:
        return None, annotation
    if not isinstance(data, dict):
        return None, annotation
    return data.get("name"), data.get("description")


def encode_snapshot_description(snapshot_id: str | None, description: str | None) -> str:
    """A COW snapshot's description carries our snapshot id next to the user's text."""
    return json.dumps({"id": snapshot_id, "description": description}, sort_keys=True)


def decode_snapshot_description(text: str | None) -> tuple[str | None, str | None]:
    """(snapshot id, description); foreign snapshots keep their text and have no id."""
    if not text:
        return None, None
    try:
        data = json.loads(text)
    except ValueError:
        return None, text
    if not isinstance(data, dict) or "id" not in data:
        return None, text
    return data.get("id"), data.get("description")


def option_values(extra_config: Mapping[str, str]) -> list[vim.option.OptionValue]:
    return [vim.option.OptionValue(key=k, value=v) for k, v in extra_config.items()]


def volume_marks(volume_id: str, profile_id: str | None = None, kind: str = KIND_VOLUME) -> dict[str, str]:
    """extraConfig identifying a volume backing (profile id kept: PBM queries are costly)."""
    marks = {KEY_VOLUME_ID: volume_id, KEY_MANAGED_BY: MANAGED_BY, KEY_KIND: kind}
    marks[KEY_PROFILE_ID] = profile_id or ""
    return marks


def snapshot_marks(volume_id: str, snapshot_id: str) -> dict[str, str]:
    """extraConfig identifying a template-format snapshot of volume_id."""
    return {
        KEY_VOLUME_ID: volume_id,
        KEY_MANAGED_BY: MANAGED_BY,
        KEY_KIND: KIND_SNAPSHOT,
        KEY_SNAPSHOT_ID: snapshot_id,
    }


def cleared_marks() -> dict[str, str]:
    """vSphere deletes an extraConfig key when it is set to the empty string."""
    return dict.fromkeys(OWN_KEYS, "")


# -------------------------------------------------------------------- devices
def disk_backing_info(disk_type: str, file_name: str | None = None) -> vim.vm.device.VirtualDisk.FlatVer2BackingInfo:
    """Flat VMDK backing; both provisioning flags set explicitly so a conversion is unambiguous."""
    validate_disk_type(disk_type)
    return vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=file_name or "",
        diskMode="persistent",
        thinProvisioned=disk_type == DISK_THIN,
        eagerlyScrub=disk_type == DISK_EAGER,
    )


def disk_type_of(backing: Any) -> str:
    """Derive our disk type from a FlatVer2 backing's provisioning flags."""
    if getattr(backing, "thinProvisioned", False):
        return DISK_THIN
    if getattr(backing, "eagerlyScrub", False):
        return DISK_EAGER
    return DISK_THICK


def adapter_type_of(controller: Any) -> str | None:
    """Map a controller device back to the adapter type name (subclasses first)."""
    # VirtualLsiLogicSASController etc. all derive from VirtualSCSIController;
    # the exact class decides.
    for name, cls in CONTROLLER_CLASSES.items():
        if type(controller) is cls:
            return name
    for name, cls in CONTROLLER_CLASSES.items():
        if isinstance(controller, cls):
            return name
    return None


def profile_specs(profile_id: str | None) -> list[vim.vm.ProfileSpec]:
    """A defined profile, or the empty profile that clears one."""
    if profile_id:
        return [vim.vm.DefinedProfileSpec(profileId=profile_id)]
    return [vim.vm.EmptyProfileSpec()]


def controller_add_spec(
    adapter_type: str, key: int = NEW_CONTROLLER_KEY, bus_number: int = 0
) -> vim.vm.device.VirtualDeviceSpec:
    """Add a controller of the adapter type; SCSI controllers need sharedBus=noSharing."""
    validate_adapter_type(adapter_type)
    if adapter_type == ADAPTER_IDE:
        raise InvalidAdapterType("IDE controllers are created by vSphere with the VM; use key 200")
    controller = CONTROLLER_CLASSES[adapter_type](key=key, busNumber=bus_number)
    controller.sharedBus = vim.vm.device.VirtualSCSIController.Sharing.noSharing
    return vim.vm.device.VirtualDeviceSpec(operation="add", device=controller)


def disk_add_spec(
    size_in_kb: int,
    disk_type: str,
    controller_key: int,
    *,
    unit_number: int = 0,
    key: int = NEW_DISK_KEY,
    profile_id: str | None = None,
    file_name: str | None = None,
    disk_uuid: str | None = None,
) -> vim.vm.device.VirtualDeviceSpec:
    """Add a disk: a new file (fileOperation=create) unless file_name names an existing VMDK. ``disk_uuid``
    asks for the new VMDK's UUID (ddb.uuid) up front; vSphere may ignore it, so callers check."""
    backing = disk_backing_info(disk_type, file_name)
    if disk_uuid is not None:
        backing.uuid = disk_uuid
    disk = vim.vm.device.VirtualDisk(
        key=key,
        controllerKey=controller_key,
        unitNumber=unit_number,
        # an existing file says its own size: 0, as Nova and govmomi send it (never a size that would resize it)
        capacityInKB=0 if file_name is not None and not size_in_kb else max(MIN_DISK_KB, int(size_in_kb)),
        backing=backing,
    )
    spec = vim.vm.device.VirtualDeviceSpec(operation="add", device=disk)
    if file_name is None:
        spec.fileOperation = vim.vm.device.VirtualDeviceSpec.FileOperation.create
    if profile_id:
        spec.profile = profile_specs(profile_id)
    return spec


def disk_and_controller_specs(
    size_in_kb: int,
    disk_type: str,
    adapter_type: str,
    *,
    profile_id: str | None = None,
    file_name: str | None = None,
    bus_number: int = 0,
    disk_uuid: str | None = None,
) -> list[vim.vm.device.VirtualDeviceSpec]:
    """Controller (except IDE) plus a disk on it, with temporary negative keys."""
    validate_adapter_type(adapter_type)
    validate_disk_type(disk_type)
    specs: list[vim.vm.device.VirtualDeviceSpec] = []
    if adapter_type == ADAPTER_IDE:
        controller_key = IDE_CONTROLLER_KEY
    else:
        ctl = controller_add_spec(adapter_type, NEW_CONTROLLER_KEY, bus_number)
        controller_key = ctl.device.key
        specs.append(ctl)
    disk_key = controller_key - 1 if controller_key < 0 else NEW_DISK_KEY
    specs.append(
        disk_add_spec(size_in_kb, disk_type, controller_key, key=disk_key, profile_id=profile_id, file_name=file_name,
                      disk_uuid=disk_uuid)
    )
    return specs


def create_spec(
    *,
    name: str,
    volume_id: str,
    size_in_kb: int,
    disk_type: str,
    adapter_type: str,
    datastore_name: str,
    profile_id: str | None = None,
    annotation: str | None = None,
    hw_version: str | None = None,
    with_disk: bool = True,
    disk_uuid: str | None = None,
) -> vim.vm.ConfigSpec:
    """CreateVM_Task config for a shadow VM: 1 vCPU, 128 MB, otherGuest, one disk (or none, for a backing whose
    disk comes from elsewhere: an image, an adopted VMDK). ``disk_uuid``: the new disk's UUID, see disk_add_spec."""
    spec = vim.vm.ConfigSpec(
        name=name,
        guestId=GUEST_ID,
        numCPUs=NUM_CPUS,
        memoryMB=MEMORY_MB,
        instanceUuid=volume_id,
        files=vim.vm.FileInfo(vmPathName=f"[{datastore_name}]"),
        extraConfig=option_values(volume_marks(volume_id, profile_id)),
    )
    if with_disk:
        spec.deviceChange = disk_and_controller_specs(size_in_kb, disk_type, adapter_type, profile_id=profile_id,
                                                      disk_uuid=disk_uuid)
    if annotation is not None:
        spec.annotation = annotation
    if hw_version:
        spec.version = hw_version
    if profile_id:
        spec.vmProfile = profile_specs(profile_id)
    return spec


def _edited(device: Any) -> Any:
    """A private copy of a device read from vSphere, so edits never leak into cached records."""
    return copy.deepcopy(device)


def disk_grow_spec(disk: vim.vm.device.VirtualDisk, new_size_bytes: int) -> vim.vm.ConfigSpec:
    """ReconfigVM edit growing the disk; the backing (and its eagerlyScrub) is sent as read."""
    device = _edited(disk)
    device.capacityInKB = new_size_bytes // KiB
    device.capacityInBytes = new_size_bytes
    return vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="edit", device=device)])


def disk_uuid_spec(disk: vim.vm.device.VirtualDisk, disk_uuid: str) -> vim.vm.ConfigSpec:
    """ReconfigVM edit setting the VMDK's UUID (ddb.uuid) through its backing."""
    device = _edited(disk)
    device.backing.uuid = disk_uuid
    return vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="edit", device=device)])


def disk_remove_spec(device: Any, *, destroy_file: bool = False) -> vim.vm.device.VirtualDeviceSpec:
    """Remove a device; without fileOperation the VMDK file is kept (detach)."""
    spec = vim.vm.device.VirtualDeviceSpec(operation="remove", device=device)
    if destroy_file:
        spec.fileOperation = vim.vm.device.VirtualDeviceSpec.FileOperation.destroy
    return spec


def profile_change_spec(disk: vim.vm.device.VirtualDisk | None, profile_id: str | None) -> vim.vm.ConfigSpec:
    """Set (or clear) the VM home and disk storage policy, and record it in extraConfig."""
    spec = vim.vm.ConfigSpec(
        vmProfile=profile_specs(profile_id),
        extraConfig=option_values({KEY_PROFILE_ID: profile_id or ""}),
    )
    if disk is not None:
        spec.deviceChange = [
            vim.vm.device.VirtualDeviceSpec(operation="edit", device=_edited(disk), profile=profile_specs(profile_id))
        ]
    return spec


def extra_config_spec(
    extra_config: Mapping[str, str], *, instance_uuid: str | None = None, annotation: str | None = None
) -> vim.vm.ConfigSpec:
    spec = vim.vm.ConfigSpec()
    if extra_config:
        spec.extraConfig = option_values(extra_config)
    if instance_uuid is not None:
        spec.instanceUuid = instance_uuid
    if annotation is not None:
        spec.annotation = annotation
    return spec


def disk_locator(
    datastore: Any, disk_key: int, disk_type: str | None = None, profile_id: str | None = None
) -> vim.vm.RelocateSpec.DiskLocator:
    """Per-disk placement; diskBackingInfo carries the target provisioning type (conversion)."""
    locator = vim.vm.RelocateSpec.DiskLocator(datastore=datastore, diskId=disk_key)
    if disk_type is not None:
        locator.diskBackingInfo = disk_backing_info(disk_type)
    if profile_id:
        locator.profile = profile_specs(profile_id)
    return locator


def relocate_spec(
    *,
    datastore: Any,
    disk_move_type: str,
    resource_pool: Any = None,
    host: Any = None,
    disk_key: int | None = None,
    disk_type: str | None = None,
    profile_id: str | None = None,
    folder: Any = None,
) -> vim.vm.RelocateSpec:
    """Relocate spec; a disk locator is added when a type or policy must follow the disk."""
    spec = vim.vm.RelocateSpec(datastore=datastore, diskMoveType=disk_move_type)
    if resource_pool is not None:
        spec.pool = resource_pool
    if host is not None:
        spec.host = host
    if folder is not None:
        spec.folder = folder
    if disk_key is not None and (disk_type is not None or profile_id):
        spec.disk = [disk_locator(datastore, disk_key, disk_type, profile_id)]
    return spec


def clone_spec(
    *,
    location: vim.vm.RelocateSpec,
    snapshot: Any = None,
    extra_config: Mapping[str, str] | None = None,
    instance_uuid: str | None = None,
    annotation: str | None = None,
    template: bool = False,
) -> vim.vm.CloneSpec:
    """CloneVM_Task spec: never powered on; the new VM's marks ride in the clone's config."""
    config = vim.vm.ConfigSpec()
    if extra_config:
        config.extraConfig = option_values(extra_config)
    if instance_uuid is not None:
        config.instanceUuid = instance_uuid
    if annotation is not None:
        config.annotation = annotation
    spec = vim.vm.CloneSpec(location=location, powerOn=False, template=template, config=config)
    if snapshot is not None:
        spec.snapshot = snapshot
    return spec


# VirtualDiskManager's names for our disk types (FileBackedVirtualDiskSpec.diskType / adapterType).
VDM_DISK_TYPES = {DISK_THIN: "thin", DISK_THICK: "preallocated", DISK_EAGER: "eagerZeroedThick"}
VDM_ADAPTER_TYPES = {ADAPTER_LSI: "lsiLogic", ADAPTER_BUS: "busLogic", ADAPTER_LSISAS: "lsiLogic",
                     ADAPTER_PVSCSI: "lsiLogic", ADAPTER_IDE: "ide"}


def disk_copy_spec(disk_type: str, adapter_type: str) -> vim.VirtualDiskManager.FileBackedVirtualDiskSpec:
    """CopyVirtualDisk's destSpec: the disk type the copy becomes (a hosted image becomes a VMFS disk)."""
    validate_disk_type(disk_type)
    return vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
        diskType=VDM_DISK_TYPES[disk_type], adapterType=VDM_ADAPTER_TYPES.get(adapter_type, "lsiLogic"))


def flat_descriptor(extent_file: str, size_bytes: int, adapter_type: str = ADAPTER_LSI) -> str:
    """The text descriptor of a flat (preallocated) extent, as ESXi writes one: what turns a raw image file
    into a VMDK the datastore understands."""
    sectors = size_bytes // 512
    heads, per_track = 255, 63
    cylinders = max(1, sectors // (heads * per_track))
    adapter = {ADAPTER_IDE: "ide", ADAPTER_BUS: "buslogic"}.get(adapter_type, "lsilogic")
    return (
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\nparentCID=ffffffff\n"
        "createType=\"vmfs\"\n\n# Extent description\n"
        f"RW {sectors} VMFS \"{extent_file}\"\n\n# The Disk Data Base\n#DDB\n\n"
        f"ddb.adapterType = \"{adapter}\"\nddb.geometry.cylinders = \"{cylinders}\"\n"
        f"ddb.geometry.heads = \"{heads}\"\nddb.geometry.sectors = \"{per_track}\"\n"
        "ddb.virtualHWVersion = \"8\"\n"
    )


def free_scsi_bus(devices: list[Any]) -> int:
    """Lowest SCSI bus number not used by an existing controller (vSphere allows 0-3)."""
    used = {d.busNumber for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)}
    for bus in range(MAX_SCSI_BUSES):
        if bus not in used:
            return bus
    raise InvalidAdapterType("the backing VM has no free SCSI bus for a new controller")


def free_unit_number(devices: list[Any], controller_key: int) -> int:
    """First unit number free on a controller (7 is the SCSI controller itself)."""
    used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller_key}
    for unit in range(16):
        if unit == 7:
            continue
        if unit not in used:
            return unit
    raise InvalidAdapterType("no free unit number on the target controller")
