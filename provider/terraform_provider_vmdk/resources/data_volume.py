"""Data source ``vmdk_volume``: an existing volume of this provider, by ``id`` or by ``name``.

``name`` is the display name kept in the shadow VM's annotation (not the VM name ``volume-<id>``). A name
that several volumes share is an error that lists their ids. Every attribute of the ``vmdk_volume``
resource that describes the volume is exposed, computed by the resource's own
``volume_state_from_backing``, so ``connection_info`` is what a consumer of the resource would get; the
storage policy name is looked up from the backing's PBM profile id (the resource keeps it from config).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..framework.diagnostics import DiagnosticError, Diagnostics
from ..framework.resource import DataSource, RequestContext
from ..framework.schema import Attribute, Schema, schema
from ..framework.types import String
from ..framework.unknowns import is_unknown
from ..framework.validators import NotEmpty
from .backend import VolumeBackend, backend_of, driver_errors
from .volume_schema import VOLUME_ATTRIBUTES, volume_state_from_backing

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.volumes.backing import Backing

__all__ = ["VolumeDataSource"]


def volume_state(backing: Backing, backend: VolumeBackend) -> dict[str, Any]:
    """The ``vmdk_volume`` resource's own mapping, plus the policy name (which the resource keeps from config)."""
    state = volume_state_from_backing(backing, backend.inventory.datacenter_name,
                                      pod=backend.pod_of(backing.datastore_name))
    state["storage_policy"] = backend.policy_name(backing.profile_id)
    return state


# The resource's attributes that describe an existing volume (source_* and clone_type only say how it was made).
_COMPUTED = ("description", "size_gb", "disk_type", "adapter_type", "storage_policy", "datastore",
             "datastore_cluster", "backing_name",
             "backing_moref", "vmdk_path", "disk_uuid", "connection_info")


class VolumeDataSource(DataSource):
    type_name = "vmdk_volume"

    def schema(self) -> Schema:
        attrs: dict[str, Attribute] = {
            "id": Attribute(String, optional=True, computed=True, validators=(NotEmpty(),),
                            description="Volume id (the shadow VM's instance UUID). "
                                        "Set exactly one of `id` and `name`."),
            "name": Attribute(String, optional=True, computed=True, validators=(NotEmpty(),),
                              description="Display name of the volume. Set exactly one of `id` and `name`; a name "
                              "several volumes share is an error listing their ids."),
        }
        for key in _COMPUTED:
            attrs[key] = Attribute(VOLUME_ATTRIBUTES[key].type, computed=True,
                                   description=VOLUME_ATTRIBUTES[key].description)
        return schema(attrs, description="Looks up a volume managed by this provider, by id or display name.")

    def validate_config(self, config: dict[str, Any], diags: Diagnostics) -> None:
        vid, name = config.get("id"), config.get("name")
        if is_unknown(vid) or is_unknown(name):
            return
        if (vid is None) == (name is None):
            diags.error("Invalid vmdk_volume lookup", "Set exactly one of id and name.",
                        "name" if name is not None else "id")

    def read(self, config: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        backend = backend_of(getattr(self, "provider_data", None))
        vid, name = config.get("id"), config.get("name")
        if vid is not None:
            backing = driver_errors("read the volume", lambda: backend.get(vid), "id")
            if backing is None:
                raise DiagnosticError("Volume not found",
                                      f"No volume of this provider has id {vid!r}.", "id")
        else:
            everything = driver_errors("list volumes", backend.all_backings)
            matches = sorted((b for b in everything.values() if b.display_name == name),
                             key=lambda b: b.volume_id or "")
            if not matches:
                raise DiagnosticError("Volume not found", f"No volume of this provider is named {name!r}.", "name")
            if len(matches) > 1:
                ids = ", ".join(b.volume_id or b.name for b in matches)
                raise DiagnosticError(
                    "Ambiguous volume name",
                    f"{len(matches)} volumes are named {name!r}: {ids}. Look the volume up by id instead.",
                    "name",
                )
            backing = matches[0]
        return driver_errors("read the volume", lambda: volume_state(backing, backend))
