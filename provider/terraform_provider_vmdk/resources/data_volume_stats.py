"""Data source ``vmdk_volume_stats``: Cinder's ``get_volume_stats`` for this provider's placement scope.

Capacity is summed over the datastores a volume could be placed on (the provider's ``datastore_regex``
and ``cluster_names``; accessible, not in maintenance, supported type, usable mount on a valid host),
each counted once; with ``storage_policies``, only those compliant with at least one of them.
``volume_count`` counts this provider's volume backings in the datacenter (snapshot templates excluded).
"""

from __future__ import annotations

from typing import Any

from ..framework.resource import DataSource, RequestContext
from ..framework.schema import Attribute, Schema, schema
from ..framework.types import List, Number, String
from ..framework.validators import NotEmpty
from .backend import backend_of, driver_errors

__all__ = ["VolumeStatsDataSource", "VENDOR_NAME", "DRIVER_VERSION", "STORAGE_PROTOCOL", "DEFAULT_BACKEND_NAME"]

VENDOR_NAME = "VMware"
DRIVER_VERSION = "1.5.0"  # the Cinder VMDK driver version whose behaviour we follow
STORAGE_PROTOCOL = "vmdk"
DEFAULT_BACKEND_NAME = "VMwareVcVmdkDriver"  # Cinder's default: the driver's class name
GiB = 1024**3


def _gb(n: int) -> int | float:
    return n // GiB if n % GiB == 0 else round(n / GiB, 3)


class VolumeStatsDataSource(DataSource):
    type_name = "vmdk_volume_stats"

    def schema(self) -> Schema:
        return schema(
            {
                "id": Attribute(String, computed=True, description="The volume backend name."),
                "volume_backend_name": Attribute(
                    String, optional=True, computed=True, validators=(NotEmpty(),),
                    description=f"Name reported for this backend (Cinder's `volume_backend_name`; default "
                    f"`{DEFAULT_BACKEND_NAME}`).",
                ),
                "storage_policies": Attribute(
                    List(String), optional=True,
                    description="Count only datastores compliant with at least one of these storage policies "
                    "(Cinder's `vmware_storage_profile`).",
                ),
                "vendor_name": Attribute(String, computed=True, description="`VMware`."),
                "driver_version": Attribute(String, computed=True,
                                            description="Version of Cinder's VMDK driver followed: `1.5.0`."),
                "storage_protocol": Attribute(String, computed=True, description="`vmdk`."),
                "total_capacity_gb": Attribute(Number, computed=True,
                                               description="Capacity of the eligible datastores, in GiB."),
                "free_capacity_gb": Attribute(Number, computed=True,
                                              description="Free space on the eligible datastores, in GiB."),
                "datastores": Attribute(List(String), computed=True,
                                        description="Names of the datastores counted, sorted."),
                "volume_count": Attribute(Number, computed=True,
                                          description="Volumes (shadow VMs) of this provider in the datacenter."),
            },
            description="Capacity statistics of the volume backend, as Cinder's get_volume_stats reports them.",
        )

    def read(self, config: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        from ..vsphere.placement.datastore import volume_stats

        backend = backend_of(getattr(self, "provider_data", None))
        policies = [p for p in (config.get("storage_policies") or []) if p]
        stats = driver_errors("compute volume statistics",
                               lambda: volume_stats(backend.selector, policies or None),
                               "storage_policies" if policies else None)
        count = driver_errors("count volumes", lambda: len(backend.all_backings()))
        name = config.get("volume_backend_name") or DEFAULT_BACKEND_NAME
        return {
            "id": name,
            "volume_backend_name": name,
            "vendor_name": VENDOR_NAME,
            "driver_version": DRIVER_VERSION,
            "storage_protocol": STORAGE_PROTOCOL,
            "total_capacity_gb": _gb(stats.total_bytes),
            "free_capacity_gb": _gb(stats.free_bytes),
            "datastores": list(stats.datastores),
            "volume_count": count,
        }
