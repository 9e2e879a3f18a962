"""`terraform-provider-vmdk install`: the launcher, and the package's bytecode written even where Python
is told not to write bytecode at import (each Terraform launch would otherwise compile every module)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import terraform_provider_vmdk


def _copy_of_package(tmp_path: Path) -> Path:
    source = Path(terraform_provider_vmdk.__file__).resolve().parent
    target = tmp_path / "src" / "terraform_provider_vmdk"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_install_writes_the_launcher_and_bytecode_despite_dont_write_bytecode(tmp_path):
    package = _copy_of_package(tmp_path)
    home = tmp_path / "home"
    env = dict(os.environ, HOME=str(home), PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(package.parent))
    out = subprocess.run([sys.executable, "-m", "terraform_provider_vmdk", "install"], env=env, check=True,
                         capture_output=True, text=True, cwd=tmp_path)
    launcher = Path(out.stdout.strip())
    assert launcher.is_file() and os.access(launcher, os.X_OK)
    assert launcher.is_relative_to(home / ".terraform.d" / "plugins")
    assert out.stderr == ""
    for module in ("cli.py", "plugin/server.py", "framework/server.py", "resources/volume.py",
                   "vsphere/connection/session.py"):
        source = package / module
        cached = Path(importlib.util.cache_from_source(str(source)))
        assert cached.is_file(), f"no bytecode for {module}"


def test_install_on_a_read_only_package_still_installs(tmp_path):
    package = _copy_of_package(tmp_path)
    for directory, _, _ in os.walk(package):
        os.chmod(directory, 0o555)
    try:
        env = dict(os.environ, HOME=str(tmp_path / "home"), PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=str(package.parent))
        out = subprocess.run([sys.executable, "-m", "terraform_provider_vmdk", "install"], env=env,
                             capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert Path(out.stdout.strip()).is_file()
        if os.geteuid() != 0:  # root writes anyway
            assert not (package / "__pycache__").exists()
    finally:
        for directory, _, _ in os.walk(package):
            os.chmod(directory, 0o755)
