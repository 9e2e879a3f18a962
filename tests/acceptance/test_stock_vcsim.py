"""A stock vcsim (govmomi's default inventory, none of our simulator's fidelity layer) as module authors run it:
one provider setting (datastore_types = ["OTHER"]) and the volume/snapshot/clone lifecycle works; what a stock
vcsim cannot do (convert a disk type) ends in apply's clear diagnostic; without the setting, the error says
which setting to use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO, run, write_config
from .test_volume import actions

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def stock() -> Iterator:
    from tests.vcsim.harness import start_vcsim

    sim = start_vcsim(stock=True)
    try:
        yield sim
    finally:
        sim.stop()


def provider_block(sim, *, types: bool = True) -> str:
    lines = [f'vsphere_server = "{sim.server}"', f'user = "{sim.user}"', f'password = "{sim.password}"',
             f'ca_file = "{sim.ca_file}"']
    if types:
        lines.append('datastore_types = ["OTHER"]')
    return 'provider "vmdk" {\n  ' + "\n  ".join(lines) + "\n}\n"


LIFECYCLE = """
resource "vmdk_volume" "data" {
  name    = "data"
  size_gb = %(size)d
}
resource "vmdk_snapshot" "cow" {
  volume_id = vmdk_volume.data.id
  name      = "cow"
  format    = "COW"
}
resource "vmdk_snapshot" "template" {
  volume_id = vmdk_volume.other.id
  name      = "template"
  format    = "template"
}
resource "vmdk_volume" "other" {
  name    = "other"
  size_gb = %(other)d
}
resource "vmdk_volume" "full" {
  name             = "full"
  size_gb          = 2
  source_volume_id = vmdk_volume.other.id
}
resource "vmdk_volume" "linked" {
  name             = "linked"
  size_gb          = 1
  clone_type       = "linked"
  source_volume_id = vmdk_volume.data.id
}
resource "vmdk_volume" "from_template" {
  name               = "from-template"
  size_gb            = %(other)d
  source_snapshot_id = vmdk_snapshot.template.id
}
output "ids" {
  value = [vmdk_volume.data.id, vmdk_volume.other.id, vmdk_volume.full.id, vmdk_volume.linked.id,
           vmdk_volume.from_template.id]
}
"""


def shadow_vms(sim) -> list[str]:
    from pyVmomi import vim

    from terraform_provider_vmdk.vsphere.connection.session import Session

    with Session(sim.connection_config()) as session:
        return sorted(item.props["name"] for item in session.retrieve(vim.VirtualMachine, ["name"])
                      if item.props["name"].startswith(("volume-", "snapshot-")))


def test_the_lifecycle_on_a_stock_vcsim(make_tf, stock) -> None:
    tf = make_tf(provider_block(stock) + LIFECYCLE % {"size": 1, "other": 1})
    tf.apply()
    assert len(set(tf.output()["ids"])) == 5
    # extend a volume (one without COW snapshots), and see the plan say so
    write_config(Path(tf.tfdir), provider_block(stock) + LIFECYCLE % {"size": 1, "other": 2})
    plan = tf.plan(output=True)
    assert actions(plan, "vmdk_volume.other") == ["update"]
    tf.apply()
    assert "No changes" in run(tf, "plan").stdout
    # a disk type change: a stock vcsim cannot convert disks, and apply says so on the attribute
    retyped = (LIFECYCLE % {"size": 1, "other": 2}).replace(
        'name    = "other"\n  size_gb = 2', 'name    = "other"\n  size_gb = 2\n  disk_type = "eagerZeroedThick"')
    write_config(Path(tf.tfdir), provider_block(stock) + retyped)
    result = run(tf, "apply", "-auto-approve")
    said = result.stdout + result.stderr
    assert result.returncode == 1 and "vSphere did not apply disk_type" in said and "vmdk_volume.other" in said
    assert "Traceback" not in said and "inconsistent result" not in said
    tf.destroy(auto_approve=True)
    assert shadow_vms(stock) == []


def test_without_datastore_types_the_error_names_the_setting(make_tf, stock) -> None:
    tf = make_tf(provider_block(stock, types=False) + 'resource "vmdk_volume" "v" {\n  name = "v"\n  size_gb = 1\n}\n')
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 1
    said = " ".join(result.stderr.split())
    assert "LocalDS_0: type OTHER is not in datastore_types" in said and "datastore_types" in said
    assert "seen: OTHER" in said


def test_the_example_module_with_terraform_test(stock, tf_env, tmp_path, terraform_binary) -> None:
    """examples/modules/volume-with-snapshots' own `terraform test` file, against the stock vcsim."""
    version = subprocess.run([terraform_binary, "version", "-json"], capture_output=True, text=True, env=tf_env)
    found = json.loads(version.stdout or "{}").get("terraform_version", "1.0.3")
    if tuple(int(p) for p in found.split(".")[:2]) < (1, 6):
        pytest.skip(f"terraform test needs Terraform >= 1.6 (this is {found}); the newer binary runs it")
    module = tmp_path / "module"
    shutil.copytree(REPO / "examples" / "modules" / "volume-with-snapshots", module)
    env = {**os.environ, **tf_env, "VSPHERE_SERVER": stock.server, "VSPHERE_USER": stock.user,
           "VSPHERE_PASSWORD": stock.password, "VSPHERE_CA_FILE": stock.ca_file}
    init = subprocess.run([terraform_binary, "init", "-no-color"], cwd=module, env=env, capture_output=True,
                          text=True, timeout=300)
    assert init.returncode == 0, init.stdout + init.stderr
    test = subprocess.run([terraform_binary, "test", "-no-color", "-var", 'datastore_types=["OTHER"]'], cwd=module,
                          env=env, capture_output=True, text=True, timeout=600)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "2 passed, 0 failed" in test.stdout
    assert shadow_vms(stock) == []  # terraform test destroyed what it made
