"""Every directory under examples/ passes `terraform validate` with each Terraform binary.

The examples are what docs/ shows (scripts/gen_docs.py), so a renamed attribute breaks this test
rather than the documentation silently. Each example is copied into a fresh directory; examples
without their own ``required_providers`` get the header the acceptance tests use.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import tftest

from .conftest import PROVIDER_HEADER, REPO, run

pytestmark = pytest.mark.acceptance

EXAMPLES = REPO / "examples"
DIRECTORIES = sorted(p.parent.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.tf"))
DIRECTORIES = sorted(set(DIRECTORIES))


def registered_types() -> set[str]:
    from terraform_provider_vmdk.cli import build_provider

    provider = build_provider()
    return {r.type_name for r in provider.resources()} | {d.type_name for d in provider.data_sources()}


def used_types(directory: Path) -> set[str]:
    text = "\n".join(p.read_text() for p in directory.glob("*.tf"))
    return set(re.findall(r'^\s*(?:resource|data)\s+"(vmdk_\w+)"', text, re.M))


def test_examples_exist() -> None:
    assert "provider" in DIRECTORIES
    assert "resources/vmdk_volume" in DIRECTORIES and "resources/vmdk_snapshot" in DIRECTORIES
    assert (EXAMPLES / "resources" / "vmdk_volume" / "import.sh").is_file()
    assert (EXAMPLES / "resources" / "vmdk_snapshot" / "import.sh").is_file()


@pytest.mark.parametrize("example", DIRECTORIES)
def test_example_validates(example: str, terraform_binary: str, tf_env: dict[str, str], tmp_path: Path) -> None:
    source = EXAMPLES / example
    assert used_types(source) <= registered_types(), "an example uses a type the provider does not have"
    work = tmp_path / example.replace("/", "_")
    shutil.copytree(source, work, ignore=shutil.ignore_patterns("*.sh", ".terraform*"))
    if not any("required_providers" in p.read_text() for p in work.glob("*.tf")):
        (work / "versions.tf").write_text(PROVIDER_HEADER)
    env = dict(tf_env)
    tf = tftest.TerraformTest(str(work), binary=terraform_binary, env=env)
    tf.setup(cleanup_on_exit=False)
    proc = run(tf, "validate", "-json")
    result = json.loads(proc.stdout)
    assert proc.returncode == 0 and result["valid"], json.dumps(result.get("diagnostics"), indent=2)
    assert not [d for d in result.get("diagnostics", []) if d.get("severity") == "warning"], result
    fmt = run(tf, "fmt", "-check", "-diff")
    assert fmt.returncode == 0, f"examples/{example} is not `terraform fmt`-formatted:\n{fmt.stdout}"
