"""Data source ``vmdk_datastore_cluster``: a datastore cluster (StoragePod), its Storage DRS settings and members.

Capacity and free space are summed from the members as read now: vCenter updates a cluster's own summary only
"periodically" (and govmomi's simulator never does), so it is not used.
"""

from __future__ import annotations

from typing import Any

from ..framework.diagnostics import DiagnosticError
from ..framework.resource import DataSource, RequestContext
from ..framework.schema import Attribute, Schema, schema
from ..framework.types import Bool, List, Number, String
from ..framework.validators import NotEmpty
from .backend import backend_of, driver_errors

__all__ = ["DatastoreClusterDataSource"]

GiB = 1024**3


def _round(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(x, 3)


class DatastoreClusterDataSource(DataSource):
    type_name = "vmdk_datastore_cluster"

    def schema(self) -> Schema:
        return schema(
            {
                "name": Attribute(String, required=True, validators=(NotEmpty(),),
                                  description="Name of the datastore cluster (or its path below the datastore "
                                  "folder)."),
                "id": Attribute(String, computed=True, description="Managed object id of the StoragePod."),
                "members": Attribute(List(String), computed=True,
                                     description="Names of its member datastores, sorted."),
                "sdrs_enabled": Attribute(Bool, computed=True, description="Whether Storage DRS is enabled."),
                "default_vm_behavior": Attribute(
                    String, computed=True, description="Storage DRS automation: `manual` (recommendations only) or "
                    "`automated` (migrations run by themselves, shadow VMs included; initial placement is always "
                    "applied by the provider)."),
                "intra_vm_affinity": Attribute(Bool, computed=True,
                                               description="Whether a VM's disks are kept together by default."),
                "capacity_gb": Attribute(Number, computed=True, description="Capacity summed over the members."),
                "free_gb": Attribute(Number, computed=True, description="Free space summed over the members."),
            },
            description="A datastore cluster (StoragePod) with its Storage DRS settings, members and their summed "
            "capacity and free space.",
        )

    def read(self, config: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        backend = backend_of(getattr(self, "provider_data", None))
        name = config["name"]
        if driver_errors("check the server", lambda: backend.ops.host_agent):
            raise DiagnosticError("No datastore clusters on an ESXi host", "Datastore clusters (Storage DRS) are a "
                                  "vCenter feature; a standalone ESXi host has none.", "name")
        pod = driver_errors("read the datastore cluster", lambda: backend.inventory.pod(name), "name")
        if pod is None:
            names = [p.name for p in backend.inventory.pods()]
            raise DiagnosticError("Datastore cluster not found", f"No datastore cluster {name!r} in datacenter "
                                  f"{backend.inventory.datacenter_name} (datastore clusters: "
                                  f"{', '.join(names) or 'none'}).", "name")
        members = [d for d in backend.inventory.datastores() if d.pod == pod.name]
        return {
            "name": name,
            "id": pod.moref._GetMoId(),
            "members": sorted(d.name for d in members),
            "sdrs_enabled": pod.sdrs_enabled,
            "default_vm_behavior": pod.default_vm_behavior,
            "intra_vm_affinity": pod.intra_vm_affinity,
            "capacity_gb": _round(sum(d.capacity for d in members) / GiB),
            "free_gb": _round(sum(d.free_space for d in members) / GiB),
        }
