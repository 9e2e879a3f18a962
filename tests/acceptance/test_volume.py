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
