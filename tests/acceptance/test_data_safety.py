"""Never destroy data the provider did not make or was not told to destroy — through real Terraform.

The inventory is changed the way an admin or another tool changes vSphere: a clone of a shadow VM made in
vCenter, a VM that holds a volume and has a snapshot (it then runs on a delta of the volume's VMDK), an
adopted disk whose old VM is gone, an imported volume in a configuration that names a source.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from .conftest import run, write_config
from .test_data_io import _attach, _upload_flat_vmdk, _vm_disks, make_raw
from .test_volume import actions, volume

pytestmark = pytest.mark.acceptance

@pytest.fixture
def instance(vsphere_session):
    """A VM of someone else's (an "instance") with a SCSI controller, for this test alone; its disks are
    detached before it goes (destroying a VM destroys every disk attached to it)."""
    from pyVmomi import vim

    name = f"instance-{uuid.uuid4().hex[:8]}"
    content = vsphere_session.content
    dc = content.rootFolder.childEntity[0]
    pool = next(item.obj for item in vsphere_session.retrieve(vim.ClusterComputeResource, ["name"])
                if item.props["name"] == "DC0_C0").resourcePool
    controller = vim.vm.device.VirtualLsiLogicController(key=1000, busNumber=0, sharedBus="noSharing")
    spec = vim.vm.ConfigSpec(name=name, guestId="otherGuest", numCPUs=1, memoryMB=128,
                             files=vim.vm.FileInfo(vmPathName="[ds-big]"),
                             deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=controller)])
    vsphere_session.run_task(dc.vmFolder.CreateVM_Task, config=spec, pool=pool)
    yield name
    vm = _vm_named(vsphere_session, name)
    tree = vsphere_session.get_properties(vm, ["snapshot"]).get("snapshot")
    if tree is not None:
        vsphere_session.run_task(vm.RemoveAllSnapshots_Task)
    for path in _vm_disks(vsphere_session, name):
        _detach_path(vsphere_session, name, path)
    vsphere_session.run_task(vm.Destroy_Task)


def _vm_named(vsphere_session, name: str):
    from pyVmomi import vim

    return next((item.obj for item in vsphere_session.retrieve(vim.VirtualMachine, ["name"])
                 if item.props["name"] == name), None)


def _shadow(vsphere_session, volume_id: str):
    vm = vsphere_session.content.searchIndex.FindByUuid(None, volume_id, True, True)
    assert vm is not None
    return vm


def _destroy_if_there(vsphere_session, name: str) -> None:
    vm = _vm_named(vsphere_session, name)
    if vm is not None:
        vsphere_session.run_task(vm.Destroy_Task)


def test_a_clone_made_in_vcenter_survives_plan_apply_grow_and_destroy(make_tf, vsphere_provider_block,
                                                                     vsphere_session) -> None:
    """vSphere's Clone copies the marks; the copy is reported, never repaired away or destroyed."""
    from pyVmomi import vim

    copy_name = f"admin-copy-{uuid.uuid4().hex[:8]}"
    tf = make_tf(volume(vsphere_provider_block, '  name = "precious"\n  size_gb = 1'))
    tf.apply()
    vid = tf.output()["id"]
    shadow = _shadow(vsphere_session, vid)
    folder = vsphere_session.get_properties(shadow, ["parent"])["parent"]
    try:
        vsphere_session.run_task(shadow.CloneVM_Task, folder=folder, name=copy_name,
                                 spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec(), powerOn=False, template=False))
        copy = _vm_named(vsphere_session, copy_name)
        props = vsphere_session.get_properties(copy, ["config.instanceUuid", "config.extraConfig"])
        marks = {o.key: o.value for o in props["config.extraConfig"]}
        assert marks.get("vmdk.volume_id") == vid and props["config.instanceUuid"] != vid  # a faithful clone

        result = run(tf, "plan", "-detailed-exitcode")
        assert result.returncode == 0, result.stdout + result.stderr  # no changes: nothing to "repair"
        assert "Copies of this volume made outside Terraform" in result.stdout + result.stderr
        assert copy_name in result.stdout + result.stderr

        write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "precious"\n  size_gb = 2'))
        assert actions(tf.plan(output=True)) == ["update"]
        applied = run(tf, "apply", "-auto-approve")
        assert applied.returncode == 0, applied.stderr
        assert _vm_named(vsphere_session, copy_name) is not None

        destroyed = run(tf, "destroy", "-auto-approve")
        assert destroyed.returncode == 0, destroyed.stderr
        assert vsphere_session.content.searchIndex.FindByUuid(None, vid, True, True) is None
        assert _vm_named(vsphere_session, copy_name) is not None  # the admin's copy is still there
    finally:
        _destroy_if_there(vsphere_session, copy_name)


def test_a_volume_under_a_snapshotted_vm_is_in_use(make_tf, vsphere_provider_block, vsphere_session,
                                                   instance) -> None:
    """A VM with a snapshot runs on a delta whose parent is the volume's VMDK: destroy, grow and retype of
    the volume are refused, and the error names the VM."""
    tf = make_tf(volume(vsphere_provider_block, '  name = "held"\n  size_gb = 1'))
    tf.apply()
    out = tf.output()
    vm = _vm_named(vsphere_session, instance)
    _attach(vsphere_session, instance, out["vmdk_path"], 0)
    snapshot = None
    try:
        snapshot = vsphere_session.run_task(vm.CreateSnapshot_Task, name="nightly", description="backup",
                                            memory=False, quiesce=False)
        disks = _vm_disks(vsphere_session, instance)
        assert out["vmdk_path"] not in disks  # the instance now writes to a delta of the volume
        write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "held"\n  size_gb = 2'))
        grow = run(tf, "plan")
        assert grow.returncode == 1 and "Volume is in use" in grow.stderr and instance in grow.stderr
        write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "held"\n  size_gb = 1'))
        destroyed = run(tf, "destroy", "-auto-approve")
        assert destroyed.returncode == 1 and "Volume is in use" in destroyed.stderr
        assert instance in destroyed.stderr and "Traceback" not in destroyed.stderr
        assert _shadow(vsphere_session, out["id"]) is not None
    finally:
        if snapshot is not None:
            vsphere_session.run_task(snapshot.RemoveSnapshot_Task, removeChildren=False, consolidate=True)
        _detach_path(vsphere_session, instance, out["vmdk_path"])
    assert run(tf, "destroy", "-auto-approve").returncode == 0


def _state_id(tf) -> str | None:
    import json

    state = json.loads(run(tf, "state", "pull").stdout or "{}")
    ids = [inst["attributes"]["id"] for res in state.get("resources", []) if res["type"] == "vmdk_volume"
           for inst in res.get("instances", [])]
    return ids[0] if len(ids) == 1 else None


def _detach_path(vsphere_session, vm_name: str, path: str) -> None:
    from pyVmomi import vim

    vm = _vm_named(vsphere_session, vm_name)
    devices = vsphere_session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
    for disk in devices:
        if isinstance(disk, vim.vm.device.VirtualDisk) and disk.backing.fileName == path:
            spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="remove", device=disk)])
            vsphere_session.run_task(vm.ReconfigVM_Task, spec=spec)


def test_deletion_protection_and_keep_on_destroy(make_tf, vsphere_provider_block, vsphere_session) -> None:
    tf = make_tf(volume(vsphere_provider_block, '  name = "guarded"\n  size_gb = 1\n  deletion_protection = true'))
    tf.apply()
    vid = tf.output()["id"]
    destroyed = run(tf, "destroy", "-auto-approve")
    assert destroyed.returncode == 1 and "Volume is protected from deletion" in destroyed.stderr
    replaced = run(tf, "apply", "-auto-approve", "-replace=vmdk_volume.v")
    assert replaced.returncode == 1 and "Volume is protected from deletion" in replaced.stderr
    assert _state_id(tf) == vid and _shadow(vsphere_session, vid) is not None
    assert actions(tf.plan(output=True)) == ["no-op"]  # nothing blocks the next command

    # both flags change in place, touching nothing in vSphere
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "guarded"\n  size_gb = 1\n'
                                        '  keep_on_destroy = true'))
    assert actions(tf.plan(output=True)) == ["update"]
    tf.apply()
    path = tf.output()["vmdk_path"]
    destroyed = run(tf, "destroy", "-auto-approve")
    assert destroyed.returncode == 0, destroyed.stderr
    said = destroyed.stdout + destroyed.stderr
    assert "The volume's disk was kept" in said and path in said
    assert vsphere_session.content.searchIndex.FindByUuid(None, vid, True, True) is None
    dc = vsphere_session.content.rootFolder.childEntity[0]
    assert vsphere_session.content.virtualDiskManager.QueryVirtualDiskUuid(name=path, datacenter=dc)

    # the kept disk is the user's: it can be adopted again
    again = make_tf(vsphere_provider_block + f'resource "vmdk_volume" "back" {{\n  name = "back"\n  size_gb = 1\n'
                    f'  adopt {{\n    vmdk_path = "{path}"\n  }}\n}}\n', name="again")
    applied = run(again, "apply", "-auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert run(again, "destroy", "-auto-approve").returncode == 0


def test_adopt_edits_and_imports_keep_the_data(make_tf, vsphere_provider_block, vsphere_session, tmp_path,
                                               instance) -> None:
    tag = uuid.uuid4().hex[:8]
    attached = _upload_flat_vmdk(vsphere_session, make_raw(tmp_path / "a.raw", 4, 1), "ds-big", f"legacy-{tag}/a")
    other = _upload_flat_vmdk(vsphere_session, make_raw(tmp_path / "b.raw", 4, 2), "ds-big", f"legacy-{tag}/b")
    _attach(vsphere_session, instance, attached, 0)

    def adopted(adopt: str) -> str:
        return volume(vsphere_provider_block, f'  name = "legacy"\n  size_gb = 1\n  disk_type = "thick"\n'
                      f'  adopt {{\n{adopt}\n  }}')

    tf = make_tf(adopted(f'    vmdk_path = "{attached}"\n    vm = "DC0/vm/{instance}"'))
    tf.apply()
    out = tf.output()
    # the old VM is decommissioned: removing `vm` changes nothing in vSphere
    write_config(Path(tf.tfdir), adopted(f'    vmdk_path = "{attached}"'))
    plan = run(tf, "plan", "-no-color")
    assert "must be replaced" not in plan.stdout and "Source details do not change the volume" in plan.stdout
    tf.apply()
    # the path corrected to where the adopted disk lives now: nothing changes either
    write_config(Path(tf.tfdir), adopted(f'    vmdk_path = "{out["vmdk_path"]}"'))
    plan = run(tf, "plan", "-no-color")
    assert "must be replaced" not in plan.stdout and "The adopted disk stays" in plan.stdout
    tf.apply()
    assert tf.output()["id"] == out["id"]
    # another disk is another source: that is a replacement, and the plan says so
    write_config(Path(tf.tfdir), adopted(f'    vmdk_path = "{other}"'))
    assert actions(tf.plan(output=True)) == ["delete", "create"]

    # an imported volume in a configuration that names a source and a linked clone: no replacement
    importer = make_tf(volume(vsphere_provider_block, f'  name = "legacy"\n  size_gb = 1\n  disk_type = "thick"\n'
                              f'  source_volume_id = "{out["id"]}"\n  clone_type = "linked"'), name="importer")
    assert run(importer, "import", "vmdk_volume.v", out["id"]).returncode == 0
    plan = run(importer, "plan", "-no-color")
    assert "must be replaced" not in plan.stdout and "The source is not used" in plan.stdout, plan.stdout
    assert run(importer, "state", "rm", "vmdk_volume.v").returncode == 0

    write_config(Path(tf.tfdir), adopted(f'    vmdk_path = "{out["vmdk_path"]}"'))
    assert run(tf, "destroy", "-auto-approve").returncode == 0
