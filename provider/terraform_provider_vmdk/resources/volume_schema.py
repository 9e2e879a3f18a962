"""``vmdk_volume``'s attributes and how a backing maps onto them (shared with the ``vmdk_volume`` data source)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..framework.planmodifiers import UseStateForUnknown
from ..framework.schema import Attribute
from ..framework.types import Bool, Map, Number, String
from ..framework.validators import AtLeast, NotEmpty, OneOf, WholeNumber
from .disk_types import ADAPTER_TYPES, VOLUME_DISK_TYPES
from .volume_policy import CLONE_TYPES, GiB

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.volumes.backing import Backing

__all__ = ["VOLUME_ATTRIBUTES", "volume_state_from_backing", "LOCATION_ATTRIBUTES"]

# Computed attributes that describe where the disk lives; they change when the disk moves.
LOCATION_ATTRIBUTES = ("vmdk_path", "connection_info")

VOLUME_ATTRIBUTES: dict[str, Attribute] = {
    "id": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                    description="Volume id (a UUID): the shadow VM's instance UUID and the disk's UUID."),
    "name": Attribute(String, required=True, validators=(NotEmpty(),),
                      description="Display name (kept in the shadow VM's annotation). Changes in place."),
    "description": Attribute(String, optional=True, description="Free text. Changes in place."),
    "size_gb": Attribute(
        Number, required=True, validators=(WholeNumber(), AtLeast(1)),
        description="Size in GiB, a whole number ≥ 1. Growing extends the disk in place (moving the volume "
        "to a datastore with room first when its own lacks it, which the plan warns about); shrinking is refused at "
        "plan time, and so is growing a volume that has COW snapshots or is a linked clone (vSphere cannot extend "
        "those disks): delete the COW snapshots, or recreate the volume as a full clone, first.",
    ),
    "disk_type": Attribute(
        String, optional=True, default="thin", validators=(OneOf(VOLUME_DISK_TYPES),),
        description="`thin`, `thick` (lazy zeroed) or `eagerZeroedThick`. Default `thin`. Changes in place "
        "(retype: a full copy on the same datastore, or a relocation when the volume has snapshots).",
    ),
    "adapter_type": Attribute(
        String, optional=True, default="lsiLogic", validators=(OneOf(ADAPTER_TYPES),),
        description="Controller the disk is attached to in its shadow VM: "
        + ", ".join(f"`{a}`" for a in ADAPTER_TYPES) + ". Default `lsiLogic`. Changes in place.",
    ),
    "storage_policy": Attribute(
        String, optional=True, validators=(NotEmpty(),),
        description="Storage policy (SPBM) name. Placement only uses compliant datastores. Changes in place: "
        "the volume stays if its datastore complies, else it moves to one that does.",
    ),
    "datastore": Attribute(
        String, optional=True, computed=True, plan_modifiers=(UseStateForUnknown(),),
        description="Datastore name. Unset: placement picks one (Cinder's rules) and the pick is kept. "
        "Set and changed: the volume is relocated in place. A named datastore must still pass the provider's "
        "placement rules (`datastore_regex`, `datastore_types`, room, hosts).",
    ),
    "datastore_cluster": Attribute(
        String, optional=True, computed=True, validators=(NotEmpty(),), plan_modifiers=(UseStateForUnknown(),),
        description="Datastore cluster (StoragePod) the volume lives in, by name. Set: the volume is created in "
        "it (`datastore_cluster_mode`) and kept in it (moved back when it leaves; changed: relocated into the new "
        "one); `datastore` then reports the member that holds it. Conflicts with `datastore`. Unset: the "
        "provider's `datastore_cluster`, else whatever cluster the chosen datastore belongs to (or null).",
    ),
    "datastore_cluster_mode": Attribute(
        String, optional=True, validators=(OneOf(("sdrs", "members")),),
        description="How a volume is placed in its datastore cluster: `sdrs` (Storage DRS recommends, the "
        "provider's placement rules veto, the provider applies the first acceptable recommendation; the cluster "
        "must have Storage DRS enabled) or `members` (the members are ranked by the provider's own rules, Storage "
        "DRS is not asked: works with it disabled). Nothing falls back from one to the other. Default: the "
        "provider's `datastore_cluster_mode`, else `sdrs`.",
    ),
    "source_volume_id": Attribute(
        String, optional=True,
        description="Create as a clone of this volume. Conflicts with `source_snapshot_id`. Where the data came "
        "from is read when the volume is created: another source replaces the volume, while a source given to a "
        "volume that has none recorded (an imported one) changes nothing but the state.",
    ),
    "source_snapshot_id": Attribute(
        String, optional=True,
        description="Create from this `vmdk_snapshot`. Conflicts with `source_volume_id`. Another snapshot "
        "replaces the volume (see `source_volume_id`).",
    ),
    "clone_type": Attribute(
        String, optional=True, default="full", validators=(OneOf(CLONE_TYPES),),
        description="`full` (an independent copy) or `linked` (a child disk of the source; only with a source, "
        "and it becomes full when the new volume is bigger than the source). Default `full`. A change replaces "
        "a volume cloned from a recorded source, and only records the value otherwise.",
    ),
    "deletion_protection": Attribute(
        Bool, optional=True, default=False,
        description="When `true`, destroying or replacing the volume fails with an error before anything is "
        "touched (plan says so where Terraform asks the provider about a destroy, 1.3 and newer; apply always). "
        "Set it to `false` and apply before destroying. Changes in place. Default `false`.",
    ),
    "keep_on_destroy": Attribute(
        Bool, optional=True, default=False,
        description="When `true`, destroy removes the shadow VM but keeps the VMDK file where `vmdk_path` says "
        "(apply prints where), like Cinder's unmanage: Terraform stops managing the volume and its data stays. "
        "A volume with COW snapshots is refused (delete them first). Changes in place. Default `false`.",
    ),
    "backing_name": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                              description="Name of the shadow VM (`volume-<id>`)."),
    "backing_moref": Attribute(String, computed=True, description="Managed object id of the shadow VM."),
    "vmdk_path": Attribute(String, computed=True,
                           description="Datastore path of the VMDK, `[datastore] dir/file.vmdk`."),
    "disk_uuid": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),),
                           description="UUID of the virtual disk."),
    "connection_info": Attribute(
        Map(String), computed=True,
        description="What a consumer needs to attach the volume, as Cinder's initialize_connection returns it: "
        "`driver_volume_type` (`vmdk`), `volume` (shadow VM moref), `volume_id`, `vmdk_path`, `datastore`, "
        "`datacenter`.",
    ),
}


def volume_state_from_backing(backing: Backing, datacenter: str, prior: dict[str, Any] | None = None,
                              pod: str | None = None) -> dict[str, Any]:
    """The resource/data-source attributes vSphere knows, from a backing record."""
    prior = prior or {}
    policy = prior.get("storage_policy") if backing.profile_id is not None else None
    size_gb = -(-backing.size_bytes // GiB)  # rounded up, as Cinder reports sizes
    return {
        "id": backing.volume_id,
        "name": backing.display_name if backing.display_name is not None else prior.get("name"),
        "description": backing.description,
        "size_gb": size_gb,
        "disk_type": backing.disk_type or prior.get("disk_type"),
        "adapter_type": backing.adapter_type or prior.get("adapter_type"),
        "storage_policy": policy,
        "datastore": backing.datastore_name,
        "datastore_cluster": pod,
        "backing_name": backing.name,
        "backing_moref": backing.moref_value,
        "vmdk_path": backing.vmdk_path,
        "disk_uuid": backing.disk_uuid,
        "connection_info": {
            "driver_volume_type": "vmdk",
            "volume": backing.moref_value,
            "volume_id": backing.volume_id or "",
            "vmdk_path": backing.vmdk_path or "",
            "datastore": backing.datastore_name or "",
            "datacenter": datacenter,
        },
    }
