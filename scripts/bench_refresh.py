#!/usr/bin/env python3
"""Benchmark: `terraform plan` refreshing N imported vmdk_volume vs raw pyvmomi reading them one by one.

    .venv/bin/python scripts/bench_refresh.py [--count 200] [--threads 10] [--runs 3] [--terraform PATH]

Against a fresh vcsim (tests/vcsim):
  1. N volume backings are created directly with the vSphere core (VolumeOps + DatastoreSelector,
     T threads) — not through Terraform;
  2. Terraform state is written by importing them: one `terraform apply` over `import` blocks
     (Terraform >= 1.5), or `terraform import` per resource with older binaries (slow: one Terraform
     run each); the configuration matches, so the following plans must show no changes;
  3. `terraform plan -detailed-exitcode` (refresh of N, -parallelism=T) is timed R times (median);
  4. the reference: a raw pyvmomi script that, for each volume, finds the VM by instance UUID
     (SearchIndex.FindByUuid) and reads the same properties the provider reads (BACKING_PROPERTIES) with
     one RetrieveProperties — sequentially ("one by one"), and with T threads.

Wall times from runs straight to vcsim; requests counted in separate runs through benchlib's counting
proxy (every HTTP request the server receives, from every process Terraform starts, by SOAP method).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import PROVIDER_TF, Lab, dump_json, ratio, raw_connect, report


def create_backings(lab: Lab, count: int, threads: int) -> list[str]:
    from terraform_provider_vmdk.vsphere.connection.session import Session
    from terraform_provider_vmdk.vsphere.placement.datastore import DatastoreSelector, Requirements
    from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
    from terraform_provider_vmdk.vsphere.volumes import specs
    from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

    ids = [str(uuid.uuid4()) for _ in range(count)]
    with Session(lab.connection(via_proxy=False)) as session:
        inventory = Inventory(session, lab.sim.datacenter)
        selector = DatastoreSelector(session, inventory)
        ops = VolumeOps(session, inventory, volume_folder="Volumes")

        def make(i: int) -> None:
            placement = selector.select(Requirements(size_bytes=specs.GiB))
            ops.create_backing(ids[i], f"r-{i}", specs.GiB, "thin", "lsiLogic", placement)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(make, range(count)))
    return ids


def config(count: int) -> str:
    return PROVIDER_TF + f"""
resource "vmdk_volume" "v" {{
  count   = {count}
  name    = "r-${{count.index}}"
  size_gb = 1
}}
"""


def supports_import_blocks(version: str) -> bool:
    try:
        major, minor = (int(x) for x in version.split("v", 1)[1].split(".")[:2])
    except (IndexError, ValueError):
        return False
    return (major, minor) >= (1, 5)


def import_all(lab: Lab, ids: list[str], threads: int, version: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    if supports_import_blocks(version):
        lab.write("imports.tf", "".join(f'import {{\n  to = vmdk_volume.v[{i}]\n  id = "{vid}"\n}}\n'
                                        for i, vid in enumerate(ids)))
        lab.tf("apply", "-auto-approve", "-input=false", "-no-color", f"-parallelism={threads}")
        (lab.config / "imports.tf").unlink()
        how = "one apply over import blocks"
    else:
        for i, vid in enumerate(ids):
            lab.tf("import", "-input=false", "-no-color", f"vmdk_volume.v[{i}]", vid)
        how = "terraform import per resource"
    return time.perf_counter() - t0, how


class RawReader:
    def __init__(self, lab: Lab, via_proxy: bool) -> None:
        from pyVmomi import vim, vmodl

        from terraform_provider_vmdk.vsphere.volumes.backing import BACKING_PROPERTIES

        self.vim, self.vmodl = vim, vmodl
        self.si = raw_connect(lab.connection(via_proxy))
        self.content = self.si.RetrieveContent()
        self.dc = next(e for e in self.content.rootFolder.childEntity
                       if isinstance(e, vim.Datacenter) and e.name == lab.sim.datacenter)
        self.props = list(BACKING_PROPERTIES)

    def read(self, vid: str) -> dict:
        vm = self.content.searchIndex.FindByUuid(datacenter=self.dc, uuid=vid, vmSearch=True, instanceUuid=True)
        pc = self.vmodl.query.PropertyCollector
        spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=vm, skip=False)],
                             propSet=[pc.PropertySpec(type=self.vim.VirtualMachine, pathSet=self.props)])
        (obj,) = self.content.propertyCollector.RetrieveContents([spec])
        props = {p.name: p.val for p in obj.propSet}
        assert props["config.instanceUuid"] == vid
        return props

    def read_all(self, ids: list[str], threads: int) -> float:
        t0 = time.perf_counter()
        if threads <= 1:
            for vid in ids:
                self.read(vid)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(self.read, ids))
        return time.perf_counter() - t0

    def close(self) -> None:
        from pyVim.connect import Disconnect

        Disconnect(self.si)


def raw_run(lab: Lab, ids: list[str], threads: int, via_proxy: bool) -> float:
    raw = RawReader(lab, via_proxy)
    try:
        return raw.read_all(ids, threads)
    finally:
        raw.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3, help="timed plans / raw reads (median reported)")
    parser.add_argument("--terraform")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    n, t = args.count, args.threads
    lab = Lab(args.terraform, args.keep)
    try:
        version = lab.version()
        print(f"bench_refresh: {n} volumes, parallelism {t}, {version}, vcsim {lab.sim.url}")
        t0 = time.perf_counter()
        ids = create_backings(lab, n, t)
        made = time.perf_counter() - t0
        print(f"  created {n} backings with VolumeOps ({t} threads) in {made:.1f}s")
        lab.write("main.tf", config(n))
        lab.tf("init", "-input=false", "-no-color")
        imported, how = import_all(lab, ids, t, version)
        print(f"  imported them into Terraform state ({how}) in {imported:.1f}s")
        plan = ("plan", "-input=false", "-no-color", "-detailed-exitcode", f"-parallelism={t}")
        tf_times = [lab.timed_tf(*plan)[0] for _ in range(args.runs)]  # exit 2 (changes) raises
        with lab.proxy.measure() as m_tf:
            lab.tf(*plan, via_proxy=True)
        raw_seq = statistics.median(raw_run(lab, ids, 1, False) for _ in range(args.runs))
        raw_par = statistics.median(raw_run(lab, ids, t, False) for _ in range(args.runs))
        with lab.proxy.measure() as m_raw:
            raw_run(lab, ids, 1, True)
        tf_med = statistics.median(tf_times)
        report(f"refresh {n} volumes", [
            (f"terraform plan (provider, -parallelism={t})", tf_med, m_tf.total, m_tf.top()),
            ("raw pyvmomi, one by one", raw_seq, m_raw.total, m_raw.top()),
            (f"raw pyvmomi, {t} threads", raw_par, m_raw.total, "(same requests)"),
        ])
        print(f"\nratios provider/raw: wall vs one-by-one {ratio(tf_med, raw_seq)}, vs {t} threads "
              f"{ratio(tf_med, raw_par)}; requests {ratio(m_tf.total, m_raw.total)} "
              f"({m_tf.total} vs {m_raw.total})")
        print(f"terraform plan runs: {', '.join(f'{x:.2f}s' for x in tf_times)}")
        dump_json(args.json, {"count": n, "threads": t, "terraform": version, "create_s": made,
                              "import_s": imported, "import_how": how, "tf_plan_s": tf_times, "raw_seq_s": raw_seq,
                              "raw_par_s": raw_par, "tf_plan_requests": m_tf.total, "raw_requests": m_raw.total,
                              "tf_plan_methods": dict(m_tf.counts), "raw_methods": dict(m_raw.counts)})
        destroy = subprocess.run([lab.terraform, "destroy", "-auto-approve", "-input=false", "-no-color",
                                  f"-parallelism={t}"], cwd=lab.config, env=lab.env(False),
                                 capture_output=True, text=True)
        if destroy.returncode != 0:
            print("note: destroy failed (the simulator is discarded anyway)", file=sys.stderr)
        return 0
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
