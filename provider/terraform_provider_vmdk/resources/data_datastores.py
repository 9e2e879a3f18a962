"""Data source ``vmdk_datastores``: every datastore with placement's verdict on it, and the pick.

It runs the very selection ``vmdk_volume`` uses (the provider's ``datastore_regex`` and
``cluster_names``, Cinder's rules and ranking) for a volume of ``size_gb`` with ``storage_policy``, so
"why does my volume land there / not land there" has an answer in ``terraform console``.
"""

from __future__ import annotations

from typing import Any

from ..framework.diagnostics import DiagnosticError
from ..framework.resource import DataSource, RequestContext
from ..framework.schema import Attribute, Schema, schema
from ..framework.types import Bool, List, Number, Object, String
from ..framework.validators import AtLeast, NotEmpty
from .backend import backend_of, driver_errors

__all__ = ["DatastoresDataSource", "DATASTORE_OBJECT"]

GiB = 1024**3

DATASTORE_OBJECT = Object({
    "name": String,
    "type": String,
    "capacity_gb": Number,
    "free_gb": Number,
    "accessible": Bool,
    "maintenance": String,
    "host_count": Number,
    "compliant": Bool,
    "eligible": Bool,
    "reason": String,
    "datastore_cluster": String,
})


def _round(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(x, 3)


class DatastoresDataSource(DataSource):
    type_name = "vmdk_datastores"

    def schema(self) -> Schema:
        return schema(
            {
                "id": Attribute(String, computed=True, description="Always `vmdk_datastores`."),
                "storage_policy": Attribute(
                    String, optional=True, validators=(NotEmpty(),),
                    description="Storage policy (SPBM) name the volume needs; unknown names are an error.",
                ),
                "size_gb": Attribute(
                    Number, optional=True, validators=(AtLeast(0),),
                    description="Size of the volume to place, in GiB (default 0: any free space will do).",
                ),
                "datastore_cluster": Attribute(
                    String, optional=True, validators=(NotEmpty(),),
                    description="Only the members of this datastore cluster (StoragePod), judged and ranked as "
                    "`datastore_cluster_mode = \"members\"` places volumes in it.",
                ),
                "datastores": Attribute(
                    List(DATASTORE_OBJECT), computed=True,
                    description="Every datastore of the datacenter: eligible ones best first (placement's "
                    "ranking: most usable hosts, then lowest utilisation), then rejected ones by name. "
                    "`host_count`: valid hosts with a usable mount (0 when rejected); `compliant`: policy "
                    "compliance (null without `storage_policy` or when rejected before the policy check); "
                    "`reason`: why it is rejected (null when eligible); `datastore_cluster`: the datastore cluster it "
                    "is a member of (null when none).",
                ),
                "selected": Attribute(
                    String, computed=True,
                    description="Name of the datastore a new volume would be placed on; null when none qualifies.",
                ),
            },
            description="Lists datastores with the verdict of the provider's placement rules (Cinder's "
            "DatastoreSelector) for a volume of the given size and policy.",
        )

    def read(self, config: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        from ..vsphere.placement.datastore import Requirements

        backend = backend_of(getattr(self, "provider_data", None))
        size = config.get("size_gb") or 0
        policy = config.get("storage_policy")
        wanted = config.get("datastore_cluster")
        pod = driver_errors("find the datastore cluster", lambda: backend.inventory.pod(wanted)) if wanted else None
        if wanted and pod is None:
            raise DiagnosticError("Datastore cluster not found", f"No datastore cluster {wanted!r} exists.",
                                  "datastore_cluster")
        requirements = Requirements(size_bytes=int(float(size) * GiB), profile_name=policy,
                                    pod=pod.name if pod is not None else None)
        evaluations = [ev for ev in driver_errors(
            "evaluate datastores", lambda: backend.selector.candidates(requirements),
            "storage_policy" if policy else None,
        ) if ev.rule != "pod"]
        datastores = [
            {
                "name": ev.name,
                "type": ev.type,
                "capacity_gb": _round(ev.capacity_gb),
                "free_gb": _round(ev.free_gb),
                "accessible": ev.accessible,
                "maintenance": ev.maintenance,
                "host_count": ev.host_count,
                "compliant": ev.compliant,
                "eligible": ev.eligible,
                "reason": ev.reason,
                "datastore_cluster": ev.datastore.pod,
            }
            for ev in evaluations
        ]
        selected = next((ev.name for ev in evaluations if ev.selected), None)
        return {"id": self.type_name, "datastores": datastores, "selected": selected}
