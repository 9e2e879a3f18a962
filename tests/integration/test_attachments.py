"""Attach and detach (vsphere/volumes/attachments.py) under faults: one device, whatever the network does."""

from __future__ import annotations

import uuid

import pytest
from pyVmomi import vim
from test_volumeops import GiB, Made, placements

from terraform_provider_vmdk.vsphere.connection.session import Session
from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

pytestmark = pytest.mark.integration


@pytest.fixture
def faulty(vcsim, fault_proxy):
    session = Session(vcsim.connection_config(server=fault_proxy.server, api_retry_count=4, api_timeout=20))
    ops = VolumeOps(session, Inventory(session))
    ops.volume_folder()
    yield ops
    session.logout()


@pytest.fixture
def made(vsphere_session):
    m = Made(vsphere_session, Inventory(vsphere_session))
    yield m
    m.cleanup()


@pytest.fixture
def vm(vsphere_session):
    dc = vsphere_session.content.rootFolder.childEntity[0]
    pool = next(i.obj for i in vsphere_session.retrieve(vim.ClusterComputeResource, ["name"])
                if i.props["name"] == "DC0_C0").resourcePool
    controller = vim.vm.device.VirtualLsiLogicController(key=1000, busNumber=0, sharedBus="noSharing")
    spec = vim.vm.ConfigSpec(name=f"inst-{uuid.uuid4().hex[:8]}", guestId="otherGuest", numCPUs=1, memoryMB=128,
                             files=vim.vm.FileInfo(vmPathName="[ds-big]"),
                             deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=controller)])
    made_vm = vsphere_session.run_task(dc.vmFolder.CreateVM_Task, config=spec, pool=pool)
    yield made_vm
    devices = vsphere_session.get_properties(made_vm, ["config.hardware.device"])["config.hardware.device"]
    remove = [vim.vm.device.VirtualDeviceSpec(operation="remove", device=d) for d in devices
              if isinstance(d, vim.vm.device.VirtualDisk)]
    if remove:
        vsphere_session.run_task(made_vm.ReconfigVM_Task, spec=vim.vm.ConfigSpec(deviceChange=remove))
    vsphere_session.run_task(made_vm.Destroy_Task)


def _disks(session, vm) -> list:
    devices = session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
    return [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]


@pytest.mark.parametrize("fault", ["lost_response", "reset", "http503"])
def test_attach_and_detach_under_faults_make_one_device(vsphere_session, fault_proxy, faulty, made, vm, fault):
    vid = str(uuid.uuid4())
    made.ids.add(vid)
    backing = faulty.create_backing(vid, "v", GiB, "thin", "lsiLogic", placements(vsphere_session,
                                                                                  Inventory(vsphere_session))[0])
    uuid_ = vsphere_session.get_properties(vm, ["config.instanceUuid"])["config.instanceUuid"]
    instance = faulty.find_instance(uuid=uuid_)  # through the proxy, as the provider finds it
    assert instance is not None
    fault_proxy.inject(fault, "ReconfigVM_Task")
    disk = faulty.attach_volume(instance, backing, adapter_type="lsiLogic", unit_number=None, disk_mode="persistent")
    assert fault_proxy.counts[fault] == 1
    disks = _disks(vsphere_session, vm)
    assert [d.backing.fileName for d in disks] == [backing.vmdk_path] and disk.file_name == backing.vmdk_path
    assert disk.disk_uuid.lower() == vid and disks[0].capacityInKB == GiB // 1024
    fault_proxy.inject(fault, "ReconfigVM_Task")
    again = faulty.find_instance(uuid=uuid_)
    assert again is not None
    faulty.detach_volume(again, disk, vid)
    assert _disks(vsphere_session, vm) == []
    extra = {o.key: o.value for o in vsphere_session.get_properties(vm, ["config.extraConfig"])["config.extraConfig"]}
    assert f"volume-{vid}" not in extra
    assert faulty.disk_present(faulty.refresh(backing)) is True  # the file stays
