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
    from terraform_provider_vmdk.vsphere.datastore import DatastoreSelector, Requirements
    from terraform_provider_vmdk.vsphere.inventory import Inventory
    from terraform_provider_vmdk.vsphere.volumeops import VolumeOps

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
    deleted = orphans(vcsim, "--state", state, "--delete", "--yes")
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
