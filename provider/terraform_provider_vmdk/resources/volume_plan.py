"""``vmdk_volume``'s plan: the policy's decisions made visible before apply.

Every update asks the policy (``volume_policy``) with the facts the last refresh kept in private state, so
planning costs no vSphere call. What plan shows is what apply does:
- a refusal (shrink, extend with COW snapshots or of a linked clone, no room on a pinned datastore, a
  change to a volume in use) is an error on the attribute;
- a move (extend without room, relocation, a retype that relocates or copies) is a warning, and the
  attributes that move with the disk become "known after apply";
- an interrupted earlier change (see ``lookup.Choice.repairs``) is planned as an update that repairs it.
The decision travels to apply in the planned private state (``decision``), not inferred from unknowns.
"""

from __future__ import annotations

from typing import Any, TypeGuard, TypeVar

from ..framework.resource import PlanRequest
from ..framework.unknowns import UNKNOWN, is_unknown
from .volume_policy import EXTEND_MAY_MOVE, EXTEND_NONE, Facts, GiB, decide_extend, decide_retype, parent_refusal
from .volume_schema import LOCATION_ATTRIBUTES

__all__ = ["plan_update", "facts_from_state"]

_RETYPE_KEYS = ("disk_type", "adapter_type", "storage_policy")


T = TypeVar("T")


def _known(v: T | None) -> TypeGuard[T]:
    return v is not None and not is_unknown(v)


def facts_from_state(prior: dict[str, Any]) -> Facts:
    """Facts when no refresh kept any (a state from an older version): what the state itself says."""
    size = prior.get("size_gb")
    return Facts(size_bytes=int(size) * GiB if _known(size) else 0, disk_type=prior.get("disk_type"),
                 adapter_type=prior.get("adapter_type"), datastore=prior.get("datastore"))


def plan_update(req: PlanRequest) -> None:
    """Decide an update of ``req.prior`` into ``req.plan`` (in place), or refuse it."""
    plan, prior = req.plan, req.prior
    if plan is None or prior is None:
        return  # destroy or create: nothing to decide here
    facts = Facts.from_private(req.private.get("facts")) or facts_from_state(prior)
    decision: dict[str, Any] = {}
    moves = _plan_extend(req, facts, decision)
    if moves is None:
        return
    relocation = _plan_relocation(req, facts, decision)
    if relocation is None:
        return
    into_pod = _plan_pod_move(req, facts, decision)
    if into_pod is None:
        return
    moves = relocation or into_pod or moves
    retype_path = _plan_retype(req, facts, decision)
    if retype_path is None:
        return
    moves = moves or retype_path in ("clone", "relocate", "relocate-or-policy")
    if facts.repairs:
        imported = all("OpenStack Cinder" in r for r in facts.repairs)
        req.diagnostics.warning(
            "The volume was made by OpenStack Cinder" if imported else "The volume's last change did not finish",
            "apply repairs it first: " + "; ".join(facts.repairs) + ".")
        decision["repair"] = True
    # Computed attributes stay as they are unless the disk moves or is copied (new VM and file).
    for name in ("backing_moref", *LOCATION_ATTRIBUTES):
        plan[name] = UNKNOWN if moves else prior.get(name)
    if facts.repairs:  # the repair is the change: it may give the volume a new VM, name or disk UUID
        for name in ("backing_moref", "backing_name", "disk_uuid"):
            plan[name] = UNKNOWN
    ds_cfg = req.config.get("datastore")
    if _known(ds_cfg) and ds_cfg != prior.get("datastore"):
        plan["datastore"] = ds_cfg
    pod_cfg = req.config.get("datastore_cluster")
    if _known(pod_cfg):  # a volume in a datastore cluster stays in it, wherever it moves
        plan["datastore_cluster"] = pod_cfg
    else:
        plan["datastore_cluster"] = UNKNOWN if moves else prior.get("datastore_cluster")
    req.private["decision"] = decision


def _plan_extend(req: PlanRequest, facts: Facts, decision: dict[str, Any]) -> bool | None:
    """Extend in place, move first, or refuse (None: refused, the plan stops here)."""
    plan, prior, diags = req.plan or {}, req.prior or {}, req.diagnostics
    new_size, old_size = plan.get("size_gb"), prior.get("size_gb")
    if not (_known(new_size) and _known(old_size)) or new_size == old_size:
        return False
    ds_cfg = req.config.get("datastore")
    pinned = _known(ds_cfg) and ds_cfg == prior.get("datastore")
    disk_type = plan.get("disk_type") if _known(plan.get("disk_type")) else None
    facts_now = facts if facts.size_bytes else Facts(int(old_size) * GiB, facts.disk_type, datastore=facts.datastore)
    extend = decide_extend(facts_now, int(new_size) * GiB, disk_type, pinned=pinned)
    if extend.refusal is not None:
        diags.error(extend.refusal.summary, extend.refusal.detail, extend.refusal.attribute)
        return None
    if extend.mode != EXTEND_NONE and facts.in_use_by:
        diags.error("Volume is in use: cannot extend it", f"The volume's disk is attached to "
                    f"{', '.join(facts.in_use_by)}. Detach it first (Cinder refuses to extend an attached volume).",
                    "size_gb")
        return None
    decision["extend"] = extend.mode
    if extend.mode == EXTEND_MAY_MOVE:
        diags.warning("Volume will move before it grows", extend.warning or "", "size_gb")
        plan["datastore"] = UNKNOWN
        return True
    return False


def _plan_relocation(req: PlanRequest, facts: Facts, decision: dict[str, Any]) -> bool | None:
    prior, ds_cfg = req.prior or {}, req.config.get("datastore")
    if not _known(ds_cfg) or ds_cfg == prior.get("datastore"):
        return False
    if facts.linked_children:
        refusal = parent_refusal(facts, "move it", "datastore")
        req.diagnostics.error(refusal.summary, refusal.detail, refusal.attribute)
        return None
    req.diagnostics.warning(
        "Volume will be relocated",
        f"apply moves the volume from datastore {prior.get('datastore')} to {ds_cfg}, copying {prior.get('size_gb')} "
        "GiB.", "datastore")
    decision["relocate_to"] = ds_cfg
    return True


def _plan_pod_move(req: PlanRequest, facts: Facts, decision: dict[str, Any]) -> bool | None:
    """A volume whose datastore is not a member of its configured datastore cluster (moved out, or the cluster
    changed) moves into it; None when that is refused (the volume is in use, or has linked clones)."""
    prior, pod = req.prior or {}, req.config.get("datastore_cluster")
    if not _known(pod) or pod == prior.get("datastore_cluster"):
        return False
    if facts.linked_children:
        refusal = parent_refusal(facts, "move it", "datastore_cluster")
        req.diagnostics.error(refusal.summary, refusal.detail, refusal.attribute)
        return None
    if facts.in_use_by:
        req.diagnostics.error("Volume is in use: cannot move it", f"The volume's disk is attached to "
                              f"{', '.join(facts.in_use_by)}. Detach it first.", "datastore_cluster")
        return None
    decision["relocate_to_pod"] = pod
    (req.plan or {})["datastore"] = UNKNOWN
    return True


def _plan_retype(req: PlanRequest, facts: Facts, decision: dict[str, Any]) -> str | None:
    """The retype path ("none" when nothing changes); None when refused."""
    plan, prior, diags = req.plan or {}, req.prior or {}, req.diagnostics
    if not any(plan.get(k) != prior.get(k) for k in _RETYPE_KEYS):
        return "none"
    if any(is_unknown(plan.get(k)) for k in _RETYPE_KEYS):
        diags.warning("Retype planned", "The new disk type, adapter or policy is not known yet; apply decides the "
                      "path (copy, relocate or policy only).")
        decision["retype_may_move"] = True
        if not _known(req.config.get("datastore")):
            plan["datastore"] = UNKNOWN
        return "relocate-or-policy"
    current = Facts(facts.size_bytes, prior.get("disk_type"), prior.get("adapter_type"), facts.profile_id,
                    facts.datastore, facts.datastore_free, facts.cow_snapshots, facts.linked_clone)
    retype = decide_retype(current, plan["disk_type"], plan["adapter_type"],
                           profile_change=plan.get("storage_policy") != prior.get("storage_policy"),
                           new_profile=bool(plan.get("storage_policy")))
    if retype.noop:
        return "none"
    if retype.copies_data and facts.linked_children:
        refusal = parent_refusal(facts, "retype it", "disk_type")
        diags.error(refusal.summary, refusal.detail, refusal.attribute)
        return None
    if facts.in_use_by:
        diags.error("Volume is in use: cannot retype it", f"The volume's disk is attached to "
                    f"{', '.join(facts.in_use_by)}. Detach it first (Cinder refuses to retype an attached volume).",
                    "disk_type")
        return None
    decision["retype_may_move"] = retype.may_move
    if retype.may_move and not _known(req.config.get("datastore")):
        plan["datastore"] = UNKNOWN
    copied = f" It copies the volume's data ({prior.get('size_gb')} GiB)." if retype.copies_data else ""
    diags.warning(f"Retype: {retype.path}", "apply will " + "; then ".join(retype.steps) + "." + copied
                  + "".join(f" Note: {w}." for w in retype.warnings))
    return retype.path
