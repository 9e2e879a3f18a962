"""Every resource and data path, through real Terraform, against more than our own simulator.

The servers a module author may meet: our simulator (a vCenter that does what vSphere does), a stock vcsim
(govmomi's default inventory as the vcsim command serves it), govmomi's simulator embedded the way Go test
suites run it (no "govmomi simulator" tag to recognise it by), and a standalone ESXi host (the ESX model,
made to refuse what ESXi refuses). On each, the same configuration: volumes (empty, clones, from snapshots,
from images, from a backup), COW and template snapshots, grow, rename, retype, import, exports, a backup
and a restore, a revert, the data sources, destroy. What a server cannot carry out ends in an expected,
named error — never a consistency error, never a traceback.

One Terraform binary per server (the newest found): the protocol paths of both binaries are covered by the
rest of the suite; what differs here is the server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import bundled_terraform, newer_terraform, run, write_config
from .test_data_io import convert, make_raw, same_disk

pytestmark = pytest.mark.acceptance

BAD = ("Traceback", "inconsistent result", "This is a bug in the provider", "Unexpected error")
MODES = ("vcenter", "stock", "untagged", "esx")


@pytest.fixture
def terraform_binary() -> str:
    return newer_terraform() or bundled_terraform()


@pytest.fixture(scope="module", params=MODES)
def server(request: pytest.FixtureRequest) -> Iterator:
    from tests.vcsim.harness import start_vcsim

    sim = start_vcsim(mode=request.param)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def disk_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("matrix-images")
    raw = make_raw(work / "disk.raw", 6, 3)
    return {"raw": raw, "sparse": convert(raw, "monolithicSparse"), "stream": convert(raw, "streamOptimized")}


def provider_block(sim) -> str:
    lines = [f'vsphere_server = "{sim.server}"', f'user = "{sim.user}"', f'password = "{sim.password}"',
             f'ca_file = "{sim.ca_file}"']
    if sim.mode in ("stock", "untagged"):
        lines.append('datastore_types = ["OTHER"]')  # govmomi's model: every datastore is type OTHER
    return 'provider "vmdk" {\n  ' + "\n  ".join(lines) + "\n}\n"


HOLDS_DATA = ("vcenter", "esx")  # stock govmomi keeps no disk data: images, exports and backups cannot work


def configuration(sim, images: dict[str, Path], out: Path, *, size: int = 1, name: str = "data",
                  disk_type: str = "thin") -> str:
    body = core(sim, size=size, name=name, disk_type=disk_type)
    return body + data_paths(images, out) if sim.mode in HOLDS_DATA else body


def core(sim, *, size: int, name: str, disk_type: str) -> str:
    return provider_block(sim) + f"""
resource "vmdk_volume" "data" {{
  name      = "{name}"
  size_gb   = {size}
  disk_type = "{disk_type}"
}}
resource "vmdk_volume" "other" {{
  name    = "other"
  size_gb = 1
}}
resource "vmdk_snapshot" "cow" {{
  volume_id = vmdk_volume.data.id
  name      = "cow"
  format    = "COW"
}}
resource "vmdk_snapshot" "template" {{
  volume_id = vmdk_volume.other.id
  name      = "template"
  format    = "template"
}}
resource "vmdk_volume" "full" {{
  name             = "full"
  size_gb          = 2
  source_volume_id = vmdk_volume.other.id
}}
resource "vmdk_volume" "linked" {{
  name             = "linked"
  size_gb          = 1
  clone_type       = "linked"
  source_volume_id = vmdk_volume.data.id
}}
resource "vmdk_volume" "from_cow" {{
  name               = "from-cow"
  size_gb            = 1
  source_snapshot_id = vmdk_snapshot.cow.id
}}
resource "vmdk_volume" "from_template" {{
  name               = "from-template"
  size_gb            = 1
  source_snapshot_id = vmdk_snapshot.template.id
}}
resource "vmdk_volume" "target" {{
  name    = "target"
  size_gb = 1
}}
data "vmdk_volume" "data" {{
  id = vmdk_volume.data.id
}}
data "vmdk_datastores" "all" {{}}
data "vmdk_volume_stats" "stats" {{}}
output "ids" {{
  value = [vmdk_volume.data.id, vmdk_volume.other.id, vmdk_volume.full.id, vmdk_volume.linked.id,
           vmdk_volume.from_cow.id, vmdk_volume.from_template.id, vmdk_volume.target.id]
}}
output "template_name" {{ value = vmdk_snapshot.template.name }}
output "data_seen" {{ value = [data.vmdk_volume.data.name, data.vmdk_volume.data.size_gb] }}
output "datastores" {{ value = length(data.vmdk_datastores.all.datastores) }}
"""


def data_paths(images: dict[str, Path], out: Path) -> str:
    return f"""
resource "vmdk_volume" "streamed" {{
  name    = "streamed"
  size_gb = 1
  image {{
    source    = "{images["stream"]}"
    disk_type = "streamOptimized"
  }}
}}
resource "vmdk_volume" "sparse" {{
  name    = "sparse"
  size_gb = 1
  image {{
    source    = "{images["sparse"]}"
    disk_type = "sparse"
  }}
}}
resource "vmdk_volume_export" "flat" {{
  volume_id = vmdk_volume.sparse.id
  path      = "{out}/sparse.flat"
  format    = "flat"
}}
resource "vmdk_volume_export" "stream" {{
  volume_id = vmdk_volume.streamed.id
  path      = "{out}/streamed.vmdk"
  format    = "streamOptimized"
}}
resource "vmdk_volume_backup" "backup" {{
  volume_id = vmdk_volume.streamed.id
  path      = "{out}/backup"
}}
resource "vmdk_volume_restore" "restore" {{
  volume_id   = vmdk_volume.target.id
  backup_path = vmdk_volume_backup.backup.path
}}
"""


def _clean(said: str) -> None:
    assert not any(b in said for b in BAD), said


def test_every_resource_and_data_path(make_tf, server, disk_images, tmp_path) -> None:
    """Create everything, read it back unchanged, change it, import it, destroy it; per server, what it
    cannot do is a named error."""
    out = tmp_path / "out"
    out.mkdir()
    tf = make_tf(configuration(server, disk_images, out))
    applied = run(tf, "apply", "-auto-approve", "-parallelism=4")
    said = applied.stdout + applied.stderr
    _clean(said)
    assert applied.returncode == 0, said
    outputs = tf.output()
    assert len(set(outputs["ids"])) == 7
    assert outputs["template_name"] == "template"  # a clone's annotation, whatever the server did with it
    assert outputs["data_seen"] == ["data", 1] and outputs["datastores"] >= 1
    planned = run(tf, "plan", "-detailed-exitcode")
    _clean(planned.stdout + planned.stderr)
    assert planned.returncode == 0, planned.stdout + planned.stderr  # reads agree with what was applied
    if server.mode in HOLDS_DATA:
        assert same_disk(out / "sparse.flat", disk_images["raw"], "raw")
        assert same_disk(out / "streamed.vmdk", disk_images["raw"], "vmdk")
        manifest = (out / "backup" / "disk.vmdk").read_bytes()
        assert hashlib.sha256(manifest).hexdigest()

    if server.mode not in HOLDS_DATA:
        _data_paths_are_named_errors(make_tf, server, disk_images, tmp_path / "data-out")

    # grow and rename in place (COW snapshots and linked clones block growing: the grown one is "target")
    body = configuration(server, disk_images, out, name="renamed").replace(
        'name    = "target"\n  size_gb = 1', 'name    = "target"\n  size_gb = 2')
    assert body != configuration(server, disk_images, out, name="renamed")
    write_config(Path(tf.tfdir), body)
    changed = run(tf, "apply", "-auto-approve")
    _clean(changed.stdout + changed.stderr)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert run(tf, "plan", "-detailed-exitcode").returncode == 0

    # import into another configuration: nothing to change
    importer = make_tf(provider_block(server) + 'resource "vmdk_volume" "v" {\n  name = "full"\n  size_gb = 2\n}\n',
                       name="importer")
    imported = run(importer, "import", "vmdk_volume.v", outputs["ids"][2])
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert run(importer, "plan", "-detailed-exitcode").returncode == 0
    assert run(importer, "state", "rm", "vmdk_volume.v").returncode == 0

    # a disk type change: converted where the server can; a named error on the attribute where it cannot
    retyped = body.replace('name    = "target"\n  size_gb = 2',
                           'name    = "target"\n  size_gb = 2\n  disk_type = "eagerZeroedThick"')
    assert retyped != body
    write_config(Path(tf.tfdir), retyped)
    converted = run(tf, "apply", "-auto-approve")
    said = converted.stdout + converted.stderr
    _clean(said)
    if server.mode in ("stock", "untagged"):
        assert converted.returncode == 1 and "vSphere did not apply disk_type" in said
    else:
        assert converted.returncode == 0, said
        assert run(tf, "plan", "-detailed-exitcode").returncode == 0

    # a storage policy: an error at plan on a host; elsewhere the simulator's policy catalogue decides
    if server.mode == "esx":
        policy = body.replace('name      = "renamed"', 'name      = "renamed"\n  storage_policy = "gold"')
        write_config(Path(tf.tfdir), policy)
        refused = run(tf, "plan")
        assert refused.returncode == 1 and "No storage policies on an ESXi host" in refused.stderr
        assert "storage_policy" in refused.stderr

    write_config(Path(tf.tfdir), retyped)
    destroyed = run(tf, "destroy", "-auto-approve")
    _clean(destroyed.stdout + destroyed.stderr)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert _shadow_vms(server) == []


def _data_paths_are_named_errors(make_tf, server, disk_images, out: Path) -> None:
    """Stock govmomi keeps no disk data (its disks are empty files, NFC uploads are dropped, there is no
    ExportVm): each data path fails with its own diagnostic on its resource, and destroy cleans up."""
    out.mkdir()
    tf = make_tf(provider_block(server) + 'resource "vmdk_volume" "target" {\n  name = "target"\n  size_gb = 1\n}\n'
                 + data_paths(disk_images, out), name="data-paths")
    applied = run(tf, "apply", "-auto-approve")
    said = applied.stdout + applied.stderr
    _clean(said)
    assert applied.returncode == 1
    assert "Cannot create the volume from the image" in said and "vmdk_volume.sparse" in said
    assert "Cannot export the volume" in said and "vmdk_volume_export.stream" in said
    destroyed = run(tf, "destroy", "-auto-approve")
    _clean(destroyed.stdout + destroyed.stderr)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr


def _shadow_vms(sim) -> list[str]:
    from pyVmomi import vim

    from terraform_provider_vmdk.vsphere.connection.session import Session

    with Session(sim.connection_config()) as session:
        return sorted(item.props["name"] for item in session.retrieve(vim.VirtualMachine, ["name"])
                      if item.props["name"].startswith(("volume-", "snapshot-")))
