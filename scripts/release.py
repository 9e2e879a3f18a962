#!/usr/bin/env python3
"""Build the release artefacts that Terraform installs by itself: no Python needed where they run.

    python3 scripts/release.py [--gpg-key ID] [--mirror DIR] [--reuse] [--no-build]

writes, for the version in pyproject.toml and this machine's platform (Go's names, e.g. linux_amd64):

    dist/terraform-provider-vmdk_<ver>_<os>_<arch>.zip   the provider: the executable terraform-provider-vmdk_v<ver>
                                                          at the zip's root, its support folder _internal/ beside it
                                                          (a PyInstaller onedir build: Python, the package and its
                                                          dependencies; nothing is unpacked at start-up)
    dist/terraform-provider-vmdk_<ver>_manifest.json     terraform-registry-manifest.json, as the registry wants it
    dist/terraform-provider-vmdk_<ver>_SHA256SUMS         sha256 of every zip of <ver> in dist/ and of the manifest
    dist/terraform-provider-vmdk_<ver>_SHA256SUMS.sig     a detached binary GPG signature of the sums (--gpg-key)

and with ``--mirror DIR`` a provider mirror that Terraform reads both as a ``filesystem_mirror`` (the packed
layout: DIR/registry.terraform.io/pyvmdk/vmdk/<zip>) and, served by any static HTTPS server, as a
``network_mirror`` (index.json and <ver>.json beside the zips, with the h1: and zh: hashes of each zip).

It needs nothing but the ``python3`` that runs it: the build environment is a venv under dist/.build/ with the
pinned packages of scripts/release-requirements.txt (the provider's dependencies and PyInstaller, from PyPI),
and the package is taken from provider/ as it is in this tree. Everything it writes is under dist/ (and DIR).

Reproducible: the same tree, requirements, Python and platform give the same zip, byte for byte. PyInstaller
runs with PYTHONHASHSEED=0 and SOURCE_DATE_EPOCH; the zip has sorted entries, one fixed timestamp
(SOURCE_DATE_EPOCH when set, else 1980-01-01), modes 0755/0644 only, no directory entries and no symlinks (so
that Terraform's h1: hash of the zip equals the one of the directory it unpacks, see ``h1_of_zip``).

``--reuse``: skip the build when dist/ holds one made from the same inputs (dist/.build/inputs.json records
them and the zip's sha256). ``--no-build``: only (re)write the sums, signature and mirror from the zips in
dist/ — e.g. after copying in the zips built on other platforms.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAME = "terraform-provider-vmdk"
HOSTNAME, NAMESPACE, TYPE = "registry.terraform.io", "pyvmdk", "vmdk"
REQUIREMENTS = REPO / "scripts" / "release-requirements.txt"
ZIP_EPOCH_DEFAULT = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can hold
ENTRY_SCRIPT = "import sys\n\nfrom terraform_provider_vmdk.cli import main\n\nsys.exit(main())\n"
CONTENTS_DIR = "_internal"


# ----------------------------------------------------------------------------------------------- names
def read_version(repo: Path = REPO) -> str:
    """The version in pyproject.toml; the package's ``__version__`` must say the same."""
    version = str(tomllib.loads((repo / "pyproject.toml").read_text())["project"]["version"])
    init = (repo / "provider" / "terraform_provider_vmdk" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', init, re.MULTILINE)
    if found is None or found.group(1) != version:
        raise SystemExit(f"pyproject.toml says version {version}, terraform_provider_vmdk.__version__ says "
                         f"{found.group(1) if found else 'nothing'}: make them equal")
    return version


def go_platform() -> str:
    """This machine as Terraform names platforms (the same function ``install`` uses)."""
    sys.path.insert(0, str(REPO / "provider"))
    try:
        from terraform_provider_vmdk.plugin.install import go_platform as platform_name
    finally:
        sys.path.pop(0)
    return platform_name()


def executable_name(version: str) -> str:
    return f"{NAME}_v{version}"


def zip_name(version: str, platform: str) -> str:
    return f"{NAME}_{version}_{platform}.zip"


def sums_name(version: str) -> str:
    return f"{NAME}_{version}_SHA256SUMS"


def manifest_name(version: str) -> str:
    return f"{NAME}_{version}_manifest.json"


ZIP_RE = re.compile(rf"^{re.escape(NAME)}_(?P<version>[^_]+)_(?P<platform>[a-z0-9]+_[a-z0-9]+)\.zip$")


# ----------------------------------------------------------------------------------------------- zip
def _zip_mode(path: Path) -> int:
    return 0o755 if path.stat().st_mode & 0o111 else 0o644


def package_files(root: Path) -> list[tuple[str, Path]]:
    """(name in the zip, file) for every file under ``root``, sorted by name; symlinks are followed (stored
    as the file they point to), directories get no entry of their own."""
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for filename in filenames:
            path = Path(dirpath, filename)
            out.append((path.relative_to(root).as_posix(), path))
    return sorted(out)


def write_zip(root: Path, dest: Path, epoch: int = ZIP_EPOCH_DEFAULT) -> None:
    """Zip the files under ``root`` deterministically (see the module's docstring) into ``dest``."""
    date_time = time.gmtime(max(epoch, ZIP_EPOCH_DEFAULT))[:6]
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, path in package_files(root):
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.create_system = 3  # Unix: external_attr holds the mode, which Terraform's unzip applies
            info.external_attr = (stat.S_IFREG | _zip_mode(path)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as src, zf.open(info, "w") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    os.replace(tmp, dest)


# ----------------------------------------------------------------------------------------------- hashes
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def zh_of_zip(path: Path) -> str:
    """Terraform's legacy ``zh:`` hash: the sha256 of the zip file itself."""
    return "zh:" + sha256_file(path)


def h1_of_zip(path: Path) -> str:
    """Terraform's ``h1:`` hash of a package zip (Go's dirhash.Hash1 over the zip's entries): the sha256 of the
    lines "<sha256 of the entry>  <name>\\n", sorted by name, base64. Terraform computes the same over the
    directory it unpacks the zip to — equal only when the zip has no directory entries, as ours."""
    lines = []
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            if "\n" in name:
                raise ValueError(f"{path}: an entry name with a newline: {name!r}")
            h = hashlib.sha256()
            with zf.open(name) as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            lines.append(f"{h.hexdigest()}  {name}\n")
    return "h1:" + base64.b64encode(hashlib.sha256("".join(lines).encode()).digest()).decode()


def h1_of_dir(root: Path) -> str:
    """``h1:`` of an unpacked package directory (dirhash.HashDir with an empty prefix)."""
    lines = []
    for name, path in package_files(root):
        lines.append(f"{sha256_file(path)}  {name}\n")
    return "h1:" + base64.b64encode(hashlib.sha256("".join(lines).encode()).digest()).decode()


def sha256sums_text(files: Iterable[Path]) -> str:
    """The SHA256SUMS format of sha256sum(1) and HashiCorp's releases: "<hex>  <file name>\\n", by name."""
    return "".join(f"{sha256_file(f)}  {f.name}\n" for f in sorted(files, key=lambda p: p.name))


# ----------------------------------------------------------------------------------------------- mirror
def mirror_dir(mirror: Path) -> Path:
    return mirror / HOSTNAME / NAMESPACE / TYPE


def mirror_indexes(zips: Iterable[Path]) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    """The network mirror protocol's ``index.json`` and ``<version>.json`` documents for these zips (named as
    ``zip_name`` makes them, all in one directory): {"versions": {v: {}}} and, per version,
    {"archives": {platform: {"url": zip name relative to the index, "hashes": [h1:, zh:]}}}."""
    versions: dict[str, dict[str, object]] = {}
    for path in sorted(zips, key=lambda p: p.name):
        m = ZIP_RE.match(path.name)
        if m is None:
            raise ValueError(f"not a provider package name: {path.name}")
        archives = versions.setdefault(m["version"], {})
        archives[m["platform"]] = {"url": path.name, "hashes": [h1_of_zip(path), zh_of_zip(path)]}
    index: dict[str, object] = {"versions": {v: {} for v in sorted(versions)}}
    return index, {v: {"archives": archives} for v, archives in versions.items()}


def _write_json(path: Path, doc: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_mirror(mirror: Path, zips: Iterable[Path]) -> Path:
    """Copy the zips into the packed layout under ``mirror`` and (re)write its JSON indexes from every package
    zip there (earlier versions stay listed). Returns the provider's directory in the mirror."""
    target = mirror_dir(mirror)
    target.mkdir(parents=True, exist_ok=True)
    for path in zips:
        dest = target / path.name
        if not (dest.exists() and sha256_file(dest) == sha256_file(path)):
            shutil.copyfile(path, dest.with_name(dest.name + ".tmp"))
            os.replace(dest.with_name(dest.name + ".tmp"), dest)
    present = [p for p in target.iterdir() if ZIP_RE.match(p.name)]
    index, per_version = mirror_indexes(present)
    for version, doc in per_version.items():
        _write_json(target / f"{version}.json", doc)
    _write_json(target / "index.json", index)
    return target


# ----------------------------------------------------------------------------------------------- build
def inputs_fingerprint(repo: Path = REPO) -> dict[str, str]:
    """What a build depends on: the package's files, pyproject.toml, the manifest, this script and its pinned
    requirements, the Python that builds, the platform. Equal fingerprints give equal zips."""
    h = hashlib.sha256()
    files = [repo / "pyproject.toml", repo / "terraform-registry-manifest.json", Path(__file__).resolve(),
             REQUIREMENTS]
    for dirpath, dirnames, filenames in os.walk(repo / "provider"):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.endswith(".egg-info"))
        files += [Path(dirpath, f) for f in sorted(filenames) if not f.endswith((".pyc", ".pyo"))]
    for path in files:
        h.update(f"{path.relative_to(repo).as_posix() if path.is_relative_to(repo) else path.name}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return {"sources": h.hexdigest(), "python": sys.version.split()[0], "platform": go_platform(),
            "source_date_epoch": os.environ.get("SOURCE_DATE_EPOCH", "")}


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=cwd)


def ensure_build_venv(build: Path) -> Path:
    """A venv with the pinned build requirements, made once per requirements file and Python."""
    requirements = REQUIREMENTS.read_bytes()
    key = hashlib.sha256(requirements + sys.version.encode()).hexdigest()[:16]
    venv = build / f"venv-{key}"
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file():
        return python
    for old in build.glob("venv-*"):
        shutil.rmtree(old)
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
          "-r", str(REQUIREMENTS)])
    (venv / ".complete").write_text(key + "\n")
    return python


def pyinstaller_build(python: Path, build: Path, version: str, epoch: int) -> Path:
    """Run PyInstaller (onedir, modules as plain .pyc files: no archive to open at every start) and return the
    folder holding the executable and _internal/."""
    work = build / "pyinstaller"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    entry = work / "terraform_provider_vmdk_main.py"
    entry.write_text(ENTRY_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYINSTALLER"))}
    env.update(PYTHONHASHSEED="0", SOURCE_DATE_EPOCH=str(epoch), PYTHONDONTWRITEBYTECODE="1",
               PYINSTALLER_CONFIG_DIR=str(build / "pyinstaller-cache"))  # its cache too stays under dist/
    name = executable_name(version)
    _run([str(python), "-m", "PyInstaller", "--noconfirm", "--clean", "--onedir", "--noupx",
          "--name", name, "--contents-directory", CONTENTS_DIR,
          "--distpath", str(work / "dist"), "--workpath", str(work / "work"), "--specpath", str(work),
          "--paths", str(REPO / "provider"),
          # every module as a file in _internal/ rather than in one archive (faster start-up, see README)
          "--debug", "noarchive",
          "--log-level", "WARN", str(entry)], env=env, cwd=work)
    out = work / "dist" / name
    if not (out / name).is_file() or not (out / CONTENTS_DIR).is_dir():
        raise SystemExit(f"PyInstaller did not produce {out / name} and {out / CONTENTS_DIR}")
    extra = sorted(p.name for p in out.iterdir() if p.name.startswith(f"{NAME}") and p.name != name)
    if extra:  # Terraform runs the first file at the zip's root whose name starts with terraform-provider-vmdk
        raise SystemExit(f"more than one file named {NAME}* at the package root: {extra}")
    return out


def signature(sums: Path, key: str) -> Path:
    sig = sums.with_name(sums.name + ".sig")
    sig.unlink(missing_ok=True)
    if shutil.which("gpg") is None:
        raise SystemExit("--gpg-key needs gpg (Debian: apt-get install gnupg)")
    _run(["gpg", "--batch", "--yes", "--local-user", key, "--output", str(sig), "--detach-sign", str(sums)])
    return sig


def finish(out: Path, version: str, gpg_key: str | None, mirror: Path | None) -> list[Path]:
    """Manifest, sums, signature and mirror from the zips of ``version`` in ``out``."""
    manifest = out / manifest_name(version)
    shutil.copyfile(REPO / "terraform-registry-manifest.json", manifest)
    zips = sorted(p for p in out.iterdir() if (m := ZIP_RE.match(p.name)) and m["version"] == version)
    if not zips:
        raise SystemExit(f"no {NAME}_{version}_*.zip in {out}")
    sums = out / sums_name(version)
    sums.write_text(sha256sums_text([*zips, manifest]))
    written = [*zips, manifest, sums]
    stale_sig = sums.with_name(sums.name + ".sig")
    if gpg_key:
        written.append(signature(sums, gpg_key))
    elif stale_sig.exists():
        stale_sig.unlink()  # it signed other sums
    if mirror is not None:
        target = write_mirror(mirror, zips)
        written += sorted(p for p in target.iterdir() if p.suffix in (".zip", ".json"))
    return written


def build_zip(out: Path, version: str, reuse: bool) -> Path:
    build = out / ".build"
    build.mkdir(parents=True, exist_ok=True)
    dest = out / zip_name(version, go_platform())
    record = build / "inputs.json"
    inputs = inputs_fingerprint()
    if reuse and dest.is_file() and record.is_file():
        previous = json.loads(record.read_text())
        if previous.get("inputs") == inputs and previous.get("sha256") == sha256_file(dest):
            print(f"{dest.name}: up to date (same inputs as the build in {out})")
            return dest
    record.unlink(missing_ok=True)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or ZIP_EPOCH_DEFAULT)
    started = time.monotonic()
    python = ensure_build_venv(build)
    folder = pyinstaller_build(python, build, version, epoch)
    write_zip(folder, dest, epoch)
    record.write_text(json.dumps({"inputs": inputs, "sha256": sha256_file(dest)}, indent=2) + "\n")
    print(f"{dest.name}: built in {time.monotonic() - started:.0f} s")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    parser.add_argument("--gpg-key", metavar="ID", help="sign the SHA256SUMS with this GPG key (detached, binary)")
    parser.add_argument("--mirror", type=Path, metavar="DIR", help="also write a provider mirror into DIR")
    parser.add_argument("--reuse", action="store_true", help="keep a build in --out made from the same inputs")
    parser.add_argument("--no-build", action="store_true",
                        help="only write the manifest, sums, signature and mirror from the zips already in --out")
    opts = parser.parse_args(argv)
    sys.dont_write_bytecode = True  # this script writes only under --out (go_platform imports from provider/)
    version = read_version()
    out = opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not opts.no_build:
        build_zip(out, version, opts.reuse)
    for path in finish(out, version, opts.gpg_key, opts.mirror.resolve() if opts.mirror else None):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
