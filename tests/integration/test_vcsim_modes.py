"""The simulator's modes, and what vCenter and ESXi refuse (tests/vcsim; evidence in tests/vcsim/FIDELITY.md).

* our vCenter model (the session's simulator): VirtualDiskManager calls as vCenter answers them, RelocateVM of a
  VM whose disk another VM holds;
* ``start_vcsim(esx=True)``: a standalone ESXi host with the fidelity layer (module-scoped, stopped after);
* ``start_vcsim(untagged=True)`` / ``start_vcsim(mode="stock-esx")``: govmomi's models without our layer.

Plain pyVmomi and HTTP, none of the provider's code.
"""

from __future__ import annotations

import shutil
import ssl
import time
import urllib.error
import uuid

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import SoapStubAdapter, pbm, vim, vmodl
from test_vcsim_fidelity import MiB, World, nfc_request, payload, qemu_img, wait_lease

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")


def connect(sim):
    return SmartConnect(host=sim.host, port=sim.port, user=sim.user, pwd=sim.password,
                        sslContext=ssl.create_default_context(cafile=sim.ca_file))


def finished(task, timeout=30.0):
    """The task's final state (success or error)."""
    deadline = time.monotonic() + timeout
    while task.info.state not in ("success", "error"):
        assert time.monotonic() < deadline, f"task {task} still {task.info.state}"
        time.sleep(0.05)
    return task.info.state


def task_fault(w, task):
    with pytest.raises(vmodl.MethodFault) as info:
        w.wait(task)
    return info.value


# ----------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def vc(vcsim, is_vcsim):
    """The session's simulator (our vCenter model)."""
    if not is_vcsim:
        pytest.skip("tests the simulator of tests/vcsim")
    si = connect(vcsim)
    try:
        yield World(vcsim, si)
    finally:
        Disconnect(si)


class EsxWorld(World):
    """A standalone host: no folders below the root VM folder."""

    def _folder(self, name):
        return self.dc.vmFolder

    @property
    def host_name(self):
        return next(iter(self.hosts))


def _start(tmp_path_factory, is_vcsim, **kw):
    if not is_vcsim:
        pytest.skip("starts the simulator of tests/vcsim")
    from tests.vcsim.harness import start_vcsim

    return start_vcsim(tmp_path_factory.mktemp("vcsim-mode"), **kw)


@pytest.fixture(scope="module")
def esx(tmp_path_factory, is_vcsim):
    sim = _start(tmp_path_factory, is_vcsim, esx=True)
    try:
        si = connect(sim)
        try:
            yield EsxWorld(sim, si)
        finally:
            Disconnect(si)
    finally:
        sim.stop()


@pytest.fixture
def made(request):
    """VMs to destroy after the test: made.append((world, vm))."""
    vms: list = []
    yield vms
    for w, vm in reversed(vms):
        w.destroy(vm)


def disk_dir(w, ds):
    """A fresh datastore folder for VirtualDiskManager tests (removed by the caller)."""
    d = f"[{ds}] vdm-{uuid.uuid4().hex[:8]}"
    w.content.fileManager.MakeDirectory(name=d, datacenter=w.dc, createParentDirectories=True)
    return d


def create_disk(w, name, thin=True, kb=1024, adapter="lsiLogic"):
    spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(diskType="thin" if thin else "preallocated",
                                                           adapterType=adapter, capacityKb=kb)
    w.wait(w.content.virtualDiskManager.CreateVirtualDisk_Task(name=name, datacenter=w.dc, spec=spec))


def descriptor(w, name):
    status, body = w.get(name)
    assert status == 200, (name, status)
    return body.decode()


# ------------------------------------------------------------------- vCenter: VirtualDiskManager

def test_vcenter_copy_with_a_dest_spec_is_not_implemented(vc):
    d = disk_dir(vc, "ds-c0")
    try:
        create_disk(vc, f"{d}/a.vmdk")
        spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(diskType="thin", adapterType="lsiLogic",
                                                               capacityKb=1024)
        fault = task_fault(vc, vc.content.virtualDiskManager.CopyVirtualDisk_Task(
            sourceName=f"{d}/a.vmdk", sourceDatacenter=vc.dc, destName=f"{d}/b.vmdk", destDatacenter=vc.dc,
            destSpec=spec))
        assert isinstance(fault, vmodl.fault.NotImplemented)
        assert vc.get(f"{d}/b.vmdk")[0] == 404 and vc.get(f"{d}/b-flat.vmdk")[0] == 404
    finally:
        vc.wait(vc.content.fileManager.DeleteDatastoreFile_Task(name=d, datacenter=vc.dc))


def test_vcenter_copy_without_a_spec_is_preallocated_buslogic(vc):
    """"If not specified, a preallocated format and busLogic adapter type is assumed": a thin lsiLogic disk's copy."""
    d = disk_dir(vc, "ds-c0")
    try:
        create_disk(vc, f"{d}/a.vmdk", thin=True, adapter="lsiLogic")
        data = payload(MiB)
        vc.put(f"{d}/a-flat.vmdk", data)
        vc.wait(vc.content.virtualDiskManager.CopyVirtualDisk_Task(
            sourceName=f"{d}/a.vmdk", sourceDatacenter=vc.dc, destName=f"{d}/b.vmdk", destDatacenter=vc.dc))
        text = descriptor(vc, f"{d}/b.vmdk")
        assert 'createType="vmfs"' in text and f'RW {MiB // 512} VMFS "b-flat.vmdk"' in text
        assert "ddb.thinProvisioned" not in text
        assert 'ddb.adapterType = "buslogic"' in text
        assert vc.get(f"{d}/b-flat.vmdk") == (200, data)
        assert 'ddb.thinProvisioned = "1"' in descriptor(vc, f"{d}/a.vmdk")  # the source is as it was
    finally:
        vc.wait(vc.content.fileManager.DeleteDatastoreFile_Task(name=d, datacenter=vc.dc))


@needs_qemu_img
def test_vcenter_copy_of_a_hosted_sparse_image_is_a_preallocated_flat_disk(vc, tmp_path):
    data = payload(MiB)
    (tmp_path / "img.raw").write_bytes(data)
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse,adapter_type=lsilogic",
             str(tmp_path / "img.raw"), str(tmp_path / "img.vmdk"))
    d = disk_dir(vc, "ds-c0")
    try:
        vc.put(f"{d}/image.vmdk", (tmp_path / "img.vmdk").read_bytes())
        vc.wait(vc.content.virtualDiskManager.CopyVirtualDisk_Task(
            sourceName=f"{d}/image.vmdk", sourceDatacenter=vc.dc, destName=f"{d}/disk.vmdk", destDatacenter=vc.dc))
        text = descriptor(vc, f"{d}/disk.vmdk")
        assert 'createType="vmfs"' in text and "ddb.thinProvisioned" not in text
        assert 'ddb.adapterType = "buslogic"' in text
        assert vc.get(f"{d}/disk-flat.vmdk") == (200, data)
    finally:
        vc.wait(vc.content.fileManager.DeleteDatastoreFile_Task(name=d, datacenter=vc.dc))


def test_vcenter_copy_ignores_force(vc):
    """"The force flag is currently ignored. The FileAlreadyExists fault is thrown if the destination file already
    exists.\""""
    d = disk_dir(vc, "ds-c0")
    try:
        create_disk(vc, f"{d}/a.vmdk")
        create_disk(vc, f"{d}/b.vmdk", kb=2048)
        before = descriptor(vc, f"{d}/b.vmdk")
        fault = task_fault(vc, vc.content.virtualDiskManager.CopyVirtualDisk_Task(
            sourceName=f"{d}/a.vmdk", sourceDatacenter=vc.dc, destName=f"{d}/b.vmdk", destDatacenter=vc.dc,
            force=True))
        assert isinstance(fault, vim.fault.FileAlreadyExists)
        assert descriptor(vc, f"{d}/b.vmdk") == before
    finally:
        vc.wait(vc.content.fileManager.DeleteDatastoreFile_Task(name=d, datacenter=vc.dc))


def test_vcenter_disk_manager_needs_the_datacenter_of_a_datastore_path(vc):
    """"If not specified on a call to VirtualCenter, name must be a URL" (stock vcsim: InvalidArgument dc)."""
    d = disk_dir(vc, "ds-c0")
    vdm = vc.content.virtualDiskManager
    try:
        create_disk(vc, f"{d}/a.vmdk")
        with pytest.raises(vmodl.fault.InvalidArgument):
            vdm.QueryVirtualDiskUuid(name=f"{d}/a.vmdk")
        fault = task_fault(vc, vdm.CopyVirtualDisk_Task(sourceName=f"{d}/a.vmdk", destName=f"{d}/b.vmdk"))
        assert isinstance(fault, vmodl.fault.InvalidArgument)
        fault = task_fault(vc, vdm.DeleteVirtualDisk_Task(name=f"{d}/a.vmdk"))
        assert isinstance(fault, vmodl.fault.InvalidArgument)
        assert vc.get(f"{d}/a.vmdk")[0] == 200 and vc.get(f"{d}/b.vmdk")[0] == 404
        # "If not specified on a call to VirtualCenter, it is assumed that the destination path belongs to the
        # source datacenter."
        vc.wait(vdm.MoveVirtualDisk_Task(sourceName=f"{d}/a.vmdk", sourceDatacenter=vc.dc, destName=f"{d}/c.vmdk"))
        assert vc.get(f"{d}/c.vmdk")[0] == 200
    finally:
        vc.wait(vc.content.fileManager.DeleteDatastoreFile_Task(name=d, datacenter=vc.dc))


# --------------------------------------------------------------- vCenter: relocating a shared VMDK

def attach(w, vm, file_name):
    """Nova-style attach of an existing VMDK: no fileOperation, capacityInKB 0, on a new SCSI controller."""
    disk = vim.vm.device.VirtualDisk(key=-100, controllerKey=-101, unitNumber=0, capacityInKB=0,
                                     backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                                         fileName=file_name, diskMode="persistent"))
    controller = vim.vm.device.VirtualLsiLogicController(key=-101, busNumber=1, sharedBus="noSharing")
    w.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation="add", device=controller),
        vim.vm.device.VirtualDeviceSpec(operation="add", device=disk)])))


def disks(vm):
    return [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]


def test_vcenter_relocate_of_a_vmdk_a_running_vm_holds_is_refused_file_locked(vc, made):
    shadow = vc.create_vm(ds="ds-big", host="DC0_C0_H0")
    made.append((vc, shadow))
    instance = vc.create_vm(ds="ds-big", host="DC0_C0_H0")
    made.append((vc, instance))
    volume = vc.disk(shadow).backing.fileName
    attach(vc, instance, volume)
    vc.wait(instance.PowerOnVM_Task())
    try:
        fault = task_fault(vc, shadow.RelocateVM_Task(vim.vm.RelocateSpec(datastore=vc.ds["ds-c0"])))
        assert isinstance(fault, vim.fault.FileLocked) and fault.file == volume
        assert vc.disk(shadow).backing.fileName == volume and vc.get(volume)[0] == 200
    finally:
        vc.wait(instance.PowerOffVM_Task())


def test_vcenter_relocate_moves_a_vmdk_a_powered_off_vm_holds_and_that_vm_then_finds_it_missing(vc, made):
    """Nova, commit 24488387a1: "The shadow VM relocate will fail with FileNotFoundException if SDRS moved the
    volume vmdk instead of copying it to the new location.\""""
    shadow = vc.create_vm(ds="ds-big", host="DC0_C0_H0")
    made.append((vc, shadow))
    instance = vc.create_vm(ds="ds-big", host="DC0_C0_H0")
    made.append((vc, instance))
    volume = vc.disk(shadow).backing.fileName
    attach(vc, instance, volume)
    vc.wait(instance.RelocateVM_Task(vim.vm.RelocateSpec(datastore=vc.ds["ds-c0"])))
    moved = [d.backing.fileName for d in disks(instance)]
    assert all(f.startswith("[ds-c0] ") for f in moved)
    assert vc.get(volume)[0] == 404  # moved, not copied: the shadow VM's device names a missing file
    assert vc.disk(shadow).backing.fileName == volume
    fault = task_fault(vc, shadow.RelocateVM_Task(vim.vm.RelocateSpec(datastore=vc.ds["ds-c0"])))
    assert isinstance(fault, vim.fault.FileNotFound) and fault.file == volume
    # Nova's way out: remove the stale device, then relocate
    stale = vc.disk(shadow)
    vc.wait(shadow.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation="remove", device=stale)])))
    vc.wait(shadow.RelocateVM_Task(vim.vm.RelocateSpec(datastore=vc.ds["ds-c0"])))


# ------------------------------------------------------------------ vCenter: relocate disk move types

def test_vcenter_relocate_new_child_disk_backing_makes_a_child_on_the_target(vc, made):
    """"Create a new child disk backing on the destination datastore. None of the virtual disk's existing files
    should be moved from their current locations.\""""
    vm = vc.create_vm(ds="ds-big", host="DC0_C0_H0")
    made.append((vc, vm))
    base = vc.disk(vm).backing.fileName
    vc.wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=vc.ds["ds-c0"], diskMoveType="createNewChildDiskBacking")))
    backing = vc.disk(vm).backing
    assert backing.fileName == f"[ds-c0] {vm.name}/{vm.name}-000001.vmdk"
    assert backing.parent.fileName == base and vc.get(base)[0] == 200
    assert 'createType="vmfsSparse"' in descriptor(vc, backing.fileName)
    assert vm.config.files.vmPathName.startswith("[ds-c0] ")


def test_vcenter_relocate_consolidate_keeps_the_chain_and_a_locator_move_type_wins(vc, made):
    """moveAllDiskBackingsAndConsolidate consolidates "during a clone operation or a MigrateVM_Task" only; a
    DiskLocator's diskMoveType overrides the spec's for its disk."""
    vm = vc.create_vm(ds="ds-big", host="DC0_C0_H0")
    made.append((vc, vm))
    base = vc.disk(vm).backing.fileName
    vc.wait(vm.CreateSnapshot_Task(name="s1", memory=False, quiesce=False))
    vc.wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=vc.ds["ds-c0"],
                                                   diskMoveType="moveAllDiskBackingsAndConsolidate")))
    backing = vc.disk(vm).backing
    assert backing.fileName == f"[ds-c0] {vm.name}/{vm.name}-000001.vmdk"
    assert backing.parent and backing.parent.fileName == f"[ds-c0] {vm.name}/{vm.name}.vmdk"
    assert vc.get(base)[0] == 404
    disk = vc.disk(vm)
    locator = vim.vm.RelocateSpec.DiskLocator(diskId=disk.key, datastore=vc.ds["ds-big"],
                                              diskMoveType="moveChildMostDiskBacking")
    vc.wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(disk=[locator])))
    backing = vc.disk(vm).backing
    assert backing.fileName.startswith("[ds-big] ") and backing.parent.fileName.startswith("[ds-c0] ")


# ---------------------------------------------------------------------------------- ESX mode

def test_esx_is_a_host_agent_with_two_vmfs_datastores(esx):
    from tests.vcsim.harness import ESX_DATACENTER, ESX_DATASTORES

    assert esx.sim.esx and esx.sim.mode == "esx" and esx.sim.datacenter == ESX_DATACENTER == "ha-datacenter"
    about = esx.content.about
    assert about.apiType == "HostAgent" and "(govmomi simulator)" not in about.fullName
    assert esx.dc.name == "ha-datacenter"
    types = {d.name: d.summary.type for d in esx.dc.datastore}  # every listed datastore exists
    assert all(types[n] == "VMFS" for n in ESX_DATASTORES)
    [host] = esx.hosts.values()
    for name in ESX_DATASTORES:
        assert [m.key for m in esx.ds[name].host] == [host]
        assert esx.ds[name].summary.accessible


def test_esx_refuses_what_only_vcenter_does(esx, made):
    with pytest.raises(vmodl.fault.NotSupported):
        esx.dc.vmFolder.CreateFolder("sub")
    with pytest.raises(vmodl.fault.NotSupported):
        esx.dc.datastoreFolder.CreateStoragePod("pod")
    vm = esx.create_vm(ds="datastore1", host=esx.host_name)
    made.append((esx, vm))
    fault = task_fault(esx, vm.CloneVM_Task(folder=esx.dc.vmFolder, name=vm.name + "-c",
                                            spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec())))
    assert isinstance(fault, vmodl.fault.NotSupported) and fault.msg == "The operation is not supported on the object."
    assert esx.content.searchIndex.FindChild(esx.dc.vmFolder, vm.name + "-c") is None
    fault = task_fault(esx, vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=esx.ds["datastore2"])))
    assert isinstance(fault, vmodl.fault.NotSupported)
    assert esx.disk(vm).backing.fileName.startswith("[datastore1] ")
    with pytest.raises(vmodl.fault.NotSupported):
        vm.MarkAsTemplate()
    assert not vm.config.template
    with pytest.raises(vmodl.fault.NotSupported):
        vm.MarkAsVirtualMachine(pool=esx.pool(esx.host_name))


def test_esx_has_no_pbm_endpoint_nor_tag_control(esx):
    stub = SoapStubAdapter(host=esx.sim.host, port=esx.sim.port, path="/pbm", version="pbm.version.version11",
                           sslContext=ssl.create_default_context(cafile=esx.sim.ca_file))
    stub.cookie = esx.si._stub.cookie
    with pytest.raises(Exception) as info:
        pbm.ServiceInstance("ServiceInstance", stub).RetrieveContent()
    assert "404" in str(info.value)
    with pytest.raises(urllib.error.HTTPError) as http:
        esx.sim.set_datastore_tag("datastore1", "tier", "gold")
    assert http.value.code == 404


def test_esx_creates_reconfigures_and_snapshots_vms_with_esxi_disk_files(esx, made):
    vm = esx.create_vm(ds="datastore1", host=esx.host_name, size=2 * MiB, thin=True)
    made.append((esx, vm))
    backing = esx.disk(vm).backing
    assert backing.fileName == f"[datastore1] {vm.name}/{vm.name}.vmdk" and backing.uuid
    text = descriptor(esx, backing.fileName)
    assert f'RW {2 * MiB // 512} VMFS "{vm.name}-flat.vmdk"' in text and 'ddb.thinProvisioned = "1"' in text
    esx.wait(vm.ReconfigVM_Task(esx.grow_spec(vm, 4 * MiB)))
    assert f'RW {4 * MiB // 512} VMFS' in descriptor(esx, backing.fileName)
    esx.wait(vm.CreateSnapshot_Task(name="s1", memory=False, quiesce=False))
    assert esx.disk(vm).backing.fileName == f"[datastore1] {vm.name}/{vm.name}-000001.vmdk"
    esx.wait(vm.RemoveAllSnapshots_Task())
    assert esx.disk(vm).backing.fileName == backing.fileName


def test_esx_copy_takes_a_dest_spec_and_no_datacenter(esx):
    vdm = esx.content.virtualDiskManager
    d = disk_dir(esx, "datastore1")
    try:
        create_disk(esx, f"{d}/a.vmdk", thin=False)
        data = payload(MiB)
        esx.put(f"{d}/a-flat.vmdk", data)
        spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(diskType="thin", adapterType="ide", capacityKb=1024)
        esx.wait(vdm.CopyVirtualDisk_Task(sourceName=f"{d}/a.vmdk", destName=f"{d}/b.vmdk", destSpec=spec))
        text = descriptor(esx, f"{d}/b.vmdk")
        assert 'ddb.thinProvisioned = "1"' in text and 'ddb.adapterType = "ide"' in text
        assert esx.get(f"{d}/b-flat.vmdk") == (200, data)
        spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(diskType="eagerZeroedThick", adapterType="lsiLogic",
                                                               capacityKb=1024)
        esx.wait(vdm.CopyVirtualDisk_Task(sourceName=f"{d}/b.vmdk", destName=f"{d}/c.vmdk", destSpec=spec))
        text = descriptor(esx, f"{d}/c.vmdk")
        assert "ddb.thinProvisioned" not in text and 'ddb.adapterType = "lsilogic"' in text
        assert vdm.QueryVirtualDiskUuid(name=f"{d}/c.vmdk")  # no datacenter needed on a host
        # a hosted format is a clone destination on ESXi, not modelled here: refused rather than faked
        spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(diskType="sparseMonolithic", adapterType="lsiLogic",
                                                               capacityKb=1024)
        fault = task_fault(esx, vdm.CopyVirtualDisk_Task(sourceName=f"{d}/c.vmdk", destName=f"{d}/e.vmdk",
                                                         destSpec=spec))
        assert isinstance(fault, vmodl.fault.NotImplemented)
    finally:
        esx.wait(esx.content.fileManager.DeleteDatastoreFile_Task(name=d, datacenter=esx.dc))


def test_esx_moves_a_disk_between_its_datastores(esx):
    vdm = esx.content.virtualDiskManager
    d1, d2 = disk_dir(esx, "datastore1"), disk_dir(esx, "datastore2")
    try:
        create_disk(esx, f"{d1}/a.vmdk")
        data = payload(MiB)
        esx.put(f"{d1}/a-flat.vmdk", data)
        esx.wait(vdm.MoveVirtualDisk_Task(sourceName=f"{d1}/a.vmdk", destName=f"{d2}/a.vmdk"))
        assert esx.get(f"{d1}/a.vmdk")[0] == 404 and esx.get(f"{d2}/a-flat.vmdk") == (200, data)
    finally:
        for d in (d1, d2):
            esx.wait(esx.content.fileManager.DeleteDatastoreFile_Task(name=d, datacenter=esx.dc))


@needs_qemu_img
def test_esx_import_and_export(esx, made, tmp_path):
    data = payload(MiB)
    (tmp_path / "img.raw").write_bytes(data)
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
             str(tmp_path / "img.raw"), str(tmp_path / "img.vmdk"))
    name = f"imp-{uuid.uuid4().hex[:8]}"
    disk = vim.vm.device.VirtualDisk(
        key=-1, controllerKey=1000, unitNumber=0, capacityInKB=1024, capacityInBytes=MiB,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName="", diskMode="persistent", thinProvisioned=True))
    config = vim.vm.ConfigSpec(
        name=name, guestId="otherGuest", numCPUs=1, memoryMB=64, files=vim.vm.FileInfo(vmPathName="[datastore2]"),
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=vim.vm.device.VirtualLsiLogicController(
            key=1000, busNumber=0, sharedBus="noSharing")),
            vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)])
    lease = esx.pool(esx.host_name).ImportVApp(spec=vim.vm.VmImportSpec(configSpec=config), folder=esx.dc.vmFolder)
    info = wait_lease(lease)
    vm = info.entity
    made.append((esx, vm))
    [url] = [u.url for u in info.deviceUrl if u.disk]
    assert url.startswith("https://*/")  # a host names itself "*" (the client substitutes its address)
    assert nfc_request(esx, "PUT", url, (tmp_path / "img.vmdk").read_bytes())[0] == 200
    lease.HttpNfcLeaseComplete()
    assert esx.get(esx.flat(esx.disk(vm).backing.fileName)) == (200, data)
    lease = vm.ExportVm()
    info = wait_lease(lease)
    [url] = [u.url for u in info.deviceUrl if u.disk]
    status, body = nfc_request(esx, "GET", url)
    assert status == 200 and body[:4] == b"KDMV"
    lease.HttpNfcLeaseComplete()


# ------------------------------------------------------------------ govmomi's models, untagged

def test_untagged_is_the_default_vpx_model_without_vcsim_tags(tmp_path_factory, is_vcsim):
    sim = _start(tmp_path_factory, is_vcsim, untagged=True)
    try:
        assert sim.stock and sim.untagged and sim.mode == "untagged" and sim.datacenter == "DC0"
        si = connect(sim)
        try:
            content = si.RetrieveContent()
            assert content.about.apiType == "VirtualCenter"
            assert content.about.fullName == "VMware vCenter Server 6.5.0 build-5973321"  # simulator.VPX()'s own
            dc = content.rootFolder.childEntity[0]
            assert dc.name == "DC0" and [(d.name, d.summary.type) for d in dc.datastore] == [("LocalDS_0", "OTHER")]
            hosts = [h for cr in dc.hostFolder.childEntity for h in cr.host]
            assert sorted(h.name for h in hosts) == ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2", "DC0_H0"]
            assert {h.summary.hardware.vendor for h in hosts} == {"VMware, Inc."}
            # no fidelity layer: vcsim 0.24.2's clone rewrites its source's disk
            vm = next(v for v in dc.vmFolder.childEntity if v.name == "DC0_H0_VM0")
            before = disks(vm)[0].backing.fileName
            task = vm.CloneVM_Task(folder=dc.vmFolder, name="c", spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec()))
            assert finished(task) == "success" and disks(vm)[0].backing.fileName != before
        finally:
            Disconnect(si)
        with pytest.raises(urllib.error.HTTPError):
            sim.set_delay("CreateVM_Task", 1)
    finally:
        sim.stop()


def test_stock_esx_is_govmomis_esx_model_as_vcsim_esx_serves_it(tmp_path_factory, is_vcsim):
    """Without our layer a host clones (vcsim's ESX model does not refuse it); tagged as the vcsim command tags."""
    sim = _start(tmp_path_factory, is_vcsim, mode="stock-esx")
    try:
        assert sim.esx and sim.stock and sim.datacenter == "ha-datacenter"
        si = connect(sim)
        try:
            content = si.RetrieveContent()
            assert content.about.apiType == "HostAgent" and content.about.fullName.endswith("(govmomi simulator)")
            dc = content.rootFolder.childEntity[0]
            vm = next(v for v in dc.vmFolder.childEntity if isinstance(v, vim.VirtualMachine))
            task = vm.CloneVM_Task(folder=dc.vmFolder, name="c", spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec()))
            assert finished(task) == "success"
        finally:
            Disconnect(si)
    finally:
        sim.stop()


def test_vcenter_relocate_without_pool_or_host_stays_on_the_current_host(vc, made):
    """RelocateSpec.host: "if resource pool is not specified, current host is used" (no DRS pick without a pool)."""
    vm = vc.create_vm(ds="ds-big", host="DC0_C0_H1")
    made.append((vc, vm))
    fault = task_fault(vc, vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=vc.ds["ds-small"])))  # DC0_C0_H0 only
    assert isinstance(fault, vim.fault.InvalidDatastore)
    assert vc.disk(vm).backing.fileName.startswith("[ds-big] ") and vm.runtime.host.name == "DC0_C0_H1"
    vc.wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=vc.ds["ds-small"], pool=vc.pool("DC0_C0_H0"))))
    assert vm.runtime.host.name == "DC0_C0_H0"  # with the pool, DRS picks a host that mounts it
