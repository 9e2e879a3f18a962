"""The plugin foundation, end to end: real Terraform launches our provider and drives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run, write_config

pytestmark = pytest.mark.acceptance

ITEM = """
provider "vmdk" {
  vsphere_server = "vcenter.invalid"
  user           = "someone"
  password       = "s3cr3t-Pa55word"
}

data "vmdk_disk_types" "all" {}

resource "vmdk_test_item" "a" {
  name = "%(name)s"
  size = %(size)s
  %(extra)s
}

output "id" { value = vmdk_test_item.a.id }
output "revision" { value = vmdk_test_item.a.revision }
output "volume_types" { value = data.vmdk_disk_types.all.volume_disk_types }
output "image_types" { value = data.vmdk_disk_types.all.image_disk_types }
"""


def item(name: str = "one", size: int = 1, extra: str = "") -> str:
    return ITEM % {"name": name, "size": size, "extra": extra}


def actions(plan, address: str) -> list[str]:
    return plan.resource_changes[address]["change"]["actions"]


def test_lifecycle_with_automtls(make_tf, tmp_path: Path) -> None:
    """init through the local mirror, plan, apply, in-place update, replace, import, destroy — with mTLS."""
    tf = make_tf(item())
    plan = tf.plan(output=True)
    assert actions(plan, "vmdk_test_item.a") == ["create"]
    tf.apply()
    out = tf.output()
    assert out["volume_types"] == ["thin", "thick", "eagerZeroedThick"]
    assert out["image_types"] == ["preallocated", "sparse", "streamOptimized", "thin"]
    item_id = out["id"]
    stored = json.loads((tmp_path / "store" / f"{item_id}.json").read_text())
    assert stored["name"] == "one" and stored["kind"] == "plain" and stored["revision"] == 1
    state = json.loads(tf.execute_command("state", "pull").out)
    attrs = next(r for r in state["resources"] if r["type"] == "vmdk_test_item")["instances"][0]
    assert attrs["schema_version"] == 1 and attrs["attributes"]["size"] == 1

    # no changes: a refresh must not invent a diff
    assert "No changes" in run(tf, "plan").stdout

    # in place: the id is kept (UseStateForUnknown), revision is known after apply
    write_config(Path(tf.tfdir), item(size=2))
    plan = tf.plan(output=True)
    assert actions(plan, "vmdk_test_item.a") == ["update"]
    change = plan.resource_changes["vmdk_test_item.a"]["change"]
    assert change["after"]["id"] == item_id and change["after_unknown"].get("revision") is True
    tf.apply()
    assert tf.output()["id"] == item_id and tf.output()["revision"] == 2

    # replace: kind has RequiresReplace
    write_config(Path(tf.tfdir), item(size=2, extra='kind = "fancy"'))
    plan = tf.plan(output=True)
    assert actions(plan, "vmdk_test_item.a") == ["delete", "create"]
    tf.apply()
    new_id = tf.output()["id"]
    assert new_id != item_id and not (tmp_path / "store" / f"{item_id}.json").exists()

    # import the object into a second configuration
    other = make_tf(item(size=2, extra='kind = "fancy"'), name="importer")
    imported = run(other, "import", "vmdk_test_item.a", new_id)
    assert imported.returncode == 0, imported.stderr
    assert actions(other.plan(output=True), "vmdk_test_item.a") == ["no-op"]
    bad = run(other, "import", "vmdk_test_item.a", "nope")  # already managed, or missing: an error, no traceback
    assert bad.returncode != 0 and "Traceback" not in bad.stderr

    tf.destroy(auto_approve=True)
    assert list((tmp_path / "store").iterdir()) == []


def test_drift_and_state_upgrade(make_tf, tmp_path: Path) -> None:
    tf = make_tf(item())
    tf.apply()
    item_id = tf.output()["id"]
    # out-of-band change shows as an update back to config
    path = tmp_path / "store" / f"{item_id}.json"
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "size": 7}))
    plan = tf.plan(output=True)
    assert actions(plan, "vmdk_test_item.a") == ["update"]
    assert plan.resource_changes["vmdk_test_item.a"]["change"]["before"]["size"] == 7
    # deleted out of band: gone from state, plan proposes create
    path.unlink()
    plan = tf.plan(output=True)
    assert actions(plan, "vmdk_test_item.a") == ["create"]
    tf.apply()

    # state written with schema version 0 (attribute "capacity") is upgraded without a diff
    state_file = Path(tf.tfdir) / "terraform.tfstate"
    state = json.loads(state_file.read_text())
    inst = next(r for r in state["resources"] if r["type"] == "vmdk_test_item")["instances"][0]
    inst["schema_version"] = 0
    inst["attributes"]["capacity"] = inst["attributes"].pop("size")
    state["serial"] += 1
    state_file.write_text(json.dumps(state))
    result = run(tf, "plan", "-detailed-exitcode")
    assert result.returncode == 0, result.stdout + result.stderr


def test_invalid_inputs_are_diagnostics_on_the_attribute(make_tf) -> None:
    tf = make_tf(item(name="bad-name", extra='kind = "odd"'))
    result = run(tf, "plan")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "names must not start with 'bad'" in result.stderr
    assert 'kind must be one of plain, fancy' in result.stderr
    assert 'on main.tf line' in result.stderr and "name = " in result.stderr  # underlined attribute


BAD_PROVIDER = """
provider "vmdk" {
  %s
}
data "vmdk_disk_types" "all" {}
"""


@pytest.mark.parametrize(
    "body, expect",
    [
        ('user = "u"\n  password = "p4ssw0rd-x"', ["Missing vsphere_server", "VSPHERE_SERVER"]),
        ('vsphere_server = "h"\n  user = "u"\n  password = ["not", "a", "string"]', ["password", "string required"]),
        ('vsphere_server = "h"\n  user = "u"\n  password = "p4ssw0rd-x"\n  colour = "blue"',
         ['An argument named "colour" is not expected here']),
        ('vsphere_server = "h"\n  user = "u"\n  password = "p4ssw0rd-x"\n  datastore_regex = "(("',
         ["Invalid regular expression", "datastore_regex"]),
    ],
    ids=["missing-server", "password-not-string", "unknown-attribute", "bad-regex"],
)
def test_bad_provider_configuration(make_tf, body: str, expect: list[str]) -> None:
    tf = make_tf(BAD_PROVIDER % body)
    result = run(tf, "plan")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    for text in expect:
        assert text in result.stderr


def test_password_never_logged(make_tf, tmp_path: Path) -> None:
    tf = make_tf(item())
    log_path = tmp_path / "tf.log"
    result = run(tf, "apply", "-auto-approve", env={"TF_LOG": "DEBUG", "TF_LOG_PATH": str(log_path)})
    assert result.returncode == 0, result.stderr
    log = log_path.read_text()
    assert "terraform-provider-vmdk" in log and "rpc ApplyResourceChange" in log  # our JSON lines arrive
    assert "s3cr3t-Pa55word" not in log


def test_debug_reattach_mode(terraform_binary: str, tf_env: dict[str, str], tmp_path: Path) -> None:
    """`terraform-provider-vmdk --debug` serves without being launched; Terraform reattaches to it."""
    env = {**os.environ, **tf_env}
    proc = subprocess.Popen([sys.executable, "-m", "tests.acceptance.provider_for_tests", "--debug"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        reattach = None
        for _ in range(50):
            line = proc.stdout.readline()
            if "TF_REATTACH_PROVIDERS=" in line:
                reattach = line.split("TF_REATTACH_PROVIDERS=", 1)[1].strip().strip("'")
                break
        assert reattach, "no TF_REATTACH_PROVIDERS line"
        value = json.loads(reattach)["registry.terraform.io/pyvmdk/vmdk"]
        assert value["ProtocolVersion"] == 6 and value["Test"] is True and value["Pid"] == proc.pid
        directory = tmp_path / "debug"
        write_config(directory, item(name="debugged"))
        run_env = {**env, "TF_REATTACH_PROVIDERS": reattach}
        for args in (["apply", "-auto-approve"], ["output", "-json"], ["destroy", "-auto-approve"]):
            result = subprocess.run([terraform_binary, *args, "-no-color"], cwd=directory, env=run_env,
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
            if args[0] == "output":
                assert json.loads(result.stdout)["volume_types"]["value"][0] == "thin"
        assert proc.poll() is None, "the debug server must outlive the terraform commands"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
