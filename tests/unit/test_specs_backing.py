"""Unit tests for backing records (parsing one retrieve's properties) and the pure retype planner."""

from __future__ import annotations

import datetime as dt

import pytest
from pyVmomi import vim

from terraform_provider_vmdk.vsphere.volumes import backing as bk
from terraform_provider_vmdk.vsphere.volumes import specs

GiB = specs.GiB
VOL = "0f3e9a1c-1111-4222-8333-944455556666"


def _props(*, disk_type="thin", controller=None, snapshots=None, parent=None, extra=None, template=False, size=GiB):
    controller = controller or vim.vm.device.ParaVirtualSCSIController(key=1000, busNumber=0)
    backing = specs.disk_backing_info(disk_type, f"[ds1] volume-{VOL}/volume-{VOL}.vmdk")
    backing.datastore = vim.Datastore("datastore-11")
    backing.uuid = VOL
    if parent:
        backing.parent = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=parent)
    disk = vim.vm.device.VirtualDisk(key=2000, controllerKey=controller.key, unitNumber=0,
                                     capacityInKB=size // 1024, capacityInBytes=size, backing=backing)
    ide = vim.vm.device.VirtualIDEController(key=200, busNumber=0)
    marks = specs.volume_marks(VOL, "prof-1")
    marks.update(extra or {})
    return {
        "name": f"volume-{VOL}",
        "config.instanceUuid": VOL,
        "config.extraConfig": [vim.option.OptionValue(key="govcsim", value="TRUE")] + specs.option_values(marks),
        "config.annotation": specs.encode_annotation("data", "for tests"),
        "config.hardware.device": [ide, controller, disk],
        "config.template": template,
        "datastore": [vim.Datastore("datastore-11")],
        "snapshot": snapshots,
        "resourcePool": vim.ResourcePool("rp-1"),
        "parent": vim.Folder("group-v9"),
    }


def _tree(name, desc, children=()):
    return vim.vm.SnapshotTree(name=name, description=desc, snapshot=vim.vm.Snapshot(f"snap-{name}"),
                               createTime=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                               childSnapshotList=list(children), id=1, state="poweredOff", quiesced=False,
                               vm=vim.VirtualMachine("vm-1"))


def test_backing_from_props_volume():
    b = bk.backing_from_props(vim.VirtualMachine("vm-1"), _props())
    assert b.volume_id == VOL and b.name == f"volume-{VOL}" and b.moref_value == "vm-1"
    assert (b.display_name, b.description) == ("data", "for tests")
    assert b.size_bytes == GiB and b.disk_type == "thin" and b.adapter_type == "paraVirtual"
    assert b.datastore_name == "ds1" and b.datastore._moId == "datastore-11"
    assert b.vmdk_path == f"[ds1] volume-{VOL}/volume-{VOL}.vmdk"
    assert b.disk_uuid == VOL and b.instance_uuid == VOL and b.profile_id == "prof-1"
    assert not b.has_snapshots and not b.is_template and not b.is_linked_clone
    assert b.kind == specs.KIND_VOLUME and b.disk_key == 2000
    assert bk.is_ours(b.extra_config)


@pytest.mark.parametrize("disk_type", specs.DISK_TYPES)
def test_disk_type_derived(disk_type):
    assert bk.backing_from_props(vim.VirtualMachine("vm-1"), _props(disk_type=disk_type)).disk_type == disk_type


def test_adapter_from_disk_controller_not_first_controller():
    props = _props(controller=vim.vm.device.VirtualBusLogicController(key=1001, busNumber=1))
    props["config.hardware.device"].insert(0, vim.vm.device.VirtualLsiLogicController(key=1000, busNumber=0))
    assert bk.backing_from_props(vim.VirtualMachine("vm-1"), props).adapter_type == "busLogic"


def test_ide_adapter():
    props = _props()
    props["config.hardware.device"][2].controllerKey = 200
    assert bk.backing_from_props(vim.VirtualMachine("vm-1"), props).adapter_type == "ide"


def test_snapshot_tree_flattened_with_ids():
    tree = vim.vm.SnapshotInfo(rootSnapshotList=[
        _tree("a", specs.encode_snapshot_description("id-a", "first"), [_tree("b", "foreign text")])])
    b = bk.backing_from_props(vim.VirtualMachine("vm-1"), _props(snapshots=tree))
    assert [s.name for s in b.snapshots] == ["a", "b"]
    assert (b.snapshots[0].snapshot_id, b.snapshots[0].description) == ("id-a", "first")
    assert (b.snapshots[1].snapshot_id, b.snapshots[1].description) == (None, "foreign text")
    assert b.snapshots[0].format == "COW" and b.snapshots[0].moref._moId == "snap-a"
    assert b.has_snapshots


def test_linked_clone_parent_and_template_kind():
    b = bk.backing_from_props(vim.VirtualMachine("vm-2"), _props(parent="[ds1] src/src.vmdk"))
    assert b.is_linked_clone and b.parent_vmdk_path == "[ds1] src/src.vmdk"
    t = bk.backing_from_props(vim.VirtualMachine("vm-3"), _props(
        template=True, extra={specs.KEY_KIND: specs.KIND_SNAPSHOT, specs.KEY_SNAPSHOT_ID: "s-1"}))
    assert t.is_template and t.kind == specs.KIND_SNAPSHOT and t.snapshot_id == "s-1"
    info = bk.template_snapshot(t)
    assert info.format == "template" and info.snapshot_id == "s-1" and info.volume_id == VOL and info.name == "data"


def test_cleared_marks_are_not_ours_even_when_appended():
    # vcsim appends a second OptionValue instead of deleting the key: the last value wins.
    props = _props()
    props["config.extraConfig"] += specs.option_values(specs.cleared_marks())
    b = bk.backing_from_props(vim.VirtualMachine("vm-1"), props)
    assert not bk.is_ours(b.extra_config) and b.volume_id is None


def test_foreign_vm_not_ours():
    props = _props()
    props["config.extraConfig"] = []
    props["config.annotation"] = "hand made"
    b = bk.backing_from_props(vim.VirtualMachine("vm-9"), props)
    assert not bk.is_ours(b.extra_config) and b.description == "hand made"


def test_vm_without_disk():
    props = _props()
    props["config.hardware.device"] = props["config.hardware.device"][:2]
    b = bk.backing_from_props(vim.VirtualMachine("vm-1"), props)
    assert b.disk is None and b.size_bytes == 0 and b.disk_type is None and b.vmdk_path is None


@pytest.mark.parametrize("path,expected", [
    ("[ds 1] a/b.vmdk", ("ds 1", "a/b.vmdk")), ("[ds]", ("ds", "")), ("plain", (None, "plain")), (None, (None, None)),
])
def test_split_datastore_path(path, expected):
    assert bk.split_datastore_path(path) == expected
