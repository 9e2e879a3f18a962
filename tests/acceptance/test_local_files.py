"""Local files through real Terraform: image downloads that fail (an HTTP error, a body cut short, a redirect
off https, Ctrl-C) leave no temporary file and say what went wrong on ``image.source``; exports and backups
remove on destroy only the files they wrote, and a backup changed by hand is replaced, not wedged.

Images are served by the test itself (``http.server`` in threads, one plain and one TLS server whose CA the
provider trusts through ``SSL_CERT_FILE``). The provider's temporary directory is the ``TMPDIR`` the test
gives Terraform (which passes its environment on to the provider), so what it leaves there can be checked.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import run
from .test_data_io import convert, diagnostic_of, make_raw, qemu_img, sha256, state_ids

pytestmark = pytest.mark.acceptance
MiB = 1 << 20


# ------------------------------------------------------------------------------------------ image server
@dataclass
class Site:
    """What the test servers serve: ``/raw`` (a flat image), ``/vmdk`` (streamOptimized), ``/big`` (a 2 GiB
    disk in a small streamOptimized file), ``/error`` (HTTP 500), ``/short`` (half the body of the
    Content-Length it announces), ``/chunked-cut`` (a chunked body that stops), ``/slow`` (1 MiB, then
    nothing until ``release`` is set), and ``/to-http/...``, ``/to-https/...``, ``/to-file``: redirects."""

    files: dict[str, bytes]
    http_url: str = ""
    https_url: str = ""
    sent_slow: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[str] = field(default_factory=list)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _body(self, data: bytes, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        site = self.server.site
        site.requests.append(f"{self.server.scheme} {self.path}")
        name = self.path.strip("/")
        if name in site.files:
            self._body(site.files[name])
        elif name == "error":
            self.send_response(500, "Internal Server Error")
            self.send_header("Content-Length", "4")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"boom")
            self.close_connection = True
        elif name == "short":
            raw = site.files["raw"]
            self._body(raw[: len(raw) // 2], length=len(raw))
        elif name == "chunked-cut":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n" % (64 * 1024, b"\1" * 64 * 1024))
            self.wfile.flush()
            self.close_connection = True
        elif name == "slow":
            raw = site.files["raw"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(raw[:MiB])
            self.wfile.flush()
            site.sent_slow.set()
            site.release.wait(120)
            self.close_connection = True
        elif name.startswith("to-http/"):
            self._redirect(f"{site.http_url}/{name.removeprefix('to-http/')}")
        elif name.startswith("to-https/"):
            self._redirect(f"{site.https_url}/{name.removeprefix('to-https/')}")
        elif name == "to-file":
            self._redirect("file:///etc/hostname")
        else:
            self.send_error(404)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    site: Site
    scheme: str


def _serve(site: Site, scheme: str, context: ssl.SSLContext | None) -> _Server:
    server = _Server(("127.0.0.1", 0), Handler)
    server.site, server.scheme = site, scheme
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"image-{scheme}",
                     daemon=True).start()
    return server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from tests.vcsim.harness import make_certificates

    work = tmp_path_factory.mktemp("site")
    raw = make_raw(work / "disk.raw", 4, 7)
    big = work / "big.vmdk"
    done = qemu_img("create", "-f", "vmdk", "-o", "subformat=streamOptimized", str(big), "2G")
    assert done.returncode == 0, done.stderr
    site = Site({"raw": raw.read_bytes(), "target": raw.read_bytes(),
                 "vmdk": convert(raw, "streamOptimized").read_bytes(), "big": big.read_bytes()})
    ca, cert, key = make_certificates(work / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    plain, tls = _serve(site, "http", None), _serve(site, "https", context)
    site.http_url = f"http://127.0.0.1:{plain.server_address[1]}"
    site.https_url = f"https://127.0.0.1:{tls.server_address[1]}"
    site.files["ca"] = ca.read_bytes()
    (work / "ca.pem").write_bytes(ca.read_bytes())
    yield site
    site.release.set()
    plain.shutdown()
    tls.shutdown()


@pytest.fixture
def tmpdir_env(tmp_path: Path, site: Site) -> tuple[Path, dict[str, str]]:
    """The TMPDIR the provider is given, and the environment to run Terraform with."""
    tmp = tmp_path / "provider-tmp"
    tmp.mkdir()
    ca = tmp_path / "site-ca.pem"
    ca.write_bytes(site.files["ca"])
    return tmp, {"TMPDIR": str(tmp), "SSL_CERT_FILE": str(ca)}


def leftovers(tmp: Path) -> list[str]:
    """Files (and image download folders) in the provider's TMPDIR; Terraform's plugin sockets are not files."""
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file() or p.name.startswith("vmdk-"))


def volume(name: str, source: str, disk_type: str = "thin", sha: str | None = None, size_gb: int = 1) -> str:
    checksum = f'\n    sha256    = "{sha}"' if sha else ""
    return (f'resource "vmdk_volume" "{name}" {{\n  name    = "{name}"\n  size_gb = {size_gb}\n  image {{\n'
            f'    source    = "{source}"\n    disk_type = "{disk_type}"{checksum}\n  }}\n}}\n')


# ------------------------------------------------------------------------------------------------ images
def test_failed_downloads_are_errors_on_image_source_and_leave_no_temp_file(
        make_tf, vsphere_provider_block, site, tmpdir_env, scan_backings) -> None:
    before = set(scan_backings())
    tmp, env = tmpdir_env
    http, https = site.http_url, site.https_url
    cases = {  # name: (source, disk_type, sha256, attribute, what the diagnostic says)
        "http_500": (f"{http}/error", "thin", None, "image.source", "HTTP 500"),
        "cut_short": (f"{http}/short", "thin", None, "image.source",
                      f"the download ended after {2 * MiB} of {4 * MiB} bytes"),
        "chunked_cut": (f"{http}/chunked-cut", "thin", None, "image.source", "the download ended after"),
        "https_to_http": (f"{https}/to-http/target", "thin", None, "image.source", "redirected"),
        "to_file": (f"{http}/to-file", "thin", None, "image.source", "redirected"),
        "checksum": (f"{http}/raw", "thin", "0" * 64, "image.sha256", "Image checksum mismatch"),
        "kind": (f"{https}/raw", "streamOptimized", None, "image.disk_type", "The image is not of its disk_type"),
        "too_big": (f"{http}/big", "streamOptimized", None, "size_gb", "size_gb is smaller than the data"),
    }
    tf = make_tf(vsphere_provider_block + "".join(volume(name, source, kind, sha)
                                                  for name, (source, kind, sha, _, _) in cases.items()), env=env)
    result = run(tf, "apply", "-auto-approve")
    err = result.stderr
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in err and "Unexpected error" not in err and "Error:" in err
    for name, (_, _, _, attribute, says) in cases.items():
        block = " ".join(diagnostic_of(err, f"vmdk_volume.{name}").split())  # Terraform wraps long lines
        assert says in block and f"{attribute.split('.')[-1]} " in block, (name, block)  # on its attribute
    https_to_http = " ".join(diagnostic_of(err, "vmdk_volume.https_to_http").split())
    assert "image.source" in https_to_http and "http://" in https_to_http, https_to_http
    assert "IncompleteRead" not in err and "Errno" not in err
    assert "http /target" not in site.requests  # the https -> http redirect was not followed
    assert state_ids(tf) == []  # nothing was made
    assert set(scan_backings()) == before
    assert leftovers(tmp) == []


def test_downloads_follow_redirects_within_https_or_up_from_http(make_tf, vsphere_provider_block, site,
                                                                tmpdir_env, scan_backings) -> None:
    before = set(scan_backings())
    tmp, env = tmpdir_env
    body = vsphere_provider_block + volume("upgraded", f"{site.http_url}/to-https/vmdk", "streamOptimized",
                                           sha256_bytes(site.files["vmdk"]))
    body += volume("within_https", f"{site.https_url}/to-https/raw", "thin")
    tf = make_tf(body, env=env)
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stderr
    assert "https /vmdk" in site.requests and "https /raw" in site.requests
    assert leftovers(tmp) == []  # the downloads were uploaded and removed
    assert "No changes" in run(tf, "plan").stdout
    assert run(tf, "destroy", "-auto-approve").returncode == 0
    assert set(scan_backings()) == before


def test_ctrl_c_during_a_download_leaves_no_temp_file(make_tf, vsphere_provider_block, site, tmpdir_env,
                                                      scan_backings) -> None:
    before = set(scan_backings())
    tmp, env = tmpdir_env
    site.sent_slow.clear()
    site.release.clear()
    tf = make_tf(vsphere_provider_block + volume("slow", f"{site.http_url}/slow"), env=env)
    try:
        # a session of its own, as test_cancel does: Ctrl-C in a terminal signals the whole process group
        proc = subprocess.Popen([tf.binary, "apply", "-auto-approve", "-no-color"], cwd=tf.tfdir,
                                env={**tf.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        assert site.sent_slow.wait(60), proc.communicate()
        time.sleep(0.5)  # the first MiB is in the provider's temporary file now
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        site.release.set()
    assert proc.returncode != 0 and "Traceback" not in out + err
    assert "cancelled" in (out + err).lower(), out + err
    assert state_ids(tf) == []
    assert leftovers(tmp) == []
    assert set(scan_backings()) == before


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------ exports
def replace_by_hand(path: Path, data: bytes) -> None:
    """Another file at ``path``, as a user or another tool puts one there (a new file renamed into place)."""
    other = path.with_name(path.name + ".by-hand")
    other.write_bytes(data)
    os.replace(other, path)


def test_export_destroy_removes_only_the_file_it_wrote(make_tf, vsphere_provider_block, tmp_path,
                                                       scan_backings) -> None:
    before = set(scan_backings())
    out = tmp_path / "out"
    path = out / "v.vmdk"
    body = vsphere_provider_block + f"""
resource "vmdk_volume" "v" {{
  name    = "exported"
  size_gb = 1
}}
resource "vmdk_volume_export" "e" {{
  volume_id = vmdk_volume.v.id
  path      = "{path}"
  lifecycle {{
    create_before_destroy = true
  }}
}}
output "sha256" {{ value = vmdk_volume_export.e.sha256 }}
"""
    tf = make_tf(body)
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stderr
    first = path.stat().st_ino

    # create_before_destroy: the new export is written first, then the old one is destroyed — which must not
    # remove the new file at the same path
    result = run(tf, "apply", "-auto-approve", "-replace=vmdk_volume_export.e")
    assert result.returncode == 0, result.stderr
    assert path.is_file() and path.stat().st_ino != first, "the new export was removed"
    assert "File left in place" not in result.stdout + result.stderr  # it is the replacement's file
    assert sha256(path) == tf.output()["sha256"]
    assert "No changes" in run(tf, "plan").stdout
    assert not [p.name for p in out.iterdir() if p.name != path.name]  # no staging file left

    # changed by hand: the plan says so and replaces it; the apply writes the export again
    path.write_bytes(b"changed by hand")
    plan = run(tf, "plan")
    assert plan.returncode == 0, plan.stderr
    text = " ".join((plan.stdout + plan.stderr).split())
    assert "vmdk_volume_export.e must be replaced" in text and "changed outside Terraform" in text, text
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stderr
    assert sha256(path) == tf.output()["sha256"]
    assert "File left in place" not in result.stdout + result.stderr  # the replacement's file: no warning

    # replaced by hand, then destroyed without a refresh: the other file stays, and destroy says why
    replace_by_hand(path, b"someone else's file")
    result = run(tf, "destroy", "-auto-approve", "-refresh=false")
    assert result.returncode == 0, result.stderr
    assert path.read_bytes() == b"someone else's file"
    warning = " ".join((result.stdout + result.stderr).split())
    assert "Warning" in warning and "not the file this vmdk_volume_export wrote" in warning, warning
    assert state_ids(tf) == []
    assert set(scan_backings()) == before


# ------------------------------------------------------------------------------------------------ backups
def test_backup_changed_by_hand_is_replaced_and_destroy_keeps_what_it_did_not_write(
        make_tf, vsphere_provider_block, tmp_path, scan_backings) -> None:
    before = set(scan_backings())
    directory = tmp_path / "backups" / "b"
    body = vsphere_provider_block + f"""
resource "vmdk_volume" "v" {{
  name    = "backed-up"
  size_gb = 1
}}
resource "vmdk_volume_backup" "b" {{
  volume_id = vmdk_volume.v.id
  path      = "{directory}"
}}
output "backup" {{ value = vmdk_volume_backup.b }}
"""
    tf = make_tf(body)
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stderr
    first = tf.output()["backup"]

    # disk.vmdk changed by hand: drift the plan shows as a replacement, and the apply makes a new backup
    with (directory / "disk.vmdk").open("ab") as fh:
        fh.write(b"appended by hand")
    plan = run(tf, "plan")
    text = " ".join((plan.stdout + plan.stderr).split())
    assert plan.returncode == 0 and "vmdk_volume_backup.b must be replaced" in text, text
    assert "changed outside Terraform" in text, text
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stderr
    assert "Backup directory in use" not in result.stderr
    assert "File left in place" not in result.stdout + result.stderr  # the plan asked for the changed disk to go
    second = tf.output()["backup"]
    manifest = json.loads((directory / "manifest.json").read_text())
    assert second["id"] != first["id"] and manifest["id"] == second["id"]
    assert second["sha256"] == manifest["sha256"] == sha256(directory / "disk.vmdk")
    assert "No changes" in run(tf, "plan").stdout
    assert sorted(p.name for p in directory.iterdir()) == ["disk.vmdk", "manifest.json"]  # no staging files

    # disk.vmdk replaced by hand, destroyed without a refresh: the backup's manifest goes, the other file stays
    replace_by_hand(directory / "disk.vmdk", b"someone else's disk")
    result = run(tf, "destroy", "-auto-approve", "-refresh=false")
    assert result.returncode == 0, result.stderr
    assert (directory / "disk.vmdk").read_bytes() == b"someone else's disk"
    assert not (directory / "manifest.json").exists()
    warning = " ".join((result.stdout + result.stderr).split())
    assert "Warning" in warning and "not the file this vmdk_volume_backup wrote" in warning, warning
    assert set(scan_backings()) == before
