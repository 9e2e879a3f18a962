#!/usr/bin/env python3
"""Benchmark: `terraform apply` of N vmdk_volume at -parallelism=10 vs raw pyvmomi creating the same backings.

    .venv/bin/python scripts/bench_apply.py [--count 50] [--threads 10] [--terraform PATH] [--json FILE]

Against a fresh vcsim (tests/vcsim). Provider side: `terraform apply -parallelism=T` of a configuration
with `count = N` 1 GiB thin volumes (placement by the provider's DatastoreSelector), then `destroy`.
Raw side: one SmartConnect session, T threads, each volume = CreateVM_Task with the same ConfigSpec
(specs.create_spec: controller, disk, extraConfig marks, annotation) on a datastore/host/pool chosen
once up front, task polling, one read of the devices, ReconfigVM_Task stamping the disk UUID when it
differs; then Destroy_Task. The raw script does no placement per volume, no in-use checks, no refresh
and no Terraform process start-up: it is the floor, not a competitor.

Wall times come from runs straight to vcsim; requests are counted in separate runs through a counting
proxy (benchlib.CountingProxy: every HTTP request the server receives, from every process, by SOAP
method). Prints times, requests and ratios; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import PROVIDER_TF, Lab, dump_json, ratio, raw_connect, raw_wait, report


def config(count: int) -> str:
    return PROVIDER_TF + f"""
resource "vmdk_volume" "v" {{
  count   = {count}
  name    = "bench-${{count.index}}"
  size_gb = 1
}}
"""


class RawCreator:
    """Raw pyvmomi: create/delete shadow VMs like the provider's, with T threads on one connection."""

    def __init__(self, lab: Lab, via_proxy: bool) -> None:
        from pyVmomi import vim

        self.vim = vim
        self.si = raw_connect(lab.connection(via_proxy))
        content = self.si.RetrieveContent()
        dc = next(e for e in content.rootFolder.childEntity if isinstance(e, vim.Datacenter) and e.name == "DC0")
        ds = next(d for d in dc.datastore if d.name == "ds-big")
        host = ds.host[0].key
        self.pool = host.parent.resourcePool
        self.host = host
        self.ds_name = ds.name
        self.folder = next((f for f in dc.vmFolder.childEntity if isinstance(f, vim.Folder) and f.name == "RawBench"),
                           None) or dc.vmFolder.CreateFolder("RawBench")
        self.content = content

    def create(self, index: int) -> object:
        from terraform_provider_vmdk.vsphere.volumes import specs

        vid = str(uuid.uuid4())
        spec = specs.create_spec(name=specs.backing_name(vid), volume_id=vid, size_in_kb=specs.size_kb(specs.GiB),
                                 disk_type="thin", adapter_type="lsiLogic", datastore_name=self.ds_name,
                                 annotation=specs.encode_annotation(f"raw-{index}", None))
        vm = raw_wait(self.folder.CreateVM_Task(config=spec, pool=self.pool, host=self.host), 0.5)
        disk = next(d for d in vm.config.hardware.device if isinstance(d, self.vim.vm.device.VirtualDisk))
        if (disk.backing.uuid or "").lower() != vid:
            raw_wait(vm.ReconfigVM_Task(spec=specs.disk_uuid_spec(disk, vid)), 0.5)
        return vm

    def delete(self, vm: object) -> None:
        raw_wait(vm.Destroy_Task(), 0.5)

    def close(self) -> None:
        from pyVim.connect import Disconnect

        Disconnect(self.si)


def raw_round(lab: Lab, count: int, threads: int, via_proxy: bool) -> tuple[float, float]:
    raw = RawCreator(lab, via_proxy)
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            vms = list(pool.map(raw.create, range(count)))
        created = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(raw.delete, vms))
        deleted = time.perf_counter() - t0
    finally:
        raw.close()
    return created, deleted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--threads", type=int, default=10, help="terraform -parallelism and raw threads")
    parser.add_argument("--terraform")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    n, t = args.count, args.threads
    lab = Lab(args.terraform, args.keep)
    try:
        print(f"bench_apply: {n} volumes, parallelism {t}, {lab.version()}, vcsim {lab.sim.url}")
        lab.write("main.tf", config(n))
        lab.tf("init", "-input=false", "-no-color")
        par = f"-parallelism={t}"
        # provider, timed (direct)
        tf_apply, _ = lab.timed_tf("apply", "-auto-approve", "-input=false", "-no-color", par)
        tf_destroy, _ = lab.timed_tf("destroy", "-auto-approve", "-input=false", "-no-color", par)
        # provider, counted (through the proxy)
        with lab.proxy.measure() as m_apply:
            lab.tf("apply", "-auto-approve", "-input=false", "-no-color", par, via_proxy=True)
        with lab.proxy.measure() as m_destroy:
            lab.tf("destroy", "-auto-approve", "-input=false", "-no-color", par, via_proxy=True)
        # raw, timed then counted
        raw_create, raw_delete = raw_round(lab, n, t, via_proxy=False)
        with lab.proxy.measure() as m_raw:
            raw_round(lab, n, t, via_proxy=True)
        # raw create/delete split of the counted run is not separable; count create alone once more
        with lab.proxy.measure() as m_raw_create:
            raw = RawCreator(lab, via_proxy=True)
            with ThreadPoolExecutor(t) as pool:
                vms = list(pool.map(raw.create, range(n)))
        with ThreadPoolExecutor(t) as pool:
            list(pool.map(raw.delete, vms))
        raw.close()

        report(f"create {n} volumes ({t} in parallel)", [
            ("terraform apply (provider)", tf_apply, m_apply.total, m_apply.top()),
            ("raw pyvmomi create", raw_create, m_raw_create.total, m_raw_create.top()),
        ])
        report(f"delete {n} volumes", [
            ("terraform destroy (provider, incl. refresh)", tf_destroy, m_destroy.total, m_destroy.top()),
            ("raw pyvmomi delete", raw_delete, m_raw.total - m_raw_create.total, ""),
        ])
        print(f"\nratios provider/raw: apply wall {ratio(tf_apply, raw_create)}, "
              f"requests {ratio(m_apply.total, m_raw_create.total)}; destroy wall {ratio(tf_destroy, raw_delete)}")
        print(f"per volume: provider {m_apply.total / n:.1f} requests, raw {m_raw_create.total / n:.1f}")
        dump_json(args.json, {"count": n, "threads": t, "terraform": lab.version(),
                              "tf_apply_s": tf_apply, "tf_destroy_s": tf_destroy, "raw_create_s": raw_create,
                              "raw_delete_s": raw_delete, "tf_apply_requests": m_apply.total,
                              "tf_destroy_requests": m_destroy.total, "raw_create_requests": m_raw_create.total,
                              "tf_apply_methods": dict(m_apply.counts),
                              "raw_create_methods": dict(m_raw_create.counts)})
        return 0
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
