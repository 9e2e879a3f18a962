"""`install` from the packaged provider (sys.frozen, as PyInstaller sets it): it copies the executable and its
_internal/ folder into the implied local mirror, as Terraform would unpack the release zip there."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from terraform_provider_vmdk.plugin import install as inst


@pytest.fixture
def frozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    unpacked = tmp_path / "unpacked"
    (unpacked / "_internal" / "pkg").mkdir(parents=True)
    exe = unpacked / "terraform-provider-vmdk_v0.1.0"
    exe.write_bytes(b"\x7fELF")
    exe.chmod(0o755)
    (unpacked / "_internal" / "libpython.so").write_bytes(b"lib")
    (unpacked / "_internal" / "pkg" / "mod.pyc").write_bytes(b"pyc")
    (unpacked / "README.txt").write_text("not part of the package")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))
    monkeypatch.setattr(sys, "_MEIPASS", str(unpacked / "_internal"), raising=False)
    return unpacked


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_frozen_install_copies_the_package(frozen: Path, tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    path = inst.install("0.1.0", home=home)
    assert path == inst.launcher_path("0.1.0", home)
    assert os.access(path, os.X_OK) and path.read_bytes() == b"\x7fELF"
    assert _listing(path.parent) == ["_internal", "_internal/libpython.so", "_internal/pkg", "_internal/pkg/mod.pyc",
                                     "terraform-provider-vmdk_v0.1.0"]
    assert capsys.readouterr().err == ""
    inode = path.stat().st_ino
    assert inst.install("0.1.0", home=home) == path  # idempotent: nothing rewritten, no warning
    assert path.stat().st_ino == inode and capsys.readouterr().err == ""
    (frozen / "_internal" / "pkg" / "mod.pyc").write_bytes(b"newer")
    inst.install("0.1.0", home=home)
    assert (path.parent / "_internal" / "pkg" / "mod.pyc").read_bytes() == b"newer"
    err = capsys.readouterr().err
    assert ".terraform.lock.hcl" in err and "terraform init -upgrade" in err
    assert not [p for p in path.parent.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_frozen_install_replaces_a_venv_launcher_and_back(frozen: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    home = tmp_path / "home"
    monkeypatch.setattr(sys, "frozen", False)
    monkeypatch.setattr(sys, "executable", "/venv/bin/python")
    launcher = inst.install("0.1.0", home=home)
    assert "/venv/bin/python -m terraform_provider_vmdk" in launcher.read_text()
    monkeypatch.setattr(sys, "frozen", True)
    monkeypatch.setattr(sys, "executable", str(frozen / "terraform-provider-vmdk_v0.1.0"))
    capsys.readouterr()
    inst.install("0.1.0", home=home)
    assert launcher.read_bytes() == b"\x7fELF" and (launcher.parent / "_internal").is_dir()
    assert "warning: replaced the installation" in capsys.readouterr().err
    monkeypatch.setattr(sys, "frozen", False)
    monkeypatch.setattr(sys, "executable", "/venv/bin/python")
    inst.install("0.1.0", home=home)  # back to the venv: the packaged provider's folder goes too
    assert _listing(launcher.parent) == ["terraform-provider-vmdk_v0.1.0"]
    assert "warning: replaced the launcher" in capsys.readouterr().err


def test_running_the_installed_copy_installs_nothing(frozen: Path, tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    path = inst.install("0.1.0", home=home)
    monkeypatch.setattr(sys, "executable", str(path))
    monkeypatch.setattr(sys, "_MEIPASS", str(path.parent / "_internal"))
    assert inst.install("0.1.0", home=home) == path


def test_frozen_without_its_folder_says_how_to_install(frozen: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "elsewhere" / "_internal"))
    with pytest.raises(SystemExit, match="unpack the release zip"):
        inst.install("0.1.0", home=tmp_path / "home")
