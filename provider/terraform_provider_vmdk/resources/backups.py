"""Resources ``vmdk_volume_backup`` and ``vmdk_volume_restore`` (Cinder's backup_volume / restore_backup).

A backup is a directory: ``disk.vmdk`` (the volume's disk as a streamOptimized VMDK, through an ExportVm
lease) and ``manifest.json`` (what the volume was: size, disk type, adapter, the disk's SHA-256). A
volume is made from one with ``vmdk_volume``'s ``backup`` block; ``vmdk_volume_restore`` puts one back onto an
existing volume — when created and whenever ``triggers`` change — refusing a volume with snapshots, as Cinder
does (InvalidVolume), since the snapshots would no longer match the disk.

A backup is its manifest's id: a directory whose manifest names another id holds another backup, which this
one neither overwrites nor removes. A ``disk.vmdk`` changed outside Terraform is drift: the plan shows it (the
checksum) and replaces the backup. Delete removes the manifest and the disk this backup wrote; a disk changed
or replaced since stays, with a warning.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..framework.diagnostics import DiagnosticError
from ..framework.planmodifiers import RequiresReplace, UseStateForUnknown
from ..framework.resource import ApplyRequest, PlanRequest, ReadRequest, RequestContext, Resource
from ..framework.schema import Attribute, Schema, schema
from ..framework.timeouts import timeout_seconds, timeouts_block
from ..framework.types import Map, Number, String
from ..framework.validators import NotEmpty
from .backend import VolumeBackend, backend_of, driver_errors, run_bounded
from .export import export_disk
from .images import LocalImage
from .localfiles import (
    APPROVED,
    WRITTEN,
    note_written,
    os_reason,
    plan_drift_replacement,
    publish_new,
    remove_written,
    staged,
    verify_written,
    written_of,
)
from .volume_policy import GiB, refuse_in_use, refuse_parent
from .volume_sources import BACKUP_DISK, MANIFEST, backup_image, read_manifest

__all__ = ["BackupResource", "RestoreResource"]

FORMAT = "vmdk-backup-1"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BackupResource(Resource):
    type_name = "vmdk_volume_backup"

    def schema(self) -> Schema:
        replace = (RequiresReplace(),)
        keep = (UseStateForUnknown(),)
        return schema(
            {
                "id": Attribute(String, computed=True, plan_modifiers=keep, description="Backup id (a UUID)."),
                "volume_id": Attribute(String, required=True, validators=(NotEmpty(),), plan_modifiers=replace,
                                       description="The `vmdk_volume` to back up. Changing it makes a new backup."),
                "path": Attribute(String, required=True, validators=(NotEmpty(),), plan_modifiers=replace,
                                  description=f"Directory that receives `{BACKUP_DISK}` and `{MANIFEST}` (created "
                                  "when missing). Changing it makes a new backup."),
                "sha256": Attribute(String, computed=True, plan_modifiers=keep,
                                    description=f"SHA-256 of `{BACKUP_DISK}`."),
                "size_gb": Attribute(Number, computed=True, plan_modifiers=keep,
                                     description="Size of the volume backed up, in GiB."),
                "disk_type": Attribute(String, computed=True, plan_modifiers=keep,
                                       description="Disk type of the volume backed up."),
                "adapter_type": Attribute(String, computed=True, plan_modifiers=keep,
                                          description="Adapter type of the volume backed up."),
                "created_at": Attribute(String, computed=True, plan_modifiers=keep,
                                        description="When the backup was made (RFC 3339, UTC)."),
            },
            blocks={"timeouts": timeouts_block("create", defaults={"create": "60m"})},
            description="Backs a volume up into a local directory (Cinder's backup_volume): its disk as a "
            "streamOptimized VMDK and a manifest. Refused for a volume attached to a VM. A backup changed outside "
            "Terraform is replaced. Deleting it removes both files (a disk changed or replaced since stays, with a "
            "warning).",
        )

    def modify_plan(self, req: PlanRequest) -> None:
        directory = Path(str((req.prior or {}).get("path") or "")).expanduser()
        plan_drift_replacement(req, directory / BACKUP_DISK, "backup", COMPUTED)

    def create(self, req: ApplyRequest) -> dict[str, Any]:
        plan = req.plan or {}
        backend = backend_of(self.provider_data)
        directory = Path(plan["path"]).expanduser()
        if directory.exists() and not directory.is_dir():
            raise DiagnosticError("Not a directory", f"path {plan['path']!r} exists and is not a directory.", "path")
        _refuse_taken(directory, plan["path"])
        for key in (WRITTEN, APPROVED):  # what a replaced object recorded (a replacement's plan passes it on)
            req.private.pop(key, None)
        made: dict[str, Any] = {}

        def write_manifest(digest: str, _written: int, backing: Any) -> Callable[[], None]:
            """The manifest takes its place first, and only where none is (another writer's stays untouched);
            then the disk takes its place (or, if it cannot, the manifest goes again)."""
            manifest = {"format": FORMAT, "id": str(uuid.uuid4()), "volume_id": plan["volume_id"],
                        "size_gb": -(-backing.size_bytes // GiB), "capacity_bytes": backing.size_bytes,
                        "disk_type": backing.disk_type, "adapter_type": backing.adapter_type, "sha256": digest,
                        "created_at": _now()}
            try:
                with staged(directory / MANIFEST, publish_new) as staging:
                    staging.write_text(json.dumps(manifest, indent=2) + "\n")
            except FileExistsError:
                _refuse_taken(directory, plan["path"])  # says whose it is
                raise DiagnosticError("Backup directory in use", f"path {plan['path']!r}: another backup was "
                                      "written there meanwhile; give each backup its own directory.", "path") from None
            made.update(manifest)
            return lambda: (directory / MANIFEST).unlink(missing_ok=True)

        limit = timeout_seconds(plan, "create", 3600.0)
        run_bounded(f"back up volume {plan['volume_id']}", limit, req.stop,
                    lambda: export_disk(backend, plan["volume_id"], directory / BACKUP_DISK, "streamOptimized",
                                        before_publish=write_manifest), req.private)
        req.private[WRITTEN] = {"sha256": made["sha256"], "file": note_written(directory / BACKUP_DISK)}
        return {**plan, **{k: made[k] for k in ("id", "sha256", "size_gb", "disk_type", "adapter_type",
                                                 "created_at")}}

    def read(self, req: ReadRequest) -> dict[str, Any] | None:
        state = req.state
        directory = Path(str(state.get("path") or "")).expanduser()
        manifest = _manifest_at(directory)
        if not isinstance(manifest, dict) or manifest.get("id") != state.get("id"):
            return None  # removed outside Terraform (or another backup took its place): the next apply backs up
        disk = directory / BACKUP_DISK
        if not disk.is_file():  # the manifest is this backup's, its disk is gone: drift, the plan replaces it
            written = dict(written_of(req.private))
            written.setdefault("sha256", state.get("sha256"))
            req.private[WRITTEN] = written
            return {**state, "sha256": None}
        digest = verify_written(disk, state, req.private, req.diagnostics, "backup's disk")
        # changed outside Terraform: the state says so (its checksum), and the plan replaces the backup
        return state if digest is None else {**state, "sha256": digest}

    def update(self, req: ApplyRequest) -> dict[str, Any]:
        return {**(req.plan or {})}  # only the timeouts can change in place

    def import_state(self, import_id: str, ctx: RequestContext) -> dict[str, Any]:
        """A backup is imported by its directory (what its manifest says it is)."""
        manifest = read_manifest(import_id.strip(), "The import id", on_attribute=False)
        return {"path": import_id.strip(), "volume_id": manifest.get("volume_id"),
                **{k: manifest.get(k) for k in ("id", "sha256", "size_gb", "disk_type", "adapter_type", "created_at")}}

    def delete(self, req: ApplyRequest) -> None:
        prior = req.prior or {}
        directory = Path(str(prior.get("path") or "")).expanduser()
        manifest = _manifest_at(directory)
        if manifest is not None and (not isinstance(manifest, dict) or manifest.get("id") != prior.get("id")):
            other = f"another backup (id {manifest.get('id')})" if isinstance(manifest, dict) else \
                f"a {MANIFEST} that is not this backup's"
            req.diagnostics.warning(
                "Backup left in place",
                f"{directory} now holds {other}, not the backup this vmdk_volume_backup wrote (id {prior.get('id')}), "
                "so destroy removed nothing there.", "path")
            return
        remove_written(directory / BACKUP_DISK, req.private, prior.get("sha256"), req.diagnostics, self.type_name)
        if manifest is not None:
            try:
                (directory / MANIFEST).unlink(missing_ok=True)
            except OSError as error:
                raise DiagnosticError(f"Cannot remove {MANIFEST}", f"{directory / MANIFEST} could not be removed "
                                      f"({os_reason(error)}); the backup stays in the state. Fix that and run "
                                      "terraform destroy again.") from None
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when nothing else is in it


COMPUTED = ("id", "sha256", "size_gb", "disk_type", "adapter_type", "created_at")


def _manifest_at(directory: Path) -> dict[str, Any] | str | None:
    """The backup manifest in ``directory``: None when there is none; a string (why) when there is a file by
    that name that is not one."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as error:
        return os_reason(error)
    except ValueError:
        return "not JSON"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return "not a vmdk backup manifest"
    return manifest


def _refuse_taken(directory: Path, path: str) -> None:
    """A directory that holds a backup (or something else by its manifest's name) is not written into."""
    manifest = _manifest_at(directory)
    if manifest is None:
        return
    if isinstance(manifest, dict):
        raise DiagnosticError(
            "Backup directory in use",
            f"path {path!r} already holds a backup (id {manifest.get('id')}, of volume {manifest.get('volume_id')}); "
            "give each backup its own directory. A replacement made with create_before_destroy needs a new path "
            "too: the new backup is written while the old one is still there.", "path")
    raise DiagnosticError("Backup directory in use", f"path {path!r} holds a {MANIFEST} that is not a backup "
                          f"manifest ({manifest}); move it away or give the backup another directory.", "path")


class RestoreResource(Resource):
    type_name = "vmdk_volume_restore"
    importable = False

    def schema(self) -> Schema:
        return schema(
            {
                "id": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                                description="Restore id (a UUID)."),
                "volume_id": Attribute(String, required=True, validators=(NotEmpty(),),
                                       plan_modifiers=(RequiresReplace(),),
                                       description="The `vmdk_volume` to restore onto (it keeps its id)."),
                "backup_path": Attribute(String, required=True, validators=(NotEmpty(),),
                                         description="A directory `vmdk_volume_backup` wrote."),
                "triggers": Attribute(Map(String), optional=True,
                                      description="Any change restores the backup again."),
                "restored_at": Attribute(String, computed=True,
                                         description="When the backup was last restored (RFC 3339, UTC)."),
            },
            blocks={"timeouts": timeouts_block("create", "update", defaults={"create": "60m", "update": "60m"})},
            description="Restores a backup onto an existing volume (Cinder's restore_backup) when created and "
            "whenever `triggers` or `backup_path` change. Refused for a volume with snapshots or attached to a VM. "
            "Deleting it changes nothing.",
        )

    def _restore(self, req: ApplyRequest, operation: str) -> dict[str, Any]:
        plan = req.plan or {}
        backend = backend_of(self.provider_data)
        limit = timeout_seconds(plan, operation, 3600.0)
        run_bounded(f"restore onto volume {plan['volume_id']}", limit, req.stop,
                    lambda: restore(backend, plan["volume_id"], plan["backup_path"]), req.private)
        return {**plan, "id": plan.get("id") if isinstance(plan.get("id"), str) else str(uuid.uuid4()),
                "restored_at": _now()}

    def create(self, req: ApplyRequest) -> dict[str, Any]:
        return self._restore(req, "create")

    def update(self, req: ApplyRequest) -> dict[str, Any]:
        plan, prior = req.plan or {}, req.prior or {}
        if (plan.get("triggers"), plan.get("backup_path")) == (prior.get("triggers"), prior.get("backup_path")):
            return {**plan, "restored_at": prior.get("restored_at")}  # only the timeouts changed
        return self._restore(req, "update")

    def delete(self, req: ApplyRequest) -> None:
        return None  # a restore is a past event: nothing to undo


def restore(backend: VolumeBackend, volume_id: str, backup_path: str) -> None:
    local, _ = backup_image(backup_path, "backup_path")
    try:
        _restore(backend, volume_id, backup_path, local)
    finally:
        local.close()


def _restore(backend: VolumeBackend, volume_id: str, backup_path: str, local: LocalImage) -> None:
    from ..vsphere.placement.datastore import Requirements

    choice, index = driver_errors("find the volume", lambda: backend.decide_on(volume_id), "volume_id")
    backing = choice.primary
    if backing is None:
        raise DiagnosticError("Volume not found", f"No vmdk_volume with id {volume_id!r} exists.", "volume_id")
    if backing.user_snapshots:
        raise DiagnosticError(
            "Volume has snapshots", f"Volume {volume_id} has {len(backing.user_snapshots)} COW snapshot(s); a restore "
            "would leave them out of step with the disk (Cinder refuses it too). Delete them first.", "volume_id")
    refuse_in_use(index.users_of(backing), "restore onto it", "volume_id")
    refuse_parent(index.children_of(backing), "restore onto it", "volume_id")
    if local.capacity > backing.size_bytes:
        raise DiagnosticError(
            "Backup bigger than the volume", f"The backup holds {local.capacity / GiB:.2f} GiB; volume {volume_id} has "
            f"{backing.size_bytes // GiB} GiB. Grow the volume first.", "backup_path")
    placement = driver_errors("place the restored disk", lambda: backend.selector.select(
        Requirements(size_bytes=backing.size_bytes, datastore=backing.datastore_name)), "volume_id")
    restored = driver_errors("restore the backup", lambda: backend.ops.restore_stream(
        backing, opener=local.open, size=local.size, capacity_bytes=local.capacity, placement=placement,
        what=f"restore of {backup_path} onto volume {volume_id}"), "backup_path")
    if restored.size_bytes < backing.size_bytes:
        restored = driver_errors("grow the restored volume", lambda: backend.ops.grow(restored, backing.size_bytes))
    backend.remember(restored)
