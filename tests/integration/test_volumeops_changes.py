"""VolumeOps mechanics and the volume policy's executor against the test vCenter: clone, extend, relocate, retype.

Each test checks the inventory (our simulator does what vSphere does: clones copy and convert, linked clones
get a child disk, relocation moves the files, a shrink or the growth of a disk with snapshots is refused)
and, beside it, the request we sent (soap_capture), which is what a stock vcsim can still check.
"""

from __future__ import annotations

import pytest
from pyVmomi import vim
from soap_capture import SoapCapture
from test_volumeops import (  # fixtures inventory, made, ops, places: see conftest.py
    GiB,
    consumer_vm,
    create,
    disk_of,
    extra_config,
    file_exists,
    folder_path,
    new_id,
    vm_props,
    vms_named,
)

from terraform_provider_vmdk.framework.diagnostics import DiagnosticError
from terraform_provider_vmdk.resources.volume_policy import EXTEND_IN_PLACE, EXTEND_MAY_MOVE, Executor
from terraform_provider_vmdk.vsphere import exceptions as exc
from terraform_provider_vmdk.vsphere.volumes import specs
from terraform_provider_vmdk.vsphere.volumes.lookup import choose

pytestmark = pytest.mark.integration


class FakeSelector:
    """Stands in for DatastoreSelector: returns a fixed placement and records what was asked."""

    def __init__(self, placement, usable=True, profiles=None):
        self.placement, self.usable, self.asked, self.usable_asked = placement, usable, [], []
        self.profiles = profiles or {}

    def select(self, requirements, reserve=False):
        self.asked.append(requirements)
        return self.placement

    def is_usable(self, datastore, requirements):
        self.usable_asked.append((datastore, requirements))
        return self.usable

    def profile_id(self, name):
        return self.profiles.get(name) if name else None


class FakeBackend:
    """What the policy's executor needs from VolumeBackend, without its process-wide caches."""

    def __init__(self, ops, selector=None):
        self.ops, self.selector = ops, selector

    def users_of(self, backing):
        return self.ops.load_index().users_of(backing)

    def children_of(self, backing):
        return self.ops.load_index().children_of(backing)

    def remember(self, backing):
        pass

    def forget(self, backing):
        pass

    def choice(self, volume_id, fresh=False):
        return choose(self.ops.load_index().volumes.get(volume_id, []))

    def fresh_index(self):
        return self.ops.load_index()

    def decide_on(self, volume_id):
        index = self.ops.load_index()
        return index.choice(volume_id), index


def executor(ops, selector=None) -> Executor:
    return Executor(FakeBackend(ops, selector))


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
        b = ops.clone_backing(src, nid, "copy", linked=False, disk_type="eagerZeroedThick", placement=places[1],
                              description="c")
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
    # inventory: the source is untouched, the clone has its own eager-zeroed disk on the target datastore
    assert disk_of(s, src.moref).backing.fileName == before
    copy = disk_of(s, b.moref).backing
    assert copy.fileName != before and copy.fileName.startswith(f"[{places[1].datastore_name}] ")
    assert (copy.thinProvisioned, copy.eagerlyScrub) == (False, True) and b.disk_type == "eagerZeroedThick"


def test_linked_clone_uses_temporary_snapshot(vsphere_session, ops, made, places):
    s = vsphere_session
    src = create(ops, made, places[0], size=GiB)
    nid = new_id()
    made.ids.add(nid)
    with SoapCapture(s.si) as cap:
        b = ops.clone_backing(src, nid, "linked", linked=True, disk_type="thin", placement=places[1])
    methods = cap.methods()
    assert methods.index("CreateSnapshot_Task") < methods.index("CloneVM_Task") < methods.index("RemoveSnapshot_Task")
    spec = cap.last("CloneVM_Task").args["spec"]
    assert spec.location.diskMoveType == "createNewChildDiskBacking"
    assert spec.location.datastore._moId == src.datastore._moId  # on the SOURCE's datastore
    assert not spec.location.disk  # a child disk cannot change type
    temp = cap.last("CreateSnapshot_Task")
    assert temp.this._moId == src.moref_value and (temp.args["memory"], temp.args["quiesce"]) == (False, False)
    assert temp.args["name"] == specs.temporary_snapshot_name(nid)
    assert spec.snapshot is not None
    assert cap.last("RemoveSnapshot_Task").this._moId == spec.snapshot._moId
    assert _snapshot_count(s, src.moref) == 0  # temporary snapshot gone
    assert b.volume_id == nid and vm_props(s, b.moref, "config.instanceUuid")["config.instanceUuid"] == nid
    # inventory: a child disk whose parent is the source's disk, on the source's datastore
    child = disk_of(s, b.moref).backing
    assert child.parent is not None and child.parent.fileName == src.vmdk_path
    assert child.fileName.startswith(f"[{src.datastore_name}] ") and b.is_linked_clone


def test_linked_clone_bigger_falls_back_to_full_and_extends(vsphere_session, ops, made, places):
    s = vsphere_session
    src = create(ops, made, places[0], size=GiB, disk_type="thick")
    nid = new_id()
    made.ids.add(nid)
    place = places[1]
    with SoapCapture(s.si) as cap:
        b = executor(ops).clone(src, nid, name="big", description=None, clone_type="linked", disk_type="thick",
                                placement=place, size_bytes=3 * GiB)
    assert cap.count("CreateSnapshot_Task") == 0
    assert cap.last("CloneVM_Task").args["spec"].location.diskMoveType == "moveAllDiskBackingsAndDisallowSharing"
    assert disk_of(s, b.moref).capacityInKB == 3 * GiB // 1024  # inventory: grown after the clone
    grow = [c for c in cap.named("ReconfigVM_Task") if c.args["spec"].deviceChange
            and c.args["spec"].deviceChange[0].device.capacityInKB == 3 * GiB // 1024]
    assert grow and b.size_bytes == 3 * GiB


def test_clone_smaller_refused_before_anything_is_sent(vsphere_session, ops, made, places):
    src = create(ops, made, places[0], size=2 * GiB)
    with SoapCapture(vsphere_session.si) as cap, pytest.raises(DiagnosticError) as err:
        executor(ops).clone(src, new_id(), name="x", description=None, clone_type="full", disk_type="thin",
                            placement=places[0], size_bytes=GiB)
    assert str(next(iter(err.value.diagnostics)).path) == "size_gb" and cap.count("CloneVM_Task") == 0


def test_clone_from_cow_snapshot_uses_it_directly(vsphere_session, ops, made, places):
    s = vsphere_session
    src = create(ops, made, places[0])
    snap = ops.create_snapshot(src, "s1", None, "COW", snapshot_id=new_id())
    nid = new_id()
    made.ids.add(nid)
    with SoapCapture(s.si) as cap:
        b = ops.clone_backing(snap, nid, "from-snap", linked=True, disk_type="thin", placement=places[0])
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
        b = executor(ops).clone(snap, nid, name="from-tmpl", description=None, clone_type="linked",
                                disk_type="thick", placement=places[1], size_bytes=GiB)
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


def _ops_with_free(session, inventory, place, free):
    from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

    return VolumeOps(ShortOfSpace(session, place.datastore, free), inventory)


def test_extend_in_place_keeps_eager_zero(vsphere_session, inventory, made, places):
    s = vsphere_session
    # vcsim never gives free space back when VMs are destroyed, so a long-lived vcsim can report a
    # (negative) full datastore; report ample space so this test is about growing in place.
    ops = _ops_with_free(s, inventory, places[0], 1 << 50)
    b = create(ops, made, places[0], size=GiB, disk_type="eagerZeroedThick")
    with SoapCapture(s.si) as cap:
        b2 = executor(ops).extend(b, 4 * GiB, EXTEND_IN_PLACE, None)
    assert disk_of(s, b.moref).capacityInKB == 4 * GiB // 1024  # inventory
    assert b2.size_bytes == 4 * GiB and cap.count("RelocateVM_Task") == 0
    change = cap.last("ReconfigVM_Task").args["spec"].deviceChange[0]
    assert change.operation == "edit" and change.device.capacityInKB == 4 * GiB // 1024
    assert change.device.capacityInBytes == 4 * GiB and change.device.backing.eagerlyScrub is True
    with SoapCapture(s.si) as cap:
        assert executor(ops).extend(b2, 4 * GiB, EXTEND_IN_PLACE, None).size_bytes == 4 * GiB  # nothing to do
    assert cap.count("ReconfigVM_Task") == 0


def test_shrink_refused_and_never_sent(vsphere_session, ops, made, places):
    b = create(ops, made, places[0], size=2 * GiB)
    with SoapCapture(vsphere_session.si) as cap, pytest.raises(DiagnosticError, match="cannot shrink"):
        executor(ops).extend(b, GiB, EXTEND_IN_PLACE, None)
    assert cap.count("ReconfigVM_Task") == 0
    assert disk_of(vsphere_session, b.moref).capacityInKB == 2 * GiB // 1024


def test_extend_refused_with_snapshots(vsphere_session, ops, made, places):
    b = create(ops, made, places[0])
    ops.create_snapshot(b, "s", None, "COW", snapshot_id=new_id())
    with SoapCapture(vsphere_session.si) as cap, pytest.raises(DiagnosticError, match="snapshots"):
        executor(ops).extend(ops.refresh(b), 2 * GiB, EXTEND_IN_PLACE, None)
    assert cap.count("ReconfigVM_Task") == 0
    # vSphere refuses it too: the policy only says so earlier and more clearly
    with pytest.raises(exc.TaskFailed, match="InvalidDeviceOperation"):
        ops.grow(ops.refresh(b), 2 * GiB)
    with pytest.raises(exc.TaskFailed, match="InvalidDeviceOperation"):  # and a shrink
        vsphere_session.run_task(b.moref.ReconfigVM_Task, spec=specs.disk_grow_spec(b.disk, GiB // 2))


def test_extend_relocates_when_datastore_too_small(vsphere_session, inventory, made, places):
    s = vsphere_session
    tight = _ops_with_free(s, inventory, places[0], GiB // 2)
    b = create(tight, made, places[0], size=GiB, disk_type="thick")
    sel = FakeSelector(places[1])
    with SoapCapture(s.si) as cap:
        b2 = executor(tight, sel).extend(b, 3 * GiB, EXTEND_MAY_MOVE, None)
    (req,) = sel.asked
    assert req.size_bytes == 3 * GiB and places[0].datastore._moId in req.excluded_datastores
    reloc = cap.last("RelocateVM_Task").args["spec"]
    assert reloc.datastore._moId == places[1].datastore._moId
    last_reconfig = max(i for i, m in enumerate(cap.methods()) if m == "ReconfigVM_Task")
    assert cap.methods().index("RelocateVM_Task") < last_reconfig
    # inventory: the disk moved to the target and grew there
    assert places[1].datastore._moId in [d._moId for d in vm_props(s, b.moref, "datastore")["datastore"]]
    assert disk_of(s, b.moref).backing.fileName.startswith(f"[{places[1].datastore_name}] ")
    assert disk_of(s, b.moref).capacityInKB == 3 * GiB // 1024 and b2.size_bytes == 3 * GiB


def test_extend_planned_in_place_never_moves(vsphere_session, inventory, made, places):
    """Room ran out after the plan promised an in-place extend: apply tries in place and never moves."""
    tight = _ops_with_free(vsphere_session, inventory, places[0], GiB // 2)
    b = create(tight, made, places[0], size=GiB, disk_type="eagerZeroedThick")
    sel = FakeSelector(places[1])
    with SoapCapture(vsphere_session.si) as cap:
        executor(tight, sel).extend(b, 2 * GiB, EXTEND_IN_PLACE, None)  # vcsim does not run out of space
    assert cap.count("RelocateVM_Task") == 0 and not sel.asked


def test_extend_after_no_space_fault_moves_only_when_planned(vsphere_session, ops, made, places):
    """A NoDiskSpace fault from the grow itself (thin disk: no free-space pre-check) relocates and
    retries when the plan allowed a move; otherwise it is an error on size_gb that says to plan again.
    vcsim never runs out of space, so the fault is injected in place of the first request."""
    b = create(ops, made, places[0], size=GiB, disk_type="thin")
    sel = FakeSelector(places[1])
    fault = vim.fault.NoDiskSpace(datastore=places[0].datastore_name, msg="no space")
    with SoapCapture(vsphere_session.si, fail={"ReconfigVM_Task": fault}) as cap, \
            pytest.raises(DiagnosticError, match="Run terraform apply again"):
        executor(ops, sel).extend(b, 2 * GiB, EXTEND_IN_PLACE, None)
    assert cap.count("RelocateVM_Task") == 0
    with SoapCapture(vsphere_session.si, fail={"ReconfigVM_Task": fault}) as cap:
        b2 = executor(ops, sel).extend(b, 2 * GiB, EXTEND_MAY_MOVE, None)
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
    # inventory: the disk moved to the target as lazy-zeroed thick, the VM is back in Volumes
    assert places[1].datastore._moId in [d._moId for d in vm_props(s, b.moref, "datastore")["datastore"]]
    moved = disk_of(s, b.moref).backing
    assert moved.fileName.startswith(f"[{places[1].datastore_name}] ")
    assert (moved.thinProvisioned, moved.eagerlyScrub) == (False, False)
    assert not file_exists(ops, b.vmdk_path)  # nothing left behind on the source datastore
    assert folder_path(s, inventory, b.moref) == "Volumes"


# ---------------------------------------------------------------------------- retype
def test_retype_disk_type_same_datastore_copies_then_promotes(vsphere_session, inventory, ops, made, places):
    s = vsphere_session
    b = create(ops, made, places[0], disk_type="thin", name="keep-me", description="d")
    with SoapCapture(s.si) as cap:
        new = executor(ops).retype(b, "eagerZeroedThick", "lsiLogic", None, may_move=False)
    call = cap.last("CloneVM_Task")
    loc = call.args["spec"].location
    assert call.args["name"] == specs.retype_name(b.volume_id) and loc.datastore._moId == b.datastore._moId
    assert call.args["spec"].config.instanceUuid == specs.retype_uuid(b.volume_id)
    assert loc.diskMoveType == "moveAllDiskBackingsAndDisallowSharing"
    assert (loc.disk[0].diskBackingInfo.thinProvisioned, loc.disk[0].diskBackingInfo.eagerlyScrub) == (False, True)
    assert cap.methods().index("CloneVM_Task") < cap.methods().index("Destroy_Task")  # the original goes last
    # inventory: one VM with the volume's name and identity, the old one destroyed
    (only,) = vms_named(s, inventory, b.name)
    assert only.obj._moId == new.moref_value != b.moref_value
    assert not vms_named(s, inventory, specs.retype_name(b.volume_id))
    props = vm_props(s, only.obj, "config.instanceUuid", "config.annotation")
    assert props["config.instanceUuid"] == b.volume_id
    assert specs.decode_annotation(props["config.annotation"]) == ("keep-me", "d")
    assert extra_config(s, only.obj)[specs.KEY_KIND] == specs.KIND_VOLUME
    assert disk_of(s, only.obj).backing.uuid == b.volume_id
    converted = disk_of(s, only.obj).backing
    assert (converted.thinProvisioned, converted.eagerlyScrub) == (False, True) and new.disk_type == "eagerZeroedThick"
    assert ops.find_backing(b.volume_id).moref_value == only.obj._moId
    assert list(ops.list_backings()).count(b.volume_id) == 1


def test_retype_then_extend_keeps_the_volumes_disk_uuid(vsphere_session, inventory, ops, made, places):
    """A retype's copy gets a new disk and the volume's UUID stamped on it; extending with the backing the
    retype returned must not send the copy's old UUID back (the soak found a retype + extend in one apply
    ending with vSphere's UUID, which Terraform reported as an inconsistent result)."""
    s = vsphere_session
    b = create(ops, made, places[0], disk_type="thin")
    new = executor(ops).retype(b, "eagerZeroedThick", "lsiLogic", None, may_move=False)
    assert new.disk_uuid == b.volume_id and new.disk.backing.uuid == b.volume_id
    grown = ops.grow(new, 2 * GiB)
    assert grown.size_bytes == 2 * GiB
    assert grown.disk_uuid == b.volume_id
    assert disk_of(s, grown.moref).backing.uuid == b.volume_id


def test_retype_copy_failure_leaves_the_original_untouched(vsphere_session, inventory, ops, made, places):
    b = create(ops, made, places[0], disk_type="thin")
    fault = vim.fault.InvalidState(msg="clone failed (injected)")
    with SoapCapture(vsphere_session.si, fail={"CloneVM_Task": fault}) as cap, pytest.raises(Exception):  # noqa: B017 - any error: the test is about what is left
        executor(ops).retype(b, "thick", "lsiLogic", None, may_move=False)
    assert cap.count("Rename_Task") == 0 and cap.count("Destroy_Task") == 0
    assert vm_props(vsphere_session, b.moref, "name")["name"] == b.name
    assert ops.find_backing(b.volume_id).moref_value == b.moref_value


def test_retype_disk_type_with_snapshots_relocates(vsphere_session, ops, made, places):
    s = vsphere_session
    b = create(ops, made, places[0], disk_type="thin")
    ops.create_snapshot(b, "keep", None, "COW", snapshot_id=new_id())
    b = ops.refresh(b)
    sel = FakeSelector(places[1])
    with pytest.raises(DiagnosticError, match="plan did not include"):
        executor(ops, sel).retype(b, "eagerZeroedThick", "lsiLogic", None, may_move=False)
    with SoapCapture(s.si) as cap:
        executor(ops, sel).retype(b, "eagerZeroedThick", "lsiLogic", None, may_move=True)
    (req,) = sel.asked
    assert places[0].datastore._moId in req.excluded_datastores  # current datastore excluded
    assert cap.count("CloneVM_Task") == 0
    spec = cap.last("RelocateVM_Task").args["spec"]
    (loc,) = spec.disk
    assert (loc.diskBackingInfo.thinProvisioned, loc.diskBackingInfo.eagerlyScrub) == (False, True)
    assert loc.datastore._moId == places[1].datastore._moId
    assert "<eagerlyScrub>true</eagerlyScrub>" in cap.last("RelocateVM_Task").xml
    assert _snapshot_count(s, b.moref) == 1  # snapshots kept (that is why we relocate)
    moved = disk_of(s, b.moref).backing
    assert moved.fileName.startswith(f"[{places[1].datastore_name}] ") and moved.eagerlyScrub


def test_adapter_change_reattaches_the_same_file_in_one_reconfigure(vsphere_session, ops, made, places):
    s = vsphere_session
    b = create(ops, made, places[0], adapter="lsiLogic")
    with SoapCapture(s.si) as cap:
        new = ops.change_adapter(b, "paraVirtual")
    first = cap.named("ReconfigVM_Task")[0].args["spec"].deviceChange
    assert first[0].operation == "remove" and "add" in [c.operation for c in first]
    disk = disk_of(s, b.moref)
    controller = next(d for d in vm_props(s, b.moref, "config.hardware.device")["config.hardware.device"]
                      if d.key == disk.controllerKey)
    assert isinstance(controller, vim.vm.device.ParaVirtualSCSIController)
    assert disk.backing.fileName == b.vmdk_path  # same VMDK, not a new one
    assert new.adapter_type == "paraVirtual" and new.disk_uuid == b.volume_id
    # and back to IDE (the default controller 200)
    new = ops.change_adapter(new, "ide")
    assert disk_of(s, b.moref).controllerKey == 200 and new.adapter_type == "ide"


def test_retype_policy(vsphere_session, ops, made, places):
    # vSphere keeps the policy association (QueryAssociatedProfile); simulators do not, so the profile
    # specs are checked in the request and in our marks.
    s = vsphere_session
    b = create(ops, made, places[0])
    profiles = {"gold": "prof-gold", "silver": "prof-silver"}
    sel = FakeSelector(places[1], usable=True, profiles=profiles)
    with SoapCapture(s.si) as cap:
        new = executor(ops, sel).retype(b, "thin", "lsiLogic", "gold", may_move=True)
    assert not sel.asked and sel.usable_asked[0][1].profile_name == "gold"
    spec = cap.last("ReconfigVM_Task").args["spec"]
    assert spec.vmProfile[0].profileId == "prof-gold" and spec.deviceChange[0].profile[0].profileId == "prof-gold"
    assert extra_config(s, b.moref)[specs.KEY_PROFILE_ID] == "prof-gold" and new.profile_id == "prof-gold"

    # non-compliant datastore: relocate to a compliant one with the policy on the locator
    sel2 = FakeSelector(places[1], usable=False, profiles=profiles)
    with SoapCapture(s.si) as cap:
        new = executor(ops, sel2).retype(new, "thin", "lsiLogic", "silver", may_move=True)
    assert sel2.asked[0].profile_name == "silver"
    assert cap.last("RelocateVM_Task").args["spec"].disk[0].profile[0].profileId == "prof-silver"

    # clearing the policy sends the empty profile and never moves
    with SoapCapture(s.si) as cap:
        new = executor(ops, sel2).retype(new, "thin", "lsiLogic", None, may_move=False)
    assert isinstance(cap.last("ReconfigVM_Task").args["spec"].vmProfile[0], vim.vm.EmptyProfileSpec)
    assert new.profile_id is None and cap.count("RelocateVM_Task") == 0


def test_index_knows_the_vm_a_volume_is_attached_to(vsphere_session, inventory, ops, made, places):
    b = create(ops, made, places[0])
    consumer_vm(vsphere_session, inventory, made, places[0], b.vmdk_path, f"vm-{b.volume_id[:8]}")
    assert ops.load_index().users_of(b) == [f"vm-{b.volume_id[:8]}"]
    assert ops.is_in_use(b) == [f"vm-{b.volume_id[:8]}"]
