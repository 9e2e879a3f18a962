#!/usr/bin/env python3
"""Where the provider's time goes: plan, apply, COW snapshots and destroy of N volumes against two floors.

    .venv/bin/python scripts/bench_overhead.py [--counts 200,1000] [--threads 10] [--terraform PATH] [--json F]

The floors no provider can go under, measured in the same run on the same machine:

* Terraform's own cost: the same command over N built-in ``terraform_data`` resources (no plugin at all);
* vSphere's cost: a raw pyvmomi script doing the same vSphere work with T threads on one session — one
  batched RetrievePropertiesEx of every VM (plan), CreateVM_Task (apply), CreateSnapshot_Task (snapshots),
  Destroy_Task (destroy).

ratio = provider command / (terraform_data command + raw vSphere work), for the commands above. Terraform's own
cost grows with the size of its state (it rewrites terraform.tfstate after every resource), and a volume's state
(Cinder's connection_info, private facts) is several times a bare terraform_data's; so a second floor, "sized",
runs the same commands over terraform_data whose instances are as large in the state as the provider's were
(same count, same dependency shape: N, then N more that depend on them), and adds the batched raw read to the
commands that refresh first (snapshots, destroy). A third floor, "no-vSphere", runs the same commands through
scripts/bench_echo_provider.py: our plugin server, schemas and plan logic with reads, creates and deletes that
do no vSphere work, launched by Terraform like the provider; provider minus no-vSphere is what the vSphere work
costs inside the provider, no-vSphere minus terraform_data what Terraform and the plugin protocol cost for these
instances. Every command's CPU (Terraform and the provider processes it reaped) is printed beside its wall
time: on a 2-core machine a command whose CPU exceeds its wall time is bound by CPU. Also printed, per command: the
provider launches Terraform made and the median time each took until its first RPC was answered (from the
provider's debug log), vSphere logins and SOAP requests (counted at the server by benchlib's proxy, in a
separate run so the proxy never inflates a wall time), and the peak RSS of any provider process (VmHWM).
Nothing is asserted: the figures are for the issue notes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
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


def terraform_data(n: int, pad: int = 0, dependents: bool = False, dependent_pad: int = 0) -> str:
    """N terraform_data (input padded by ``pad`` bytes), and with ``dependents`` N more that depend on them."""
    text = f'resource "terraform_data" "d" {{\n  count = {n}\n  input = "d-${{count.index}}{"x" * pad}"\n}}\n'
    if dependents:
        text += (f'resource "terraform_data" "e" {{\n  count = {n}\n'
                 f'  input = "${{terraform_data.d[count.index].id}}{"y" * dependent_pad}"\n}}\n')
    return text


def instance_bytes(state_file: Path) -> dict[str, float]:
    """Mean size in the state of one instance of each resource type (compact JSON)."""
    state = json.loads(state_file.read_text())
    sizes: dict[str, list[int]] = {}
    for block in state.get("resources", []):
        for instance in block.get("instances", []):
            sizes.setdefault(block["type"], []).append(len(json.dumps(instance, separators=(",", ":"))))
    return {kind: statistics.mean(values) for kind, values in sizes.items()}


def pad_for(target: float, bare: float) -> int:
    """terraform_data stores its input twice (input and output): the padding that makes an instance ``target``."""
    return max(0, int((target - bare) / 2))


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child: Terraform and the provider processes it reaped."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
            cpu0 = children_cpu()
            with PeakMemory() as peak:
                seconds, _ = self.lab.timed_tf(*self.args)
            cpu = children_cpu() - cpu0
        finally:
            self.lab.base_env.clear()
            self.lab.base_env.update(old)
        out: dict[str, Any] = {"s": seconds, "rss_mib": peak.peak_mib, "cpu_s": cpu}
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

    from terraform_provider_vmdk.vsphere.volumes.backing import BACKING_PROPERTIES

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
        read = statistics.median(raw_read(lab) for _ in range(3))

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


def tf_data_floors(lab: Lab, n: int, threads: int, sizes: dict[str, float] | None = None) -> dict[str, Any]:
    """Terraform alone over terraform_data: apply N, plan, apply N dependents, remove them, destroy N.
    ``sizes`` (mean instance bytes of the provider's volume and snapshot) pads the instances to match."""
    work = lab.config
    lab.config = Path(tempfile.mkdtemp(prefix="tfdata-", dir=lab.work))
    par = f"-parallelism={threads}"
    apply_args = ("apply", "-auto-approve", "-input=false", "-no-color", par)
    try:
        pad = dep_pad = 0
        if sizes:
            lab.write("main.tf", terraform_data(1, dependents=True))
            lab.tf("init", "-input=false", "-no-color")
            lab.tf(*apply_args)
            bare = instance_bytes(lab.config / "terraform.tfstate")["terraform_data"]
            pad = pad_for(sizes.get("vmdk_volume", bare), bare)
            dep_pad = pad_for(sizes.get("vmdk_snapshot", bare), bare)
            lab.tf("destroy", "-auto-approve", "-input=false", "-no-color")
        lab.write("main.tf", terraform_data(n, pad))
        lab.tf("init", "-input=false", "-no-color")
        apply, _ = lab.timed_tf(*apply_args)
        plan = statistics.median(lab.timed_tf("plan", "-input=false", "-no-color", par)[0] for _ in range(3))
        lab.write("main.tf", terraform_data(n, pad, dependents=True, dependent_pad=dep_pad))
        dependents, _ = lab.timed_tf(*apply_args)
        lab.write("main.tf", terraform_data(n, pad))
        lab.tf(*apply_args)
        destroy, _ = lab.timed_tf("destroy", "-auto-approve", "-input=false", "-no-color", par)
    finally:
        lab.config = work
    return {"apply": apply, "plan": plan, "dependents": dependents, "destroy": destroy,
            "pad_bytes": [pad, dep_pad]}


def echo_floors(lab: Lab, n: int, threads: int) -> dict[str, Any]:
    """The same commands through bench_echo_provider: our plugin server and plan logic, no vSphere work."""
    import bench_echo_provider

    bench_echo_provider.install(Path(lab.base_env["HOME"]))
    work = lab.config
    lab.config = Path(tempfile.mkdtemp(prefix="echo-", dir=lab.work))
    par = f"-parallelism={threads}"
    apply_args = ("apply", "-auto-approve", "-input=false", "-no-color", par)

    def echo(text: str) -> str:
        return text.replace('source = "pyvmdk/vmdk"', f'source = "{bench_echo_provider.NAMESPACE}/vmdk"')

    try:
        lab.write("main.tf", echo(volumes(n)))
        lab.tf("init", "-input=false", "-no-color")
        out: dict[str, Any] = {"apply": Run(lab, *apply_args)()}
        plans = sorted((Run(lab, "plan", "-input=false", "-no-color", par)() for _ in range(3)),
                       key=lambda r: float(r["s"]))
        out["plan"] = plans[1]
        lab.write("main.tf", echo(snapshots(n)))
        out["snapshots"] = Run(lab, *apply_args)()
        lab.write("main.tf", echo(volumes(n)))
        lab.tf(*apply_args)
        out["destroy"] = Run(lab, "destroy", "-auto-approve", "-input=false", "-no-color", par)()
    finally:
        lab.config = work
    return out


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
    res: dict[str, Any] = {"apply": Run(lab, *apply_args)()}
    plans = sorted((Run(lab, *plan_args)() for _ in range(3)), key=lambda r: float(r["s"]))
    res["plan"] = plans[1]  # the median of three: a plan is short, and one run's noise moves it most
    res["plan_logged"] = Run(lab, *plan_args, log=True)()
    res["plan_counted"] = counted(lab, *plan_args)
    lab.write("main.tf", snapshots(n))
    res["snapshots"] = Run(lab, *apply_args)()
    res["instance_bytes"] = instance_bytes(lab.config / "terraform.tfstate")
    lab.write("main.tf", volumes(n))
    lab.tf(*apply_args)  # the snapshots go
    res["destroy"] = Run(lab, *destroy_args)()
    res["apply_counted"] = counted(lab, *apply_args)
    res["destroy_counted"] = counted(lab, *destroy_args)
    sized = tf_data_floors(lab, n, threads, res["instance_bytes"])
    echo = echo_floors(lab, n, threads)
    return {"n": n, "terraform_data": tfd, "terraform_data_sized": sized, "raw": raw, "provider": res,
            "no_vsphere": echo}


def show(r: dict[str, Any]) -> None:
    n, tfd, raw, p = r["n"], r["terraform_data"], r["raw"], r["provider"]
    sized = r["terraform_data_sized"]
    rows = [("plan (refresh of N)", p["plan"], tfd["plan"], raw["read"], sized["plan"], raw["read"]),
            ("apply N new volumes", p["apply"], tfd["apply"], raw["create"], sized["apply"], raw["create"]),
            ("apply N COW snapshots", p["snapshots"], tfd["apply"], raw["snapshot"], sized["dependents"],
             raw["read"] + raw["snapshot"]),
            ("destroy N volumes", p["destroy"], tfd["destroy"], raw["destroy"], sized["destroy"],
             raw["read"] + raw["destroy"])]
    print(f"\nN = {n}")
    print(f"  {'':<24} {'provider s':>10} {'tf_data s':>9} {'raw s':>7} {'floor s':>8} {'ratio':>6}   "
          f"{'sized floor s':>13} {'ratio':>6} {'RSS MiB':>8}")
    for label, prov, t, v, st, sv in rows:
        floor, sized_floor = t + v, st + sv
        print(f"  {label:<24} {prov['s']:>10.2f} {t:>9.2f} {v:>7.2f} {floor:>8.2f} {prov['s'] / floor:>5.2f}x   "
              f"{sized_floor:>13.2f} {prov['s'] / sized_floor:>5.2f}x {prov['rss_mib']:>8.1f}")
    sizes = ", ".join(f"{k} {v:.0f} B" for k, v in sorted(p["instance_bytes"].items()))
    print(f"  sized floor: terraform_data padded by {sized['pad_bytes'][0]} / {sized['pad_bytes'][1]} bytes to match "
          f"the provider's instances in the state ({sizes}); it also pays the raw read where the command refreshes")
    echo = r.get("no_vsphere")
    if echo:
        print("  no-vSphere floor: the same commands through our plugin server, schemas and plan logic with no vSphere "
              "work (scripts/bench_echo_provider.py);\n  CPU s = Terraform + provider processes, on "
              f"{os.cpu_count()} CPUs")
        print(f"  {'':<24} {'provider s':>10} {'CPU s':>6}   {'no-vSphere s':>12} {'CPU s':>6}   "
              f"{'vSphere work s':>14}")
        for label, key in (("plan (refresh of N)", "plan"), ("apply N new volumes", "apply"),
                           ("apply N COW snapshots", "snapshots"), ("destroy N volumes", "destroy")):
            prov, e = p[key], echo[key]
            print(f"  {label:<24} {prov['s']:>10.2f} {prov['cpu_s']:>6.2f}   {e['s']:>12.2f} {e['cpu_s']:>6.2f}   "
                  f"{prov['s'] - e['s']:>14.2f}")
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
