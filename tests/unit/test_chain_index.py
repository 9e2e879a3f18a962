"""The index of who holds which disk file: whole chains (snapshot deltas, linked clones), proven identity."""

from __future__ import annotations

from pyVmomi import vim

from terraform_provider_vmdk.vsphere.volumes import backing as bk
from terraform_provider_vmdk.vsphere.volumes import specs
from terraform_provider_vmdk.vsphere.volumes.lookup import build_index, choose

VOL = "0f3e9a1c-1111-4222-8333-944455556666"
CLONE = "7a6b5c4d-2222-4333-8444-955566667777"
BASE = f"[ds1] volume-{VOL}/volume-{VOL}.vmdk"


def _flat(path: str, parent: vim.vm.device.VirtualDisk.FlatVer2BackingInfo | None = None,
          thin: bool = True) -> vim.vm.device.VirtualDisk.FlatVer2BackingInfo:
    return vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=path, parent=parent, thinProvisioned=thin,
                                                         diskMode="persistent")


def _chain(*paths: str) -> vim.vm.device.VirtualDisk.FlatVer2BackingInfo:
    """Backings from the top file down to the base (the last path)."""
    node = None
    for path in reversed(paths):
        node = _flat(path, node)
    assert node is not None
    return node


def _vm(moref: str, name: str, backing: vim.vm.device.VirtualDisk.FlatVer2BackingInfo | None, *,
        marks: dict[str, str] | None = None, instance_uuid: str | None = None) -> tuple[object, dict]:
    controller = vim.vm.device.VirtualLsiLogicController(key=1000, busNumber=0)
    devices: list[object] = [controller]
    if backing is not None:
        devices.append(vim.vm.device.VirtualDisk(key=2000, controllerKey=1000, unitNumber=0, capacityInKB=1 << 20,
                                                 capacityInBytes=1 << 30, backing=backing))
    return vim.VirtualMachine(moref), {
        "name": name, "config.instanceUuid": instance_uuid or f"uuid-of-{moref}",
        "config.extraConfig": specs.option_values(marks or {}), "config.hardware.device": devices,
    }


def _volume(moref: str, volume_id: str, backing: object, instance_uuid: str | None = None) -> tuple[object, dict]:
    return _vm(moref, f"volume-{volume_id}", backing, marks=specs.volume_marks(volume_id),
               instance_uuid=instance_uuid or volume_id)


def test_an_instance_on_a_snapshot_delta_of_the_volume_holds_it():
    """A VM snapshotted after the volume was attached runs on a delta whose parent is the volume's VMDK."""
    index = build_index([
        _volume("vm-1", VOL, _flat(BASE)),
        _vm("vm-9", "app-1", _chain(f"[ds1] volume-{VOL}/volume-{VOL}-000001.vmdk", BASE)),
    ])
    volume = index.primary(VOL)
    assert volume is not None
    assert index.users_of(volume) == ["app-1"] and index.children_of(volume) == []


def test_a_plain_attach_holds_it_and_an_unrelated_vm_does_not():
    index = build_index([
        _volume("vm-1", VOL, _flat(BASE)),
        _vm("vm-9", "app-1", _flat(BASE)),
        _vm("vm-8", "other", _chain("[ds1] other/other-000001.vmdk", "[ds1] other/other.vmdk")),
    ])
    volume = index.primary(VOL)
    assert volume is not None and index.users_of(volume) == ["app-1"]


def test_a_volume_with_a_cow_snapshot_runs_on_its_own_delta():
    delta = f"[ds1] volume-{VOL}/volume-{VOL}-000001.vmdk"
    index = build_index([_volume("vm-1", VOL, _chain(delta, BASE))])
    volume = index.primary(VOL)
    assert volume is not None
    assert volume.own_files == (delta, BASE) and volume.base_vmdk_path == BASE
    assert not volume.is_linked_clone and volume.parent_vmdk_path is None


def test_a_linked_clone_of_a_snapshotted_volume_is_its_child():
    """The clone's parent is the volume's base disk, while the volume itself runs on a delta."""
    delta = f"[ds1] volume-{VOL}/volume-{VOL}-000001.vmdk"
    child = f"[ds1] volume-{CLONE}/volume-{CLONE}.vmdk"
    index = build_index([_volume("vm-1", VOL, _chain(delta, BASE)), _volume("vm-2", CLONE, _chain(child, BASE))])
    volume, clone = index.primary(VOL), index.primary(CLONE)
    assert volume is not None and clone is not None
    assert index.children_of(volume) == [f"volume-{CLONE}"] and index.users_of(volume) == []
    assert clone.is_linked_clone and clone.parent_vmdk_path == BASE and clone.own_files == (child,)
    assert index.children_of(clone) == [] and index.users_of(clone) == []


def test_two_linked_clones_of_one_source_do_not_hold_each_other():
    other = "9a8b7c6d-3333-4444-8555-a66677778888"
    index = build_index([
        _volume("vm-1", VOL, _flat(BASE)),
        _volume("vm-2", CLONE, _chain(f"[ds1] volume-{CLONE}/volume-{CLONE}.vmdk", BASE)),
        _volume("vm-3", other, _chain(f"[ds1] volume-{other}/volume-{other}.vmdk", BASE)),
    ])
    clone = index.primary(CLONE)
    assert clone is not None and index.children_of(clone) == [] and index.users_of(clone) == []
    source = index.primary(VOL)
    assert source is not None and index.children_of(source) == [f"volume-{CLONE}", f"volume-{other}"]


def test_disk_type_comes_from_the_volumes_own_base_disk():
    delta = _flat(f"[ds1] volume-{VOL}/volume-{VOL}-000001.vmdk", _flat(BASE, thin=False), thin=True)
    record = bk.backing_from_props(*_volume("vm-1", VOL, delta))
    assert record.disk_type == "thick"


def test_a_clone_made_outside_terraform_is_never_the_volume_nor_a_leftover():
    """vSphere's Clone copies extraConfig and annotation; only the instanceUuid tells the copy."""
    index = build_index([
        _volume("vm-1", VOL, _flat(BASE)),
        _volume("vm-5", VOL, _flat("[ds1] copy/copy.vmdk"), instance_uuid="11111111-2222-4333-8444-555566667777"),
    ])
    choice = index.choice(VOL)
    assert choice.primary is not None and choice.primary.moref_value == "vm-1"
    assert choice.leftovers == () and [c.moref_value for c in choice.copies] == ["vm-5"]
    assert not choice.needs_repair and choice.repairs() == []
    assert choice.outside() == [f"volume-{VOL} (vm-5)"]


def test_with_the_original_gone_a_copy_made_outside_is_not_adopted():
    index = build_index([_volume("vm-5", VOL, _flat("[ds1] copy/copy.vmdk"),
                                 instance_uuid="11111111-2222-4333-8444-555566667777")])
    choice = index.choice(VOL)
    assert choice.primary is None and len(choice.copies) == 1


def test_our_retype_copy_is_proven_by_its_derived_uuid():
    copy = _vm("vm-2", f"volume-{VOL}.retype", _flat("[ds1] volume-x.retype/volume-x.retype.vmdk"),
               marks=specs.volume_marks(VOL, kind=specs.KIND_RETYPE), instance_uuid=specs.retype_uuid(VOL))
    foreign_copy = _vm("vm-3", f"volume-{VOL}.retype", _flat("[ds1] c2/c2.vmdk"),
                       marks=specs.volume_marks(VOL, kind=specs.KIND_RETYPE))
    choice = choose([bk.backing_from_props(*copy), bk.backing_from_props(*foreign_copy)])
    assert choice.primary is not None and choice.primary.moref_value == "vm-2"
    assert [c.moref_value for c in choice.copies] == ["vm-3"]


def test_a_template_copy_made_outside_is_not_the_snapshot():
    sid = "5a5b5c5d-1111-4222-8333-944455556666"
    marks = specs.snapshot_marks(VOL, sid)
    index = build_index([
        _vm("vm-7", f"snapshot-{sid}", _flat("[ds1] s/s.vmdk"), marks=marks, instance_uuid=sid),
        _vm("vm-8", f"snapshot-{sid}-copy", _flat("[ds1] t/t.vmdk"), marks=marks),
    ])
    assert index.templates[sid].moref_value == "vm-7"
    assert [b.moref_value for b in index.outside] == ["vm-8"]


def test_a_vm_of_ours_writing_to_the_same_file_is_no_linked_clone():
    """govmomi's simulator (0.24.2) re-points a clone's source at the clone's file: two VMs of ours then write
    to one file, which vSphere never shows; that is not a linked clone building on the volume."""
    sid = "5a5b5c5d-1111-4222-8333-944455556666"
    index = build_index([
        _volume("vm-1", VOL, _flat(BASE)),
        _vm("vm-7", f"snapshot-{sid}", _flat(BASE), marks=specs.snapshot_marks(VOL, sid), instance_uuid=sid),
    ])
    volume = index.primary(VOL)
    assert volume is not None and index.children_of(volume) == [] and index.users_of(volume) == []
