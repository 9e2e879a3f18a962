"""`terraform-provider-vmdk orphans`: what no state holds is listed, what a state holds is not; --delete."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .conftest import run
from .test_volume import volume

pytestmark = pytest.mark.acceptance


def orphans(vcsim, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VSPHERE_SERVER": vcsim.server, "VSPHERE_USER": vcsim.user,
           "VSPHERE_PASSWORD": vcsim.password}
    if getattr(vcsim, "ca_file", None):
        env["VSPHERE_CA_FILE"] = vcsim.ca_file
    if getattr(vcsim, "insecure", False):
        env["VSPHERE_ALLOW_UNVERIFIED_SSL"] = "true"
    return subprocess.run([sys.executable, "-m", "terraform_provider_vmdk", "orphans", *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def leak(vsphere_session, vcsim) -> tuple[str, str]:
    """A volume and a template snapshot made behind Terraform's back (as a killed older version could)."""
    from terraform_provider_vmdk.vsphere.placement.datastore import DatastoreSelector, Requirements
    from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
    from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

    inventory = Inventory(vsphere_session, getattr(vcsim, "datacenter", None))
    ops = VolumeOps(vsphere_session, inventory)
    placement = DatastoreSelector(vsphere_session, inventory).select(Requirements(size_bytes=1 << 30))
    vid = str(uuid.uuid4())
    backing = ops.create_backing(vid, "leaked", 1 << 30, "thin", "lsiLogic", placement)
    sid = str(uuid.uuid4())
    ops.create_snapshot(backing, "leaked-snap", None, "template", snapshot_id=sid)
    return vid, sid


def test_orphans_lists_what_no_state_holds_and_deletes_it(make_tf, vsphere_provider_block, vsphere_session, vcsim,
                                                          scan_backings) -> None:
    snap = 'resource "vmdk_snapshot" "s" {\n  volume_id = vmdk_volume.v.id\n  name = "kept"\n  format = "template"\n}\n'
    tf = make_tf(volume(vsphere_provider_block, '  name = "managed"\n  size_gb = 1', snap + 'output "snap" {\n'
                        '  value = vmdk_snapshot.s.id\n}\n'))
    tf.apply()
    managed, managed_snap = tf.output()["id"], tf.output()["snap"]
    leaked_volume, leaked_snap = leak(vsphere_session, vcsim)

    assert orphans(vcsim).returncode == 2  # no state: refused (every volume would look orphaned)
    state = str(Path(tf.tfdir) / "terraform.tfstate")
    show = Path(tf.tfdir) / "show.json"
    show.write_text(run(tf, "show", "-json").stdout)
    for source in (state, str(show)):
        listed = orphans(vcsim, "--state", source)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert leaked_volume in listed.stdout and leaked_snap in listed.stdout
        assert managed not in listed.stdout and managed_snap not in listed.stdout
        assert "in no state" in listed.stdout and vcsim.password not in listed.stdout + listed.stderr

    refused = orphans(vcsim, "--state", state, "--delete")  # no terminal, no --yes: nothing is deleted
    assert refused.returncode == 2 and "--yes" in refused.stdout
    young = orphans(vcsim, "--state", state, "--delete", "--yes")  # made a moment ago: an apply may be making it
    assert young.returncode == 1 and f"kept volume-{leaked_volume}" in young.stdout and "--min-age" in young.stdout
    deleted = orphans(vcsim, "--state", state, "--delete", "--yes", "--min-age", "0")
    assert deleted.returncode == 0 and f"volume-{leaked_volume}" in deleted.stdout
    again = orphans(vcsim, "--state", state, "--json")
    assert leaked_volume not in again.stdout and leaked_snap not in again.stdout
    assert f"volume-{managed}" in scan_backings()  # what the state holds is untouched
    tf.destroy(auto_approve=True)
    assert f"volume-{managed}" not in scan_backings()


def test_orphans_rejects_what_is_not_a_state(vcsim, tmp_path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}')
    result = orphans(vcsim, "--state", str(bad))
    assert result.returncode != 0 and "does not look like a Terraform state" in result.stderr
    missing = orphans(vcsim, "--state", str(tmp_path / "missing.tfstate"))
    assert missing.returncode != 0 and "cannot read state" in missing.stderr


def _state_holding_all_but(vsphere_session, tmp_path: Path, *ids: str) -> str:
    """A state that holds every volume and snapshot of ours in the vCenter except ``ids``: what orphans may
    delete is then exactly those (other tests' objects, or a shared vCenter's, are never at risk)."""
    import json

    from pyVmomi import vim

    from terraform_provider_vmdk.vsphere.volumes.backing import extra_config_dict

    resources = []
    for item in vsphere_session.retrieve(vim.VirtualMachine, ["config.extraConfig"]):
        marks = extra_config_dict(item.props.get("config.extraConfig"))
        for kind, key in (("vmdk_volume", "vmdk.volume_id"), ("vmdk_snapshot", "vmdk.snapshot_id")):
            ident = marks.get(key)
            if ident and ident not in ids and (kind == "vmdk_volume" or marks.get("vmdk.kind") == "snapshot"):
                resources.append({"mode": "managed", "type": kind, "name": f"r{len(resources)}",
                                  "instances": [{"attributes": {"id": ident}}]})
    path = tmp_path / f"others-{uuid.uuid4().hex[:6]}.tfstate"
    path.write_text(json.dumps({"version": 4, "serial": 1, "lineage": "x", "outputs": {}, "resources": resources}))
    return str(path)


def test_orphans_lists_a_copy_made_outside_terraform_and_never_deletes_it(vsphere_session, vcsim, tmp_path) -> None:
    from pyVmomi import vim

    leaked_volume, leaked_snap = leak(vsphere_session, vcsim)
    shadow = vsphere_session.content.searchIndex.FindByUuid(None, leaked_volume, True, True)
    folder = vsphere_session.get_properties(shadow, ["parent"])["parent"]
    copy_name = f"restored-as-new-{uuid.uuid4().hex[:8]}"
    vsphere_session.run_task(shadow.CloneVM_Task, folder=folder, name=copy_name,
                             spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec(), powerOn=False, template=False))
    try:
        state = _state_holding_all_but(vsphere_session, tmp_path, leaked_volume, leaked_snap)
        listed = orphans(vcsim, "--state", state)
        assert listed.returncode == 0, listed.stderr
        line = next(x for x in listed.stdout.splitlines() if copy_name in x)
        assert "a copy made outside Terraform" in line
        deleted = orphans(vcsim, "--state", state, "--delete", "--yes", "--min-age", "0")
        assert f"deleted volume-{leaked_volume}" in deleted.stdout
        assert f"deleted snapshot-{leaked_snap}" in deleted.stdout
        assert f"deleted {copy_name}" not in deleted.stdout
        assert any(item.props["name"] == copy_name for item in vsphere_session.retrieve(vim.VirtualMachine, ["name"]))
    finally:
        for item in vsphere_session.retrieve(vim.VirtualMachine, ["name"]):
            if item.props["name"] == copy_name:
                vsphere_session.run_task(item.obj.Destroy_Task)


def test_orphans_faults_and_answers_are_one_line(vsphere_session, vcsim, tmp_path) -> None:
    import pty

    state = _state_holding_all_but(vsphere_session, tmp_path)
    env = {**os.environ, "VSPHERE_SERVER": "127.0.0.1:1", "VSPHERE_USER": "u", "VSPHERE_PASSWORD": "p"}
    unreachable = subprocess.run([sys.executable, "-m", "terraform_provider_vmdk", "orphans", "--state", state],
                                 env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1 and unreachable.stderr.startswith("orphans: ")
    bad_age = orphans(vcsim, "--state", state, "--min-age", "soon")
    assert bad_age.returncode == 2 and "not an age" in bad_age.stderr and "Traceback" not in bad_age.stderr

    # EOF (Ctrl-D) at the confirmation prompt on a terminal: nothing deleted, no traceback
    leaked_volume, leaked_snap = leak(vsphere_session, vcsim)
    state = _state_holding_all_but(vsphere_session, tmp_path, leaked_volume, leaked_snap)
    env = {**os.environ, "VSPHERE_SERVER": vcsim.server, "VSPHERE_USER": vcsim.user,
           "VSPHERE_PASSWORD": vcsim.password}
    if getattr(vcsim, "ca_file", None):
        env["VSPHERE_CA_FILE"] = vcsim.ca_file
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "terraform_provider_vmdk", "orphans", "--state", state, "--delete",
                             "--min-age", "0"], env=env, stdin=secondary, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    os.close(secondary)
    try:
        os.write(primary, b"\x04")
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(primary)
    assert proc.returncode == 1 and "Nothing deleted" in out and "Traceback" not in out + err, out + err
    assert vsphere_session.content.searchIndex.FindByUuid(None, leaked_volume, True, True) is not None
    cleaned = orphans(vcsim, "--state", state, "--delete", "--yes", "--min-age", "0")
    assert cleaned.returncode == 0, cleaned.stdout
