"""Inventory against vcsim: datacenter choice, folders (race-safe), hosts, clusters, datastores."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from pyVmomi import vim

from terraform_provider_vmdk.vsphere import exceptions as exc
from terraform_provider_vmdk.vsphere.placement.inventory import Inventory


@pytest.fixture
def inv(vsphere_session):
    return Inventory(vsphere_session)


def test_single_datacenter_is_chosen(inv):
    assert isinstance(inv.datacenter, vim.Datacenter)
    assert inv.datacenter_name == "DC0"
    assert isinstance(inv.vm_folder, vim.Folder)


def test_named_datacenter(vsphere_session):
    assert Inventory(vsphere_session, "DC0").datacenter_name == "DC0"
    with pytest.raises(exc.DatacenterNotFound, match=r"'nope'.*DC0"):
        Inventory(vsphere_session, "nope").datacenter  # noqa: B018


def test_several_datacenters_need_a_name(vsphere_session):
    root = vsphere_session.content.rootFolder
    name = f"DC-{uuid.uuid4().hex[:6]}"
    extra = vsphere_session.call(root.CreateDatacenter, name)
    try:
        with pytest.raises(exc.DatacenterNotFound, match="set `datacenter`"):
            Inventory(vsphere_session).datacenter  # noqa: B018
        assert Inventory(vsphere_session, name).datacenter._GetMoId() == extra._GetMoId()
    finally:
        vsphere_session.run_task(extra.Destroy_Task)


def test_get_or_create_folder_nested_and_idempotent(inv, vsphere_session):
    base = f"OpenStack-{uuid.uuid4().hex[:6]}"
    f1 = inv.get_or_create_folder(f"{base}/Project (p1)/Volumes")
    f2 = inv.get_or_create_folder(f"/{base}/Project (p1)/Volumes/")
    assert f1._GetMoId() == f2._GetMoId()
    assert vsphere_session.get_properties(f1, ["name"])["name"] == "Volumes"
    snaps = inv.get_or_create_folder("Snapshots", parent=f1)
    assert vsphere_session.get_properties(snaps, ["parent"])["parent"]._GetMoId() == f1._GetMoId()
    top = inv.get_or_create_folder(base)
    vsphere_session.run_task(top.Destroy_Task)


def test_get_or_create_folder_race(inv, vsphere_session):
    base = f"race-{uuid.uuid4().hex[:6]}"
    path = f"{base}/OpenStack/Volumes"
    with ThreadPoolExecutor(10) as pool:
        folders = list(pool.map(lambda _: inv.get_or_create_folder(path), range(10)))
    assert len({f._GetMoId() for f in folders}) == 1
    top = inv.get_or_create_folder(base)
    children = vsphere_session.get_properties(top, ["childEntity"])["childEntity"]
    assert len(children) == 1
    assert len(vsphere_session.get_properties(children[0], ["childEntity"])["childEntity"]) == 1
    vsphere_session.run_task(top.Destroy_Task)


def test_folder_conflict_with_a_vm(inv, vsphere_session):
    base = inv.get_or_create_folder(f"conflict-{uuid.uuid4().hex[:6]}")
    host = inv.hosts(["DC0_C0"])[0]
    spec = vim.vm.ConfigSpec(name="Volumes", guestId="otherGuest", files=vim.vm.FileInfo(vmPathName="[ds-c0]"))
    vm = vsphere_session.run_task(base.CreateVM_Task, spec, host.resource_pool, host.moref)
    try:
        # vcsim allows a folder beside a VM of the same name (vCenter refuses with DuplicateName);
        # either way we must end with a folder, never the VM.
        try:
            f = inv.get_or_create_folder("Volumes", parent=base)
        except exc.FolderConflict:
            return
        assert isinstance(f, vim.Folder)
    finally:
        vsphere_session.run_task(vm.Destroy_Task)
        vsphere_session.run_task(base.Destroy_Task)


def test_hosts_and_clusters(inv, vsphere_session):
    before = vsphere_session.round_trips
    inv.hosts()  # warm the view
    before = vsphere_session.round_trips
    hosts = inv.hosts()
    assert vsphere_session.round_trips - before == 1
    assert {h.cluster for h in hosts} == {"DC0_C0", "DC0_C1", None}
    c0 = inv.hosts(["DC0_C0"])
    assert [h.name for h in c0] == ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]
    assert all(h.connected and not h.maintenance and h.usable for h in c0)
    assert len({h.resource_pool._GetMoId() for h in c0}) == 1
    assert inv.resource_pool_for_host(c0[0].moref)._GetMoId() == c0[0].resource_pool._GetMoId()
    with pytest.raises(exc.ClusterNotFound, match="'nope'"):
        inv.hosts(["DC0_C0", "nope"])
    with pytest.raises(exc.ClusterNotFound, match=r"'x'.*'y'"):
        inv.clusters(["x", "DC0_C1", "y"])
    assert [c.name for c in inv.clusters(["DC0_C1"])] == ["DC0_C1"]
    assert len(inv.clusters(["DC0_C1"])[0].hosts) == 3


def test_host_in_maintenance_is_reported(inv, vsphere_session):
    host = inv.hosts(["DC0_C1"])[-1]
    vsphere_session.run_task(host.moref.EnterMaintenanceMode_Task, 0)
    try:
        h = next(x for x in inv.hosts() if x.name == host.name)
        assert h.maintenance and not h.usable
    finally:
        vsphere_session.run_task(host.moref.ExitMaintenanceMode_Task, 0)


def test_datastores_one_round_trip(inv, vsphere_session):
    inv.datastores()
    before = vsphere_session.round_trips
    ds = inv.datastores()
    assert vsphere_session.round_trips - before == 1
    for d in ds:
        assert isinstance(d.moref, vim.Datastore)
        assert d.capacity > 0 and 0 <= d.free_space <= d.capacity
        for m in d.host_mounts:
            assert isinstance(m.host, vim.HostSystem) and m.access_mode == "readWrite" and m.mounted
