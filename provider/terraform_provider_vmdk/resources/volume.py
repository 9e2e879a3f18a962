"""Resource ``vmdk_volume``: a VMDK in a never-powered-on shadow VM, managed as Cinder manages volumes.

What to do with a volume is decided by the policy (``volume_policy``): plan asks it with the facts the
last refresh kept in private state and writes its decision into the planned private state; apply carries
the decision out with fresh facts. This module wires that into Terraform's lifecycle and keeps its rules:

* identity first: a create fixes the volume id before vSphere is asked and puts it in the partial state,
  so a failed, cancelled or timed-out create is still in the state (tainted) and nothing leaks;
* truthful results: the state apply returns is what vSphere holds; where it differs from the plan, apply
  says so in an error on that attribute (never Terraform's "inconsistent result");
* any state a failed apply or an older version left (no id, unknown values) is read, planned and destroyed.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn

from ..framework.diagnostics import DiagnosticError, Diagnostics
from ..framework.resource import ApplyRequest, PlanRequest, ReadRequest, RequestContext, Resource
from ..framework.schema import Schema, schema
from ..framework.timeouts import timeout_seconds, timeouts_block
from ..framework.unknowns import UNKNOWN, is_unknown
from . import volume_sources
from .backend import VolumeBackend, backend_of, driver_errors, run_bounded, settle_pending, still_running
from .client import VSphereClient
from .volume_plan import plan_update
from .volume_policy import (
    EXTEND_IN_PLACE,
    EXTEND_MAY_MOVE,
    Executor,
    Facts,
    GiB,
    refuse_in_use,
    refuse_parent,
    sdrs_pod,
)
from .volume_provenance import plan_provenance
from .volume_schema import VOLUME_ATTRIBUTES, volume_state_from_backing
from .volume_sources import SOURCE_BLOCKS, validate_sources

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.volumes.backing import Backing

__all__ = ["VolumeResource", "volume_state_from_backing", "VOLUME_ATTRIBUTES", "volume_id_of"]

LOG = logging.getLogger("terraform_provider_vmdk.resources")
DEFAULT_TIMEOUTS = {"create": "30m", "update": "30m", "delete": "10m"}
_DEFAULT_SECONDS = {"create": 1800.0, "update": 1800.0, "delete": 600.0}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _known(v: Any) -> bool:
    return v is not None and not is_unknown(v)


def volume_id_of(state: dict[str, Any] | None) -> str | None:
    """The volume id a state names: its ``id``, else the one in ``backing_name`` (a state a failed apply of
    an older version left without an id); None when it names none."""
    state = state or {}
    vid = state.get("id")
    if _known(vid) and isinstance(vid, str) and _UUID.match(vid):
        return vid
    name = state.get("backing_name")
    if _known(name) and isinstance(name, str) and name.startswith("volume-") and _UUID.match(name[7:43]):
        return name[7:43]
    return None


class VolumeResource(Resource):
    type_name = "vmdk_volume"

    def schema(self) -> Schema:
        return schema(
            VOLUME_ATTRIBUTES,
            blocks={"timeouts": timeouts_block("create", "update", "delete", defaults=DEFAULT_TIMEOUTS),
                    **SOURCE_BLOCKS},
            description="A VMDK volume: one virtual disk in a never-powered-on shadow VM, placed, cloned, "
            "extended and retyped the way OpenStack Cinder's VMware VMDK driver does it.",
        )

    # -- validation and plan -------------------------------------------------------------------------
    def validate_config(self, config: dict[str, Any], diags: Diagnostics) -> None:
        validate_sources(config, diags)
        if _known(config.get("datastore")) and _known(config.get("datastore_cluster")):
            diags.error("Conflicting placement", "Set either datastore (one datastore) or datastore_cluster (Storage "
                        "DRS, or the cluster's members, choose one), not both. datastore reports the member that "
                        "holds a volume in a datastore cluster.", "datastore_cluster")

    def modify_plan(self, req: PlanRequest) -> None:
        prior = req.prior
        if req.plan is not None:
            self._plan_on_a_host(req)
        if prior is None:
            if req.plan is not None:
                pod = self._wanted_pod(req.config or {})
                if pod is not None:
                    req.plan["datastore_cluster"] = pod
                    self._plan_pod(req, pod)
            return  # a create
        if req.plan is None:  # a destroy (Terraform 1.3 and newer ask)
            _plan_protected(req, prior, "destroys")
            return
        plan_provenance(req)
        facts = Facts.from_private(req.private.get("facts"))
        if facts is not None and facts.disk_missing:
            req.requires_replace.add("vmdk_path")
            req.plan["vmdk_path"] = UNKNOWN
            req.diagnostics.warning("The volume's disk is gone", "Its VMDK no longer exists (destroyed with a VM it "
                                    "was attached to): the volume is replaced by a new, empty one.", "vmdk_path")
        if req.requires_replace:
            _plan_protected(req, prior, "replaces", ", ".join(sorted(req.requires_replace)))
            return  # the replacement is planned as a create
        pod = self._wanted_pod(req.config or {})
        if pod is not None and not _known((req.config or {}).get("datastore_cluster")):
            # the provider's default holds like the volume's own setting (a change the plan shows, never silent)
            req.config = {**(req.config or {}), "datastore_cluster": pod}
        plan_update(req)
        if pod is not None and pod != prior.get("datastore_cluster") and not req.diagnostics.has_errors:
            self._plan_pod(req, pod, moving=True)
        facts = Facts.from_private(req.private.get("facts"))
        if facts is not None and facts.copies:
            req.diagnostics.warning(
                "Copies of this volume made outside Terraform",
                f"VM(s) {', '.join(facts.copies)} carry this volume's marks (a clone made in vCenter, or a backup "
                "product's restore as a new VM) but are not this volume: the provider never changes or destroys "
                "them. `terraform-provider-vmdk orphans` lists them; remove them in vCenter if they are not needed.")

    def _plan_on_a_host(self, req: PlanRequest) -> None:
        """A standalone ESXi host (Cinder's ESX driver): what it cannot do is an error at plan, what it ignores a
        warning. Asked only when it matters (a storage policy, a volume folder), so plans stay offline."""
        from ..vsphere.placement.pbm import NO_POLICIES

        plan, client = req.plan or {}, getattr(self, "provider_data", None)  # unset before configure
        if not isinstance(client, VSphereClient):
            return
        policy = plan.get("storage_policy")
        folder = client.settings.volume_folder_set and req.prior is None
        if not ((_known(policy) and policy) or folder):
            return
        try:
            on_host = backend_of(client).ops.host_agent
        except Exception:  # noqa: BLE001 - not connected: apply reports what fails
            return
        if not on_host:
            return
        if _known(policy) and policy:
            req.diagnostics.error("No storage policies on an ESXi host", NO_POLICIES, "storage_policy")
        if folder:
            req.diagnostics.warning(
                "volume_folder is not used on a standalone ESXi host",
                "An ESXi host has no folders below its VM folder: the shadow VMs go into the VM folder itself.")

    def _wanted_pod(self, config: dict[str, Any]) -> str | None:
        """The datastore cluster a new volume goes into: its own, else (when it names no datastore) the
        provider's default."""
        pod = config.get("datastore_cluster")
        if _known(pod) and pod:
            return str(pod)
        if config.get("datastore") is not None:
            return None
        client = getattr(self, "provider_data", None)
        return client.settings.datastore_cluster if isinstance(client, VSphereClient) else None

    def _pod_mode(self, plan: dict[str, Any]) -> str:
        mode = plan.get("datastore_cluster_mode")
        if _known(mode) and mode:
            return str(mode)
        client = getattr(self, "provider_data", None)
        return client.settings.datastore_cluster_mode if isinstance(client, VSphereClient) else "sdrs"

    def _plan_pod(self, req: PlanRequest, pod: str, moving: bool = False) -> None:
        """Read-only checks of a volume's datastore cluster at plan time, each an error on datastore_cluster: it
        exists (on a vCenter), has Storage DRS enabled in sdrs mode, has members our rules accept, and room summed
        over them. Storage DRS itself is asked only at apply (its answer may change, and it reserves space)."""
        from ..vsphere.placement.datastore import Requirements

        plan, client = req.plan or {}, getattr(self, "provider_data", None)
        if not isinstance(client, VSphereClient):
            return
        size = plan.get("size_gb")
        policy = plan.get("storage_policy")
        try:
            backend = backend_of(client)
            on_host = backend.ops.host_agent
            found = None if on_host else backend.inventory.pod(pod)
            names = [] if on_host else [p.name for p in backend.inventory.pods()]
        except Exception:  # noqa: BLE001 - not connected: apply reports what fails
            return
        if on_host:
            req.diagnostics.error("No datastore clusters on an ESXi host", "Datastore clusters (Storage DRS) are a "
                                  "vCenter feature; a standalone ESXi host has none. Name a datastore instead.",
                                  "datastore_cluster")
            return
        if found is None:
            req.diagnostics.error("Datastore cluster not found", f"No datastore cluster {pod!r} in datacenter "
                                  f"{backend.inventory.datacenter_name} (datastore clusters: "
                                  f"{', '.join(names) or 'none'}).", "datastore_cluster")
            return
        mode = self._pod_mode(plan)
        if mode == "sdrs" and not found.sdrs_enabled:
            req.diagnostics.error("Storage DRS is disabled", f"Datastore cluster {pod!r} has Storage DRS disabled, so "
                                  "it makes no placement recommendations. Enable it in vCenter, or set "
                                  "datastore_cluster_mode = \"members\" to place on its members by the provider's "
                                  "own rules.", "datastore_cluster")
            return
        try:
            choice = backend.selector.in_pod(Requirements(size_bytes=0, profile_name=policy if _known(policy) else None,
                                                          pod=found.name))
        except DiagnosticError:
            raise
        except Exception as error:  # noqa: BLE001 - NoValidDatastore and the like: say why, on the attribute
            req.diagnostics.error("No usable datastore in the datastore cluster", _message(error), "datastore_cluster")
            return
        free = sum(ev.datastore.free_space for ev in choice.ranked)
        if isinstance(size, (int, float)) and free < int(size) * GiB:
            req.diagnostics.error(
                "Not enough room in the datastore cluster",
                f"The members of datastore cluster {pod!r} that the placement rules accept "
                f"({', '.join(ev.datastore.name for ev in choice.ranked)}) have {free / GiB:.1f} GiB free together; "
                f"the volume needs {size} GiB.", "datastore_cluster")
            return
        if moving:
            req.diagnostics.warning(
                "Volume will be relocated into the datastore cluster",
                f"The volume is on datastore {(req.prior or {}).get('datastore')}, which is not a member of datastore "
                f"cluster {pod!r}: apply moves it to a member, copying {(req.prior or {}).get('size_gb')} GiB.",
                "datastore_cluster")

    # -- create ----------------------------------------------------------------------------------------
    def create(self, req: ApplyRequest) -> dict[str, Any]:
        backend = backend_of(self.provider_data)
        plan = req.plan or {}
        volume_id = str(uuid.uuid4())
        # The identity is fixed before vSphere is asked: from here on a failure still saves this id.
        limit = timeout_seconds(plan, "create", _DEFAULT_SECONDS["create"])
        backing = run_bounded("create the volume", limit, req.stop, lambda: self._create(req, backend, volume_id),
                              req.private)
        return self._result(req, backend, backing, created=True)

    def _create(self, req: ApplyRequest, backend: VolumeBackend, volume_id: str) -> Backing:
        plan = req.plan or {}
        size_bytes = int(plan["size_gb"]) * GiB
        if plan.get("adopt"):
            return self._adopt(req, backend, volume_id)
        prepared = volume_sources.prepare(plan)  # an image or backup: fetched and checked, nothing made yet
        try:
            return self._create_backing(req, backend, volume_id, size_bytes, prepared)
        finally:
            if prepared is not None:
                prepared[0].close()

    @staticmethod
    def _fix_identity(req: ApplyRequest, volume_id: str) -> None:
        """From here on vSphere may hold the volume: a failure still saves its id (Terraform taints it)."""
        req.partial = {**(req.plan or {}), "id": volume_id, "backing_name": f"volume-{volume_id}"}

    def _adopt(self, req: ApplyRequest, backend: VolumeBackend, volume_id: str) -> Backing:
        from ..vsphere.placement.datastore import Requirements

        plan = req.plan or {}
        facts = volume_sources.prepare_adoption(backend, plan)
        requirements = Requirements(size_bytes=0, profile_name=plan.get("storage_policy"),
                                    datastore=facts["datastore"])
        placement = driver_errors(f"place the volume on datastore {facts['datastore']}",
                                  lambda: backend.selector.select(requirements), "adopt.vmdk_path")
        self._fix_identity(req, volume_id)
        return volume_sources.adopt(backend, plan, volume_id, placement, facts)

    def _create_backing(self, req: ApplyRequest, backend: VolumeBackend, volume_id: str, size_bytes: int,
                        prepared: Any) -> Backing:
        plan = req.plan or {}
        pod = plan.get("datastore_cluster") if _known(plan.get("datastore_cluster")) else None
        plain = prepared is None and not (plan.get("source_volume_id") or plan.get("source_snapshot_id"))
        if pod and plain and self._pod_mode(plan) == "sdrs":
            return self._create_in_pod(req, backend, volume_id, size_bytes, pod)
        if pod and self._pod_mode(plan) == "sdrs":
            placement = self._pod_sdrs_placement(backend, plan, volume_id, size_bytes, pod, clone=prepared is None)
        else:
            placement = self._placement(backend, size_bytes, plan.get("storage_policy"), plan.get("datastore"), pod)
        self._fix_identity(req, volume_id)
        try:
            if prepared is not None:
                return volume_sources.create_from_source(backend, plan, volume_id, placement, prepared)
            if plan.get("source_volume_id") or plan.get("source_snapshot_id"):
                return self._clone(backend, plan, volume_id, placement, size_bytes)
            backing = driver_errors("create the volume", lambda: backend.ops.create_backing(
                volume_id, plan["name"], size_bytes, plan["disk_type"], plan["adapter_type"], placement,
                profile_id=placement.profile_id, description=plan.get("description")))
        finally:
            placement.release()
        backend.remember(backing)
        return backing

    def _create_in_pod(self, req: ApplyRequest, backend: VolumeBackend, volume_id: str, size_bytes: int,
                       pod: str) -> Backing:
        """Storage DRS recommends, the placement rules veto, the provider applies (vsphere: create_backing_in_pod)."""
        from ..vsphere.placement.datastore import Requirements

        plan = req.plan or {}
        policy = plan.get("storage_policy")
        found = driver_errors("find the datastore cluster", lambda: sdrs_pod(backend, pod), "datastore_cluster")
        choice = driver_errors("place the volume in datastore cluster " + pod, lambda: backend.selector.in_pod(
            Requirements(size_bytes=size_bytes, profile_name=policy, pod=found.name)), "datastore_cluster")
        self._fix_identity(req, volume_id)
        backing, how = driver_errors("create the volume in datastore cluster " + pod, lambda: (
            backend.ops.create_backing_in_pod(volume_id, plan["name"], size_bytes, plan["disk_type"],
                                              plan["adapter_type"], found, choice, backend.selector.reserve,
                                              description=plan.get("description"))), "datastore_cluster")
        LOG.info("volume %s: created in datastore cluster %s on %s (%s)", volume_id, pod, backing.datastore_name, how)
        backend.remember(backing)
        return backing

    def _pod_sdrs_placement(self, backend: VolumeBackend, plan: dict[str, Any], volume_id: str, size_bytes: int,
                            pod: str, *, clone: bool) -> Any:
        """Where a volume that is not an empty create goes in datastore cluster ``pod`` (sdrs mode): the member
        Storage DRS recommends (for a clone, ``type=clone`` of its source; for an image or a backup, ``type=create``)
        among those our rules accept, with the space counted until the volume is made. The volume is then made on
        that member by its own path (a clone's disk-type conversion and policy need the datastore named)."""
        from ..vsphere.placement.datastore import Requirements

        found = driver_errors("find the datastore cluster", lambda: sdrs_pod(backend, pod), "datastore_cluster")
        where = "place the volume in datastore cluster " + pod
        choice = driver_errors(where, lambda: backend.selector.in_pod(
            Requirements(size_bytes=size_bytes, profile_name=plan.get("storage_policy"), pod=found.name)),
            "datastore_cluster")
        if clone:
            source = self._source(backend, plan)
            key = driver_errors(where, lambda: backend.ops.recommend_clone_target(source, volume_id, found, choice),
                                "datastore_cluster")
        else:
            key = driver_errors(where, lambda: backend.ops.recommend_create_target(
                volume_id, size_bytes, plan["disk_type"], plan["adapter_type"], found, choice), "datastore_cluster")
        return replace(choice.placements[key], release=backend.selector.reserve(key, size_bytes))

    def _clone(self, backend: VolumeBackend, plan: dict[str, Any], volume_id: str, placement: Any,
               size_bytes: int) -> Backing:
        """Clone from the source; when the source's VM went away meanwhile (a retype by copy of the source in
        the same apply gives it a new VM), look the source up again and clone once more (the new volume's
        identity makes that safe)."""
        from ..vsphere.volumes.base import is_gone

        for attempt in (1, 2):
            source = self._source(backend, plan)
            try:
                pod = plan.get("datastore_cluster") if _known(plan.get("datastore_cluster")) else None
                return Executor(backend, pod).clone(
                    source, volume_id, name=plan["name"], description=plan.get("description"),
                    clone_type=plan["clone_type"], disk_type=plan["disk_type"], placement=placement,
                    size_bytes=size_bytes)
            except DiagnosticError:
                raise
            except Exception as error:  # noqa: BLE001 - mapped to a diagnostic below, or retried once
                if attempt == 1 and is_gone(error):
                    LOG.info("the source of volume %s changed its VM while being cloned; cloning again", volume_id)
                    continue
                driver_errors("clone the volume", functools.partial(_raise, error))
        raise AssertionError("unreachable")

    @staticmethod
    def _placement(backend: VolumeBackend, size_bytes: int, policy: str | None, datastore: Any,
                   pod: str | None = None) -> Any:
        from ..vsphere.placement.datastore import Requirements

        pinned = datastore if _known(datastore) else None
        requirements = Requirements(size_bytes=size_bytes, profile_name=policy, datastore=pinned, pod=pod)
        where = (f"place the volume on datastore {pinned}" if pinned else
                 f"place the volume in datastore cluster {pod}" if pod else "place the volume")
        return driver_errors(where, lambda: backend.selector.select(requirements, reserve=True),
                             "datastore" if pinned else "datastore_cluster" if pod else
                             ("storage_policy" if policy else None))

    @staticmethod
    def _source(backend: VolumeBackend, plan: dict[str, Any]) -> Any:
        if plan.get("source_volume_id"):
            source = driver_errors("find the source volume",
                                   lambda: backend.choice(plan["source_volume_id"], fresh=True).primary,
                                   "source_volume_id")
            if source is None:
                raise DiagnosticError("Source volume not found",
                                      f"No volume with id {plan['source_volume_id']} exists.", "source_volume_id")
            return source
        snapshot_id = plan["source_snapshot_id"]

        def find() -> Any:
            found = backend.ops.find_snapshot(None, snapshot_id=snapshot_id)
            if found is not None:
                return found
            # a COW snapshot lives in its volume's VM: the batched read, then (made since) one made now
            for index in (backend.index(), backend.fresh_index()):
                for records in list(index.volumes.values()):
                    for record in records:
                        for snap in record.snapshots if record.proven else ():
                            if snap.snapshot_id == snapshot_id:
                                return snap
            return None

        source = driver_errors("find the source snapshot", find, "source_snapshot_id")
        if source is None:
            raise DiagnosticError("Source snapshot not found", f"No snapshot with id {snapshot_id} exists.",
                                  "source_snapshot_id")
        return source

    # -- read ------------------------------------------------------------------------------------------
    def read(self, req: ReadRequest) -> dict[str, Any] | None:
        backend = backend_of(self.provider_data)
        volume_id = volume_id_of(req.state)
        if volume_id is None:
            return None  # a state that names no volume: nothing in vSphere can be it
        choice = driver_errors("read the volume", lambda: backend.choice(volume_id))
        running = driver_errors("read the volume", lambda: still_running(backend, req.private))
        if choice.primary is None:
            if choice.copies:
                req.diagnostics.warning(
                    "The volume's backing is gone",
                    f"No VM owns volume {volume_id} any more. VM(s) {', '.join(choice.outside())} carry its marks "
                    "but are copies made outside Terraform: they are not taken for the volume.")
            if running:  # an interrupted apply's create may still make it: keep the state until it ends
                req.diagnostics.warning(
                    "A change of this volume is still running in vSphere",
                    f"Task(s) {', '.join(running)} that an interrupted apply started have not ended; the volume "
                    "stays in the state until they do (the next apply waits for them).")
                return req.state
            return None
        backing = choice.primary
        pod = driver_errors("read the volume", lambda: backend.pod_of(backing.datastore_name))
        state = {**req.state, **volume_state_from_backing(backing, backend.inventory.datacenter_name, req.state, pod)}
        if state.get("storage_policy") is None and backing.profile_id:
            state["storage_policy"] = driver_errors("read the storage policy",
                                                    lambda: backend.policy_name(backing.profile_id))
        if not _known(state.get("clone_type")):
            state["clone_type"] = "full"
        for flag in ("deletion_protection", "keep_on_destroy"):  # a state from before they existed
            if state.get(flag) is None:
                state[flag] = False
        earlier = Facts.from_private(req.private.get("facts"))
        users = driver_errors("read the volume", lambda: backend.users_of(backing))
        facts = driver_errors("read the volume", lambda: Facts.of(
            backing, backend.datastore_free(backing.datastore_name), users, choice, backend.children_of(backing)))
        was_held = backing.attached_to or (earlier is not None and (earlier.in_use_by or earlier.disk_missing))
        if (was_held and not users
                and driver_errors("read the volume", lambda: backend.ops.disk_present(backing)) is False):
            # vSphere deletes every disk a VM holds with the VM: the VM this volume was attached to went with it
            facts = replace(facts, disk_missing=True)
            req.diagnostics.warning(
                "The volume's disk is gone",
                f"The VMDK of volume {volume_id} ({backing.vmdk_path}) no longer exists: it was attached to "
                f"{(', '.join(earlier.in_use_by) if earlier else '') or 'a VM'}, and destroying a VM destroys the "
                "disks it holds. The "
                "next apply replaces the volume with a new, empty one.")
        req.private.clear()
        req.private["facts"] = facts.to_private()
        if running:
            req.private["pending_tasks"] = running
        return state

    def import_state(self, import_id: str, ctx: RequestContext) -> dict[str, Any]:
        backend = backend_of(self.provider_data)
        wanted = import_id.strip()
        if not _UUID.match(wanted):
            raise DiagnosticError("Invalid import id", f"A vmdk_volume is imported by its id (a UUID, the shadow VM's "
                                  f"instance UUID); got {import_id!r}.")
        if driver_errors("import the volume", lambda: backend.get(wanted)) is None:
            raise DiagnosticError("Cannot import vmdk_volume",
                                  f"No volume with id {wanted!r} exists (the id is the shadow VM's instance UUID).")
        return {"id": wanted, "clone_type": "full", "deletion_protection": False, "keep_on_destroy": False}

    # -- update ----------------------------------------------------------------------------------------
    def update(self, req: ApplyRequest) -> dict[str, Any]:
        backend = backend_of(self.provider_data)
        limit = timeout_seconds(req.plan, "update", _DEFAULT_SECONDS["update"])
        backing = run_bounded("update the volume", limit, req.stop, lambda: self._update(req, backend), req.private)
        return self._result(req, backend, backing)

    def _update(self, req: ApplyRequest, backend: VolumeBackend) -> Backing:
        plan, prior, config = req.plan or {}, req.prior or {}, req.config or {}
        decision = req.private.get("decision") or {}
        executor = Executor(backend)
        volume_id = volume_id_of(prior)
        driver_errors("wait for the volume's running tasks", lambda: settle_pending(backend, req.private, None))
        found = driver_errors("find the volume", lambda: executor.resolve(volume_id) if volume_id else None)
        if found is None:
            raise DiagnosticError("Volume not found", f"The backing of volume {volume_id} no longer exists in vSphere; "
                                  "run terraform apply again to recreate it.")
        backing: Backing = found  # declared, so the closures below see it as not None
        pod = self._wanted_pod(config)
        executor.pod, executor.pod_mode = pod, self._pod_mode(plan)
        if pod and driver_errors("read the volume", lambda: backend.pod_of(backing.datastore_name)) != pod:
            executor.refuse_held(backing, "move it", "datastore_cluster")
            backing = self._move_into_pod(backend, executor, backing, pod, plan.get("storage_policy"))
        ds_cfg = config.get("datastore")
        if _known(ds_cfg) and ds_cfg != backing.datastore_name:
            executor.refuse_held(backing, "move it", "datastore")
            placement = self._placement(backend, backing.size_bytes, plan.get("storage_policy"), ds_cfg)
            try:
                backing = driver_errors("relocate the volume", lambda: backend.ops.relocate_backing(
                    backing, placement, profile_id=backing.profile_id), "datastore")
            finally:
                placement.release()
        if self._retype_wanted(plan, prior, backing):
            refuse_in_use(executor.holders(backing)[0], "retype it", "disk_type")
            may_move = decision.get("retype_may_move", is_unknown(plan.get("datastore")))
            backing = driver_errors("retype the volume", lambda: executor.retype(
                backing, plan["disk_type"], plan["adapter_type"], plan.get("storage_policy"), bool(may_move)))
        new_size = int(plan["size_gb"]) * GiB
        if new_size > backing.size_bytes:
            refuse_in_use(executor.holders(backing)[0], "extend it", "size_gb")
            planned = decision.get("extend") or (
                EXTEND_MAY_MOVE if is_unknown(plan.get("datastore")) else EXTEND_IN_PLACE)
            backing = driver_errors("extend the volume", lambda: executor.extend(
                backing, new_size, planned, plan.get("storage_policy")), "size_gb")
        if (plan.get("name"), plan.get("description")) != (backing.display_name, backing.description):
            backing = driver_errors("update the name and description", lambda: backend.ops.update_annotation(
                backing, plan["name"], plan.get("description")))
        backend.remember(backing)
        return backing

    def _move_into_pod(self, backend: VolumeBackend, executor: Executor, backing: Backing, pod: str,
                       policy: str | None) -> Backing:
        """Into datastore cluster ``pod``: where Storage DRS recommends (sdrs mode), or our best member."""
        where = "move the volume into datastore cluster " + pod
        if executor.pod_mode == "sdrs":
            return driver_errors(where, lambda: executor.move_in_pod(backing, backing.size_bytes, policy),
                                 "datastore_cluster")
        placement = self._placement(backend, backing.size_bytes, policy, None, pod)
        try:
            return driver_errors(where, lambda: backend.ops.relocate_backing(backing, placement,
                                                                             profile_id=backing.profile_id),
                                 "datastore_cluster")
        finally:
            placement.release()

    @staticmethod
    def _retype_wanted(plan: dict[str, Any], prior: dict[str, Any], backing: Backing) -> bool:
        if any(plan.get(k) != prior.get(k) for k in ("disk_type", "adapter_type", "storage_policy")):
            return True
        return (backing.disk_type, backing.adapter_type) != (plan.get("disk_type"), plan.get("adapter_type"))

    # -- delete ----------------------------------------------------------------------------------------
    def delete(self, req: ApplyRequest) -> None:
        prior = req.prior or {}
        _refuse_protected(prior, "destroys")
        backend = backend_of(self.provider_data)
        volume_id = volume_id_of(prior)
        if volume_id is None:
            return  # names no volume: nothing to remove
        keep = prior.get("keep_on_destroy") is True

        def work() -> None:
            driver_errors("wait for the volume's running tasks", lambda: settle_pending(backend, req.private, None))
            # Decided on a read made now: who holds the volume's files may have changed since the last refresh.
            choice, index = driver_errors("find the volume", lambda: backend.decide_on(volume_id))
            primary = choice.primary
            if primary is None:
                return  # already gone: deleting is idempotent
            if keep:
                self._unmanage(req, backend, primary, index.users_of(primary) + index.children_of(primary))
            else:
                refuse_in_use(index.users_of(primary), "delete it")
                refuse_parent(index.children_of(primary), "delete it")
                driver_errors("delete the volume", functools.partial(backend.ops.delete_backing, primary))
                backend.forget(primary)
            for extra in choice.leftovers:  # proven ours: an interrupted retype's copy, a duplicate
                if index.users_of(extra) or index.children_of(extra):
                    continue
                driver_errors("delete the volume", functools.partial(backend.ops.delete_backing, extra))
                backend.forget(extra)

        run_bounded("delete the volume", timeout_seconds(prior, "delete", _DEFAULT_SECONDS["delete"]), req.stop, work,
                    req.private)

    @staticmethod
    def _unmanage(req: ApplyRequest, backend: VolumeBackend, backing: Backing, holders: list[str]) -> None:
        """keep_on_destroy: detach the VMDK from the shadow VM, then destroy the VM alone (Cinder's unmanage)."""
        if backing.user_snapshots:
            raise DiagnosticError(
                "Cannot keep the disk of a volume with COW snapshots",
                f"keep_on_destroy = true, but the volume has {len(backing.user_snapshots)} COW snapshot(s), and its "
                "disk runs on their delta files. Delete the snapshots first (or set keep_on_destroy = false).",
                "keep_on_destroy")
        kept = driver_errors("keep the volume's disk", lambda: backend.ops.release_disk(backing), "keep_on_destroy")
        backend.forget(backing)
        kept = kept or (req.prior or {}).get("vmdk_path")
        if kept:
            held = f" It is still attached to {', '.join(holders)}." if holders else ""
            req.diagnostics.warning(
                "The volume's disk was kept",
                f"keep_on_destroy = true: the shadow VM {backing.name} is gone and the VMDK stays at {kept}.{held} "
                "Terraform no longer manages it; adopt it again with an `adopt` block, or delete it in vCenter.")

    # -- results ---------------------------------------------------------------------------------------
    def _result(self, req: ApplyRequest, backend: VolumeBackend, backing: Backing, created: bool = False
                ) -> dict[str, Any]:
        """The state vSphere holds now; an error on each attribute where it is not what the plan asked.
        ``created``: a disk made a moment ago has no other users and no linked clones (so creates need not
        wait for the batched read of every VM)."""
        plan = req.plan or {}
        pod = driver_errors("read the volume", lambda: backend.pod_of(backing.datastore_name))
        state = volume_state_from_backing(backing, backend.inventory.datacenter_name, plan, pod)
        for key in ("datastore_cluster_mode", "source_volume_id", "source_snapshot_id", "clone_type", "timeouts",
                    "image", "backup", "adopt",
                    "deletion_protection", "keep_on_destroy"):
            state[key] = plan.get(key)
        if plan.get("storage_policy") and backing.profile_id is not None:
            state["storage_policy"] = plan["storage_policy"]
        elif backing.profile_id is not None:  # vSphere holds a policy the plan does not name: say which
            state["storage_policy"] = driver_errors("read the storage policy",
                                                    lambda: backend.policy_name(backing.profile_id))
        req.partial = state
        verify(state, plan, req.diagnostics)
        req.private.clear()
        users = () if created else backend.users_of(backing)
        children = () if created else backend.children_of(backing)
        req.private["facts"] = Facts.of(backing, backend.datastore_free(backing.datastore_name), users,
                                        children=children).to_private()
        return state


_CHECKED = {
    "size_gb": "vSphere did not grow the disk to that size",
    "disk_type": "vSphere did not convert the disk (a vCenter simulator cannot convert disk types)",
    "adapter_type": "vSphere did not move the disk to that controller",
    "datastore": "vSphere did not place or move the volume there",
    "datastore_cluster": "the volume is not on a member of that datastore cluster",
    "storage_policy": "vSphere did not apply the storage policy",
    "name": "vSphere did not keep the name",
    "description": "vSphere did not keep the description",
}


def _refuse_protected(prior: dict[str, Any], what: str, why: str | None = None) -> None:
    """deletion_protection: a destroy or a replacement is an error before anything is touched."""
    if prior.get("deletion_protection") is True:
        because = f" (because {why} changed)" if why else ""
        raise DiagnosticError(
            "Volume is protected from deletion",
            f"This plan {what} volume {prior.get('id')}{because}, but the volume has deletion_protection = true. "
            "Set deletion_protection = false and apply that first if the volume is to go; keep_on_destroy = true "
            "keeps its VMDK when it does.", "deletion_protection")


def _plan_protected(req: PlanRequest, prior: dict[str, Any], what: str, why: str | None = None) -> None:
    try:
        _refuse_protected(prior, what, why)
    except DiagnosticError as error:
        req.diagnostics.extend(error.diagnostics)


def _message(error: BaseException) -> str:
    """A vSphere error's text for a diagnostic (never a traceback)."""
    text = str(error).strip()
    return text or type(error).__name__


def _raise(error: BaseException) -> NoReturn:
    raise error


def verify(state: dict[str, Any], plan: dict[str, Any], diags: Diagnostics) -> None:
    """An error on every attribute whose planned value vSphere does not hold after the write."""
    for key, why in _CHECKED.items():
        wanted, held = plan.get(key), state.get(key)
        if is_unknown(wanted) or wanted == held or (wanted is None and key in ("storage_policy", "description")
                                                    and not held):
            continue
        diags.error(
            f"vSphere did not apply {key}",
            f"The plan asked for {key} = {_show(wanted)}, but after the write vSphere reports {_show(held)}: {why}. "
            f"The state now records {_show(held)}; the next plan proposes the change again. Check the volume "
            f"in vCenter, or set {key} to what vSphere holds.",
            key,
        )


def _show(value: Any) -> str:
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)

