"""What every shadow-VM operation shares: the session, the datacenter, the folders, task plumbing.

``VolumeOps`` (volumeops.py) is assembled from one mixin per concern — lookup, lifecycle, snapshots,
clones, resize — each built on this base. None of them decides *whether* to do something (that is the
volume policy in the resources layer); they only know *how* to do it on vSphere, crash-safely.
"""

from __future__ import annotations

import logging
from typing import Any

from pyVmomi import vim, vmodl

from .. import exceptions as exc
from ..connection.once import Once
from .backing import BACKING_PROPERTIES, Backing, backing_from_props

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")


def vim_fault(error: BaseException | None) -> Any:
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


def is_gone(error: BaseException) -> bool:
    """The object the call was about no longer exists."""
    if isinstance(error, exc.NotFound) and not isinstance(error, exc.FileNotFound):
        return True
    return isinstance(vim_fault(error), vmodl.fault.ManagedObjectNotFound) or (
        (getattr(error, "fault_type", "") or "").endswith("ManagedObjectNotFound"))


def moid(obj: Any) -> str | None:
    return getattr(obj, "_moId", None) if obj is not None else None


class OpsBase:
    """Shadow-VM operations for one datacenter; safe to share between threads."""

    host_agent = False  # True in the standalone ESXi host's driver (drivers.EsxVolumeOps)

    def __init__(self, session: Any, inventory: Any, *, volume_folder: str = "Volumes",
                 snapshot_folder: str = "Snapshots", hw_version: str | None = None) -> None:
        self.session = session
        self.inventory = inventory
        self.volume_folder_path = volume_folder
        self.snapshot_folder_path = f"{volume_folder}/{snapshot_folder}"
        self.hw_version = hw_version
        self._folders: dict[str, Once[Any]] = {}

    # ------------------------------------------------------------------ plumbing
    def _task(self, fn: Any, *args: Any, idempotent: bool = False, **kwargs: Any) -> Any:
        """Start a task and wait for it; a lost answer raises OutcomeUnknown unless ``idempotent``."""
        return self.session.run_task(fn, *args, idempotent=idempotent, **kwargs)

    def _reconfig(self, vm: Any, spec: vim.vm.ConfigSpec) -> None:
        """ReconfigVM with absolute settings (safe to send again)."""
        self._task(vm.ReconfigVM_Task, spec=spec, idempotent=True)

    def _destroy(self, vm: Any) -> None:
        """Destroy_Task; an object already gone counts as destroyed."""
        try:
            self._task(vm.Destroy_Task, idempotent=True)
        except Exception as error:
            if not is_gone(error):
                raise

    # ------------------------------------------------------------------ folders
    def folder(self, path: str) -> Any:
        """VM folder under the datacenter's vmFolder, created when missing (once per process)."""
        once = self._folders.get(path)
        if once is None:
            once = self._folders.setdefault(path, Once(lambda: self.inventory.get_or_create_folder(path)))
        return once.get()

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

    # ------------------------------------------------------------------ records
    def get_backing(self, vm: Any) -> Backing:
        """Fresh record for a VM we hold a reference to (one property read)."""
        return backing_from_props(vm, self.session.get_properties(vm, list(BACKING_PROPERTIES)))

    def refresh(self, backing: Backing) -> Backing:
        return self.get_backing(backing.moref)
