"""Finding backings: one volume by its id, or every VM of the datacenter in one read (the index).

A volume is found by its identity, never by its name: the shadow VM whose instanceUuid is the volume id
and whose marks say so. Two things make that more than one FindByUuid:

* a same-datastore retype copies the volume into a new VM (kind ``volume-retype``, instanceUuid derived
  from the volume id) before the old one goes; if an apply stops between the two, the copy *is* the volume;
* an older version of this provider could leave two complete backings for one id (a create sent twice).

``choose`` decides, from the records alone, which backing is the volume and which ones are leftovers to
remove; the index (one PropertyCollector read of every VM) also tells which VMs have a given VMDK
attached, so in-use checks cost nothing per volume.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim

from . import specs
from .backing import BACKING_PROPERTIES, Backing, SnapshotInfo, backing_from_props, is_ours, template_snapshot
from .ops_base import OpsBase, is_gone, moid

__all__ = ["BackingIndex", "Choice", "choose", "build_index", "Lookup"]

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


@dataclass(frozen=True)
class Choice:
    """The backing that is the volume, and the other VMs carrying its id (to be removed)."""

    primary: Backing | None
    leftovers: tuple[Backing, ...] = ()

    @property
    def needs_repair(self) -> bool:
        primary = self.primary
        return bool(self.leftovers) or (primary is not None and (primary.is_retype_copy or bool(primary.foreign)
                                                                   or bool(primary.temporary_snapshots)))

    def repairs(self) -> list[str]:
        """What the next write does to bring the volume back to one clean backing (for plan messages)."""
        out = []
        if self.primary is not None and self.primary.foreign:
            out.append(f"mark the backing {self.primary.name} that OpenStack Cinder made as this provider's "
                       "(imported volume)")
        if self.primary is not None and self.primary.is_retype_copy:
            out.append(f"finish an interrupted retype (the converted copy {self.primary.name} becomes the volume)")
        for extra in self.leftovers:
            why = "an interrupted retype's copy" if extra.is_retype_copy else "a duplicate backing"
            out.append(f"remove {why}: VM {extra.name} ({extra.moref_value})")
        if self.primary is not None and self.primary.temporary_snapshots:
            names = ", ".join(s.name for s in self.primary.temporary_snapshots)
            out.append(f"remove a linked clone's leftover temporary snapshot(s): {names}")
        return out


def _rank(record: Backing) -> tuple[int, int, int, _dt.datetime, str]:
    created = record.create_date or _EPOCH
    if created.tzinfo is None:
        created = created.replace(tzinfo=_dt.UTC)
    return (0 if record.complete else 1, 0 if record.disk is not None else 1,
            0 if (record.disk_uuid or "").lower() == (record.volume_id or "").lower() else 1,
            created, record.moref_value)


def choose(records: Sequence[Backing]) -> Choice:
    """Pick the volume among the VMs that carry one volume id.

    A finished backing beats a retype's copy (the copy only wins once the original is gone); among
    equals, the one owning the instanceUuid with its disk and disk UUID in place, then the oldest."""
    volumes = sorted((r for r in records if not r.is_retype_copy), key=_rank)
    copies = sorted((r for r in records if r.is_retype_copy), key=_rank)
    ordered = volumes + copies
    if not ordered:
        return Choice(None)
    return Choice(ordered[0], tuple(ordered[1:]))


@dataclass
class BackingIndex:
    """Every VM of the datacenter as one read saw it: our backings by volume id, our template snapshots by
    snapshot id, and which VMs have each VMDK attached."""

    volumes: dict[str, list[Backing]] = field(default_factory=dict)
    templates: dict[str, Backing] = field(default_factory=dict)
    users: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # vmdk path -> [(moref, vm name)]
    foreign: dict[str, list[Backing]] = field(default_factory=dict)  # Cinder's backings by volume id (import)
    _children: dict[str, list[str]] | None = field(default=None, repr=False)  # parent vmdk path -> VM names

    def choice(self, volume_id: str) -> Choice:
        return choose(self.volumes.get(volume_id, ()))

    def primary(self, volume_id: str) -> Backing | None:
        return self.choice(volume_id).primary

    def users_of(self, backing: Backing) -> list[str]:
        """Names of the VMs — not shadow VMs of ours — that have this backing's VMDK attached (Cinder's "in
        use": attached to an instance; one of our backings is never an instance)."""
        if not backing.vmdk_path:
            return []
        return sorted(name for ref, name in self.users.get(backing.vmdk_path, ()) if ref != backing.moref_value)

    def children_of(self, backing: Backing) -> list[str]:
        """Names of our VMs (linked clones) whose disk is a child of this backing's VMDK: vSphere cannot
        grow, move, copy away or delete a disk that other disks build on."""
        if self._children is None:
            children: dict[str, list[str]] = {}
            records = [r for rs in self.volumes.values() for r in rs] + list(self.templates.values())
            for record in records:
                if record.parent_vmdk_path:
                    children.setdefault(record.parent_vmdk_path, []).append(record.name)
            self._children = children
        return sorted(self._children.get(backing.vmdk_path or "", ()))

    def put(self, backing: Backing) -> None:
        """Record a backing this process just wrote (so the index stays true without a new read)."""
        self.drop(backing.moref_value)
        if backing.kind == specs.KIND_SNAPSHOT and backing.snapshot_id:
            self.templates[backing.snapshot_id] = backing
        elif backing.volume_id:
            self.volumes.setdefault(backing.volume_id, []).append(backing)

    def drop(self, moref_value: str) -> None:
        """Forget a VM this process just destroyed (or is about to re-record)."""
        self._children = None
        for table in (self.volumes, self.foreign):
            for key in list(table):
                kept = [b for b in table[key] if b.moref_value != moref_value]
                if kept:
                    table[key] = kept
                else:
                    del table[key]
        for key in [k for k, b in self.templates.items() if b.moref_value == moref_value]:
            del self.templates[key]
        for path in list(self.users):
            kept_users = [u for u in self.users[path] if u[0] != moref_value]
            if kept_users:
                self.users[path] = kept_users
            else:
                del self.users[path]

    def _add_users(self, ref: str, name: str, devices: Iterable[Any]) -> None:
        for device in devices or ():
            if isinstance(device, vim.vm.device.VirtualDisk):
                path = getattr(device.backing, "fileName", None)
                if path:
                    self.users.setdefault(path, []).append((ref, name))


def build_index(items: Iterable[tuple[Any, dict[str, Any]]]) -> BackingIndex:
    """An index from (moref, properties) of every VM (BACKING_PROPERTIES)."""
    index = BackingIndex()
    for obj, props in items:
        record = backing_from_props(obj, props)
        if not is_ours(record.extra_config):
            ref = moid(obj) or str(obj)
            index._add_users(ref, props.get("name") or ref, props.get("config.hardware.device") or ())
            if record.foreign and record.volume_id:
                index.foreign.setdefault(record.volume_id, []).append(record)
            continue
        if record.kind == specs.KIND_SNAPSHOT and record.snapshot_id:
            index.templates[record.snapshot_id] = record
        elif record.kind in (specs.KIND_VOLUME, specs.KIND_RETYPE) and record.volume_id:
            index.volumes.setdefault(record.volume_id, []).append(record)
    return index


class Lookup(OpsBase):
    """Reads: find a backing by id, load the index, in-use checks, snapshot templates."""

    def find_vm(self, instance_uuid: str | None) -> Any | None:
        """The VM whose instanceUuid is ``instance_uuid`` (FindByUuid), or None."""
        if not instance_uuid or not isinstance(instance_uuid, str):
            return None
        return self.session.call(self.session.content.searchIndex.FindByUuid, datacenter=self.inventory.datacenter,
                                 uuid=instance_uuid, vmSearch=True, instanceUuid=True)

    def _record(self, vm: Any) -> Backing | None:
        try:
            return self.get_backing(vm)
        except Exception as error:  # deleted between the search and the read
            if is_gone(error):
                return None
            raise

    def find_backing(self, volume_id: str | None) -> Backing | None:
        """The volume's backing by its id: the VM owning that instanceUuid with our marks for it, else the
        copy an interrupted retype left (which is then the volume). None when neither exists."""
        if not volume_id or not isinstance(volume_id, str):
            return None
        vm = self.find_vm(volume_id)
        record = self._record(vm) if vm is not None else None
        if record is not None:
            if is_ours(record.extra_config) and record.volume_id == volume_id and record.kind == specs.KIND_VOLUME:
                return record
            if record.foreign and record.volume_id == volume_id:
                return record  # one OpenStack Cinder made: imported, then marked ours by the first write
            LOG.warning("VM %s has instanceUuid %s but is not our backing for it; ignoring", record.name, volume_id)
        copy_vm = self.find_vm(specs.retype_uuid(volume_id))
        copy = self._record(copy_vm) if copy_vm is not None else None
        if copy is not None and copy.volume_id == volume_id and copy.is_retype_copy and is_ours(copy.extra_config):
            return copy
        return None

    def load_index(self) -> BackingIndex:
        """Every VM of the datacenter in one PropertyCollector read."""
        items = self.session.retrieve(vim.VirtualMachine, list(BACKING_PROPERTIES), container=self.inventory.vm_folder)
        return build_index((item.obj, item.props) for item in items)

    def list_backings(self) -> dict[str, Backing]:
        """Every volume of ours by id (its chosen backing), in one read."""
        index = self.load_index()
        return {vid: choice.primary for vid in index.volumes
                if (choice := index.choice(vid)).primary is not None}

    def list_snapshot_templates(self, volume_id: str | None = None) -> dict[str, SnapshotInfo]:
        """Template-format snapshots (template VMs we marked), keyed by snapshot id."""
        return {sid: template_snapshot(record) for sid, record in self.load_index().templates.items()
                if volume_id is None or record.volume_id == volume_id}

    def is_in_use(self, backing: Backing) -> list[str]:
        """Names of the VMs (not ours) with a disk whose file is this volume's VMDK (one read)."""
        if not backing.vmdk_path:
            return []
        items = self.session.retrieve(vim.VirtualMachine, ["name", "config.hardware.device", "config.extraConfig"],
                                      container=self.inventory.vm_folder)
        index = build_index((item.obj, item.props) for item in items)
        return index.users_of(backing)
