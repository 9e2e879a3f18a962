"""The vcsim harness: build, start, model shape, stop and clean-up."""

from __future__ import annotations

import os
import signal

import pytest
from pyVmomi import pbm, vim

from terraform_provider_vmdk.vsphere.connection.session import Session
from terraform_provider_vmdk.vsphere.placement.inventory import Inventory

GiB = 1 << 30


@pytest.fixture
def only_vcsim(is_vcsim):
    if not is_vcsim:
        pytest.skip("needs our vcsim (VMDK_TEST_VSPHERE_URL is set)")


def test_start_and_stop_remove_every_temp_folder(tmp_path, only_vcsim):
    from tests.vcsim.harness import start_vcsim

    sim = start_vcsim(tmp_path)
    workdir = sim.workdir
    try:
        assert sim.running()
        assert sim.server == f"{sim.host}:{sim.port}" and sim.url == f"https://{sim.server}/sdk"
        assert sim.datacenter == "DC0"
        datastore_dirs = sorted(p.name for p in sim.tmpdir.iterdir())
        assert any(d.startswith("vmdk-vcsim-ds-big-") for d in datastore_dirs)
        assert any(d.startswith("govcsim-DC0-LocalDS_0-") for d in datastore_dirs)
        with Session(sim.connection_config()) as session:
            assert Inventory(session).datacenter_name == "DC0"
        proc = sim.process
    finally:
        sim.stop()
    assert proc.returncode == 0  # exited on SIGTERM through its own clean-up, not killed
    assert not workdir.exists()
    assert list(tmp_path.iterdir()) == []
    sim.stop()  # idempotent


def test_sigint_also_cleans_up(tmp_path, only_vcsim):
    from tests.vcsim.harness import start_vcsim

    sim = start_vcsim(tmp_path)
    tmpdir = sim.tmpdir
    sim.process.send_signal(signal.SIGINT)
    assert sim.process.wait(timeout=15) == 0
    assert list(tmpdir.iterdir()) == []  # vcsim removed its datastore folders itself
    sim.stop()
    assert not tmp_path.joinpath(tmpdir.parent.name).exists()


def test_binary_is_up_to_date(only_vcsim):
    from tests.vcsim.harness import BINARY, MAIN_GO, ensure_built, go_sources

    assert ensure_built() == BINARY
    assert os.access(BINARY, os.X_OK)
    sources = go_sources()
    assert MAIN_GO in sources and len(sources) > 1  # main.go is split by concern; every file counts
    assert BINARY.stat().st_mtime >= max(p.stat().st_mtime for p in sources)


def test_model_has_the_promised_shape(vsphere_session, only_vcsim):
    inv = Inventory(vsphere_session)
    assert inv.datacenter_name == "DC0"

    clusters = inv.clusters()
    assert [c.name for c in clusters] == ["DC0_C0", "DC0_C1"]
    hosts = inv.hosts()
    assert len(hosts) == 7
    assert [h.name for h in hosts if h.cluster is None] == ["DC0_H0"]  # standalone host
    assert all(h.resource_pool is not None for h in hosts)

    ds = {d.name: d for d in inv.datastores()}
    usable = [d for d in ds.values() if d.accessible and d.maintenance_mode == "normal"]
    assert len(usable) >= 3
    assert len({d.free_space for d in usable}) == len(usable)  # distinct free space
    assert len({d.capacity for d in usable}) == len(usable)
    assert len({len(d.host_mounts) for d in usable}) >= 3  # mounted on host sets of different sizes
    # free space only shrinks as tests write (vcsim never gives it back), so: at most what we set
    assert ds["ds-big"].capacity == 4096 * GiB and 0 < ds["ds-big"].free_space <= 3072 * GiB
    assert 0 < ds["ds-small"].free_space <= 20 * GiB and len(ds["ds-small"].host_mounts) == 1
    assert ds["ds-maint"].maintenance_mode == "inMaintenance" and ds["ds-maint"].accessible
    assert not ds["ds-gone"].accessible
    assert all(not m.accessible for m in ds["ds-gone"].host_mounts)
    assert ds["ds-big"].type == "VMFS" and ds["LocalDS_0"].type == "OTHER"
    names_by_ref = {h.moref._GetMoId(): h.name for h in hosts}
    c1 = {names_by_ref[m.host._GetMoId()] for m in ds["ds-c1"].host_mounts}
    assert c1 == {"DC0_C1_H0", "DC0_C1_H1", "DC0_C1_H2"}
    assert len(ds["LocalDS_0"].host_mounts) == 7


def test_storage_policies(vsphere_session, only_vcsim):
    pm = vsphere_session.pbm_content().profileManager
    ids = vsphere_session.call(pm.PbmQueryProfile, resourceType=pbm.profile.ResourceType(resourceType="STORAGE"),
                               profileCategory="REQUIREMENT")
    names = {p.name for p in vsphere_session.call(pm.PbmRetrieveContent, ids)}
    assert {"vmdk-gold", "vSAN Default Storage Policy"} <= names


def test_datastore_control_endpoint(vcsim, vsphere_session, only_vcsim):
    inv = Inventory(vsphere_session)
    try:
        vcsim.set_datastore("ds-c0", accessible=False, maintenance="enteringMaintenance", free=5 * GiB)
        d = {d.name: d for d in inv.datastores()}["ds-c0"]
        assert (d.accessible, d.maintenance_mode, d.free_space) == (False, "enteringMaintenance", 5 * GiB)
    finally:
        vcsim.set_datastore("ds-c0", accessible=True, maintenance="normal", free=300 * GiB)
    d = {d.name: d for d in inv.datastores()}["ds-c0"]
    assert (d.accessible, d.maintenance_mode, d.free_space) == (True, "normal", 300 * GiB)


def test_vcsim_tasks_finish_before_the_call_returns(vsphere_session, only_vcsim):
    """Why the slow-task endpoint exists: real vcsim tasks are already done when we first look."""
    inv = Inventory(vsphere_session)
    folder = inv.get_or_create_folder("harness-probe")
    task = vsphere_session.call(folder.Destroy_Task)
    assert vsphere_session.get_properties(task, ["info.state"])["info.state"] == vim.TaskInfo.State.success
