"""Records describing volume backings (shadow VMs) and their snapshots.

Parsing is pure (from the property dict one PropertyCollector call returns), so the
batch listing and the single lookups share one code path and unit tests can feed it
hand-built pyVmomi objects.
"""

from __future__ import annotations

import datetime as _dt
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim

from . import specs

# Every property a Backing is built from; one retrieve reads them for all VMs.
BACKING_PROPERTIES: tuple[str, ...] = (
    "name",
    "config.instanceUuid",
    "config.extraConfig",
    "config.annotation",
    "config.hardware.device",
    "config.template",
    "datastore",
    "snapshot",
    "resourcePool",
    "parent",
    "config.createDate",
)

FORMAT_COW = "COW"
FORMAT_TEMPLATE = "template"
SNAPSHOT_FORMATS = (FORMAT_COW, FORMAT_TEMPLATE)


@dataclass(frozen=True)
class SnapshotInfo:
    """A volume snapshot: a vSphere VM snapshot (COW) or a template VM (template format).

    ``moref`` is the vim.vm.Snapshot for COW and the template vim.VirtualMachine otherwise;
    ``backing`` is the volume's VM for COW (the clone source) and None for templates.
    """

    name: str
    format: str
    moref: Any
    volume_id: str | None
    description: str | None = None
    create_time: _dt.datetime | None = None
    snapshot_id: str | None = None
    backing: Any = field(default=None, compare=False, repr=False)
    template: Backing | None = field(default=None, compare=False, repr=False)
    size_bytes: int | None = None

    @property
    def temporary(self) -> bool:
        """A linked clone's snapshot point that outlived its clone (removed at the next write)."""
        return self.format == FORMAT_COW and (self.description or "").startswith(specs.TEMPORARY_SNAPSHOT)


@dataclass(frozen=True)
class Backing:
    """What we know about one volume's shadow VM and its single VMDK."""

    moref: Any = field(compare=False)
    moref_value: str
    name: str
    volume_id: str | None
    display_name: str | None
    description: str | None
    size_bytes: int
    disk_type: str | None
    adapter_type: str | None
    datastore_name: str | None
    datastore: Any = field(compare=False, repr=False)
    vmdk_path: str | None
    disk_uuid: str | None
    snapshots: tuple[SnapshotInfo, ...] = ()
    is_template: bool = False
    parent_vmdk_path: str | None = None  # the first file of the chain that is not the volume's own (linked clone)
    profile_id: str | None = None
    instance_uuid: str | None = None
    kind: str = specs.KIND_VOLUME
    snapshot_id: str | None = None  # for template-format snapshot VMs
    folder: Any = field(default=None, compare=False, repr=False)
    resource_pool: Any = field(default=None, compare=False, repr=False)
    vm_datastores: tuple[Any, ...] = field(default=(), compare=False, repr=False)
    disk: Any = field(default=None, compare=False, repr=False)  # vim.vm.device.VirtualDisk
    devices: tuple[Any, ...] = field(default=(), compare=False, repr=False)
    extra_config: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    create_date: _dt.datetime | None = field(default=None, compare=False)
    foreign: str | None = None  # "cinder": a backing OpenStack Cinder made, not (yet) marked as ours
    chain: tuple[str, ...] = ()  # the disk's files, top first: deltas of its COW snapshots, its base, parents
    own_depth: int = 1  # how many files of the chain are the volume's own (see ``own_chain``)

    @property
    def attached_to(self) -> str | None:
        """The VM an attachment of ours put the volume on (marked on the shadow VM until the detach)."""
        return self.extra_config.get(specs.KEY_ATTACHED_TO) or None

    @property
    def has_snapshots(self) -> bool:
        return bool(self.snapshots)

    @property
    def user_snapshots(self) -> tuple[SnapshotInfo, ...]:
        """COW snapshots a user made (not a linked clone's leftover snapshot point)."""
        return tuple(s for s in self.snapshots if not s.temporary)

    @property
    def temporary_snapshots(self) -> tuple[SnapshotInfo, ...]:
        return tuple(s for s in self.snapshots if s.temporary)

    @property
    def is_retype_copy(self) -> bool:
        return self.kind == specs.KIND_RETYPE

    @property
    def complete(self) -> bool:
        """Has its disk and owns its identity: what a finished create leaves."""
        return (self.disk is not None and self.volume_id is not None
                and (self.instance_uuid or "").lower() == self.volume_id.lower())

    @property
    def identity(self) -> str | None:
        """The instanceUuid this VM must own to be the object its marks name: the volume id (a volume, or a
        backing OpenStack Cinder made), the id derived from it (our retype's or restore's copy), the snapshot
        id (a template snapshot)."""
        if self.kind == specs.KIND_SNAPSHOT:
            return self.snapshot_id
        if not self.volume_id:
            return None
        return specs.retype_uuid(self.volume_id) if self.is_retype_copy else self.volume_id

    @property
    def proven(self) -> bool:
        """This VM is the object its marks name, not a copy of it. vSphere's Clone (and clone to template,
        backup products restoring "as a new VM") copies extraConfig and annotation, so marks alone prove
        nothing; the instanceUuid, fixed by us before the create and never copied, does."""
        identity = self.identity
        return bool(identity) and (self.instance_uuid or "").lower() == (identity or "").lower()

    @property
    def own_files(self) -> tuple[str, ...]:
        """The files of the chain that are this volume's: its base disk and the deltas above it (a linked
        clone's parent files belong to its source)."""
        return self.chain[:self.own_depth]

    @property
    def base_vmdk_path(self) -> str | None:
        """The volume's own base disk (its VMDK before any COW snapshot put a delta on top)."""
        own = self.own_files
        return own[-1] if own else self.vmdk_path

    @property
    def is_linked_clone(self) -> bool:
        """The disk builds on files that are not the volume's own (vSphere cannot grow such a disk)."""
        return self.parent_vmdk_path is not None

    @property
    def disk_key(self) -> int | None:
        return None if self.disk is None else self.disk.key


# ---------------------------------------------------------------------------- parsing
def extra_config_dict(options: Iterable[Any] | None) -> dict[str, str]:
    return {o.key: o.value for o in (options or []) if getattr(o, "key", None) is not None}


def is_ours(extra_config: Mapping[str, str]) -> bool:
    return extra_config.get(specs.KEY_MANAGED_BY) == specs.MANAGED_BY and bool(extra_config.get(specs.KEY_VOLUME_ID))


def cinder_volume_id(name: str, extra_config: Mapping[str, str]) -> str | None:
    """The volume id of a shadow VM OpenStack Cinder made (named ``volume-<id>``, marked ``cinder.volume.id``);
    None for any other VM."""
    marked = (extra_config.get(specs.CINDER_VOLUME_ID) or "").strip()
    return marked if marked and name == specs.backing_name(marked) else None


def split_datastore_path(path: str | None) -> tuple[str | None, str | None]:
    """'[ds1] volume-x/volume-x.vmdk' -> ('ds1', 'volume-x/volume-x.vmdk')."""
    if not path or not path.startswith("["):
        return None, path
    ds, _, rest = path[1:].partition("]")
    return ds.strip(), rest.strip()


def find_disk(devices: Iterable[Any]) -> Any | None:
    for d in devices or ():
        if isinstance(d, vim.vm.device.VirtualDisk):
            return d
    return None


def backing_chain(disk_backing: Any) -> list[Any]:
    """A disk's backings, top first: the file the VM writes to, then each ``parent`` down to the base."""
    out: list[Any] = []
    seen: set[int] = set()
    node = disk_backing
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        out.append(node)
        node = getattr(node, "parent", None)
    return out


def disk_files(devices: Iterable[Any]) -> list[tuple[str, bool]]:
    """Every file of every disk chain of a VM (what deleting, moving or growing those files would break), each
    with whether the disk builds on it as a parent (below the disk's own files: see ``own_chain``)."""
    files: list[tuple[str, bool]] = []
    for device in devices or ():
        if isinstance(device, vim.vm.device.VirtualDisk):
            chain = backing_chain(device.backing)
            depth = own_chain(chain)
            files.extend((name, i >= depth) for i, b in enumerate(chain) if (name := getattr(b, "fileName", None)))
    return files


def own_chain(chain: list[Any]) -> int:
    """How many backings, from the top, are the disk's own: those in the top file's folder. A snapshot puts
    its delta next to the parent (vSphere's default), so a volume's deltas sit beside its base disk, while a
    linked clone's child disk is in the clone's own folder and its parent in the source's."""
    folders = [posixpath.dirname(getattr(b, "fileName", None) or "") for b in chain]
    count = 0
    for folder in folders:
        if folder != folders[0]:
            break
        count += 1
    return max(count, 1)


def controller_of(devices: Iterable[Any], disk: Any) -> Any | None:
    if disk is None:
        return None
    for d in devices or ():
        if getattr(d, "key", None) == disk.controllerKey and isinstance(d, vim.vm.device.VirtualController):
            return d
    return None


def flatten_snapshots(snapshot_info: Any, volume_id: str | None, vm: Any = None) -> tuple[SnapshotInfo, ...]:
    """Depth-first list of a VM's snapshot tree."""
    out: list[SnapshotInfo] = []

    def walk(nodes: Iterable[Any] | None) -> None:
        for node in nodes or ():
            snapshot_id, description = specs.decode_snapshot_description(node.description)
            out.append(
                SnapshotInfo(
                    name=node.name,
                    format=FORMAT_COW,
                    moref=node.snapshot,
                    volume_id=volume_id,
                    description=description,
                    snapshot_id=snapshot_id,
                    create_time=node.createTime,
                    backing=vm,
                )
            )
            walk(getattr(node, "childSnapshotList", None))

    if snapshot_info is not None:
        walk(getattr(snapshot_info, "rootSnapshotList", None))
    return tuple(out)


def backing_from_props(obj: Any, props: Mapping[str, Any]) -> Backing:
    """Build a Backing from one VM's properties (BACKING_PROPERTIES)."""
    ec = extra_config_dict(props.get("config.extraConfig"))
    devices = tuple(props.get("config.hardware.device") or ())
    disk = find_disk(devices)
    controller = controller_of(devices, disk)
    disk_backing = getattr(disk, "backing", None)
    vmdk_path = getattr(disk_backing, "fileName", None)
    ds_name, _ = split_datastore_path(vmdk_path)
    chain = backing_chain(disk_backing) if disk_backing is not None else []
    depth = own_chain(chain) if chain else 1
    base = chain[depth - 1] if chain else None  # the volume's own base disk: its type is the volume's
    size = 0
    if disk is not None:
        size = disk.capacityInBytes or (disk.capacityInKB or 0) * specs.KiB
    display, desc = specs.decode_annotation(props.get("config.annotation"))
    volume_id = ec.get(specs.KEY_VOLUME_ID) or None
    foreign = None
    if volume_id is None and not is_ours(ec):
        volume_id = cinder_volume_id(props.get("name") or "", ec)
        foreign = "cinder" if volume_id else None
    vm_ds = tuple(props.get("datastore") or ())
    return Backing(
        moref=obj,
        moref_value=getattr(obj, "_moId", str(obj)),
        name=props.get("name") or "",
        volume_id=volume_id,
        display_name=display,
        description=desc,
        size_bytes=int(size),
        disk_type=specs.disk_type_of(base) if base is not None else None,
        adapter_type=specs.adapter_type_of(controller) if controller is not None else None,
        datastore_name=ds_name,
        datastore=getattr(disk_backing, "datastore", None) or (vm_ds[0] if vm_ds else None),
        vmdk_path=vmdk_path,
        disk_uuid=getattr(disk_backing, "uuid", None),
        snapshots=flatten_snapshots(props.get("snapshot"), volume_id, obj),
        is_template=bool(props.get("config.template")),
        parent_vmdk_path=getattr(chain[depth], "fileName", None) if len(chain) > depth else None,
        profile_id=ec.get(specs.KEY_PROFILE_ID) or None,
        instance_uuid=props.get("config.instanceUuid"),
        kind=ec.get(specs.KEY_KIND) or specs.KIND_VOLUME,
        snapshot_id=ec.get(specs.KEY_SNAPSHOT_ID) or None,
        folder=props.get("parent"),
        resource_pool=props.get("resourcePool"),
        vm_datastores=vm_ds,
        disk=disk,
        devices=devices,
        extra_config=ec,
        create_date=props.get("config.createDate"),
        foreign=foreign,
        chain=tuple(name for b in chain if (name := getattr(b, "fileName", None))),
        own_depth=depth,
    )


def template_snapshot(template: Backing) -> SnapshotInfo:
    """A template-format snapshot as a SnapshotInfo (its name and description live in the annotation)."""
    return SnapshotInfo(
        name=template.display_name or template.name,
        format=FORMAT_TEMPLATE,
        moref=template.moref,
        volume_id=template.volume_id,
        description=template.description,
        snapshot_id=template.snapshot_id,
        template=template,
        size_bytes=template.size_bytes,
    )
