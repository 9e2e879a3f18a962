"""Finding backings: one volume by its id, or every VM of the datacenter in one read (the index).

A volume is found by its identity, never by its name: the shadow VM whose instanceUuid is the volume id
and whose marks say so. Marks alone prove nothing — vSphere's Clone (and clone to template, and backup
products restoring "as a new VM") copies extraConfig and annotation — so a VM carrying our marks without
owning the instanceUuid they name is a copy made outside Terraform: reported, never changed or destroyed
(``Backing.proven``). Two things make finding a volume more than one FindByUuid:

* a same-datastore retype copies the volume into a new VM (kind ``volume-retype``, instanceUuid derived
  from the volume id) before the old one goes; if an apply stops between the two, the copy *is* the volume;
* an older version of this provider could leave two complete backings for one id (a create sent twice).

``choose`` decides, from the records alone, which backing is the volume, which ones are leftovers of ours
to remove and which are copies made outside Terraform. The index (one PropertyCollector read of every VM)
also tells which VMs hold a volume's files anywhere in their disk chains — a VM with a snapshot runs on a
delta whose ``backing.parent`` chain names the disk it was attached to — so in-use checks are one lookup.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim

from . import specs
from .backing import (
    BACKING_PROPERTIES,
    Backing,
    SnapshotInfo,
    backing_from_props,
    disk_files,
    is_ours,
    template_snapshot,
)
from .base import OpsBase, is_gone, moid

__all__ = ["BackingIndex", "Choice", "Holder", "choose", "build_index", "Lookup"]

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


@dataclass(frozen=True)
class Choice:
    """The backing that is the volume, the other VMs of ours carrying its id (to be removed), and the VMs
    carrying its marks that are copies made outside Terraform (reported, left alone)."""

    primary: Backing | None
    leftovers: tuple[Backing, ...] = ()
    copies: tuple[Backing, ...] = ()

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

    def outside(self) -> list[str]:
        """The copies made outside Terraform, named for messages."""
        return [f"{c.name} ({c.moref_value})" for c in self.copies]


def _rank(record: Backing) -> tuple[int, int, int, _dt.datetime, str]:
    created = record.create_date or _EPOCH
    if created.tzinfo is None:
        created = created.replace(tzinfo=_dt.UTC)
    return (0 if record.complete else 1, 0 if record.disk is not None else 1,
            0 if (record.disk_uuid or "").lower() == (record.volume_id or "").lower() else 1,
            created, record.moref_value)


def choose(records: Sequence[Backing]) -> Choice:
    """Pick the volume among the VMs that carry one volume id.

    Only a VM that owns its identity can be the volume or one of our leftovers; any other is a copy made
    outside Terraform. A finished backing beats a retype's copy (the copy only wins once the original is
    gone); among equals, the one with its disk and disk UUID in place, then the oldest."""
    proven = [r for r in records if r.proven]
    copies = tuple(sorted((r for r in records if not r.proven), key=lambda r: r.moref_value))
    volumes = sorted((r for r in proven if not r.is_retype_copy), key=_rank)
    retypes = sorted((r for r in proven if r.is_retype_copy), key=_rank)
    ordered = volumes + retypes
    if not ordered:
        return Choice(None, (), copies)
    return Choice(ordered[0], tuple(ordered[1:]), copies)


@dataclass(frozen=True)
class Holder:
    """A VM whose disk chains hold a file."""

    moref: str
    name: str
    ours: bool  # a proven VM of ours: a volume (then a linked clone of the file's volume) or a template
    as_parent: bool = False  # its disk builds on the file (a linked clone's parent), rather than writing to it


@dataclass
class BackingIndex:
    """Every VM of the datacenter as one read saw it: our backings by volume id, our template snapshots by
    snapshot id, the copies of them made outside Terraform, and which VMs hold each disk file."""

    volumes: dict[str, list[Backing]] = field(default_factory=dict)
    templates: dict[str, Backing] = field(default_factory=dict)
    holders: dict[str, list[Holder]] = field(default_factory=dict)  # file -> VMs whose disk chains hold it
    foreign: dict[str, list[Backing]] = field(default_factory=dict)  # Cinder's backings by volume id (import)
    outside: list[Backing] = field(default_factory=list)  # template copies made outside Terraform

    def choice(self, volume_id: str) -> Choice:
        return choose(self.volumes.get(volume_id, ()))

    def primary(self, volume_id: str) -> Backing | None:
        return self.choice(volume_id).primary

    def holders_of(self, files: Iterable[str], exclude: str | None = None) -> list[Holder]:
        """The VMs (but ``exclude``) whose disk chains hold any of ``files``, each once (as a parent only when
        every one of its holdings is)."""
        seen: dict[str, Holder] = {}
        for path in files:
            for holder in self.holders.get(path, ()):
                if holder.moref == exclude:
                    continue
                known = seen.get(holder.moref)
                seen[holder.moref] = holder if known is None or known.as_parent else known
        return sorted(seen.values(), key=lambda h: (h.name, h.moref))

    def users_of(self, backing: Backing) -> list[str]:
        """Names of the VMs — not shadow VMs of ours — whose disks hold any file of this volume's chain (Cinder's
        "in use": attached to an instance, which may run on a delta of it after a snapshot)."""
        return [h.name for h in self.holders_of(backing.own_files, backing.moref_value) if not h.ours]

    def children_of(self, backing: Backing) -> list[str]:
        """Names of our VMs (linked clones) whose disks build on a file of this volume's chain: vSphere cannot
        grow, move, copy away or delete a disk that other disks build on. (Two VMs of ours never write to one
        file on vSphere; a simulator whose clone re-points the source at the copy's file shows them doing it,
        and that is not a linked clone.)"""
        return [h.name for h in self.holders_of(backing.own_files, backing.moref_value) if h.ours and h.as_parent]

    def put(self, backing: Backing) -> None:
        """Record a backing this process just wrote (so the index stays true without a new read)."""
        self.drop(backing.moref_value)
        if backing.kind == specs.KIND_SNAPSHOT and backing.snapshot_id:
            self.templates[backing.snapshot_id] = backing
        elif backing.volume_id:
            self.volumes.setdefault(backing.volume_id, []).append(backing)
        self._add_holder(backing.moref_value, backing.name, backing.proven, backing.devices)

    def drop(self, moref_value: str) -> None:
        """Forget a VM this process just destroyed (or is about to re-record)."""
        for table in (self.volumes, self.foreign):
            for key in list(table):
                kept = [b for b in table[key] if b.moref_value != moref_value]
                if kept:
                    table[key] = kept
                else:
                    del table[key]
        for key in [k for k, b in self.templates.items() if b.moref_value == moref_value]:
            del self.templates[key]
        self.outside = [b for b in self.outside if b.moref_value != moref_value]
        for path in list(self.holders):
            kept_holders = [h for h in self.holders[path] if h.moref != moref_value]
            if kept_holders:
                self.holders[path] = kept_holders
            else:
                del self.holders[path]

    def _add_holder(self, ref: str, name: str, ours: bool, devices: Iterable[Any]) -> None:
        for path, as_parent in disk_files(devices):
            self.holders.setdefault(path, []).append(Holder(ref, name, ours, as_parent))


def build_index(items: Iterable[tuple[Any, dict[str, Any]]]) -> BackingIndex:
    """An index from (moref, properties) of every VM (BACKING_PROPERTIES)."""
    index = BackingIndex()
    for obj, props in items:
        record = backing_from_props(obj, props)
        ref = moid(obj) or str(obj)
        ours = is_ours(record.extra_config)
        index._add_holder(ref, props.get("name") or ref, ours and record.proven,
                          props.get("config.hardware.device") or ())
        if not ours:
            if record.foreign and record.volume_id:
                index.foreign.setdefault(record.volume_id, []).append(record)
            continue
        if record.kind == specs.KIND_SNAPSHOT and record.snapshot_id:
            if record.proven:
                index.templates[record.snapshot_id] = record
            else:
                index.outside.append(record)
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

    def disk_present(self, backing: Backing | None) -> bool | None:
        """Whether a backing provably holds its whole disk: its device and every file of its own chain on the
        datastore (VirtualDiskManager.QueryVirtualDiskUuid opens each). True, False (the VM or a file is gone),
        or None when vSphere did not say (then nothing may be destroyed on the strength of it)."""
        from .. import exceptions as exc
        from ..connection.tasks import means

        if backing is None or backing.disk is None or not backing.own_files:
            return False
        vdm = self.session.content.virtualDiskManager
        for path in backing.own_files:
            try:
                self.session.call(vdm.QueryVirtualDiskUuid, name=path, datacenter=self.inventory.datacenter)
            except Exception as error:  # noqa: BLE001 - only a definite "not there" counts as an answer
                if means(error, exc.FileNotFound):
                    return False
                LOG.warning("could not check that %s is on its datastore: %s", path, error)
                return None
        return True

    def running_tasks(self, vm: Any) -> list[str]:
        """The tasks (anyone's) queued or running on ``vm``: a VM someone is still making or changing."""
        from ..connection import tasks

        return [t._GetMoId() for t in tasks.active_tasks(self.session, vm)]

    def reread(self, backing: Backing) -> Backing | None:
        """The backing as vSphere holds it now; None when the VM is gone."""
        return self._record(backing.moref)

    def is_in_use(self, backing: Backing) -> list[str]:
        """Names of the VMs (not ours) whose disk chains hold a file of this volume's chain (one read)."""
        return self.load_index().users_of(backing)
