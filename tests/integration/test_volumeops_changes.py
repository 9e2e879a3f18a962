"""VolumeOps against vcsim: clone, extend, relocate, retype.

vcsim gaps that force request-level assertions here (captured with soap_capture):
* full clone rewrites the SOURCE VM's disk backing to the clone's file;
* linked clones get new empty disks without a parent; clone disk locators/transforms ignored;
* RelocateVM_Task only changes vm.datastore (disk file/backing datastore stay, locators ignored);
* shrinking by ReconfigVM is accepted (vSphere refuses); PBM profiles are ignored.
"""

from __future__ import annotations


import pytest
from pyVmomi import vim

from soap_capture import SoapCapture
from terraform_provider_vmdk.vsphere import exceptions as exc
from terraform_provider_vmdk.vsphere import specs
from terraform_provider_vmdk.vsphere.volumeops import ExtendRefused
from test_volumeops import (  # noqa: F401 - fixtures
    GiB,
    consumer_vm,
    create,
    disk_of,
    extra_config,
    folder_path,
    inventory,
    made,
    new_id,
    ops,
    places,
    vm_props,
    vms_named,
)

pytestmark = pytest.mark.integration


class FakeSelector:
    """Stands in for DatastoreSelector: returns a fixed placement and records what was asked."""

    def __init__(self, placement, usable=True):
        self.placement, self.usable, self.asked, self.usable_asked = placement, usable, [], []

    def select(self, requirements):
        self.asked.append(requirements)
        return self.placement

    def is_usable(self, datastore, requirements):
        self.usable_asked.append((datastore, requirements))
        return self.usable


def _snapshot_count(session, vm) -> int:
    tree = vm_props(session, vm, "snapshot").get("snapshot")
    count, stack = 0, list(getattr(tree, "rootSnapshotList", None) or [])
    while stack:
        node = stack.pop()
        count += 1
        stack.extend(node.childSnapshotList or [])
    return count


# ---------------------------------------------------------------------------- clone
def test_full_clone(vsphere_session, inventory, ops, made, places):
    s = vsphere_session
    src = create(ops, made, places[0], size=2 * GiB, disk_type="thin")
    before = disk_of(s, src.moref).backing.fileName
    nid = new_id()
    made.ids.add(nid)
    with SoapCapture(s.si) as cap:
        b = ops.clone_backing(src, nid, "copy", "full", "eagerZeroedThick", places[1], 2 * GiB, description="c")
    # inventory: the new backing is a volume of ours with its own identity
    props = vm_props(s, b.moref, "name", "config.instanceUuid")
    assert props == {"name": f"volume-{nid}", "config.instanceUuid": nid}
    ec = extra_config(s, b.moref)
    assert ec[specs.KEY_VOLUME_ID] == nid and ec[specs.KEY_KIND] == specs.KIND_VOLUME
    assert disk_of(s, b.moref).backing.uuid == nid
    assert folder_path(s, inventory, b.moref) == "Volumes"
    assert (b.display_name, b.description) == ("copy", "c")
    assert ops.find_backing(nid).moref_value == b.moref_value
    # request: full clone to the selected datastore, disk locator converting to eager zeroed thick
    call = cap.last("CloneVM_Task")
    spec = call.args["spec"]
    assert call.this._moId == src.moref_value and call.args["name"] == f"volume-{nid}"
    assert spec.location.diskMoveType == "moveAllDiskBackingsAndDisallowSharing"
    assert spec.location.datastore._moId == places[1].datastore._moId
    assert spec.location.pool._moId == places[1].resource_pool._moId
    (loc,) = spec.location.disk
    assert loc.diskId == src.disk_key and loc.datastore._moId == places[1].datastore._moId
    assert (loc.diskBackingInfo.thinProvisioned, loc.diskBackingInfo.eagerlyScrub) == (False, True)
    assert spec.snapshot is None and spec.powerOn is False and spec.config.instanceUuid == nid
    assert "<eagerlyScrub>true</eagerlyScrub>" in call.xml
    # vcsim bug: full clone rewrites the source's disk backing to the clone's file; our request doesn't.
    after = disk_of(s, src.moref).backing.fileName
    assert after in (before, disk_of(s, b.moref).backing.fileName)


def test_linked_clone_uses_temporary_snapshot(vsphere_session, ops, made, places):
    s = vsphere_session
    src = create(ops, made, places[0], size=GiB)
    nid = new_id()
    made.ids.add(nid)
    with SoapCapture(s.si) as cap:
        b = ops.clone_backing(src, nid, "linked", "linked", "thin", places[1], GiB)
    methods = cap.methods()
    assert methods.index("CreateSnapshot_Task") < methods.index("CloneVM_Task") < methods.index("RemoveSnapshot_Task")
    spec = cap.last("CloneVM_Task").args["spec"]
    # vcsim gap: linked clones get an empty, parentless disk, so assert on the request
    assert spec.location.diskMoveType == "createNewChildDiskBacking"
    assert spec.location.datastore._moId == src.datastore._moId  # on the SOURCE's datastore
    assert not spec.location.disk  # a child disk cannot change type
    temp = cap.last("CreateSnapshot_Task")
    assert temp.this._moId == src.moref_value and (temp.args["memory"], temp.args["quiesce"]) == (False, False)
    assert spec.snapshot is not None
    assert cap.last("RemoveSnapshot_Task").this._moId == spec.snapshot._moId
    assert _snapshot_count(s, src.moref) == 0  # temporary snapshot gone
    assert b.volume_id == nid and vm_props(s, b.moref, "config.instanceUuid")["config.instanceUuid"] == nid


def test_linked_clone_bigger_falls_back_to_full_and_extends(vsphere_session, ops, made, places):
    s = vsphere_session
    src = create(ops, made, places[0], size=GiB, disk_type="thick")
    nid = new_id()
    made.ids.add(nid)
    with SoapCapture(s.si) as cap:
        b = ops.clone_backing(src, nid, "big", "linked", "thick", places[1], 3 * GiB)
    assert cap.count("CreateSnapshot_Task") == 0
    assert cap.last("CloneVM_Task").args["spec"].location.diskMoveType == "moveAllDiskBackingsAndDisallowSharing"
    assert disk_of(s, b.moref).capacityInKB == 3 * GiB // 1024  # inventory: grown after the clone
    grow = [c for c in cap.named("ReconfigVM_Task") if c.args["spec"].deviceChange
            and c.args["spec"].deviceChange[0].device.capacityInKB == 3 * GiB // 1024]
    assert grow and b.size_bytes == 3 * GiB


def test_clone_smaller_refused(ops, made, places):
    src = create(ops, made, places[0], size=2 * GiB)
    with pytest.raises(exc.InvalidVolume):
        ops.clone_backing(src, new_id(), "x", "full", "thin", places[0], GiB)


def test_clone_from_cow_snapshot_uses_it_directly(vsphere_session, ops, made, places):
    s = vsphere_session
    src = create(ops, made, places[0])
    snap = ops.create_snapshot(src, "s1", None, "COW")
    nid = new_id()
    made.ids.add(nid)
    with SoapCapture(s.si) as cap:
        b = ops.clone_backing(snap, nid, "from-snap", "linked", "thin", places[0], GiB)
    assert cap.count("CreateSnapshot_Task") == 0 and cap.count("RemoveSnapshot_Task") == 0
    spec = cap.last("CloneVM_Task").args["spec"]
    assert spec.snapshot._moId == snap.moref._moId and spec.location.diskMoveType == "createNewChildDiskBacking"
    assert _snapshot_count(s, src.moref) == 1 and b.volume_id == nid


def test_clone_from_template_snapshot_is_full(vsphere_session, ops, made, places):
    s = vsphere_session
    src = create(ops, made, places[0])
    snap = ops.create_snapshot(src, "t1", None, "template", snapshot_id=new_id())
    made.ids.add(snap.snapshot_id)
    nid = new_id()
    made.ids.add(nid)
    with SoapCapture(s.si) as cap:
        b = ops.clone_backing(snap, nid, "from-tmpl", "linked", "thick", places[1], GiB)
    call = cap.last("CloneVM_Task")
    assert call.this._moId == snap.moref._moId
    assert call.args["spec"].location.diskMoveType == "moveAllDiskBackingsAndDisallowSharing"
    assert call.args["spec"].config.instanceUuid == nid
    ec = extra_config(s, b.moref)
    assert ec[specs.KEY_KIND] == specs.KIND_VOLUME and ec.get(specs.KEY_SNAPSHOT_ID, "") == ""
    assert not vm_props(s, b.moref, "config.template")["config.template"]
    assert nid in ops.list_backings()


# ---------------------------------------------------------------------------- extend
class ShortOfSpace:
    """Session proxy reporting a chosen free space for one datastore: drives the pre-check path without
    making vcsim allocate hundreds of GiB (vcsim never refunds free space of destroyed VMs)."""

    def __init__(self, session, datastore, free):
        self._s, self._ds, self._free = session, datastore, free

    def __getattr__(self, name):
        return getattr(self._s, name)

    def get_properties(self, obj, props):
        got = self._s.get_properties(obj, props)
        if getattr(obj, "_moId", None) == self._ds._moId and "summary.freeSpace" in props:
            got["summary.freeSpace"] = self._free
        return got


def test_extend_in_place_keeps_eager_zero(vsphere_session, inventory, made, places):
    from terraform_provider_vmdk.vsphere.volumeops import VolumeOps

    s = vsphere_session
    # vcsim never gives free space back when VMs are destroyed, so a long-lived vcsim can report a
    # (negative) full datastore; report ample space so this test is about growing in place.
    ops = VolumeOps(ShortOfSpace(s, places[0].datastore, 1 << 50), inventory)
    b = create(ops, made, places[0], size=GiB, disk_type="eagerZeroedThick")
    with SoapCapture(s.si) as cap:
        b2 = ops.extend_backing(b, 4 * GiB)
    assert disk_of(s, b.moref).capacityInKB == 4 * GiB // 1024  # inventory
    assert b2.size_bytes == 4 * GiB and cap.count("RelocateVM_Task") == 0
    change = cap.last("ReconfigVM_Task").args["spec"].deviceChange[0]
    assert change.operation == "edit" and change.device.capacityInKB == 4 * GiB // 1024
    assert change.device.capacityInBytes == 4 * GiB and change.device.backing.eagerlyScrub is True
    assert ops.extend_backing(b2, 4 * GiB) == b2  # same size: nothing to do


def test_shrink_refused_and_never_sent(vsphere_session, ops, made, places):
    # vcsim gap: vcsim would accept a shrinking ReconfigVM; we must never send one.
    b = create(ops, made, places[0], size=2 * GiB)
    with SoapCapture(vsphere_session.si) as cap, pytest.raises(exc.InvalidVolume, match="cannot shrink"):
        ops.extend_backing(b, GiB)
    assert cap.count("ReconfigVM_Task") == 0
    assert disk_of(vsphere_session, b.moref).capacityInKB == 2 * GiB // 1024


def test_extend_refused_with_snapshots(vsphere_session, ops, made, places):
    b = create(ops, made, places[0])
    ops.create_snapshot(b, "s", None, "COW")
    with SoapCapture(vsphere_session.si) as cap, pytest.raises(ExtendRefused, match="delete them"):
        ops.extend_backing(ops.refresh(b), 2 * GiB)
    assert cap.count("ReconfigVM_Task") == 0


def test_extend_relocates_when_datastore_too_small(vsphere_session, inventory, made, places):
    from terraform_provider_vmdk.vsphere.volumeops import VolumeOps

    s = vsphere_session
    tight = VolumeOps(ShortOfSpace(s, places[0].datastore, GiB // 2), inventory)
    b = create(tight, made, places[0], size=GiB, disk_type="thick")
    sel = FakeSelector(places[1])
    with SoapCapture(s.si) as cap:
        b2 = tight.extend_backing(b, 3 * GiB, sel)
    (req,) = sel.asked
    assert req.size_bytes == 3 * GiB and places[0].datastore._moId in req.excluded_datastores
    reloc = cap.last("RelocateVM_Task").args["spec"]
    assert reloc.datastore._moId == places[1].datastore._moId
    assert cap.methods().index("RelocateVM_Task") < max(i for i, m in enumerate(cap.methods()) if m == "ReconfigVM_Task")
    # inventory: vm.datastore now lists the target (vcsim leaves the disk file where it was) and the disk grew
    assert places[1].datastore._moId in [d._moId for d in vm_props(s, b.moref, "datastore")["datastore"]]
    assert disk_of(s, b.moref).capacityInKB == 3 * GiB // 1024 and b2.size_bytes == 3 * GiB


def test_extend_without_room_and_without_selector(vsphere_session, inventory, made, places):
    from terraform_provider_vmdk.vsphere.volumeops import VolumeOps

    tight = VolumeOps(ShortOfSpace(vsphere_session, places[0].datastore, GiB // 2), inventory)
    b = create(tight, made, places[0], size=GiB, disk_type="eagerZeroedThick")
    with SoapCapture(vsphere_session.si) as cap, pytest.raises(exc.NoDiskSpace):
        tight.extend_backing(b, 2 * GiB)
    assert cap.count("ReconfigVM_Task") == 0
    # a thin disk needs no room to grow: no pre-check refusal
    thin = create(tight, made, places[0], size=GiB, disk_type="thin")
    assert tight.extend_backing(thin, 2 * GiB).size_bytes == 2 * GiB


def test_extend_retries_after_no_space_fault(vsphere_session, ops, made, places):
    """A NoDiskSpace fault from the grow itself (thin disk: no free-space pre-check) relocates and
    retries. vcsim never runs out of space, so the fault is injected in place of the first request."""
    b = create(ops, made, places[0], size=GiB, disk_type="thin")
    sel = FakeSelector(places[1])
    fault = vim.fault.NoDiskSpace(datastore=places[0].datastore_name, msg="no space")
    with SoapCapture(vsphere_session.si, fail={"ReconfigVM_Task": fault}) as cap:
        b2 = ops.extend_backing(b, 2 * GiB, sel)
    assert cap.count("ReconfigVM_Task") == 2 and cap.count("RelocateVM_Task") == 1 and len(sel.asked) == 1
    assert b2.size_bytes == 2 * GiB
    assert places[1].datastore._moId in [d._moId for d in vm_props(vsphere_session, b.moref, "datastore")["datastore"]]


# ---------------------------------------------------------------------------- relocate
def test_relocate_with_locator_and_folder(vsphere_session, inventory, ops, made, places):
    s = vsphere_session
    b = create(ops, made, places[0], disk_type="thin")
    other = ops.folder("Elsewhere")
    s.run_task(other.MoveIntoFolder_Task, list=[b.moref])
    b = ops.refresh(b)
    with SoapCapture(s.si) as cap:
        ops.relocate_backing(b, places[1], "thick")
    spec = cap.last("RelocateVM_Task").args["spec"]
    assert spec.diskMoveType == "moveAllDiskBackingsAndAllowSharing"
    assert spec.datastore._moId == places[1].datastore._moId and spec.host._moId == places[1].host._moId
    (loc,) = spec.disk
    assert loc.diskId == b.disk_key and (loc.diskBackingInfo.thinProvisioned, loc.diskBackingInfo.eagerlyScrub) == (
        False, False)
    # inventory: vm.datastore lists the target (vcsim ignores the locator) and the VM is back in Volumes
    assert places[1].datastore._moId in [d._moId for d in vm_props(s, b.moref, "datastore")["datastore"]]
    assert folder_path(s, inventory, b.moref) == "Volumes"


# ---------------------------------------------------------------------------- retype
def test_retype_disk_type_same_datastore_clones(vsphere_session, inventory, ops, made, places):
    s = vsphere_session
    b = create(ops, made, places[0], disk_type="thin", name="keep-me", description="d")
    with SoapCapture(s.si) as cap:
        result = ops.retype(b, "eagerZeroedThick", "lsiLogic")
    assert result.path == "clone" and result.plan.path == "clone"
    renames = [c.args["newName"] for c in cap.named("Rename_Task")]
    assert len(renames) == 1 and renames[0].startswith(f"{b.name}-retype-")
    call = cap.last("CloneVM_Task")
    loc = call.args["spec"].location
    assert call.args["name"] == b.name and loc.datastore._moId == b.datastore._moId
    assert loc.diskMoveType == "moveAllDiskBackingsAndDisallowSharing"
    assert (loc.disk[0].diskBackingInfo.thinProvisioned, loc.disk[0].diskBackingInfo.eagerlyScrub) == (False, True)
    # inventory: one VM with the volume's name and identity, the old one destroyed
    (only,) = vms_named(s, inventory, b.name)
    assert only.obj._moId == result.backing.moref_value != b.moref_value
    assert not vms_named(s, inventory, renames[0])
    props = vm_props(s, only.obj, "config.instanceUuid", "config.annotation")
    assert props["config.instanceUuid"] == b.volume_id
    assert specs.decode_annotation(props["config.annotation"]) == ("keep-me", "d")
    assert disk_of(s, only.obj).backing.uuid == b.volume_id
    assert ops.find_backing(b.volume_id).moref_value == only.obj._moId
    assert list(ops.list_backings()).count(b.volume_id) == 1


def test_retype_clone_failure_undoes_rename(vsphere_session, inventory, ops, made, places):
    b = create(ops, made, places[0], disk_type="thin")
    fault = vim.fault.InvalidState(msg="clone failed (injected)")
    with SoapCapture(vsphere_session.si, fail={"CloneVM_Task": fault}) as cap, pytest.raises(Exception):
        ops.retype(b, "thick", "lsiLogic")
    assert [c.args["newName"] for c in cap.named("Rename_Task")][-1] == b.name  # rename undone
    assert vm_props(vsphere_session, b.moref, "name")["name"] == b.name
    assert ops.find_backing(b.volume_id).moref_value == b.moref_value


def test_retype_disk_type_with_snapshots_relocates(vsphere_session, ops, made, places):
    s = vsphere_session
    b = create(ops, made, places[0], disk_type="thin")
    ops.create_snapshot(b, "keep", None, "COW")
    b = ops.refresh(b)
    sel = FakeSelector(places[1])
    with SoapCapture(s.si) as cap:
        result = ops.retype(b, "eagerZeroedThick", "lsiLogic", selector=sel)
    assert result.path == "relocate" and result.relocated_to == places[1].datastore_name
    (req,) = sel.asked
    assert places[0].datastore._moId in req.excluded_datastores  # current datastore excluded
    assert cap.count("CloneVM_Task") == 0
    spec = cap.last("RelocateVM_Task").args["spec"]
    (loc,) = spec.disk
    assert (loc.diskBackingInfo.thinProvisioned, loc.diskBackingInfo.eagerlyScrub) == (False, True)
    assert loc.datastore._moId == places[1].datastore._moId
    assert "<eagerlyScrub>true</eagerlyScrub>" in cap.last("RelocateVM_Task").xml
    assert _snapshot_count(s, b.moref) == 1  # snapshots kept (that is why we relocate)


def test_retype_adapter_reattaches_same_file(vsphere_session, ops, made, places):
    s = vsphere_session
    b = create(ops, made, places[0], adapter="lsiLogic")
    result = ops.retype(b, "thin", "paraVirtual")
    assert result.path == "adapter"
    disk = disk_of(s, b.moref)
    controller = next(d for d in vm_props(s, b.moref, "config.hardware.device")["config.hardware.device"]
                      if d.key == disk.controllerKey)
    assert isinstance(controller, vim.vm.device.ParaVirtualSCSIController)
    assert disk.backing.fileName == b.vmdk_path  # same VMDK, not a new one
    assert result.backing.adapter_type == "paraVirtual"
    # and back to IDE (the default controller 200)
    result = ops.retype(result.backing, "thin", "ide")
    assert disk_of(s, b.moref).controllerKey == 200 and result.backing.adapter_type == "ide"


def test_retype_policy(vsphere_session, ops, made, places):
    # vcsim gap: PBM ignores profiles, so the profile specs are checked in the request.
    s = vsphere_session
    b = create(ops, made, places[0])
    sel = FakeSelector(places[1], usable=True)
    with SoapCapture(s.si) as cap:
        result = ops.retype(b, "thin", "lsiLogic", "prof-gold", new_profile_name="gold", selector=sel)
    assert result.path == "policy" and not sel.asked and sel.usable_asked[0][1].profile_name == "gold"
    spec = cap.last("ReconfigVM_Task").args["spec"]
    assert spec.vmProfile[0].profileId == "prof-gold" and spec.deviceChange[0].profile[0].profileId == "prof-gold"
    assert extra_config(s, b.moref)[specs.KEY_PROFILE_ID] == "prof-gold" and result.backing.profile_id == "prof-gold"

    # non-compliant datastore: relocate to a compliant one with the policy on the locator
    sel2 = FakeSelector(places[1], usable=False)
    with SoapCapture(s.si) as cap:
        result = ops.retype(result.backing, "thin", "lsiLogic", "prof-silver", new_profile_name="silver",
                            selector=sel2)
    assert result.path == "relocate" and sel2.asked[0].profile_name == "silver"
    assert cap.last("RelocateVM_Task").args["spec"].disk[0].profile[0].profileId == "prof-silver"

    # clearing the policy sends the empty profile
    with SoapCapture(s.si) as cap:
        result = ops.retype(result.backing, "thin", "lsiLogic", None, selector=sel2)
    assert isinstance(cap.last("ReconfigVM_Task").args["spec"].vmProfile[0], vim.vm.EmptyProfileSpec)
    assert result.backing.profile_id is None


def test_retype_refused_in_use(vsphere_session, inventory, ops, made, places):
    b = create(ops, made, places[0])
    consumer_vm(vsphere_session, inventory, made, places[0], b.vmdk_path, f"vm-{b.volume_id[:8]}")
    with pytest.raises(exc.VolumeInUse):
        ops.retype(b, "thick", "lsiLogic")


def test_plan_retype_matches_apply(ops, made, places):
    for disk_type, adapter, path in (("thick", "lsiLogic", "clone"), ("thin", "busLogic", "adapter")):
        b = create(ops, made, places[0])
        plan = ops.plan_retype(b, disk_type, adapter)
        result = ops.retype(b, disk_type, adapter)
        assert plan == result.plan and result.path == path == plan.path
    # A clone and an adapter change in one retype is not exercised here: after vcsim's clone bug the
    # old VM's Destroy_Task deletes the NEW disk file, so the re-attach finds no file in vcsim.
