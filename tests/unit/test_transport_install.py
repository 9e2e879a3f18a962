"""install(): launcher in the implied local mirror, idempotent, loud when it changes."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from terraform_provider_vmdk.plugin import install as inst


def test_install_writes_executable_launcher(tmp_path: Path, capsys) -> None:
    path = inst.install("0.1.0", home=tmp_path)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert path == (tmp_path / ".terraform.d/plugins/registry.terraform.io/pyvmdk/vmdk/0.1.0"
                    / f"linux_{arch}" / "terraform-provider-vmdk_v0.1.0")
    assert os.access(path, os.X_OK)
    text = path.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert f'exec {os.path.abspath(sys.executable)} -m terraform_provider_vmdk "$@"' in text
    assert capsys.readouterr().err == ""


def test_install_is_idempotent(tmp_path: Path, capsys) -> None:
    path = inst.install("0.1.0", home=tmp_path)
    mtime = path.stat().st_mtime_ns
    inode = path.stat().st_ino
    assert inst.install("0.1.0", home=tmp_path) == path
    assert path.stat().st_mtime_ns == mtime and path.stat().st_ino == inode
    assert capsys.readouterr().err == ""


def test_changed_launcher_is_rewritten_with_lock_warning(tmp_path: Path, capsys) -> None:
    path = inst.install("0.1.0", home=tmp_path)
    path.write_text("#!/bin/sh\nexec /old/python -m terraform_provider_vmdk \"$@\"\n")
    assert inst.install("0.1.0", home=tmp_path) == path
    assert "/old/python" not in path.read_text()
    err = capsys.readouterr().err
    assert ".terraform.lock.hcl" in err and "terraform init -upgrade" in err and "h1:" in err
    assert os.access(path, os.X_OK)


def test_launcher_runs_the_package(tmp_path: Path) -> None:
    """The launcher execs the package with this interpreter (no cookie: it must refuse)."""
    path = inst.install("9.9.9", home=tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PLUGIN_"))}
    proc = subprocess.run([str(path)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "This binary is a plugin" in proc.stderr
