"""Session.wait_for_task / run_task on real vcsim tasks."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from pyVmomi import vim

from terraform_provider_vmdk.vsphere import exceptions as exc
from terraform_provider_vmdk.vsphere.connection.session import Session
from terraform_provider_vmdk.vsphere.placement.inventory import Inventory


@pytest.fixture
def inv(vsphere_session):
    return Inventory(vsphere_session)


@pytest.fixture
def only_vcsim(is_vcsim):
    if not is_vcsim:
        pytest.skip("needs our vcsim's slow-task endpoint")


def _task(session, moid):
    return vim.Task(moid, session.si._stub)


def _vm_spec(name, datastore_name):
    return vim.vm.ConfigSpec(name=name, guestId="otherGuest", numCPUs=1, memoryMB=128,
                             files=vim.vm.FileInfo(vmPathName=f"[{datastore_name}]"))


def test_run_task_success_returns_result(vsphere_session, inv, caplog):
    host = next(h for h in inv.hosts(["DC0_C0"]))
    folder = inv.get_or_create_folder("tasks-test")
    name = f"task-{uuid.uuid4()}"
    caplog.set_level(logging.DEBUG, logger="terraform_provider_vmdk.vsphere")
    vm = vsphere_session.run_task(folder.CreateVM_Task, _vm_spec(name, "ds-c0"), host.resource_pool, host.moref)
    try:
        assert isinstance(vm, vim.VirtualMachine)
        assert vsphere_session.get_properties(vm, ["name"])["name"] == name
        assert any(r.levelno == logging.DEBUG and "succeeded in" in r.getMessage() for r in caplog.records)
    finally:
        vsphere_session.run_task(vm.Destroy_Task)


def test_snapshot_and_disk_manager_tasks_are_polled_without_reading_task_info(vsphere_session, inv):
    """pyVim's WaitForTask crashes on these in vcsim (TaskInfo.entity); our poller does not."""
    host = next(h for h in inv.hosts(["DC0_C1"]))
    folder = inv.get_or_create_folder("tasks-test")
    vm = vsphere_session.run_task(folder.CreateVM_Task, _vm_spec(f"snap-{uuid.uuid4()}", "ds-c1"),
                                  host.resource_pool, host.moref)
    try:
        snap = vsphere_session.run_task(vm.CreateSnapshot_Task, "s1", "", False, False)
        assert isinstance(snap, vim.vm.Snapshot)
        vsphere_session.run_task(snap.RemoveSnapshot_Task, False)
    finally:
        vsphere_session.run_task(vm.Destroy_Task)


def test_task_error_maps_file_not_found(vsphere_session, inv):
    vdm = vsphere_session.content.virtualDiskManager
    with pytest.raises(exc.FileNotFound) as info:
        vsphere_session.run_task(vdm.DeleteVirtualDisk_Task, f"[ds-c0] nope-{uuid.uuid4()}/x.vmdk", inv.datacenter)
    err = info.value
    assert isinstance(err, exc.TaskFailed) and isinstance(err, exc.NotFound)
    assert err.fault_type == "vim.fault.FileNotFound"
    assert isinstance(err.fault, vim.fault.FileNotFound)


def test_task_error_file_already_exists(vsphere_session, inv):
    fm = vsphere_session.content.fileManager
    d = f"[ds-small] exists-{uuid.uuid4()}"
    vsphere_session.call(fm.MakeDirectory, d, inv.datacenter, True)
    try:
        vsphere_session.call(fm.MakeDirectory, d + "/b", inv.datacenter, True)
        with pytest.raises(exc.FileAlreadyExists) as info:
            vsphere_session.run_task(fm.CopyDatastoreFile_Task, d + "/b", inv.datacenter, d + "/b", inv.datacenter,
                                     False)
        assert info.value.fault_type == "vim.fault.FileAlreadyExists"
    finally:
        vsphere_session.run_task(fm.DeleteDatastoreFile_Task, d, inv.datacenter)


@pytest.mark.parametrize("fault,expected", [
    ("NoDiskSpace", exc.NoDiskSpace),
    ("FileAlreadyExists", exc.FileAlreadyExists),
])
def test_slow_task_error(vcsim, vsphere_session, only_vcsim, fault, expected):
    task = _task(vsphere_session, vcsim.start_task(0.3, fault))
    with pytest.raises(expected) as info:
        vsphere_session.wait_for_task(task)
    assert isinstance(info.value, exc.TaskFailed)
    assert info.value.fault_type == f"vim.fault.{fault}"
    assert "vmdkTestSleep" in str(info.value)


def test_a_task_end_wakes_its_waiter_without_polling(vcsim, vsphere_config, only_vcsim):
    """The session's TaskWatcher (one WaitForUpdatesEx for all tasks) wakes the waiter when the task ends:
    a 2 s task costs one first look, its ModifyListView and the watcher's answers, where polling would take
    ~7 reads."""
    with Session(vsphere_config) as session:
        session.wait_for_task(_task(session, vcsim.start_task(0.05)))  # the watcher's collector is set up
        task = _task(session, vcsim.start_task(2))
        before = session.round_trips
        result = session.wait_for_task(task)
        assert result._GetMoId() == session.content.rootFolder._GetMoId()
        assert not session.task_watcher._broken
        assert session.round_trips - before <= 4


def test_without_the_watcher_tasks_are_polled(vcsim, vsphere_config, only_vcsim):
    """Where the watcher cannot work (it broke, or the endpoint lacks WaitForUpdatesEx), waits poll: fast
    at first (0.05 s, doubling), then every task_poll_interval."""
    with Session(vsphere_config) as session:
        session.task_watcher._break("test")
        task = _task(session, vcsim.start_task(0.6))
        before = session.round_trips
        started = time.monotonic()
        result = session.wait_for_task(task)
        assert result._GetMoId() == session.content.rootFolder._GetMoId()
        assert time.monotonic() - started > 0.5
        assert 3 <= session.round_trips - before <= 10  # 0.05, 0.1, 0.2, 0.4 ... capped at 0.5 s


def test_timeout_raises_task_timeout(vcsim, vsphere_session, only_vcsim):
    task = _task(vsphere_session, vcsim.start_task(3))
    started = time.monotonic()
    with pytest.raises(exc.TaskTimeout) as info:
        vsphere_session.wait_for_task(task, timeout=0.4)
    assert time.monotonic() - started < 1.5
    assert "0.4" in str(info.value) and task._GetMoId() in str(info.value)


def test_default_timeout_from_config(vcsim, vsphere_config, only_vcsim):
    from dataclasses import replace

    with Session(replace(vsphere_config, task_timeout=0.3, task_poll_interval=0.1)) as session:
        task = _task(session, vcsim.start_task(2))
        with pytest.raises(exc.TaskTimeout):
            session.wait_for_task(task)
        task2 = _task(session, vcsim.start_task(0.2))
        assert session.wait_for_task(task2, timeout=5) is not None  # explicit timeout wins


def test_vanished_task(vsphere_session):
    with pytest.raises(exc.NotFound):
        vsphere_session.wait_for_task(_task(vsphere_session, "task-does-not-exist"))
