"""``start_vcsim(stock=True)``: govmomi's default VPX inventory, exactly as a stock vcsim serves it.

This is how we test that the provider works on a user's stock vcsim: none of our datastores, policy,
fidelity layer or test endpoints; only the address, TLS certificate and credentials are ours.
Plain pyVmomi, none of the provider's code.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import uuid

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import SoapStubAdapter, pbm, vim


@pytest.fixture(scope="module")
def stock(is_vcsim, tmp_path_factory):
    if not is_vcsim:
        pytest.skip("starts the simulator of tests/vcsim")
    from tests.vcsim.harness import start_vcsim

    sim = start_vcsim(tmp_path_factory.mktemp("stock"), stock=True)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def si(stock):
    si = SmartConnect(host=stock.host, port=stock.port, user=stock.user, pwd=stock.password,
                      sslContext=ssl.create_default_context(cafile=stock.ca_file))
    try:
        yield si
    finally:
        Disconnect(si)


def _wait(task):
    while task.info.state not in ("success", "error"):
        time.sleep(0.05)
    if task.info.state == "error":
        raise task.info.error
    return task.info.result


def test_inventory_is_the_default_vpx_model(stock, si):
    content = si.RetrieveContent()
    assert content.about.apiType == "VirtualCenter"
    assert content.about.fullName.endswith("(govmomi simulator)")
    dcs = [e for e in content.rootFolder.childEntity if isinstance(e, vim.Datacenter)]
    assert [d.name for d in dcs] == ["DC0"]
    dc = dcs[0]
    clusters = [c for c in dc.hostFolder.childEntity if isinstance(c, vim.ClusterComputeResource)]
    assert [c.name for c in clusters] == ["DC0_C0"]
    assert sorted(h.name for h in clusters[0].host) == ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]
    standalone = [c for c in dc.hostFolder.childEntity if not isinstance(c, vim.ClusterComputeResource)]
    assert [h.name for c in standalone for h in c.host] == ["DC0_H0"]
    assert [(d.name, d.summary.type) for d in dc.datastore] == [("LocalDS_0", "OTHER")]
    view = content.viewManager.CreateContainerView(dc.vmFolder, [vim.VirtualMachine], True)
    try:
        names = sorted(vm.name for vm in view.view)
    finally:
        view.DestroyView()
    assert names == ["DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1", "DC0_H0_VM0", "DC0_H0_VM1"]


def test_credentials_and_certificate_are_ours(stock):
    from tests.vcsim.harness import PASSWORD, USER

    assert (stock.user, stock.password) == (USER, PASSWORD) and stock.ca_file and stock.stock
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host=stock.host, port=stock.port, user=stock.user, pwd="wrong",
                     sslContext=ssl.create_default_context(cafile=stock.ca_file))


def test_no_test_endpoints(stock):
    with pytest.raises(urllib.error.HTTPError) as info:
        stock.set_delay("CreateVM_Task", 1)
    assert info.value.code == 404
    with pytest.raises(urllib.error.HTTPError):
        stock.set_datastore("LocalDS_0", free=1)


def test_pbm_is_vcsims_own(stock, si):
    stub = SoapStubAdapter(host=stock.host, port=stock.port, path="/pbm", version="pbm.version.version11",
                           sslContext=ssl.create_default_context(cafile=stock.ca_file))
    stub.cookie = si._stub.cookie
    content = pbm.ServiceInstance("ServiceInstance", stub).RetrieveContent()
    pm = content.profileManager
    ids = pm.PbmQueryProfile(resourceType=pbm.profile.ResourceType(resourceType="STORAGE"),
                             profileCategory="REQUIREMENT")
    names = {p.name for p in pm.PbmRetrieveContent(ids)}
    assert "vmdk-gold" not in names and "vSAN Default Storage Policy" in names
    vsan = next(p.profileId for p in pm.PbmRetrieveContent(ids) if p.name == "vSAN Default Storage Policy")
    req = [pbm.placement.CapabilityProfileRequirement(profileId=vsan)]
    results = content.placementSolver.PbmCheckRequirements(hubsToSearch=[], placementSubjectRequirement=req)
    assert [r.hub.hubType for r in results] == ["Datastore"] and not results[0].error  # vcsim: every datastore


def test_no_fidelity_layer(stock, si):
    """A stock vcsim's own behaviour: CreateVM leaves empty disk files; clone rewrites the source's disk."""
    content = si.RetrieveContent()
    dc = content.rootFolder.childEntity[0]
    host = next(h for cr in dc.hostFolder.childEntity for h in cr.host if h.name == "DC0_H0")
    name = f"stock-{uuid.uuid4().hex[:6]}"
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName="", diskMode="persistent")
    disk = vim.vm.device.VirtualDisk(key=-1, controllerKey=1000, unitNumber=0, capacityInKB=1024, backing=backing)
    controller = vim.vm.device.VirtualLsiLogicController(key=1000, busNumber=0, sharedBus="noSharing")
    spec = vim.vm.ConfigSpec(name=name, guestId="otherGuest", files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"),
                             deviceChange=[
                                 vim.vm.device.VirtualDeviceSpec(operation="add", device=controller),
                                 vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)])
    vm = _wait(dc.vmFolder.CreateVM_Task(spec, host.parent.resourcePool, host))
    made = [vm]
    try:
        own = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)).backing
        assert own.uuid is None  # vcsim 0.24.2 sets no disk uuid
        made.append(_wait(vm.CloneVM_Task(folder=dc.vmFolder, name=name + "-c", spec=vim.vm.CloneSpec(
            location=vim.vm.RelocateSpec(), powerOn=False, template=False))))
        after = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)).backing
        assert after.fileName != own.fileName  # the clone-rewrites-source bug of vcsim 0.24.2
    finally:  # the module's other tests see the default inventory, whatever the order
        for each in reversed(made):
            _wait(each.Destroy_Task())
