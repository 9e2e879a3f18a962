"""Data in and out through real Terraform against vcsim: volumes from images of each kind, exports, backups
and restores, adopted VMDKs, volumes OpenStack Cinder made, reverts — and the bad inputs of each.

Test images are made by qemu-img (Debian's qemu-utils) from one raw file of known bytes; every round trip
is checked with ``qemu-img compare`` against that raw file (a volume is bigger than its image: the rest of
the disk must read as zeros), so "byte-identical" is decided by a well-kept tool, not by us.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from .conftest import run, write_config

pytestmark = pytest.mark.acceptance
MiB = 1 << 20


def qemu_img(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is missing: scripts/setup.sh installs Debian's qemu-utils")
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True)


def make_raw(path: Path, mib: int, seed: int) -> Path:
    """Known bytes with holes: random, repeated and zero MiBs."""
    rnd = hashlib.sha256(str(seed).encode()).digest()
    with path.open("wb") as fh:
        for i in range(mib):
            if i % 3 == 0:
                fh.write(os.urandom(MiB))
            elif i % 3 == 1:
                fh.write(rnd * (MiB // len(rnd)))
            else:
                fh.write(b"\0" * MiB)
    return path


def convert(raw: Path, subformat: str) -> Path:
    out = raw.with_name(f"{raw.stem}-{subformat}.vmdk")
    done = qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", f"subformat={subformat}", str(raw), str(out))
    assert done.returncode == 0, done.stderr
    return out


def same_disk(exported: Path, raw: Path, fmt: str) -> bool:
    """qemu-img compare: the same data (the larger disk's extra part must be zeros)."""
    done = qemu_img("compare", "-f", fmt, "-F", "raw", str(exported), str(raw))
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("images")
    raw = make_raw(work / "disk.raw", 12, 1)
    other = make_raw(work / "other.raw", 6, 2)
    big = work / "big.vmdk"  # a 2 GiB disk in a tiny file
    done = qemu_img("create", "-f", "vmdk", "-o", "subformat=streamOptimized", str(big), "2G")
    assert done.returncode == 0, done.stderr
    return {"raw": raw, "streamOptimized": convert(raw, "streamOptimized"),
            "sparse": convert(raw, "monolithicSparse"), "other": other, "big": big}


def tf_path(path: Path) -> str:
    return json.dumps(str(path))


def diagnostic_of(stderr: str, address: str) -> str:
    """The one error block Terraform printed for ``address`` (it quotes the attribute's configuration line)."""
    blocks = [b for b in stderr.split("╷") if f"with {address}," in b]
    assert len(blocks) == 1, (address, stderr)
    return blocks[0]


def state_ids(tf) -> list[str]:
    return sorted(run(tf, "state", "list").stdout.split())


# ------------------------------------------------------------------------------------------------ images
def test_volumes_from_images_of_each_kind_and_exports(make_tf, vsphere_provider_block, images, tmp_path,
                                                      scan_backings) -> None:
    before = set(scan_backings())
    out = tmp_path / "out"
    raw = tf_path(images["raw"])
    body = vsphere_provider_block + f"""
resource "vmdk_volume" "so" {{
  name    = "from-stream-optimized"
  size_gb = 1
  image {{
    source    = {tf_path(images["streamOptimized"])}
    disk_type = "streamOptimized"
    sha256    = "{sha256(images["streamOptimized"])}"
  }}
}}
resource "vmdk_volume" "sparse" {{
  name      = "from-sparse"
  size_gb   = 2
  disk_type = "thick"
  image {{
    source    = {tf_path(images["sparse"])}
    disk_type = "sparse"
  }}
}}
resource "vmdk_volume" "pre" {{
  name         = "from-preallocated"
  size_gb      = 1
  disk_type    = "thick"
  adapter_type = "paraVirtual"
  image {{
    source    = "file://{images["raw"]}"
    disk_type = "preallocated"
  }}
}}
resource "vmdk_volume" "thin" {{
  name    = "from-thin"
  size_gb = 1
  image {{
    source    = {raw}
    disk_type = "thin"
  }}
}}
resource "vmdk_volume_export" "so" {{
  volume_id = vmdk_volume.so.id
  path      = "{out}/so.vmdk"
}}
resource "vmdk_volume_export" "sparse" {{
  volume_id = vmdk_volume.sparse.id
  path      = "{out}/sparse.flat"
  format    = "flat"
}}
resource "vmdk_volume_export" "pre" {{
  volume_id = vmdk_volume.pre.id
  path      = "{out}/pre.flat"
  format    = "flat"
}}
resource "vmdk_volume_export" "thin" {{
  volume_id = vmdk_volume.thin.id
  path      = "{out}/thin.vmdk"
  format    = "streamOptimized"
}}
output "volumes" {{
  value = {{ for k, v in {{ so = vmdk_volume.so, sparse = vmdk_volume.sparse, pre = vmdk_volume.pre,
                           thin = vmdk_volume.thin }} : k => [v.size_gb, v.disk_type, v.adapter_type] }}
}}
output "exports" {{
  value = {{ for k, e in {{ so = vmdk_volume_export.so, sparse = vmdk_volume_export.sparse,
                           pre = vmdk_volume_export.pre, thin = vmdk_volume_export.thin }} :
            k => [e.sha256, e.size_bytes] }}
}}
"""
    tf = make_tf(body)
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stderr
    outputs = tf.output()
    assert outputs["volumes"] == {"so": [1, "thin", "lsiLogic"], "sparse": [2, "thick", "lsiLogic"],
                                  "pre": [1, "thick", "paraVirtual"], "thin": [1, "thin", "lsiLogic"]}
    for name, fmt in (("so.vmdk", "vmdk"), ("sparse.flat", "raw"), ("pre.flat", "raw"), ("thin.vmdk", "vmdk")):
        assert same_disk(out / name, images["raw"], fmt), name
        digest, size = outputs["exports"][name.split(".")[0]]
        assert digest == sha256(out / name) and size == (out / name).stat().st_size
    assert (out / "sparse.flat").stat().st_size == 2 << 30  # the volume grew to size_gb; the image did not
    assert not list(out.glob(".*partial"))
    assert "No changes" in run(tf, "plan").stdout

    # an export changed outside Terraform is drift: the plan replaces it, the next apply writes it again
    (out / "pre.flat").write_bytes(b"tampered")
    plan = tf.plan(output=True)
    assert plan.resource_changes["vmdk_volume_export.pre"]["change"]["actions"] == ["delete", "create"]
    tf.apply()
    assert same_disk(out / "pre.flat", images["raw"], "raw")

    # a new image is a new volume
    write_config(Path(tf.tfdir), body.replace(raw, tf_path(images["other"])))
    plan = tf.plan(output=True)
    assert plan.resource_changes["vmdk_volume.thin"]["change"]["actions"] == ["delete", "create"]

    tf.destroy(auto_approve=True)
    assert not list(out.iterdir())  # delete removes the files
    assert set(scan_backings()) == before


def test_bad_images_are_errors_on_their_attribute_and_leave_nothing(make_tf, vsphere_provider_block, images,
                                                                    tmp_path, scan_backings) -> None:
    before = set(scan_backings())
    cases = {
        "missing": ('source = "/nonexistent/disk.vmdk"\n    disk_type = "streamOptimized"', "image.source",
                    "Image not found"),
        "checksum": (f'source = {tf_path(images["streamOptimized"])}\n    disk_type = "streamOptimized"\n'
                     f'    sha256 = "{"0" * 64}"', "image.sha256", "Image checksum mismatch"),
        "kind": (f'source = {tf_path(images["streamOptimized"])}\n    disk_type = "sparse"', "image.disk_type",
                 "The image is not of its disk_type"),
        "raw_as_vmdk": (f'source = {tf_path(images["raw"])}\n    disk_type = "streamOptimized"', "image.disk_type",
                        "The image is not of its disk_type"),
        "too_big": (f'source = {tf_path(images["big"])}\n    disk_type = "streamOptimized"', "size_gb",
                    "size_gb is smaller than the data"),
    }
    body = vsphere_provider_block + "".join(
        f'resource "vmdk_volume" "{name}" {{\n  name = "{name}"\n  size_gb = 1\n  image {{\n    {image}\n  }}\n}}\n'
        for name, (image, _, _) in cases.items())
    tf = make_tf(body)
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 1
    err = result.stderr
    for name, (_, attribute, summary) in cases.items():
        block = diagnostic_of(err, f"vmdk_volume.{name}")
        assert summary in block and f"{attribute.split('.')[-1]} = " in block, (name, block)  # on its attribute
    assert "Traceback" not in err
    assert state_ids(tf) == []  # nothing was created, so nothing is in state
    assert set(scan_backings()) == before

    # a kind that is not an image disk type: a plan error on the attribute
    tf2 = make_tf(vsphere_provider_block + 'resource "vmdk_volume" "q" {\n  name = "q"\n  size_gb = 1\n  image {\n'
                  f'    source = {tf_path(images["raw"])}\n    disk_type = "qcow2"\n  }}\n}}\n', name="qcow2")
    result = run(tf2, "plan")
    assert result.returncode == 1 and "qcow2" in result.stderr and "disk_type" in result.stderr, result.stderr
    # two sources at once
    tf3 = make_tf(vsphere_provider_block + 'resource "vmdk_volume" "two" {\n  name = "two"\n  size_gb = 1\n'
                  '  source_volume_id = "6b0c5c1e-2f4e-4d8a-9c3b-0e5f7a1d2c3b"\n  image {\n'
                  f'    source = {tf_path(images["raw"])}\n    disk_type = "thin"\n  }}\n}}\n', name="two")
    result = run(tf3, "plan")
    assert result.returncode == 1 and "Conflicting sources" in result.stderr, result.stderr


# ------------------------------------------------------------------------------------------- backups
def test_backup_new_volume_and_restore(make_tf, vsphere_provider_block, images, tmp_path, scan_backings) -> None:
    before = set(scan_backings())
    backups, out = tmp_path / "backups", tmp_path / "out"
    base = vsphere_provider_block + f"""
resource "vmdk_volume" "src" {{
  name         = "src"
  size_gb      = 1
  adapter_type = "busLogic"
  image {{
    source    = {tf_path(images["raw"])}
    disk_type = "preallocated"
  }}
}}
resource "vmdk_volume_backup" "b" {{
  volume_id = vmdk_volume.src.id
  path      = "{backups}/src-1"
}}
resource "vmdk_volume" "copy" {{
  name    = "copy"
  size_gb = vmdk_volume_backup.b.size_gb
  backup {{
    path = vmdk_volume_backup.b.path
  }}
}}
resource "vmdk_volume_export" "copy" {{
  volume_id = vmdk_volume.copy.id
  path      = "{out}/copy.flat"
  format    = "flat"
}}
resource "vmdk_volume" "target" {{
  name    = "target"
  size_gb = 1
  image {{
    source    = {tf_path(images["other"])}
    disk_type = "thin"
  }}
}}
output "backup" {{ value = vmdk_volume_backup.b }}
output "target_id" {{ value = vmdk_volume.target.id }}
"""
    tf = make_tf(base)
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stderr
    backup = tf.output()["backup"]
    manifest = json.loads((backups / "src-1" / "manifest.json").read_text())
    assert backup["sha256"] == manifest["sha256"] == sha256(backups / "src-1" / "disk.vmdk")
    assert (backup["size_gb"], backup["disk_type"], backup["adapter_type"]) == (1, "thin", "busLogic")
    assert same_disk(backups / "src-1" / "disk.vmdk", images["raw"], "vmdk")
    assert same_disk(out / "copy.flat", images["raw"], "raw")  # image -> volume -> backup -> volume: identical

    # restore onto a volume that has a snapshot: refused, with Cinder's reason, on volume_id
    snap = 'resource "vmdk_snapshot" "s" {\n  volume_id = vmdk_volume.target.id\n  name = "s"\n  format = "COW"\n}\n'
    restore = f"""
resource "vmdk_volume_restore" "r" {{
  volume_id   = vmdk_volume.target.id
  backup_path = vmdk_volume_backup.b.path
  triggers    = {{ n = "1" }}
}}
resource "vmdk_volume_export" "target" {{
  volume_id  = vmdk_volume.target.id
  path       = "{out}/target.flat"
  format     = "flat"
  depends_on = [vmdk_volume_restore.r]
}}
output "restored_at" {{ value = vmdk_volume_restore.r.restored_at }}
"""
    write_config(Path(tf.tfdir), base + snap)
    tf.apply()
    write_config(Path(tf.tfdir), base + snap + restore)
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 1 and "Volume has snapshots" in result.stderr, result.stderr
    assert "volume_id" in result.stderr and "Traceback" not in result.stderr
    assert "vmdk_volume_restore.r" not in state_ids(tf)

    # without the snapshot it restores: the volume keeps its id and holds the backup's bytes
    write_config(Path(tf.tfdir), base)
    tf.apply()
    write_config(Path(tf.tfdir), base + restore)
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stderr
    assert same_disk(out / "target.flat", images["raw"], "raw")
    first = tf.output()["restored_at"]
    assert "No changes" in run(tf, "plan").stdout
    # a new trigger restores again (an in-place update)
    write_config(Path(tf.tfdir), base + restore.replace('n = "1"', 'n = "2"'))
    plan = tf.plan(output=True)
    assert plan.resource_changes["vmdk_volume_restore.r"]["change"]["actions"] == ["update"]
    tf.apply()
    assert tf.output()["restored_at"] >= first

    # a backup directory is importable by its path (what its manifest says)
    imported = make_tf(vsphere_provider_block + f'resource "vmdk_volume_backup" "b" {{\n  volume_id = '
                       f'"{backup["volume_id"]}"\n  path = "{backups}/src-1"\n}}\n', name="imported")
    result = run(imported, "import", "vmdk_volume_backup.b", f"{backups}/src-1")
    assert result.returncode == 0, result.stderr
    assert "No changes" in run(imported, "plan").stdout
    assert run(imported, "state", "rm", "vmdk_volume_backup.b").returncode == 0

    tf.destroy(auto_approve=True)
    assert not (backups / "src-1").exists()  # delete removed the backup
    assert set(scan_backings()) == before


def test_bad_backups_and_restores(make_tf, vsphere_provider_block, tmp_path, scan_backings) -> None:
    before = set(scan_backings())
    empty = tmp_path / "empty"
    empty.mkdir()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "disk.vmdk").write_bytes(b"not the disk")
    (damaged / "manifest.json").write_text(json.dumps({"format": "vmdk-backup-1", "sha256": "0" * 64,
                                                       "capacity_bytes": 1 << 30}))
    body = vsphere_provider_block + f"""
resource "vmdk_volume" "none" {{
  name    = "none"
  size_gb = 1
  backup {{
    path = "{empty}"
  }}
}}
resource "vmdk_volume" "damaged" {{
  name    = "damaged"
  size_gb = 1
  backup {{
    path = "{damaged}"
  }}
}}
resource "vmdk_volume_restore" "missing_volume" {{
  volume_id   = "{uuid.uuid4()}"
  backup_path = "{damaged}"
}}
"""
    tf = make_tf(body)
    result = run(tf, "apply", "-auto-approve")
    err = result.stderr
    assert result.returncode == 1 and "Backup not found" in err and "Backup damaged" in err, err
    assert "backup.path" in err or "path" in err
    assert "Traceback" not in err and state_ids(tf) == []
    assert run(tf, "import", "vmdk_volume_backup.x", str(empty)).returncode == 1
    assert set(scan_backings()) == before


# --------------------------------------------------------------------------------------------- adopt
def _upload_flat_vmdk(vsphere_session, raw: Path, datastore: str, directory: str) -> str:
    """A monolithicFlat VMDK (qemu-img) put on a datastore as disk.vmdk + disk-flat.vmdk: its path."""
    from terraform_provider_vmdk.vsphere.connection import transfer

    descriptor = convert(raw, "monolithicFlat")
    extent = descriptor.with_name(descriptor.stem + "-flat.vmdk")
    text = descriptor.read_bytes().replace(extent.name.encode(), b"disk-flat.vmdk")
    content = vsphere_session.content
    dc = content.rootFolder.childEntity[0]
    content.fileManager.MakeDirectory(name=f"[{datastore}] {directory}", datacenter=dc,
                                      createParentDirectories=True)
    transfer.upload_file(vsphere_session, dc.name, datastore, f"{directory}/disk-flat.vmdk",
                         lambda: extent.open("rb"), extent.stat().st_size)
    transfer.upload_file(vsphere_session, dc.name, datastore, f"{directory}/disk.vmdk",
                         lambda: io.BytesIO(text), len(text))
    return f"[{datastore}] {directory}/disk.vmdk"


def _vm_disks(vsphere_session, name: str) -> list[str]:
    from pyVmomi import vim

    vm = next(item.obj for item in vsphere_session.retrieve(vim.VirtualMachine, ["name"]) if item.props["name"] == name)
    devices = vsphere_session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
    return [d.backing.fileName for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]


def _attach(vsphere_session, vm_name: str, path: str, capacity_kb: int) -> None:
    from pyVmomi import vim

    vm = next(item.obj for item in vsphere_session.retrieve(vim.VirtualMachine, ["name"])
              if item.props["name"] == vm_name)
    devices = vsphere_session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
    controller = next(d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController))
    used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller.key}
    disk = vim.vm.device.VirtualDisk(
        key=-1, controllerKey=controller.key, unitNumber=next(u for u in range(16) if u not in used and u != 7),
        capacityInKB=capacity_kb,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=path, diskMode="persistent",
                                                              thinProvisioned=False))
    spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=disk)])
    vsphere_session.run_task(vm.ReconfigVM_Task, spec=spec)


def test_adopt_existing_vmdks(make_tf, vsphere_provider_block, vsphere_session, images, tmp_path,
                              scan_backings) -> None:
    before = set(scan_backings())
    tag = uuid.uuid4().hex[:8]
    loose = _upload_flat_vmdk(vsphere_session, images["raw"], "ds-big", f"legacy-{tag}/loose")
    attached = _upload_flat_vmdk(vsphere_session, images["other"], "ds-big", f"legacy-{tag}/attached")
    consumer = "DC0_C0_RP0_VM0"
    _attach(vsphere_session, consumer, attached, 6 * 1024)
    out = tmp_path / "out"
    good = f"""
resource "vmdk_volume" "loose" {{
  name      = "loose"
  size_gb   = 1
  disk_type = "thick"
  adopt {{
    vmdk_path = "{loose}"
  }}
}}
resource "vmdk_volume" "attached" {{
  name      = "attached"
  size_gb   = 1
  disk_type = "thick"
  adopt {{
    vmdk_path = "{attached}"
    vm        = "DC0/vm/{consumer}"
  }}
}}
resource "vmdk_volume_export" "loose" {{
  volume_id = vmdk_volume.loose.id
  path      = "{out}/loose.flat"
  format    = "flat"
}}
resource "vmdk_volume_export" "attached" {{
  volume_id = vmdk_volume.attached.id
  path      = "{out}/attached.flat"
  format    = "flat"
}}
output "paths" {{ value = [vmdk_volume.loose.vmdk_path, vmdk_volume.attached.vmdk_path] }}
output "ids" {{ value = [vmdk_volume.loose.id, vmdk_volume.attached.id] }}
"""
    bad = f"""
resource "vmdk_volume" "no_file" {{
  name      = "no-file"
  size_gb   = 1
  disk_type = "thick"
  adopt {{
    vmdk_path = "[ds-big] legacy-{tag}/nothing.vmdk"
  }}
}}
resource "vmdk_volume" "no_vm" {{
  name      = "no-vm"
  size_gb   = 1
  disk_type = "thick"
  adopt {{
    vmdk_path = "{loose}"
    vm        = "DC0/vm/no-such-vm"
  }}
}}
resource "vmdk_volume" "wrong_type" {{
  name      = "wrong-type"
  size_gb   = 1
  disk_type = "thin"
  adopt {{
    vmdk_path = "{loose}"
  }}
}}
resource "vmdk_volume" "in_use" {{
  name      = "in-use"
  size_gb   = 1
  disk_type = "thick"
  adopt {{
    vmdk_path = "{attached}"
  }}
}}
resource "vmdk_volume" "not_a_path" {{
  name      = "not-a-path"
  size_gb   = 1
  disk_type = "thick"
  adopt {{
    vmdk_path = "legacy/disk.vmdk"
  }}
}}
"""
    try:
        tf = make_tf(vsphere_provider_block + bad)
        result = run(tf, "apply", "-auto-approve")
        err = result.stderr
        assert result.returncode == 1 and "Traceback" not in err
        for summary in ("VMDK not found", "VM not found", "disk_type differs from the VMDK's", "VMDK in use",
                        "Invalid VMDK path"):
            assert summary in err, (summary, err)
        assert state_ids(tf) == [] and set(scan_backings()) == before
        assert attached in _vm_disks(vsphere_session, consumer)  # untouched

        tf = make_tf(vsphere_provider_block + good, name="good")
        result = run(tf, "apply", "-auto-approve")
        assert result.returncode == 0, result.stderr
        ids = tf.output()["ids"]
        assert tf.output()["paths"] == [f"[ds-big] volume-{i}/volume-{i}.vmdk" for i in ids]
        assert attached not in _vm_disks(vsphere_session, consumer)  # detached from the VM first
        assert same_disk(out / "loose.flat", images["raw"], "raw")  # the data came along
        assert same_disk(out / "attached.flat", images["other"], "raw")
        assert "No changes" in run(tf, "plan").stdout
        tf.destroy(auto_approve=True)
        assert set(scan_backings()) == before
    finally:
        if attached in _vm_disks(vsphere_session, consumer):
            _detach(vsphere_session, consumer, attached)


def _detach(vsphere_session, vm_name: str, path: str) -> None:
    from pyVmomi import vim

    vm = next(item.obj for item in vsphere_session.retrieve(vim.VirtualMachine, ["name"])
              if item.props["name"] == vm_name)
    devices = vsphere_session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
    disk = next(d for d in devices if isinstance(d, vim.vm.device.VirtualDisk) and d.backing.fileName == path)
    spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="remove", device=disk)])
    vsphere_session.run_task(vm.ReconfigVM_Task, spec=spec)


# ------------------------------------------------------------------------------ volumes Cinder made
def _cinder_backing(vsphere_session, volume_id: str) -> None:
    """A shadow VM as OpenStack Cinder's VMDK driver makes it: volume-<id>, instanceUuid and the
    cinder.volume.id mark, one thin disk, in its own folder."""
    from pyVmomi import vim

    content = vsphere_session.content
    dc = content.rootFolder.childEntity[0]
    pool = next(item.obj for item in vsphere_session.retrieve(vim.ClusterComputeResource, ["name"])
                if item.props["name"] == "DC0_C0").resourcePool
    name = f"volume-{volume_id}"
    controller = vim.vm.device.VirtualLsiLogicController(key=1000, busNumber=0, sharedBus="noSharing")
    disk = vim.vm.device.VirtualDisk(
        key=-100, controllerKey=1000, unitNumber=0, capacityInKB=1 << 20,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName="[ds-big]", diskMode="persistent",
                                                              thinProvisioned=True))
    spec = vim.vm.ConfigSpec(
        name=name, guestId="otherGuest", numCPUs=1, memoryMB=128, instanceUuid=volume_id,
        files=vim.vm.FileInfo(vmPathName="[ds-big]"),
        extraConfig=[vim.option.OptionValue(key="cinder.volume.id", value=volume_id)],
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=controller),
                      vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)])
    vsphere_session.run_task(dc.vmFolder.CreateVM_Task, config=spec, pool=pool)


def test_import_a_volume_openstack_cinder_made(make_tf, vsphere_provider_block, vsphere_session,
                                               scan_backings) -> None:
    from pyVmomi import vim

    from terraform_provider_vmdk.vsphere.volumes.backing import extra_config_dict, is_ours

    before = set(scan_backings())
    volume_id = str(uuid.uuid4())
    _cinder_backing(vsphere_session, volume_id)
    body = vsphere_provider_block + ('resource "vmdk_volume" "v" {\n  name = "from-openstack"\n  size_gb = 1\n'
                                     '}\noutput "name" { value = vmdk_volume.v.backing_name }\n')
    tf = make_tf(body)
    result = run(tf, "import", "vmdk_volume.v", volume_id)
    assert result.returncode == 0, result.stderr
    vm = vsphere_session.content.searchIndex.FindByUuid(None, volume_id, True, True)
    marks = extra_config_dict(vsphere_session.get_properties(vm, ["config.extraConfig"])["config.extraConfig"])
    assert not is_ours(marks)  # import only reads
    plan_text = run(tf, "plan").stdout
    assert "The volume was made by OpenStack Cinder" in plan_text and "update in-place" in plan_text, plan_text
    tf.apply()
    marks = extra_config_dict(vsphere_session.get_properties(vm, ["config.extraConfig"])["config.extraConfig"])
    assert is_ours(marks) and marks["cinder.volume.id"] == volume_id  # ours now; Cinder's mark kept
    assert tf.output()["name"] == f"volume-{volume_id}"
    assert "No changes" in run(tf, "plan").stdout
    # an id that names nothing: a clear error
    tf2 = make_tf(body, name="unknown")
    result = run(tf2, "import", "vmdk_volume.v", str(uuid.uuid4()))
    assert result.returncode == 1 and "No volume with id" in result.stderr and "Traceback" not in result.stderr
    tf.destroy(auto_approve=True)
    assert all(item.props["name"] != f"volume-{volume_id}"
               for item in vsphere_session.retrieve(vim.VirtualMachine, ["name"]))
    assert set(scan_backings()) == before


# --------------------------------------------------------------------------------------------- revert
def test_revert_to_a_snapshot(make_tf, vsphere_provider_block, scan_backings) -> None:
    before = set(scan_backings())
    base = vsphere_provider_block + """
resource "vmdk_volume" "v" {
  name    = "reverted"
  size_gb = 1
}
resource "vmdk_snapshot" "cow" {
  volume_id = vmdk_volume.v.id
  name      = "cow"
  format    = "COW"
}
resource "vmdk_snapshot" "tpl" {
  volume_id = vmdk_volume.v.id
  name      = "tpl"
  format    = "template"
}
"""
    revert = """
resource "vmdk_snapshot_revert" "r" {
  snapshot_id = vmdk_snapshot.cow.id
  triggers    = { n = "1" }
}
output "revert" { value = vmdk_snapshot_revert.r }
output "volume_id" { value = vmdk_volume.v.id }
"""
    bad = """
resource "vmdk_snapshot_revert" "template" {
  snapshot_id = vmdk_snapshot.tpl.id
}
resource "vmdk_snapshot_revert" "missing" {
  snapshot_id = "6b0c5c1e-2f4e-4d8a-9c3b-0e5f7a1d2c3b"
}
"""
    tf = make_tf(base + bad)
    result = run(tf, "apply", "-auto-approve")
    err = result.stderr
    assert result.returncode == 1 and "A template snapshot cannot be reverted to" in err and "Snapshot not found" in err
    assert "snapshot_id" in err and "Traceback" not in err
    write_config(Path(tf.tfdir), base + revert)
    tf.apply()
    out = tf.output()
    assert out["revert"]["volume_id"] == out["volume_id"] and out["revert"]["reverted_at"]
    assert "No changes" in run(tf, "plan").stdout
    write_config(Path(tf.tfdir), base + revert.replace('n = "1"', 'n = "2"'))
    plan = tf.plan(output=True)
    assert plan.resource_changes["vmdk_snapshot_revert.r"]["change"]["actions"] == ["update"]
    tf.apply()
    assert run(tf, "import", "vmdk_snapshot_revert.x", "anything").returncode == 1
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before
