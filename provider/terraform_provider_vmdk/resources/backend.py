"""The resources' view of vSphere: the core objects wired from provider settings, the batched index of
backings, and how an apply's vSphere work is run (bounded, cancellable, its faults made diagnostics).

Terraform refreshes every resource with its own ReadResource call. Reading each backing on its own would
cost O(N) SOAP round trips; instead the first read in a process loads *every* VM with one PropertyCollector
call (the index) and later reads are served from it — while one thread loads it the others wait for that
same read, nobody holds a lock across it. Writes keep the index true by recording what they made or
removed (never by throwing it away), so in-use checks and lookups stay O(1) per volume during an apply.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ..framework.diagnostics import DiagnosticError
from .client import VSphereClient

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.connection.once import Fresh, Once
    from ..vsphere.placement.datastore import DatastoreSelector
    from ..vsphere.placement.inventory import DatastoreInfo, Inventory
    from ..vsphere.volumes.backing import Backing
    from ..vsphere.volumes.lookup import BackingIndex, Choice
    from ..vsphere.volumes.volumeops import VolumeOps

__all__ = ["VolumeBackend", "backend_of", "driver_errors", "run_bounded", "settle_pending", "still_running", "GiB"]

T = TypeVar("T")
LOG = logging.getLogger("terraform_provider_vmdk.resources")
GiB = 1024**3
CANCEL_GRACE = 2.0  # seconds an interrupted apply waits for its worker to cancel the vSphere task
INDEX_TTL = 20.0  # seconds a batched read serves lookups in a long-lived (debug) process
_WAIT_SLICE = 0.1


# Seconds a read of the datastores and hosts serves placement (a provider process lives for one Terraform
# command; what this process itself places meanwhile is counted by the selector's reservations).
PLACEMENT_TTL = 10.0


class VolumeBackend:
    def __init__(self, client: VSphereClient) -> None:
        from ..vsphere.connection.once import Fresh, Once

        self.client = client
        self.settings = client.settings
        self._core: Once[tuple[Inventory, DatastoreSelector, VolumeOps]] = Once(self._build)
        self._index: Fresh[BackingIndex] = Fresh(self._load_index, INDEX_TTL)
        self._datastores: Once[dict[str, DatastoreInfo]] = Once(self._load_datastores)
        self._index_lock = threading.Lock()  # guards index edits (in memory only)

    def _build(self) -> tuple[Inventory, DatastoreSelector, VolumeOps]:
        from ..vsphere.placement.datastore import DatastoreSelector
        from ..vsphere.placement.inventory import Inventory
        from ..vsphere.volumes.drivers import volume_ops

        session = self.client.session()
        inventory = Inventory(session, self.settings.datacenter, placement_ttl=PLACEMENT_TTL)
        self._check_settings(inventory)
        selector = DatastoreSelector(
            session, inventory, name_regex=self.settings.datastore_regex,
            cluster_names=list(self.settings.cluster_names) or None,
            allowed_types=self.settings.datastore_types,
        )
        return inventory, selector, volume_ops(session, inventory, volume_folder=self.settings.volume_folder)

    def _check_settings(self, inventory: Inventory) -> None:
        """Settings only vSphere can judge (datacenter, clusters): an error that names the provider setting."""
        from ..vsphere.exceptions import ClusterNotFound, DatacenterNotFound

        try:
            inventory.datacenter  # noqa: B018 - resolves it
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
    def inventory(self) -> Inventory:
        return self._core.get()[0]

    @property
    def selector(self) -> DatastoreSelector:
        return self._core.get()[1]

    @property
    def ops(self) -> VolumeOps:
        return self._core.get()[2]

    # -- the index -----------------------------------------------------------------------------------
    def _load_index(self) -> BackingIndex:
        return self.ops.load_index()

    def index(self) -> BackingIndex:
        """The batched read of every VM (one per process, renewed after INDEX_TTL)."""
        return self._index.get()

    def fresh_index(self) -> BackingIndex:
        """Every VM read now, for a decision that destroys or changes data (who holds a volume's files may have
        changed since the batched read: a VM snapshotted, a disk attached); the lookups after it use it too."""
        index = self.ops.load_index()
        self._index.set(index)
        return index

    def decide_on(self, volume_id: str) -> tuple[Choice, BackingIndex]:
        """The volume's backings and everything that holds their files, from one read made now."""
        from ..vsphere.volumes.lookup import choose

        index = self.fresh_index()
        choice = index.choice(volume_id)
        if choice.primary is None and volume_id in index.foreign:
            choice = choose(index.foreign[volume_id])
        return choice, index

    def choice(self, volume_id: str, *, fresh: bool = False) -> Choice:
        """The VMs carrying ``volume_id`` and which of them is the volume. ``fresh``: re-read each (writes)."""
        from ..vsphere.volumes.lookup import choose

        index = self.index()
        records = list(index.volumes.get(volume_id) or index.foreign.get(volume_id) or [])
        if fresh:
            records = [r for r in (self._reread(r) for r in records) if r is not None]
        if not records:  # made by another process after our read, or an id our read did not see
            found = self.ops.find_backing(volume_id)
            if found is not None:
                self.remember(found)
                records = [found]
        return choose(records)

    def _reread(self, record: Backing) -> Backing | None:
        from ..vsphere.volumes.base import is_gone

        try:
            return self.ops.refresh(record)
        except Exception as error:
            if is_gone(error):
                self.forget(record)
                return None
            raise

    def get(self, volume_id: str | None) -> Backing | None:
        """The volume's backing as the index saw it (reads)."""
        if not volume_id:
            return None
        return self.choice(volume_id).primary

    def users_of(self, backing: Backing) -> list[str]:
        """Other VMs whose disk chains hold the volume's files (from the batched index: for plans and reads;
        a decision that destroys or changes data reads again, see ``decide_on``)."""
        return self.index().users_of(backing)

    def children_of(self, backing: Backing) -> list[str]:
        """Linked clones (ours) whose disks build on the volume's disk."""
        return self.index().children_of(backing)

    def remember(self, backing: Backing) -> None:
        index = self._index.current()
        if index is not None:
            with self._index_lock:
                index.put(backing)

    def forget(self, backing: Backing) -> None:
        index = self._index.current()
        if index is not None:
            with self._index_lock:
                index.drop(backing.moref_value)

    def all_backings(self) -> dict[str, Backing]:
        """Every volume of ours by id (its chosen backing)."""
        index = self.index()
        return {vid: primary for vid in list(index.volumes) if (primary := index.primary(vid)) is not None}

    def policy_name(self, profile_id: str | None) -> str | None:
        """The storage policy name of a PBM profile id (one PBM listing per process); the id itself when
        vCenter has no policy by that id any more."""
        if not profile_id:
            return None

        def load() -> dict[str, str]:
            from ..vsphere.placement import pbm

            return {p.profileId.uniqueId: p.name for p in pbm.list_profiles(self.ops.session)}

        names: dict[str, str] = self.client.cached("pbm-profile-names", load)
        return names.get(profile_id, profile_id)

    # -- datastores ----------------------------------------------------------------------------------
    def _load_datastores(self) -> dict[str, DatastoreInfo]:
        return {d.name: d for d in self.inventory.datastores()}

    def datastore_free(self, name: str | None) -> int | None:
        """Free bytes of a datastore, from one inventory read per process."""
        info = None if name is None else self._datastores.get().get(name)
        return None if info is None else info.free_space

    def pod_of(self, datastore: str | None) -> str | None:
        """The datastore cluster a datastore (name) is a member of, from the same read."""
        info = None if datastore is None else self._datastores.get().get(datastore)
        return None if info is None else info.pod

    def invalidate(self) -> None:
        self._index.reset()
        self._datastores.reset()


def backend_of(provider_data: Any) -> VolumeBackend:
    """The backend from ConfigureProvider's result; a clear error when the provider is not configured."""
    if not isinstance(provider_data, VSphereClient):
        raise DiagnosticError(
            "Provider not configured",
            "The vmdk provider has no usable vSphere settings (see the provider block's errors above, or "
            "settings that are not known until apply).",
        )
    return provider_data.cached("volume-backend", lambda: VolumeBackend(provider_data))


# ---------------------------------------------------------------------------------------------- faults
def _describe_fault(fault: Any) -> str:
    message = getattr(fault, "msg", None) or getattr(fault, "localizedMessage", None) or ""
    return f"{type(fault).__name__}: {message}".rstrip(": ")


def driver_errors(action: str, fn: Callable[[], T], path: str | None = None) -> T:
    """Run a vSphere operation; whatever goes wrong becomes a diagnostic that says what to do."""
    import http.client

    from pyVmomi import vmodl

    from ..vsphere import exceptions as vexc

    try:
        return fn()
    except vexc.Cancelled:
        raise DiagnosticError(f"Cancelled: {action}", f"The provider was asked to stop while it was trying to "
                              f"{action}. The state records what vSphere holds; run terraform apply again to "
                              "finish.", path) from None
    except vexc.OperationTimedOut:
        raise DiagnosticError(f"Timed out: {action}", f"Could not {action} within the time the resource's "
                              "timeouts block allows. vSphere may still finish the work; the next refresh sees "
                              "what it did. Raise the timeout for big volumes.", path) from None
    except vexc.OutcomeUnknown as exc:
        raise DiagnosticError(f"Cannot {action}", f"vSphere did not answer ({exc.message}), and what it did could "
                              "not be established. Run terraform apply again: the provider looks the object up "
                              "before doing anything.", path) from None
    except vexc.VMwareDriverError as exc:
        raise DiagnosticError(f"Cannot {action}", str(exc), path) from None
    except vmodl.MethodFault as exc:  # a vSphere fault the core passed through unchanged
        raise DiagnosticError(f"Cannot {action}", f"vSphere refused the request: {_describe_fault(exc)}",
                              path) from None
    except (OSError, http.client.HTTPException) as exc:
        raise DiagnosticError(f"Cannot {action}", f"The connection to vSphere failed ({type(exc).__name__}) and "
                              "retries did not help. Run terraform apply again.", path) from None


# ---------------------------------------------------------------------------------------------- running
def run_bounded(what: str, seconds: float | None, stop: threading.Event, fn: Callable[[], T],
                private: dict[str, Any] | None = None) -> T:
    """Run ``fn`` (an apply's vSphere work) within ``seconds`` (the timeouts block) and until StopProvider.

    The work runs in a worker thread under a budget that every wait inside it honours; when time runs out or
    Terraform asks to stop, the worker, seeing the same budget, cancels its vSphere task at its next wait,
    and this returns Cancelled / timed-out diagnostics as soon as it has done so (CANCEL_GRACE at most: the
    provider process ends soon after). The tasks the work started are recorded in ``private`` as
    ``pending_tasks``: a task vSphere could not cancel may still make its object, and the next refresh or
    delete waits for it (``settle_pending``) instead of losing that object. Whatever was created has its id
    in the partial state the caller returns."""
    from ..vsphere import exceptions as vexc
    from ..vsphere.connection import budget

    allowance = budget.Budget.within(seconds, stop, what)
    box: dict[str, Any] = {}
    done = threading.Event()

    def runner() -> None:
        try:
            with budget.scoped(allowance):
                box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=runner, name=f"vmdk-{what[:40]}", daemon=True).start()
    while not done.wait(allowance.bound(_WAIT_SLICE) or 0.0):
        if allowance.cancelled() or allowance.expired():
            done.wait(CANCEL_GRACE)  # the worker cancels its task at its next wait
            if private is not None and allowance.started:
                private["pending_tasks"] = list(allowance.started)
            error = vexc.Cancelled(what) if allowance.cancelled() else vexc.OperationTimedOut(what)
            return driver_errors(what, functools.partial(_raise, error))
    if "error" in box:
        error = box["error"]
        if isinstance(error, (vexc.Cancelled, vexc.OperationTimedOut)):
            if private is not None and allowance.started:
                private["pending_tasks"] = list(allowance.started)
            return driver_errors(what, lambda: _raise(error))
        raise error
    result: T = box["result"]
    return result


def settle_pending(backend: VolumeBackend, private: dict[str, Any], timeout: float | None) -> None:
    """Cancel and wait out the tasks an interrupted apply left running (``pending_tasks``), so the object such
    a task makes is seen now rather than appearing after the lookup that decided it did not exist."""
    pending = private.pop("pending_tasks", None)
    if pending:
        from ..vsphere.connection import tasks

        tasks.stop_and_wait(backend.ops.session, list(pending), timeout)


def still_running(backend: VolumeBackend, private: dict[str, Any]) -> list[str]:
    """Of the tasks an interrupted apply left (``pending_tasks``), those still running (read: keep the state)."""
    pending = private.get("pending_tasks")
    if not pending:
        return []
    from ..vsphere.connection import tasks

    return [t._GetMoId() for t in tasks.running(backend.ops.session, list(pending))]


def _raise(error: BaseException) -> NoReturn:
    raise error
