"""Unit tests for the pure request builders (vsphere/volumes/specs.py): the shapes real vSphere needs."""

from __future__ import annotations

import pytest
from pyVmomi import SoapAdapter, VmomiSupport, vim

from terraform_provider_vmdk.vsphere import exceptions as exc
from terraform_provider_vmdk.vsphere.volumes import specs

GiB = specs.GiB
VOL = "4c1a4ab0-9d7c-4b0e-9a53-6b0d3c1f2e11"


def xml(obj) -> str:
    """SOAP body as sent at the newest API version (older versions drop newer fields)."""
    return SoapAdapter.SerializeToStr(obj, version=VmomiSupport.newestVersions.GetName("vim"))


def _ds(name="datastore-1"):
    return vim.Datastore(name)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("bad", ["preallocated", "Thin", "", "sparse"])
def test_invalid_disk_type(bad):
    with pytest.raises(exc.InvalidDiskType):
        specs.validate_disk_type(bad)


@pytest.mark.parametrize("bad", ["lsilogic", "scsi", "nvme", ""])
def test_invalid_adapter_type(bad):
    with pytest.raises(exc.InvalidAdapterType):
        specs.validate_adapter_type(bad)


@pytest.mark.parametrize("size", [0, -GiB, GiB + 1, 512 * 1024 * 1024, 1.5])
def test_size_must_be_whole_gib(size):
    with pytest.raises(exc.InvalidVolume):
        specs.size_kb(size)


def test_size_kb():
    assert specs.size_kb(3 * GiB) == 3 * 1024 * 1024


# ------------------------------------------------------------------ disk backing
@pytest.mark.parametrize(
    "disk_type,thin,eager",
    [("thin", True, False), ("thick", False, False), ("eagerZeroedThick", False, True)],
)
def test_disk_backing_flags_round_trip(disk_type, thin, eager):
    b = specs.disk_backing_info(disk_type)
    assert (b.thinProvisioned, b.eagerlyScrub, b.diskMode) == (thin, eager, "persistent")
    assert specs.disk_type_of(b) == disk_type


# ------------------------------------------------------------------ create spec
@pytest.mark.parametrize("adapter,cls", [
    ("lsiLogic", vim.vm.device.VirtualLsiLogicController),
    ("busLogic", vim.vm.device.VirtualBusLogicController),
    ("lsiLogicsas", vim.vm.device.VirtualLsiLogicSASController),
    ("paraVirtual", vim.vm.device.ParaVirtualSCSIController),
])
def test_create_spec_scsi_controller_and_disk(adapter, cls):
    spec = specs.create_spec(
        name="volume-" + VOL, volume_id=VOL, size_in_kb=specs.size_kb(2 * GiB), disk_type="thick",
        adapter_type=adapter, datastore_name="ds1", annotation=specs.encode_annotation("data", "d"),
    )
    assert (spec.guestId, spec.numCPUs, spec.memoryMB) == ("otherGuest", 1, 128)
    assert spec.instanceUuid == VOL
    assert spec.files.vmPathName == "[ds1]"
    ec = {o.key: o.value for o in spec.extraConfig}
    assert ec[specs.KEY_VOLUME_ID] == VOL and ec[specs.KEY_MANAGED_BY] == specs.MANAGED_BY
    ctl, disk = spec.deviceChange
    assert ctl.operation == "add" and type(ctl.device) is cls
    assert ctl.device.key == -100 and ctl.device.busNumber == 0 and ctl.device.sharedBus == "noSharing"
    assert disk.operation == "add" and disk.fileOperation == "create"
    assert disk.device.controllerKey == -100 and disk.device.key == -101 and disk.device.unitNumber == 0
    assert disk.device.capacityInKB == 2 * 1024 * 1024
    assert disk.device.backing.thinProvisioned is False and disk.device.backing.eagerlyScrub is False
    assert spec.vmProfile is None or spec.vmProfile == []
    assert "<instanceUuid>" + VOL in xml(spec)


def test_create_spec_ide_uses_default_controller_200():
    spec = specs.create_spec(name="v", volume_id=VOL, size_in_kb=1024 * 1024, disk_type="thin",
                             adapter_type="ide", datastore_name="ds1")
    (disk,) = spec.deviceChange
    assert disk.device.controllerKey == 200 and disk.device.key == -101
    assert disk.device.backing.thinProvisioned is True


def test_create_spec_with_profile_sets_vm_and_disk_profile():
    spec = specs.create_spec(name="v", volume_id=VOL, size_in_kb=1024 * 1024, disk_type="eagerZeroedThick",
                             adapter_type="paraVirtual", datastore_name="ds1", profile_id="p-1")
    assert [p.profileId for p in spec.vmProfile] == ["p-1"]
    disk = spec.deviceChange[-1]
    assert [p.profileId for p in disk.profile] == ["p-1"]
    assert disk.device.backing.eagerlyScrub is True
    assert {o.key: o.value for o in spec.extraConfig}[specs.KEY_PROFILE_ID] == "p-1"


def test_create_spec_rejects_bad_types():
    with pytest.raises(exc.InvalidDiskType):
        specs.create_spec(name="v", volume_id=VOL, size_in_kb=1, disk_type="x", adapter_type="lsiLogic",
                          datastore_name="d")
    with pytest.raises(exc.InvalidAdapterType):
        specs.create_spec(name="v", volume_id=VOL, size_in_kb=1, disk_type="thin", adapter_type="x", datastore_name="d")


def test_min_disk_size_4mb():
    spec = specs.disk_add_spec(1, "thin", 0)
    assert spec.device.capacityInKB == specs.MIN_DISK_KB


def test_attach_existing_file_has_no_file_operation():
    spec = specs.disk_add_spec(1024, "thin", 1000, file_name="[ds] v/v.vmdk")
    assert spec.fileOperation is None and spec.device.backing.fileName == "[ds] v/v.vmdk"


# ------------------------------------------------------------------ annotations / marks
def test_annotation_round_trip_and_foreign_text():
    text = specs.encode_annotation("my disk", "line1\nline2 \"quoted\"")
    assert specs.decode_annotation(text) == ("my disk", "line1\nline2 \"quoted\"")
    assert specs.decode_annotation("made by hand") == (None, "made by hand")
    assert specs.decode_annotation(None) == (None, None)
    assert specs.decode_annotation("[1,2]") == (None, "[1,2]")


def test_snapshot_description_round_trip():
    assert specs.decode_snapshot_description(specs.encode_snapshot_description("s1", "d")) == ("s1", "d")
    assert specs.decode_snapshot_description("vendor text") == (None, "vendor text")


def test_cleared_marks_are_empty_strings():
    assert set(specs.cleared_marks().values()) == {""}


# ------------------------------------------------------------------ edits
def _disk(kb=GiB // 1024, disk_type="eagerZeroedThick"):
    return vim.vm.device.VirtualDisk(key=2000, controllerKey=1000, unitNumber=0, capacityInKB=kb,
                                     capacityInBytes=kb * 1024,
                                     backing=specs.disk_backing_info(disk_type, "[ds] v/v.vmdk"))


def test_grow_spec_edits_capacity_keeps_eager_zero_and_does_not_mutate_input():
    disk = _disk()
    spec = specs.disk_grow_spec(disk, 5 * GiB)
    (change,) = spec.deviceChange
    assert change.operation == "edit" and change.fileOperation is None
    assert change.device.capacityInKB == 5 * 1024 * 1024 and change.device.capacityInBytes == 5 * GiB
    assert change.device.backing.eagerlyScrub is True and change.device.backing.fileName == "[ds] v/v.vmdk"
    assert disk.capacityInKB == 1024 * 1024  # the record read from vSphere is untouched


def test_disk_uuid_spec():
    disk = _disk()
    (change,) = specs.disk_uuid_spec(disk, VOL).deviceChange
    assert change.operation == "edit" and change.device.backing.uuid == VOL
    assert disk.backing.uuid is None


def test_remove_spec_keeps_file_unless_destroy():
    assert specs.disk_remove_spec(_disk()).fileOperation is None
    assert specs.disk_remove_spec(_disk(), destroy_file=True).fileOperation == "destroy"


def test_profile_change_spec_set_and_clear():
    spec = specs.profile_change_spec(_disk(), "p-2")
    assert isinstance(spec.vmProfile[0], vim.vm.DefinedProfileSpec) and spec.vmProfile[0].profileId == "p-2"
    assert spec.deviceChange[0].profile[0].profileId == "p-2"
    cleared = specs.profile_change_spec(_disk(), None)
    assert isinstance(cleared.vmProfile[0], vim.vm.EmptyProfileSpec)
    assert isinstance(cleared.deviceChange[0].profile[0], vim.vm.EmptyProfileSpec)
    assert {o.key: o.value for o in cleared.extraConfig}[specs.KEY_PROFILE_ID] == ""


# ------------------------------------------------------------------ relocate / clone
def test_relocate_spec_with_type_locator():
    ds = _ds()
    spec = specs.relocate_spec(datastore=ds, disk_move_type=specs.DISK_MOVE_RELOCATE,
                               resource_pool=vim.ResourcePool("rp-1"), host=vim.HostSystem("host-1"),
                               disk_key=2000, disk_type="eagerZeroedThick")
    assert spec.diskMoveType == "moveAllDiskBackingsAndAllowSharing"
    (loc,) = spec.disk
    assert loc.diskId == 2000 and loc.datastore == ds
    assert loc.diskBackingInfo.thinProvisioned is False and loc.diskBackingInfo.eagerlyScrub is True
    body = xml(spec)
    assert "<eagerlyScrub>true</eagerlyScrub>" in body and "<thinProvisioned>false</thinProvisioned>" in body


def test_relocate_spec_without_type_has_no_locator():
    spec = specs.relocate_spec(datastore=_ds(), disk_move_type=specs.DISK_MOVE_RELOCATE, disk_key=2000)
    assert not spec.disk


def test_relocate_locator_profile():
    spec = specs.relocate_spec(datastore=_ds(), disk_move_type=specs.DISK_MOVE_RELOCATE, disk_key=2000, profile_id="p")
    assert spec.disk[0].profile[0].profileId == "p" and spec.disk[0].diskBackingInfo is None


def test_clone_spec_full_and_linked():
    loc = specs.relocate_spec(datastore=_ds(), disk_move_type=specs.DISK_MOVE_FULL, disk_key=2000, disk_type="thin")
    spec = specs.clone_spec(location=loc, extra_config=specs.volume_marks("new"), instance_uuid="new",
                            annotation=specs.encode_annotation("n", None))
    assert spec.powerOn is False and spec.template is False and spec.snapshot is None
    assert spec.location.diskMoveType == "moveAllDiskBackingsAndDisallowSharing"
    assert spec.config.instanceUuid == "new"
    assert {o.key: o.value for o in spec.config.extraConfig}[specs.KEY_VOLUME_ID] == "new"
    snap = vim.vm.Snapshot("snapshot-1")
    linked = specs.clone_spec(location=specs.relocate_spec(datastore=_ds(), disk_move_type=specs.DISK_MOVE_LINKED),
                              snapshot=snap)
    assert linked.snapshot == snap and linked.location.diskMoveType == "createNewChildDiskBacking"
    assert "<snapshot type=\"VirtualMachineSnapshot\">snapshot-1</snapshot>" in xml(linked)


def test_free_bus_and_unit():
    devices = [vim.vm.device.VirtualLsiLogicController(key=1000, busNumber=0),
               vim.vm.device.ParaVirtualSCSIController(key=1001, busNumber=1),
               _disk()]
    assert specs.free_scsi_bus(devices) == 2
    assert specs.free_unit_number(devices, 1000) == 1
    full = [vim.vm.device.VirtualLsiLogicController(key=1000 + i, busNumber=i) for i in range(4)]
    with pytest.raises(exc.InvalidAdapterType):
        specs.free_scsi_bus(full)


def test_adapter_type_of_exact_classes():
    for name, cls in specs.CONTROLLER_CLASSES.items():
        assert specs.adapter_type_of(cls()) == name
