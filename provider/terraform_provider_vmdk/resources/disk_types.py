"""Data source ``vmdk_disk_types``: the disk types this provider understands.

Image disk types are Cinder's ``ImageDiskType`` (what an imported VMDK may be); volume disk types are
what ``vmdk_volume.disk_type`` accepts. Constants, so it works offline — a first proof that a
configuration needing no vCenter never connects to one.
"""

from __future__ import annotations

from typing import Any

from ..framework.resource import DataSource, RequestContext
from ..framework.schema import Attribute, Schema, schema
from ..framework.types import List, String

__all__ = ["DiskTypesDataSource", "IMAGE_DISK_TYPES", "VOLUME_DISK_TYPES", "ADAPTER_TYPES"]

IMAGE_DISK_TYPES: tuple[str, ...] = ("preallocated", "sparse", "streamOptimized", "thin")
VOLUME_DISK_TYPES: tuple[str, ...] = ("thin", "thick", "eagerZeroedThick")
ADAPTER_TYPES: tuple[str, ...] = ("lsiLogic", "busLogic", "lsiLogicsas", "paraVirtual", "ide")


class DiskTypesDataSource(DataSource):
    type_name = "vmdk_disk_types"

    def schema(self) -> Schema:
        return schema(
            {
                "id": Attribute(String, computed=True, description="Always `vmdk_disk_types`."),
                "image_disk_types": Attribute(
                    List(String), computed=True,
                    description="Kinds of image file `vmdk_volume`'s `image.disk_type` accepts (Cinder's "
                    "`ImageDiskType`): " + ", ".join(f"`{t}`" for t in IMAGE_DISK_TYPES) + ".",
                ),
                "volume_disk_types": Attribute(
                    List(String), computed=True,
                    description="Values of `vmdk_volume.disk_type`: "
                    + ", ".join(f"`{t}`" for t in VOLUME_DISK_TYPES) + ".",
                ),
                "adapter_types": Attribute(
                    List(String), computed=True,
                    description="Values of `vmdk_volume.adapter_type`: "
                    + ", ".join(f"`{t}`" for t in ADAPTER_TYPES) + ".",
                ),
            },
            description="Lists the disk and adapter types the provider supports. Needs no vSphere connection.",
        )

    def read(self, config: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        return {
            "id": self.type_name,
            "image_disk_types": list(IMAGE_DISK_TYPES),
            "volume_disk_types": list(VOLUME_DISK_TYPES),
            "adapter_types": list(ADAPTER_TYPES),
        }
