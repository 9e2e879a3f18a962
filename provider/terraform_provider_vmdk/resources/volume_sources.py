"""Where a new volume's data comes from, besides nothing or another volume: an image file, a backup, an
existing VMDK (Cinder's copy_image_to_volume, restore_backup and manage_existing).

The ``image``, ``backup`` and ``adopt`` blocks of ``vmdk_volume``: provenance, read when the volume is created
(another source replaces the volume; see ``volume_provenance``).
Everything a user can get wrong — a missing file, a wrong checksum, an image of another kind, a size_gb
smaller than the image's disk, an unknown VMDK path or VM — is found before anything is made in vSphere and
named on its attribute. Then the data goes in (``vsphere.imports``), the volume's disk type, adapter and
policy are applied, and the disk grows to ``size_gb``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..framework.diagnostics import DiagnosticError, Diagnostics
from ..framework.schema import Attribute, Block, NestedBlock, Nesting
from ..framework.types import String
from ..framework.validators import NotEmpty, OneOf
from .backend import VolumeBackend, driver_errors
from .images import IMAGE_DISK_TYPES, LocalImage, fetch_image, open_local, scan
from .localfiles import os_reason
from .volume_policy import Executor, GiB

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.volumes.backing import Backing

__all__ = ["SOURCE_BLOCKS", "SOURCES", "validate_sources", "create_from_source", "read_manifest", "MANIFEST",
           "BACKUP_DISK"]

MANIFEST = "manifest.json"
BACKUP_DISK = "disk.vmdk"
SOURCES = ("source_volume_id", "source_snapshot_id", "image", "backup", "adopt")

SOURCE_BLOCKS: dict[str, NestedBlock] = {
    "image": NestedBlock(Block({
        "source": Attribute(String, required=True, validators=(NotEmpty(),),
                            description="The image file: a local path or an http(s) URL (downloaded into the "
                            "temporary directory, `TMPDIR`; redirects are followed within a scheme or from http up "
                            "to https, never from https down to http)."),
        "disk_type": Attribute(String, required=True, validators=(OneOf(IMAGE_DISK_TYPES),),
                               description="What the file is (Cinder's ImageDiskType): `streamOptimized` or `sparse` "
                               "(VMDK files of those subformats), `preallocated` (a raw flat extent) or `thin` (a "
                               "flat extent to be made thin)."),
        "sha256": Attribute(String, optional=True, validators=(NotEmpty(),),
                            description="The file's SHA-256, checked before anything is created."),
    }, description="Create the volume from an image file (another `source` replaces the volume; `sha256` and "
        "`disk_type` only matter when it is created)."),
        Nesting.SINGLE, description="Create the volume from an image file (another `source` replaces the volume)."),
    "backup": NestedBlock(Block({
        "path": Attribute(String, required=True, validators=(NotEmpty(),),
                          description="A backup directory that `vmdk_volume_backup` wrote."),
    }, description="Create the volume from a backup (another `path` replaces the volume)."), Nesting.SINGLE,
        description="Create the volume from a backup (another `path` replaces the volume)."),
    "adopt": NestedBlock(Block({
        "vmdk_path": Attribute(String, required=True, validators=(NotEmpty(),),
                               description="The existing VMDK, as `[datastore] dir/disk.vmdk`."),
        "vm": Attribute(String, optional=True, validators=(NotEmpty(),),
                        description="Inventory path of the VM the VMDK is attached to (e.g. `DC0/vm/app-1`): it "
                        "is detached from it first."),
    }, description="Adopt an existing VMDK as this volume (Cinder's manage_existing): it is moved into the "
        "volume's shadow VM. Another `vmdk_path` replaces the volume (destroying the adopted disk, unless "
        "`keep_on_destroy`); `vm`, or a `vmdk_path` naming where the adopted disk lives now, changes nothing."),
        Nesting.SINGLE, description="Adopt an existing VMDK as this volume (another `vmdk_path` replaces it)."),
}


def _given(config: dict[str, Any], name: str) -> bool:
    return config.get(name) is not None


def validate_sources(config: dict[str, Any], diags: Diagnostics) -> None:
    """At most one source; a linked clone only from a volume or a snapshot."""
    given = [name for name in SOURCES if _given(config, name)]
    if len(given) > 1:
        diags.error("Conflicting sources", f"Set only one of {', '.join(SOURCES)}; this configuration sets "
                    f"{' and '.join(given)}.", given[-1])
    if config.get("clone_type") == "linked" and not (set(given) & {"source_volume_id", "source_snapshot_id"}):
        diags.error("Linked clone without a source",
                    'clone_type = "linked" needs source_volume_id or source_snapshot_id.', "clone_type")


# ---------------------------------------------------------------------------------------------- backups
def read_manifest(path: str, attribute: str, on_attribute: bool = True) -> dict[str, Any]:
    """A backup directory's manifest (what vmdk_volume_backup wrote), checked. Errors name ``attribute`` (and
    are attached to it unless ``on_attribute`` is False: an import id is no attribute)."""
    try:
        return _read_manifest(path, attribute)
    except DiagnosticError as error:
        if on_attribute:
            raise
        first = next(iter(error.diagnostics))
        raise DiagnosticError(first.summary, first.detail) from None


def _read_manifest(path: str, attribute: str) -> dict[str, Any]:
    directory = Path(path).expanduser()
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise DiagnosticError("Backup not found", f"{attribute} {path!r} holds no {MANIFEST} (a directory "
                              "vmdk_volume_backup wrote).", attribute) from None
    except NotADirectoryError:
        raise DiagnosticError("Backup not found", f"{attribute} {path!r} is not a directory (a directory "
                              "vmdk_volume_backup wrote).", attribute) from None
    except OSError as error:
        raise DiagnosticError("Unreadable backup", f"{attribute} {path!r}: {MANIFEST} cannot be read "
                              f"({os_reason(error)}).", attribute) from None
    except ValueError:
        raise DiagnosticError("Unreadable backup", f"{attribute} {path!r}: {MANIFEST} is not valid JSON.",
                              attribute) from None
    if not isinstance(manifest, dict) or manifest.get("format") != "vmdk-backup-1":
        raise DiagnosticError("Not a backup", f"{attribute} {path!r}: {MANIFEST} is not a vmdk backup manifest.",
                              attribute)
    return manifest


def backup_image(path: str, attribute: str) -> tuple[LocalImage, dict[str, Any]]:
    """The backup's disk as a checked image (its checksum is in the manifest), open: the bytes checked are
    the bytes uploaded. The caller closes it."""
    manifest = read_manifest(path, attribute)
    try:
        capacity = int(manifest["capacity_bytes"])
    except (KeyError, TypeError, ValueError):
        capacity = 0
    if capacity <= 0 or not isinstance(manifest.get("sha256"), str):
        raise DiagnosticError("Unreadable backup", f"{attribute} {path!r}: {MANIFEST} lacks the disk's "
                              "capacity_bytes or sha256.", attribute)
    disk = Path(path).expanduser() / BACKUP_DISK
    if not disk.is_file():
        raise DiagnosticError("Backup incomplete", f"{attribute} {path!r} has no {BACKUP_DISK}.", attribute)
    file = open_local(disk, str(disk), attribute)
    try:
        size, digest, _ = scan(file)
        if digest != manifest.get("sha256"):
            raise DiagnosticError("Backup damaged", f"{attribute} {path!r}: {BACKUP_DISK} has SHA-256 {digest}, "
                                  f"the manifest says {manifest.get('sha256')}.", attribute)
    except BaseException:
        file.close()
        raise
    return LocalImage(str(disk), size, capacity, digest, file), manifest


# ---------------------------------------------------------------------------------------------- create
def _check_size(size_bytes: int, capacity: int, what: str) -> None:
    if size_bytes < capacity:
        raise DiagnosticError(
            "size_gb is smaller than the data",
            f"The {what} holds a disk of {capacity / GiB:.2f} GiB; size_gb must be at least {-(-capacity // GiB)} "
            "(a volume never truncates its data).", "size_gb")


def prepare(plan: dict[str, Any]) -> tuple[LocalImage, str] | None:
    """Before vSphere is asked: fetch and check the image or backup the plan names (its kind: image disk type)."""
    size_bytes = int(plan["size_gb"]) * GiB
    if plan.get("image"):
        image = plan["image"]
        local = fetch_image(image["source"], image["disk_type"], image.get("sha256"))
        kind, what = image["disk_type"], f"{image['disk_type']} image"
    elif plan.get("backup"):
        local, _ = backup_image(plan["backup"]["path"], "backup.path")
        kind, what = "streamOptimized", "backup"
    else:
        return None
    try:
        _check_size(size_bytes, local.capacity, what)
    except BaseException:
        local.close()  # a download's temporary file goes with it
        raise
    return local, kind


def create_from_source(backend: VolumeBackend, plan: dict[str, Any], volume_id: str, placement: Any,
                       prepared: tuple[LocalImage, str]) -> Backing:
    """The volume from a checked image or backup, then its disk type, adapter, policy and size."""
    local, kind = prepared
    ops = backend.ops
    what = f"upload of {local.label} into volume {volume_id}"
    if kind == "streamOptimized":
        backing = driver_errors("create the volume from the image", lambda: ops.import_stream_optimized(
            volume_id, plan["name"], plan.get("description"), opener=local.open, size=local.size,
            capacity_bytes=local.capacity, disk_type=plan["disk_type"], adapter_type=plan["adapter_type"],
            placement=placement, profile_id=placement.profile_id, what=what))
    else:
        shell = driver_errors("create the volume", lambda: ops.create_diskless_backing(
            volume_id, plan["name"], plan.get("description"), placement, placement.profile_id))
        backend.remember(shell)
        backing = driver_errors("create the volume from the image", lambda: ops.import_hosted(
            shell, image_kind=kind, opener=local.open, size=local.size, capacity_bytes=local.capacity,
            disk_type=plan["disk_type"], adapter_type=plan["adapter_type"], profile_id=placement.profile_id,
            what=what))
    backend.remember(backing)
    return finish(backend, backing, plan)


def finish(backend: VolumeBackend, backing: Backing, plan: dict[str, Any]) -> Backing:
    """Converge a new volume to its configuration: disk type, adapter, policy (a retype), then its size."""
    executor = Executor(backend)
    if (backing.disk_type, backing.adapter_type) != (plan["disk_type"], plan["adapter_type"]):
        backing = driver_errors("set the volume's disk type and adapter", lambda: executor.retype(
            backing, plan["disk_type"], plan["adapter_type"], plan.get("storage_policy"), True))
    size_bytes = int(plan["size_gb"]) * GiB
    if size_bytes > backing.size_bytes:
        backing = driver_errors("grow the volume to size_gb", lambda: backend.ops.grow(backing, size_bytes),
                                "size_gb")
    backend.remember(backing)
    return backing


# ---------------------------------------------------------------------------------------------- adopt
def prepare_adoption(backend: VolumeBackend, plan: dict[str, Any]) -> dict[str, Any]:
    """Check what ``adopt`` names before anything moves: the VMDK, the VM it is attached to, its size and type."""
    from ..vsphere.exceptions import NotFound
    from ..vsphere.volumes.backing import split_datastore_path
    from ..vsphere.volumes.imports import descriptor_facts

    adopt = plan["adopt"]
    vmdk_path, vm_path = adopt["vmdk_path"].strip(), adopt.get("vm")
    datastore, rel = split_datastore_path(vmdk_path)
    if not datastore or not rel or not rel.endswith(".vmdk"):
        raise DiagnosticError("Invalid VMDK path", f"adopt.vmdk_path {vmdk_path!r}: expected "
                              "\"[datastore] dir/disk.vmdk\".", "adopt.vmdk_path")
    ops = backend.ops
    vm = None
    capacity, thin = 0, False
    # Who holds the disk is decided on a read made now (a VM may have been snapshotted since the refresh).
    holders = driver_errors("read the VMs", backend.fresh_index, "adopt.vmdk_path").holders_of([vmdk_path])
    if vm_path:
        vm = driver_errors("find the VM", lambda: ops.find_vm_by_path(vm_path), "adopt.vm")
        if vm is None:
            raise DiagnosticError("VM not found", f"adopt.vm {vm_path!r}: no VM has that inventory path "
                                  "(e.g. \"DC0/vm/folder/name\").", "adopt.vm")
        device = driver_errors("read the VM", lambda: ops.disk_attached(vm, vmdk_path), "adopt.vm")
        if device is None and any(h.moref == vm._moId for h in holders):
            raise DiagnosticError(
                "The VM's snapshots hold that VMDK", f"{vm_path} runs on a snapshot delta of {vmdk_path}: detaching "
                "it would break the VM's snapshots. Delete the VM's snapshots first.", "adopt.vm")
        if device is None:
            raise DiagnosticError("VMDK not attached to that VM", f"{vmdk_path} is not a disk of {vm_path}.",
                                  "adopt.vmdk_path")
        holders = [h for h in holders if h.moref != vm._moId]
        # what vSphere says of the attached disk
        capacity = int(device.capacityInBytes or (device.capacityInKB or 0) * 1024)
        thin = bool(getattr(device.backing, "thinProvisioned", False))
    if not capacity:  # a detached disk: its descriptor says
        try:
            descriptor = ops.read_descriptor(vmdk_path)
        except NotFound:
            descriptor = ""
        except Exception as error:  # noqa: BLE001 - a diagnostic on the attribute
            driver_errors("read the VMDK", functools.partial(_raise, error), "adopt.vmdk_path")
        capacity, thin = descriptor_facts(descriptor)
    if not capacity:
        raise DiagnosticError("VMDK not found", f"adopt.vmdk_path {vmdk_path!r} is not a disk on datastore "
                              f"{datastore}.", "adopt.vmdk_path")
    _check_size(int(plan["size_gb"]) * GiB, capacity, "VMDK")
    if thin != (plan["disk_type"] == "thin"):
        actual = "thin" if thin else "thick (lazy or eager zeroed)"
        raise DiagnosticError(
            "disk_type differs from the VMDK's", f"{vmdk_path} is {actual}; adopt it with that disk_type (change "
            "the type afterwards, in place, if another is wanted): a conversion while adopting could leave the "
            "disk half-moved.", "disk_type")
    if holders:
        names = ", ".join(h.name for h in holders)
        if any(h.ours for h in holders):
            raise DiagnosticError("VMDK in use", f"{vmdk_path} is held by {names}, a volume of this provider (or "
                                  "a linked clone building on the disk): it cannot be adopted.", "adopt.vmdk_path")
        raise DiagnosticError("VMDK in use", f"{vmdk_path} is held by {names} (attached, or under a snapshot "
                              "delta); name that VM in adopt.vm to detach it first, after deleting its snapshots.",
                              "adopt.vm" if vm is None else "adopt.vmdk_path")
    return {"vmdk_path": vmdk_path, "vm": vm, "datastore": datastore, "capacity": capacity}


def _raise(error: BaseException) -> Any:
    raise error


def adopt(backend: VolumeBackend, plan: dict[str, Any], volume_id: str, placement: Any,
          facts: dict[str, Any]) -> Backing:
    ops = backend.ops
    shell = driver_errors("create the volume", lambda: ops.create_diskless_backing(
        volume_id, plan["name"], plan.get("description"), placement, placement.profile_id))
    backend.remember(shell)
    backing = driver_errors("adopt the VMDK", lambda: ops.adopt_disk(
        shell, vmdk_path=facts["vmdk_path"], vm=facts["vm"], capacity_bytes=facts["capacity"],
        disk_type=plan["disk_type"], adapter_type=plan["adapter_type"], profile_id=placement.profile_id),
        "adopt.vmdk_path")
    return finish(backend, backing, plan)
