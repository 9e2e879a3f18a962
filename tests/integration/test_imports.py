"""Disk data in and out against the test vCenter: images of each kind into new volumes, the bytes back out.

Test images are made by qemu-img (Debian's qemu-utils) from one raw file of known bytes, so what comes out
can be compared byte for byte with what went in.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from pyVmomi import vim
from soap_capture import SoapCapture
from test_volumeops import GiB, file_exists, vm_props

from terraform_provider_vmdk.vsphere.exceptions import VMwareDriverError
from terraform_provider_vmdk.vsphere.volumes import specs
from terraform_provider_vmdk.vsphere.volumes.imports import IMAGE_PREALLOCATED, IMAGE_SPARSE, IMAGE_THIN

pytestmark = pytest.mark.integration
MiB = 1 << 20


def qemu_img(*args: str) -> None:
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is missing: scripts/setup.sh installs Debian's qemu-utils")
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """raw (24 MiB of known bytes, with holes) and the same data as streamOptimized and monolithicSparse VMDKs."""
    work = tmp_path_factory.mktemp("images")
    raw = work / "disk.raw"
    with raw.open("wb") as fh:
        for i in range(24):
            fh.write(os.urandom(MiB) if i % 3 == 0 else bytes([i]) * MiB if i % 3 == 1 else b"\0" * MiB)
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", str(raw), str(work / "s.vmdk"))
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", str(raw), str(work / "m.vmdk"))
    return {"raw": raw, "streamOptimized": work / "s.vmdk", "sparse": work / "m.vmdk"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flat_bytes(ops, backing, tmp_path: Path) -> Path:
    out = tmp_path / f"{backing.volume_id}.flat"
    ops.export_flat(backing, lambda: out.open("wb"), what="export")
    return out


@pytest.mark.parametrize("kind, source", [(IMAGE_SPARSE, "sparse"), (IMAGE_PREALLOCATED, "raw"), (IMAGE_THIN, "raw")])
def test_hosted_images_become_the_volume_disk(ops, made, places, images, tmp_path, kind, source):
    vid = str(uuid.uuid4())
    made.ids.add(vid)
    path = images[source]
    backing = ops.create_diskless_backing(vid, "img", None, places[0])
    assert backing.disk is None
    disk_type = specs.DISK_THIN if kind == IMAGE_THIN else specs.DISK_THICK
    with SoapCapture(ops.session.si) as cap:
        backing = ops.import_hosted(backing, image_kind=kind, opener=lambda: path.open("rb"),
                                    size=path.stat().st_size, capacity_bytes=24 * MiB, disk_type=disk_type,
                                    adapter_type="lsiLogic", profile_id=None, what="import")
    # vCenter implements no destination spec: the copy is made "preallocated" (thick), whatever was asked; the
    # volume's own type follows by a retype (volume_sources.finish), as Cinder converts after copy_vmdk_file
    assert cap.last("CopyVirtualDisk_Task").args.get("destSpec") is None
    assert backing.vmdk_path.endswith(f"volume-{vid}.vmdk") and backing.disk_uuid == vid
    assert backing.disk_type == specs.DISK_THICK and backing.size_bytes == 24 * MiB
    out = flat_bytes(ops, backing, tmp_path)
    assert sha(out) == sha(images["raw"])  # byte-identical
    # the upload next to the VM is gone; running it again (an interrupted create) changes nothing
    again = ops.import_hosted(backing, image_kind=kind, opener=lambda: path.open("rb"), size=path.stat().st_size,
                              capacity_bytes=24 * MiB, disk_type=disk_type, adapter_type="lsiLogic", profile_id=None,
                              what="import")
    assert again.vmdk_path == backing.vmdk_path


def test_stream_optimized_import_and_export_round_trip(ops, made, places, images, tmp_path):
    vid = str(uuid.uuid4())
    made.ids.add(vid)
    path = images["streamOptimized"]
    backing = ops.import_stream_optimized(vid, "streamed", "d", opener=lambda: path.open("rb"),
                                          size=path.stat().st_size, capacity_bytes=24 * MiB, disk_type="thin",
                                          adapter_type="paraVirtual", placement=places[0], profile_id=None,
                                          what="import")
    assert backing.volume_id == vid and backing.disk_uuid == vid and backing.adapter_type == "paraVirtual"
    assert vm_props(ops.session, backing.moref, "config.instanceUuid")["config.instanceUuid"] == vid
    assert sha(flat_bytes(ops, backing, tmp_path)) == sha(images["raw"])
    exported = tmp_path / "export.vmdk"
    written = ops.export_stream(backing.moref, lambda: exported.open("wb"), what="export")
    assert written == exported.stat().st_size > 0
    back = tmp_path / "back.raw"
    qemu_img("convert", "-f", "vmdk", "-O", "raw", str(exported), str(back))
    assert sha(back) == sha(images["raw"])


def test_a_failed_upload_aborts_the_import_and_leaves_nothing(ops, made, places, images, vsphere_session):
    vid = str(uuid.uuid4())
    made.ids.add(vid)

    class Broken(io.BytesIO):
        def read(self, n=-1):
            raise OSError("the image file went away")

    with pytest.raises(VMwareDriverError, match="went away"):
        ops.import_stream_optimized(vid, "x", None, opener=lambda: Broken(b""), size=10 * MiB,
                                    capacity_bytes=GiB, disk_type="thin", adapter_type="lsiLogic",
                                    placement=places[0], profile_id=None, what="import")
    assert ops.find_vm(vid) is None  # the lease abort removed the half-imported VM


def test_a_failed_flat_upload_leaves_no_file_behind(vsphere_session, fault_proxy, vcsim, made, places, images):
    """The flat extent uploads, then its descriptor's upload keeps failing: the import fails and neither file
    stays next to the shadow VM (a failed create must not leave a GiB-sized extent behind)."""
    from terraform_provider_vmdk.vsphere.connection.session import Session
    from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
    from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

    session = Session(vcsim.connection_config(server=fault_proxy.server, api_retry_count=1))
    try:
        faulty = VolumeOps(session, Inventory(session))
        vid = str(uuid.uuid4())
        made.ids.add(vid)
        backing = faulty.create_diskless_backing(vid, "img", None, places[0])
        ds, folder = faulty.vm_directory(backing)
        path = images["raw"]
        fault_proxy.inject("http503", "PUT /folder", skip=1, times=None)  # the extent passes, the descriptor never
        with pytest.raises(VMwareDriverError):
            faulty.import_hosted(backing, image_kind=IMAGE_PREALLOCATED, opener=lambda: path.open("rb"),
                                 size=path.stat().st_size, capacity_bytes=24 * MiB, disk_type=specs.DISK_THICK,
                                 adapter_type="lsiLogic", profile_id=None, what="import")
        assert fault_proxy.counts["http503"] >= 1
        for name in (f"image-{vid}-flat.vmdk", f"image-{vid}.vmdk"):
            assert not file_exists(faulty, f"[{ds}] {folder}/{name}"), name
    finally:
        session.logout()



def test_a_copy_an_interrupted_import_left_is_copied_again(ops, made, places, images, tmp_path):
    """vSphere ignores CopyVirtualDisk's force flag (FileAlreadyExists when the destination exists): the copy
    an earlier, interrupted attempt left next to the shadow VM is replaced, and the volume holds the image."""
    vid = str(uuid.uuid4())
    made.ids.add(vid)
    path = images["sparse"]
    backing = ops.create_diskless_backing(vid, "img", None, places[0])
    ds, folder = ops.vm_directory(backing)
    leftover = f"[{ds}] {folder}/volume-{vid}.vmdk"
    vdm = ops.session.content.virtualDiskManager
    spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(diskType="thin", adapterType="lsiLogic", capacityKb=1024)
    ops.session.run_task(vdm.CreateVirtualDisk_Task, name=leftover, datacenter=ops.inventory.datacenter, spec=spec)
    done = ops.import_hosted(backing, image_kind=IMAGE_SPARSE, opener=lambda: path.open("rb"),
                             size=path.stat().st_size, capacity_bytes=24 * MiB, disk_type=specs.DISK_THICK,
                             adapter_type="lsiLogic", profile_id=None, what="import")
    assert done.vmdk_path == leftover and done.size_bytes == 24 * MiB
    assert sha(flat_bytes(ops, done, tmp_path)) == sha(images["raw"])
