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
        assert [d.name for d in vm.datastore] == ["ds-big"]
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
