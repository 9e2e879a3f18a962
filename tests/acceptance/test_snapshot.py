"""vmdk_snapshot through real Terraform against the test vCenter: both formats, in-place changes, replace,
import, volumes from snapshots, and no backing left behind after destroy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import run, write_config

pytestmark = pytest.mark.acceptance

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def config(provider: str, *, volume: bool = True, snapshot: str = "", extra: str = "", outputs: bool = True) -> str:
    body = provider
    if volume:
        body += 'resource "vmdk_volume" "v" {\n  name = "snapped"\n  size_gb = 1\n}\n'
    if snapshot:
        body += 'resource "vmdk_snapshot" "s" {\n' + snapshot + "\n}\n"
        if outputs:
            body += 'output "snap" { value = vmdk_snapshot.s }\n'
    if volume and outputs:
        body += 'output "vid" { value = vmdk_volume.v.id }\n'
    return body + extra


def actions(plan, address: str = "vmdk_snapshot.s") -> list[str]:
    return plan.resource_changes[address]["change"]["actions"]


def template_vm(vsphere_session, snapshot_id: str):
    return vsphere_session.content.searchIndex.FindByUuid(None, snapshot_id, True, True)


def cow_tree(vsphere_session, volume_id: str) -> list[tuple[str, str]]:
    """(name, description) of every snapshot in the volume's shadow VM."""
    vm = vsphere_session.content.searchIndex.FindByUuid(None, volume_id, True, True)
    tree = vsphere_session.get_properties(vm, ["snapshot"]).get("snapshot")
    out, stack = [], list(getattr(tree, "rootSnapshotList", None) or [])
    while stack:
        node = stack.pop()
        out.append((node.name, node.description))
        stack.extend(node.childSnapshotList or [])
    return out


def test_template_snapshot_lifecycle(make_tf, vsphere_provider_block, vsphere_session, scan_backings) -> None:
    before = set(scan_backings())
    snap = '  volume_id = vmdk_volume.v.id\n  name = "nightly"\n  description = "%s"\n  format = "template"'
    tf = make_tf(config(vsphere_provider_block, snapshot=snap % "first"))
    plan = tf.plan(output=True)
    assert actions(plan) == ["create"]
    assert plan.resource_changes["vmdk_snapshot.s"]["change"]["after"]["format"] == "template"
    tf.apply()
    out = tf.output()
    s, vid = out["snap"], out["vid"]
    assert s["volume_id"] == vid and s["format"] == "template" and s["name"] == "nightly"
    assert s["size_gb"] == 1 and RFC3339.match(s["created_at"]), s
    vm = template_vm(vsphere_session, s["id"])
    props = vsphere_session.get_properties(vm, ["name", "config.template", "config.annotation"])
    assert props["name"] == f"snapshot-{s['id']}" and props["config.template"] is True
    assert json.loads(props["config.annotation"]) == {"name": "nightly", "description": "first"}
    assert "No changes" in run(tf, "plan").stdout

    # name and description: in place, same snapshot
    renamed = (snap % "second").replace("nightly", "weekly")
    write_config(Path(tf.tfdir), config(vsphere_provider_block, snapshot=renamed))
    plan = tf.plan(output=True)
    assert actions(plan) == ["update"]
    after = plan.resource_changes["vmdk_snapshot.s"]["change"]["after"]
    assert after["id"] == s["id"] and after["created_at"] == s["created_at"] and after["size_gb"] == 1
    tf.apply()
    props = vsphere_session.get_properties(vm, ["config.annotation"])
    assert json.loads(props["config.annotation"]) == {"name": "weekly", "description": "second"}
    assert tf.output()["snap"]["id"] == s["id"]
    assert "No changes" in run(tf, "plan").stdout

    # the template outlives its volume: drop the volume, keep the snapshot (volume id now a literal)
    kept = f'  volume_id = "{vid}"\n  name = "weekly"\n  description = "second"\n  format = "template"'
    write_config(Path(tf.tfdir), config(vsphere_provider_block, volume=False, snapshot=kept))
    plan = tf.plan(output=True)
    assert actions(plan, "vmdk_volume.v") == ["delete"] and actions(plan) == ["no-op"]
    tf.apply()
    assert vsphere_session.content.searchIndex.FindByUuid(None, vid, True, True) is None
    assert template_vm(vsphere_session, s["id"]) is not None
    assert "No changes" in run(tf, "plan").stdout

    tf.destroy(auto_approve=True)
    assert template_vm(vsphere_session, s["id"]) is None
    assert set(scan_backings()) == before


def test_cow_snapshot_lifecycle(make_tf, vsphere_provider_block, vsphere_session, vcsim, is_vcsim,
                                scan_backings) -> None:
    from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
    from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

    before = set(scan_backings())
    snap = '  volume_id = vmdk_volume.v.id\n  name = "%s"\n  format = "%s"'
    tf = make_tf(config(vsphere_provider_block, snapshot=snap % ("before-upgrade", "COW")))
    tf.apply()
    out = tf.output()
    s, vid = out["snap"], out["vid"]
    assert s["format"] == "COW" and s["size_gb"] == 1 and RFC3339.match(s["created_at"])
    tree = cow_tree(vsphere_session, vid)
    assert [name for name, _ in tree] == ["before-upgrade"]
    assert json.loads(tree[0][1]) == {"id": s["id"], "description": None}
    assert "No changes" in run(tf, "plan").stdout

    # rename: planned in place
    write_config(Path(tf.tfdir), config(vsphere_provider_block, snapshot=snap % ("renamed", "COW")))
    plan = tf.plan(output=True)
    assert actions(plan) == ["update"]
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stderr
    assert [n for n, _ in cow_tree(vsphere_session, vid)] == ["renamed"]
    name = "renamed"

    # format change: replace (COW removed from the VM, template made)
    write_config(Path(tf.tfdir), config(vsphere_provider_block, snapshot=snap % (name, "template")))
    plan = tf.plan(output=True)
    assert actions(plan) == ["delete", "create"]
    tf.apply()
    s2 = tf.output()["snap"]
    assert s2["id"] != s["id"] and s2["format"] == "template"
    assert cow_tree(vsphere_session, vid) == [] and template_vm(vsphere_session, s2["id"]) is not None

    # and back: the template is deleted, a COW snapshot made
    write_config(Path(tf.tfdir), config(vsphere_provider_block, snapshot=snap % (name, "COW")))
    assert actions(tf.plan(output=True)) == ["delete", "create"]
    tf.apply()
    s3 = tf.output()["snap"]
    assert template_vm(vsphere_session, s2["id"]) is None
    assert [n for n, _ in cow_tree(vsphere_session, vid)] == [name]

    # a COW snapshot goes with its volume: delete the volume outside Terraform, both leave the state
    ops = VolumeOps(vsphere_session, Inventory(vsphere_session, getattr(vcsim, "datacenter", None)))
    ops.delete_backing(ops.find_backing(vid))
    plan = tf.plan(output=True)
    assert actions(plan) == ["create"] and actions(plan, "vmdk_volume.v") == ["create"]
    # deleting the snapshot after its volume is gone (state not refreshed) is a no-op success
    result = run(tf, "destroy", "-auto-approve", "-refresh=false")
    assert result.returncode == 0, result.stderr
    assert s3["id"] not in json.dumps(json.loads((Path(tf.tfdir) / "terraform.tfstate").read_text())["resources"])
    assert set(scan_backings()) == before


def test_default_format_from_provider(make_tf, vsphere_provider_block, scan_backings) -> None:
    before = set(scan_backings())
    snap = '  volume_id = vmdk_volume.v.id\n  name = "dflt"'
    tf = make_tf(config(vsphere_provider_block, snapshot=snap))
    plan = tf.plan(output=True)
    assert plan.resource_changes["vmdk_snapshot.s"]["change"]["after"]["format"] == "template"  # Cinder's default
    cow_provider = vsphere_provider_block.replace("provider \"vmdk\" {", 'provider "vmdk" {\n  snapshot_format = "COW"')
    tf2 = make_tf(config(cow_provider, snapshot=snap), name="cow")
    plan = tf2.plan(output=True)
    assert plan.resource_changes["vmdk_snapshot.s"]["change"]["after"]["format"] == "COW"  # known at plan time
    tf2.apply()
    assert tf2.output()["snap"]["format"] == "COW"
    # a later change of the provider default never replaces existing snapshots
    write_config(Path(tf2.tfdir), config(vsphere_provider_block, snapshot=snap))
    assert "No changes" in run(tf2, "plan").stdout
    tf2.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def test_volume_from_snapshot(make_tf, vsphere_provider_block, vsphere_session, scan_backings) -> None:
    """Volumes cloned from a COW and from a template snapshot (the vmdk_volume resource's source_snapshot_id).

    Applied in steps, undoing vcsim's rewrite of each clone source in between (see the module docstring):
    with several clones of one source in flight vcsim even fails with FileAlreadyExists.
    """
    before = set(scan_backings())
    snapshots = """
resource "vmdk_snapshot" "t" {
  volume_id  = vmdk_volume.v.id
  name       = "tmpl"
  format     = "template"
  depends_on = [vmdk_snapshot.s] # vcsim: no COW snapshot once a clone rewrote the volume's disk
}
output "t" { value = vmdk_snapshot.t }
"""
    from_cow = """
resource "vmdk_volume" "from_cow" {
  name               = "from-cow"
  size_gb            = 1
  source_snapshot_id = vmdk_snapshot.s.id
}
output "from_cow" { value = vmdk_volume.from_cow }
"""
    from_template = """
resource "vmdk_volume" "from_template" {
  name               = "from-template"
  size_gb            = 2
  source_snapshot_id = vmdk_snapshot.t.id
}
output "from_template" { value = vmdk_volume.from_template }
"""
    cow = '  volume_id = vmdk_volume.v.id\n  name = "c"\n  format = "COW"'
    tf = make_tf(config(vsphere_provider_block, snapshot=cow, extra=snapshots))
    tf.apply()
    out = tf.output()

    write_config(Path(tf.tfdir), config(vsphere_provider_block, snapshot=cow, extra=snapshots + from_cow))
    tf.apply()
    write_config(Path(tf.tfdir),
                 config(vsphere_provider_block, snapshot=cow, extra=snapshots + from_cow + from_template))
    plan = tf.plan(output=True)
    assert actions(plan, "vmdk_volume.from_template") == ["create"]
    assert actions(plan, "vmdk_volume.from_cow") == ["no-op"]
    tf.apply()
    out = tf.output()
    assert out["from_cow"]["size_gb"] == 1 and out["from_template"]["size_gb"] == 2  # bigger than its source
    assert out["from_template"]["source_snapshot_id"] == out["t"]["id"]
    for key in ("from_cow", "from_template"):
        vol = out[key]
        assert vol["id"] != out["vid"]
        assert vsphere_session.content.searchIndex.FindByUuid(None, vol["id"], True, True) is not None
    assert "No changes" in run(tf, "plan").stdout
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def test_import_snapshots(make_tf, vsphere_provider_block, vsphere_session, scan_backings) -> None:
    before = set(scan_backings())
    extra = """
resource "vmdk_snapshot" "dup" {
  volume_id  = vmdk_volume.v.id
  name       = "c"
  format     = "COW"
  depends_on = [vmdk_snapshot.s]
}
resource "vmdk_snapshot" "t" {
  volume_id   = vmdk_volume.v.id
  name        = "tmpl"
  description = "kept"
  format      = "template"
  depends_on  = [vmdk_snapshot.dup] # vcsim: after a clone of the volume, its disk is "in use" (docstring)
}
output "dup" { value = vmdk_snapshot.dup }
output "t" { value = vmdk_snapshot.t }
"""
    cow_body = '  volume_id = vmdk_volume.v.id\n  name = "c"\n  format = "COW"'
    tf = make_tf(config(vsphere_provider_block, snapshot=cow_body, extra=extra))
    tf.apply()
    out = tf.output()
    vid, cow, tmpl = out["vid"], out["snap"], out["t"]

    importer = f"""
resource "vmdk_snapshot" "cow" {{
  volume_id = "{vid}"
  name      = "c"
  format    = "COW"
}}
resource "vmdk_snapshot" "tmpl" {{
  volume_id   = "{vid}"
  name        = "tmpl"
  description = "kept"
}}
"""
    other = make_tf(vsphere_provider_block + importer, name="importer")
    # "c" names two snapshots: ambiguous, the error lists both ids
    result = run(other, "import", "vmdk_snapshot.cow", f"{vid}/c")
    assert result.returncode == 1 and "Ambiguous snapshot name" in result.stderr
    flat = " ".join(result.stderr.split())
    assert cow["id"] in flat and out["dup"]["id"] in flat and "Traceback" not in result.stderr
    for bad, text in ((f"{vid}/nope", "Snapshot not found"), ("no-slash", "Invalid import id")):
        result = run(other, "import", "vmdk_snapshot.cow", bad)
        assert result.returncode == 1 and text in result.stderr and "Traceback" not in result.stderr
    result = run(other, "import", "vmdk_snapshot.cow", f"{vid}/{cow['id']}")  # by id instead
    assert result.returncode == 0, result.stderr
    result = run(other, "import", "vmdk_snapshot.tmpl", f"{vid}/tmpl")
    assert result.returncode == 0, result.stderr
    assert "No changes" in run(other, "plan").stdout
    state = json.loads(other.execute_command("state", "pull").out)
    got = {r["name"]: r["instances"][0]["attributes"] for r in state["resources"]}
    assert got["tmpl"]["id"] == tmpl["id"] and got["tmpl"]["format"] == "template"
    assert got["tmpl"]["size_gb"] == 1 and got["tmpl"]["description"] == "kept"
    assert got["cow"]["created_at"] == cow["created_at"]

    (Path(other.tfdir) / "terraform.tfstate").unlink()  # the first configuration owns them
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before
