"""vmdk_volume_attachment through real Terraform against our simulator: Nova's attach, detach, consolidation.

Every test makes its own instance VM (a VM of someone else's, with a SCSI controller) and removes it, its
disks detached first (destroying a VM destroys every disk attached to it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run, write_config

pytestmark = pytest.mark.acceptance

BAD = ("Traceback", "inconsistent result", "This is a bug in the provider", "Unexpected error")
MiB = 1 << 20


def _vm(session, name: str):
    from pyVmomi import vim

    return next((i.obj for i in session.retrieve(vim.VirtualMachine, ["name"]) if i.props["name"] == name), None)


def _disks(session, vm) -> list:
    from pyVmomi import vim

    devices = session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
    return [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]


def _extra(session, vm) -> dict[str, str]:
    return {o.key: o.value for o in session.get_properties(vm, ["config.extraConfig"])["config.extraConfig"] or []}


def _make_vm(session, name: str, cluster: str = "DC0_C0", datastore: str = "ds-big", power_on: bool = False):
    from pyVmomi import vim

    dc = session.content.rootFolder.childEntity[0]
    pool = next(i.obj for i in session.retrieve(vim.ClusterComputeResource, ["name"])
                if i.props["name"] == cluster).resourcePool
    controller = vim.vm.device.VirtualLsiLogicController(key=1000, busNumber=0, sharedBus="noSharing")
    spec = vim.vm.ConfigSpec(name=name, guestId="otherGuest", numCPUs=1, memoryMB=128,
                             files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"),
                             deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=controller)])
    vm = session.run_task(dc.vmFolder.CreateVM_Task, config=spec, pool=pool)
    if power_on:
        session.run_task(vm.PowerOnVM_Task)
    return vm


def _drop_vm(session, vm) -> None:
    from pyVmomi import vim

    if session.get_properties(vm, ["runtime.powerState"])["runtime.powerState"] == "poweredOn":
        session.run_task(vm.PowerOffVM_Task)
    if getattr(session.get_properties(vm, ["snapshot"]).get("snapshot"), "rootSnapshotList", None):
        session.run_task(vm.RemoveAllSnapshots_Task)
    remove = [vim.vm.device.VirtualDeviceSpec(operation="remove", device=d) for d in _disks(session, vm)]
    if remove:
        session.run_task(vm.ReconfigVM_Task, spec=vim.vm.ConfigSpec(deviceChange=remove))
    session.run_task(vm.Destroy_Task)


@pytest.fixture
def instance(vsphere_session) -> Iterator[tuple[str, object]]:
    name = f"app-{uuid.uuid4().hex[:8]}"
    vm = _make_vm(vsphere_session, name)
    yield name, vm
    _drop_vm(vsphere_session, vm)


def _read_file(session, ds_path: str) -> bytes:
    import io

    from terraform_provider_vmdk.vsphere.connection import transfer

    ds, rel = ds_path[1:].split("] ", 1)
    sink = io.BytesIO()

    class Keep(io.BytesIO):
        def write(self, data):  # type: ignore[override]
            return sink.write(data)

    transfer.download_file(session, "DC0", ds, rel, lambda: Keep())
    return sink.getvalue()


def _write_flat(session, ds_path: str, data: bytes) -> None:
    import io

    from terraform_provider_vmdk.vsphere.connection import transfer

    ds, rel = ds_path[1:].split("] ", 1)
    flat = rel[: -len(".vmdk")] + "-flat.vmdk"
    transfer.upload_file(session, "DC0", ds, flat, lambda: io.BytesIO(data), len(data))


def config(provider: str, vm_line: str, extra: str = "", volume: str = "") -> str:
    return provider + f"""
resource "vmdk_volume" "v" {{
  name    = "attached"
  size_gb = 1
{volume}}}
resource "vmdk_volume_attachment" "a" {{
  volume_id = vmdk_volume.v.id
  {vm_line}
{extra}}}
output "volume" {{ value = vmdk_volume.v }}
output "attachment" {{ value = vmdk_volume_attachment.a }}
"""


def test_attach_and_detach_keep_every_byte(make_tf, vsphere_provider_block, vsphere_session, instance) -> None:
    name, vm = instance
    tf = make_tf(config(vsphere_provider_block, f'virtual_machine = "DC0/vm/{name}"'))
    applied = run(tf, "apply", "-auto-approve")
    assert applied.returncode == 0 and not any(b in applied.stdout + applied.stderr for b in BAD), applied.stderr
    out = tf.output()
    volume, attachment = out["volume"], out["attachment"]
    disks = [d for d in _disks(vsphere_session, vm) if d.backing.fileName == volume["vmdk_path"]]
    assert len(disks) == 1 and disks[0].backing.uuid.lower() == volume["disk_uuid"].lower()
    assert _extra(vsphere_session, vm)[f"volume-{volume['id']}"].lower() == volume["disk_uuid"].lower()
    assert attachment["device_address"] == "scsi:0:0" and attachment["vmdk_path"] == volume["vmdk_path"]
    assert attachment["adapter_type"] == "lsiLogic" and attachment["disk_mode"] == "persistent"
    assert run(tf, "plan", "-detailed-exitcode").returncode == 0
    # the volume is in use now: growing it, or destroying it alone, is refused, naming the VM
    write_config(Path(tf.tfdir), config(vsphere_provider_block, f'virtual_machine = "DC0/vm/{name}"').replace(
        "size_gb = 1", "size_gb = 2"))
    grow = run(tf, "plan")
    assert grow.returncode == 1 and "Volume is in use" in grow.stderr and name in grow.stderr
    write_config(Path(tf.tfdir), config(vsphere_provider_block, f'virtual_machine = "DC0/vm/{name}"'))
    descriptor = _read_file(vsphere_session, volume["vmdk_path"])
    data = bytes(range(256)) * (4 * MiB // 256)
    _write_flat(vsphere_session, volume["vmdk_path"], data)
    destroyed = run(tf, "destroy", "-auto-approve", "-target=vmdk_volume_attachment.a")
    assert destroyed.returncode == 0, destroyed.stderr
    assert not [d for d in _disks(vsphere_session, vm) if d.backing.fileName == volume["vmdk_path"]]
    assert f"volume-{volume['id']}" not in _extra(vsphere_session, vm)
    assert _read_file(vsphere_session, volume["vmdk_path"]) == descriptor
    flat = volume["vmdk_path"][: -len(".vmdk")] + "-flat.vmdk"
    assert _read_file(vsphere_session, flat)[: len(data)] == data
    assert run(tf, "destroy", "-auto-approve").returncode == 0


def test_powered_on_vms_take_scsi_hot_adds_and_refuse_ide(make_tf, vsphere_provider_block, vsphere_session) -> None:
    name = f"running-{uuid.uuid4().hex[:8]}"
    vm = _make_vm(vsphere_session, name, power_on=True)
    try:
        uuid_ = vsphere_session.get_properties(vm, ["config.instanceUuid"])["config.instanceUuid"]
        tf = make_tf(config(vsphere_provider_block, f'virtual_machine_id = "{uuid_}"'))
        applied = run(tf, "apply", "-auto-approve")
        assert applied.returncode == 0, applied.stderr
        assert tf.output()["attachment"]["id"] == f"{uuid_}:{tf.output()['volume']['id']}"
        before = len(_disks(vsphere_session, vm))
        ide = make_tf(config(vsphere_provider_block, f'virtual_machine_id = "{uuid_}"',
                             extra='  adapter_type = "ide"\n'), name="ide")
        refused = run(ide, "apply", "-auto-approve")
        assert refused.returncode == 1 and "IDE disks cannot be hot-added" in refused.stderr
        assert "adapter_type" in refused.stderr and not any(b in refused.stderr for b in BAD)
        assert run(ide, "destroy", "-auto-approve").returncode == 0
        assert len(_disks(vsphere_session, vm)) == before  # nothing written to the VM
        assert run(tf, "destroy", "-auto-approve").returncode == 0
    finally:
        _drop_vm(vsphere_session, vm)


def test_a_volume_attached_elsewhere_is_refused(make_tf, vsphere_provider_block, vsphere_session, instance) -> None:
    name, _vm_a = instance
    other = f"other-{uuid.uuid4().hex[:8]}"
    vm_b = _make_vm(vsphere_session, other)
    try:
        tf = make_tf(config(vsphere_provider_block, f'virtual_machine = "DC0/vm/{name}"') + f"""
resource "vmdk_volume_attachment" "b" {{
  volume_id       = vmdk_volume.v.id
  virtual_machine = "DC0/vm/{other}"
  depends_on      = [vmdk_volume_attachment.a]
}}
""")
        applied = run(tf, "apply", "-auto-approve")
        assert applied.returncode == 1 and "The volume is attached elsewhere" in applied.stderr
        assert name in applied.stderr and not _disks(vsphere_session, vm_b)
        assert run(tf, "destroy", "-auto-approve").returncode == 0
    finally:
        _drop_vm(vsphere_session, vm_b)


def test_a_volume_the_vms_host_cannot_see_moves_first(make_tf, vsphere_provider_block, vsphere_session) -> None:
    """ds-small is mounted on DC0_C0_H0 alone: a VM in cluster DC0_C1 cannot see it (Cinder moves the volume)."""
    name = f"c1-{uuid.uuid4().hex[:8]}"
    vm = _make_vm(vsphere_session, name, cluster="DC0_C1", datastore="ds-c1")
    try:
        tf = make_tf(vsphere_provider_block + 'resource "vmdk_volume" "v" {\n  name = "small"\n  size_gb = 1\n'
                     '  datastore = "ds-small"\n}\n')
        tf.apply()
        body = config(vsphere_provider_block, f'virtual_machine = "DC0/vm/{name}"')
        write_config(Path(tf.tfdir), body.replace('  allow_relocation', '  allow_relocation') + "")
        write_config(Path(tf.tfdir), body.replace("}\nresource \"vmdk_volume_attachment\"",
                                                  "}\nresource \"vmdk_volume_attachment\"", 1)
                     .replace('name    = "attached"', 'name    = "small"')
                     .replace("{\n  volume_id = vmdk_volume.v.id", "{\n  allow_relocation = false\n"
                              "  volume_id = vmdk_volume.v.id"))
        refused = run(tf, "apply", "-auto-approve")
        said = refused.stdout + refused.stderr
        assert "cannot see the volume's datastore (apply refuses it)" in said  # the plan says so
        assert refused.returncode == 1 and "allow_relocation" in refused.stderr
        write_config(Path(tf.tfdir), body.replace('name    = "attached"', 'name    = "small"'))
        planned = run(tf, "plan")
        assert planned.returncode == 0 and "The volume moves before it is attached" in planned.stdout + planned.stderr
        applied = run(tf, "apply", "-auto-approve")
        assert applied.returncode == 0, applied.stderr
        out = tf.output()
        assert out["volume"]["datastore"] != "ds-small" or run(tf, "refresh").returncode == 0
        assert run(tf, "plan", "-detailed-exitcode").returncode == 0
        assert tf.output()["volume"]["datastore"] in ("ds-big", "ds-c1", "LocalDS_0")
        assert run(tf, "destroy", "-auto-approve").returncode == 0
    finally:
        _drop_vm(vsphere_session, vm)


def test_detach_after_the_vm_moved_the_disk_consolidates(make_tf, vsphere_provider_block, vsphere_session,
                                                        instance) -> None:
    """Storage vMotion of the VM moves the volume's file with it: detach makes the shadow VM follow the file
    (Nova's consolidation), keeps every byte and leaves no stale file."""
    from pyVmomi import vim

    name, vm = instance
    tf = make_tf(config(vsphere_provider_block, f'virtual_machine = "DC0/vm/{name}"'))
    tf.apply()
    volume = tf.output()["volume"]
    data = bytes(range(256)) * (MiB // 256)
    _write_flat(vsphere_session, volume["vmdk_path"], data)
    target = next(i.obj for i in vsphere_session.retrieve(vim.Datastore, ["name"]) if i.props["name"] == "ds-c0")
    vsphere_session.run_task(vm.RelocateVM_Task, spec=vim.vm.RelocateSpec(datastore=target))
    moved = [d.backing.fileName for d in _disks(vsphere_session, vm)]
    assert moved and moved[0] != volume["vmdk_path"] and moved[0].startswith("[ds-c0]")
    planned = run(tf, "plan")
    assert "The VM's copy of the volume moved" in planned.stdout + planned.stderr
    destroyed = run(tf, "destroy", "-auto-approve", "-target=vmdk_volume_attachment.a")
    assert destroyed.returncode == 0 and not any(b in destroyed.stdout + destroyed.stderr for b in BAD), \
        destroyed.stderr
    assert not _disks(vsphere_session, vm)
    assert run(tf, "refresh").returncode == 0
    now = tf.output()["volume"]
    assert now["vmdk_path"] == moved[0] and now["datastore"] == "ds-c0"
    flat = now["vmdk_path"][: -len(".vmdk")] + "-flat.vmdk"
    assert _read_file(vsphere_session, flat)[: len(data)] == data
    assert run(tf, "destroy", "-auto-approve").returncode == 0


def test_a_snapshot_of_the_vm_blocks_detach(make_tf, vsphere_provider_block, vsphere_session, instance) -> None:
    name, vm = instance
    tf = make_tf(config(vsphere_provider_block, f'virtual_machine = "DC0/vm/{name}"'))
    tf.apply()
    vsphere_session.run_task(vm.CreateSnapshot_Task, name="nightly", description="", memory=False, quiesce=False)
    refused = run(tf, "destroy", "-auto-approve", "-target=vmdk_volume_attachment.a")
    assert refused.returncode == 1 and "A snapshot of the VM holds the volume" in refused.stderr
    assert len(_disks(vsphere_session, vm)) == 1
    vsphere_session.run_task(vm.RemoveAllSnapshots_Task)
    assert run(tf, "destroy", "-auto-approve").returncode == 0


def test_import_and_a_vm_destroyed_outside_terraform(make_tf, vsphere_provider_block, vsphere_session) -> None:
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    vm = _make_vm(vsphere_session, name)
    uuid_ = vsphere_session.get_properties(vm, ["config.instanceUuid"])["config.instanceUuid"]
    tf = make_tf(config(vsphere_provider_block, f'virtual_machine_id = "{uuid_}"'))
    tf.apply()
    volume = tf.output()["volume"]
    importer = make_tf(vsphere_provider_block + f"""
resource "vmdk_volume_attachment" "a" {{
  volume_id          = "{volume['id']}"
  virtual_machine_id = "{uuid_}"
}}
""", name="importer")
    imported = run(importer, "import", "vmdk_volume_attachment.a", f"{uuid_}:{volume['id']}")
    assert imported.returncode == 0, imported.stderr
    assert run(importer, "plan", "-detailed-exitcode").returncode == 0
    assert run(importer, "state", "rm", "vmdk_volume_attachment.a").returncode == 0
    vsphere_session.run_task(vm.Destroy_Task)  # vSphere destroys the disks a VM holds: the volume's VMDK too
    planned = run(tf, "plan", "-no-color")
    said = planned.stdout + planned.stderr
    assert planned.returncode == 0 and not any(b in said for b in BAD), said
    assert "The volume's disk is gone" in said and "must be replaced" in said, said
    assert run(tf, "destroy", "-auto-approve").returncode == 0


def test_the_example_module_with_terraform_test(vcsim, tf_env, tmp_path, terraform_binary) -> None:
    """examples/modules/volume-attachment's own `terraform test` file, against our simulator."""
    import json
    import os
    import shutil
    import subprocess

    from .conftest import REPO

    version = subprocess.run([terraform_binary, "version", "-json"], capture_output=True, text=True, env=tf_env)
    found = json.loads(version.stdout or "{}").get("terraform_version", "1.0.3")
    if tuple(int(p) for p in found.split(".")[:2]) < (1, 6):
        pytest.skip(f"terraform test needs Terraform >= 1.6 (this is {found}); the newer binary runs it")
    module = tmp_path / "module"
    shutil.copytree(REPO / "examples" / "modules" / "volume-attachment", module)
    env = {**os.environ, **tf_env, "VSPHERE_SERVER": vcsim.server, "VSPHERE_USER": vcsim.user,
           "VSPHERE_PASSWORD": vcsim.password, "VSPHERE_CA_FILE": vcsim.ca_file}
    init = subprocess.run([terraform_binary, "init", "-no-color"], cwd=module, env=env, capture_output=True,
                          text=True, timeout=300)
    assert init.returncode == 0, init.stdout + init.stderr
    test = subprocess.run([terraform_binary, "test", "-no-color", "-var", "vm_path=DC0/vm/DC0_C0_RP0_VM0"],
                          cwd=module, env=env, capture_output=True, text=True, timeout=600)
    assert test.returncode == 0, test.stdout + test.stderr
