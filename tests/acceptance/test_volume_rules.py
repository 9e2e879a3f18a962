"""vmdk_volume plan rules and failure handling through real Terraform against vcsim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run, write_config
from .test_volume import actions, backing_props, volume

pytestmark = pytest.mark.acceptance


def test_unknown_datacenter_and_cluster_are_setting_errors(make_tf, vsphere_provider_block) -> None:
    for setting, value, text in (
            ("datacenter", '"NoSuchDC"', "Invalid provider setting: datacenter"),
            ("cluster_names", '["DC0_C0", "NoSuchCluster"]', "Invalid provider setting: cluster_names")):
        lines = [ln for ln in vsphere_provider_block.rstrip().rstrip("}").splitlines()
                 if not ln.strip().startswith(setting)]
        provider = "\n".join(lines) + f"\n  {setting} = {value}\n}}\n"
        tf = make_tf(volume(provider, '  name = "x"\n  size_gb = 1'), name=setting)
        result = run(tf, "apply", "-auto-approve")
        assert result.returncode == 1 and text in result.stderr, result.stderr
        assert "NoSuch" in result.stderr and "Traceback" not in result.stderr


def test_pinned_datastore_and_policy_placement(make_tf, vsphere_provider_block, scan_backings) -> None:
    before = set(scan_backings())
    extra = """
resource "vmdk_volume" "gold" {
  name           = "gold"
  size_gb        = 1
  storage_policy = "vmdk-gold"
}
output "gold_datastore" { value = vmdk_volume.gold.datastore }
"""
    tf = make_tf(volume(vsphere_provider_block, '  name = "pinned"\n  size_gb = 1\n  datastore = "ds-c1"', extra))
    tf.apply()
    out = tf.output()
    assert out["datastore"] == "ds-c1" and out["vmdk_path"].startswith("[ds-c1]")
    # the policy requires tier=gold, which only ds-big and ds-c1 carry in the test vCenter
    assert out["gold_datastore"] in ("ds-big", "ds-c1")
    assert "No changes" in run(tf, "plan").stdout
    # a datastore that cannot take the volume: a diagnostic on datastore, saying why
    pinned = '  name = "pinned"\n  size_gb = 1\n  datastore = "ds-c1"'
    maint = 'resource "vmdk_volume" "m" {\n  name = "m"\n  size_gb = 1\n  datastore = "ds-maint"\n}\n'
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, pinned, extra + maint))
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 1 and "ds-maint" in result.stderr and "maintenance" in result.stderr
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, pinned, extra))
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def test_extend_refused_with_cow_snapshot(make_tf, vsphere_provider_block, scan_backings) -> None:
    before = set(scan_backings())
    snap = 'resource "vmdk_snapshot" "s" {\n  volume_id = vmdk_volume.v.id\n  name = "s1"\n  format = "COW"\n}\n'
    tf = make_tf(volume(vsphere_provider_block, '  name = "snapped"\n  size_gb = 1', snap))
    tf.apply()
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "snapped"\n  size_gb = 2', snap))
    result = run(tf, "plan")
    assert result.returncode == 1
    assert "Volume cannot be extended while it has snapshots" in result.stderr and "size_gb" in result.stderr
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, '  name = "snapped"\n  size_gb = 1', snap))
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def test_delete_refuses_a_volume_in_use(make_tf, vsphere_provider_block, vsphere_session, scan_backings) -> None:
    """Another VM has the volume's VMDK attached: destroy is refused naming that VM, and nothing is lost."""
    from pyVmomi import vim

    before = set(scan_backings())
    # on ds-big, which the consumer's host (cluster DC0_C0) mounts; vcsim panics when a VM is given a disk
    # on a datastore its host does not see (real vSphere answers with a fault)
    tf = make_tf(volume(vsphere_provider_block, '  name = "attached"\n  size_gb = 1\n  datastore = "ds-big"'))
    tf.apply()
    vid = tf.output()["id"]
    disk = backing_props(vsphere_session, vid)["disk"]
    consumer = next(item.obj for item in vsphere_session.retrieve(vim.VirtualMachine, ["name"])
                    if item.props["name"] == "DC0_C0_RP0_VM0")
    devices = vsphere_session.get_properties(consumer, ["config.hardware.device"])["config.hardware.device"]
    controller = next(d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController))
    used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller.key}
    attach = vim.vm.device.VirtualDisk(
        key=-1, controllerKey=controller.key, unitNumber=next(u for u in range(16) if u not in used and u != 7),
        capacityInKB=disk.capacityInKB,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=disk.backing.fileName, diskMode="persistent"))
    spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=attach)])
    vsphere_session.run_task(consumer.ReconfigVM_Task, spec=spec)
    try:
        result = run(tf, "destroy", "-auto-approve")
        assert result.returncode == 1 and "DC0_C0_RP0_VM0" in result.stderr, result.stderr
        assert backing_props(vsphere_session, vid)["name"] == f"volume-{vid}"  # still there
        assert "vmdk_volume.v" in run(tf, "state", "list").stdout  # and still in state
    finally:
        devices = vsphere_session.get_properties(consumer, ["config.hardware.device"])["config.hardware.device"]
        ours = next(d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)
                    and d.backing.fileName == disk.backing.fileName)
        spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="remove", device=ours)])
        vsphere_session.run_task(consumer.ReconfigVM_Task, spec=spec)
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def test_create_timeout_keeps_the_volume_tainted(make_tf, vsphere_provider_block, scan_backings, vcsim,
                                                 is_vcsim) -> None:
    """A create that outlives its timeout (vSphere accepted it, then took too long) is an error, and the
    volume is kept in state (tainted), so the next apply replaces it and destroy finds it: nothing leaks."""
    if not is_vcsim:
        pytest.skip("needs the test vCenter's slow tasks")
    before = set(scan_backings())
    body = '  name = "slow"\n  size_gb = 1\n  timeouts {\n    create = "3s"\n  }'
    tf = make_tf(volume(vsphere_provider_block, body))
    vcsim.set_delay("CreateVM_Task", 8)
    try:
        result = run(tf, "apply", "-auto-approve")
    finally:
        vcsim.set_delay("CreateVM_Task", 0)
    assert result.returncode == 1 and "Timed out: create the volume" in result.stderr
    state = json.loads(run(tf, "state", "pull").stdout)
    instance = state["resources"][0]["instances"][0]
    assert instance.get("status") == "tainted" and instance["attributes"]["id"]
    plan = tf.plan(output=True)
    assert actions(plan) in (["delete", "create"], ["create"])  # tainted → replace (or create if it never appeared)
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def test_relocation_and_move_before_grow(make_tf, vsphere_provider_block, vsphere_session, scan_backings) -> None:
    before = set(scan_backings())
    pinned = '  name = "mover"\n  size_gb = 1\n  disk_type = "thick"\n  datastore = "ds-small"'
    tf = make_tf(volume(vsphere_provider_block, pinned))
    tf.apply()
    out = tf.output()
    vid = out["id"]
    assert out["datastore"] == "ds-small"

    # datastore set and changed: relocate in place; the plan warns and the disk's path is not known yet
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, pinned.replace("ds-small", "ds-c1")))
    plan = tf.plan(output=True)
    assert actions(plan) == ["update"]
    change = plan.resource_changes["vmdk_volume.v"]["change"]
    assert change["after"]["datastore"] == "ds-c1" and change["after_unknown"].get("vmdk_path") is True
    text = run(tf, "plan")
    assert "Volume will be relocated" in text.stdout + text.stderr and "to ds-c1" in text.stdout + text.stderr
    tf.apply()
    assert tf.output()["vmdk_path"].startswith("[ds-c1] ") and tf.output()["id"] == vid
    assert backing_props(vsphere_session, vid)["disk"].backing.fileName.startswith("[ds-c1] ")
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, pinned))
    tf.apply()  # and back to ds-small

    # growing a thick disk beyond the pinned datastore's free space: refused at plan, on size_gb
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, pinned.replace("size_gb = 1", "size_gb = 40")))
    result = run(tf, "plan")
    assert result.returncode == 1 and "Datastore lacks room to extend" in result.stderr and "size_gb" in result.stderr

    # not pinned any more: the plan says it moves first, and apply relocates, then grows
    unpinned = pinned.replace('\n  datastore = "ds-small"', "").replace("size_gb = 1", "size_gb = 40")
    write_config(Path(tf.tfdir), volume(vsphere_provider_block, unpinned))
    plan = tf.plan(output=True)
    assert actions(plan) == ["update"]
    assert plan.resource_changes["vmdk_volume.v"]["change"]["after_unknown"].get("datastore") is True
    text = run(tf, "plan")
    assert "Volume will move before it grows" in text.stdout + text.stderr
    tf.apply()
    props = backing_props(vsphere_session, vid)
    assert props["disk"].capacityInKB == 40 * 1024 * 1024
    names = {vsphere_session.get_properties(ds, ["name"])["name"] for ds in props["datastore"]}
    assert names - {"ds-small"}, "apply relocated the volume to another datastore before growing it"
    assert not props["disk"].backing.fileName.startswith("[ds-small] ")
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before
