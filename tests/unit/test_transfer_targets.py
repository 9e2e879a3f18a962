"""Where the vSphere session cookie may go on HTTP transfers (vsphere/connection/transfer.py): only over HTTPS, and only
to the server we connected to or to a host the lease's own device URLs name. Real sockets: a refused URL
must not see a single byte; an accepted one gets the cookie."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from terraform_provider_vmdk.vsphere import exceptions as exc
from terraform_provider_vmdk.vsphere.connection import transfer
from terraform_provider_vmdk.vsphere.connection.config import ConnectionConfig

COOKIE = 'vmware_soap_session="s3ss10n-c00k1e"'


@dataclass
class FakeSession:
    """What transfer.py uses of a Session."""

    config: ConnectionConfig
    ssl_context: ssl.SSLContext
    generation: int = 0
    renewed: list[int] = field(default_factory=list)

    def session_cookie(self) -> str:
        return COOKIE

    def renew_login(self, generation: int) -> None:
        self.renewed.append(generation)


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]]

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append((self.command, self.path, self.headers.get("Cookie")))  # type: ignore[attr-defined]
        body = b"disk bytes"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = _record

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Server:
    port: int
    seen: list[tuple[str, str, str | None]]


def _serve(tls: ssl.SSLContext | None) -> Iterator[Server]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.seen = []  # type: ignore[attr-defined]
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(httpd.server_address[1], httpd.seen)  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from tests.vcsim.harness import make_certificates

    return make_certificates(tmp_path_factory.mktemp("tls"), hosts=("127.0.0.1", "localhost"))


@pytest.fixture
def plain_server() -> Iterator[Server]:
    yield from _serve(None)


@pytest.fixture
def tls_server(certificates: tuple[Path, Path, Path]) -> Iterator[Server]:
    _, cert, key = certificates
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    yield from _serve(ctx)


def session_for(server: str, certificates: tuple[Path, Path, Path]) -> FakeSession:
    ctx = ssl.create_default_context(cafile=str(certificates[0]))
    config = ConnectionConfig(server=server, user="vmdk", password="pw", ca_file=str(certificates[0]),
                              api_retry_count=0, api_timeout=5)
    return FakeSession(config, ctx)


class _Sink:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class _Source:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        block, self.data = self.data[:n], self.data[n:]
        return block

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


# ------------------------------------------------------------------------ never over plain http

@pytest.mark.parametrize("direction", ["download", "upload"])
def test_plain_http_to_our_own_server_is_refused_before_a_byte_is_sent(plain_server, certificates, direction):
    session = session_for(f"127.0.0.1:{plain_server.port}", certificates)
    url = f"http://127.0.0.1:{plain_server.port}/nfc/52a1-lease-secret/disk-0.vmdk"
    with pytest.raises(exc.VMwareDriverError) as info:  # (before the fix: no error, the cookie went in clear)
        if direction == "download":
            transfer.download(session, url, _Sink, what="export of v1")
        else:
            transfer.upload(session, url, lambda: _Source(b"x" * 10), 10, what="import of v1")
    assert plain_server.seen == []  # no connection carried the cookie
    assert isinstance(info.value, exc.TransferRefused)
    message = str(info.value)
    assert "not HTTPS" in message and f"http://127.0.0.1:{plain_server.port}" in message
    assert "lease-secret" not in message  # an NFC URL's path is the lease's own credential


def test_a_plain_http_lease_url_of_our_server_becomes_https_to_it(tls_server, certificates):
    """vCenter serves the API over HTTPS where we connected: an http:// device URL naming it is fetched there."""
    session = session_for(f"127.0.0.1:{tls_server.port}", certificates)
    lease_url = "http://127.0.0.1/nfc/52a1/disk-0.vmdk"  # port 80: vCenter's plain-http redirector
    url = transfer.device_url(session, lease_url)
    assert url == f"https://127.0.0.1:{tls_server.port}/nfc/52a1/disk-0.vmdk"
    sink = _Sink()
    transfer.download(session, url, lambda: sink, what="export", hosts=transfer.lease_hosts([lease_url]))
    assert sink.data == b"disk bytes" and tls_server.seen == [("GET", "/nfc/52a1/disk-0.vmdk", COOKIE)]


@pytest.mark.parametrize("lease_url", ["http://esx-01.example.com/nfc/52a1/disk-0.vmdk",
                                       "http://10.0.0.7:80/nfc/52a1/disk-0.vmdk",
                                       "ftp://127.0.0.1/nfc/52a1/disk-0.vmdk"])
def test_a_plain_http_lease_url_of_another_host_is_refused(certificates, lease_url):
    session = session_for("127.0.0.1:8989", certificates)
    with pytest.raises(exc.TransferRefused) as info:
        transfer.device_url(session, lease_url)
    message = str(info.value)
    assert "not HTTPS" in message and "only over HTTPS" in message and "52a1" not in message


@pytest.mark.parametrize("server,lease_url,expected", [
    ("vc.example.com", "https://*/nfc/52a1/disk-0.vmdk", "https://vc.example.com:443/nfc/52a1/disk-0.vmdk"),
    ("vc.example.com:8443", "https://*/nfc/52a1/disk-0.vmdk?x=1", "https://vc.example.com:8443/nfc/52a1/disk-0.vmdk?x=1"),
    ("VC.Example.com", "http://vc.example.COM/nfc/1", "https://VC.Example.com:443/nfc/1"),
    ("[::1]:9443", "http://[0:0::1]:80/nfc/1", "https://[::1]:9443/nfc/1"),
    ("vc.example.com", "https://esx-01.example.com/nfc/1", "https://esx-01.example.com/nfc/1"),  # ESXi: as named
    ("vc.example.com", "https://10.0.0.7:443/nfc/1", "https://10.0.0.7:443/nfc/1"),
])
def test_device_url(certificates, server, lease_url, expected):
    assert transfer.device_url(session_for(server, certificates), lease_url) == expected


# ------------------------------------------------------------------------ only hosts vSphere named

def test_a_host_vsphere_did_not_name_gets_nothing(tls_server, certificates):
    """We connected to 127.0.0.1; localhost is the same machine but not a name vSphere gave us."""
    session = session_for(f"127.0.0.1:{tls_server.port}", certificates)
    url = f"https://localhost:{tls_server.port}/nfc/52a1/disk-0.vmdk"
    with pytest.raises(exc.VMwareDriverError) as info:  # (before the fix: no error, the cookie went there)
        transfer.download(session, url, _Sink, what="export of v1")
    assert isinstance(info.value, exc.TransferRefused)
    with pytest.raises(exc.TransferRefused):
        transfer.upload(session, url, lambda: _Source(b"x"), 1, what="import of v1",
                        hosts=transfer.lease_hosts(["https://*/nfc/52a1/disk-0.vmdk", "https://esx-9/nfc/x"]))
    assert tls_server.seen == []
    message = str(info.value)
    assert f"https://localhost:{tls_server.port}" in message and f"127.0.0.1:{tls_server.port}" in message
    assert "52a1" not in message


def test_a_host_the_lease_names_gets_the_cookie(tls_server, certificates):
    """vCenter names the ESXi host that serves the disk: that host is legitimate."""
    session = session_for(f"127.0.0.1:{tls_server.port}", certificates)
    url = f"https://LocalHost:{tls_server.port}/nfc/52a1/disk-0.vmdk"
    hosts = transfer.lease_hosts([f"https://localhost:{tls_server.port}/nfc/52a1/disk-0.vmdk"])
    assert hosts == {"localhost"}
    assert transfer.upload(session, url, lambda: _Source(b"0123456789"), 10, what="import", hosts=hosts) == 10
    assert tls_server.seen == [("PUT", "/nfc/52a1/disk-0.vmdk", COOKIE)]


def test_datastore_folder_urls_go_to_our_server(tls_server, certificates):
    class WithHttpUrl(FakeSession):
        def http_url(self, path: str) -> str:
            return f"https://{self.config.netloc}{path}"

    base = session_for(f"127.0.0.1:{tls_server.port}", certificates)
    session = WithHttpUrl(base.config, base.ssl_context)
    sink = _Sink()
    transfer.download_file(session, "DC0", "ds-big", "v/disk-flat.vmdk", lambda: sink)
    assert sink.data == b"disk bytes"
    assert tls_server.seen == [("GET", "/folder/v/disk-flat.vmdk?dcPath=DC0&dsName=ds-big", COOKIE)]


def test_lease_hosts():
    assert transfer.lease_hosts([
        "https://*/nfc/1/a.vmdk", "https://ESX-01.example.com./nfc/1/b.vmdk", "https://[0::1]:443/nfc/1/c",
        "https://10.0.0.7/nfc/1/d", "not a url", "https://[bad/x"]) == {"esx-01.example.com", "::1", "10.0.0.7"}
