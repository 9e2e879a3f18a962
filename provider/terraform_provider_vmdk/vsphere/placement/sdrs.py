"""Storage DRS: asking a datastore cluster (StoragePod) where a new shadow VM goes, and applying the answer.

vCenter's two calls (``StorageResourceManager``): ``RecommendDatastores`` ranks member datastores for a create
described by a ``StoragePlacementSpec`` (one ``PodDiskLocator`` per new disk, the datastore fields left unset so
that SDRS chooses), and ``ApplyStorageDrsRecommendation_Task`` runs the create itself, its result naming the
new VM. Initial placement is always the caller's to apply, in manual and automated pods alike.

Servers that do not implement Apply (govmomi's simulator answers MethodNotFound) get the create on the
recommended member instead, as govc and terraform-provider-vsphere's vApp path do: ``ApplyNotImplemented``.
Recommend and apply are serialised per datastore cluster within this process (``pod_lock``), so that parallel
creates each see the space the others took (terraform-provider-vsphere #1323, #2448).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim, vmodl

from .. import exceptions as exc

__all__ = [
    "Recommendation", "Recommendations", "ApplyNotImplemented", "KeyRefused", "recommend", "cancel", "pod_lock",
    "create_placement_spec", "relocate_placement_spec", "clone_placement_spec", "apply_start", "apply_refusal",
    "new_vm", "LEASE_SECONDS",
]

#: How long vCenter holds the resources of an initial placement recommendation for us (the apply follows it).
LEASE_SECONDS = 120

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def pod_lock(pod_key: str) -> threading.Lock:
    """The lock that serialises recommend + apply for one datastore cluster in this process."""
    with _locks_guard:
        return _locks.setdefault(pod_key, threading.Lock())


class ApplyNotImplemented(exc.VMwareDriverError):
    """The server has no ApplyStorageDrsRecommendation_Task (MethodNotFound): create on the member instead."""


class KeyRefused(exc.VMwareDriverError):
    """vCenter refused the recommendation's key (expired, or applied already): recommend again."""


@dataclass(frozen=True)
class Recommendation:
    key: str
    destination: Any  # vim.Datastore
    destination_key: str  # its moref value
    rating: int


@dataclass(frozen=True)
class Recommendations:
    items: tuple[Recommendation, ...]
    fault: str | None = None  # why SDRS could place nothing (drsFault), in vCenter's words
    keys: tuple[str, ...] = ()  # every recommendation's key (to cancel those not applied)

    def others(self, key: str | None) -> tuple[str, ...]:
        return tuple(k for k in self.keys if k != key)


def _fault_text(result: Any) -> str | None:
    drs = getattr(result, "drsFault", None)
    texts = []
    for by_vm in getattr(drs, "faultsByVm", None) or ():
        for fault in getattr(by_vm, "fault", None) or ():
            texts.append(getattr(fault, "msg", None) or type(fault).__name__)
    reason = getattr(drs, "reason", None)
    if reason and not texts:
        texts.append(str(reason))
    return "; ".join(dict.fromkeys(texts)) or None


def create_placement_spec(pod: Any, config: vim.vm.ConfigSpec, folder: Any, pool: Any, host: Any = None
                          ) -> vim.storageDrs.StoragePlacementSpec:
    """A ``type=create`` request: the config without any datastore (files and disk backings unset), one disk
    locator per new disk (``diskId`` = the device key in ``deviceChange``), the lease for the apply."""
    locators = []
    for change in config.deviceChange or ():
        device = change.device
        if isinstance(device, vim.vm.device.VirtualDisk) and change.fileOperation == "create":
            locators.append(vim.storageDrs.PodSelectionSpec.DiskLocator(diskId=device.key,
                                                                        diskBackingInfo=device.backing))
    selection = vim.storageDrs.PodSelectionSpec(
        storagePod=pod, initialVmConfig=[vim.storageDrs.PodSelectionSpec.VmPodConfig(storagePod=pod, disk=locators)])
    spec = vim.storageDrs.StoragePlacementSpec(type="create", podSelectionSpec=selection, configSpec=config,
                                               folder=folder, resourcePool=pool, resourceLeaseDurationSec=LEASE_SECONDS)
    if host is not None:
        spec.host = host
    return spec


def relocate_placement_spec(pod: Any, vm: Any, disk_key: int | None, pool: Any, host: Any = None,
                            profile: Any = None) -> vim.storageDrs.StoragePlacementSpec:
    """A ``type=relocate`` request for a shadow VM: its pool (and host), no datastore, a disk locator for its disk
    so that SDRS places the disk with the VM's files (terraform-provider-vsphere needed its PR #1546 for this);
    ``profile`` (storage profile specs): the policy the destination must comply with, on the disk and the VM."""
    locator = vim.storageDrs.PodSelectionSpec.DiskLocator(diskId=disk_key) if disk_key is not None else None
    if locator is not None and profile:
        locator.profile = profile
    selection = vim.storageDrs.PodSelectionSpec(
        storagePod=pod, initialVmConfig=[vim.storageDrs.PodSelectionSpec.VmPodConfig(
            storagePod=pod, disk=[locator] if locator is not None else [])])
    relocate = vim.vm.RelocateSpec(pool=pool)
    if host is not None:
        relocate.host = host
    if profile:
        relocate.profile = profile
    return vim.storageDrs.StoragePlacementSpec(type="relocate", vm=vm, relocateSpec=relocate,
                                               podSelectionSpec=selection, priority="defaultPriority",
                                               resourceLeaseDurationSec=LEASE_SECONDS)


def clone_placement_spec(pod: Any, vm: Any, disk_key: int | None, folder: Any, name: str, pool: Any
                         ) -> vim.storageDrs.StoragePlacementSpec:
    """A ``type=clone`` request for a volume's shadow VM: the clone's name and folder, its pool, no datastore,
    the source disk's locator (without one vCenter has nothing to place: terraform-provider-vsphere #724)."""
    locators = [vim.storageDrs.PodSelectionSpec.DiskLocator(diskId=disk_key)] if disk_key is not None else []
    selection = vim.storageDrs.PodSelectionSpec(
        storagePod=pod, initialVmConfig=[vim.storageDrs.PodSelectionSpec.VmPodConfig(storagePod=pod, disk=locators)])
    clone = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=pool), powerOn=False, template=False)
    return vim.storageDrs.StoragePlacementSpec(type="clone", vm=vm, cloneSpec=clone, cloneName=name, folder=folder,
                                               podSelectionSpec=selection, resourceLeaseDurationSec=LEASE_SECONDS)


def cancel(session: Any, keys: Any) -> None:
    """Give back the recommendations we do not apply: each holds space for its lease (resourceLeaseDurationSec),
    which parallel creates would otherwise see as taken. Servers without the method hold no lease; a key vCenter
    no longer knows (applied, expired) needs nothing."""
    manager = session.content.storageResourceManager
    for key in keys:
        try:
            session.send(lambda key=key: manager.CancelStorageDrsRecommendation(key=[key]),
                         what="CancelStorageDrsRecommendation", idempotent=True)
        except vmodl.fault.MethodNotFound:
            return
        except vmodl.fault.InvalidArgument:
            continue


def recommend(session: Any, spec: vim.storageDrs.StoragePlacementSpec) -> Recommendations:
    """RecommendDatastores: the recommendations in SDRS's order, each with its destination datastore."""
    manager = session.content.storageResourceManager
    try:
        result = session.send(lambda: manager.RecommendDatastores(storageSpec=spec), what="RecommendDatastores",
                              idempotent=True)
    except vmodl.fault.InvalidArgument as error:
        prop = getattr(error, "invalidProperty", None) or "the request"
        raise exc.VMwareDriverError(f"Storage DRS refused the placement request ({prop}): the datastore cluster "
                                    "may have Storage DRS disabled or no member datastores") from None
    items = []
    keys = tuple(rec.key for rec in getattr(result, "recommendations", None) or ())
    for rec in getattr(result, "recommendations", None) or ():
        for action in rec.action or ():
            destination = getattr(action, "destination", None)
            if isinstance(destination, vim.Datastore):
                items.append(Recommendation(key=rec.key, destination=destination,
                                            destination_key=destination._GetMoId(), rating=int(rec.rating or 0)))
                break
    return Recommendations(tuple(items), _fault_text(result), keys)


def apply_start(session: Any, key: str) -> Any:
    """The raw ApplyStorageDrsRecommendation_Task call for one key (for ``reconcile.create_once``): its task's
    result (``ApplyStorageRecommendationResult``) names the new VM."""
    manager = session.content.storageResourceManager
    return lambda: manager.ApplyStorageDrsRecommendation_Task(key=[key])


def apply_refusal(error: BaseException) -> exc.VMwareDriverError | None:
    """What a failed apply means: ApplyNotImplemented (MethodNotFound), KeyRefused (InvalidArgument, at the
    call or as the task's fault), or None (anything else: the caller's error handling)."""
    fault = error if isinstance(error, vmodl.MethodFault) else getattr(error, "fault", None)
    if isinstance(fault, vmodl.fault.MethodNotFound):
        return ApplyNotImplemented("the server does not implement ApplyStorageDrsRecommendation_Task")
    if isinstance(fault, vmodl.fault.InvalidArgument):
        return KeyRefused("vCenter refused the Storage DRS recommendation's key (expired or applied already)")
    return None


def new_vm(result: Any) -> Any:
    """The VM an apply made (``ApplyStorageRecommendationResult.vm``), or ``result`` when it is the VM itself
    (found by identity after a lost answer)."""
    return getattr(result, "vm", None) if isinstance(result, vim.storageDrs.ApplyRecommendationResult) else result
