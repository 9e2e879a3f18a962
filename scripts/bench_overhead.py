#!/usr/bin/env python3
"""Where the provider's time goes: plan, apply, COW snapshots and destroy of N volumes against two floors.

    .venv/bin/python scripts/bench_overhead.py [--counts 200,1000] [--threads 10] [--terraform PATH] [--json F]

The floors no provider can go under, measured in the same run on the same machine:

* Terraform's own cost: the same command over N built-in ``terraform_data`` resources (no plugin at all);
* vSphere's cost: a raw pyvmomi script doing the same vSphere work with T threads on one session — one
  batched RetrievePropertiesEx of every VM (plan), CreateVM_Task (apply), CreateSnapshot_Task (snapshots),
  Destroy_Task (destroy).

ratio = provider command / (terraform_data command + raw vSphere work). Also printed, per command: the
provider launches Terraform made and the median time each took until its first RPC was answered (from the
provider's debug log), vSphere logins and SOAP requests (counted at the server by benchlib's proxy, in a
separate run so the proxy never inflates a wall time), and the peak RSS of any provider process (VmHWM).
Nothing is asserted: the figures are for the issue notes.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_apply import RawCreator
from bench_data_io import PeakMemory
from benchlib import PROVIDER_TF, Lab, dump_json, raw_connect, raw_wait

_FIRST = re.compile(r"first rpc answered \((\w+)\): ([0-9.]+) s after the process started")


def volumes(n: int) -> str:
    return PROVIDER_TF + f"""
resource "vmdk_volume" "v" {{
  count   = {n}
  name    = "bench-${{count.index}}"
  size_gb = 1
}}
"""


def snapshots(n: int) -> str:
    return volumes(n) + f"""
resource "vmdk_snapshot" "s" {{
  count     = {n}
  volume_id = vmdk_volume.v[count.index].id
  name      = "s-${{count.index}}"
  format    = "COW"
}}
"""


def terraform_data(n: int) -> str:
    return f'resource "terraform_data" "d" {{\n  count = {n}\n  input = "d-${{count.index}}"\n}}\n'


class Run:
    """One provider command: wall time, peak RSS, launches and their time to first answer."""

    def __init__(self, lab: Lab, *args: str, log: bool = False) -> None:
        self.lab, self.args, self.log = lab, args, log

    def __call__(self) -> dict[str, Any]:
        env_extra = {}
        log_path = None
        if self.log:
            log_path = Path(tempfile.mkstemp(prefix="tf-", suffix=".log", dir=self.lab.work)[1])
            env_extra = {"TF_LOG_PROVIDER": "DEBUG", "TF_LOG_PATH": str(log_path)}
        old = dict(self.lab.base_env)
        self.lab.base_env.update(env_extra)
        try:
            with PeakMemory() as peak:
                seconds, _ = self.lab.timed_tf(*self.args)
        finally:
            self.lab.base_env.clear()
            self.lab.base_env.update(old)
        out: dict[str, Any] = {"s": seconds, "rss_mib": peak.peak_mib}
        if log_path is not None:
            firsts = [float(m.group(2)) for m in _FIRST.finditer(log_path.read_text(errors="replace"))]
            out["launches"] = len(firsts)
            out["first_answer_s"] = statistics.median(firsts) if firsts else None
            log_path.unlink()
        return out


def counted(lab: Lab, *args: str) -> dict[str, Any]:
    with lab.proxy.measure() as m:
        lab.tf(*args, via_proxy=True)
    return {"requests": m.total, "logins": m.counts.get("Login", 0), "top": m.top(5)}


# ------------------------------------------------------------------------------------------- raw floors
def raw_read(lab: Lab) -> float:
    from pyVmomi import vim, vmodl

    from terraform_provider_vmdk.vsphere.backing import BACKING_PROPERTIES

    si = raw_connect(lab.connection(False))
    try:
        content = si.RetrieveContent()
        t0 = time.perf_counter()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        pc = vmodl.query.PropertyCollector
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[pc.TraversalSpec(
                name="t", path="view", skip=False, type=vim.view.ContainerView)])],
            propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=list(BACKING_PROPERTIES))])
        result = content.propertyCollector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
        while result is not None and result.token:
            result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token)
        elapsed = time.perf_counter() - t0
        view.Destroy()
        return elapsed
    finally:
        from pyVim.connect import Disconnect

        Disconnect(si)


def raw_floors(lab: Lab, n: int, threads: int) -> dict[str, float]:
    raw = RawCreator(lab, via_proxy=False)
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            vms = list(pool.map(raw.create, range(n)))
        create = time.perf_counter() - t0
        read = raw_read(lab)

        def snap(vm: Any) -> None:
            raw_wait(vm.CreateSnapshot_Task(name=f"s-{uuid.uuid4().hex[:6]}", memory=False, quiesce=False), 0.5)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(snap, vms))
        snapshot = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(raw.delete, vms))
        destroy = time.perf_counter() - t0
    finally:
        raw.close()
    return {"read": read, "create": create, "snapshot": snapshot, "destroy": destroy}


def tf_data_floors(lab: Lab, n: int, threads: int) -> dict[str, float]:
    work = lab.config
    lab.config = Path(tempfile.mkdtemp(prefix="tfdata-", dir=lab.work))
    try:
        lab.write("main.tf", terraform_data(n))
        lab.tf("init", "-input=false", "-no-color")
        par = f"-parallelism={threads}"
        apply, _ = lab.timed_tf("apply", "-auto-approve", "-input=false", "-no-color", par)
        plan, _ = lab.timed_tf("plan", "-input=false", "-no-color", par)
        destroy, _ = lab.timed_tf("destroy", "-auto-approve", "-input=false", "-no-color", par)
    finally:
        lab.config = work
    return {"apply": apply, "plan": plan, "destroy": destroy}


# ------------------------------------------------------------------------------------------------ main
def bench(lab: Lab, n: int, threads: int) -> dict[str, Any]:
    par = f"-parallelism={threads}"
    apply_args = ("apply", "-auto-approve", "-input=false", "-no-color", par)
    destroy_args = ("destroy", "-auto-approve", "-input=false", "-no-color", par)
    plan_args = ("plan", "-input=false", "-no-color", par)
    tfd = tf_data_floors(lab, n, threads)
    raw = raw_floors(lab, n, threads)

    lab.write("main.tf", volumes(n))
    lab.tf("init", "-input=false", "-no-color")
    res: dict[str, Any] = {"apply": Run(lab, *apply_args)(), "plan": Run(lab, *plan_args)()}
    res["plan_logged"] = Run(lab, *plan_args, log=True)()
    res["plan_counted"] = counted(lab, *plan_args)
    lab.write("main.tf", snapshots(n))
    res["snapshots"] = Run(lab, *apply_args)()
    lab.write("main.tf", volumes(n))
    lab.tf(*apply_args)  # the snapshots go
    res["destroy"] = Run(lab, *destroy_args)()
    res["apply_counted"] = counted(lab, *apply_args)
    res["destroy_counted"] = counted(lab, *destroy_args)
    return {"n": n, "terraform_data": tfd, "raw": raw, "provider": res}


def show(r: dict[str, Any]) -> None:
    n, tfd, raw, p = r["n"], r["terraform_data"], r["raw"], r["provider"]
    rows = [("plan (refresh of N)", p["plan"], tfd["plan"], raw["read"]),
            ("apply N new volumes", p["apply"], tfd["apply"], raw["create"]),
            ("apply N COW snapshots", p["snapshots"], tfd["apply"], raw["snapshot"]),
            ("destroy N volumes", p["destroy"], tfd["destroy"], raw["destroy"])]
    print(f"\nN = {n}")
    print(f"  {'':<24} {'provider s':>10} {'tf_data s':>9} {'raw s':>7} {'floor s':>8} {'ratio':>6} {'RSS MiB':>8}")
    for label, prov, t, v in rows:
        floor = t + v
        print(f"  {label:<24} {prov['s']:>10.2f} {t:>9.2f} {v:>7.2f} {floor:>8.2f} {prov['s'] / floor:>5.2f}x "
              f"{prov['rss_mib']:>8.1f}")
    logged = p["plan_logged"]
    first = logged.get("first_answer_s")
    print(f"  plan: {logged.get('launches')} provider launches, median {first if first is None else f'{first:.3f}'} s "
          "from process start to first answered RPC")
    for label, key in (("plan", "plan_counted"), ("apply", "apply_counted"), ("destroy", "destroy_counted")):
        c = p[key]
        print(f"  {label}: {c['logins']} logins, {c['requests']} SOAP requests ({c['requests'] / n:.2f} per volume): "
              f"{c['top']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="200,1000")
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--terraform")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    results = []
    for n in (int(x) for x in args.counts.split(",")):
        lab = Lab(args.terraform, args.keep)  # a fresh vcsim per N
        try:
            if not results:
                print(f"bench_overhead: {lab.version()}, {os.cpu_count()} CPUs, -parallelism={args.threads}")
            r = bench(lab, n, args.threads)
        finally:
            lab.close()
        show(r)
        results.append(r)
    dump_json(args.json, {"threads": args.threads, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
