#!/usr/bin/env python3
"""Peak provider memory and throughput of a 1 GiB image round trip through real Terraform against vcsim.

    .venv/bin/python scripts/bench_data_io.py [--gib 1] [--terraform PATH] [--json out.json]

What it does: writes a raw disk of random bytes (``--gib`` GiB, so nothing compresses away), converts it with
qemu-img into a monolithicSparse VMDK, then runs two applies with the same provider and vcsim:

* baseline — one empty volume of that size (what the provider needs anyway);
* round trip — a volume from the sparse image (datastore upload + CopyVirtualDisk), its disk exported
  ``flat`` (datastore download) and ``streamOptimized`` (ExportVm lease), in one apply.

A sampler polls ``VmHWM`` (the kernel's peak resident set) of every provider process Terraform starts, so
the peak is exact, not a sample. The target (issue 10): the round trip raises the provider's peak by at
most 64 MiB over the baseline — the data streams, it is never held in memory. Both exports are checked
against the raw disk with ``qemu-img compare``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import PROVIDER_TF, Lab, dump_json

MiB = 1 << 20
TARGET_MIB = 64


class PeakMemory:
    """The largest VmHWM of any running provider process while active (kB → MiB)."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _provider_pids(self) -> list[str]:
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"terraform_provider_vmdk" in cmdline and b"bench_data_io" not in cmdline:
                pids.append(pid)
        return pids

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self._provider_pids():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                except OSError:
                    pass
            time.sleep(0.02)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak_kb / 1024


def make_image(work: Path, gib: int) -> tuple[Path, Path]:
    raw = work / "disk.raw"
    with raw.open("wb") as fh:
        for _ in range(gib * 1024):
            fh.write(os.urandom(MiB))
    sparse = work / "disk-sparse.vmdk"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse",
                    str(raw), str(sparse)], check=True, capture_output=True)
    return raw, sparse


def same(path: Path, raw: Path, fmt: str) -> bool:
    return subprocess.run(["qemu-img", "compare", "-q", "-f", fmt, "-F", "raw", str(path), str(raw)]).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=int, default=1)
    parser.add_argument("--terraform")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    lab = Lab(args.terraform, args.keep)
    try:
        raw, sparse = make_image(lab.work, args.gib)
        out = lab.work / "out"
        print(f"bench_data_io: {args.gib} GiB of random data, sparse image {sparse.stat().st_size / MiB:.0f} MiB, "
              f"{lab.version()}, vcsim {lab.sim.url}")
        baseline_tf = PROVIDER_TF + f'resource "vmdk_volume" "v" {{\n  name = "baseline"\n  size_gb = {args.gib}\n}}\n'
        lab.write("main.tf", baseline_tf)
        lab.tf("init", "-input=false", "-no-color")
        with PeakMemory() as base:
            t_base, _ = lab.timed_tf("apply", "-auto-approve", "-input=false", "-no-color")
        lab.tf("destroy", "-auto-approve", "-input=false", "-no-color")

        lab.write("main.tf", PROVIDER_TF + f"""
resource "vmdk_volume" "v" {{
  name    = "round-trip"
  size_gb = {args.gib}
  image {{
    source    = "{sparse}"
    disk_type = "sparse"
  }}
}}
resource "vmdk_volume_export" "flat" {{
  volume_id = vmdk_volume.v.id
  path      = "{out}/disk.flat"
  format    = "flat"
}}
resource "vmdk_volume_export" "so" {{
  volume_id = vmdk_volume.v.id
  path      = "{out}/disk.vmdk"
}}
""")
        with PeakMemory() as trip:
            t_trip, _ = lab.timed_tf("apply", "-auto-approve", "-input=false", "-no-color")
        flat_ok, so_ok = same(out / "disk.flat", raw, "raw"), same(out / "disk.vmdk", raw, "vmdk")
        lab.tf("destroy", "-auto-approve", "-input=false", "-no-color")

        moved = args.gib * 3  # in, out flat, out streamOptimized
        delta = trip.peak_mib - base.peak_mib
        print(f"\n  {'':<44} {'wall s':>8} {'peak RSS MiB':>13}")
        print(f"  {'baseline: empty volume':<44} {t_base:>8.2f} {base.peak_mib:>13.1f}")
        print(f"  {'round trip: sparse in, flat + VMDK out':<44} {t_trip:>8.2f} {trip.peak_mib:>13.1f}")
        print(f"\npeak provider memory above baseline: {delta:+.1f} MiB (target <= +{TARGET_MIB} MiB): "
              f"{'OK' if delta <= TARGET_MIB else 'OVER'}")
        print(f"data moved: {moved} GiB in {t_trip - t_base:.1f} s beyond the baseline "
              f"({moved * 1024 / max(t_trip - t_base, 0.001):.0f} MiB/s)")
        print(f"byte-identical (qemu-img compare): flat {flat_ok}, streamOptimized {so_ok}")
        dump_json(args.json, {"gib": args.gib, "terraform": lab.version(), "baseline_s": t_base, "round_trip_s": t_trip,
                              "baseline_peak_mib": base.peak_mib, "round_trip_peak_mib": trip.peak_mib,
                              "delta_mib": delta, "flat_identical": flat_ok, "stream_identical": so_ok})
        return 0 if delta <= TARGET_MIB and flat_ok and so_ok else 1
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
