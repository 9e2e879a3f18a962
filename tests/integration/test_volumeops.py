"""VolumeOps against vcsim: create/find/list/delete, annotations, snapshots, transfer.

Assertions read the vSphere inventory (VM properties, folders, datastore files)
rather than trusting our return values.  Where vcsim ignores what a request asks
for, the test captures the SOAP request (soap_capture.py) and says which gap
forced that.  Clone/extend/relocate/retype live in test_volumeops_changes.py.
"""

from __future__ import annotations

import io
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from pyVmomi import vim
from soap_capture import SoapCapture

from terraform_provider_vmdk.vsphere import exceptions as exc
from terraform_provider_vmdk.vsphere.volumes import specs
from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

pytestmark = pytest.mark.integration

GiB = specs.GiB


# ---------------------------------------------------------------------------- helpers
def new_id() -> str:
    return str(uuid.uuid4())


def vm_props(session: Any, vm: Any, *props: str) -> dict[str, Any]:
    return session.get_properties(vm, list(props))


def all_vms(session: Any, inventory: Any, *props: str) -> list[Any]:
    return session.retrieve(vim.VirtualMachine, ["name", *props], container=inventory.vm_folder)


def vms_named(session: Any, inventory: Any, name: str) -> list[Any]:
    return [o for o in all_vms(session, inventory) if o.props.get("name") == name]


def placements(session: Any, inventory: Any) -> list[SimpleNamespace]:
    """One placement per datastore: a host that mounts it and that host's root resource pool."""
    out = []
    for item in session.retrieve(vim.Datastore, ["name", "host"], container=inventory.datacenter):
        mounts = item.props.get("host") or []
        if not mounts:
            continue
        host = mounts[0].key
        compute = session.get_properties(host, ["parent"])["parent"]
        pool = session.get_properties(compute, ["resourcePool"])["resourcePool"]
        out.append(SimpleNamespace(host=host, resource_pool=pool, datastore=item.obj, release=lambda: None,
                                   datastore_name=item.props["name"], profile_id=None))
    out.sort(key=lambda p: p.datastore_name)
    assert len(out) >= 2, "these tests need a vcsim model with at least two datastores"
    return out


def disk_of(session: Any, vm: Any) -> Any:
    devices = vm_props(session, vm, "config.hardware.device")["config.hardware.device"]
    return next(d for d in devices if isinstance(d, vim.vm.device.VirtualDisk))


def controller_of(session: Any, vm: Any, key: int) -> Any:
    devices = vm_props(session, vm, "config.hardware.device")["config.hardware.device"]
    return next(d for d in devices if d.key == key)


def extra_config(session: Any, vm: Any) -> dict[str, str]:
    options = vm_props(session, vm, "config.extraConfig")["config.extraConfig"] or []
    return {o.key: o.value for o in options}


def folder_path(session: Any, inventory: Any, obj: Any) -> str:
    """Inventory path of obj's parent folder relative to the datacenter's vmFolder."""
    names = []
    parent = vm_props(session, obj, "parent")["parent"]
    root = inventory.vm_folder._moId
    while parent is not None and parent._moId != root:
        props = session.get_properties(parent, ["name", "parent"])
        names.append(props["name"])
        parent = props["parent"]
    return "/".join(reversed(names))


def file_exists(ops: VolumeOps, ds_path: str) -> bool:
    ds, _, rel = ds_path[1:].partition("] ")
    try:
        ops.download_file(ds, rel, io.BytesIO)
        return True
    except exc.NotFound:
        return False


class Made:
    """Everything a test created, destroyed afterwards whatever happened (no leaked VMs)."""

    def __init__(self, session: Any, inventory: Any) -> None:
        self.session, self.inventory = session, inventory
        self.ids: set[str] = set()
        self.vms: list[Any] = []

    def cleanup(self) -> None:
        for item in all_vms(self.session, self.inventory, "config.extraConfig", "config.instanceUuid"):
            ec = {o.key: o.value for o in item.props.get("config.extraConfig") or []}
            if ec.get(specs.KEY_VOLUME_ID) in self.ids or item.props.get("config.instanceUuid") in self.ids \
                    or any(item.obj._moId == v._moId for v in self.vms):
                try:
                    self.session.run_task(item.obj.Destroy_Task)
                except Exception:  # noqa: BLE001 - best-effort cleanup
                    pass


@pytest.fixture
def inventory(vsphere_session):
    from terraform_provider_vmdk.vsphere.placement.inventory import Inventory

    return Inventory(vsphere_session)


@pytest.fixture
def ops(vsphere_session, inventory):
    return VolumeOps(vsphere_session, inventory)


@pytest.fixture
def made(vsphere_session, inventory):
    m = Made(vsphere_session, inventory)
    yield m
    m.cleanup()


@pytest.fixture
def places(vsphere_session, inventory):
    return placements(vsphere_session, inventory)


def create(ops: VolumeOps, made: Made, place: Any, *, size=GiB, disk_type="thin", adapter="lsiLogic",
           name="data", description=None, profile_id=None):
    vid = new_id()
    made.ids.add(vid)
    return ops.create_backing(vid, name, size, disk_type, adapter, place, profile_id=profile_id,
                              description=description)


def consumer_vm(session: Any, inventory: Any, made: Made, place: Any, vmdk_path: str, name: str) -> Any:
    """A plain VM (not ours) with the volume's VMDK attached, like an instance using the volume."""
    devices = specs.disk_and_controller_specs(GiB // 1024, "thin", "lsiLogic", file_name=vmdk_path)
    spec = vim.vm.ConfigSpec(name=name, guestId="otherGuest", numCPUs=1, memoryMB=128,
                             files=vim.vm.FileInfo(vmPathName=f"[{place.datastore_name}]"), deviceChange=devices)
    vm = session.run_task(inventory.vm_folder.CreateVM_Task, config=spec, pool=place.resource_pool)
    made.vms.append(vm)
    return vm


# ---------------------------------------------------------------------------- create
@pytest.mark.parametrize("disk_type,thin,eager", [
    ("thin", True, False), ("thick", False, False), ("eagerZeroedThick", False, True)])
@pytest.mark.parametrize("adapter,cls", [
    ("lsiLogic", vim.vm.device.VirtualLsiLogicController),
    ("paraVirtual", vim.vm.device.ParaVirtualSCSIController),
    ("ide", vim.vm.device.VirtualIDEController),
])
def test_create_backing_inventory(vsphere_session, inventory, ops, made, places, disk_type, thin, eager, adapter, cls):
    s = vsphere_session
    b = create(ops, made, places[0], size=2 * GiB, disk_type=disk_type, adapter=adapter,
               description="first volume")
    props = vm_props(s, b.moref, "name", "config.instanceUuid", "config.guestId", "config.hardware.numCPU",
                     "config.hardware.memoryMB", "runtime.powerState", "config.annotation", "config.template")
    assert props["name"] == f"volume-{b.volume_id}"
    assert props["config.instanceUuid"] == b.volume_id
    assert props["config.guestId"] == "otherGuest"
    assert (props["config.hardware.numCPU"], props["config.hardware.memoryMB"]) == (1, 128)
    assert props["runtime.powerState"] == "poweredOff" and not props["config.template"]
    assert specs.decode_annotation(props["config.annotation"]) == ("data", "first volume")
    ec = extra_config(s, b.moref)
    assert ec[specs.KEY_VOLUME_ID] == b.volume_id and ec[specs.KEY_MANAGED_BY] == specs.MANAGED_BY
    assert folder_path(s, inventory, b.moref) == "Volumes"

    disk = disk_of(s, b.moref)
    assert disk.capacityInKB == 2 * GiB // 1024
    assert (bool(disk.backing.thinProvisioned), bool(disk.backing.eagerlyScrub)) == (thin, eager)
    assert disk.backing.uuid == b.volume_id  # disk UUID stamped with the volume id
    assert disk.backing.fileName.startswith(f"[{places[0].datastore_name}] ")
    assert type(controller_of(s, b.moref, disk.controllerKey)) is cls
    assert file_exists(ops, disk.backing.fileName)
    assert (b.disk_type, b.adapter_type, b.size_bytes, b.vmdk_path) == (disk_type, adapter, 2 * GiB,
                                                                        disk.backing.fileName)


def test_create_with_profile_request_level(vsphere_session, ops, made, places):
    # vcsim gap: vmProfile and disk profiles on CreateVM are accepted and ignored, so check the request.
    with SoapCapture(vsphere_session.si) as cap:
        b = create(ops, made, places[0], profile_id="aa6d5a82-1c88-45da-85d3-3d74b91a5bad")
    spec = cap.last("CreateVM_Task").args["config"]
    assert [p.profileId for p in spec.vmProfile] == ["aa6d5a82-1c88-45da-85d3-3d74b91a5bad"]
    disk_spec = next(c for c in spec.deviceChange if isinstance(c.device, vim.vm.device.VirtualDisk))
    assert [p.profileId for p in disk_spec.profile] == ["aa6d5a82-1c88-45da-85d3-3d74b91a5bad"]
    assert "<profileId>aa6d5a82-1c88-45da-85d3-3d74b91a5bad</profileId>" in cap.last("CreateVM_Task").xml
    assert b.profile_id == "aa6d5a82-1c88-45da-85d3-3d74b91a5bad"  # remembered in extraConfig


@pytest.mark.parametrize("disk_type,adapter,error", [
    ("sparse", "lsiLogic", exc.InvalidDiskType), ("thin", "nvme", exc.InvalidAdapterType)])
def test_create_invalid_types_send_nothing(vsphere_session, inventory, ops, made, places, disk_type, adapter, error):
    vid = new_id()
    made.ids.add(vid)
    with SoapCapture(vsphere_session.si) as cap, pytest.raises(error):
        ops.create_backing(vid, "x", GiB, disk_type, adapter, places[0])
    assert cap.count("CreateVM_Task") == 0
    assert not vms_named(vsphere_session, inventory, f"volume-{vid}")


# ---------------------------------------------------------------------------- find / list
def test_find_and_list_backings_one_round_trip(vsphere_session, inventory, ops, made, places):
    created = [create(ops, made, places[i % 2], disk_type=t, adapter=a, name=f"v{i}")
               for i, (t, a) in enumerate([("thin", "lsiLogic"), ("thick", "busLogic"), ("eagerZeroedThick", "ide")])]
    with SoapCapture(vsphere_session.si) as cap:
        listed = ops.list_backings()
    retrieves = [c for c in cap.calls if c.method in ("RetrieveContents", "RetrievePropertiesEx", "RetrieveProperties")]
    assert len(retrieves) == 1, cap.methods()
    for b in created:
        got = listed[b.volume_id]
        assert got == b  # same record from the batch read as from the single read
        assert (got.display_name, got.disk_type, got.adapter_type) == (b.display_name, b.disk_type, b.adapter_type)
    # vcsim's own VMs are not ours
    names = {o.props["name"] for o in all_vms(vsphere_session, inventory)}
    assert {b.name for b in listed.values()} < names
    assert all(n.startswith("volume-") for n in (b.name for b in listed.values()))

    found = ops.find_backing(created[1].volume_id)
    assert found is not None and found.moref_value == created[1].moref_value and found.disk_type == "thick"
    assert ops.find_backing(new_id()) is None


def test_find_backing_ignores_unmarked_vm_with_that_uuid(vsphere_session, inventory, ops, made, places):
    vid = new_id()
    spec = vim.vm.ConfigSpec(name=f"volume-{vid}", guestId="otherGuest", numCPUs=1, memoryMB=128, instanceUuid=vid,
                             files=vim.vm.FileInfo(vmPathName=f"[{places[0].datastore_name}]"))
    made.vms.append(vsphere_session.run_task(inventory.vm_folder.CreateVM_Task, config=spec,
                                             pool=places[0].resource_pool))
    assert ops.find_backing(vid) is None
    assert vid not in ops.list_backings()


# ---------------------------------------------------------------------------- delete
def test_delete_backing_removes_vm_and_disk(vsphere_session, inventory, ops, made, places):
    b = create(ops, made, places[0])
    assert file_exists(ops, b.vmdk_path)
    ops.delete_backing(b)
    assert not vms_named(vsphere_session, inventory, b.name)
    assert ops.find_backing(b.volume_id) is None
    assert not file_exists(ops, b.vmdk_path)
    ops.delete_backing(b)  # already gone: no-op


def test_in_use_names_the_vm_that_has_the_disk(vsphere_session, inventory, ops, made, places):
    b = create(ops, made, places[0])
    assert ops.is_in_use(b) == []
    consumer_vm(vsphere_session, inventory, made, places[0], b.vmdk_path, f"instance-{b.volume_id[:8]}")
    assert ops.is_in_use(b) == [f"instance-{b.volume_id[:8]}"]
    assert ops.load_index().users_of(b) == [f"instance-{b.volume_id[:8]}"]


# ---------------------------------------------------------------------------- rename / annotation
def test_rename_and_update_annotation(vsphere_session, ops, made, places):
    b = create(ops, made, places[0], name="old", description="a")
    b2 = ops.update_annotation(b, "new name", "new\ndescription")
    ann = vm_props(vsphere_session, b.moref, "config.annotation")["config.annotation"]
    assert specs.decode_annotation(ann) == ("new name", "new\ndescription")
    assert (b2.display_name, b2.description) == ("new name", "new\ndescription")
    ops.rename_backing(b, f"aside-{b.volume_id}")
    assert vm_props(vsphere_session, b.moref, "name")["name"] == f"aside-{b.volume_id}"
    # identity survives a rename: lookups go by instanceUuid and extraConfig
    assert ops.find_backing(b.volume_id).name == f"aside-{b.volume_id}"


# ---------------------------------------------------------------------------- snapshots
def test_cow_snapshot_lifecycle(vsphere_session, ops, made, places):
    b = create(ops, made, places[0])
    with SoapCapture(vsphere_session.si) as cap:
        snap = ops.create_snapshot(b, "snap-1", "before upgrade", "COW", snapshot_id="sid-1")
    args = cap.last("CreateSnapshot_Task").args
    assert (args["memory"], args["quiesce"], args["name"]) == (False, False, "snap-1")
    tree = vm_props(vsphere_session, b.moref, "snapshot")["snapshot"]
    (root,) = tree.rootSnapshotList
    assert root.name == "snap-1" and root.snapshot._moId == snap.moref._moId
    assert specs.decode_snapshot_description(root.description) == ("sid-1", "before upgrade")
    assert snap.format == "COW" and snap.snapshot_id == "sid-1" and snap.create_time is not None

    b = ops.refresh(b)
    assert b.has_snapshots and ops.find_snapshot(b, "snap-1").moref._moId == snap.moref._moId
    assert ops.find_snapshot(b, snapshot_id="sid-1").name == "snap-1"
    assert ops.find_snapshot(b, "nope") is None

    with SoapCapture(vsphere_session.si) as cap:
        ops.revert_to_snapshot(b, ops.find_snapshot(b, "snap-1"))
    assert cap.last("RevertToSnapshot_Task").this._moId == snap.moref._moId

    ops.delete_snapshot(b, "snap-1")
    assert not (vm_props(vsphere_session, b.moref, "snapshot").get("snapshot") or SimpleNamespace(
        rootSnapshotList=[])).rootSnapshotList
    ops.delete_snapshot(b, "snap-1")  # missing: no-op


def test_template_snapshot_lifecycle(vsphere_session, inventory, ops, made, places):
    b = create(ops, made, places[0], size=2 * GiB)
    source_disk_before = disk_of(vsphere_session, b.moref).backing.fileName
    snap = ops.create_snapshot(b, "nightly", "tmpl", "template", snapshot_id=new_id())
    made.ids.add(snap.snapshot_id)
    tmpl = snap.moref
    props = vm_props(vsphere_session, tmpl, "name", "config.template", "config.instanceUuid")
    assert props["config.template"] is True
    assert props["name"] == f"snapshot-{snap.snapshot_id}" and props["config.instanceUuid"] == snap.snapshot_id
    assert folder_path(vsphere_session, inventory, tmpl) == "Volumes/Snapshots"
    ec = extra_config(vsphere_session, tmpl)
    assert (ec[specs.KEY_KIND], ec[specs.KEY_VOLUME_ID], ec[specs.KEY_SNAPSHOT_ID]) == (
        specs.KIND_SNAPSHOT, b.volume_id, snap.snapshot_id)
    assert disk_of(vsphere_session, tmpl).backing.fileName.startswith(f"[{places[0].datastore_name}] ")
    assert (snap.name, snap.description, snap.size_bytes) == ("nightly", "tmpl", 2 * GiB)

    # templates are listed as snapshots, never as volumes
    assert snap.snapshot_id in ops.list_snapshot_templates(b.volume_id)
    assert snap.snapshot_id not in ops.list_backings() and b.volume_id in ops.list_backings()
    assert ops.find_snapshot(b, "nightly").snapshot_id == snap.snapshot_id
    assert ops.find_snapshot(None, snapshot_id=snap.snapshot_id).moref._moId == tmpl._moId
    with pytest.raises(exc.InvalidSnapshot):
        ops.revert_to_snapshot(b, ops.find_snapshot(b, "nightly"))

    # the template is a copy: the source keeps its own disk
    assert disk_of(vsphere_session, b.moref).backing.fileName == source_disk_before
    assert disk_of(vsphere_session, tmpl).backing.fileName != source_disk_before

    ops.delete_snapshot(b, snapshot_id=snap.snapshot_id)
    assert not [o for o in all_vms(vsphere_session, inventory) if o.obj._moId == tmpl._moId]
    ops.delete_snapshot(b, snapshot_id=snap.snapshot_id)  # missing: no-op


def test_invalid_snapshot_format(ops, made, places):
    b = create(ops, made, places[0])
    with pytest.raises(exc.InvalidSnapshot):
        ops.create_snapshot(b, "s", None, "sparse", snapshot_id=new_id())


# ---------------------------------------------------------------------------- transfer
def test_upload_download_round_trip(vsphere_session, ops, made, places, tmp_path):
    b = create(ops, made, places[0])
    folder = b.vmdk_path.split("] ", 1)[1].rsplit("/", 1)[0]
    payload = bytes(range(256)) * 8193  # > 2 MiB: several chunks
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    sent = ops.upload_file(places[0].datastore_name, f"{folder}/blob.bin", lambda: src.open("rb"), len(payload))
    assert sent == len(payload)
    out = tmp_path / "out.bin"
    assert ops.download_file(places[0].datastore_name, f"{folder}/blob.bin", lambda: out.open("wb")) == len(payload)
    assert out.read_bytes() == payload
    with pytest.raises(exc.NotFound):
        ops.download_file(places[0].datastore_name, f"{folder}/missing.bin", io.BytesIO)


def test_transfers_survive_faults(vsphere_session, fault_proxy, vcsim, made, places, tmp_path):
    """A reset, a 503 and an ended session in the middle of datastore transfers: retried from the start."""
    from terraform_provider_vmdk.vsphere.connection.session import Session
    from terraform_provider_vmdk.vsphere.placement.inventory import Inventory

    session = Session(vcsim.connection_config(server=fault_proxy.server, api_retry_count=4))
    faulty = VolumeOps(session, Inventory(session))
    b = create(faulty, made, places[0])
    folder = b.vmdk_path.split("] ", 1)[1].rsplit("/", 1)[0]
    payload = bytes(range(256)) * 5000
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    for fault in ("reset", "http503", "lost_response"):
        fault_proxy.inject(fault, "PUT /folder")
        faulty.upload_file(places[0].datastore_name, f"{folder}/f.bin", lambda: src.open("rb"), len(payload))
        fault_proxy.inject(fault, "GET /folder")
        out = tmp_path / f"{fault}.bin"
        faulty.download_file(places[0].datastore_name, f"{folder}/f.bin", lambda o=out: o.open("wb"))
        assert out.read_bytes() == payload
    assert fault_proxy.counts["reset"] == 2 and fault_proxy.counts["http503"] == 2
    session.logout()
