"""One vSphere login per Terraform command, and across commands (persist_session), through real Terraform;
a saved session of another user is not resumed; the session cookie on disk transfers goes only over HTTPS
to hosts vSphere named.

Logins are counted where they happen: at the server, by the proxy in front of vcsim (every request of
every provider process Terraform starts).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from terraform_provider_vmdk.vsphere.connection.session_store import SessionStore

from .conftest import run, write_config

pytestmark = pytest.mark.acceptance


def config(provider: str, sessions: Path | None, persist: bool = True) -> str:
    extra = f'  session_path = "{sessions}"\n' if sessions is not None else ""
    extra += "" if persist else "  persist_session = false\n"
    block = provider.rstrip().rstrip("}") + extra + "}\n"
    return block + "".join(f'resource "vmdk_volume" "v{i}" {{\n  name = "s{i}"\n  size_gb = 1\n}}\n' for i in range(3))


@pytest.fixture
def proxied(vsphere_provider_block, vcsim, fault_proxy) -> str:
    return vsphere_provider_block.replace(vcsim.server, fault_proxy.server)


def logins(proxy) -> int:
    return proxy.requests.get("Login", 0)


def store_of(sessions: Path, proxy, vcsim) -> SessionStore:
    from terraform_provider_vmdk.vsphere.connection.config import ConnectionConfig

    netloc = ConnectionConfig(server=proxy.server, user=vcsim.user, password="x").netloc
    return SessionStore(sessions, netloc, vcsim.user)


def test_one_login_per_command_and_none_after(make_tf, proxied, fault_proxy, vcsim, tmp_path, scan_backings) -> None:
    before = set(scan_backings())
    sessions = tmp_path / "sessions"
    tf = make_tf(config(proxied, sessions))
    fault_proxy.reset_records()
    tf.apply()  # several provider launches, one login
    assert logins(fault_proxy) == 1
    store = store_of(sessions, fault_proxy, vcsim)
    assert stat.S_IMODE(sessions.stat().st_mode) == 0o700 and stat.S_IMODE(store.path.stat().st_mode) == 0o600
    text = store.path.read_text()
    assert vcsim.password not in text and json.loads(text)["cookie"]
    assert not list(Path(tf.tfdir).glob("*session*"))  # never in the working directory
    fault_proxy.reset_records()
    assert "No changes" in run(tf, "plan").stdout
    assert logins(fault_proxy) == 0 and fault_proxy.requests.get("Logout", 0) == 0, fault_proxy.requests  # resumed

    # the saved session ended on the server (expired, or terminated by an admin): one new login replaces it
    from http.cookies import SimpleCookie

    from terraform_provider_vmdk.vsphere.connection.session import Session

    cookie = json.loads(store.path.read_text())["cookie"]
    jar: SimpleCookie = SimpleCookie()
    jar.load(cookie)
    with Session(vcsim.connection_config()) as admin:  # vcsim's session key is the cookie's value
        admin.content.sessionManager.TerminateSession([jar["vmware_soap_session"].value])
    fault_proxy.reset_records()
    assert "No changes" in run(tf, "plan").stdout
    assert logins(fault_proxy) == 1
    assert json.loads(store.path.read_text())["cookie"] != cookie

    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def test_an_untrusted_or_foreign_session_file_is_replaced(make_tf, proxied, fault_proxy, vcsim, tmp_path) -> None:
    sessions = tmp_path / "sessions"
    tf = make_tf(config(proxied, sessions) + 'data "vmdk_datastores" "all" {}\n')  # a plan that reads vSphere
    store = store_of(sessions, fault_proxy, vcsim)
    sessions.mkdir(mode=0o700)
    for content, mode in (
            ({"format": "vmdk-session-1", "server": "elsewhere:443", "user": vcsim.user,
              "cookie": 'vmware_soap_session="forged"'}, 0o600),  # another server's
            ({"format": "vmdk-session-1", "server": store.netloc, "user": vcsim.user,
              "cookie": 'vmware_soap_session="forged"'}, 0o644),  # readable by others: not trusted
            ("not json", 0o600)):
        store.path.write_text(content if isinstance(content, str) else json.dumps(content))
        os.chmod(store.path, mode)
        fault_proxy.reset_records()
        result = run(tf, "plan")
        assert result.returncode == 0, result.stderr
        assert logins(fault_proxy) == 1
        saved = json.loads(store.path.read_text())
        assert saved["server"] == store.netloc and "forged" not in saved["cookie"]
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600

    # a directory others can read is not used at all: every launch logs in, nothing is written
    os.chmod(sessions, 0o755)
    store.path.unlink()
    fault_proxy.reset_records()
    assert run(tf, "plan").returncode == 0
    assert logins(fault_proxy) >= 1 and not store.path.exists()


def test_persist_session_false_logs_in_and_out_and_saves_nothing(make_tf, proxied, fault_proxy, tmp_path) -> None:
    sessions = tmp_path / "sessions"
    tf = make_tf(config(proxied, sessions, persist=False) + 'data "vmdk_datastores" "all" {}\n')
    fault_proxy.reset_records()
    assert run(tf, "plan").returncode == 0
    assert logins(fault_proxy) >= 1 and fault_proxy.requests.get("Logout", 0) == logins(fault_proxy)
    assert not sessions.exists()


def test_a_refused_login_is_tried_once_per_process_not_once_per_volume(make_tf, proxied, fault_proxy, vcsim,
                                                                       tmp_path) -> None:
    """A wrong password fails once per provider process: vCenter locks an account after a few failed logins,
    and a plan of many volumes must not be what locks it."""
    sessions = tmp_path / "sessions"
    good = config(proxied, sessions, persist=False)
    tf = make_tf(good)
    tf.apply()
    try:
        write_config(Path(tf.tfdir), good.replace(f'"{vcsim.password}"', '"not-the-password"'))
        fault_proxy.reset_records()
        result = run(tf, "plan", "-parallelism=10")
        assert result.returncode == 1
        assert "incorrect user name or password" in result.stderr and "not-the-password" not in result.stderr
        assert logins(fault_proxy) == 1, fault_proxy.requests  # one plan process, three volumes
    finally:
        write_config(Path(tf.tfdir), good)
        tf.destroy(auto_approve=True)


def session_as(vcsim, user_name: str):
    """A live session on the simulator whose server-side user is ``user_name`` (vcsim's LoginByToken takes the
    SAML subject for the user): (stub, content)."""
    from pyVmomi import SoapStubAdapter, vim

    from terraform_provider_vmdk.vsphere.connection.session import Session

    probe = Session(vcsim.connection_config(persist_session=False))
    token = ('<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion"><saml2:Subject>'
             f'<saml2:NameID>{user_name}</saml2:NameID></saml2:Subject></saml2:Assertion>')
    stub = SoapStubAdapter(host=vcsim.host, port=vcsim.port, version=probe._api_version(),
                           sslContext=probe.ssl_context, samlToken=token)
    content = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
    content.sessionManager.LoginByToken()
    stub.samlToken = None
    return stub, content


def test_a_saved_session_of_another_user_is_replaced_not_resumed(make_tf, proxied, fault_proxy, vcsim, is_vcsim,
                                                                 tmp_path) -> None:
    """The session file names our server and user, but vCenter says the session is someone else's: the plan
    logs in as the configured user and saves that session instead; the other session is left alone."""
    if not is_vcsim:
        pytest.skip("makes a second user's session with vcsim's LoginByToken")
    sessions = tmp_path / "sessions"
    tf = make_tf(config(proxied, sessions) + 'data "vmdk_datastores" "all" {}\n')
    store = store_of(sessions, fault_proxy, vcsim)
    other_stub, other = session_as(vcsim, "VSPHERE.LOCAL\\intruder")
    try:
        store.save(other_stub.cookie, None)
        fault_proxy.reset_records()
        result = run(tf, "plan")
        assert result.returncode == 0, result.stderr
        assert logins(fault_proxy) == 1 and fault_proxy.requests.get("Logout", 0) == 0, fault_proxy.requests
        saved = json.loads(store.path.read_text())
        assert saved["cookie"] != other_stub.cookie and stat.S_IMODE(store.path.stat().st_mode) == 0o600
        assert other.sessionManager.currentSession.userName == "VSPHERE.LOCAL\\intruder"  # not logged out
        fault_proxy.reset_records()
        assert run(tf, "plan").returncode == 0
        assert logins(fault_proxy) == 0  # our own saved session is resumed as before
    finally:
        other.sessionManager.Logout()


# ------------------------------------------------------------------ the session cookie on disk transfers

@pytest.fixture
def nfc_origin(vcsim, is_vcsim) -> Iterator:
    if not is_vcsim:
        pytest.skip("needs our vcsim's /vmdk-test/nfc")
    try:
        yield vcsim.set_nfc_origin
    finally:
        vcsim.set_nfc_origin()


@pytest.fixture
def plain_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A plain-TCP port that records what connects to it (the session cookie must never go there)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    got.append(conn.recv(65536))
                except OSError:
                    got.append(b"")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], got
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def test_lease_urls_never_carry_the_session_over_plain_http(make_tf, vsphere_provider_block, nfc_origin,
                                                            plain_listener, tmp_path, scan_backings) -> None:
    """A volume from a streamOptimized image goes through an ImportVApp lease. When vCenter's lease names its
    own host over plain http, the upload goes over HTTPS to that host; when it names another host over plain
    http, the apply fails with an error that says why, nothing is sent there, and nothing is left behind."""
    image = tmp_path / "disk.vmdk"
    raw = tmp_path / "disk.raw"
    raw.write_bytes(os.urandom(1 << 20) + bytes(1 << 20))
    done = subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
                           str(raw), str(image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    provider = vsphere_provider_block.rstrip().rstrip("}") + "  api_retry_count = 1\n  persist_session = false\n}\n"

    def volume(name: str) -> str:
        return (f'resource "vmdk_volume" "{name}" {{\n  name = "{name}"\n  size_gb = 1\n  image {{\n'
                f'    source = {json.dumps(str(image))}\n    disk_type = "streamOptimized"\n  }}\n}}\n')

    before = set(scan_backings())
    port, got = plain_listener
    tf = make_tf(provider + volume("ours"))
    try:
        nfc_origin("http", f"127.0.0.1:{port}")  # the vCenter we connected to, over plain http
        result = run(tf, "apply", "-auto-approve")
        assert result.returncode == 0, result.stderr
        assert got == []
        assert len(set(scan_backings()) - before) == 1

        nfc_origin("http", "esx-01.invalid")  # another host, over plain http
        write_config(Path(tf.tfdir), provider + volume("ours") + volume("elsewhere"))
        result = run(tf, "apply", "-auto-approve")
        assert result.returncode == 1
        err = result.stderr
        assert "Cannot create the volume from the image" in err and "http://esx-01.invalid" in err
        assert "not HTTPS" in err and "/nfc/" not in err and "Traceback" not in err
        assert len(set(scan_backings()) - before) == 1  # the aborted lease's VM is gone
    finally:
        nfc_origin()
        tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before
