"""Every kind of write under every kind of fault, through a fault-injecting proxy (tests/faultproxy.py).

The provider's core talks to vcsim through the proxy; the assertions read the inventory directly. For each
write the rule is the same: the operation ends as if nothing had happened — one object per identity, never
two (a lost answer is reconciled by looking the object up, never by sending the create again) — or, when
it cannot, it raises a driver error, never a raw transport exception.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pyVmomi import vim
from test_volumeops import GiB, Made, placements

from terraform_provider_vmdk.vsphere import exceptions as exc
from terraform_provider_vmdk.vsphere.connection.session import Session
from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
from terraform_provider_vmdk.vsphere.volumes import specs
from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

pytestmark = pytest.mark.integration

FAULTS = ("reset", "http503", "session_end", "lost_response")


@pytest.fixture
def proxy(fault_proxy):
    return fault_proxy


@pytest.fixture
def faulty(vcsim, proxy):
    """VolumeOps whose session goes through the proxy (few retries, fast backoff)."""
    session = Session(vcsim.connection_config(server=proxy.server, api_retry_count=4, api_timeout=20))
    ops = VolumeOps(session, Inventory(session))
    ops.volume_folder()  # folders exist before the faults start
    ops.snapshot_folder()
    yield ops
    session.logout()


@pytest.fixture
def made(vsphere_session):
    m = Made(vsphere_session, Inventory(vsphere_session))
    yield m
    m.cleanup()


@pytest.fixture
def places(vsphere_session):
    return placements(vsphere_session, Inventory(vsphere_session))


def ours(session: Any, key: str, value: str) -> list[Any]:
    """VMs (read directly from vcsim) whose marks have ``key`` = ``value``."""
    found = []
    for item in session.retrieve(vim.VirtualMachine, ["name", "config.extraConfig", "snapshot"]):
        marks = {o.key: o.value for o in item.props.get("config.extraConfig") or []}
        if marks.get(key) == value and marks.get(specs.KEY_MANAGED_BY) == specs.MANAGED_BY:
            found.append(item)
    return found


def new_volume(faulty: VolumeOps, made: Made, place: Any, **kw: Any) -> Any:
    vid = str(uuid.uuid4())
    made.ids.add(vid)
    return faulty.create_backing(vid, "v", kw.pop("size", GiB), kw.pop("disk_type", "thin"),
                                 kw.pop("adapter", "lsiLogic"), place, **kw)


# ---------------------------------------------------------------------------------------------- creates
@pytest.mark.parametrize("fault", FAULTS)
def test_create_volume_once(vsphere_session, proxy, faulty, made, places, fault):
    proxy.inject(fault, "CreateVM_Task")
    b = new_volume(faulty, made, places[0])
    assert proxy.counts[fault] == 1
    assert [v.obj._moId for v in ours(vsphere_session, specs.KEY_VOLUME_ID, b.volume_id)] == [b.moref_value]
    assert b.disk_uuid == b.volume_id and b.complete


def disk_uuid_in_vsphere(session: Any, b: Any) -> str:
    devices = session.get_properties(b.moref, ["config.hardware.device"])["config.hardware.device"]
    return next(d.backing.uuid for d in devices if isinstance(d, vim.vm.device.VirtualDisk))


def test_a_create_sets_the_disk_uuid_in_its_spec(vsphere_session, proxy, faulty, made, places):
    """The disk UUID (= the volume id) travels in CreateVM's spec: no ReconfigVM per volume to stamp it."""
    proxy.reset_records()
    b = new_volume(faulty, made, places[0])
    assert proxy.requests["CreateVM_Task"] == 1 and proxy.requests["ReconfigVM_Task"] == 0
    assert b.disk_uuid == b.volume_id == disk_uuid_in_vsphere(vsphere_session, b)


def test_a_server_refusing_a_disk_uuid_in_the_create_spec_gets_it_stamped_afterwards(
        vsphere_session, proxy, faulty, made, places):
    """vSphere answering the create with InvalidDeviceSpec made nothing: the create goes again without the
    UUID (which is then set by ReconfigVM, as Cinder does), and the process stops asking."""
    proxy.reset_records()
    proxy.inject("refuse", "CreateVM_Task")
    first, second = (new_volume(faulty, made, places[0]) for _ in range(2))
    assert proxy.counts["refuse"] == 1
    assert proxy.requests["CreateVM_Task"] == 3 and proxy.requests["ReconfigVM_Task"] == 2
    for b in (first, second):
        assert [v.obj._moId for v in ours(vsphere_session, specs.KEY_VOLUME_ID, b.volume_id)] == [b.moref_value]
        assert b.disk_uuid == b.volume_id == disk_uuid_in_vsphere(vsphere_session, b)


def test_a_create_refused_with_and_without_the_disk_uuid_is_sent_twice_then_reported(proxy, faulty, made, places):
    proxy.reset_records()
    proxy.inject("refuse", "CreateVM_Task", times=None)
    with pytest.raises(vim.fault.InvalidDeviceSpec):  # passed through as vSphere said it (the resources map it)
        new_volume(faulty, made, places[0])
    assert proxy.requests["CreateVM_Task"] == 2  # with the UUID, then without: then the refusal stands


@pytest.mark.parametrize("fault", FAULTS)
def test_full_and_linked_clone_once(vsphere_session, proxy, faulty, made, places, fault):
    src = new_volume(faulty, made, places[0])
    for linked in (False, True):
        nid = str(uuid.uuid4())
        made.ids.add(nid)
        proxy.inject(fault, "CloneVM_Task")
        b = faulty.clone_backing(src, nid, "c", linked=linked, disk_type="thin", placement=places[1])
        assert [v.obj._moId for v in ours(vsphere_session, specs.KEY_VOLUME_ID, nid)] == [b.moref_value]
    assert proxy.counts[fault] == 2
    assert faulty.refresh(src).snapshots == ()  # the linked clone's snapshot point is gone


@pytest.mark.parametrize("fault", FAULTS)
def test_linked_clone_snapshot_point_once(vsphere_session, proxy, faulty, made, places, fault):
    src = new_volume(faulty, made, places[0])
    nid = str(uuid.uuid4())
    made.ids.add(nid)
    proxy.inject(fault, "CreateSnapshot_Task")
    faulty.clone_backing(src, nid, "c", linked=True, disk_type="thin", placement=places[0])
    assert faulty.refresh(src).snapshots == ()


@pytest.mark.parametrize("fault", FAULTS)
def test_snapshots_once(vsphere_session, proxy, faulty, made, places, fault):
    b = new_volume(faulty, made, places[0])
    cow_id, template_id = str(uuid.uuid4()), str(uuid.uuid4())
    made.ids.add(template_id)
    proxy.inject(fault, "CreateSnapshot_Task")
    cow = faulty.create_snapshot(b, "cow", None, "COW", snapshot_id=cow_id)
    assert [s.snapshot_id for s in faulty.refresh(b).snapshots] == [cow_id] and cow.snapshot_id == cow_id
    proxy.inject(fault, "CloneVM_Task")
    template = faulty.create_snapshot(b, "tmpl", None, "template", snapshot_id=template_id)
    assert [t.obj._moId for t in ours(vsphere_session, specs.KEY_SNAPSHOT_ID, template_id)] == [
        template.moref._moId]
    proxy.inject(fault, "MarkAsTemplate")
    again = str(uuid.uuid4())
    made.ids.add(again)
    assert faulty.create_snapshot(b, "t2", None, "template", snapshot_id=again).template.is_template


@pytest.mark.parametrize("fault", FAULTS)
def test_folder_once(vsphere_session, proxy, faulty, fault):
    path = f"faults-{uuid.uuid4().hex[:8]}/inner"
    proxy.inject(fault, "CreateFolder", times=2)
    folder = faulty.folder(path)
    top = Inventory(vsphere_session).get_or_create_folder(path.split("/")[0])
    children = vsphere_session.get_properties(top, ["childEntity"])["childEntity"]
    assert [c._moId for c in children] == [folder._moId]
    vsphere_session.run_task(top.Destroy_Task)


# ---------------------------------------------------------------------------------------------- changes
@pytest.mark.parametrize("fault", FAULTS)
def test_grow_relocate_adapter_policy_delete(vsphere_session, proxy, faulty, made, places, fault):
    b = new_volume(faulty, made, places[0])
    proxy.inject(fault, "ReconfigVM_Task")
    b = faulty.grow(b, 2 * GiB)
    assert b.size_bytes == 2 * GiB
    proxy.inject(fault, "RelocateVM_Task")
    b = faulty.relocate_backing(b, places[1])
    assert places[1].datastore._moId in [d._moId for d in vsphere_session.get_properties(b.moref, ["datastore"])[
        "datastore"]]
    proxy.inject(fault, "ReconfigVM_Task")
    b = faulty.change_adapter(b, "paraVirtual")
    disks = [d for d in b.devices if isinstance(d, vim.vm.device.VirtualDisk)]
    assert len(disks) == 1 and b.adapter_type == "paraVirtual" and b.disk_uuid == b.volume_id
    proxy.inject(fault, "Destroy_Task")
    faulty.delete_backing(b)
    assert ours(vsphere_session, specs.KEY_VOLUME_ID, b.volume_id) == []


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("method", ["CloneVM_Task", "Destroy_Task", "Rename_Task"])
def test_retype_copy_ends_with_one_backing(vsphere_session, proxy, faulty, made, places, fault, method):
    b = new_volume(faulty, made, places[0], disk_type="thin")
    proxy.inject(fault, method)
    new = faulty.convert_by_clone(b, "thick")
    (only,) = ours(vsphere_session, specs.KEY_VOLUME_ID, b.volume_id)
    assert only.obj._moId == new.moref_value and new.kind == specs.KIND_VOLUME
    assert faulty.find_backing(b.volume_id).moref_value == new.moref_value
    assert vsphere_session.get_properties(new.moref, ["config.instanceUuid"])["config.instanceUuid"] == b.volume_id


def test_interrupted_retype_is_resumed(vsphere_session, proxy, faulty, made, places):
    """The original is gone but the copy was never promoted (Rename refused for good): find_backing returns the
    copy, and running the conversion again promotes it instead of copying anything."""
    b = new_volume(faulty, made, places[0], disk_type="thin")
    proxy.inject("http503", "Rename_Task", times=None)
    with pytest.raises(exc.VMwareDriverError):
        faulty.convert_by_clone(b, "thick")
    proxy.clear()
    copy = faulty.find_backing(b.volume_id)
    assert copy is not None and copy.is_retype_copy and copy.name == specs.retype_name(b.volume_id)
    done = faulty.convert_by_clone(copy, "thick")
    assert done.name == specs.backing_name(b.volume_id) and done.kind == specs.KIND_VOLUME
    assert len(ours(vsphere_session, specs.KEY_VOLUME_ID, b.volume_id)) == 1


def test_interrupted_retype_copy_beside_the_original_is_removed_on_retry(vsphere_session, proxy, faulty, made,
                                                                        places):
    b = new_volume(faulty, made, places[0], disk_type="thin")
    proxy.inject("http503", "Destroy_Task", times=None)  # the original cannot go: the copy is removed
    with pytest.raises(exc.VMwareDriverError):
        faulty.convert_by_clone(b, "thick")
    proxy.clear()
    assert [v.obj._moId for v in ours(vsphere_session, specs.KEY_VOLUME_ID, b.volume_id)] == [b.moref_value] or \
        faulty.find_backing(b.volume_id).moref_value == b.moref_value
    done = faulty.convert_by_clone(faulty.find_backing(b.volume_id), "thick")
    assert len(ours(vsphere_session, specs.KEY_VOLUME_ID, b.volume_id)) == 1 and done.kind == specs.KIND_VOLUME


# ---------------------------------------------------------------------------------------------- reads
@pytest.mark.parametrize("method", ["RetrievePropertiesEx", "CreateContainerView", "FindByUuid"])
def test_reads_survive_every_fault(vsphere_session, proxy, faulty, made, places, method):
    b = new_volume(faulty, made, places[0])
    for fault in FAULTS:
        proxy.inject(fault, method)
        assert b.volume_id in faulty.list_backings()
        assert faulty.find_backing(b.volume_id).moref_value == b.moref_value


def test_session_end_rebuilds_views_and_pbm(proxy, faulty):
    from pyVmomi import pbm

    session = faulty.session
    assert faulty.list_backings() is not None  # a container view exists now
    logins = session.logins
    proxy.inject("session_end", "RetrievePropertiesEx")
    assert faulty.list_backings() is not None
    assert session.logins == logins + 1
    pm = session.pbm_content().profileManager
    kind = pbm.profile.ResourceType(resourceType="STORAGE")
    proxy.inject("session_end", "PbmQueryProfile")
    assert session.call(pm.PbmQueryProfile, resourceType=kind)
    assert session.logins == logins + 2


def test_session_end_during_a_task_wait(vsphere_session, proxy, faulty, made, places):
    proxy.inject("session_end", "RetrievePropertiesEx", skip=1)  # the poll after the create
    b = new_volume(faulty, made, places[0])
    assert len(ours(vsphere_session, specs.KEY_VOLUME_ID, b.volume_id)) == 1


def test_a_write_that_never_gets_through_is_a_driver_error(proxy, faulty, made, places):
    proxy.inject("reset", "CreateVM_Task", times=None)
    with pytest.raises(exc.VMwareDriverError):
        new_volume(faulty, made, places[0])


# ---------------------------------------------------------------------------------------------- rollbacks
def _delete_disk_files(session: Any, backing: Any) -> None:
    """What a Destroy_Task that failed half-way leaves: the VM registered, its disk files gone."""
    vdm = session.content.virtualDiskManager
    dc = session.content.rootFolder.childEntity[0]
    session.run_task(vdm.DeleteVirtualDisk_Task, name=backing.vmdk_path, datacenter=dc)


def test_a_swap_whose_destroy_fails_keeps_the_copy_unless_the_original_is_provably_whole(
        vsphere_session, proxy, faulty, made, places):
    """At every moment one complete copy exists: the original provably whole, the copy goes (a rollback);
    the original's disk gone while its Destroy "failed", the copy stays — and the next resolve makes it the
    volume instead of removing it as a leftover."""
    from test_volumeops_changes import executor

    whole = new_volume(faulty, made, places[0], disk_type="thin")
    copy = faulty.copy_for_retype(whole, "thick")
    proxy.inject("refuse", "Destroy_Task")
    with pytest.raises(vim.fault.InvalidDeviceSpec):  # what the proxy answers: a definite "no"
        faulty.swap_in_copy(whole, copy)
    assert [v.obj._moId for v in ours(vsphere_session, specs.KEY_VOLUME_ID, whole.volume_id)] == [whole.moref_value]

    broken = new_volume(faulty, made, places[0], disk_type="thin")
    copy = faulty.copy_for_retype(broken, "thick")
    _delete_disk_files(vsphere_session, broken)
    proxy.inject("refuse", "Destroy_Task")
    with pytest.raises(vim.fault.InvalidDeviceSpec):
        faulty.swap_in_copy(broken, copy)
    assert {v.obj._moId for v in ours(vsphere_session, specs.KEY_VOLUME_ID, broken.volume_id)} == {
        broken.moref_value, copy.moref_value}
    proxy.clear()
    volume = executor(faulty).resolve(broken.volume_id)
    assert volume is not None and volume.moref_value == copy.moref_value and volume.kind == specs.KIND_VOLUME
    assert volume.instance_uuid == broken.volume_id and volume.disk_type == "thick"
    assert [v.obj._moId for v in ours(vsphere_session, specs.KEY_VOLUME_ID, broken.volume_id)] == [copy.moref_value]
