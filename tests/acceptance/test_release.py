"""The release artefacts, as a machine without Python uses them.

scripts/release.py builds the registry zip once per test session (or keeps the build in dist/ when its inputs
are unchanged: ``--reuse`` compares a fingerprint of every input and the zip's sha256), with a filesystem
mirror. Then Terraform, on a HOME and PATH without our venv or any Python (``python``/``python3`` on PATH are
stubs that record being called), installs the packaged provider from the filesystem mirror, from the network
mirror (its JSON served over HTTPS), from its plugin cache and from the implied local mirror that the packaged
``install`` fills, records the h1: hash we compute, and runs it against the test vCenter.
"""

from __future__ import annotations

import datetime
import functools
import http.server
import ipaddress
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO, write_config

pytestmark = pytest.mark.acceptance

PROVIDER_DIR = ("registry.terraform.io", "pyvmdk", "vmdk")
COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"


def _release_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("release_script", REPO / "scripts" / "release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("release_script", module)
    spec.loader.exec_module(module)
    return module


rel = _release_module()


@dataclass
class Release:
    version: str
    platform: str
    zip: Path
    mirror: Path
    unpacked: Path  # the zip, unpacked as Terraform does
    build_seconds: float

    @property
    def exe(self) -> Path:
        return self.unpacked / rel.executable_name(self.version)

    @property
    def h1(self) -> str:
        return rel.h1_of_zip(self.zip)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    mirror = tmp_path_factory.mktemp("mirror")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "release.py"), "--reuse", "--mirror", str(mirror)],
                          capture_output=True, text=True, timeout=1800, cwd=REPO,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seconds = time.monotonic() - started
    version, platform = rel.read_version(), rel.go_platform()
    zip_path = REPO / "dist" / rel.zip_name(version, platform)
    unpacked = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            zf.extract(info, unpacked)
            os.chmod(unpacked / info.filename, (info.external_attr >> 16) & 0o777)
    print(f"release build: {seconds:.0f} s ({'reused' if 'up to date' in proc.stdout else 'built'})")
    return Release(version, platform, zip_path, mirror, unpacked, seconds)


@pytest.fixture
def bare_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment with no Python: HOME is empty, PATH holds only stubs named python and python3 that record
    a call (and fail); no PYTHON*, VIRTUAL_ENV or LD_LIBRARY_PATH."""
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    marker = tmp_path / "python-was-called"
    for name in ("python", "python3"):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\nexit 127\n')
        stub.chmod(0o755)
    (home / ".terraformrc").write_text("")
    env = {"HOME": str(home), "PATH": str(bin_dir), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
           "TF_CLI_CONFIG_FILE": str(home / ".terraformrc")}
    yield env
    assert not marker.exists(), f"the packaged provider ran Python: {marker.read_text()}"


def tf(binary: str, directory: Path, env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([binary, *args, "-no-color"], cwd=directory, env=env, capture_output=True, text=True,
                            timeout=300)
    if ok:
        assert result.returncode == 0, f"terraform {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def lock_hashes(directory: Path) -> list[str]:
    text = (directory / ".terraform.lock.hcl").read_text()
    block = text.split('provider "registry.terraform.io/pyvmdk/vmdk"', 1)[1]
    return re.findall(r'"((?:h1|zh):[^"]+)"', block.split("}", 1)[0])


def installed_dir(directory: Path, release: Release) -> Path:
    return directory.joinpath(".terraform", "providers", *PROVIDER_DIR, release.version, release.platform)


def filesystem_mirror_config(path: Path, mirror: Path) -> Path:
    path.write_text(f"""
provider_installation {{
  filesystem_mirror {{
    path    = "{mirror}"
    include = ["registry.terraform.io/pyvmdk/vmdk"]
  }}
  direct {{
    exclude = ["registry.terraform.io/pyvmdk/vmdk"]
  }}
}}
""")
    return path


def test_artefacts(release: Release) -> None:
    dist = release.zip.parent
    sums = (dist / rel.sums_name(release.version)).read_text()
    assert f"{rel.sha256_file(release.zip)}  {release.zip.name}\n" in sums
    manifest = dist / rel.manifest_name(release.version)
    assert manifest.read_bytes() == (REPO / "terraform-registry-manifest.json").read_bytes()
    assert f"{rel.sha256_file(manifest)}  {manifest.name}\n" in sums
    with zipfile.ZipFile(release.zip) as zf:
        roots = {name.split("/", 1)[0] for name in zf.namelist()}
    assert roots == {rel.executable_name(release.version), "_internal"}
    target = release.mirror.joinpath(*PROVIDER_DIR)
    assert (target / release.zip.name).read_bytes() == release.zip.read_bytes()
    doc = json.loads((target / f"{release.version}.json").read_text())
    assert doc["archives"][release.platform] == {"url": release.zip.name,
                                                 "hashes": [release.h1, rel.zh_of_zip(release.zip)]}
    assert release.version in json.loads((target / "index.json").read_text())["versions"]


def test_volume_snapshot_and_data_source_from_the_filesystem_mirror(
        release: Release, terraform_binary: str, bare_env: dict[str, str], vsphere_provider_block: str,
        tmp_path: Path) -> None:
    env = {**bare_env, "TF_CLI_CONFIG_FILE": str(filesystem_mirror_config(tmp_path / "cli.tfrc", release.mirror))}
    work = tmp_path / "work"
    write_config(work, vsphere_provider_block + """
resource "vmdk_volume" "v" {
  name      = "released"
  size_gb   = 1
  disk_type = "thin"
}
resource "vmdk_snapshot" "s" {
  volume_id = vmdk_volume.v.id
  name      = "first"
}
data "vmdk_volume" "by_id" {
  id = vmdk_volume.v.id
}
output "volume_id" { value = vmdk_volume.v.id }
output "snapshot_volume" { value = vmdk_snapshot.s.volume_id }
output "looked_up" { value = data.vmdk_volume.by_id.name }
output "looked_up_size" { value = data.vmdk_volume.by_id.size_gb }
""")
    init = tf(terraform_binary, work, env, "init")
    assert "Installed pyvmdk/vmdk v" + release.version in init.stdout
    assert lock_hashes(work) == [release.h1]  # from a mirror Terraform records the h1: it computes
    installed = installed_dir(work, release)
    assert sorted(p.name for p in installed.iterdir()) == ["_internal", rel.executable_name(release.version)]
    assert rel.h1_of_dir(installed) == release.h1

    locked = tmp_path / "locked"  # `providers lock` from the mirror pins the same hash that init records
    write_config(locked, "")  # required_providers only
    tf(terraform_binary, locked, bare_env, "providers", "lock", f"-fs-mirror={release.mirror}",
       f"-platform={release.platform}")
    assert lock_hashes(locked) == [release.h1]

    log = tmp_path / "tf.log"
    tf(terraform_binary, work, {**env, "TF_LOG_PROVIDER": "DEBUG", "TF_LOG_PATH": str(log)}, "apply", "-auto-approve")
    assert "terraform-provider-vmdk" in log.read_text()  # our hclog lines reach Terraform's log
    sessions = Path(env["HOME"]) / ".cache" / "terraform-provider-vmdk" / "sessions"
    assert [p.stat().st_mode & 0o777 for p in sessions.iterdir()] == [0o600]  # one saved session, private
    out = {k: v["value"] for k, v in json.loads(tf(terraform_binary, work, env, "output", "-json").stdout).items()}
    assert out["snapshot_volume"] == out["volume_id"]
    assert out["looked_up"] == "released" and out["looked_up_size"] == 1
    assert "No changes" in tf(terraform_binary, work, env, "plan").stdout  # also checks the h1: of .terraform
    tf(terraform_binary, work, env, "destroy", "-auto-approve")
    assert json.loads((work / "terraform.tfstate").read_text())["resources"] == []


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def network_mirror(release: Release, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The mirror directory served over HTTPS by a plain static file server: (its URL, the CA to trust)."""
    cert, key = _self_signed(tmp_path)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(release.mirror)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", cert
    finally:
        server.shutdown()
        server.server_close()


PLAIN = """
provider "vmdk" {
  vsphere_server = "vcenter.invalid"
  user           = "someone"
  password       = "secret"
}
data "vmdk_disk_types" "all" {}
output "volume_types" { value = data.vmdk_disk_types.all.volume_disk_types }
"""


def test_network_mirror_through_the_plugin_cache(release: Release, terraform_binary: str,
                                                 bare_env: dict[str, str], network_mirror: tuple[str, Path],
                                                 tmp_path: Path) -> None:
    url, ca = network_mirror
    cli = tmp_path / "net.tfrc"
    cli.write_text(f'provider_installation {{\n  network_mirror {{\n    url = "{url}"\n  }}\n}}\n')
    cache = tmp_path / "plugin-cache"
    cache.mkdir()
    env = {**bare_env, "TF_CLI_CONFIG_FILE": str(cli), "SSL_CERT_FILE": str(ca), "TF_PLUGIN_CACHE_DIR": str(cache)}
    inits = []
    for name in ("first", "second"):  # the first unpacks into the cache, the second links from it
        work = tmp_path / name
        write_config(work, PLAIN)
        inits.append(tf(terraform_binary, work, env, "init").stdout)
        assert lock_hashes(work) == [release.h1], inits[-1]
        cached = cache.joinpath(*PROVIDER_DIR, release.version, release.platform)
        assert sorted(p.name for p in cached.iterdir()) == ["_internal", rel.executable_name(release.version)]
        tf(terraform_binary, work, env, "apply", "-auto-approve")
        out = json.loads(tf(terraform_binary, work, env, "output", "-json").stdout)
        assert out["volume_types"]["value"] == ["thin", "thick", "eagerZeroedThick"]
    assert "(verified checksum)" in inits[0]  # the h1:/zh: hashes of <version>.json were checked
    assert rel.h1_of_dir(cached) == release.h1  # running it from the cache wrote nothing there


def test_packaged_install_fills_the_implied_local_mirror(release: Release, terraform_binary: str,
                                                         bare_env: dict[str, str], tmp_path: Path) -> None:
    out = subprocess.run([str(release.exe), "install"], env=bare_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    installed = Path(out.stdout.strip())
    assert installed.is_relative_to(Path(bare_env["HOME"]) / ".terraform.d" / "plugins")
    assert rel.h1_of_dir(installed.parent) == release.h1  # the same package as the zip
    work = tmp_path / "work"
    write_config(work, PLAIN)
    tf(terraform_binary, work, bare_env, "init")
    assert lock_hashes(work) == [release.h1]
    tf(terraform_binary, work, bare_env, "apply", "-auto-approve")


def test_the_executable_alone(release: Release, bare_env: dict[str, str]) -> None:
    """--version, orphans --help, and a served process: no file of any Python installation mapped, SIGINT
    ignored (Ctrl-C reaches the whole process group; Terraform stops providers itself), SIGTERM ends it."""
    before = sorted(str(p.relative_to(release.unpacked)) for p in release.unpacked.rglob("*"))
    version = subprocess.run([str(release.exe), "--version"], env=bare_env, capture_output=True, text=True)
    assert version.stdout == f"terraform-provider-vmdk {release.version}\n"
    orphans = subprocess.run([str(release.exe), "orphans", "--help"], env=bare_env, capture_output=True, text=True)
    assert orphans.returncode == 0 and "--state" in orphans.stdout
    refused = subprocess.run([str(release.exe)], env=bare_env, capture_output=True, text=True)
    assert refused.returncode == 1 and "This binary is a plugin" in refused.stderr

    env = {**bare_env, "TF_PLUGIN_MAGIC_COOKIE": COOKIE, "PLUGIN_PROTOCOL_VERSIONS": "6",
           "PLUGIN_MIN_PORT": "10000", "PLUGIN_MAX_PORT": "25000"}
    proc = subprocess.Popen([str(release.exe)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("1|6|") and line.rstrip().endswith("|grpc|"), line
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        mapped = {part for row in maps.splitlines() if len(part := row.split(maxsplit=5)[-1]) > 1
                  and part.startswith("/")}
        pythons = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
        foreign = sorted(m for m in mapped if any(os.path.realpath(m).startswith(p + "/") for p in pythons))
        assert not foreign, f"mapped from a Python installation: {foreign}"
        assert any("libpython" in m and m.startswith(str(release.unpacked)) for m in mapped), sorted(mapped)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None, "SIGINT must be ignored, as by the venv's provider"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = sorted(str(p.relative_to(release.unpacked)) for p in release.unpacked.rglob("*"))
    assert after == before, "the packaged provider wrote into its own folder (Terraform's h1: check would fail)"


def test_signed_sums_verify_with_a_throwaway_key(release: Release, tmp_path: Path) -> None:
    """--gpg-key signs the SHA256SUMS (detached, binary, as the registry wants); gpg --verify accepts it."""
    import shutil

    if shutil.which("gpg") is None:
        pytest.skip("no gpg on this machine (apt-get install gnupg)")
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(gnupg)}
    try:
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-generate-key",
                        "Release Test <release@example.invalid>", "ed25519", "sign", "1d"],
                       env=env, check=True, capture_output=True, timeout=120)
        out = tmp_path / "out"
        out.mkdir()
        shutil.copyfile(release.zip, out / release.zip.name)
        proc = subprocess.run([sys.executable, str(REPO / "scripts" / "release.py"), "--no-build", "--out", str(out),
                               "--gpg-key", "release@example.invalid"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        sums = out / rel.sums_name(release.version)
        sig = sums.with_name(sums.name + ".sig")
        assert sig.read_bytes()[:1] != b"-"  # binary, not ASCII-armoured
        verify = subprocess.run(["gpg", "--batch", "--verify", str(sig), str(sums)], env=env, capture_output=True,
                                text=True, timeout=60)
        assert verify.returncode == 0 and "Good signature" in verify.stderr, verify.stderr
        sums.write_text(sums.read_text().replace("  ", " *", 1))  # any change to the sums breaks it
        assert subprocess.run(["gpg", "--batch", "--verify", str(sig), str(sums)], env=env,
                              capture_output=True, timeout=60).returncode != 0
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, timeout=30)


def test_lock_seeded_with_the_zh_from_sha256sums(release: Release, terraform_binary: str, bare_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    """A lock file that pins the zip's sha256 from SHA256SUMS (zh:) is accepted; init adds the h1: beside it.
    A wrong zh: is refused."""
    env = {**bare_env, "TF_CLI_CONFIG_FILE": str(filesystem_mirror_config(tmp_path / "cli.tfrc", release.mirror))}
    sums = (release.zip.parent / rel.sums_name(release.version)).read_text()
    sha = next(line.split()[0] for line in sums.splitlines() if line.endswith(release.zip.name))
    for name, zh, accepted in (("good", sha, True), ("bad", "0" * 64, False)):
        work = tmp_path / name
        write_config(work, "")
        (work / ".terraform.lock.hcl").write_text(
            f'provider "registry.terraform.io/pyvmdk/vmdk" {{\n  version = "{release.version}"\n'
            f'  hashes = [\n    "zh:{zh}",\n  ]\n}}\n')
        init = tf(terraform_binary, work, env, "init", ok=accepted)
        if accepted:
            assert sorted(lock_hashes(work)) == [release.h1, f"zh:{sha}"]
        else:
            assert init.returncode != 0 and "doesn't match any of the checksums" in init.stderr.replace("\n", " ")


def test_debug_mode_serves_for_reattach(release: Release, terraform_binary: str, bare_env: dict[str, str],
                                        tmp_path: Path) -> None:
    """`terraform-provider-vmdk_v<ver> --debug` prints TF_REATTACH_PROVIDERS; Terraform drives it; Ctrl-C ends it."""
    proc = subprocess.Popen([str(release.exe), "--debug"], env=bare_env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        reattach = None
        for _ in range(50):
            line = proc.stdout.readline()
            if "TF_REATTACH_PROVIDERS=" in line:
                reattach = line.split("TF_REATTACH_PROVIDERS=", 1)[1].strip().strip("'")
                break
        assert reattach, "no TF_REATTACH_PROVIDERS line"
        assert json.loads(reattach)["registry.terraform.io/pyvmdk/vmdk"]["Pid"] == proc.pid
        work = tmp_path / "debug"
        write_config(work, PLAIN)
        env = {**bare_env, "TF_REATTACH_PROVIDERS": reattach}
        tf(terraform_binary, work, env, "apply", "-auto-approve")
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
