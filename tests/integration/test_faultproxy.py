"""tests/faultproxy.py against vcsim: every fault kind really happens on the wire, with the effect the
client sees *and* the effect on the server (checked on a direct connection that bypasses the proxy).

Raw pyVmomi only (no provider code), so these tests pin the proxy's behaviour, not the provider's.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pyVmomi import SoapStubAdapter, vim

from tests.faultproxy import (
    DELAY,
    HTTP503,
    KINDS,
    LOST_RESPONSE,
    PROTECTED_METHODS,
    REFUSE,
    RESET,
    SESSION_END,
    FaultProxy,
    classify,
)

VERSION = "vim.version.version8"
DATASTORE = "LocalDS_0"


# ------------------------------------------------------------------------------------------ helpers

@dataclass
class Client:
    """A raw pyVmomi session (SoapStubAdapter + ServiceInstance)."""

    stub: Any
    si: Any
    content: Any

    @property
    def session_key(self) -> str:
        return self.stub.cookie.split("vmware_soap_session=", 1)[1].split(";", 1)[0].strip('"')

    def logout(self) -> None:
        try:
            self.content.sessionManager.Logout()
        except Exception:  # noqa: BLE001 - already ended by a test
            pass


def _ctx(sim: Any) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=sim.ca_file)


def connect(server: str, sim: Any, *, login: bool = True, timeout: float | None = None,
            pool: int = 5) -> Client:
    host, _, port = server.rpartition(":")
    stub = SoapStubAdapter(host=host, port=int(port), version=VERSION, sslContext=_ctx(sim),
                           httpConnectionTimeout=timeout, poolSize=pool)
    si = vim.ServiceInstance("ServiceInstance", stub)
    content = si.RetrieveContent()
    if login:
        content.sessionManager.Login(sim.user, sim.password, None)
    return Client(stub, si, content)


def unique(prefix: str = "fp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def folder_names(direct: Client) -> set[str]:
    return {e.name for e in direct.content.rootFolder.childEntity}


@contextlib.contextmanager
def https(server: str, sim: Any, timeout: float = 30) -> Iterator[http.client.HTTPSConnection]:
    host, _, port = server.rpartition(":")
    conn = http.client.HTTPSConnection(host, int(port), context=_ctx(sim), timeout=timeout)
    try:
        yield conn
    finally:
        conn.close()


def ds_path(name: str) -> str:
    return f"/folder/{name}?dcPath=DC0&dsName={DATASTORE}"


def delete_ds_file(direct: Client, name: str) -> None:
    """Remove a datastore file through FileManager: vcsim 0.24.2 answers HTTP DELETE on /folder like a GET
    (its ServeDatastore hands every verb but PUT/POST to http.FileServer) and deletes nothing."""
    dc = next(e for e in direct.content.rootFolder.childEntity if e.name == "DC0")
    direct.content.fileManager.DeleteDatastoreFile_Task(name=f"[{DATASTORE}] {name}", datacenter=dc)


def http_call(conn: http.client.HTTPSConnection, verb: str, path: str, *, body: Any = None,
              headers: dict[str, str] | None = None, chunked: bool = False) -> tuple[int, dict[str, str], bytes]:
    conn.request(verb, path, body=body, headers=headers or {}, encode_chunked=chunked)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def raw_tls_request(server: str, sim: Any, request: bytes) -> BaseException | bytes:
    """Send ``request`` over TLS, then read the *TCP* stream under TLS until it ends.

    Why raw: Python's ssl module (OpenSSL 3) reports a peer's RST as a ragged EOF and http.client turns
    that into RemoteDisconnected, indistinguishable from a FIN.  Reading the socket beneath TLS shows what
    the kernel saw: ConnectionResetError for an RST, b"" for a FIN.
    """
    host, _, port = server.rpartition(":")
    raw = socket.create_connection((host, int(port)), timeout=10)
    tls = _ctx(sim).wrap_socket(raw, server_hostname=host)
    try:
        tls.sendall(request)
        received = b""
        while True:
            try:
                piece = socket.socket.recv(tls, 65536)
            except OSError as error:
                return error
            if not piece:
                return received
            received += piece
    finally:
        tls.close()


def soap_request(client: Client, method: str) -> bytes:
    """A complete HTTP request carrying a SOAP call on the ServiceInstance with the client's cookie."""
    body = (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            f'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            f'<{method} xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></{method}>'
            f'</soapenv:Body></soapenv:Envelope>').encode()
    head = (f"POST /sdk HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=UTF-8\r\n"
            f"SOAPAction: urn:vim25/8.0.0.0\r\nCookie: {client.stub.cookie.split(';')[0]}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


# ------------------------------------------------------------------------------------------ fixtures

@pytest.fixture
def sim(vcsim, is_vcsim):
    if not is_vcsim:
        pytest.skip("the proxy presents our vcsim's certificate (needs tests/vcsim)")
    return vcsim


@pytest.fixture
def proxy(sim) -> Iterator[FaultProxy]:
    with FaultProxy(sim) as p:
        yield p
        assert p.errors == []  # the proxy itself never failed: only the faults we asked for happened


@pytest.fixture
def direct(sim) -> Iterator[Client]:
    """A session straight to vcsim, for checking what the server did."""
    client = connect(sim.server, sim)
    yield client
    client.logout()


@pytest.fixture
def folders(direct) -> Iterator[list[str]]:
    """Names of root folders a test may create; destroyed (directly) afterwards."""
    names: list[str] = []
    yield names
    for entity in direct.content.rootFolder.childEntity:
        if entity.name in names or entity.name.startswith("fp-rand-"):
            entity.Destroy_Task()  # vcsim runs tasks inside the call


# ------------------------------------------------------------------------------------------ tests

def test_classification_sets():
    for write in ("CreateVM_Task", "ReconfigVM_Task", "Destroy_Task", "CreateFolder", "MarkAsTemplate",
                  "MarkAsVirtualMachine", "RenameSnapshot", "SetCustomValue", "UnregisterVM", "ImportVApp",
                  "PUT /folder", "DELETE /folder", "POST /nfc", "PbmCreate"):
        assert classify(write) == "write", write
    for read in ("RetrievePropertiesEx", "ContinueRetrievePropertiesEx", "FindByUuid", "CreateContainerView",
                 "DestroyView", "WaitForUpdatesEx", "PbmQueryProfile", "PbmCheckRequirements",
                 "SearchDatastore_Task", "Fetch", "CurrentTime", "GET /folder", "HEAD /folder", "Login"):
        assert classify(read) == "read", read
    assert {"Login", "Logout", "RetrieveServiceContent"} <= PROTECTED_METHODS
    assert classify("Frobnicate_Task") == "write" and classify("Frobnicate") == "read"
    assert classify("Frobnicate", write_methods={"Frobnicate"}) == "write"  # easy to extend


def test_passthrough_keeps_session_and_records_requests(proxy, sim, direct, folders):
    client = connect(proxy.server, sim)
    assert client.content.rootFolder.name == "Datacenters"
    name = unique()
    folders.append(name)
    folder = client.content.rootFolder.CreateFolder(name)
    assert folder.name == name and name in folder_names(direct)
    reqs = proxy.requests
    assert reqs["RetrieveServiceContent"] == 1 and reqs["Login"] == 1 and reqs["CreateFolder"] == 1
    assert proxy.injected == [] and sum(proxy.counts.values()) == 0
    assert [e.category for e in proxy.log if e.method == "CreateFolder"] == ["write"]
    client.logout()


def test_reset_before_forwarding(proxy, sim, direct, folders):
    client = connect(proxy.server, sim)
    rule = proxy.inject(RESET, "CreateFolder")
    name = unique()
    folders.append(name)
    with pytest.raises(ConnectionError):  # RemoteDisconnected: http.client's view of an RST under TLS
        client.content.rootFolder.CreateFolder(name)
    assert name not in folder_names(direct)  # vSphere never saw it
    assert proxy.injected == [(RESET, "CreateFolder")] and proxy.counts[RESET] == 1
    assert rule.fired == 1 and rule.done and proxy.rules == []
    # Same session, new connection: the client recovers by itself.
    client.content.rootFolder.CreateFolder(name)
    assert name in folder_names(direct)


def test_reset_and_lost_response_are_tcp_resets_on_the_wire(proxy, sim):
    client = connect(proxy.server, sim)
    proxy.inject(RESET, "CurrentTime")
    assert isinstance(raw_tls_request(proxy.server, sim, soap_request(client, "CurrentTime")),
                      ConnectionResetError)
    proxy.inject(LOST_RESPONSE, "CurrentTime")
    assert isinstance(raw_tls_request(proxy.server, sim, soap_request(client, "CurrentTime")),
                      ConnectionResetError)
    # Control: without a fault the same request is answered (the stream then just stays open: keep-alive).
    with https(proxy.server, sim) as conn:
        conn.request("POST", "/sdk", body=soap_request(client, "CurrentTime").split(b"\r\n\r\n", 1)[1],
                     headers={"Content-Type": "text/xml", "SOAPAction": "urn:vim25/8.0.0.0",
                              "Cookie": client.stub.cookie.split(";")[0]})
        resp = conn.getresponse()
        assert resp.status == 200 and b"CurrentTimeResponse" in resp.read()
    assert proxy.injected == [(RESET, "CurrentTime"), (LOST_RESPONSE, "CurrentTime")]


def test_lost_response_after_vsphere_acted(proxy, sim, direct, folders):
    client = connect(proxy.server, sim)
    proxy.inject(LOST_RESPONSE, "CreateFolder")
    name = unique()
    folders.append(name)
    with pytest.raises(ConnectionError):
        client.content.rootFolder.CreateFolder(name)
    assert name in folder_names(direct)  # it happened; the client just never heard
    with pytest.raises(vim.fault.DuplicateName):  # what a naive retry runs into
        client.content.rootFolder.CreateFolder(name)
    assert proxy.injected == [(LOST_RESPONSE, "CreateFolder")]


def test_http503_without_forwarding(proxy, sim, direct, folders):
    client = connect(proxy.server, sim)
    proxy.inject(HTTP503, "write")
    name = unique()
    folders.append(name)
    with pytest.raises(http.client.HTTPException, match=r"^503 Service Unavailable$") as info:
        client.content.rootFolder.CreateFolder(name)
    assert not isinstance(info.value, ConnectionError)
    assert name not in folder_names(direct)
    assert client.si.CurrentTime() is not None  # reads untouched, session intact
    assert proxy.injected == [(HTTP503, "CreateFolder")]
    # The 503 is a well-formed keep-alive response: the next request on the same connection works.
    with https(proxy.server, sim) as conn:
        proxy.inject(HTTP503, "GET /folder")
        status, _headers, body = http_call(conn, "GET", ds_path("nothing-here"))
        assert status == 503 and body == b"503 Service Unavailable\n"
        status, _, _ = http_call(conn, "GET", ds_path("nothing-here"))
        assert status == 404  # forwarded this time: vcsim's answer


def test_refuse_answers_a_soap_fault_without_forwarding(proxy, sim, direct, folders):
    client = connect(proxy.server, sim)
    proxy.inject(REFUSE, "CreateFolder")
    name = unique()
    folders.append(name)
    with pytest.raises(vim.fault.InvalidDeviceSpec):
        client.content.rootFolder.CreateFolder(name)
    assert name not in folder_names(direct)
    client.content.rootFolder.CreateFolder(name)  # same connection, same session: the next call goes through
    assert name in folder_names(direct)
    assert proxy.injected == [(REFUSE, "CreateFolder")]


def test_session_end_is_real(proxy, sim, direct):
    client = connect(proxy.server, sim)
    old_key = client.session_key
    assert old_key in {s.key for s in direct.content.sessionManager.sessionList}
    proxy.inject(SESSION_END, "read")
    with pytest.raises(vim.fault.NotAuthenticated):  # answered by vcsim itself
        client.content.rootFolder.name  # noqa: B018 - a property read is a "Fetch"
    assert proxy.injected == [(SESSION_END, "Fetch")]
    assert old_key not in {s.key for s in direct.content.sessionManager.sessionList}
    with pytest.raises(vim.fault.NotAuthenticated):  # it stays ended
        client.si.CurrentTime()
    fresh = connect(proxy.server, sim)  # a new Login on a fresh stub works
    assert fresh.content.rootFolder.name == "Datacenters" and fresh.session_key != old_key
    # vcsim: Login on the old stub (stale cookie) also works and hands out a new session.
    client.content.sessionManager.Login(sim.user, sim.password, None)
    assert client.session_key not in (old_key, fresh.session_key)
    assert client.content.rootFolder.name == "Datacenters"
    fresh.logout()
    client.logout()


def test_session_end_needs_a_cookie(proxy, sim):
    rule = proxy.inject(SESSION_END, None)
    with https(proxy.server, sim) as conn:  # datastore GET without a cookie: nothing to end
        assert http_call(conn, "GET", ds_path("nothing-here"))[0] == 404
    assert rule.seen == 0 and proxy.injected == []
    client = connect(proxy.server, sim)  # RetrieveServiceContent/Login are protected
    with pytest.raises(vim.fault.NotAuthenticated):
        client.si.CurrentTime()
    assert proxy.injected == [(SESSION_END, "CurrentTime")]


def test_delay_holds_the_response(proxy, sim, direct, folders):
    client = connect(proxy.server, sim)
    proxy.inject(DELAY, "CurrentTime", seconds=1.0)
    started = time.monotonic()
    client.si.CurrentTime()
    assert time.monotonic() - started >= 1.0
    started = time.monotonic()
    client.si.CurrentTime()  # once only
    assert time.monotonic() - started < 0.9
    # A client with a shorter timeout gives up, though vSphere already acted.
    impatient = connect(proxy.server, sim, timeout=0.5)
    proxy.inject(DELAY, "CreateFolder", seconds=2.0)
    name = unique()
    folders.append(name)
    with pytest.raises(TimeoutError):
        impatient.content.rootFolder.CreateFolder(name)
    assert name in folder_names(direct)
    assert proxy.injected == [(DELAY, "CurrentTime"), (DELAY, "CreateFolder")]


def test_times_and_skip(proxy, sim):
    client = connect(proxy.server, sim)
    rule = proxy.inject(HTTP503, "CurrentTime", times=2, skip=1)

    def outcome() -> str:
        try:
            client.si.CurrentTime()
            return "ok"
        except http.client.HTTPException as error:
            return str(error)

    results = []
    for _ in range(4):
        results.append(outcome())
        assert client.content.rootFolder.name == "Datacenters"  # other methods don't count
    assert results == ["ok", "503 Service Unavailable", "503 Service Unavailable", "ok"]
    assert (rule.seen, rule.fired, rule.done) == (3, 2, True)
    assert proxy.counts == {HTTP503: 2} and proxy.requests["CurrentTime"] == 4

    # Predicates and collections; times=None: until cleared; rules apply in order, first one wins.
    first = proxy.inject(HTTP503, lambda m: m.startswith("Current"))
    forever = proxy.inject(RESET, {"CurrentTime", "Fetch"}, times=None)
    assert outcome() == "503 Service Unavailable" and first.done
    for _ in range(3):
        with pytest.raises(ConnectionError):
            client.si.CurrentTime()
    assert forever.fired == 3 and not forever.done and proxy.rules == [forever]
    proxy.clear()
    assert outcome() == "ok" and proxy.rules == []


def test_protected_methods_only_by_exact_name(proxy, sim):
    proxy.inject(RESET, None, times=None)
    client = connect(proxy.server, sim)  # RetrieveServiceContent + Login pass
    with pytest.raises(ConnectionError):
        client.si.CurrentTime()
    proxy.clear()
    proxy.inject(HTTP503, "Login")
    with pytest.raises(http.client.HTTPException, match=r"^503"):
        connect(proxy.server, sim)
    assert proxy.injected == [(RESET, "CurrentTime"), (HTTP503, "Login")]
    client.logout()


def test_pause_lets_everything_through_without_counting(proxy, sim):
    client = connect(proxy.server, sim)
    rule = proxy.inject(HTTP503, "CurrentTime", skip=1)
    with proxy.paused():
        assert proxy.is_paused
        for _ in range(3):
            client.si.CurrentTime()
    assert not proxy.is_paused and rule.seen == 0
    client.si.CurrentTime()  # the skipped one
    with pytest.raises(http.client.HTTPException):
        client.si.CurrentTime()
    assert proxy.requests["CurrentTime"] == 5 and proxy.injected == [(HTTP503, "CurrentTime")]


def test_inject_validates_arguments(proxy):
    with pytest.raises(ValueError):
        proxy.inject("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        proxy.inject(DELAY)
    with pytest.raises(ValueError):
        proxy.inject(RESET, seconds=1)
    with pytest.raises(ValueError):
        proxy.inject(RESET, times=0)
    with pytest.raises(ValueError):
        proxy.randomize(1, kinds=("nope",))
    assert set(KINDS) == {RESET, HTTP503, SESSION_END, LOST_RESPONSE, DELAY, REFUSE}


def _scripted_run(server: str, sim: Any, tag: str) -> list[str]:
    """A fixed request sequence that carries on through faults (re-login after NotAuthenticated, no
    retries), so the sequence of requests reaching the proxy is the same whatever gets injected."""
    outcomes = []
    client = connect(server, sim)
    for i in range(45):
        try:
            if i % 3 == 2:
                client.content.rootFolder.CreateFolder(f"fp-rand-{tag}-{i}")
            else:
                client.si.CurrentTime()
            outcomes.append("ok")
        except vim.fault.NotAuthenticated:
            outcomes.append(SESSION_END)
            client = connect(server, sim)
        except ConnectionError:
            outcomes.append("connection")
        except http.client.HTTPException as error:
            outcomes.append(str(error))
    client.logout()
    return outcomes


def test_random_mode_is_deterministic_per_seed(sim, direct, folders):
    runs = []
    for seed, tag in ((7, "a"), (7, "b"), (8, "c")):
        with FaultProxy(sim) as proxy:
            proxy.randomize(seed, read_rate=0.25, write_rate=0.5)
            outcomes = _scripted_run(proxy.server, sim, tag)
            runs.append((proxy.injected, outcomes, proxy.counts))
            assert proxy.errors == []
    (inj_a, out_a, counts_a), (inj_b, out_b, _), (inj_c, _, _) = runs
    assert inj_a == inj_b and out_a == out_b  # same seed, same requests: same faults
    assert inj_a != inj_c
    assert len(counts_a) >= 3, counts_a  # several kinds really drawn
    # Every injected fault had its client-visible effect, in order.
    effect = {RESET: "connection", LOST_RESPONSE: "connection", HTTP503: "503 Service Unavailable",
              SESSION_END: SESSION_END}
    assert [effect[kind] for kind, _ in inj_a] == [o for o in out_a if o != "ok"]
    assert {m for _, m in inj_a} <= {"CurrentTime", "CreateFolder"}  # Login etc. never faulted


def test_random_rates_follow_read_write_classes(proxy, sim, direct, folders):
    client = connect(proxy.server, sim)
    proxy.randomize(3, read_rate=0.0, write_rate=1.0, kinds=(HTTP503,))
    for _ in range(5):
        client.si.CurrentTime()
        name = unique()
        folders.append(name)
        with pytest.raises(http.client.HTTPException, match=r"^503"):
            client.content.rootFolder.CreateFolder(name)
    proxy.randomize(None)
    name = unique()
    folders.append(name)
    client.content.rootFolder.CreateFolder(name)
    assert proxy.injected == [(HTTP503, "CreateFolder")] * 5
    assert not (set(folders[:-1]) & folder_names(direct))
    client.logout()


def test_concurrent_clients_pass_through_cleanly(proxy, sim, direct):
    shared = connect(proxy.server, sim, pool=10)  # one session, many threads (as the provider does)
    errors: list[BaseException] = []
    rounds = 8

    def worker(n: int) -> None:
        try:
            own = connect(proxy.server, sim)
            for i in range(rounds):
                assert own.si.CurrentTime() is not None
                assert shared.content.rootFolder.name == "Datacenters"
                folder = own.content.rootFolder.CreateFolder(f"fp-conc-{n}-{i}-{uuid.uuid4().hex[:6]}")
                shared.content.rootFolder  # noqa: B018
                folder.Destroy_Task()
            own.logout()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and not any(t.is_alive() for t in threads)
    reqs = proxy.requests
    assert reqs["CreateFolder"] == reqs["Destroy_Task"] == 10 * rounds
    assert reqs["Login"] == 11 and proxy.injected == []
    assert not any(n.startswith("fp-conc-") for n in folder_names(direct))
    shared.logout()


def test_datastore_transfers_pass_through_byte_exact(proxy, sim, direct):
    cookie = {"Cookie": direct.stub.cookie.split(";")[0]}
    name, name2 = unique() + ".bin", unique() + ".bin"
    data = os.urandom(3 * 1024 * 1024 + 123)
    with https(sim.server, sim) as up:
        assert http_call(up, "PUT", ds_path(name), body=data, headers=cookie)[0] in (200, 201)
    with https(proxy.server, sim) as conn:  # one keep-alive connection for all of these
        status, headers, body = http_call(conn, "GET", ds_path(name), headers=cookie)
        assert status == 200 and body == data
        status, headers, body = http_call(conn, "HEAD", ds_path(name), headers=cookie)
        assert status == 200 and body == b"" and int(headers["content-length"]) == len(data)
        status, _, body = http_call(conn, "GET", ds_path(name), headers={**cookie, "Range": "bytes=100-199"})
        assert status == 206 and body == data[100:200]
        # Upload through the proxy with a chunked body; read it back directly.
        data2 = os.urandom(1024 * 1024 + 7)
        pieces = (data2[i:i + 100_000] for i in range(0, len(data2), 100_000))
        assert http_call(conn, "PUT", ds_path(name2), body=pieces, headers=cookie, chunked=True)[0] in (200, 201)
        # DELETE passes through too (vcsim answers it like a GET: see delete_ds_file).
        status, _, body = http_call(conn, "DELETE", ds_path(name), headers=cookie)
        assert status == 200 and body == data
    with https(sim.server, sim) as up:
        assert http_call(up, "GET", ds_path(name2), headers=cookie)[2] == data2
    for n in (name, name2):
        delete_ds_file(direct, n)
    with https(sim.server, sim) as up:
        assert http_call(up, "GET", ds_path(name2), headers=cookie)[0] == 404
    reqs = proxy.requests
    assert (reqs["GET /folder"], reqs["HEAD /folder"], reqs["PUT /folder"], reqs["DELETE /folder"]) == (2, 1, 1, 1)
    assert proxy.injected == []


def test_faults_on_datastore_transfers(proxy, sim, direct):
    cookie = {"Cookie": direct.stub.cookie.split(";")[0]}
    name = unique() + ".bin"
    data = os.urandom(2 * 1024 * 1024)
    proxy.inject(RESET, "write")  # PUT /folder is a write
    # Reset while the client is still sending: depending on timing Python reports BrokenPipeError,
    # ConnectionResetError or (OpenSSL 3 on write) ssl.SSLEOFError, which is not a ConnectionError.
    with https(proxy.server, sim) as conn, pytest.raises((ConnectionError, ssl.SSLEOFError)):
        http_call(conn, "PUT", ds_path(name), body=data, headers=cookie)
    with https(sim.server, sim) as up:
        assert http_call(up, "GET", ds_path(name), headers=cookie)[0] == 404  # never arrived
    proxy.inject(LOST_RESPONSE, "PUT /folder")
    with https(proxy.server, sim) as conn, pytest.raises(ConnectionError):
        http_call(conn, "PUT", ds_path(name), body=data, headers=cookie)
    with https(sim.server, sim) as up:
        assert http_call(up, "GET", ds_path(name), headers=cookie)[2] == data  # stored all the same
    delete_ds_file(direct, name)
    assert proxy.injected == [(RESET, "PUT /folder"), (LOST_RESPONSE, "PUT /folder")]


def test_clients_in_other_processes(proxy, sim, direct, folders):
    """Terraform starts provider processes: only the proxy's address crosses the process boundary.
    Three at once, each of whose CreateFolder answers is lost."""
    names = [unique() for _ in range(3)]
    folders.extend(names)
    proxy.inject(LOST_RESPONSE, "CreateFolder", times=3)
    script = textwrap.dedent("""
        import ssl, sys
        from pyVmomi import SoapStubAdapter, vim
        server, ca, user, pwd, name = sys.argv[1:]
        host, _, port = server.rpartition(":")
        stub = SoapStubAdapter(host=host, port=int(port), version="vim.version.version8",
                               sslContext=ssl.create_default_context(cafile=ca))
        content = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
        content.sessionManager.Login(user, pwd, None)
        try:
            content.rootFolder.CreateFolder(name)
            print("ok")
        except ConnectionError as error:
            print("ConnectionError", type(error).__name__)
        content.sessionManager.Logout()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, proxy.server, sim.ca_file, sim.user, sim.password, n],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in names]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.split()[0] == "ConnectionError"
    assert set(names) <= folder_names(direct)
    assert proxy.requests["Login"] == 3 and proxy.injected == [(LOST_RESPONSE, "CreateFolder")] * 3


def test_close_stops_listening_and_is_idempotent(sim):
    proxy = FaultProxy(sim)
    client = connect(proxy.server, sim)
    assert client.si.CurrentTime() is not None
    proxy.inject(DELAY, "CurrentTime", seconds=30)
    outcome: list[BaseException | None] = []

    def held_call() -> None:
        try:
            client.si.CurrentTime()
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - inspected below
            outcome.append(error)

    waiter = threading.Thread(target=held_call, daemon=True)
    waiter.start()
    time.sleep(0.3)
    started = time.monotonic()
    proxy.close()
    assert time.monotonic() - started < 5  # a held response does not block close()
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionError)  # cut, not delivered
    proxy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
