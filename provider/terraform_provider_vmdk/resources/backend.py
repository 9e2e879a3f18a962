"""The resources' view of vSphere: the core objects wired from provider settings, plus a read cache.

Terraform refreshes every resource with its own ReadResource call. Reading each backing on its own
would cost O(N) SOAP round trips; instead the first read in a process loads *all* our backings with
one PropertyCollector call and later reads are served from that snapshot. Every write invalidates it,
so a read after a write in the same process sees vSphere again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ..framework.diagnostics import DiagnosticError
from .client import VSphereClient

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.backing import Backing
    from ..vsphere.datastore import DatastoreSelector
    from ..vsphere.inventory import Inventory
    from ..vsphere.volumeops import VolumeOps

__all__ = ["VolumeBackend", "backend_of", "driver_errors", "with_deadline", "DeadlineExceeded"]

T = TypeVar("T")
LOG = logging.getLogger("terraform_provider_vmdk.resources")
GiB = 1024**3


class VolumeBackend:
    def __init__(self, client: VSphereClient) -> None:
        self.client = client
        self.settings = client.settings
        self._lock = threading.Lock()
        self._objects: tuple[Inventory, DatastoreSelector, VolumeOps] | None = None
        self._backings: dict[str, Backing] | None = None
        self._datastores: dict[str, int] | None = None
        self._generation = 0

    def _core(self) -> tuple["Inventory", "DatastoreSelector", "VolumeOps"]:
        with self._lock:
            if self._objects is None:
                from ..vsphere.datastore import DatastoreSelector
                from ..vsphere.inventory import Inventory
                from ..vsphere.volumeops import VolumeOps

                session = self.client.session()
                inventory = Inventory(session, self.settings.datacenter)
                self._check_settings(inventory)
                selector = DatastoreSelector(
                    session, inventory, name_regex=self.settings.datastore_regex,
                    cluster_names=list(self.settings.cluster_names) or None,
                )
                ops = VolumeOps(session, inventory, volume_folder=self.settings.volume_folder)
                self._objects = (inventory, selector, ops)
            return self._objects

    def _check_settings(self, inventory: "Inventory") -> None:
        """Settings only vSphere can judge (datacenter, clusters): an error that names the provider setting."""
        from ..vsphere.exceptions import ClusterNotFound, DatacenterNotFound

        try:
            inventory.datacenter
        except DatacenterNotFound as exc:
            raise DiagnosticError("Invalid provider setting: datacenter",
                                  f"{exc}\n\nFix `datacenter` in the provider block.") from None
        if self.settings.cluster_names:
            try:
                inventory.clusters(list(self.settings.cluster_names))
            except ClusterNotFound as exc:
                raise DiagnosticError("Invalid provider setting: cluster_names",
                                      f"{exc}\n\nFix `cluster_names` in the provider block.") from None

    @property
    def inventory(self) -> "Inventory":
        return self._core()[0]

    @property
    def selector(self) -> "DatastoreSelector":
        return self._core()[1]

    @property
    def ops(self) -> "VolumeOps":
        return self._core()[2]

    # -- cached reads ------------------------------------------------------------------------------
    def all_backings(self) -> dict[str, "Backing"]:
        """Every volume backing of ours, keyed by id: one PropertyCollector call per process and write."""
        ops = self.ops
        with self._lock:
            if self._backings is None:
                self._backings = ops.list_backings()
            return self._backings

    def get(self, volume_id: str) -> "Backing | None":
        found = self.all_backings().get(volume_id)
        if found is None:  # created by another process after our snapshot: ask for it alone
            found = self.ops.find_backing(volume_id)
        return found

    def datastore_free(self, name: str | None) -> int | None:
        """Free bytes of a datastore, from one inventory read per process and write."""
        if name is None:
            return None
        inventory = self.inventory
        with self._lock:
            if self._datastores is None:
                self._datastores = {d.name: d.free_space for d in inventory.datastores()}
            return self._datastores.get(name)

    def invalidate(self) -> None:
        with self._lock:
            self._backings = None
            self._datastores = None
            self._generation += 1

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around every write: whatever happens, later reads go back to vSphere."""
        try:
            yield
        finally:
            self.invalidate()


def backend_of(provider_data: Any) -> VolumeBackend:
    """The backend from ConfigureProvider's result; a clear error when the provider is not configured."""
    if not isinstance(provider_data, VSphereClient):
        raise DiagnosticError(
            "Provider not configured",
            "The vmdk provider has no usable vSphere settings (see the provider block's errors above, or "
            "settings that are not known until apply).",
        )
    return provider_data.cached("volume-backend", lambda: VolumeBackend(provider_data))


def driver_errors(action: str, fn: Callable[[], T], path: str | None = None) -> T:
    """Run a vSphere operation; our driver exceptions become diagnostics whose text says what to do."""
    from ..vsphere.exceptions import VMwareDriverError

    from pyVmomi import vmodl

    try:
        return fn()
    except VMwareDriverError as exc:
        raise DiagnosticError(f"Cannot {action}", str(exc), path) from None
    except vmodl.MethodFault as exc:  # a vSphere fault our core passed through unchanged
        message = getattr(exc, "msg", None) or getattr(exc, "localizedMessage", None) or type(exc).__name__
        raise DiagnosticError(f"Cannot {action}", f"vSphere refused the request: {type(exc).__name__}: {message}",
                              path) from None


class DeadlineExceeded(DiagnosticError):
    """The timeouts block ran out while vSphere was still working."""


def with_deadline(seconds: float, what: str, fn: Callable[[], T], on_late: Callable[[T], None] | None = None) -> T:
    """Run ``fn`` but give up waiting after ``seconds`` (the timeouts block).

    vSphere tasks cannot be abandoned half way safely, so the work goes on in the background; when it
    finishes late, ``on_late`` gets its result (to undo a create the user no longer waits for).
    """
    box: dict[str, Any] = {}
    done = threading.Event()
    lock = threading.Lock()

    def runner() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc
        with lock:
            done.set()
            late = box.get("late", False)
        if late and "result" in box and on_late is not None:
            try:
                on_late(box["result"])
            except Exception:  # noqa: BLE001
                LOG.exception("could not undo the late result of %s", what)

    thread = threading.Thread(target=runner, name=f"vmdk-{what}", daemon=True)
    thread.start()
    if not done.wait(seconds):
        with lock:
            if not done.is_set():
                box["late"] = True
                raise DeadlineExceeded(
                    f"Timed out: {what}",
                    f"{what} did not finish within {seconds:g} s (the timeouts block). vSphere may still finish "
                    "it; a late result is undone if the provider is still running. Raise the timeout for big "
                    "volumes.",
                )
    if "error" in box:
        raise box["error"]
    return box["result"]
