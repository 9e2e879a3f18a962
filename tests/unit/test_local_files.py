"""Local files without vSphere: image downloads (served from a loopback HTTP server in the test), the staging
of written files, and what export and backup deletes remove (only the file they wrote) and plan (drift)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from terraform_provider_vmdk.framework.diagnostics import DiagnosticError, Diagnostics
from terraform_provider_vmdk.framework.resource import ApplyRequest, PlanRequest, ReadRequest
from terraform_provider_vmdk.framework.unknowns import UNKNOWN
from terraform_provider_vmdk.resources import localfiles
from terraform_provider_vmdk.resources.backups import BackupResource
from terraform_provider_vmdk.resources.export import ExportResource, export_disk
from terraform_provider_vmdk.resources.images import fetch_image, redirect_allowed
from terraform_provider_vmdk.resources.localfiles import APPROVED, WRITTEN, identity, publish_new, staged
from terraform_provider_vmdk.resources.volume_sources import backup_image, prepare, read_manifest
from terraform_provider_vmdk.vsphere import exceptions as vexc
from terraform_provider_vmdk.vsphere.connection import budget

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _fresh_process_record() -> Iterator[None]:
    """What "this provider process wrote" starts empty in each test."""
    localfiles._written_here.clear()
    yield
    localfiles._written_here.clear()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def summaries(diags: Diagnostics) -> list[str]:
    return [d.summary for d in diags]


# ------------------------------------------------------------------------------------------- redirects
@pytest.mark.parametrize(("source", "target", "allowed"), [
    ("https://a/x", "https://b/y", True),
    ("http://a/x", "http://b/y", True),
    ("http://a/x", "https://a/x", True),  # up from http: fine
    ("https://a/x", "http://a/x", False),  # down to http: the image would travel unauthenticated
    ("HTTPS://a/x", "Http://a/x", False),
    ("http://a/x", "file:///etc/passwd", False),
    ("https://a/x", "ftp://a/x", False),
    ("http://a/x", "data:,hello", False),
])
def test_redirects_stay_within_their_scheme_or_go_up_to_https(source: str, target: str, allowed: bool) -> None:
    assert redirect_allowed(source, target) is allowed


# -------------------------------------------------------------------------------------------- downloads
class Site(http.server.ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Any]
    paused: threading.Event
    resume: threading.Event


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Site

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route(self)


def body(data: bytes, length: int | None = None):  # type: ignore[no-untyped-def]
    def serve(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(data) if length is None else length))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data)
        h.close_connection = True
    return serve


def redirect(location: str):  # type: ignore[no-untyped-def]
    def serve(h: Handler) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return serve


def status(code: int):  # type: ignore[no-untyped-def]
    def serve(h: Handler) -> None:
        h.send_response(code)
        h.send_header("Content-Length", "0")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
    return serve


def chunked_cut(h: Handler) -> None:
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(b"400\r\n" + b"x" * 1024 + b"\r\n")  # and then the connection ends, without the last chunk
    h.close_connection = True


RAW = bytes(range(256)) * (4 * MiB // 256)  # a flat image: whole sectors


def paused(h: Handler) -> None:
    """The first MiB, then nothing until the test says so, then the rest."""
    h.send_response(200)
    h.send_header("Content-Length", str(len(RAW)))
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(RAW[:MiB])
    h.wfile.flush()
    h.server.paused.set()
    h.server.resume.wait(30)
    h.wfile.write(RAW[MiB:])
    h.close_connection = True


def sparse(capacity_sectors: int) -> bytes:
    """A hosted sparse VMDK's header (no descriptor: monolithicSparse) for a disk of that many sectors."""
    header = struct.pack("<4sIIQQQQIQQQ", b"KDMV", 1, 0, capacity_sectors, 128, 0, 0, 512, 0, 0, 0)
    return header.ljust(4096, b"\0")


@pytest.fixture
def site() -> Iterator[tuple[str, Site]]:
    server = Site(("127.0.0.1", 0), Handler)
    server.paused, server.resume = threading.Event(), threading.Event()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    server.routes = {
        "/raw": body(RAW), "/odd": body(b"x" * 1000), "/big": body(sparse(4 << 20)),
        "/short": body(RAW[:MiB], length=len(RAW)), "/chunked": chunked_cut, "/error": status(500),
        "/missing": status(404), "/to-raw": redirect("/raw"), "/to-file": redirect("file:///etc/passwd"),
        "/to-https": redirect("https://127.0.0.1:1/raw"), "/paused": paused,
    }
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield url, server
    server.resume.set()
    server.shutdown()


@pytest.fixture
def temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[Any]]:
    """The temporary directory downloads use (a fresh one), and every temporary file opened in it."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    opened: list[Any] = []
    real = tempfile.TemporaryFile

    def recording(*args: Any, **kwargs: Any) -> Any:
        file = real(*args, **kwargs)
        opened.append(file)
        return file

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    return directory, opened


def nothing_left(temp_files: tuple[Path, list[Any]]) -> bool:
    directory, opened = temp_files
    return not list(directory.iterdir()) and all(f.closed for f in opened)


@pytest.mark.parametrize(("route", "disk_type", "checksum", "attribute", "says"), [
    ("/error", "thin", None, "image.source", "the server answered HTTP 500"),
    ("/missing", "thin", None, "image.source", "HTTP 404"),
    ("/short", "thin", None, "image.source", f"the download ended after {MiB} of {4 * MiB} bytes"),
    ("/chunked", "thin", None, "image.source", "the download ended after 1024 bytes"),
    ("/to-file", "thin", None, "image.source", "redirected the download"),
    ("/raw", "thin", "0" * 64, "image.sha256", "has SHA-256"),
    ("/raw", "streamOptimized", None, "image.disk_type", "is a raw (flat) file"),
    ("/odd", "preallocated", None, "image.source", "has 1000 bytes"),
])
def test_a_failed_download_is_an_error_on_its_attribute_and_leaves_nothing(
        site, temp_files, route: str, disk_type: str, checksum: str | None, attribute: str, says: str) -> None:
    url, _ = site
    with pytest.raises(DiagnosticError) as caught:
        fetch_image(url + route, disk_type, checksum)
    [diag] = list(caught.value.diagnostics)
    assert str(diag.path) == attribute and says in diag.detail, diag
    assert "Errno" not in diag.detail and "Error(" not in diag.detail and "IncompleteRead" not in diag.detail
    assert nothing_left(temp_files)


def test_an_unreachable_server_is_described_in_words(temp_files) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DiagnosticError) as caught:
        fetch_image(f"http://127.0.0.1:{port}/x", "thin", None)
    [diag] = list(caught.value.diagnostics)
    assert "the connection was refused" in diag.detail and "Errno" not in diag.detail
    assert nothing_left(temp_files)


def test_a_redirect_off_https_is_refused_before_it_is_followed(site, temp_files) -> None:
    """The handler refuses https -> http; http -> https is followed (here to a port nothing listens on)."""
    url, _ = site
    with pytest.raises(DiagnosticError) as caught:
        fetch_image(url + "/to-https", "thin", None)
    detail = next(iter(caught.value.diagnostics)).detail
    assert "redirected" not in detail and "the connection was refused" in detail  # followed, then refused
    assert nothing_left(temp_files)


def test_the_size_check_closes_the_download(site, temp_files) -> None:
    url, _ = site
    plan = {"size_gb": 1, "image": {"source": url + "/big", "disk_type": "sparse", "sha256": None}}
    with pytest.raises(DiagnosticError) as caught:
        prepare(plan)
    assert "size_gb is smaller than the data" in summaries(caught.value.diagnostics)
    assert nothing_left(temp_files)


def test_a_cancelled_download_stops_and_leaves_nothing(site, temp_files) -> None:
    url, server = site
    stop = threading.Event()

    def cancel_when_paused() -> None:
        server.paused.wait(30)
        stop.set()  # Ctrl-C: StopProvider
        server.resume.set()

    threading.Thread(target=cancel_when_paused, daemon=True).start()
    with budget.scoped(budget.Budget.within(None, stop, "create the volume")), pytest.raises(vexc.Cancelled):
        fetch_image(url + "/paused", "thin", None)
    assert nothing_left(temp_files)


def test_a_download_is_read_from_its_file_as_often_as_the_upload_needs(site, temp_files) -> None:
    url, _ = site
    local = fetch_image(url + "/to-raw", "thin", sha(RAW))
    assert (local.size, local.capacity, local.sha256, local.label) == (len(RAW), len(RAW), sha(RAW), "to-raw")
    assert not list(temp_files[0].iterdir())  # the file has no name
    with local.open() as first, local.open() as second:  # each upload attempt reads from the start
        assert first.read(10) == RAW[:10] and second.read() == RAW and first.read() == RAW[10:]
    local.close()
    assert nothing_left(temp_files)


def test_a_local_image_is_read_from_the_file_that_was_checked(tmp_path: Path) -> None:
    path = tmp_path / "disk.raw"
    path.write_bytes(RAW)
    local = fetch_image(str(path), "thin", sha(RAW))
    replace_with(path, b"y" * 512)
    with local.open() as fh:
        assert fh.read() == RAW  # the path names another file now; the checked bytes are uploaded
    local.close()


# ---------------------------------------------------------------------------------------------- staging
def test_two_writers_stage_under_names_of_their_own(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.vmdk"
    with staged(target) as first, staged(target) as second:
        assert first != second and first.parent == second.parent == target.parent
        first.write_bytes(b"first")
        second.write_bytes(b"second")
    assert target.read_bytes() == b"first"  # the last to finish wins, whole
    assert [p.name for p in target.parent.iterdir()] == ["out.vmdk"]


def test_a_failed_write_removes_its_staging_file_and_leaves_the_path(tmp_path: Path) -> None:
    target = tmp_path / "out.vmdk"
    target.write_bytes(b"before")
    with pytest.raises(RuntimeError), staged(target) as staging:
        staging.write_bytes(b"half")
        raise RuntimeError("cut")
    assert target.read_bytes() == b"before" and [p.name for p in tmp_path.iterdir()] == ["out.vmdk"]


def test_publish_new_never_replaces(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_text("theirs")
    with pytest.raises(FileExistsError), staged(target, publish_new) as staging:
        staging.write_text("ours")
    assert target.read_text() == "theirs" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    target.unlink()
    with staged(target, publish_new) as staging:
        staging.write_text("ours")
    assert target.read_text() == "ours" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


class InterleavedOps:
    """Two exports of one volume to one path, running at once: each writes its bytes in four parts, the two
    taking turns; ``fail`` makes one end in an error after its last part."""

    def __init__(self) -> None:
        self.turns = threading.Barrier(2, timeout=10)

    def export_flat(self, backing: Any, opener: Any, what: str) -> int:
        data: bytes = backing.data
        with opener() as sink:
            for i in range(4):
                sink.write(data[i * len(data) // 4:(i + 1) * len(data) // 4])
                self.turns.wait()
        if backing.fail:
            raise vexc.VMwareDriverError("the export was cut")
        return len(data)


class Backend:
    def __init__(self, ops: InterleavedOps, data: bytes, fail: bool) -> None:
        self.ops, self._backing = ops, SimpleNamespace(data=data, fail=fail, moref=None)

    def choice(self, volume_id: str, fresh: bool) -> Any:
        return SimpleNamespace(primary=self._backing)

    def users_of(self, backing: Any) -> list[str]:
        return []


@pytest.mark.parametrize("second_fails", [False, True])
def test_two_exports_to_one_path_at_once_each_write_whole(tmp_path: Path, second_fails: bool) -> None:
    """Each writer stages under a name of its own: the file at the path is one export, whole, and a writer
    that fails removes only its own staging file (with one shared name, it removed the other's)."""
    path = tmp_path / "out" / "disk.flat"
    ops = InterleavedOps()
    data = {"first": b"A" * 4096, "second": b"B" * 4096}
    results: dict[str, Any] = {}

    def export(name: str, fail: bool) -> None:
        try:
            results[name] = export_disk(Backend(ops, data[name], fail), "v", path, "flat")  # type: ignore[arg-type]
        except Exception as error:  # noqa: BLE001 - checked below
            results[name] = error

    writers = [threading.Thread(target=export, args=("first", False)),
               threading.Thread(target=export, args=("second", second_fails))]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(20)
    assert isinstance(results["first"], tuple), results["first"]
    assert results["first"][0] == sha(data["first"])
    if second_fails:
        assert isinstance(results["second"], DiagnosticError)
        assert path.read_bytes() == data["first"]
    else:
        assert path.read_bytes() in (data["first"], data["second"])  # one of them, whole
    assert [p.name for p in path.parent.iterdir()] == ["disk.flat"]  # no staging file left


# ----------------------------------------------------------------------------------------------- exports
def exported(tmp_path: Path, data: bytes = b"exported bytes") -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """An export's file, state and private state, as create leaves them."""
    path = tmp_path / "out" / "disk.vmdk"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    state = {"id": str(path), "path": str(path), "volume_id": "v", "format": "flat", "sha256": sha(data),
             "size_bytes": len(data)}
    return path, state, {WRITTEN: {"sha256": sha(data), "file": identity(path)}}


def delete(resource: Any, state: dict[str, Any], private: dict[str, Any]) -> Diagnostics:
    req = ApplyRequest(prior=state, plan=None, private=private)
    resource.delete(req)
    return req.diagnostics


def replace_with(path: Path, data: bytes) -> None:
    other = path.with_name("other")
    other.write_bytes(data)
    os.replace(other, path)


def test_export_delete_removes_the_file_it_wrote(tmp_path: Path) -> None:
    path, state, private = exported(tmp_path)
    assert summaries(delete(ExportResource(), state, private)) == []
    assert not path.exists()


def test_export_delete_keeps_a_replacement_with_the_same_bytes(tmp_path: Path) -> None:
    """create_before_destroy: the new export (the same volume, maybe the same bytes) is at the path when the
    old one is destroyed: a checksum cannot tell them apart, the file's identity can."""
    path, state, private = exported(tmp_path)
    replace_with(path, b"exported bytes")
    localfiles.note_written(path)  # the replacement was written by this provider process
    assert summaries(delete(ExportResource(), state, private)) == []  # its own replacement: no warning
    assert path.read_bytes() == b"exported bytes"


def test_export_delete_keeps_a_file_replaced_by_hand_and_warns(tmp_path: Path) -> None:
    path, state, private = exported(tmp_path)
    replace_with(path, b"exported bytes")  # even with the same bytes: not the file it wrote
    diags = delete(ExportResource(), state, private)
    assert summaries(diags) == ["File left in place"]
    assert "not the file this vmdk_volume_export wrote" in next(iter(diags)).detail
    assert path.read_bytes() == b"exported bytes"


def test_export_delete_keeps_a_file_changed_in_place(tmp_path: Path) -> None:
    path, state, private = exported(tmp_path)
    with path.open("ab") as fh:
        fh.write(b"!")
    assert summaries(delete(ExportResource(), state, private)) == ["File left in place"]
    assert path.exists()


def test_export_delete_of_an_older_state_goes_by_the_checksum(tmp_path: Path) -> None:
    path, state, _ = exported(tmp_path)
    replace_with(path, b"someone else's")
    assert summaries(delete(ExportResource(), state, {})) == ["File left in place"]
    assert path.exists()
    replace_with(path, b"exported bytes")
    assert summaries(delete(ExportResource(), state, {})) == []
    assert not path.exists()


def test_export_delete_leaves_what_is_not_a_file(tmp_path: Path) -> None:
    path, state, private = exported(tmp_path)
    path.unlink()
    assert summaries(delete(ExportResource(), state, private)) == []  # gone already: nothing to say
    path.mkdir()
    assert summaries(delete(ExportResource(), state, private)) == ["File left in place"]
    path.rmdir()
    path.symlink_to(tmp_path)
    assert summaries(delete(ExportResource(), state, private)) == ["File left in place"]
    assert path.is_symlink()


def test_an_export_changed_by_hand_is_drift_the_plan_replaces(tmp_path: Path) -> None:
    path, state, private = exported(tmp_path)
    resource = ExportResource()
    read = ReadRequest(state=dict(state), private=dict(private))
    assert resource.read(read) == state  # unchanged: no drift
    path.write_bytes(b"changed by hand")
    read = ReadRequest(state=dict(state), private=dict(private))
    refreshed = resource.read(read)
    assert refreshed is not None and refreshed["sha256"] == sha(b"changed by hand")
    assert read.private[WRITTEN]["sha256"] == state["sha256"]  # what it wrote is remembered

    plan = PlanRequest(config={}, prior=refreshed, plan=dict(refreshed), private=dict(read.private))
    resource.modify_plan(plan)
    assert plan.requires_replace == {"sha256"} and plan.plan is not None and plan.plan["sha256"] is UNKNOWN
    assert summaries(plan.diagnostics) == ["The export changed outside Terraform"]
    # the replacement's delete removes the changed file the plan announced (and only that one)
    assert summaries(delete(resource, refreshed, plan.private)) == []
    assert not path.exists()


def test_an_older_export_state_learns_its_file_on_refresh(tmp_path: Path) -> None:
    path, state, _ = exported(tmp_path)
    read = ReadRequest(state=dict(state), private={})
    assert ExportResource().read(read) == state
    assert read.private[WRITTEN] == {"sha256": state["sha256"], "file": identity(path)}


# ----------------------------------------------------------------------------------------------- backups
def backed_up(tmp_path: Path, disk: bytes = b"backup disk") -> tuple[Path, dict[str, Any], dict[str, Any]]:
    directory = tmp_path / "backup"
    directory.mkdir()
    (directory / "disk.vmdk").write_bytes(disk)
    manifest = {"format": "vmdk-backup-1", "id": "b-1", "volume_id": "v", "size_gb": 1, "capacity_bytes": 1 << 30,
                "disk_type": "thin", "adapter_type": "lsiLogic", "sha256": sha(disk), "created_at": "now"}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    state = {**{k: manifest[k] for k in ("id", "volume_id", "sha256", "size_gb", "disk_type", "adapter_type",
                                         "created_at")}, "path": str(directory)}
    return directory, state, {WRITTEN: {"sha256": sha(disk), "file": identity(directory / "disk.vmdk")}}


def test_backup_delete_removes_its_backup(tmp_path: Path) -> None:
    directory, state, private = backed_up(tmp_path)
    assert summaries(delete(BackupResource(), state, private)) == []
    assert not directory.exists()


def test_backup_delete_leaves_another_backup_in_its_directory(tmp_path: Path) -> None:
    directory, state, private = backed_up(tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    (directory / "manifest.json").write_text(json.dumps({**manifest, "id": "b-2"}))
    replace_with(directory / "disk.vmdk", b"backup disk")
    assert summaries(delete(BackupResource(), state, private)) == ["Backup left in place"]
    assert sorted(p.name for p in directory.iterdir()) == ["disk.vmdk", "manifest.json"]


def test_backup_delete_keeps_a_disk_replaced_by_hand(tmp_path: Path) -> None:
    directory, state, private = backed_up(tmp_path)
    replace_with(directory / "disk.vmdk", b"someone else's")
    assert summaries(delete(BackupResource(), state, private)) == ["File left in place"]
    assert [p.name for p in directory.iterdir()] == ["disk.vmdk"]  # its manifest went, the other file stays


def test_a_backup_changed_by_hand_is_drift_the_plan_replaces(tmp_path: Path) -> None:
    directory, state, private = backed_up(tmp_path)
    resource = BackupResource()
    with (directory / "disk.vmdk").open("ab") as fh:
        fh.write(b"!")
    read = ReadRequest(state=dict(state), private=dict(private))
    refreshed = resource.read(read)
    assert refreshed is not None and refreshed["id"] == state["id"]  # still this backup: not forgotten
    assert refreshed["sha256"] == sha(b"backup disk!")
    plan = PlanRequest(config={}, prior=refreshed, plan=dict(refreshed), private=dict(read.private))
    resource.modify_plan(plan)
    assert plan.requires_replace == {"sha256"} and summaries(plan.diagnostics) == ["The backup changed outside "
                                                                                  "Terraform"]
    assert plan.private[APPROVED] == identity(directory / "disk.vmdk")
    assert summaries(delete(resource, refreshed, plan.private)) == []
    assert not directory.exists()  # so the replacement's create finds the directory free


def test_a_backup_whose_disk_is_gone_is_drift_and_one_replaced_by_another_is_gone(tmp_path: Path) -> None:
    directory, state, private = backed_up(tmp_path)
    (directory / "disk.vmdk").unlink()
    refreshed = BackupResource().read(ReadRequest(state=dict(state), private=dict(private)))
    assert refreshed is not None and refreshed["sha256"] is None
    manifest = json.loads((directory / "manifest.json").read_text())
    (directory / "manifest.json").write_text(json.dumps({**manifest, "id": "b-2"}))
    assert BackupResource().read(ReadRequest(state=dict(state), private=dict(private))) is None


def test_backup_reading_says_what_is_wrong_in_words(tmp_path: Path) -> None:
    directory, _, _ = backed_up(tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["capacity_bytes"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DiagnosticError) as caught:
        backup_image(str(directory), "backup.path")
    assert summaries(caught.value.diagnostics) == ["Unreadable backup"]
    with pytest.raises(DiagnosticError) as caught:
        read_manifest(str(directory / "disk.vmdk"), "backup.path")
    [diag] = list(caught.value.diagnostics)
    assert diag.summary == "Backup not found" and "Errno" not in diag.detail
