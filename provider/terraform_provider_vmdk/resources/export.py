"""Resource ``vmdk_volume_export``: a volume's disk written to a local file (Cinder's copy_volume_to_image).

``streamOptimized`` (the default) goes through an ExportVm lease, as Cinder uploads a volume to Glance;
``flat`` is the raw disk, downloaded from the datastore. A volume attached to a VM is refused, as Cinder
refuses it. The file is written under a staging name of its own and renamed when complete, so a failed or
cancelled export never leaves a half file at ``path`` (see ``localfiles``). A file removed outside Terraform is
exported again; a file changed outside Terraform is drift the plan shows (its checksum) and replaces. Delete
removes the file only while it is the one this export wrote; anything else at ``path`` stays, with a warning.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..framework.diagnostics import DiagnosticError
from ..framework.planmodifiers import RequiresReplace, UseStateForUnknown
from ..framework.resource import ApplyRequest, PlanRequest, ReadRequest, Resource
from ..framework.schema import Attribute, Schema, schema
from ..framework.timeouts import timeout_seconds, timeouts_block
from ..framework.types import Number, String
from ..framework.validators import NotEmpty, OneOf
from .backend import VolumeBackend, backend_of, driver_errors, run_bounded
from .localfiles import (
    APPROVED,
    WRITTEN,
    note_written,
    os_reason,
    plan_drift_replacement,
    remove_written,
    staged,
    verify_written,
)
from .volume_policy import refuse_in_use

__all__ = ["ExportResource", "export_disk", "HashingFile"]

FORMATS = ("streamOptimized", "flat")


class HashingFile:
    """A file opened for writing that hashes what goes through it (the digest of the last attempt)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self._fh: BinaryIO | None = None

    def __enter__(self) -> HashingFile:
        self.digest = hashlib.sha256()
        self._fh = self.path.open("wb")
        return self

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        assert self._fh is not None
        return self._fh.write(data)

    def __exit__(self, *exc_info: Any) -> None:
        assert self._fh is not None
        self._fh.close()


def export_disk(backend: VolumeBackend, volume_id: str, path: Path, fmt: str, attribute: str = "volume_id",
                before_publish: Callable[[str, int, Any], Callable[[], None] | None] | None = None
                ) -> tuple[str, int, Any]:
    """Write the volume's disk to ``path``: (sha256, bytes, the backing). ``before_publish(sha256, bytes,
    backing)`` runs when the disk is complete, before it takes its place at ``path`` (an error there leaves
    ``path`` as it was); what it returns is called if the disk then cannot take its place."""
    backing = driver_errors("find the volume", lambda: backend.choice(volume_id, fresh=True).primary, attribute)
    if backing is None:
        raise DiagnosticError("Volume not found", f"No vmdk_volume with id {volume_id!r} exists.", attribute)
    refuse_in_use(backend.users_of(backing), "export it", attribute)
    undo: list[Callable[[], None]] = []

    def publish(staging: Path, target: Path) -> None:
        try:
            os.replace(staging, target)
        except BaseException:
            for step in undo:
                step()
            raise

    try:
        with staged(path, publish) as staging:
            sink = HashingFile(staging)
            what = f"export of volume {volume_id} to {path}"
            if fmt == "flat":
                written = driver_errors("export the volume", lambda: backend.ops.export_flat(
                    backing, lambda: sink, what=what))
            else:
                written = driver_errors("export the volume", lambda: backend.ops.export_stream(
                    backing.moref, lambda: sink, what=what))
            if before_publish is not None:
                step = before_publish(sink.digest.hexdigest(), written, backing)
                if step is not None:
                    undo.append(step)
    except OSError as error:  # the local file, not vSphere (driver_errors maps those)
        raise DiagnosticError("Cannot write the file", f"{path}: {os_reason(error)}.", "path") from None
    return sink.digest.hexdigest(), written, backing


class ExportResource(Resource):
    type_name = "vmdk_volume_export"
    importable = False

    def schema(self) -> Schema:
        replace = (RequiresReplace(),)
        return schema(
            {
                "id": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                                description="The file's path."),
                "volume_id": Attribute(String, required=True, validators=(NotEmpty(),), plan_modifiers=replace,
                                       description="The `vmdk_volume` to export. Changing it exports again."),
                "path": Attribute(String, required=True, validators=(NotEmpty(),), plan_modifiers=replace,
                                  description="Local file to write (its directory is created). Changing it exports "
                                  "again."),
                "format": Attribute(String, optional=True, default="streamOptimized", validators=(OneOf(FORMATS),),
                                    plan_modifiers=replace,
                                    description="`streamOptimized` (a VMDK, as Glance holds images; the default) or "
                                    "`flat` (the raw disk bytes)."),
                "sha256": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                                    description="SHA-256 of the file written."),
                "size_bytes": Attribute(Number, computed=True, plan_modifiers=(UseStateForUnknown(),),
                                        description="Size of the file written."),
            },
            blocks={"timeouts": timeouts_block("create", defaults={"create": "60m"})},
            description="Exports a volume's disk to a local file (Cinder's copy_volume_to_image); refused for a "
            "volume attached to a VM. A file changed outside Terraform is replaced. Deleting it removes the file "
            "it wrote (anything else at `path` stays, with a warning).",
        )

    def modify_plan(self, req: PlanRequest) -> None:
        path = Path(str((req.prior or {}).get("path") or "")).expanduser()
        plan_drift_replacement(req, path, "export", ("id", "sha256", "size_bytes"))

    def create(self, req: ApplyRequest) -> dict[str, Any]:
        plan = req.plan or {}
        backend = backend_of(self.provider_data)
        path = Path(plan["path"]).expanduser()
        limit = timeout_seconds(plan, "create", 3600.0)
        for key in (WRITTEN, APPROVED):  # what a replaced object recorded (a replacement's plan passes it on)
            req.private.pop(key, None)
        digest, written, _ = run_bounded(f"export volume {plan['volume_id']}", limit, req.stop,
                                         lambda: export_disk(backend, plan["volume_id"], path, plan["format"]),
                                         req.private)
        req.private[WRITTEN] = {"sha256": digest, "file": note_written(path)}
        return {**plan, "id": str(path), "sha256": digest, "size_bytes": written}

    def read(self, req: ReadRequest) -> dict[str, Any] | None:
        state = req.state
        path = Path(str(state.get("path") or "")).expanduser()
        if not path.is_file():
            return None  # removed outside Terraform: the next apply exports again
        digest = verify_written(path, state, req.private, req.diagnostics, "exported file")
        if digest is None:
            return state
        # changed outside Terraform: the state says so (its checksum), and the plan replaces it
        return {**state, "sha256": digest, "size_bytes": path.stat().st_size}

    def update(self, req: ApplyRequest) -> dict[str, Any]:
        return {**(req.plan or {})}  # only the timeouts can change in place

    def delete(self, req: ApplyRequest) -> None:
        prior = req.prior or {}
        path = Path(str(prior.get("path") or "")).expanduser()
        remove_written(path, req.private, prior.get("sha256"), req.diagnostics, self.type_name)
