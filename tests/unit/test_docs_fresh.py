"""docs/ must match what scripts/gen_docs.py generates from the schemas and examples/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docs_are_fresh() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"stale docs; run scripts/gen_docs.py\n{proc.stdout}\n{proc.stderr}"


def test_every_type_has_a_page_and_an_example() -> None:
    from terraform_provider_vmdk.cli import build_provider

    provider = build_provider()
    assert (ROOT / "docs" / "index.md").is_file()
    assert (ROOT / "examples" / "provider" / "provider.tf").is_file()
    for res in provider.resources():
        short = res.type_name.removeprefix("vmdk_")
        assert (ROOT / "docs" / "resources" / f"{short}.md").is_file(), res.type_name
        assert (ROOT / "examples" / "resources" / res.type_name / "resource.tf").is_file(), res.type_name
        importable = (ROOT / "examples" / "resources" / res.type_name / "import.sh").is_file()
        assert importable == res.importable, res.type_name
    for ds in provider.data_sources():
        short = ds.type_name.removeprefix("vmdk_")
        assert (ROOT / "docs" / "data-sources" / f"{short}.md").is_file(), ds.type_name
        assert (ROOT / "examples" / "data-sources" / ds.type_name / "data-source.tf").is_file(), ds.type_name


def test_page_shows_kinds_constraints_and_replacement() -> None:
    page = (ROOT / "docs" / "resources" / "volume.md").read_text()
    assert "### Required" in page and "### Optional" in page and "### Read-Only" in page
    assert "- `source_volume_id` (String)" in page
    snapshot = (ROOT / "docs" / "resources" / "snapshot.md").read_text()
    line = next(x for x in snapshot.splitlines() if x.startswith("- `volume_id`"))
    assert "Changing this forces a new resource." in line
    assert "### Nested Schema for `timeouts`" in page
    assert "## Example Usage" in page and "## Import" in page
    index = (ROOT / "docs" / "index.md").read_text()
    assert "`VSPHERE_SERVER`" in index and "(String, Sensitive)" in index


def test_generation_is_deterministic() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_docs
    finally:
        sys.path.pop(0)
    assert gen_docs.build() == gen_docs.build()
