"""The simulator itself against vSphere's documented behaviour (tests/vcsim: the fidelity layer).

Plain pyVmomi and HTTP, none of the provider's code: each test drives the vSphere API the way any
client would and asserts on the inventory and on the datastore files (HTTP GET /folder/...).
"""

from __future__ import annotations

import http.client
import os
import shutil
import ssl
import subprocess
import time
import urllib.parse
import uuid

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import SoapStubAdapter, pbm, vim, vmodl

MiB = 1 << 20


# ------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def sim(vcsim, is_vcsim):
    if not is_vcsim:
        pytest.skip("tests the simulator of tests/vcsim")
    return vcsim


@pytest.fixture(scope="module")
def si(sim):
    ctx = ssl.create_default_context(cafile=sim.ca_file)
    si = SmartConnect(host=sim.host, port=sim.port, user=sim.user, pwd=sim.password, sslContext=ctx)
    try:
        yield si
    finally:
        Disconnect(si)


class World:
    """The default model seen through pyVmomi."""

    def __init__(self, sim, si):
        self.sim, self.si = sim, si
        self.content = si.RetrieveContent()
        self.dc = next(e for e in self.content.rootFolder.childEntity if isinstance(e, vim.Datacenter))
        self.hosts = {h.name: h for cr in self.dc.hostFolder.childEntity for h in cr.host}
        self.ds = {d.name: d for d in self.dc.datastore}
        self.folder = self._folder("fidelity-tests")

    def _folder(self, name):
        for child in self.dc.vmFolder.childEntity:
            if isinstance(child, vim.Folder) and child.name == name:
                return child
        try:
            return self.dc.vmFolder.CreateFolder(name)
        except vim.fault.DuplicateName:
            return self._folder(name)

    def pool(self, host):
        return self.hosts[host].parent.resourcePool

    # --------------------------------------------------------------------------- tasks
    def wait(self, task, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            info = task.info
            if info.state in ("success", "error"):
                break
            assert time.monotonic() < deadline, f"task {task} still {info.state}"
            time.sleep(0.05)
        if info.state == "error":
            raise info.error
        return info.result

    # --------------------------------------------------------------------------- VMs
    def create_vm(self, ds="ds-c0", host="DC0_C0_H0", size=MiB, thin=False, eager=False, name=None):
        name = name or f"fid-{uuid.uuid4().hex[:8]}"
        disk = vim.vm.device.VirtualDisk(
            key=-1, controllerKey=1000, unitNumber=0, capacityInKB=size // 1024, capacityInBytes=size,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                fileName="", diskMode="persistent", thinProvisioned=thin, eagerlyScrub=eager))
        spec = vim.vm.ConfigSpec(
            name=name, guestId="otherGuest", numCPUs=1, memoryMB=64,
            files=vim.vm.FileInfo(vmPathName=f"[{ds}]"),
            deviceChange=[
                vim.vm.device.VirtualDeviceSpec(operation="add", device=vim.vm.device.VirtualLsiLogicController(
                    key=1000, busNumber=0, sharedBus="noSharing")),
                vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk),
            ])
        return self.wait(self.folder.CreateVM_Task(spec, self.pool(host), self.hosts[host]))

    @staticmethod
    def disk(vm):
        return next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))

    def destroy(self, vm):
        try:
            if vm.config.template:
                vm.MarkAsVirtualMachine(pool=self.pool("DC0_C0_H0"), host=vm.runtime.host)
            self.wait(vm.Destroy_Task())
        except vmodl.fault.ManagedObjectNotFound:
            pass

    def grow_spec(self, vm, size):
        disk = self.disk(vm)
        disk.capacityInKB = size // 1024
        disk.capacityInBytes = size
        return vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)])

    # --------------------------------------------------------------------------- files
    def _http(self, method, ds_path, body=None):
        ds, path = ds_path[1:].split("] ", 1)
        query = urllib.parse.urlencode({"dcPath": self.dc.name, "dsName": ds})
        conn = http.client.HTTPSConnection(self.sim.host, self.sim.port,
                                           context=ssl.create_default_context(cafile=self.sim.ca_file), timeout=60)
        try:
            conn.request(method, f"/folder/{urllib.parse.quote(path)}?{query}", body=body,
                         headers={"Cookie": self.si._stub.cookie})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def get(self, ds_path):
        """(status, bytes) of a datastore file."""
        return self._http("GET", ds_path)

    def put(self, ds_path, data):
        status, _ = self._http("PUT", ds_path, data)
        assert status in (200, 201, 204), status

    @staticmethod
    def flat(ds_path):
        return ds_path[: -len(".vmdk")] + "-flat.vmdk"

    def write_disk(self, vm, data):
        """Fill the VM's disk with data (its flat extent, over datastore HTTP)."""
        self.put(self.flat(self.disk(vm).backing.fileName), data)

    # --------------------------------------------------------------------------- PBM
    def pbm(self):
        stub = SoapStubAdapter(host=self.sim.host, port=self.sim.port, path="/pbm", version="pbm.version.version11",
                               sslContext=ssl.create_default_context(cafile=self.sim.ca_file))
        stub.cookie = self.si._stub.cookie
        return pbm.ServiceInstance("ServiceInstance", stub).RetrieveContent()


@pytest.fixture(scope="module")
def w(sim, si):
    return World(sim, si)


@pytest.fixture
def vms(w):
    made = []
    yield made
    for vm in reversed(made):
        w.destroy(vm)


def payload(size):
    return os.urandom(size // 2) + bytes(size - size // 2)  # data, then a zero tail


def fault_of(excinfo):
    return excinfo.value


# ------------------------------------------------------------------------------ disk layout

def test_created_disk_has_descriptor_and_flat_extent_of_its_capacity(w, vms):
    vm = w.create_vm(size=2 * MiB, thin=True)
    vms.append(vm)
    backing = w.disk(vm).backing
    assert backing.fileName == f"[ds-c0] {vm.name}/{vm.name}.vmdk"
    assert backing.uuid and backing.uuid.upper().startswith("6000C29")
    status, desc = w.get(backing.fileName)
    assert status == 200
    text = desc.decode()
    assert 'createType="vmfs"' in text
    assert f'RW 4096 VMFS "{vm.name}-flat.vmdk"' in text
    assert 'ddb.thinProvisioned = "1"' in text
    u = backing.uuid.replace("-", "")
    assert " ".join(u[i:i + 2] for i in range(0, 16, 2)) + "-" in text  # ddb.uuid follows backing.uuid
    status, flat = w.get(w.flat(backing.fileName))
    assert status == 200 and flat == bytes(2 * MiB)


def test_destroy_deletes_the_disk_files(w):
    vm = w.create_vm()
    name = w.disk(vm).backing.fileName
    w.wait(vm.Destroy_Task())
    assert w.get(name)[0] == 404 and w.get(w.flat(name))[0] == 404


# ----------------------------------------------------------------------------------- clone

def test_full_clone_leaves_source_alone_and_copies_the_data(w, vms):
    src = w.create_vm(ds="ds-c0", size=MiB)
    vms.append(src)
    data = payload(MiB)
    w.write_disk(src, data)
    src_file = w.disk(src).backing.fileName
    name = f"clone-{uuid.uuid4().hex[:8]}"
    locator = vim.vm.RelocateSpec.DiskLocator(
        diskId=w.disk(src).key, datastore=w.ds["ds-big"],
        diskBackingInfo=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName="", diskMode="persistent", thinProvisioned=False, eagerlyScrub=True))
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(
        datastore=w.ds["ds-big"], pool=w.pool("DC0_C0_H0"),
        diskMoveType="moveAllDiskBackingsAndDisallowSharing", disk=[locator]), powerOn=False, template=False)
    clone = w.wait(src.CloneVM_Task(folder=w.folder, name=name, spec=spec))
    vms.append(clone)

    assert w.disk(src).backing.fileName == src_file  # vcsim 0.24.2 rewrote this to the clone's file
    cb = w.disk(clone).backing
    assert cb.fileName == f"[ds-big] {name}/{name}.vmdk"
    assert cb.datastore._GetMoId() == w.ds["ds-big"]._GetMoId()
    assert (cb.eagerlyScrub, cb.thinProvisioned) == (True, False)
    assert cb.parent is None
    assert cb.uuid and cb.uuid != w.disk(src).backing.uuid
    assert w.get(w.flat(src_file)) == (200, data)
    assert w.get(w.flat(cb.fileName)) == (200, data)
    assert clone.config.files.vmPathName.startswith("[ds-big] ")


@pytest.mark.parametrize("transform,locator_thin,expect_thin", [
    ("sparse", None, True),
    ("flat", None, False),
    (None, True, True),
])
def test_clone_provisioning_type(w, vms, transform, locator_thin, expect_thin):
    src = w.create_vm(thin=not expect_thin)
    vms.append(src)
    loc = vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0"))
    if transform:
        loc.transform = transform
    if locator_thin is not None:
        loc.disk = [vim.vm.RelocateSpec.DiskLocator(
            diskId=w.disk(src).key, datastore=w.ds["ds-c0"],
            diskBackingInfo=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                fileName="", diskMode="persistent", thinProvisioned=locator_thin, eagerlyScrub=False))]
    clone = w.wait(src.CloneVM_Task(folder=w.folder, name=f"clone-{uuid.uuid4().hex[:8]}",
                                    spec=vim.vm.CloneSpec(location=loc, powerOn=False, template=False)))
    vms.append(clone)
    assert w.disk(clone).backing.thinProvisioned is expect_thin
    assert w.disk(src).backing.thinProvisioned is (not expect_thin)


def test_clone_into_a_taken_folder_name_gets_its_own_folder(w, vms):
    """Rename leaves the files; a clone under the old name gets name_1/ (vcsim put its disk in name/)."""
    vm = w.create_vm()
    vms.append(vm)
    data = payload(MiB)
    w.write_disk(vm, data)
    name = vm.name
    w.wait(vm.Rename_Task(newName=name + "-old"))
    clone = w.wait(vm.CloneVM_Task(folder=w.folder, name=name, spec=vim.vm.CloneSpec(
        location=vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0")), powerOn=False, template=False)))
    vms.append(clone)
    assert clone.config.files.vmPathName == f"[ds-c0] {name}_1/{name}.vmx"
    assert w.disk(clone).backing.fileName == f"[ds-c0] {name}_1/{name}.vmdk"
    w.wait(vm.Destroy_Task())
    vms.remove(vm)
    assert w.get(w.flat(w.disk(clone).backing.fileName)) == (200, data)


def test_linked_clone_gets_a_child_disk_of_the_snapshot_disk(w, vms):
    src = w.create_vm(size=MiB)
    vms.append(src)
    data = payload(MiB)
    w.write_disk(src, data)
    src_file = w.disk(src).backing.fileName
    snap = w.wait(src.CreateSnapshot_Task(name="base", description="", memory=False, quiesce=False))
    name = f"linked-{uuid.uuid4().hex[:8]}"
    spec = vim.vm.CloneSpec(snapshot=snap, powerOn=False, template=False, location=vim.vm.RelocateSpec(
        pool=w.pool("DC0_C0_H0"), diskMoveType="createNewChildDiskBacking"))
    clone = w.wait(src.CloneVM_Task(folder=w.folder, name=name, spec=spec))
    vms.append(clone)
    cb = w.disk(clone).backing
    assert cb.parent is not None and cb.parent.fileName == src_file
    assert cb.fileName == f"[ds-c0] {name}/{name}.vmdk"
    # the source runs on its snapshot's delta, whose parent is the file the clone shares
    sb = w.disk(src).backing
    assert sb.fileName == src_file[:-len(".vmdk")] + "-000001.vmdk" and sb.parent.fileName == src_file
    _status, desc = w.get(cb.fileName)
    assert f'parentFileNameHint="../{src.name}/{src.name}.vmdk"' in desc.decode()
    assert w.get(w.flat(cb.fileName)) == (200, data)
    # the layout lists the chain
    chain = clone.layoutEx.disk[0].chain
    assert len(chain) == 2


def test_linked_clone_needs_a_snapshot(w, vms):
    src = w.create_vm()
    vms.append(src)
    spec = vim.vm.CloneSpec(powerOn=False, template=False, location=vim.vm.RelocateSpec(
        pool=w.pool("DC0_C0_H0"), diskMoveType="createNewChildDiskBacking"))
    with pytest.raises(vmodl.fault.InvalidArgument):
        w.wait(src.CloneVM_Task(folder=w.folder, name=f"linked-{uuid.uuid4().hex[:8]}", spec=spec))


def test_clone_inherits_extra_config_with_spec_on_top(w, vms):
    src = w.create_vm()
    vms.append(src)
    opt = vim.option.OptionValue
    w.wait(src.ReconfigVM_Task(vim.vm.ConfigSpec(annotation="source note", extraConfig=[
        opt(key="keep", value="1"), opt(key="change", value="old"), opt(key="drop", value="x")])))
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0")), powerOn=False, template=False,
                            config=vim.vm.ConfigSpec(extraConfig=[
                                opt(key="change", value="new"), opt(key="drop", value=""), opt(key="add", value="2")]))
    clone = w.wait(src.CloneVM_Task(folder=w.folder, name=f"clone-{uuid.uuid4().hex[:8]}", spec=spec))
    vms.append(clone)
    extra = {o.key: o.value for o in clone.config.extraConfig}
    assert extra["keep"] == "1" and extra["change"] == "new" and extra["add"] == "2" and "drop" not in extra
    assert [o.key for o in clone.config.extraConfig].count("change") == 1
    assert clone.config.annotation == "source note"


def test_clone_to_datastore_the_host_lacks_moves_to_a_host_that_has_it(w, vms):
    src = w.create_vm(ds="ds-big", host="DC0_C0_H1")
    vms.append(src)
    loc = vim.vm.RelocateSpec(datastore=w.ds["ds-small"], pool=w.pool("DC0_C0_H0"))  # ds-small: DC0_C0_H0 only
    clone = w.wait(src.CloneVM_Task(folder=w.folder, name=f"clone-{uuid.uuid4().hex[:8]}",
                                    spec=vim.vm.CloneSpec(location=loc, powerOn=False, template=False)))
    vms.append(clone)
    assert clone.runtime.host.name == "DC0_C0_H0"
    loc.host = w.hosts["DC0_C0_H2"]
    with pytest.raises(vim.fault.InvalidDatastore):
        w.wait(src.CloneVM_Task(folder=w.folder, name=f"clone-{uuid.uuid4().hex[:8]}",
                                spec=vim.vm.CloneSpec(location=loc, powerOn=False, template=False)))


def test_clone_growing_a_linked_child_is_refused(w, vms):
    src = w.create_vm()
    vms.append(src)
    snap = w.wait(src.CreateSnapshot_Task(name="s", description="", memory=False, quiesce=False))
    disk = w.disk(src)
    disk.capacityInKB, disk.capacityInBytes = 2 * MiB // 1024, 2 * MiB
    edit = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
    spec = vim.vm.CloneSpec(snapshot=snap, powerOn=False, template=False,
                            location=vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0"),
                                                         diskMoveType="createNewChildDiskBacking"),
                            config=vim.vm.ConfigSpec(deviceChange=[edit]))
    name = f"linked-{uuid.uuid4().hex[:8]}"
    with pytest.raises(vim.fault.InvalidDeviceOperation):
        w.wait(src.CloneVM_Task(folder=w.folder, name=name, spec=spec))
    assert w.content.searchIndex.FindChild(w.folder, name) is None  # the failed clone is gone


# -------------------------------------------------------------------------------- relocate

def test_relocate_moves_folder_and_disk_and_converts(w, vms):
    vm = w.create_vm(ds="ds-c0", host="DC0_C0_H0", thin=True)
    vms.append(vm)
    data = payload(MiB)
    w.write_disk(vm, data)
    old_disk, old_vmx = w.disk(vm).backing.fileName, vm.config.files.vmPathName
    locator = vim.vm.RelocateSpec.DiskLocator(
        diskId=w.disk(vm).key, datastore=w.ds["ds-big"],
        diskBackingInfo=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName="", diskMode="persistent", thinProvisioned=False, eagerlyScrub=False))
    w.wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=w.ds["ds-big"], disk=[locator],
                                                  diskMoveType="moveAllDiskBackingsAndAllowSharing")))
    b = w.disk(vm).backing
    assert b.fileName == f"[ds-big] {vm.name}/{vm.name}.vmdk"
    assert b.datastore._GetMoId() == w.ds["ds-big"]._GetMoId()
    assert (b.thinProvisioned, b.eagerlyScrub) == (False, False)
    assert [d.name for d in vm.datastore] == ["ds-big"]
    assert vm.config.files.vmPathName == old_vmx.replace("[ds-c0]", "[ds-big]")
    assert vm.summary.config.vmPathName == vm.config.files.vmPathName
    assert w.get(old_disk)[0] == 404 and w.get(w.flat(old_disk))[0] == 404 and w.get(old_vmx)[0] == 404
    assert w.get(w.flat(b.fileName)) == (200, data)
    assert w.get(vm.config.files.vmPathName)[0] == 200
    assert 'ddb.thinProvisioned' not in w.get(b.fileName)[1].decode()
    ds_big_vms = {v._GetMoId() for v in w.ds["ds-big"].vm}
    assert vm._GetMoId() in ds_big_vms and vm._GetMoId() not in {v._GetMoId() for v in w.ds["ds-c0"].vm}


def test_relocate_into_a_taken_folder_name_gets_its_own_folder(w, vms):
    other = w.create_vm(ds="ds-big")
    vms.append(other)
    name = other.name
    w.wait(other.Rename_Task(newName=name + "-old"))  # its files stay in [ds-big] name/
    vm = w.create_vm(ds="ds-c0", name=name)
    vms.append(vm)
    w.wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=w.ds["ds-big"])))
    assert vm.config.files.vmPathName == f"[ds-big] {name}_1/{name}.vmx"
    assert w.disk(vm).backing.fileName == f"[ds-big] {name}_1/{name}.vmdk"
    assert w.get(w.disk(other).backing.fileName)[0] == 200


def test_relocate_disk_only_keeps_the_vm_folder(w, vms):
    vm = w.create_vm(ds="ds-c0")
    vms.append(vm)
    vmx = vm.config.files.vmPathName
    locator = vim.vm.RelocateSpec.DiskLocator(diskId=w.disk(vm).key, datastore=w.ds["ds-big"])
    w.wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(disk=[locator])))
    assert vm.config.files.vmPathName == vmx and w.get(vmx)[0] == 200
    assert w.disk(vm).backing.fileName == f"[ds-big] {vm.name}/{vm.name}.vmdk"
    assert sorted(d.name for d in vm.datastore) == ["ds-big", "ds-c0"]


def test_relocate_to_a_datastore_the_given_host_lacks_is_refused(w, vms):
    vm = w.create_vm(ds="ds-c0")
    vms.append(vm)
    with pytest.raises(vim.fault.InvalidDatastore):
        w.wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=w.ds["ds-c1"], host=w.hosts["DC0_C0_H0"])))
    assert w.disk(vm).backing.fileName.startswith("[ds-c0] ")
    # with the C1 pool, a C1 host is chosen
    w.wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=w.ds["ds-c1"], pool=w.pool("DC0_C1_H0"))))
    assert vm.runtime.host.name.startswith("DC0_C1_") and vm.resourcePool._GetMoId() == w.pool("DC0_C1_H0")._GetMoId()


# ------------------------------------------------------------------------------ reconfigure

def test_shrinking_a_disk_is_refused(w, vms):
    vm = w.create_vm(size=2 * MiB)
    vms.append(vm)
    with pytest.raises(vim.fault.InvalidDeviceOperation) as info:
        w.wait(vm.ReconfigVM_Task(w.grow_spec(vm, MiB)))
    assert info.value.badOp == "edit" and info.value.deviceIndex == 0
    assert w.disk(vm).capacityInBytes == 2 * MiB


def test_growing_a_disk_grows_its_files(w, vms):
    vm = w.create_vm(size=MiB)
    vms.append(vm)
    data = payload(MiB)
    w.write_disk(vm, data)
    free = w.ds["ds-c0"].summary.freeSpace
    w.wait(vm.ReconfigVM_Task(w.grow_spec(vm, 3 * MiB)))
    d = w.disk(vm)
    assert (d.capacityInBytes, d.capacityInKB) == (3 * MiB, 3 * MiB // 1024)
    assert f'RW {3 * MiB // 512} VMFS' in w.get(d.backing.fileName)[1].decode()
    assert w.get(w.flat(d.backing.fileName)) == (200, data + bytes(2 * MiB))
    assert w.ds["ds-c0"].summary.freeSpace == free - 2 * MiB  # the growth, not the whole disk again


def test_growing_only_capacity_in_kb_is_understood(w, vms):
    vm = w.create_vm(size=MiB)
    vms.append(vm)
    disk = w.disk(vm)
    disk.capacityInKB = 2 * MiB // 1024  # capacityInBytes still says 1 MiB, as clients leave it
    edit = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
    w.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[edit])))
    assert w.disk(vm).capacityInBytes == 2 * MiB


def test_growing_a_disk_with_snapshots_is_refused(w, vms):
    vm = w.create_vm()
    vms.append(vm)
    w.wait(vm.CreateSnapshot_Task(name="s", description="", memory=False, quiesce=False))
    with pytest.raises(vim.fault.InvalidDeviceOperation):
        w.wait(vm.ReconfigVM_Task(w.grow_spec(vm, 2 * MiB)))
    assert w.disk(vm).capacityInBytes == MiB


def test_growing_a_linked_clone_is_refused(w, vms):
    src = w.create_vm()
    vms.append(src)
    snap = w.wait(src.CreateSnapshot_Task(name="s", description="", memory=False, quiesce=False))
    clone = w.wait(src.CloneVM_Task(folder=w.folder, name=f"linked-{uuid.uuid4().hex[:8]}", spec=vim.vm.CloneSpec(
        snapshot=snap, powerOn=False, template=False,
        location=vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0"), diskMoveType="createNewChildDiskBacking"))))
    vms.append(clone)
    with pytest.raises(vim.fault.InvalidDeviceOperation):
        w.wait(clone.ReconfigVM_Task(w.grow_spec(clone, 2 * MiB)))


def test_snapshot_keeps_the_disk_as_it_was(w, vms):
    vm = w.create_vm()
    vms.append(vm)
    snap = w.wait(vm.CreateSnapshot_Task(name="s", description="", memory=False, quiesce=False))
    w.wait(snap.RemoveSnapshot_Task(removeChildren=False))
    w.wait(vm.ReconfigVM_Task(w.grow_spec(vm, 2 * MiB)))
    assert w.disk(vm).capacityInBytes == 2 * MiB


def test_rename_snapshot(w, vms):
    vm = w.create_vm()
    vms.append(vm)
    snap = w.wait(vm.CreateSnapshot_Task(name="a", description="one", memory=False, quiesce=False))
    snap.RenameSnapshot(name="b")
    node = vm.snapshot.rootSnapshotList[0]
    assert (node.name, node.description) == ("b", "one")
    snap.RenameSnapshot(description="two")
    assert vm.snapshot.rootSnapshotList[0].description == "two"


def test_extra_config_keys_are_updated_in_place(w, vms):
    vm = w.create_vm()
    vms.append(vm)
    opt = vim.option.OptionValue
    w.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[opt(key="a", value="1"), opt(key="b", value="1")])))
    w.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[opt(key="a", value="2"), opt(key="b", value="")])))
    keys = [o.key for o in vm.config.extraConfig]
    assert keys.count("a") == 1 and "b" not in keys
    assert {o.key: o.value for o in vm.config.extraConfig}["a"] == "2"


def test_backing_uuid_edit_reaches_the_descriptor(w, vms):
    vm = w.create_vm()
    vms.append(vm)
    disk = w.disk(vm)
    disk.backing.uuid = "6000C291-2345-6789-abcd-ef0123456789"
    edit = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
    w.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[edit])))
    assert w.disk(vm).backing.uuid == "6000C291-2345-6789-abcd-ef0123456789"
    assert 'ddb.uuid = "60 00 C2 91 23 45 67 89-ab cd ef 01 23 45 67 89"' in w.get(disk.backing.fileName)[1].decode()
    vdm = w.content.virtualDiskManager
    assert vdm.QueryVirtualDiskUuid(disk.backing.fileName, w.dc) == "60 00 C2 91 23 45 67 89-ab cd ef 01 23 45 67 89"


# ------------------------------------------------------------------------------ NFC leases

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def wait_lease(lease):
    deadline = time.monotonic() + 10
    while lease.state == "initializing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert lease.state == "ready", lease.error
    return lease.info


def nfc_request(w, method, url, body=None):
    u = urllib.parse.urlsplit(url.replace("*", f"{w.sim.host}:{w.sim.port}"))
    conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=60,
                                       context=ssl.create_default_context(cafile=w.sim.ca_file))
    try:
        conn.request(method, u.path, body=body, headers={"Content-Type": "application/x-vnd.vmware-streamVmdk"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def import_spec(name, size):
    disk = vim.vm.device.VirtualDisk(
        key=-1, controllerKey=1000, unitNumber=0, capacityInKB=size // 1024, capacityInBytes=size,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName="", diskMode="persistent", thinProvisioned=True))
    config = vim.vm.ConfigSpec(
        name=name, guestId="otherGuest", numCPUs=1, memoryMB=64, files=vim.vm.FileInfo(vmPathName="[ds-c0]"),
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=vim.vm.device.VirtualLsiLogicController(
            key=1000, busNumber=0, sharedBus="noSharing")),
            vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)])
    return vim.vm.VmImportSpec(configSpec=config)


@needs_qemu_img
@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_import_stream_optimized_upload_lands_in_the_disk(w, vms, tmp_path, method):
    data = payload(2 * MiB)
    (tmp_path / "img.raw").write_bytes(data)
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
             str(tmp_path / "img.raw"), str(tmp_path / "img.vmdk"))
    name = f"imp-{uuid.uuid4().hex[:8]}"
    lease = w.pool("DC0_C0_H0").ImportVApp(spec=import_spec(name, 4 * MiB), folder=w.folder,
                                           host=w.hosts["DC0_C0_H0"])
    info = wait_lease(lease)
    vm = info.entity
    vms.append(vm)
    urls = [d.url for d in info.deviceUrl if d.disk]
    assert len(urls) == 1
    status, _ = nfc_request(w, method, urls[0], (tmp_path / "img.vmdk").read_bytes())
    assert status == 200
    lease.HttpNfcLeaseProgress(percent=100)
    lease.HttpNfcLeaseComplete()
    assert lease.state == "done"
    flat = w.flat(w.disk(vm).backing.fileName)
    assert w.get(flat) == (200, data + bytes(2 * MiB))


@needs_qemu_img
def test_import_abort_removes_the_vm(w, tmp_path):
    name = f"imp-{uuid.uuid4().hex[:8]}"
    lease = w.pool("DC0_C0_H0").ImportVApp(spec=import_spec(name, MiB), folder=w.folder, host=w.hosts["DC0_C0_H0"])
    info = wait_lease(lease)
    disk_file = w.disk(info.entity).backing.fileName
    lease.HttpNfcLeaseAbort()
    assert lease.state == "error"
    assert w.content.searchIndex.FindChild(w.folder, name) is None
    assert w.get(disk_file)[0] == 404


@needs_qemu_img
def test_export_serves_the_disk_as_stream_optimized_vmdk(w, vms, tmp_path):
    vm = w.create_vm(size=2 * MiB)
    vms.append(vm)
    data = payload(2 * MiB)
    w.write_disk(vm, data)
    lease = vm.ExportVm()
    info = wait_lease(lease)
    assert info.entity._GetMoId() == vm._GetMoId()
    disks = [d for d in info.deviceUrl if d.disk]
    assert len(disks) == 1 and disks[0].targetId == "disk-0.vmdk"
    assert disks[0].key == f"/{vm._GetMoId()}/VirtualLsiLogicController0:0"
    status, body = nfc_request(w, "GET", disks[0].url)
    assert status == 200 and body[:4] == b"KDMV"
    (tmp_path / "out.vmdk").write_bytes(body)
    qemu_img("convert", "-f", "vmdk", "-O", "raw", str(tmp_path / "out.vmdk"), str(tmp_path / "out.raw"))
    assert (tmp_path / "out.raw").read_bytes() == data
    lease.HttpNfcLeaseComplete()
    assert lease.state == "done"
    assert nfc_request(w, "GET", disks[0].url)[0] == 404  # the lease is over


# --------------------------------------------------------------------------- disk manager

@needs_qemu_img
def test_copy_virtual_disk_converts_a_hosted_sparse_upload(w, tmp_path):
    data = payload(MiB)
    (tmp_path / "img.raw").write_bytes(data)
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse",
             str(tmp_path / "img.raw"), str(tmp_path / "img.vmdk"))
    d = f"[ds-c0] upload-{uuid.uuid4().hex[:8]}"
    w.put(f"{d}/image.vmdk", (tmp_path / "img.vmdk").read_bytes())
    vdm, fm = w.content.virtualDiskManager, w.content.fileManager
    try:
        w.wait(vdm.CopyVirtualDisk_Task(sourceName=f"{d}/image.vmdk", sourceDatacenter=w.dc,
                                        destName=f"{d}/disk.vmdk", destDatacenter=w.dc))
        status, desc = w.get(f"{d}/disk.vmdk")
        assert status == 200 and f'RW {MiB // 512} VMFS "disk-flat.vmdk"' in desc.decode()
        assert w.get(f"{d}/disk-flat.vmdk") == (200, data)
        assert w.get(f"{d}/image.vmdk")[0] == 200  # a copy leaves its source
    finally:
        w.wait(fm.DeleteDatastoreFile_Task(name=d, datacenter=w.dc))


def test_disk_manager_create_extend_move_delete(w):
    vdm, fm = w.content.virtualDiskManager, w.content.fileManager
    d = f"[ds-c0] vdm-{uuid.uuid4().hex[:8]}"
    fm.MakeDirectory(name=d, datacenter=w.dc, createParentDirectories=True)
    try:
        spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(diskType="thin", adapterType="lsiLogic",
                                                               capacityKb=1024)
        w.wait(vdm.CreateVirtualDisk_Task(name=f"{d}/a.vmdk", datacenter=w.dc, spec=spec))
        assert w.get(f"{d}/a-flat.vmdk") == (200, bytes(MiB))
        w.wait(vdm.ExtendVirtualDisk_Task(name=f"{d}/a.vmdk", datacenter=w.dc, newCapacityKb=2048, eagerZero=False))
        assert len(w.get(f"{d}/a-flat.vmdk")[1]) == 2 * MiB
        with pytest.raises(vmodl.fault.InvalidArgument):
            w.wait(vdm.ExtendVirtualDisk_Task(name=f"{d}/a.vmdk", datacenter=w.dc, newCapacityKb=1024, eagerZero=False))
        uuid_before = vdm.QueryVirtualDiskUuid(name=f"{d}/a.vmdk", datacenter=w.dc)
        w.wait(vdm.MoveVirtualDisk_Task(sourceName=f"{d}/a.vmdk", sourceDatacenter=w.dc,
                                        destName=f"{d}/b.vmdk", destDatacenter=w.dc))
        assert w.get(f"{d}/a.vmdk")[0] == 404 and w.get(f"{d}/a-flat.vmdk")[0] == 404
        assert 'RW 4096 VMFS "b-flat.vmdk"' in w.get(f"{d}/b.vmdk")[1].decode()
        assert vdm.QueryVirtualDiskUuid(name=f"{d}/b.vmdk", datacenter=w.dc) == uuid_before
        new_uuid = "60 00 C2 90 00 00 00 00-00 00 00 00 00 00 00 01"
        vdm.SetVirtualDiskUuid(name=f"{d}/b.vmdk", datacenter=w.dc, uuid=new_uuid)
        assert vdm.QueryVirtualDiskUuid(name=f"{d}/b.vmdk", datacenter=w.dc) == new_uuid
        w.wait(vdm.DeleteVirtualDisk_Task(name=f"{d}/b.vmdk", datacenter=w.dc))
        assert w.get(f"{d}/b.vmdk")[0] == 404 and w.get(f"{d}/b-flat.vmdk")[0] == 404
        with pytest.raises(vim.fault.FileNotFound):
            w.wait(vdm.DeleteVirtualDisk_Task(name=f"{d}/b.vmdk", datacenter=w.dc))
    finally:
        w.wait(fm.DeleteDatastoreFile_Task(name=d, datacenter=w.dc))


# ------------------------------------------------------------------------------------- PBM

def _profile_id(content, name):
    pm = content.profileManager
    ids = pm.PbmQueryProfile(resourceType=pbm.profile.ResourceType(resourceType="STORAGE"),
                             profileCategory="REQUIREMENT")
    return next(p.profileId for p in pm.PbmRetrieveContent(ids) if p.name == name)


def test_pbm_check_requirements_answers_the_tagged_datastores(w):
    content = w.pbm()
    gold = _profile_id(content, "vmdk-gold")
    hubs = [pbm.placement.PlacementHub(hubType="Datastore", hubId=d._GetMoId()) for d in w.ds.values()]
    req = [pbm.placement.CapabilityProfileRequirement(profileId=gold)]
    results = content.placementSolver.PbmCheckRequirements(hubsToSearch=hubs, placementSubjectRequirement=req)
    by_name = {d._GetMoId(): n for n, d in w.ds.items()}
    assert sorted(by_name[r.hub.hubId] for r in results) == sorted(w.ds)  # one answer per hub asked
    ok = sorted(by_name[r.hub.hubId] for r in results if not r.error)
    assert ok == ["ds-big", "ds-c1"]
    bad = next(r for r in results if by_name[r.hub.hubId] == "ds-c0")
    assert isinstance(bad.error[0], pbm.fault.PropertyMismatchFault)
    # only the hubs asked about
    one = content.placementSolver.PbmCheckRequirements(hubsToSearch=hubs[:1], placementSubjectRequirement=req)
    assert [r.hub.hubId for r in one] == [hubs[0].hubId]


def test_pbm_matching_hub_and_compatibility(w):
    content = w.pbm()
    gold = _profile_id(content, "vmdk-gold")
    by_name = {d._GetMoId(): n for n, d in w.ds.items()}
    hubs = [pbm.placement.PlacementHub(hubType="Datastore", hubId=d._GetMoId()) for d in w.ds.values()]
    matching = content.placementSolver.PbmQueryMatchingHub(hubsToSearch=hubs, profile=gold)
    assert sorted(by_name[h.hubId] for h in matching) == ["ds-big", "ds-c1"]
    compat = content.placementSolver.PbmCheckCompatibility(hubsToSearch=hubs, profile=gold)
    assert sorted(by_name[r.hub.hubId] for r in compat if not r.error) == ["ds-big", "ds-c1"]
    vsan = _profile_id(content, "vSAN Default Storage Policy")
    assert not content.placementSolver.PbmQueryMatchingHub(hubsToSearch=hubs, profile=vsan)  # no vSAN datastore


def test_pbm_tag_endpoint_changes_compliance(w):
    content = w.pbm()
    gold = _profile_id(content, "vmdk-gold")
    hub = [pbm.placement.PlacementHub(hubType="Datastore", hubId=w.ds["ds-small"]._GetMoId())]
    assert not content.placementSolver.PbmQueryMatchingHub(hubsToSearch=hub, profile=gold)
    w.sim.set_datastore_tag("ds-small", "tier", "gold")
    try:
        assert len(content.placementSolver.PbmQueryMatchingHub(hubsToSearch=hub, profile=gold)) == 1
    finally:
        w.sim.set_datastore_tag("ds-small", "tier", None)


# ---------------------------------------------------------------------------- slow tasks

def state_of(task):
    return task.info.state


def test_delayed_create_vm_runs_in_the_background(w, vms):
    w.sim.set_delay("CreateVM_Task", 1.5)
    try:
        started = time.monotonic()
        name = f"slow-{uuid.uuid4().hex[:8]}"
        disk_spec = vim.vm.ConfigSpec(name=name, guestId="otherGuest", files=vim.vm.FileInfo(vmPathName="[ds-c0]"))
        task = w.folder.CreateVM_Task(disk_spec, w.pool("DC0_C0_H0"), w.hosts["DC0_C0_H0"])
        assert time.monotonic() - started < 1.0
        info = task.info
        assert info.state == "running" and info.cancelable and info.name.info.wsdlName == "CreateVM_Task"
        assert w.content.searchIndex.FindChild(w.folder, name) is None  # not yet
        vm = w.wait(task)
        vms.append(vm)
        assert time.monotonic() - started >= 1.4
        assert vm.name == name
    finally:
        w.sim.set_delay("CreateVM_Task", 0)


def test_cancelled_clone_ends_in_request_canceled_and_makes_no_vm(w, vms):
    src = w.create_vm()
    vms.append(src)
    w.sim.set_delay("CloneVM_Task", 5, count=1)
    name = f"cancel-{uuid.uuid4().hex[:8]}"
    task = src.CloneVM_Task(folder=w.folder, name=name, spec=vim.vm.CloneSpec(
        location=vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0")), powerOn=False, template=False))
    assert state_of(task) == "running"
    task.CancelTask()
    with pytest.raises(vmodl.fault.RequestCanceled):
        w.wait(task, timeout=3)
    assert task.info.cancelled
    time.sleep(0.2)
    assert w.content.searchIndex.FindChild(w.folder, name) is None
    # count=1: the next clone is not delayed
    clone = w.wait(src.CloneVM_Task(folder=w.folder, name=name, spec=vim.vm.CloneSpec(
        location=vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0")), powerOn=False, template=False)))
    vms.append(clone)


@pytest.mark.parametrize("method", ["ReconfigVM_Task", "RelocateVM_Task", "CreateSnapshot_Task", "Destroy_Task"])
def test_delayed_vm_tasks(w, vms, method):
    vm = w.create_vm()
    vms.append(vm)
    calls = {
        "ReconfigVM_Task": lambda: vm.ReconfigVM_Task(vim.vm.ConfigSpec(annotation="later")),
        "RelocateVM_Task": lambda: vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=w.ds["ds-big"])),
        "CreateSnapshot_Task": lambda: vm.CreateSnapshot_Task(name="s", description="", memory=False, quiesce=False),
        "Destroy_Task": lambda: vm.Destroy_Task(),
    }
    w.sim.set_delay(method, 0.6, count=1)
    task = calls[method]()
    assert state_of(task) == "running"
    w.wait(task)
    if method == "ReconfigVM_Task":
        assert vm.config.annotation == "later"
    elif method == "RelocateVM_Task":
        assert w.disk(vm).backing.fileName.startswith("[ds-big] ")
    elif method == "CreateSnapshot_Task":
        assert vm.snapshot.rootSnapshotList[0].name == "s"
    else:
        with pytest.raises(vmodl.fault.ManagedObjectNotFound):
            vm.name  # noqa: B018


def test_cancel_task_on_a_finished_task_is_invalid_state(w, vms):
    vm = w.create_vm()
    vms.append(vm)
    task = vm.ReconfigVM_Task(vim.vm.ConfigSpec(annotation="x"))
    w.wait(task)
    with pytest.raises(vim.fault.InvalidState):
        task.CancelTask()


def test_delay_endpoint_rejects_non_task_methods(w):
    import urllib.error

    with pytest.raises(urllib.error.HTTPError):
        w.sim.set_delay("RetrieveProperties", 1)


def test_slow_test_task_can_be_cancelled(w):
    task = vim.Task(w.sim.start_task(5), w.si._stub)
    task.CancelTask()
    with pytest.raises(vmodl.fault.RequestCanceled):
        w.wait(task, timeout=2)
