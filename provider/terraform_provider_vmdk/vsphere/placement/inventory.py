"""Datacenter-scoped inventory: datacenter, folders, hosts, clusters, datastores (one retrieve each)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim

from .. import exceptions as exc
from ..connection.once import Fresh, Once
from ..connection.session import Session

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")

HOST_PROPS = ["name", "runtime.connectionState", "runtime.inMaintenanceMode", "parent"]
COMPUTE_PROPS = ["name", "resourcePool", "host"]
DATASTORE_PROPS = ["name", "summary.type", "summary.capacity", "summary.freeSpace", "summary.accessible",
                   "summary.maintenanceMode", "summary.url", "host"]


@dataclass(frozen=True)
class HostInfo:
    moref: Any  # vim.HostSystem
    name: str
    connected: bool
    maintenance: bool
    cluster: str | None  # cluster name; None for a standalone host
    resource_pool: Any  # root resource pool of the host's cluster / compute resource
    compute_resource: Any = None  # vim.ClusterComputeResource or vim.ComputeResource

    @property
    def usable(self) -> bool:
        return self.connected and not self.maintenance


@dataclass(frozen=True)
class ClusterInfo:
    moref: Any  # vim.ClusterComputeResource
    name: str
    resource_pool: Any
    hosts: tuple[Any, ...] = ()


@dataclass(frozen=True)
class MountInfo:
    host: Any  # vim.HostSystem
    access_mode: str  # "readWrite" / "readOnly"
    mounted: bool
    accessible: bool


@dataclass(frozen=True)
class DatastoreInfo:
    moref: Any  # vim.Datastore
    name: str
    type: str  # summary.type: VMFS, NFS, NFS41, vsan, VVOL, OTHER...
    capacity: int
    free_space: int
    accessible: bool
    maintenance_mode: str  # normal / enteringMaintenance / inMaintenance
    host_mounts: tuple[MountInfo, ...] = field(default=())
    url: str | None = None
    pod: str | None = None  # name of the datastore cluster (StoragePod) it is a member of


    @property
    def mounts(self) -> tuple[MountInfo, ...]:
        return self.host_mounts


@dataclass(frozen=True)
class PodInfo:
    """A datastore cluster (StoragePod): its Storage DRS settings and member datastores (moref values)."""

    moref: Any  # vim.StoragePod
    name: str
    sdrs_enabled: bool
    default_vm_behavior: str  # "manual" | "automated" (vCenter's default when unset: manual)
    intra_vm_affinity: bool
    members: tuple[str, ...] = ()


POD_PROPS = ["name", "childEntity", "podStorageDrsEntry"]


def _pod_info(obj: Any, props: dict[str, Any]) -> PodInfo:
    entry = props.get("podStorageDrsEntry")
    config = getattr(getattr(entry, "storageDrsConfig", None), "podConfig", None)
    members = tuple(c._GetMoId() for c in props.get("childEntity") or () if isinstance(c, vim.Datastore))
    affinity = getattr(config, "defaultIntraVmAffinity", None)
    return PodInfo(moref=obj, name=props.get("name", ""), sdrs_enabled=bool(getattr(config, "enabled", False)),
                   default_vm_behavior=getattr(config, "defaultVmBehavior", None) or "manual",
                   intra_vm_affinity=affinity is not False, members=tuple(dict.fromkeys(members)))


def _escape(name: str) -> str:
    """vSphere stores '%' and '/' in entity names escaped."""
    return name.replace("%", "%25").replace("/", "%2f")


class Inventory:
    """The datacenter, its folders, hosts and datastores.

    ``placement_ttl``: hosts and datastores are read again only when older than that many seconds (0, the
    default: at every call). The provider sets a few seconds, so that parallel creates share one read
    instead of each re-reading every datastore; space taken by this process meanwhile is counted by the
    selector's reservations, not by the read."""

    def __init__(self, session: Session, datacenter: str | None = None, *, placement_ttl: float = 0.0) -> None:
        self.session = session
        self.datacenter_name_requested = datacenter
        self._datacenter: Any = None
        self._datacenter_name: str | None = None
        self._folders: dict[str, Any] = {}
        self._resolved: Once[None] = Once(self._find_datacenter)
        self._compute_read: Fresh[tuple[list[Any], dict[str, Any]]] = Fresh(self._read_compute, placement_ttl)
        self._datastore_read: Fresh[tuple[list[DatastoreInfo], list[PodInfo]]] = Fresh(self._read_storage,
                                                                                        placement_ttl)

    # ------------------------------------------------------------------ datacenter
    def _resolve_datacenter(self) -> None:
        self._resolved.get()

    def _find_datacenter(self) -> None:
        found = self.session.retrieve(vim.Datacenter, ["name", "vmFolder", "hostFolder", "datastoreFolder"])
        names = sorted(c.props.get("name", "") for c in found)
        wanted = self.datacenter_name_requested
        if wanted:
            leaf = wanted.rstrip("/").rsplit("/", 1)[-1]
            match = [c for c in found if c.props.get("name") in (wanted, leaf, _escape(leaf))]
            if not match:
                raise exc.DatacenterNotFound(
                    f"datacenter {wanted!r} not found (available: {', '.join(names) or 'none'})")
            if len(match) > 1:
                raise exc.DatacenterNotFound(f"several datacenters are named {wanted!r}",
                                             hint="Give the datacenter's inventory path")
        else:
            if len(found) != 1:
                raise exc.DatacenterNotFound(
                    "no datacenter found" if not found else
                    f"{len(found)} datacenters found ({', '.join(names)}); set `datacenter` to choose one")
            match = found
        dc = match[0]
        self._folders = {"vm": dc.props.get("vmFolder"), "host": dc.props.get("hostFolder"),
                         "datastore": dc.props.get("datastoreFolder")}
        self._datacenter_name = dc.props.get("name")
        self._datacenter = dc.obj

    @property
    def datacenter(self) -> Any:
        self._resolve_datacenter()
        return self._datacenter

    @property
    def datacenter_name(self) -> str:
        self._resolve_datacenter()
        return self._datacenter_name or ""

    @property
    def vm_folder(self) -> Any:
        self._resolve_datacenter()
        return self._folders["vm"]

    @property
    def host_folder(self) -> Any:
        self._resolve_datacenter()
        return self._folders["host"]

    @property
    def datastore_folder(self) -> Any:
        self._resolve_datacenter()
        return self._folders["datastore"]

    # ------------------------------------------------------------------ folders
    def _child_folder(self, parent: Any, name: str) -> Any:
        children = self.session.get_properties(parent, ["childEntity"]).get("childEntity") or []
        children = [c for c in children if isinstance(c, vim.Folder)]
        for c in self.session.retrieve(vim.Folder, ["name"], objects=children):
            if c.props.get("name") in (name, _escape(name)):
                return c.obj
        return None

    def get_or_create_folder(self, path: str, parent: Any = None) -> Any:
        """The folder at slash-separated ``path`` below ``parent`` (default the datacenter's vmFolder),
        creating missing levels.  Race-safe: CreateFolder first, DuplicateName → look the folder up.
        FolderConflict when a non-folder object holds a name on the path."""
        folder = parent if parent is not None else self.vm_folder
        for name in [p for p in path.split("/") if p]:
            try:
                folder = self.session.call(folder.CreateFolder, name)
                LOG.debug("created folder %s", name)
                continue
            except vim.fault.DuplicateName as fault:
                existing = getattr(fault, "object", None)
            # vCenter names the existing child in the fault; vcsim names the parent.
            if isinstance(existing, vim.Folder) and existing._GetMoId() != folder._GetMoId():
                folder = existing
                continue
            found = self._child_folder(folder, name)
            if found is None:
                raise exc.FolderConflict(f"cannot create folder {name!r} in {path!r}: an object that is not a "
                                         "folder has that name")
            folder = found
        return folder

    # ------------------------------------------------------------------ compute
    def _compute(self) -> tuple[list[Any], dict[str, Any]]:
        return self._compute_read.get()

    def _read_compute(self) -> tuple[list[Any], dict[str, Any]]:
        contents = self.session.retrieve_types({vim.HostSystem: HOST_PROPS, vim.ComputeResource: COMPUTE_PROPS},
                                               container=self.host_folder)
        hosts = [c for c in contents if isinstance(c.obj, vim.HostSystem)]
        computes = {c.obj._GetMoId(): c for c in contents if isinstance(c.obj, vim.ComputeResource)}
        return hosts, computes

    def hosts(self, cluster_names: list[str] | None = None) -> list[HostInfo]:
        """Hosts of the datacenter (or of the named clusters; ClusterNotFound for unknown names)."""
        hosts, computes = self._compute()
        if cluster_names is not None:
            known = {c.props.get("name") for c in computes.values() if isinstance(c.obj, vim.ClusterComputeResource)}
            missing = [n for n in cluster_names if n not in known]
            if missing:
                raise exc.ClusterNotFound("cluster(s) not found: " + ", ".join(repr(n) for n in missing))
        out = []
        for h in hosts:
            parent = h.props.get("parent")
            compute = computes.get(parent._GetMoId()) if parent is not None else None
            cluster = (compute.props.get("name")
                       if compute is not None and isinstance(compute.obj, vim.ClusterComputeResource) else None)
            if cluster_names is not None and cluster not in cluster_names:
                continue
            out.append(HostInfo(
                moref=h.obj, name=h.props.get("name", ""),
                connected=h.props.get("runtime.connectionState") == vim.HostSystem.ConnectionState.connected,
                maintenance=bool(h.props.get("runtime.inMaintenanceMode")),
                cluster=cluster,
                resource_pool=compute.props.get("resourcePool") if compute is not None else None,
                compute_resource=compute.obj if compute is not None else None))
        return sorted(out, key=lambda h: h.name)

    def clusters(self, names: list[str] | None = None) -> list[ClusterInfo]:
        """Clusters of the datacenter, or the named ones (ClusterNotFound naming the missing ones)."""
        found = self.session.retrieve(vim.ClusterComputeResource, COMPUTE_PROPS, container=self.host_folder)
        by_name = {c.props.get("name"): c for c in found}
        if names is not None:
            missing = [n for n in names if n not in by_name]
            if missing:
                raise exc.ClusterNotFound("cluster(s) not found: " + ", ".join(repr(n) for n in missing))
            chosen = [by_name[n] for n in dict.fromkeys(names)]
        else:
            chosen = sorted(found, key=lambda c: c.props.get("name", ""))
        return [ClusterInfo(moref=c.obj, name=c.props.get("name", ""), resource_pool=c.props.get("resourcePool"),
                            hosts=tuple(c.props.get("host") or ())) for c in chosen]

    def resource_pool_for_host(self, host: Any) -> Any:
        """Root resource pool of the host's cluster (or standalone compute resource)."""
        parent = self.session.get_properties(host, ["parent"]).get("parent")
        if parent is None:
            raise exc.NotFound(f"host {host._GetMoId()} has no compute resource")
        pool = self.session.get_properties(parent, ["resourcePool"]).get("resourcePool")
        if pool is None:
            raise exc.NotFound(f"compute resource {parent._GetMoId()} has no resource pool")
        return pool

    # ------------------------------------------------------------------ storage
    def datastores(self) -> list[DatastoreInfo]:
        """Datastores of the datacenter with their host mounts and datastore cluster (one retrieve each for
        datastores and clusters, or a recent one: placement_ttl)."""
        return list(self._datastore_read.get()[0])

    def pods(self) -> list[PodInfo]:
        """The datacenter's datastore clusters (StoragePods), read with the datastores."""
        return list(self._datastore_read.get()[1])

    def pod(self, name: str) -> PodInfo | None:
        """A datastore cluster by name or path below the datastore folder (its last element), or None."""
        leaf = name.rstrip("/").rsplit("/", 1)[-1]
        return next((p for p in self.pods() if p.name in (name, leaf, _escape(leaf))), None)

    def _read_storage(self) -> tuple[list[DatastoreInfo], list[PodInfo]]:
        found = self.session.retrieve_types({vim.Datastore: DATASTORE_PROPS, vim.StoragePod: POD_PROPS},
                                            container=self.datastore_folder)
        pods = [_pod_info(c.obj, c.props) for c in found if isinstance(c.obj, vim.StoragePod)]
        stores = [c for c in found if isinstance(c.obj, vim.Datastore)]
        seen = {c.obj._GetMoId() for c in stores}
        # a container view of some servers (vcsim before 2023: govmomi #3094) does not enter datastore clusters:
        # their members are read from the clusters' children
        missing = [vim.Datastore(m, self.session.si._stub) for p in pods for m in p.members if m not in seen]
        if missing:
            stores += self.session.retrieve(vim.Datastore, DATASTORE_PROPS, objects=list(dict.fromkeys(missing)))
        pod_of = {m: p.name for p in pods for m in p.members}
        out = []
        for c in stores:
            p = c.props
            mounts = []
            for m in p.get("host") or ():
                info = m.mountInfo
                mounts.append(MountInfo(host=m.key, access_mode=info.accessMode or "readWrite",
                                        mounted=info.mounted is not False, accessible=info.accessible is not False))
            out.append(DatastoreInfo(
                moref=c.obj, name=p.get("name", ""), type=p.get("summary.type") or "",
                capacity=int(p.get("summary.capacity") or 0), free_space=int(p.get("summary.freeSpace") or 0),
                accessible=bool(p.get("summary.accessible")),
                maintenance_mode=p.get("summary.maintenanceMode") or "normal",
                host_mounts=tuple(mounts), url=p.get("summary.url"), pod=pod_of.get(c.obj._GetMoId())))
        by_key = {d.moref._GetMoId(): d for d in out}  # once each (a view may list a member twice)
        return sorted(by_key.values(), key=lambda d: d.name), sorted(pods, key=lambda p: p.name)
