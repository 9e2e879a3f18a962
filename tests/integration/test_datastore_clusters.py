"""Creating shadow VMs through Storage DRS against our simulator's datastore clusters: the request vCenter gets,
exactly-once under faults, and parallel creates that do not over-commit a member."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from soap_capture import SoapCapture
from test_fault_tolerance import FAULTS, ours
from test_volumeops import GiB, Made

from terraform_provider_vmdk.vsphere.connection.session import Session
from terraform_provider_vmdk.vsphere.placement.datastore import DatastoreSelector, Requirements
from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
from terraform_provider_vmdk.vsphere.volumes import specs
from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

pytestmark = pytest.mark.integration


@pytest.fixture
def made(vsphere_session):
    m = Made(vsphere_session, Inventory(vsphere_session))
    yield m
    m.cleanup()


def create_in(ops: VolumeOps, made: Made, pod_name: str, size: int = GiB, selector: Any = None) -> Any:
    inventory = ops.inventory
    selector = selector or DatastoreSelector(ops.session, inventory)
    pod = inventory.pod(pod_name)
    choice = selector.in_pod(Requirements(size_bytes=size, pod=pod.name))
    vid = str(uuid.uuid4())
    made.ids.add(vid)
    backing, _ = ops.create_backing_in_pod(vid, "v", size, "thin", "lsiLogic", pod, choice, selector.reserve)
    return backing


def test_the_request_leaves_the_datastore_to_storage_drs_and_applies_its_key(vsphere_session, made) -> None:
    ops = VolumeOps(vsphere_session, Inventory(vsphere_session))
    with SoapCapture(vsphere_session.si) as cap:
        backing = create_in(ops, made, "pod-gold")
    ask = cap.last("RecommendDatastores").args["storageSpec"]
    assert ask.type == "create" and ask.resourcePool is not None and ask.folder is not None
    assert ask.configSpec.instanceUuid == backing.volume_id  # the identity is fixed before the call
    assert not (ask.configSpec.files and ask.configSpec.files.vmPathName)
    disk = next(c.device for c in ask.configSpec.deviceChange if c.fileOperation == "create")
    vm_config = ask.podSelectionSpec.initialVmConfig[0]
    assert ask.podSelectionSpec.storagePod._moId == vm_config.storagePod._moId
    assert [d.diskId for d in vm_config.disk] == [disk.key]
    assert ask.resourceLeaseDurationSec > 0
    applied = cap.last("ApplyStorageDrsRecommendation_Task").args["key"]
    assert len(applied) == 1 and cap.count("CreateVM_Task") == 0 and cap.count("RecommendDatastores") == 1
    cancelled = [c.args["key"][0] for c in cap.named("CancelStorageDrsRecommendation")]
    assert len(cancelled) == 2 and applied[0] not in cancelled  # the other members' leases given back
    assert backing.datastore_name in ("gold-1", "gold-2", "gold-3")
    assert backing.disk_uuid == backing.volume_id and backing.complete


@pytest.mark.parametrize("fault", FAULTS)
def test_an_apply_under_faults_makes_one_vm(vcsim, vsphere_session, fault_proxy, made, fault) -> None:
    session = Session(vcsim.connection_config(server=fault_proxy.server, api_retry_count=4, api_timeout=20))
    ops = VolumeOps(session, Inventory(session))
    ops.volume_folder()
    try:
        fault_proxy.inject(fault, "ApplyStorageDrsRecommendation_Task")
        backing = create_in(ops, made, "pod-silver")
        assert fault_proxy.counts[fault] == 1
        same = ours(vsphere_session, specs.KEY_VOLUME_ID, backing.volume_id)
        assert [v.obj._moId for v in same] == [backing.moref_value]
    finally:
        session.logout()


def test_parallel_creates_spread_over_members_without_over_commit(vcsim, vsphere_session, made) -> None:
    inventory = Inventory(vsphere_session)
    before = {d.name: d.free_space for d in inventory.datastores() if d.pod == "pod-silver"}
    vcsim.set_datastore("silver-1", free=100 * GiB)
    vcsim.set_datastore("silver-2", free=130 * GiB)
    try:
        ops = VolumeOps(vsphere_session, Inventory(vsphere_session))
        selector = DatastoreSelector(vsphere_session, ops.inventory)
        results: list[Any] = []
        errors: list[BaseException] = []

        def one() -> None:
            try:
                results.append(create_in(ops, made, "pod-silver", 40 * GiB, selector))
            except BaseException as error:  # noqa: BLE001 - collected for the assertion
                errors.append(error)

        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors and len(results) == 5
        on = {name: sum(1 for b in results if b.datastore_name == name) for name in ("silver-1", "silver-2")}
        assert on["silver-1"] * 40 <= 100 and on["silver-2"] * 40 <= 130 and sum(on.values()) == 5
    finally:
        made.cleanup()
        for name, free in before.items():
            vcsim.set_datastore(name, free=free)


def test_a_refused_key_is_recommended_again_once(vsphere_session, made) -> None:
    from pyVmomi import vmodl

    ops = VolumeOps(vsphere_session, Inventory(vsphere_session))
    expired = vmodl.fault.InvalidArgument(invalidProperty="key")
    with SoapCapture(vsphere_session.si, fail={"ApplyStorageDrsRecommendation_Task": expired}) as cap:
        backing = create_in(ops, made, "pod-gold")
    assert cap.count("RecommendDatastores") == 2 and cap.count("ApplyStorageDrsRecommendation_Task") == 2
    assert [v.obj._moId for v in ours(vsphere_session, specs.KEY_VOLUME_ID, backing.volume_id)] == [backing.moref_value]


def test_no_acceptable_recommendation_names_each_member_and_writes_nothing(vcsim, vsphere_session, made) -> None:
    from terraform_provider_vmdk.vsphere import exceptions as exc

    ops = VolumeOps(vsphere_session, Inventory(vsphere_session))
    selector = DatastoreSelector(vsphere_session, ops.inventory)
    pod = ops.inventory.pod("pod-silver")
    choice = selector.in_pod(Requirements(size_bytes=GiB, pod=pod.name))
    before = {d.name: d.free_space for d in ops.inventory.datastores() if d.pod == "pod-silver"}
    for name in before:  # since the plan, every member filled up: Storage DRS has nothing to offer
        vcsim.set_datastore(name, free=0)
    try:
        vid = str(uuid.uuid4())
        made.ids.add(vid)
        with SoapCapture(vsphere_session.si) as cap, pytest.raises(exc.NoValidDatastore) as raised:
            ops.create_backing_in_pod(vid, "v", GiB, "thin", "lsiLogic", pod, choice, selector.reserve)
        assert "(Storage DRS: Insufficient" in str(raised.value)  # vCenter's own reason, passed on
        assert "pod-silver" in str(raised.value) and cap.count("ApplyStorageDrsRecommendation_Task") == 0
        assert not ours(vsphere_session, specs.KEY_VOLUME_ID, vid)
    finally:
        for name, free in before.items():
            vcsim.set_datastore(name, free=free)


def test_a_move_into_a_cluster_asks_storage_drs_to_relocate(vsphere_session, made) -> None:
    ops = VolumeOps(vsphere_session, Inventory(vsphere_session))
    selector = DatastoreSelector(vsphere_session, ops.inventory)
    backing = create_in(ops, made, "pod-silver")
    pod = ops.inventory.pod("pod-gold")
    choice = selector.in_pod(Requirements(size_bytes=backing.size_bytes, pod=pod.name))
    with SoapCapture(vsphere_session.si) as cap:
        moved = ops.relocate_in_pod(backing, pod, choice, selector.reserve)
    ask = cap.last("RecommendDatastores").args["storageSpec"]
    assert ask.type == "relocate" and ask.vm._moId == backing.moref_value and not ask.relocateSpec.datastore
    assert [d.diskId for d in ask.podSelectionSpec.initialVmConfig[0].disk] == [backing.disk_key]
    assert cap.count("ApplyStorageDrsRecommendation_Task") == 1 and cap.count("RelocateVM_Task") == 0
    assert moved.moref_value == backing.moref_value and moved.datastore_name in ("gold-1", "gold-2", "gold-3")
    assert moved.vmdk_path.startswith(f"[{moved.datastore_name}]") and moved.disk_uuid == backing.disk_uuid


def test_a_clone_into_a_cluster_goes_where_storage_drs_recommends(vsphere_session, made) -> None:
    ops = VolumeOps(vsphere_session, Inventory(vsphere_session))
    selector = DatastoreSelector(vsphere_session, ops.inventory)
    source = create_in(ops, made, "pod-silver")
    pod = ops.inventory.pod("pod-gold")
    choice = selector.in_pod(Requirements(size_bytes=source.size_bytes, pod=pod.name))
    new_id = str(uuid.uuid4())
    made.ids.add(new_id)
    with SoapCapture(vsphere_session.si) as cap:
        key = ops.recommend_clone_target(source, new_id, pod, choice)
        clone = ops.clone_backing(source, new_id, "c", linked=False, disk_type="thin", placement=choice.placements[key])
    ask = cap.last("RecommendDatastores").args["storageSpec"]
    assert ask.type == "clone" and ask.vm._moId == source.moref_value and ask.cloneName == f"volume-{new_id}"
    assert [d.diskId for d in ask.podSelectionSpec.initialVmConfig[0].disk] == [source.disk_key]
    assert cap.count("CancelStorageDrsRecommendation") >= 1  # the leases of the recommendations given back
    assert cap.last("CloneVM_Task").args["spec"].location.datastore._moId == key
    assert clone.datastore._GetMoId() == key and clone.datastore_name in ("gold-1", "gold-2", "gold-3")


def test_a_policy_move_asks_for_a_compliant_member(vcsim, vsphere_session, made) -> None:
    ops = VolumeOps(vsphere_session, Inventory(vsphere_session))
    selector = DatastoreSelector(vsphere_session, ops.inventory)
    backing = create_in(ops, made, "pod-gold")
    target = next(m for m in ("gold-1", "gold-2", "gold-3") if m != backing.datastore_name)
    vcsim.set_datastore_tag(target, "tier", "gold")
    try:
        pod = ops.inventory.pod("pod-gold")
        profile_id = selector.profile_id("vmdk-gold")
        choice = selector.in_pod(Requirements(size_bytes=backing.size_bytes, profile_name="vmdk-gold", pod=pod.name))
        with SoapCapture(vsphere_session.si) as cap:
            key = ops.recommend_relocate_target(backing, pod, choice, profile_id)
        ask = cap.last("RecommendDatastores").args["storageSpec"]
        locator = ask.podSelectionSpec.initialVmConfig[0].disk[0]
        assert ask.type == "relocate" and locator.diskId == backing.disk_key
        assert [p.profileId for p in locator.profile] == [profile_id] == [p.profileId for p in ask.relocateSpec.profile]
        assert choice.verdict(key).datastore.name == target and cap.count("CancelStorageDrsRecommendation") == 1
    finally:
        vcsim.set_datastore_tag(target, "tier", None)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_move_under_faults_happens_once(vcsim, vsphere_session, fault_proxy, made, fault) -> None:
    session = Session(vcsim.connection_config(server=fault_proxy.server, api_retry_count=4, api_timeout=20))
    ops = VolumeOps(session, Inventory(session))
    ops.volume_folder()
    try:
        backing = create_in(ops, made, "pod-silver")
        selector = DatastoreSelector(session, ops.inventory)
        pod = ops.inventory.pod("pod-gold")
        choice = selector.in_pod(Requirements(size_bytes=backing.size_bytes, pod=pod.name))
        fault_proxy.inject(fault, "ApplyStorageDrsRecommendation_Task")
        moved = ops.relocate_in_pod(backing, pod, choice, selector.reserve)
        assert fault_proxy.counts[fault] == 1
        assert moved.datastore_name in ("gold-1", "gold-2", "gold-3") and moved.moref_value == backing.moref_value
        same = ours(vsphere_session, specs.KEY_VOLUME_ID, backing.volume_id)
        assert [v.obj._moId for v in same] == [backing.moref_value]
    finally:
        session.logout()
