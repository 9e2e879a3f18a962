"""The volume policy without vSphere: every plan rule (extend, retype, clone, in use, repairs), the choice of a
volume's backing among its VMs, and the plan ``vmdk_volume`` shows for each."""

from __future__ import annotations

import datetime as dt

import pytest
from pyVmomi import vim

from terraform_provider_vmdk.framework.planning import plan_resource_change
from terraform_provider_vmdk.framework.resource import PlanRequest
from terraform_provider_vmdk.framework.unknowns import UNKNOWN
from terraform_provider_vmdk.resources.volume import VolumeResource, volume_id_of
from terraform_provider_vmdk.resources.volume_policy import (
    EXTEND_IN_PLACE,
    EXTEND_MAY_MOVE,
    EXTEND_NONE,
    Facts,
    decide_clone,
    decide_extend,
    decide_retype,
)
from terraform_provider_vmdk.vsphere.volumes import backing as bk
from terraform_provider_vmdk.vsphere.volumes import specs
from terraform_provider_vmdk.vsphere.volumes.lookup import build_index, choose

GiB = 1024**3
VOL = "0f3e9a1c-1111-4222-8333-944455556666"


def facts(**kw) -> Facts:
    base = {"size_bytes": 10 * GiB, "disk_type": "thick", "adapter_type": "lsiLogic", "datastore": "ds-a",
            "datastore_free": 100 * GiB}
    base.update(kw)
    return Facts(**base)


# ---------------------------------------------------------------------------------------------- extend
def test_extend_same_size_is_nothing() -> None:
    assert decide_extend(facts(), 10 * GiB, "thick", pinned=False).mode == EXTEND_NONE


def test_shrink_is_refused_on_size_gb() -> None:
    d = decide_extend(facts(), 5 * GiB, "thick", pinned=False)
    assert d.refusal is not None and d.refusal.attribute == "size_gb" and "cannot shrink" in d.refusal.summary


def test_extend_with_cow_snapshots_or_of_a_linked_clone_is_refused() -> None:
    assert "snapshots" in decide_extend(facts(cow_snapshots=2), 20 * GiB, "thick", pinned=False).refusal.summary
    assert "Linked clone" in decide_extend(facts(linked_clone=True), 20 * GiB, "thin", pinned=False).refusal.summary


def test_extend_with_room_is_in_place() -> None:
    d = decide_extend(facts(datastore_free=10 * GiB), 20 * GiB, "thick", pinned=False)
    assert (d.mode, d.new_size_bytes, d.refusal) == (EXTEND_IN_PLACE, 20 * GiB, None)


def test_thin_extend_needs_no_room() -> None:
    assert decide_extend(facts(datastore_free=0), 20 * GiB, "thin", pinned=False).mode == EXTEND_IN_PLACE


def test_unknown_free_space_is_in_place() -> None:
    assert decide_extend(facts(datastore_free=None), 20 * GiB, "thick", pinned=False).mode == EXTEND_IN_PLACE


def test_no_room_moves_first_unless_the_datastore_is_pinned() -> None:
    d = decide_extend(facts(datastore_free=GiB), 20 * GiB, "eagerZeroedThick", pinned=False)
    assert d.mode == EXTEND_MAY_MOVE and "relocates" in d.warning
    pinned = decide_extend(facts(datastore_free=GiB), 20 * GiB, "eagerZeroedThick", pinned=True)
    assert pinned.refusal is not None and "lacks room" in pinned.refusal.summary


# ---------------------------------------------------------------------------------------------- retype
def retype(f: Facts, disk: str, adapter: str = "lsiLogic", *, change: bool = False, new: bool = False,
           compliant: bool | None = None):
    return decide_retype(f, disk, adapter, profile_change=change, new_profile=new, current_compliant=compliant)


def test_retype_nothing() -> None:
    assert retype(facts(), "thick").noop


def test_type_change_without_snapshots_copies_on_the_same_datastore() -> None:
    d = retype(facts(), "eagerZeroedThick")
    assert d.path == "clone" and d.copies_data and not d.may_move and d.relocate is False


def test_type_change_with_snapshots_relocates_away_from_the_current_datastore() -> None:
    d = retype(facts(cow_snapshots=1), "thin")
    assert d.path == "relocate" and d.relocate and d.exclude_current_datastore and d.may_move
    assert "snapshot" in d.warnings[0]


def test_new_policy_keeps_a_compliant_datastore_else_moves() -> None:
    assert retype(facts(), "thick", change=True, new=True, compliant=True).path == "policy"
    moved = retype(facts(), "thick", change=True, new=True, compliant=False)
    assert moved.path == "relocate" and not moved.exclude_current_datastore
    unknown = retype(facts(), "thick", change=True, new=True)
    assert unknown.path == "relocate-or-policy" and unknown.relocate is None and unknown.may_move


def test_clearing_a_policy_never_moves() -> None:
    d = retype(facts(profile_id="p"), "thick", change=True, new=False)
    assert d.path == "policy" and not d.may_move and "clear storage policy" in d.steps


def test_adapter_only_and_combined() -> None:
    assert retype(facts(), "thick", "paraVirtual").path == "adapter"
    both = retype(facts(), "thin", "paraVirtual")
    assert both.path == "clone" and both.adapter_change and len(both.steps) == 2


# ---------------------------------------------------------------------------------------------- clone
def test_clone_rules() -> None:
    assert decide_clone("full", GiB, 2 * GiB, False).refusal.attribute == "size_gb"
    same = decide_clone("linked", 2 * GiB, 2 * GiB, False)
    assert same.linked and same.extend_to is None
    bigger = decide_clone("linked", 3 * GiB, 2 * GiB, False)
    assert not bigger.linked and bigger.extend_to == 3 * GiB and bigger.note
    assert not decide_clone("linked", 2 * GiB, 2 * GiB, True).linked
    assert decide_clone("full", 3 * GiB, 2 * GiB, False).extend_to == 3 * GiB


def test_facts_round_trip_through_private_state() -> None:
    f = facts(in_use_by=("vm-a",), repairs=("x",), cow_snapshots=1)
    assert Facts.from_private(f.to_private()) == f
    assert Facts.from_private(None) is None and Facts.from_private({"size_bytes": "x"}) is None


# ---------------------------------------------------------------------------------------------- choose
def record(moref: str, *, kind: str = specs.KIND_VOLUME, uuid: str = VOL, created: int = 1, disk: bool = True,
           snapshots: list | None = None) -> bk.Backing:
    devices = []
    if disk:
        backing = specs.disk_backing_info("thin", f"[ds] {moref}/{moref}.vmdk")
        backing.uuid = VOL
        devices.append(vim.vm.device.VirtualDisk(key=2000, controllerKey=1000, unitNumber=0, capacityInKB=1024,
                                                 backing=backing))
    props = {
        "name": moref, "config.instanceUuid": uuid, "config.hardware.device": devices,
        "config.extraConfig": specs.option_values(specs.volume_marks(VOL, None, kind)),
        "config.createDate": dt.datetime(2026, 1, created, tzinfo=dt.UTC),
        "snapshot": vim.vm.SnapshotInfo(rootSnapshotList=snapshots) if snapshots else None,
    }
    return bk.backing_from_props(vim.VirtualMachine(moref), props)


def test_choose_prefers_the_complete_backing_then_the_oldest() -> None:
    complete, half = record("vm-2", created=2), record("vm-1", disk=False)
    choice = choose([half, complete])
    assert choice.primary is complete and choice.leftovers == (half,)
    older, newer = record("vm-9", created=1), record("vm-3", created=5)
    assert choose([newer, older]).primary is older
    assert "duplicate backing" in choose([newer, older]).repairs()[0]


def test_a_retype_copy_is_the_volume_only_once_the_original_is_gone() -> None:
    original, copy = record("vm-1"), record("vm-2", kind=specs.KIND_RETYPE, uuid=specs.retype_uuid(VOL))
    both = choose([copy, original])
    assert both.primary is original and both.leftovers == (copy,) and both.needs_repair
    alone = choose([copy])
    assert alone.primary is copy and "finish an interrupted retype" in alone.repairs()[0]


def test_leftover_temporary_snapshots_are_a_repair_not_a_user_snapshot() -> None:
    tree = vim.vm.SnapshotTree(name="clone-x", snapshot=vim.vm.Snapshot("snap-1"), id=1, state="poweredOff",
                               quiesced=False, vm=vim.VirtualMachine("vm-1"),
                               createTime=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                               description=specs.encode_snapshot_description(None, specs.TEMPORARY_SNAPSHOT + "x"))
    r = record("vm-1", snapshots=[tree])
    assert r.user_snapshots == () and len(r.temporary_snapshots) == 1
    assert Facts.of(r, None, (), choose([r])).cow_snapshots == 0
    assert "temporary snapshot" in choose([r]).repairs()[0]


def test_index_knows_who_uses_a_disk() -> None:
    mine = record("vm-1")
    other = {"name": "instance", "config.hardware.device": list(mine.devices)}
    index = build_index([(mine.moref, {"name": "vm-1", "config.instanceUuid": VOL,
                                       "config.extraConfig": specs.option_values(specs.volume_marks(VOL)),
                                       "config.hardware.device": list(mine.devices)}),
                         (vim.VirtualMachine("vm-7"), other)])
    assert index.users_of(index.primary(VOL)) == ["instance"]
    index.drop("vm-7")
    assert index.users_of(index.primary(VOL)) == []


# ---------------------------------------------------------------------------------------------- the plan
STATE = {"id": VOL, "name": "v", "description": None, "size_gb": 10, "disk_type": "thick", "adapter_type": "lsiLogic",
         "storage_policy": None, "datastore": "ds-a", "source_volume_id": None, "source_snapshot_id": None,
         "clone_type": "full", "backing_name": f"volume-{VOL}", "backing_moref": "vm-1",
         "vmdk_path": f"[ds-a] volume-{VOL}/volume-{VOL}.vmdk", "disk_uuid": VOL,
         "connection_info": {"volume": "vm-1"}, "timeouts": None, "deletion_protection": False,
         "keep_on_destroy": False, "datastore_cluster": None, "datastore_cluster_mode": None}


def plan(change: dict, f: Facts | None = None, config_datastore: str | None = None):
    cfg = dict.fromkeys(STATE)
    cfg.update({k: STATE[k] for k in ("name", "size_gb", "disk_type", "adapter_type", "clone_type")})
    cfg.update(change)
    cfg["datastore"] = config_datastore
    proposed = {**STATE, **change}
    if config_datastore:
        proposed["datastore"] = config_datastore
    private = {"facts": (f or facts()).to_private()}
    req = PlanRequest(config=cfg, prior=dict(STATE), private=private)
    outcome = plan_resource_change(VolumeResource(), req, proposed)
    return outcome, req


def messages(req: PlanRequest) -> list[tuple[str, str, str]]:
    return [(d.severity.value, d.summary, str(d.path) if d.path else "") for d in req.diagnostics]


def test_plan_no_change_keeps_computed_values() -> None:
    outcome, req = plan({})
    assert outcome.plan == STATE and not list(req.diagnostics)


def test_plan_grow_in_place() -> None:
    outcome, req = plan({"size_gb": 20})
    assert outcome.plan["datastore"] == "ds-a" and outcome.plan["vmdk_path"] == STATE["vmdk_path"]
    assert outcome.private["decision"] == {"extend": EXTEND_IN_PLACE}
    assert not list(req.diagnostics)


def test_plan_grow_without_room_moves_first() -> None:
    outcome, req = plan({"size_gb": 20}, facts(datastore_free=GiB))
    assert outcome.plan["datastore"] == UNKNOWN and outcome.plan["vmdk_path"] == UNKNOWN
    assert messages(req) == [("warning", "Volume will move before it grows", "size_gb")]
    assert outcome.private["decision"]["extend"] == EXTEND_MAY_MOVE


def test_plan_grow_without_room_on_a_pinned_datastore_is_an_error() -> None:
    _, req = plan({"size_gb": 20}, facts(datastore_free=GiB), config_datastore="ds-a")
    assert messages(req) == [("error", "Datastore lacks room to extend", "size_gb")]


def test_plan_shrink_and_snapshots_are_errors_on_size_gb() -> None:
    assert messages(plan({"size_gb": 5})[1]) == [("error", "Volumes cannot shrink", "size_gb")]
    assert messages(plan({"size_gb": 20}, facts(cow_snapshots=1))[1])[0][2] == "size_gb"


def test_plan_refuses_changes_to_a_volume_in_use() -> None:
    assert messages(plan({"size_gb": 20}, facts(in_use_by=("vm-a",)))[1])[0][:2] == (
        "error", "Volume is in use: cannot extend it")
    assert messages(plan({"disk_type": "thin"}, facts(in_use_by=("vm-a",)))[1])[0][2] == "disk_type"


def test_plan_retype_by_copy_warns_and_gives_a_new_vm() -> None:
    outcome, req = plan({"disk_type": "eagerZeroedThick"})
    assert messages(req) == [("warning", "Retype: clone", "")]
    assert outcome.plan["backing_moref"] == UNKNOWN and outcome.plan["datastore"] == "ds-a"
    assert outcome.private["decision"] == {"retype_may_move": False}


def test_plan_new_policy_may_move() -> None:
    outcome, req = plan({"storage_policy": "gold"})
    assert outcome.plan["datastore"] == UNKNOWN and outcome.private["decision"]["retype_may_move"]
    assert messages(req)[0][1] == "Retype: relocate-or-policy"


def test_plan_relocation_to_a_named_datastore() -> None:
    outcome, req = plan({}, config_datastore="ds-b")
    assert outcome.plan["datastore"] == "ds-b" and outcome.plan["vmdk_path"] == UNKNOWN
    assert messages(req) == [("warning", "Volume will be relocated", "datastore")]


def test_plan_repairs_an_interrupted_change_as_an_update() -> None:
    outcome, req = plan({}, facts(repairs=("finish an interrupted retype",)))
    assert outcome.plan["backing_moref"] == UNKNOWN and outcome.private["decision"] == {"repair": True}
    assert messages(req) == [("warning", "The volume's last change did not finish", "")]


def test_plan_without_kept_facts_uses_the_state() -> None:
    cfg_change = {"size_gb": 20}
    outcome, _req = plan(cfg_change)
    assert outcome.private["decision"]["extend"] == EXTEND_IN_PLACE
    req2 = PlanRequest(config={**dict.fromkeys(STATE), **{k: STATE[k] for k in ("name", "disk_type",
                                                                                    "adapter_type", "clone_type")},
                               "size_gb": 20}, prior=dict(STATE), private={})
    outcome2 = plan_resource_change(VolumeResource(), req2, {**STATE, "size_gb": 20})
    assert outcome2.private["decision"]["extend"] == EXTEND_IN_PLACE and not req2.diagnostics.has_errors


@pytest.mark.parametrize("state, expected", [
    ({"id": VOL}, VOL), ({"id": None, "backing_name": f"volume-{VOL}"}, VOL), ({"id": None}, None),
    ({"id": "not-a-uuid"}, None), ({"id": UNKNOWN, "backing_name": None}, None), (None, None)])
def test_volume_id_of_any_state(state, expected) -> None:
    assert volume_id_of(state) == expected


def test_a_volume_linked_clones_build_on_cannot_grow_move_or_be_copied() -> None:
    parent = facts(linked_children=("volume-child",))
    refusal = decide_extend(parent, 20 * GiB, "thick", pinned=False).refusal
    assert refusal is not None and "source of linked clones" in refusal.summary and "volume-child" in refusal.detail
    assert messages(plan({"disk_type": "thin"}, parent)[1])[0] == (
        "error", "Volume is the source of linked clones: cannot retype it", "disk_type")
    assert messages(plan({}, parent, config_datastore="ds-b")[1])[0][2] == "datastore"
    assert not plan({"adapter_type": "paraVirtual"}, parent)[1].diagnostics.has_errors  # no copy, no move
