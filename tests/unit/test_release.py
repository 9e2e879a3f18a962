"""scripts/release.py's pure parts: the deterministic zip, Terraform's h1:/zh: hashes, SHA256SUMS, the mirror's
JSON; and the pins of its build requirements against pyproject.toml."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_release():
    spec = importlib.util.spec_from_file_location("release_script", ROOT / "scripts" / "release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["release_script"] = module
    spec.loader.exec_module(module)
    return module


release = _load_release()


def _tree(root: Path) -> Path:
    (root / "_internal" / "pkg").mkdir(parents=True)
    exe = root / "terraform-provider-vmdk_v1.2.3"
    exe.write_bytes(b"\x7fELF pretend")
    exe.chmod(0o700)
    (root / "_internal" / "libx.so").write_bytes(b"lib" * 1000)
    (root / "_internal" / "libx.so").chmod(0o775)
    (root / "_internal" / "pkg" / "b.pyc").write_bytes(b"b")
    (root / "_internal" / "pkg" / "a.pyc").write_bytes(b"a")
    (root / "_internal" / "pkg" / "a.pyc").chmod(0o600)
    (root / "_internal" / "pkg" / "link.pyc").symlink_to("a.pyc")
    return root


def test_zip_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one")
    two = tmp_path / "two"
    shutil.copytree(one, two, symlinks=True)
    os.utime(two / "_internal" / "pkg" / "b.pyc", (1_000_000_000, 1_000_000_000))  # mtimes do not matter
    release.write_zip(one, tmp_path / "one.zip")
    release.write_zip(two, tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()


def test_zip_entries_sorted_files_only_fixed_time_and_modes(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    dest = tmp_path / "p.zip"
    release.write_zip(root, dest, epoch=1_700_000_000)
    with zipfile.ZipFile(dest) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert names == ["_internal/libx.so", "_internal/pkg/a.pyc", "_internal/pkg/b.pyc",
                         "_internal/pkg/link.pyc", "terraform-provider-vmdk_v1.2.3"]
        assert not any(i.is_dir() for i in infos)  # Terraform's h1: of the zip would count them, of the dir not
        assert {i.date_time for i in infos} == {(2023, 11, 14, 22, 13, 20)}
        modes = {i.filename: (i.external_attr >> 16) for i in infos}
        assert modes["terraform-provider-vmdk_v1.2.3"] == 0o100755
        assert modes["_internal/libx.so"] == 0o100755
        assert modes["_internal/pkg/a.pyc"] == 0o100644
        assert all(i.create_system == 3 for i in infos)
        assert zf.read("_internal/pkg/link.pyc") == b"a"  # a symlink is stored as the file it names
    release.write_zip(root, dest)  # no SOURCE_DATE_EPOCH: the earliest time a zip holds
    with zipfile.ZipFile(dest) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def _dirhash_h1(files: dict[str, bytes]) -> str:
    """golang.org/x/mod/sumdb/dirhash.Hash1, written out from its definition."""
    summary = "".join(f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def test_h1_of_zip_and_of_the_unpacked_dir_agree_with_dirhash(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    dest = tmp_path / "p.zip"
    release.write_zip(root, dest)
    with zipfile.ZipFile(dest) as zf:
        contents = {name: zf.read(name) for name in zf.namelist()}
        zf.extractall(tmp_path / "unpacked")
    expected = _dirhash_h1(contents)
    assert release.h1_of_zip(dest) == expected
    assert release.h1_of_dir(tmp_path / "unpacked") == expected
    assert len(expected) == len("h1:") + 44
    assert release.zh_of_zip(dest) == "zh:" + hashlib.sha256(dest.read_bytes()).hexdigest()


def test_sha256sums_format_is_what_sha256sum_checks(tmp_path: Path) -> None:
    b = tmp_path / "terraform-provider-vmdk_1.2.3_manifest.json"
    a = tmp_path / "terraform-provider-vmdk_1.2.3_linux_amd64.zip"
    b.write_text('{"version": 1}\n')
    a.write_bytes(b"zip")
    text = release.sha256sums_text([b, a])
    lines = text.splitlines(keepends=True)
    assert lines == [f"{hashlib.sha256(b'zip').hexdigest()}  {a.name}\n",
                     f"{hashlib.sha256(b.read_bytes()).hexdigest()}  {b.name}\n"]
    if shutil.which("sha256sum"):
        (tmp_path / "SUMS").write_text(text)
        subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "SUMS"], cwd=tmp_path, check=True)


def test_mirror_indexes_follow_the_network_mirror_protocol(tmp_path: Path) -> None:
    zips = []
    for version, platform in (("1.2.3", "linux_amd64"), ("1.2.3", "darwin_arm64"), ("1.3.0", "linux_amd64")):
        root = tmp_path / f"{version}-{platform}"
        root.mkdir()
        (root / f"terraform-provider-vmdk_v{version}").write_text(platform)
        zips.append(tmp_path / release.zip_name(version, platform))
        release.write_zip(root, zips[-1])
    index, per_version = release.mirror_indexes(zips)
    assert index == {"versions": {"1.2.3": {}, "1.3.0": {}}}
    archive = per_version["1.2.3"]["archives"]["darwin_arm64"]
    assert archive["url"] == "terraform-provider-vmdk_1.2.3_darwin_arm64.zip"  # relative to <version>.json
    assert archive["hashes"] == [release.h1_of_zip(zips[1]), release.zh_of_zip(zips[1])]
    assert set(per_version["1.2.3"]["archives"]) == {"linux_amd64", "darwin_arm64"}
    with pytest.raises(ValueError):
        release.mirror_indexes([tmp_path / "something.zip"])


def test_write_mirror_packed_layout_keeps_earlier_versions(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    built = []
    for version in ("1.0.0", "1.1.0"):
        root = tmp_path / version
        root.mkdir()
        (root / f"terraform-provider-vmdk_v{version}").write_text(version)
        built.append(tmp_path / release.zip_name(version, "linux_amd64"))
        release.write_zip(root, built[-1])
    release.write_mirror(mirror, built[:1])
    target = release.write_mirror(mirror, built[1:])
    assert target == mirror / "registry.terraform.io" / "pyvmdk" / "vmdk"
    assert sorted(p.name for p in target.iterdir()) == [
        "1.0.0.json", "1.1.0.json", "index.json",
        "terraform-provider-vmdk_1.0.0_linux_amd64.zip", "terraform-provider-vmdk_1.1.0_linux_amd64.zip"]
    assert json.loads((target / "index.json").read_text()) == {"versions": {"1.0.0": {}, "1.1.0": {}}}
    doc = json.loads((target / "1.1.0.json").read_text())
    assert doc["archives"]["linux_amd64"]["hashes"][1] == release.zh_of_zip(built[1])


def test_names_and_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    import terraform_provider_vmdk

    assert release.read_version() == version == terraform_provider_vmdk.__version__
    assert release.zip_name("1.2.3", "linux_amd64") == "terraform-provider-vmdk_1.2.3_linux_amd64.zip"
    assert release.executable_name("1.2.3") == "terraform-provider-vmdk_v1.2.3"
    assert release.sums_name("1.2.3") == "terraform-provider-vmdk_1.2.3_SHA256SUMS"
    assert release.manifest_name("1.2.3") == "terraform-provider-vmdk_1.2.3_manifest.json"
    from terraform_provider_vmdk.plugin.install import go_platform

    assert release.go_platform() == go_platform()


def test_build_requirements_are_pinned_within_pyproject_ranges() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "scripts" / "release-requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    assert "pyinstaller" in pins
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(dep)
        assert canonicalize_name(req.name) in pins, f"{req.name} is not pinned for the release build"
        assert req.specifier.contains(pins[canonicalize_name(req.name)]), (dep, pins[canonicalize_name(req.name)])


def test_dependency_floors_cover_the_generated_stubs() -> None:
    """grpcio and protobuf older than the versions that generated plugin/_generated refuse to load it."""
    import re

    from packaging.requirements import Requirement
    from packaging.version import Version

    generated = ROOT / "provider" / "terraform_provider_vmdk" / "plugin" / "_generated"
    grpc_versions = {re.search(r"GRPC_GENERATED_VERSION = '([^']+)'", p.read_text())[1]  # type: ignore[index]
                     for p in generated.glob("*_pb2_grpc.py")}
    pb_versions = {".".join(m) for p in generated.glob("*_pb2.py") for m in re.findall(
        r"_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),", p.read_text())}
    deps = {Requirement(d).name: Requirement(d).specifier
            for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    for name, versions in (("grpcio", grpc_versions), ("grpcio-health-checking", grpc_versions),
                           ("protobuf", pb_versions)):
        need = max(Version(v) for v in versions)
        floors = [Version(s.version) for s in deps[name] if s.operator == ">="]
        assert floors and min(floors) >= need, f"{name}: {deps[name]} admits versions older than {need}"
