"""vmdk_volume through real Terraform against vcsim: plans say what apply does, state stays true."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run, write_config

pytestmark = pytest.mark.acceptance


def volume(provider: str, body: str, extra: str = "") -> str:
    return provider + "\nresource \"vmdk_volume\" \"v\" {\n" + body + "\n}\n" + extra + """
output "id" { value = vmdk_volume.v.id }
output "datastore" { value = vmdk_volume.v.datastore }
output "vmdk_path" { value = vmdk_volume.v.vmdk_path }
output "connection_info" { value = vmdk_volume.v.connection_info }
"""


def actions(plan, address: str = "vmdk_volume.v") -> list[str]:
    return plan.resource_changes[address]["change"]["actions"]


def backing_props(vsphere_session, volume_id: str) -> dict:
    from pyVmomi import vim

    vm = vsphere_session.content.searchIndex.FindByUuid(None, volume_id, True, True)
    assert vm is not None, f"no shadow VM for {volume_id}"
    props = vsphere_session.get_properties(vm, ["name", "config.hardware.device", "config.annotation",
                                                "runtime.powerState", "datastore"])
    disks = [d for d in props["config.hardware.device"] if isinstance(d, vim.vm.device.VirtualDisk)]
    props["disk"] = disks[0]
    return props


def test_volume_lifecycle(make_tf, vsphere_provider_block, vsphere_session, scan_backings) -> None:
    before = set(scan_backings())
    tf = make_tf(volume(vsphere_provider_block, '  name = "data"\n  size_gb = 1'))
    plan = tf.plan(output=True)
    assert actions(plan) == ["create"]
    tf.apply()
    out = tf.output()
    vid = out["id"]
    props = backing_props(vsphere_session, vid)
    assert props["name"] == f"volume-{vid}"
    assert props["runtime.powerState"] == "poweredOff"
    assert props["disk"].capacityInKB == 1024 * 1024
    assert props["disk"].backing.thinProvisioned is True
    assert out["connection_info"]["driver_volume_type"] == "vmdk"
    assert out["connection_info"]["volume_id"] == vid
    assert out["vmdk_path"].startswith(f"[{out['datastore']}]")
    assert "No changes" in run(tf, "plan").stdout

    # rename + description: in place, the disk stays where it is
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "data2"\n  size_gb = 1\n  description = "d"'))
    plan = tf.plan(output=True)
    assert actions(plan) == ["update"]
    after = plan.resource_changes["vmdk_volume.v"]["change"]["after"]
    assert after["vmdk_path"] == out["vmdk_path"] and after["datastore"] == out["datastore"]
    tf.apply()
    assert json.loads(backing_props(vsphere_session, vid)["config.annotation"])["name"] == "data2"

    # grow: in place
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "data2"\n  size_gb = 3\n  description = "d"'))
    plan = tf.plan(output=True)
    assert actions(plan) == ["update"]
    tf.apply()
    assert backing_props(vsphere_session, vid)["disk"].capacityInKB == 3 * 1024 * 1024
    assert tf.output()["id"] == vid

    # shrink: refused at plan, on size_gb
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "data2"\n  size_gb = 2\n  description = "d"'))
    result = run(tf, "plan")
    assert result.returncode == 1 and "Volumes cannot shrink" in result.stderr and "size_gb" in result.stderr

    write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "data2"\n  size_gb = 3\n  description = "d"'))
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def _controller_of(props) -> str:

    for dev in props["config.hardware.device"]:
        if dev.key == props["disk"].controllerKey:
            return type(dev).__name__
    return ""


def test_types_retype_and_adapter_change(make_tf, vsphere_provider_block, vsphere_session, scan_backings) -> None:
    before = set(scan_backings())
    body = '  name = "typed"\n  size_gb = 1\n  disk_type = "eagerZeroedThick"\n  adapter_type = "paraVirtual"'
    tf = make_tf(volume(vsphere_provider_block, body))
    tf.apply()
    vid = tf.output()["id"]
    props = backing_props(vsphere_session, vid)
    assert props["disk"].backing.thinProvisioned is False and props["disk"].backing.eagerlyScrub is True
    assert "ParaVirtualSCSIController" in _controller_of(props)

    # adapter change: in place, the disk moves to a new controller, same volume
    body2 = body.replace("paraVirtual", "lsiLogicsas")
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, body2))
    plan = tf.plan(output=True)
    assert actions(plan) == ["update"]
    result = run(tf, "plan")
    assert "Retype: adapter" in result.stdout + result.stderr
    tf.apply()
    props = backing_props(vsphere_session, vid)
    assert "VirtualLsiLogicSASController" in _controller_of(props)
    assert tf.output()["id"] == vid

    # disk type change: planned in place (retype by a copy on the same datastore), with a warning that says
    # it copies the data; apply converts it (the test vCenter converts as vSphere does) and keeps the id.
    body3 = body2.replace("eagerZeroedThick", "thin")
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, body3))
    plan = tf.plan(output=True)
    assert actions(plan) == ["update"]
    after = plan.resource_changes["vmdk_volume.v"]["change"]
    assert after["after"]["datastore"] == tf.output()["datastore"]  # same-datastore copy: datastore kept
    assert after["after_unknown"].get("vmdk_path") is True and after["after_unknown"].get("backing_moref") is True
    text = run(tf, "plan")
    said = text.stdout + text.stderr
    assert "Retype: clone" in said and "copies the volume's data (1 GiB)" in said
    tf.apply()
    props = backing_props(vsphere_session, vid)
    assert props["disk"].backing.thinProvisioned and tf.output()["id"] == vid
    assert "No changes" in run(tf, "plan").stdout

    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


@pytest.mark.parametrize(
    "body, attribute, message",
    [
        ('  name = "x"\n  size_gb = 1\n  disk_type = "bogus"', "disk_type", "must be one of"),
        ('  name = "x"\n  size_gb = 1\n  adapter_type = "scsi"', "adapter_type", "must be one of"),
        ('  name = "x"\n  size_gb = 1.5', "size_gb", "whole number"),
        ('  name = "x"\n  size_gb = -1', "size_gb", "at least 1"),
        ('  name = "x"\n  size_gb = 1\n  clone_type = "linked"', "clone_type", "needs source_volume_id"),
        ('  name = "x"\n  size_gb = 1\n  source_volume_id = "a"\n  source_snapshot_id = "b"', "source_snapshot_id",
         "Set only one of"),
    ],
    ids=["disk-type", "adapter", "fractional", "negative", "linked-no-source", "two-sources"],
)
def test_invalid_inputs(make_tf, vsphere_provider_block, body: str, attribute: str, message: str) -> None:
    tf = make_tf(volume(vsphere_provider_block, body))
    result = run(tf, "plan")
    assert result.returncode == 1, result.stdout
    assert message in result.stderr and f"{attribute} =" in result.stderr  # Terraform underlines the attribute
    assert "Traceback" not in result.stderr


def test_unknown_values_in_config(make_tf, vsphere_provider_block, scan_backings) -> None:
    """Values known only after apply (from another resource) plan and apply without errors."""
    before = set(scan_backings())
    body = '  name = "first"\n  size_gb = 1'
    extra = ('resource "vmdk_volume" "w" {\n  name = "from-${vmdk_volume.v.id}"\n  size_gb = 1\n'
             '  description = vmdk_volume.v.vmdk_path\n}\n')
    tf = make_tf(volume(vsphere_provider_block, body, extra))
    plan = tf.plan(output=True)
    assert actions(plan, "vmdk_volume.w") == ["create"]
    tf.apply()
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def test_drift_import_and_out_of_band_delete(make_tf, vsphere_provider_block, vsphere_session, scan_backings) -> None:
    from pyVmomi import vim

    before = set(scan_backings())
    body = '  name = "drifty"\n  size_gb = 2\n  storage_policy = "vmdk-gold"'
    tf = make_tf(volume(vsphere_provider_block, body))
    tf.apply()
    vid = tf.output()["id"]

    # import into another configuration: no changes afterwards (the storage policy is read back too)
    x = 'resource "vmdk_volume" "x" {\n  name = "x"\n  size_gb = 1\n}\n'
    other = make_tf(volume(vsphere_provider_block, body), name="importer")
    imported = run(other, "import", "vmdk_volume.v", vid)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert actions(other.plan(output=True)) == ["no-op"]
    third = make_tf(volume(vsphere_provider_block, body, x), name="third")
    bad = run(third, "import", "vmdk_volume.x", "volume-name")
    assert bad.returncode == 1 and "Invalid import id" in bad.stderr
    missing = run(third, "import", "vmdk_volume.x", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 1 and "No volume with id" in missing.stderr and "Traceback" not in missing.stderr

    # out-of-band grow: drift shows, and going back would be a shrink, which plan refuses
    vm = vsphere_session.content.searchIndex.FindByUuid(None, vid, True, True)
    disk = backing_props(vsphere_session, vid)["disk"]
    disk.capacityInKB = 4 * 1024 * 1024
    disk.capacityInBytes = 4 * 1024**3
    spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)])
    vsphere_session.run_task(vm.ReconfigVM_Task, spec=spec)
    result = run(tf, "plan")
    assert result.returncode == 1 and "Volumes cannot shrink" in result.stderr and "size_gb is 4 GiB" in result.stderr

    # out-of-band delete: gone from state, plan proposes create
    vsphere_session.run_task(vm.Destroy_Task)
    plan = tf.plan(output=True)
    assert actions(plan) == ["create"]
    state_rm = run(other, "state", "rm", "vmdk_volume.v")
    assert state_rm.returncode == 0
    tf.destroy(auto_approve=True)  # idempotent: the backing is already gone
    assert set(scan_backings()) == before


def test_clones(make_tf, vsphere_provider_block, vsphere_session, scan_backings) -> None:
    before = set(scan_backings())
    extra = """
resource "vmdk_volume" "full" {
  name             = "full-clone"
  size_gb          = 2
  source_volume_id = vmdk_volume.v.id
}
resource "vmdk_volume" "linked" {
  name             = "linked-clone"
  size_gb          = 1
  source_volume_id = vmdk_volume.v.id
  clone_type       = "linked"
}
output "full_id" { value = vmdk_volume.full.id }
output "linked_id" { value = vmdk_volume.linked.id }
"""
    tf = make_tf(volume(vsphere_provider_block, '  name = "origin"\n  size_gb = 1', extra))
    tf.apply()
    out = tf.output()
    assert len({out["id"], out["full_id"], out["linked_id"]}) == 3
    full = backing_props(vsphere_session, out["full_id"])
    assert full["disk"].capacityInKB == 2 * 1024 * 1024  # cloned, then extended to the bigger size
    assert backing_props(vsphere_session, out["linked_id"])["name"] == f"volume-{out['linked_id']}"
    # changing the source of a clone replaces it
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "origin"\n  size_gb = 1',
                                        extra.replace('clone_type       = "linked"', 'clone_type       = "full"')))
    assert actions(tf.plan(output=True), "vmdk_volume.linked") == ["delete", "create"]
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before
