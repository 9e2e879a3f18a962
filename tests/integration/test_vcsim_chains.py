"""Disk chains in the simulator (tests/vcsim/chains.go) against vSphere's documented behaviour.

A snapshot puts each (not independent) disk of the VM on a new delta file "<disk>-00000N.vmdk" next to
the disk it grows from, whose ``backing.parent`` chain names that disk; the snapshot keeps the old file.
Removing a snapshot merges a delta back into its parent, reverting starts a fresh delta, destroying a VM
deletes its chains but not a parent another VM (a linked clone) uses. Plain pyVmomi and datastore HTTP,
none of the provider's code; every test makes and removes its own VMs.
"""

from __future__ import annotations

import re
import uuid

import pytest
from pyVmomi import vim, vmodl
from test_vcsim_fidelity import MiB, World, needs_qemu_img, nfc_request, payload, qemu_img, wait_lease

# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def sim(vcsim, is_vcsim):
    if not is_vcsim:
        pytest.skip("tests the simulator of tests/vcsim")
    return vcsim


@pytest.fixture(scope="module")
def w(sim):
    import ssl

    from pyVim.connect import Disconnect, SmartConnect

    si = SmartConnect(host=sim.host, port=sim.port, user=sim.user, pwd=sim.password,
                      sslContext=ssl.create_default_context(cafile=sim.ca_file))
    try:
        yield World(sim, si)
    finally:
        Disconnect(si)


@pytest.fixture
def vms(w):
    made = []
    yield made
    for vm in reversed(made):
        w.destroy(vm)


# ------------------------------------------------------------------------------------- helpers

def extent(ds_path, backing=None):
    """The file holding a disk's bytes: a delta's "-delta.vmdk", a base disk's "-flat.vmdk"."""
    if backing is not None and backing.parent is None:
        return World.flat(ds_path)
    return ds_path[: -len(".vmdk")] + "-delta.vmdk"


def delta_name(base, n):
    return f"{base[: -len('.vmdk')]}-{n:06d}.vmdk"


def current_data(w, vm, disk=None):
    b = (disk or w.disk(vm)).backing
    return w.get(extent(b.fileName, b))


def write_current(w, vm, data, disk=None):
    b = (disk or w.disk(vm)).backing
    w.put(extent(b.fileName, b), data)


def snapshot(w, vm, name="s"):
    return w.wait(vm.CreateSnapshot_Task(name=name, description="", memory=False, quiesce=False))


def gone(w, ds_path):
    return w.get(ds_path)[0] == 404


def descriptor(w, ds_path):
    status, body = w.get(ds_path)
    assert status == 200, ds_path
    return body.decode()


def cid(text, key="CID"):
    return re.search(rf"^{key}=(\w+)$", text, re.M).group(1)


def prop(w, obj, path):
    """One property through the PropertyCollector (vcsim's Fetch, behind pyVmomi's accessors, panics on an
    unset property such as a VM's ``snapshot`` when it has none)."""
    pc = w.content.propertyCollector
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=obj)],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=type(obj), pathSet=[path])])
    for content in pc.RetrieveContents([spec]):
        for p in content.propSet or []:
            return p.val
    return None


def no_snapshot(w, vm):
    return prop(w, vm, "snapshot") is None


def chain(backing):
    out = []
    while backing is not None:
        out.append(backing.fileName)
        backing = backing.parent
    return out


def snapshot_disk(snap):
    return next(d for d in snap.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))


def disks(vm):
    return sorted((d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)),
                  key=lambda d: d.unitNumber)


def new_disk_spec(unit, size, mode="persistent", thin=False):
    disk = vim.vm.device.VirtualDisk(
        key=-1 - unit, controllerKey=1000, unitNumber=unit, capacityInKB=size // 1024, capacityInBytes=size,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName="", diskMode=mode, thinProvisioned=thin))
    return vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)


def attach_spec(file_name, unit):
    """An existing VMDK as Nova, govmomi and terraform-provider-vsphere attach it: capacity 0, no file op."""
    disk = vim.vm.device.VirtualDisk(
        key=-100 - unit, controllerKey=1000, unitNumber=unit, capacityInKB=0,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=file_name, diskMode="persistent"))
    return vim.vm.device.VirtualDeviceSpec(operation="add", device=disk)


# -------------------------------------------------------------------------------- snapshot

def test_snapshot_puts_the_disk_on_a_delta_whose_parent_is_the_disk(w, vms):
    vm = w.create_vm(size=MiB, thin=True)
    vms.append(vm)
    before = payload(MiB)
    w.write_disk(vm, before)
    base_backing = w.disk(vm).backing
    base, disk_uuid = base_backing.fileName, base_backing.uuid
    base_cid = cid(descriptor(w, base))
    snap = snapshot(w, vm)

    b = w.disk(vm).backing
    assert b.fileName == delta_name(base, 1)  # next to the disk, numbered as ESXi numbers them
    assert chain(b) == [delta_name(base, 1), base]
    assert b.parent.parent is None and b.deltaDiskFormat == "redoLogFormat"
    assert (b.diskMode, b.thinProvisioned, b.uuid) == ("persistent", True, disk_uuid)
    assert b.datastore._GetMoId() == w.ds["ds-c0"]._GetMoId()
    # the snapshot keeps the disk as it was: its config names the parent file
    sb = snapshot_disk(snap).backing
    assert sb.fileName == base and sb.parent is None
    # the delta's descriptor: a vmfsSparse redo log naming its parent
    text = descriptor(w, b.fileName)
    name = base.rsplit("/", 1)[1][: -len(".vmdk")]
    assert 'createType="vmfsSparse"' in text
    assert f'parentFileNameHint="{name}.vmdk"' in text
    assert cid(text, "parentCID") == base_cid
    assert f'RW {MiB // 512} VMFSSPARSE "{name}-000001-delta.vmdk"' in text
    assert current_data(w, vm) == (200, before)  # the delta reads as the disk did
    assert vm.layoutEx.disk[0].chain and len(vm.layoutEx.disk[0].chain) == 2
    # a reconfigure (which re-syncs disk files) leaves the delta a delta
    w.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(annotation="touched")))
    assert 'createType="vmfsSparse"' in descriptor(w, b.fileName)
    assert w.get(w.flat(b.fileName))[0] == 404  # no flat extent for a delta


def test_removing_the_only_snapshot_merges_the_data_written_since_into_the_disk(w, vms):
    vm = w.create_vm(size=MiB)
    vms.append(vm)
    w.write_disk(vm, payload(MiB))
    base = w.disk(vm).backing.fileName
    snap = snapshot(w, vm)
    after = payload(MiB)
    write_current(w, vm, after)
    delta = w.disk(vm).backing.fileName
    assert delta == delta_name(base, 1)
    w.wait(snap.RemoveSnapshot_Task(removeChildren=False, consolidate=True))
    b = w.disk(vm).backing
    assert b.fileName == base and b.parent is None
    assert w.get(w.flat(base)) == (200, after)
    assert gone(w, delta) and gone(w, extent(delta))
    assert no_snapshot(w, vm)
    assert 'createType="vmfs"' in descriptor(w, base)
    # a disk without snapshots may grow again
    w.wait(vm.ReconfigVM_Task(w.grow_spec(vm, 2 * MiB)))
    assert w.disk(vm).capacityInBytes == 2 * MiB


def test_revert_puts_the_disk_back_on_the_snapshot_and_drops_the_old_delta(w, vms):
    vm = w.create_vm(size=MiB)
    vms.append(vm)
    before = payload(MiB)
    w.write_disk(vm, before)
    base = w.disk(vm).backing.fileName
    snap = snapshot(w, vm)
    write_current(w, vm, payload(MiB))
    old = w.disk(vm).backing.fileName
    assert old != base
    w.wait(snap.RevertToSnapshot_Task(suppressPowerOn=True))
    b = w.disk(vm).backing
    assert b.fileName not in (base, old) and chain(b) == [b.fileName, base]
    assert current_data(w, vm) == (200, before)
    assert gone(w, old) and gone(w, extent(old))  # no snapshot needed it
    assert w.get(w.flat(base)) == (200, before)
    assert vm.snapshot.currentSnapshot._GetMoId() == snap._GetMoId()
    # RevertToCurrentSnapshot does the same
    write_current(w, vm, payload(MiB))
    second = w.disk(vm).backing.fileName
    w.wait(vm.RevertToCurrentSnapshot_Task(suppressPowerOn=True))
    assert current_data(w, vm) == (200, before) and gone(w, second)


@needs_qemu_img
def test_export_of_a_snapshotted_vm_serves_the_current_data(w, vms, tmp_path):
    vm = w.create_vm(size=MiB)
    vms.append(vm)
    w.write_disk(vm, payload(MiB))
    snapshot(w, vm)
    assert w.disk(vm).backing.parent is not None
    after = payload(MiB)
    write_current(w, vm, after)
    lease = vm.ExportVm()
    info = wait_lease(lease)
    (url,) = [d.url for d in info.deviceUrl if d.disk]
    status, body = nfc_request(w, "GET", url)
    assert status == 200
    (tmp_path / "out.vmdk").write_bytes(body)
    qemu_img("convert", "-f", "vmdk", "-O", "raw", str(tmp_path / "out.vmdk"), str(tmp_path / "out.raw"))
    assert (tmp_path / "out.raw").read_bytes() == after
    lease.HttpNfcLeaseComplete()


def test_two_snapshots_make_a_two_deep_chain(w, vms):
    vm = w.create_vm(size=MiB)
    vms.append(vm)
    one = payload(MiB)
    w.write_disk(vm, one)
    base = w.disk(vm).backing.fileName
    s1 = snapshot(w, vm, "one")
    two = payload(MiB)
    write_current(w, vm, two)
    s2 = snapshot(w, vm, "two")
    b = w.disk(vm).backing
    assert chain(b) == [delta_name(base, 2), delta_name(base, 1), base]
    assert chain(snapshot_disk(s2).backing) == [delta_name(base, 1), base]
    assert chain(snapshot_disk(s1).backing) == [base]
    name = base.rsplit("/", 1)[1][: -len(".vmdk")]
    text = descriptor(w, b.fileName)
    assert f'parentFileNameHint="{name}-000001.vmdk"' in text
    assert cid(text, "parentCID") == cid(descriptor(w, delta_name(base, 1)))
    assert current_data(w, vm) == (200, two)
    # removing both (the first with its children) consolidates everything into the disk
    three = payload(MiB)
    write_current(w, vm, three)
    w.wait(s1.RemoveSnapshot_Task(removeChildren=True))
    b = w.disk(vm).backing
    assert b.fileName == base and b.parent is None and no_snapshot(w, vm)
    assert w.get(w.flat(base)) == (200, three)
    assert gone(w, delta_name(base, 1)) and gone(w, delta_name(base, 2))
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        _ = s2.config  # the child went with its parent


def test_removing_the_middle_snapshot_keeps_both_neighbours(w, vms):
    vm = w.create_vm(size=MiB)
    vms.append(vm)
    data = [payload(MiB) for _ in range(4)]
    w.write_disk(vm, data[0])
    base = w.disk(vm).backing.fileName
    s1 = snapshot(w, vm, "s1")
    write_current(w, vm, data[1])
    s2 = snapshot(w, vm, "s2")
    write_current(w, vm, data[2])
    s3 = snapshot(w, vm, "s3")
    write_current(w, vm, data[3])
    d1, d2, d3 = (delta_name(base, n) for n in (1, 2, 3))
    assert chain(w.disk(vm).backing) == [d3, d2, d1, base]

    w.wait(s2.RemoveSnapshot_Task(removeChildren=False))
    # s2's file d1 took in its only child d2 (s3's state); everything that named d2 names d1
    assert chain(w.disk(vm).backing) == [d3, d1, base]
    assert chain(snapshot_disk(s3).backing) == [d1, base]
    assert gone(w, d2) and gone(w, extent(d2))
    assert w.get(extent(d1)) == (200, data[2])
    name = base.rsplit("/", 1)[1][: -len(".vmdk")]
    assert f'parentFileNameHint="{name}-000001.vmdk"' in descriptor(w, d3)
    # the tree: s3 is now s1's child
    root = vm.snapshot.rootSnapshotList[0]
    assert root.snapshot._GetMoId() == s1._GetMoId()
    assert [c.snapshot._GetMoId() for c in root.childSnapshotList] == [s3._GetMoId()]
    assert [c._GetMoId() for c in s1.childSnapshot] == [s3._GetMoId()]
    assert current_data(w, vm) == (200, data[3])
    # both neighbours still revert to their own state
    w.wait(s3.RevertToSnapshot_Task())
    assert current_data(w, vm) == (200, data[2])
    w.wait(s1.RevertToSnapshot_Task())
    assert current_data(w, vm) == (200, data[0])


def test_revert_then_snapshot_branches_and_removal_keeps_the_branch_point(w, vms):
    vm = w.create_vm(size=MiB)
    vms.append(vm)
    a = payload(MiB)
    w.write_disk(vm, a)
    base = w.disk(vm).backing.fileName
    s1 = snapshot(w, vm, "s1")
    w.wait(s1.RevertToSnapshot_Task())
    b_data = payload(MiB)
    write_current(w, vm, b_data)
    branch = w.disk(vm).backing.fileName  # the revert's delta, child of base
    s2 = snapshot(w, vm, "s2")
    assert chain(snapshot_disk(s2).backing) == [branch, base]
    w.wait(s1.RevertToSnapshot_Task())
    running = w.disk(vm).backing.fileName
    assert chain(w.disk(vm).backing) == [running, base] and running != branch
    assert w.get(extent(branch)) == (200, b_data)  # s2 still needs it
    # base has two children now (s2's delta and the running one): removing s1 cannot merge
    w.wait(s1.RemoveSnapshot_Task(removeChildren=False))
    assert w.get(w.flat(base)) == (200, a)
    assert chain(w.disk(vm).backing) == [running, base]
    assert chain(snapshot_disk(s2).backing) == [branch, base]
    # s2 gone too: its delta has no use left; base has one child and takes it in
    c = payload(MiB)
    write_current(w, vm, c)
    w.wait(s2.RemoveSnapshot_Task(removeChildren=False))
    assert gone(w, branch) and gone(w, running)
    b = w.disk(vm).backing
    assert b.fileName == base and b.parent is None and no_snapshot(w, vm)
    assert w.get(w.flat(base)) == (200, c)


def test_remove_all_snapshots_consolidates_into_the_disk(w, vms):
    vm = w.create_vm(size=MiB)
    vms.append(vm)
    w.write_disk(vm, payload(MiB))
    base = w.disk(vm).backing.fileName
    snapshot(w, vm, "s1")
    write_current(w, vm, payload(MiB))
    snapshot(w, vm, "s2")
    last = payload(MiB)
    write_current(w, vm, last)
    assert chain(w.disk(vm).backing) == [delta_name(base, 2), delta_name(base, 1), base]
    w.wait(vm.RemoveAllSnapshots_Task())
    b = w.disk(vm).backing
    assert b.fileName == base and b.parent is None and no_snapshot(w, vm)
    assert w.get(w.flat(base)) == (200, last)
    assert gone(w, delta_name(base, 1)) and gone(w, delta_name(base, 2))


def test_independent_disks_are_not_snapshotted(w, vms):
    name = f"chain-{uuid.uuid4().hex[:8]}"
    spec = vim.vm.ConfigSpec(
        name=name, guestId="otherGuest", numCPUs=1, memoryMB=64, files=vim.vm.FileInfo(vmPathName="[ds-c0]"),
        deviceChange=[
            vim.vm.device.VirtualDeviceSpec(operation="add", device=vim.vm.device.VirtualLsiLogicController(
                key=1000, busNumber=0, sharedBus="noSharing")),
            new_disk_spec(0, MiB), new_disk_spec(1, MiB, mode="independent_persistent")])
    vm = w.wait(w.folder.CreateVM_Task(spec, w.pool("DC0_C0_H0"), w.hosts["DC0_C0_H0"]))
    vms.append(vm)
    plain, independent = disks(vm)
    a, x = payload(MiB), payload(MiB)
    write_current(w, vm, a, plain)
    write_current(w, vm, x, independent)
    ind_file = independent.backing.fileName
    snap = snapshot(w, vm)
    plain, independent = disks(vm)
    assert plain.backing.parent is not None
    assert independent.backing.fileName == ind_file and independent.backing.parent is None
    assert independent.backing.diskMode == "independent_persistent"
    y = payload(MiB)
    write_current(w, vm, payload(MiB), plain)
    write_current(w, vm, y, independent)
    w.wait(snap.RevertToSnapshot_Task())
    plain, independent = disks(vm)
    assert current_data(w, vm, plain) == (200, a)
    assert independent.backing.fileName == ind_file and current_data(w, vm, independent) == (200, y)
    w.wait(snap.RemoveSnapshot_Task(removeChildren=False))
    plain, independent = disks(vm)
    assert plain.backing.parent is None and independent.backing.fileName == ind_file
    assert current_data(w, vm, independent) == (200, y)


# --------------------------------------------------------------------------------- destroy

def test_destroy_deletes_every_file_of_the_chain(w):
    vm = w.create_vm(size=MiB)
    base = w.disk(vm).backing.fileName
    s1 = snapshot(w, vm)
    w.wait(s1.RevertToSnapshot_Task())  # a delta from the revert
    snapshot(w, vm)
    files = chain(w.disk(vm).backing)
    assert len(files) == 3
    folder = base.rsplit("/", 1)[0]
    w.wait(vm.Destroy_Task())
    assert all(gone(w, f) for f in files)
    assert all(gone(w, extent(f)) for f in files[:-1]) and gone(w, w.flat(base))
    assert w.get(f"{folder}/")[0] == 404  # the folder went too


def test_destroy_keeps_the_parent_a_linked_clone_uses(w, vms):
    src = w.create_vm(size=MiB)
    vms.append(src)
    a = payload(MiB)
    w.write_disk(src, a)
    base = w.disk(src).backing.fileName
    snap = snapshot(w, src)
    write_current(w, src, payload(MiB))
    delta = w.disk(src).backing.fileName
    name = f"linked-{uuid.uuid4().hex[:8]}"
    clone = w.wait(src.CloneVM_Task(folder=w.folder, name=name, spec=vim.vm.CloneSpec(
        snapshot=snap, powerOn=False, template=False,
        location=vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0"), diskMoveType="createNewChildDiskBacking"))))
    vms.append(clone)
    assert chain(w.disk(clone).backing) == [w.disk(clone).backing.fileName, base]
    w.wait(src.Destroy_Task())
    vms.remove(src)
    assert gone(w, delta) and gone(w, extent(delta))  # the source's own delta
    assert w.get(w.flat(base)) == (200, a) and w.get(base)[0] == 200  # the clone's parent stays
    clone_file = w.disk(clone).backing.fileName
    w.wait(clone.Destroy_Task())
    vms.remove(clone)
    assert gone(w, clone_file) and gone(w, base) and gone(w, w.flat(base))


# ----------------------------------------------------------------------------------- clone

def test_clone_copies_marks_and_annotation_with_a_new_instance_uuid(w, vms):
    src = w.create_vm()
    vms.append(src)
    opt = vim.option.OptionValue
    w.wait(src.ReconfigVM_Task(vim.vm.ConfigSpec(annotation="the note", extraConfig=[
        opt(key="vmdk.volume_id", value="v-1"), opt(key="vmdk.kind", value="volume")])))
    name = f"clone-{uuid.uuid4().hex[:8]}"
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0")), powerOn=False, template=False)
    first = w.wait(src.CloneVM_Task(folder=w.folder, name=name, spec=spec))
    extra = {o.key: o.value for o in first.config.extraConfig}
    assert extra["vmdk.volume_id"] == "v-1" and extra["vmdk.kind"] == "volume"
    assert first.config.annotation == "the note"
    ids = {first.config.instanceUuid, first.config.uuid}
    assert src.config.instanceUuid not in ids and src.config.uuid not in ids
    w.wait(first.Destroy_Task())
    # a clone made where a destroyed one was (same name, same folder path) is a new VM: new ids
    second = w.wait(src.CloneVM_Task(folder=w.folder, name=name, spec=spec))
    vms.append(second)
    assert second.config.files.vmPathName == f"[ds-c0] {name}/{name}.vmx"
    assert second.config.instanceUuid not in ids and second.config.uuid not in ids
    assert w.content.searchIndex.FindByUuid(uuid=second.config.instanceUuid, vmSearch=True,
                                            instanceUuid=True)._GetMoId() == second._GetMoId()
    # the spec's instanceUuid wins
    wanted = str(uuid.uuid4())
    spec.config = vim.vm.ConfigSpec(instanceUuid=wanted)
    third = w.wait(src.CloneVM_Task(folder=w.folder, name=f"clone-{uuid.uuid4().hex[:8]}", spec=spec))
    vms.append(third)
    assert third.config.instanceUuid == wanted


def test_full_clone_of_a_snapshotted_vm_is_one_flat_disk(w, vms):
    src = w.create_vm(size=MiB)
    vms.append(src)
    a = payload(MiB)
    w.write_disk(src, a)
    snap = snapshot(w, src)
    b = payload(MiB)
    write_current(w, src, b)
    assert w.disk(src).backing.parent is not None
    loc = vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0"), diskMoveType="moveAllDiskBackingsAndDisallowSharing")
    current = w.wait(src.CloneVM_Task(folder=w.folder, name=f"clone-{uuid.uuid4().hex[:8]}",
                                      spec=vim.vm.CloneSpec(location=loc, powerOn=False, template=False)))
    vms.append(current)
    cb = w.disk(current).backing
    assert cb.parent is None and no_snapshot(w, current)
    assert 'createType="vmfs"' in descriptor(w, cb.fileName)
    assert w.get(w.flat(cb.fileName)) == (200, b)  # the top of the chain: the current state
    at_snap = w.wait(src.CloneVM_Task(folder=w.folder, name=f"clone-{uuid.uuid4().hex[:8]}",
                                      spec=vim.vm.CloneSpec(location=loc, snapshot=snap, powerOn=False,
                                                            template=False)))
    vms.append(at_snap)
    sb = w.disk(at_snap).backing
    assert sb.parent is None and w.get(w.flat(sb.fileName)) == (200, a)
    assert current_data(w, src) == (200, b)  # the source is untouched


def test_linked_clone_of_a_second_snapshot_chains_through_the_source_deltas(w, vms):
    src = w.create_vm(size=MiB)
    vms.append(src)
    w.write_disk(src, payload(MiB))
    base = w.disk(src).backing.fileName
    snapshot(w, src, "s1")
    second = payload(MiB)
    write_current(w, src, second)
    s2 = snapshot(w, src, "s2")
    clone = w.wait(src.CloneVM_Task(folder=w.folder, name=f"linked-{uuid.uuid4().hex[:8]}", spec=vim.vm.CloneSpec(
        snapshot=s2, powerOn=False, template=False,
        location=vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0"), diskMoveType="createNewChildDiskBacking"))))
    vms.append(clone)
    cb = w.disk(clone).backing
    assert chain(cb)[1:] == [delta_name(base, 1), base]
    assert w.get(w.flat(cb.fileName)) == (200, second)


# -------------------------------------------------------------------------------- relocate

def test_relocate_of_a_snapshotted_vm_moves_its_whole_chain(w, vms):
    vm = w.create_vm(ds="ds-c0", size=MiB)
    vms.append(vm)
    a = payload(MiB)
    w.write_disk(vm, a)
    base = w.disk(vm).backing.fileName
    snap = snapshot(w, vm)
    b = payload(MiB)
    write_current(w, vm, b)
    delta = w.disk(vm).backing.fileName
    w.wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=w.ds["ds-big"])))
    moved = w.disk(vm).backing
    assert chain(moved) == [delta.replace("[ds-c0]", "[ds-big]"), base.replace("[ds-c0]", "[ds-big]")]
    assert chain(snapshot_disk(snap).backing) == [base.replace("[ds-c0]", "[ds-big]")]
    assert gone(w, delta) and gone(w, base) and gone(w, w.flat(base))
    assert current_data(w, vm) == (200, b) and w.get(w.flat(moved.parent.fileName)) == (200, a)
    w.wait(snap.RemoveSnapshot_Task(removeChildren=False))
    assert w.disk(vm).backing.fileName == base.replace("[ds-c0]", "[ds-big]")
    assert current_data(w, vm) == (200, b)


# -------------------------------------------------------------------------- held VMDK (attach)

def test_a_vm_holding_another_vms_vmdk_leaves_it_intact_and_snapshots_next_to_it(w, vms):
    shadow = w.create_vm(ds="ds-c0", size=2 * MiB, thin=True)
    vms.append(shadow)
    a = payload(2 * MiB)
    w.write_disk(shadow, a)
    vol = w.disk(shadow).backing
    before = descriptor(w, vol.fileName)
    holder = w.create_vm(ds="ds-c0", size=MiB)
    vms.append(holder)
    free = w.ds["ds-c0"].summary.freeSpace
    w.wait(holder.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[attach_spec(vol.fileName, 1)])))
    held = disks(holder)[1]
    assert held.backing.fileName == vol.fileName
    assert (held.capacityInKB, held.capacityInBytes) == (2 * MiB // 1024, 2 * MiB)  # from the file
    assert held.backing.thinProvisioned is True and held.backing.uuid == vol.uuid
    assert descriptor(w, vol.fileName) == before  # the shared descriptor is not rewritten
    assert w.ds["ds-c0"].summary.freeSpace == free  # attaching charges nothing

    snap = snapshot(w, holder)
    held = disks(holder)[1]
    assert chain(held.backing) == [delta_name(vol.fileName, 1), vol.fileName]  # next to the VMDK
    assert held.backing.uuid == vol.uuid
    assert descriptor(w, vol.fileName) == before
    assert w.disk(shadow).backing.fileName == vol.fileName  # the shadow still names the VMDK
    c = payload(2 * MiB)
    write_current(w, holder, c, held)
    w.wait(snap.RemoveSnapshot_Task(removeChildren=False))
    held = disks(holder)[1]
    assert held.backing.fileName == vol.fileName and held.backing.parent is None
    assert w.get(w.flat(vol.fileName)) == (200, c)  # merged into the volume
    assert gone(w, delta_name(vol.fileName, 1))
    # detached again (no file operation): the volume stays
    remove = vim.vm.device.VirtualDeviceSpec(operation="remove", device=held)
    w.wait(holder.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[remove])))
    assert w.get(w.flat(vol.fileName)) == (200, c) and "RW 4096 VMFS" in descriptor(w, vol.fileName)
    assert 'ddb.thinProvisioned = "1"' in descriptor(w, vol.fileName)


def test_revert_of_a_vm_holding_another_vms_vmdk(w, vms):
    shadow = w.create_vm(ds="ds-c0", size=MiB)
    vms.append(shadow)
    a = payload(MiB)
    w.write_disk(shadow, a)
    vol = w.disk(shadow).backing.fileName
    holder = w.create_vm(ds="ds-c0", size=MiB)
    vms.append(holder)
    w.wait(holder.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[attach_spec(vol, 1)])))
    snap = snapshot(w, holder)
    write_current(w, holder, payload(MiB), disks(holder)[1])
    first = disks(holder)[1].backing.fileName
    w.wait(snap.RevertToSnapshot_Task())
    held = disks(holder)[1]
    assert chain(held.backing)[1:] == [vol] and held.backing.fileName.startswith(vol[: -len(".vmdk")] + "-")
    assert gone(w, first)
    assert current_data(w, holder, held) == (200, a) and w.get(w.flat(vol)) == (200, a)


def test_attaching_a_child_disk_reports_its_parent_chain(w, vms):
    src = w.create_vm(size=MiB)
    vms.append(src)
    base = w.disk(src).backing.fileName
    snap = snapshot(w, src)
    clone = w.wait(src.CloneVM_Task(folder=w.folder, name=f"linked-{uuid.uuid4().hex[:8]}", spec=vim.vm.CloneSpec(
        snapshot=snap, powerOn=False, template=False,
        location=vim.vm.RelocateSpec(pool=w.pool("DC0_C0_H0"), diskMoveType="createNewChildDiskBacking"))))
    vms.append(clone)
    child = w.disk(clone).backing.fileName
    before = descriptor(w, child)
    holder = w.create_vm(size=MiB)
    vms.append(holder)
    w.wait(holder.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[attach_spec(child, 1)])))
    held = disks(holder)[1]
    assert chain(held.backing) == [child, base] and held.capacityInBytes == MiB
    assert descriptor(w, child) == before
    with pytest.raises(vim.fault.InvalidDeviceOperation):  # a disk with a parent cannot grow
        held.capacityInKB, held.capacityInBytes = 2 * MiB // 1024, 2 * MiB
        w.wait(holder.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[
            vim.vm.device.VirtualDeviceSpec(operation="edit", device=held)])))


def test_copy_of_a_delta_is_a_standalone_disk_of_the_current_data(w, vms):
    vm = w.create_vm(size=MiB)
    vms.append(vm)
    w.write_disk(vm, payload(MiB))
    snapshot(w, vm)
    delta = w.disk(vm).backing.fileName
    assert w.disk(vm).backing.parent is not None
    b = payload(MiB)
    write_current(w, vm, b)
    copy = delta.rsplit("/", 1)[0] + "/copy.vmdk"
    w.wait(w.content.virtualDiskManager.CopyVirtualDisk_Task(
        sourceName=delta, sourceDatacenter=w.dc, destName=copy, destDatacenter=w.dc))
    text = descriptor(w, copy)
    assert 'createType="vmfs"' in text and "parentFileNameHint" not in text
    assert w.get(w.flat(copy)) == (200, b)
    w.wait(w.content.virtualDiskManager.DeleteVirtualDisk_Task(name=copy, datacenter=w.dc))


def test_destroy_leaves_files_in_the_folder_that_are_not_the_vms(w):
    """vSphere deletes a VM's own files (govmomi #332: "vm.destroy leaves uploaded data in folder ... this is
    expected"): a VMDK detached from the VM, or any other file put there, stays, and so does the folder."""
    vm = w.create_vm(size=MiB)
    disk = w.disk(vm)
    data = payload(MiB)
    w.write_disk(vm, data)
    w.wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation="remove", device=disk)])))  # detached: the file stays
    folder = disk.backing.fileName.rsplit("/", 1)[0]
    w.put(f"{folder}/notes.txt", b"kept")
    w.wait(vm.Destroy_Task())
    assert w.get(World.flat(disk.backing.fileName)) == (200, data) and w.get(disk.backing.fileName)[0] == 200
    assert w.get(f"{folder}/notes.txt") == (200, b"kept")
    assert gone(w, disk.backing.fileName[: -len(".vmdk")] + ".vmx")  # the VM's own files went
