"""Volume snapshots in Cinder's two formats, each made exactly once.

* COW: a VM snapshot (no memory, no quiesce). Its identity — our snapshot id — rides in the snapshot's
  description, so a lost CreateSnapshot answer is settled by reading the VM's snapshot tree.
* template: a full clone of the volume into the Snapshots folder, marked as a template. Its instanceUuid
  is the snapshot id, so a lost CloneVM answer is settled with one FindByUuid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .. import exceptions as exc
from ..connection.reconcile import create_once
from . import specs
from .backing import (
    FORMAT_COW,
    FORMAT_TEMPLATE,
    SNAPSHOT_FORMATS,
    Backing,
    SnapshotInfo,
    flatten_snapshots,
    is_ours,
    template_snapshot,
)
from .base import is_gone, moid
from .lifecycle import Lifecycle

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")


class Snapshots(Lifecycle):
    def create_snapshot(self, backing: Backing, name: str, description: str | None = None,
                        format: str = FORMAT_TEMPLATE, *, snapshot_id: str) -> SnapshotInfo:  # noqa: A002
        """COW: a VM snapshot. template: full clone into Snapshots + MarkAsTemplate."""
        if format not in SNAPSHOT_FORMATS:
            raise exc.InvalidSnapshot(
                f"invalid snapshot format {format!r}; expected one of {', '.join(SNAPSHOT_FORMATS)}")
        if format == FORMAT_COW:
            return self.create_cow_snapshot(backing, name, description, snapshot_id)
        return self.create_template_snapshot(backing, name, description, snapshot_id)

    def current_snapshots(self, backing: Backing) -> tuple[SnapshotInfo, ...]:
        """The VM's snapshot tree as vSphere holds it now (one read of ``snapshot`` only, not the whole VM)."""
        tree = self.session.get_properties(backing.moref, ["snapshot"]).get("snapshot")
        return flatten_snapshots(tree, backing.volume_id, backing.moref)

    def _cow_by(self, backing: Backing, match: Callable[[SnapshotInfo], bool]) -> SnapshotInfo | None:
        for info in self.current_snapshots(backing):
            if match(info):
                return info
        return None

    def take_cow_snapshot(self, backing: Backing, name: str, text: str,
                          match: Callable[[SnapshotInfo], bool]) -> Any:
        """CreateSnapshot_Task exactly once; ``match`` recognises the snapshot in the tree."""
        def find() -> Any:
            found = self._cow_by(backing, match)
            return None if found is None else found.moref

        return create_once(
            self.session, what=f"snapshot {name!r} of {backing.name}",
            start=lambda: backing.moref.CreateSnapshot_Task(name=name, description=text, memory=False, quiesce=False),
            find=find, entity=backing.moref, description_ids=("VirtualMachine.createSnapshot",),
        )

    def create_cow_snapshot(self, backing: Backing, name: str, description: str | None,
                            snapshot_id: str) -> SnapshotInfo:
        text = specs.encode_snapshot_description(snapshot_id, description)
        snap = self.take_cow_snapshot(backing, name, text, lambda i: i.snapshot_id == snapshot_id)
        found = self._cow_by(backing, lambda i: moid(i.moref) == moid(snap))
        if found is not None:
            return found
        return SnapshotInfo(name, FORMAT_COW, snap, backing.volume_id, description, None, snapshot_id, backing.moref)

    def _template_by_id(self, snapshot_id: str) -> Any:
        vm = self.find_vm(snapshot_id)
        if vm is None:
            return None
        try:
            record = self.get_backing(vm)
        except Exception as error:
            if is_gone(error):
                return None
            raise
        if is_ours(record.extra_config) and record.kind == specs.KIND_SNAPSHOT and record.snapshot_id == snapshot_id:
            return vm
        return None

    def create_template_snapshot(self, backing: Backing, name: str, description: str | None,
                                 snapshot_id: str) -> SnapshotInfo:
        location = specs.relocate_spec(datastore=backing.datastore, disk_move_type=specs.DISK_MOVE_FULL)
        annotation = specs.encode_annotation(name, description)
        marks = specs.snapshot_marks(backing.volume_id or "", snapshot_id)
        spec = specs.clone_spec(location=location, extra_config=marks, instance_uuid=snapshot_id, annotation=annotation)
        target = self.snapshot_folder()
        vm = create_once(
            self.session, what=f"template snapshot {name!r} of {backing.name}",
            start=lambda: backing.moref.CloneVM_Task(folder=target, name=f"snapshot-{snapshot_id}", spec=spec),
            find=lambda: self._template_by_id(snapshot_id), entity=backing.moref,
            description_ids=("VirtualMachine.clone",),
        )
        return self.finish_template(self.get_backing(vm), annotation)

    def finish_template(self, record: Backing, annotation: str) -> SnapshotInfo:
        """The steps after the clone (annotation, MarkAsTemplate): safe to run again on a half-made one."""
        if not record.is_template:
            record = self.ensure_annotation(record, annotation)
            try:
                self.session.call(record.moref.MarkAsTemplate)
            except Exception:
                if not self.refresh(record).is_template:  # a lost answer to a call that did act
                    raise
        return template_snapshot(self.get_backing(record.moref))

    def find_snapshot(self, backing: Backing | None, name: str | None = None, *,
                      snapshot_id: str | None = None) -> SnapshotInfo | None:
        """By snapshot id (either format) or by name: COW in the VM's tree, else our templates."""
        if backing is not None:
            found = self._cow_by(backing, lambda i: (bool(snapshot_id) and i.snapshot_id == snapshot_id)
                                 or (not snapshot_id and bool(name) and i.name == name))
            if found is not None:
                return found
        if snapshot_id:
            vm = self._template_by_id(snapshot_id)
            return None if vm is None else template_snapshot(self.get_backing(vm))
        if name and backing is not None:
            for info in self.list_snapshot_templates(backing.volume_id).values():
                if info.name == name:
                    return info
        return None

    def delete_snapshot(self, backing: Backing | None, name: str | None = None, *, snapshot_id: str | None = None,
                        snapshot: SnapshotInfo | None = None) -> None:
        """Remove a COW snapshot (children kept, disks consolidated) or destroy a template; missing → no-op."""
        info = snapshot or self.find_snapshot(backing, name, snapshot_id=snapshot_id)
        if info is None:
            return
        try:
            if info.format == FORMAT_COW:
                self._task(info.moref.RemoveSnapshot_Task, removeChildren=False, consolidate=True, idempotent=True)
            else:
                self._task(info.moref.Destroy_Task, idempotent=True)
        except Exception as error:
            if not is_gone(error):
                raise

    def remove_temporary_snapshots(self, backing: Backing) -> Backing:
        """Remove a linked clone's leftover snapshot points (they would block extending the volume)."""
        for info in backing.temporary_snapshots:
            LOG.info("removing leftover temporary snapshot %s of %s", info.name, backing.name)
            self.delete_snapshot(None, snapshot=info)
        return self.refresh(backing) if backing.temporary_snapshots else backing

    def revert_to_snapshot(self, backing: Backing, snapshot: SnapshotInfo) -> Backing:
        """RevertToSnapshot_Task (COW only; a template is a separate VM)."""
        if snapshot.format != FORMAT_COW:
            raise exc.InvalidSnapshot(f"snapshot {snapshot.name!r} is in template format; only COW snapshots can "
                                      "be reverted to")
        self._task(snapshot.moref.RevertToSnapshot_Task, suppressPowerOn=True, idempotent=True)
        return self.refresh(backing)

    def rename_cow_snapshot(self, info: SnapshotInfo, name: str, description: str | None) -> None:
        """RenameSnapshot (a plain method, absolute values): name and description with our id."""
        text = specs.encode_snapshot_description(info.snapshot_id, description)
        self.session.call(info.moref.RenameSnapshot, name=name, description=text)

    def update_template_annotation(self, template: Backing, name: str, description: str | None,
                                   host_and_pool: Callable[[], tuple[Any, Any]]) -> None:
        """A template's name and description are its annotation. vCenter may refuse to reconfigure a
        template: then it becomes a VM for the edit (on a host ``host_and_pool`` names) and a template again."""
        try:
            self.update_annotation(template, name, description)
            return
        except Exception as first:  # noqa: BLE001 - retried the other way below
            LOG.info("reconfiguring template %s failed (%s); converting it to a VM for the edit", template.name, first)
        host, pool = host_and_pool()
        if self.refresh(template).is_template:
            self.session.call(template.moref.MarkAsVirtualMachine, pool=pool, host=host)
        try:
            self.update_annotation(template, name, description)
        finally:
            if not self.refresh(template).is_template:
                self.session.call(template.moref.MarkAsTemplate)
