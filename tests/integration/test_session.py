"""Session: TLS verification, login failures, re-login, retries, retrieve, concurrency."""

from __future__ import annotations

import http.client
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from pyVmomi import SoapStubAdapter, vim, vmodl

from terraform_provider_vmdk.vsphere import exceptions as exc
from terraform_provider_vmdk.vsphere.connection import session as session_mod
from terraform_provider_vmdk.vsphere.connection.config import ConnectionConfig
from terraform_provider_vmdk.vsphere.connection.session import Session
from terraform_provider_vmdk.vsphere.placement.inventory import Inventory


@pytest.fixture
def only_vcsim(is_vcsim):
    if not is_vcsim:
        pytest.skip("needs our vcsim (own CA on 127.0.0.1)")


# ------------------------------------------------------------------ TLS

def test_ca_file_verification_succeeds(vsphere_config, only_vcsim):
    assert vsphere_config.ca_file and not vsphere_config.allow_unverified_ssl
    with Session(vsphere_config) as s:
        assert s.content.about.apiType == "VirtualCenter"
        assert s.ssl_context.verify_mode.name == "CERT_REQUIRED" and s.ssl_context.check_hostname


def test_localhost_name_verifies_against_certificate(vcsim, only_vcsim):
    with Session(vcsim.connection_config(server=f"localhost:{vcsim.port}")) as s:
        assert s.content.rootFolder is not None


@pytest.mark.parametrize("env", [{}, {"REQUESTS_CA_BUNDLE": "ca"}, {"CURL_CA_BUNDLE": "ca"}])
def test_system_cas_reject_self_signed_vcsim_even_on_127_0_0_1(vcsim, only_vcsim, monkeypatch, env):
    for k in env:
        monkeypatch.setenv(k, vcsim.ca_file)  # must not change our verification
    s = Session(vcsim.connection_config(ca_file=None))
    with pytest.raises(exc.ConnectionFailed) as info:
        s.connect()
    msg = str(info.value)
    assert vcsim.server in msg and "certificate verification failed" in msg
    assert "ca_file" in msg and "allow_unverified_ssl" in msg
    assert not s.connected


def test_wrong_ca_is_rejected(vcsim, only_vcsim, tmp_path):
    from tests.vcsim.harness import make_certificates

    other_ca, _, _ = make_certificates(tmp_path)
    with pytest.raises(exc.ConnectionFailed, match="not signed by the CA in ca_file"):
        Session(vcsim.connection_config(ca_file=str(other_ca))).connect()


def test_unreadable_ca_file(vcsim, tmp_path):
    with pytest.raises(exc.ConnectionFailed, match="cannot read ca_file"):
        Session(vcsim.connection_config(ca_file=str(tmp_path / "missing.pem"))).connect()


def test_allow_unverified_ssl_connects(vcsim):
    with Session(vcsim.connection_config(ca_file=None, allow_unverified_ssl=True)) as s:
        assert s.content.rootFolder is not None


def test_datastore_http_uses_the_session_context(vsphere_session, only_vcsim):
    """http_url + ssl_context + session_cookie are what transfer.py needs."""
    name = f"probe-{uuid.uuid4().hex[:8]}.txt"
    url = vsphere_session.http_url(f"/folder/{name}?dcPath=DC0&dsName=ds-big")
    host, port = vsphere_session.config.host, vsphere_session.config.port
    assert url.startswith(f"https://{host}:{port}/folder/")
    target = url.split(f":{port}", 1)[1]
    headers = {"Cookie": vsphere_session.session_cookie()}
    conn = http.client.HTTPSConnection(host, port, context=vsphere_session.ssl_context, timeout=10)
    conn.request("PUT", target, body=b"hello", headers=headers)
    assert conn.getresponse().read() is not None
    conn.request("GET", target, headers=headers)
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"hello")
    conn.request("DELETE", target, headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert vsphere_session.session_cookie().startswith("vmware_soap_session=")


# ------------------------------------------------------------------ login failures

def test_wrong_password_fails_without_leaking_it(vcsim, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Wr0ng-" + uuid.uuid4().hex
    s = Session(vcsim.connection_config(password=secret))
    with pytest.raises(exc.ConnectionFailed) as info:
        s.connect()
    err = info.value
    assert "login failed" in str(err) and vcsim.user in str(err) and vcsim.server in str(err)
    import traceback

    text = "".join(traceback.format_exception(err)) + repr(err) + repr(s) + repr(s.config)
    text += "".join(r.getMessage() for r in caplog.records)
    assert secret not in text
    assert err.__cause__ is None and err.__suppress_context__


def test_unreachable_server(vcsim):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(exc.ConnectionFailed, match=f"127.0.0.1:{port}.*refused"):
        Session(vcsim.connection_config(server=f"127.0.0.1:{port}")).connect()


def test_connect_is_lazy_idempotent_and_thread_safe(vsphere_config):
    s = Session(vsphere_config)
    assert not s.connected and s.round_trips == 0
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: s.connect(), range(16)))
    trips = s.round_trips
    assert trips == 2  # RetrieveServiceContent + Login, once
    s.connect()
    assert s.round_trips == trips
    s.logout()
    s.logout()
    assert not s.connected
    assert s.content is not None  # reconnects lazily after logout
    s.logout()


# ------------------------------------------------------------------ re-login

def _other_handle(config):
    other = Session(config)
    other.connect()
    return other


def test_relogin_after_terminate_session(vsphere_config, caplog):
    s = Session(vsphere_config)
    key = s.content.sessionManager.currentSession.key
    admin = _other_handle(vsphere_config)
    try:
        admin.call(admin.content.sessionManager.TerminateSession, [key])
        with pytest.raises(vim.fault.NotAuthenticated):
            s.content.sessionManager.currentSession.key  # noqa: B018 - raw stub: really logged out
        caplog.set_level(logging.WARNING, logger="terraform_provider_vmdk.vsphere")
        names = [c.props["name"] for c in s.retrieve(vim.Datacenter, ["name"])]
        assert names
        assert s.call(lambda: s.content.sessionManager.currentSession.key) != key
        assert any("logging in again" in r.getMessage() for r in caplog.records)
    finally:
        admin.logout()
        s.logout()


def test_relogin_after_logout_through_another_handle(vsphere_config):
    s = Session(vsphere_config)
    s.connect()
    # Log the same session out through a second stub that carries our cookie.
    stub = SoapStubAdapter(host=vsphere_config.host, port=vsphere_config.port, version=s.si._stub.version,
                           sslContext=s.ssl_context)
    stub.cookie = s.si._stub.cookie
    vim.ServiceInstance("ServiceInstance", stub).RetrieveContent().sessionManager.Logout()
    folder = Inventory(s).get_or_create_folder(f"relogin-{uuid.uuid4().hex[:8]}")
    assert s.get_properties(folder, ["name"])["name"].startswith("relogin-")
    s.run_task(folder.Destroy_Task)
    s.logout()


def test_pbm_follows_relogin(vsphere_config):
    from pyVmomi import pbm

    s = Session(vsphere_config)
    pm = s.pbm_content().profileManager
    kind = pbm.profile.ResourceType(resourceType="STORAGE")
    assert s.call(pm.PbmQueryProfile, resourceType=kind)
    admin = _other_handle(vsphere_config)
    try:
        admin.call(admin.content.sessionManager.TerminateSession, [s.content.sessionManager.currentSession.key])
        gen = s._generation
        assert s.call(pm.PbmQueryProfile, resourceType=kind)  # PBM call first: re-login, new cookie on PBM
        assert s._generation == gen + 1  # the PBM call itself saw NotAuthenticated and logged in again
        assert s.call(lambda: s.content.sessionManager.currentSession) is not None
    finally:
        admin.logout()
        s.logout()


# ------------------------------------------------------------------ retries

def test_transient_errors_are_retried_with_backoff(vsphere_config, monkeypatch, caplog):
    monkeypatch.setattr(session_mod, "BACKOFF_BASE", 0.001)
    s = Session(replace(vsphere_config, api_retry_count=3))
    failures = [ConnectionResetError("reset"), http.client.HTTPException("503 Service Unavailable"),
                vmodl.fault.HostCommunication()]

    def flaky():
        if failures:
            raise failures.pop(0)
        return "ok"

    caplog.set_level(logging.WARNING, logger="terraform_provider_vmdk.vsphere")
    assert s.call(flaky) == "ok"
    assert sum("transient error" in r.getMessage() for r in caplog.records) == 3

    def always():
        raise TimeoutError("timed out")

    with pytest.raises(exc.ConnectionFailed, match="gave up after 4 attempts"):
        s.call(always)

    def permanent():
        raise vim.fault.InvalidState()

    with pytest.raises(vim.fault.InvalidState):
        s.call(permanent)
    s.logout()


# ------------------------------------------------------------------ retrieve

def test_retrieve_many_vms_in_one_round_trip(vsphere_session, vcsim):
    inv = Inventory(vsphere_session)
    folder = inv.get_or_create_folder(f"many-{uuid.uuid4().hex[:8]}")
    host = inv.hosts(["DC0_C0"])[0]
    names = [f"m{i:02d}" for i in range(25)]

    def create(name):
        spec = vim.vm.ConfigSpec(name=name, guestId="otherGuest", numCPUs=1, memoryMB=128,
                                 files=vim.vm.FileInfo(vmPathName="[ds-big]"))
        return vsphere_session.run_task(folder.CreateVM_Task, spec, host.resource_pool, host.moref)

    with ThreadPoolExecutor(10) as pool:
        vms = list(pool.map(create, names))
    try:
        before = vsphere_session.round_trips
        found = vsphere_session.retrieve(vim.VirtualMachine, ["name", "config.instanceUuid", "runtime.powerState"],
                                         container=folder)
        assert vsphere_session.round_trips - before in (1, 2)  # (CreateContainerView +) RetrievePropertiesEx
        assert sorted(c.props["name"] for c in found) == names
        assert all(c.props["runtime.powerState"] == "poweredOff" for c in found)
        before = vsphere_session.round_trips
        again = vsphere_session.retrieve(vim.VirtualMachine, ["name"], container=folder)
        assert vsphere_session.round_trips - before == 1  # the view is reused
        assert len(again) == 25
        # explicit objects: one round trip, no view
        before = vsphere_session.round_trips
        some = vsphere_session.retrieve(vim.VirtualMachine, ["name"], objects=vms[:5])
        assert vsphere_session.round_trips - before == 1
        assert [c.props["name"] for c in some] == names[:5]
    finally:
        for vm in vms:
            vsphere_session.run_task(vm.Destroy_Task)
        vsphere_session.run_task(folder.Destroy_Task)


def test_retrieve_missing_properties_are_absent(vsphere_session):
    dc = Inventory(vsphere_session).datacenter
    props = vsphere_session.get_properties(dc, ["name", "configuration.defaultHardwareVersionKey"])
    assert props["name"] == "DC0"
    assert "configuration.defaultHardwareVersionKey" not in props or props[
        "configuration.defaultHardwareVersionKey"] is not None


def test_get_properties_of_deleted_object_is_not_found(vsphere_session):
    folder = Inventory(vsphere_session).get_or_create_folder(f"gone-{uuid.uuid4().hex[:8]}")
    vsphere_session.run_task(folder.Destroy_Task)
    with pytest.raises(exc.NotFound):
        vsphere_session.get_properties(folder, ["name"])


def test_retrieve_recovers_when_cached_view_is_destroyed(vsphere_config):
    with Session(vsphere_config) as s:
        assert s.retrieve(vim.Datastore, ["name"])
        for _generation, view in list(s._views.values()):
            view.DestroyView()
        assert s.retrieve(vim.Datastore, ["name"])


# ------------------------------------------------------------------ concurrency

def test_twenty_operations_from_ten_threads_on_one_session(vsphere_session):
    inv = Inventory(vsphere_session)
    base = f"conc-{uuid.uuid4().hex[:8]}"
    host = inv.hosts(["DC0_C1"])[0]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def op(i):
        try:
            folder = inv.get_or_create_folder(f"{base}/f{i % 5}")
            spec = vim.vm.ConfigSpec(name=f"vm{i}", guestId="otherGuest", numCPUs=1, memoryMB=128,
                                     files=vim.vm.FileInfo(vmPathName="[ds-c1]"))
            vm = vsphere_session.run_task(folder.CreateVM_Task, spec, host.resource_pool, host.moref)
            assert vsphere_session.get_properties(vm, ["name"])["name"] == f"vm{i}"
            assert inv.datastores()
            vsphere_session.run_task(vm.Destroy_Task)
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread, asserted below
            with lock:
                errors.append(error)

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(op, range(20)))
    assert errors == []
    top = inv.get_or_create_folder(base)
    assert len(vsphere_session.get_properties(top, ["childEntity"])["childEntity"]) == 5
    vsphere_session.run_task(top.Destroy_Task)


def test_config_parses_server():
    c = ConnectionConfig(server="vc.example.com", user="u", password="p")
    assert (c.host, c.port) == ("vc.example.com", 443)
    c = ConnectionConfig(server="10.0.0.1:8443", user="u", password="p")
    assert (c.host, c.port, c.netloc) == ("10.0.0.1", 8443, "10.0.0.1:8443")
    c = ConnectionConfig(server="[::1]:9443", user="u", password="p")
    assert (c.host, c.port, c.netloc) == ("::1", 9443, "[::1]:9443")
    assert "s3cr3t-pw" not in repr(ConnectionConfig(server="h", user="u", password="s3cr3t-pw"))
    with pytest.raises(ValueError):
        ConnectionConfig(server="h:notaport", user="u", password="p")


# ------------------------------------------------------------------ saved sessions (persist_session)

def _session_as(vcsim, user_name: str):
    """A live session on the simulator whose server-side user is ``user_name`` (vcsim's LoginByToken takes the
    SAML subject as the user, so one simulator serves sessions of several users): (stub, content)."""
    s = Session(vcsim.connection_config(persist_session=False))
    version, ctx = s._api_version(), s.ssl_context
    token = ('<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion"><saml2:Subject>'
             f'<saml2:NameID>{user_name}</saml2:NameID></saml2:Subject></saml2:Assertion>')
    stub = SoapStubAdapter(host=vcsim.host, port=vcsim.port, version=version, sslContext=ctx, samlToken=token)
    content = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
    content.sessionManager.LoginByToken()
    stub.samlToken = None
    assert content.sessionManager.currentSession.userName == user_name
    return stub, content


def _saved_config(vcsim, tmp_path, **overrides):
    from terraform_provider_vmdk.vsphere.connection.session_store import SessionStore

    config = vcsim.connection_config(persist_session=True, session_path=str(tmp_path / "sessions"), **overrides)
    return config, SessionStore(config.session_path, config.netloc, config.user)


def test_a_saved_session_of_another_user_is_forgotten_not_resumed(vcsim, only_vcsim, tmp_path, caplog):
    """The file says whose session it holds; the server says whose it is. Another user's session is not used,
    and not logged out either (it may be in use elsewhere): a fresh login replaces it in the file."""
    caplog.set_level(logging.WARNING, logger="terraform_provider_vmdk.vsphere")
    other_stub, other = _session_as(vcsim, "VSPHERE.LOCAL\\intruder")
    config, store = _saved_config(vcsim, tmp_path)
    store.save(other_stub.cookie, None)
    s = Session(config)
    try:
        s.connect()
        assert (s.resumed, s.logins) == (0, 1)
        assert s.content.sessionManager.currentSession.userName == vcsim.user
        saved = store.load()
        assert saved is not None and saved.cookie == s._stub.cookie != other_stub.cookie
        assert other.sessionManager.currentSession.userName == "VSPHERE.LOCAL\\intruder"  # still logged in
        assert any("belongs to 'VSPHERE.LOCAL\\\\intruder'" in r.getMessage() for r in caplog.records)
        assert vcsim.password not in caplog.text
    finally:
        s.call(s.content.sessionManager.Logout)
        s.logout()
        other.sessionManager.Logout()


def test_a_foreign_saved_session_is_forgotten_even_when_the_new_login_fails(vcsim, only_vcsim, tmp_path):
    other_stub, other = _session_as(vcsim, "intruder")
    config, store = _saved_config(vcsim, tmp_path, password="not-the-password")
    store.save(other_stub.cookie, None)
    try:
        with pytest.raises(exc.ConnectionFailed, match="incorrect user name or password"):
            Session(config).connect()
        assert not store.path.exists()
        assert other.sessionManager.currentSession.userName == "intruder"
    finally:
        other.sessionManager.Logout()


def test_a_saved_session_of_the_user_in_vcenters_other_spelling_is_resumed(vcsim, only_vcsim, tmp_path):
    """vCenter names `administrator@vsphere.local` `VSPHERE.LOCAL\\Administrator`: the same user, resumed."""
    stub, content = _session_as(vcsim, f"VSPHERE.LOCAL\\{vcsim.user.upper()}")
    config, store = _saved_config(vcsim, tmp_path, user=f"{vcsim.user}@vsphere.local", password="unused")
    store.save(stub.cookie, None)
    s = Session(config)
    try:
        s.connect()  # a login would fail: this user/password pair is not the simulator's
        assert (s.resumed, s.logins) == (1, 0)
    finally:
        s.logout()
        content.sessionManager.Logout()


# ------------------------------------------------------------------ the session cookie on lease transfers

@pytest.fixture
def nfc_origin(vcsim, only_vcsim):
    """Make the simulator's next leases name another scheme/host in their device URLs; reset afterwards."""
    try:
        yield vcsim.set_nfc_origin
    finally:
        vcsim.set_nfc_origin()


@pytest.fixture
def plain_listener():
    """A plain-TCP port that records whether anything connected to it (the cookie must never go there)."""
    import socket

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


def _export(vcsim, made, places, tmp_path):
    """Export a new volume's disk through an ExportVm lease with a Session of its own (few retries)."""
    from test_volumeops import create

    from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
    from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

    session = Session(vcsim.connection_config(api_retry_count=1, persist_session=False))
    ops = VolumeOps(session, Inventory(session))
    backing = create(ops, made, places[0])
    out = tmp_path / "export.vmdk"
    try:
        return ops.export_stream(backing.moref, lambda: out.open("wb"), what="export of the volume"), out
    finally:
        session.logout()


def test_a_plain_http_lease_url_of_our_server_is_fetched_over_https(vcsim, nfc_origin, plain_listener, made,
                                                                      places, tmp_path):
    port, got = plain_listener
    nfc_origin("http", f"127.0.0.1:{port}")  # vCenter's own host, over plain http
    written, out = _export(vcsim, made, places, tmp_path)
    assert written > 0 and out.read_bytes()[:4] == b"KDMV"  # a streamOptimized VMDK
    assert got == []  # nothing (no cookie) went over plain http


def test_a_plain_http_lease_url_of_another_host_is_refused(vcsim, nfc_origin, made, places, tmp_path):
    nfc_origin("http", "esx-01.invalid")
    with pytest.raises(exc.VMwareDriverError) as info:
        _export(vcsim, made, places, tmp_path)
    assert isinstance(info.value, exc.TransferRefused), info.value
    assert "http://esx-01.invalid" in str(info.value) and "/nfc/" not in str(info.value)


def test_a_lease_url_naming_an_esxi_host_is_used(vcsim, nfc_origin, made, places, tmp_path):
    """vCenter names the ESXi host that serves the disk; that host gets the transfer (and its cookie)."""
    nfc_origin("https", f"localhost:{vcsim.port}")  # another name, not the one we connected to (127.0.0.1)
    written, _ = _export(vcsim, made, places, tmp_path)
    assert written > 0
