"""The provider's transport, exercised as Terraform does: a real subprocess.

Each test starts ``serve()`` in a child process with a tiny Provider servicer,
reads the handshake line from its stdout and talks to it over the advertised
socket: plain gRPC, or mutual TLS through the front with client certificates
shaped like Terraform's (ECDSA P-521 / SHA-512, self-signed, CN localhost).
"""

from __future__ import annotations

import base64
import datetime
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from terraform_provider_vmdk.plugin._generated import (
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2_grpc,
    tfplugin6_pb2,
    tfplugin6_pb2_grpc,
)
from terraform_provider_vmdk.plugin.handshake import MAGIC_COOKIE_VALUE

SERVER_SCRIPT = textwrap.dedent(
    """
    import sys
    from terraform_provider_vmdk.plugin.server import serve
    from terraform_provider_vmdk.plugin._generated import tfplugin6_pb2 as pb, tfplugin6_pb2_grpc as pbg

    class Servicer(pbg.ProviderServicer):
        def GetMetadata(self, request, context):
            return pb.GetMetadata.Response(resources=[pb.GetMetadata.ResourceMetadata(type_name="vmdk_volume")])

        def GetProviderSchema(self, request, context):
            import time
            time.sleep(60)  # a handler stuck in slow I/O

        def on_shutdown(self):
            sys.stderr.write("ON_SHUTDOWN_CALLED\\n")

    sys.exit(serve(Servicer(), debug="--debug" in sys.argv))
    """
)


# ----------------------------------------------------------------- certificates
@dataclass
class ClientCert:
    cert_pem: bytes
    key_pem: bytes


def make_client_cert(curve: ec.EllipticCurve | None = None, digest: hashes.HashAlgorithm | None = None) -> ClientCert:
    """Like go-plugin's generateCert: self-signed CA, CN localhost, P-521/SHA-512 by default."""
    key = ec.generate_private_key(curve or ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, True, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,
                                              x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, digest or hashes.SHA512())
    )
    return ClientCert(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
    )


# ---------------------------------------------------------------- the process
@dataclass
class Plugin:
    proc: subprocess.Popen
    line: str
    network: str
    address: str
    server_cert_pem: bytes | None

    @property
    def target(self) -> str:
        return f"unix:{self.address}" if self.network == "unix" else self.address

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGIN_", "TF_"))}
    env.update(TF_PLUGIN_MAGIC_COOKIE=MAGIC_COOKIE_VALUE, PLUGIN_PROTOCOL_VERSIONS="5,6",
               PLUGIN_MIN_PORT="10000", PLUGIN_MAX_PORT="25000")
    env.update(extra)
    return env


def start_plugin(env: dict[str, str], *args: str) -> Plugin:
    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().rstrip("\n")
    if not line:
        proc.kill()
        raise AssertionError(f"no handshake line; stderr: {proc.stderr.read().decode()}")
    parts = line.split("|")
    assert len(parts) == 6, line
    cert_pem = None
    if parts[5]:
        der = base64.b64decode(parts[5] + "=" * (-len(parts[5]) % 4))
        cert_pem = ssl.DER_cert_to_PEM_cert(der).encode()
    return Plugin(proc, line, parts[2], parts[3], cert_pem)


@pytest.fixture
def client_cert() -> ClientCert:
    return make_client_cert()


@pytest.fixture
def mtls_plugin(client_cert: ClientCert):
    plugin = start_plugin(base_env(PLUGIN_CLIENT_CERT=client_cert.cert_pem.decode()))
    yield plugin
    plugin.stop()


@pytest.fixture
def plain_plugin():
    plugin = start_plugin(base_env())
    yield plugin
    plugin.stop()


def grpc_mtls_channel(plugin: Plugin, cert: ClientCert | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=plugin.server_cert_pem,
        private_key=cert.key_pem if cert else None,
        certificate_chain=cert.cert_pem if cert else None,
    )
    return grpc.secure_channel(plugin.target, creds, options=[("grpc.ssl_target_name_override", "localhost"),
                                                              ("grpc.default_authority", "localhost")])


def python_tls_handshake(plugin: Plugin, cert: ClientCert | None) -> ssl.SSLSocket:
    """TLS handshake with Python's ssl (OpenSSL), which, like Go, can sign with P-521."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=plugin.server_cert_pem.decode())
    ctx.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory() as tmp:
        if cert is not None:
            path = Path(tmp, "client.pem")
            path.write_bytes(cert.cert_pem + cert.key_pem)
            ctx.load_cert_chain(path)
    sock = socket.socket(socket.AF_UNIX if plugin.network == "unix" else socket.AF_INET)
    sock.settimeout(5)
    sock.connect(plugin.address if plugin.network == "unix" else tuple_addr(plugin.address))
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    # In TLS 1.3 the server's verdict on our certificate arrives after our
    # handshake completes: a read surfaces the alert (or the HTTP/2 SETTINGS).
    tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    data = tls.recv(9)
    assert data, "connection closed"
    return tls


def tuple_addr(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


# ------------------------------------------------------------------------ tests
def test_handshake_line_advertises_unix_socket_and_cert(mtls_plugin: Plugin) -> None:
    assert mtls_plugin.line.startswith("1|6|unix|/")
    assert mtls_plugin.line.endswith(mtls_plugin.line.split("|")[5])
    assert "=" not in mtls_plugin.line.split("|")[5]
    sock_dir = Path(mtls_plugin.address).parent
    assert sock_dir.stat().st_mode & 0o777 == 0o700
    cert = x509.load_pem_x509_certificate(mtls_plugin.server_cert_pem)
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["localhost"]


def test_right_client_cert_gets_health_and_provider_answers(mtls_plugin: Plugin) -> None:
    """grpcio's client can present a P-256 cert; the front must accept any cert Terraform gave."""
    p256 = make_client_cert(ec.SECP256R1(), hashes.SHA256())
    plugin = start_plugin(base_env(PLUGIN_CLIENT_CERT=p256.cert_pem.decode()))
    try:
        with grpc_mtls_channel(plugin, p256) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="plugin"),
                                                               timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            meta = tfplugin6_pb2_grpc.ProviderStub(channel).GetMetadata(tfplugin6_pb2.GetMetadata.Request(),
                                                                         timeout=5)
            assert [r.type_name for r in meta.resources] == ["vmdk_volume"]
            with pytest.raises(grpc.RpcError) as err:
                tfplugin6_pb2_grpc.ProviderStub(channel).ReadResource(tfplugin6_pb2.ReadResource.Request(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        plugin.stop()


def test_p521_client_cert_like_terraforms_is_accepted(mtls_plugin: Plugin, client_cert: ClientCert) -> None:
    """The case grpcio's own TLS fails: a P-521/SHA-512 client certificate."""
    tls = python_tls_handshake(mtls_plugin, client_cert)
    assert tls.selected_alpn_protocol() == "h2"
    tls.close()


def test_p521_client_cert_through_grpcio_if_supported(mtls_plugin: Plugin, client_cert: ClientCert) -> None:
    with grpc_mtls_channel(mtls_plugin, client_cert) as channel:
        resp = tfplugin6_pb2_grpc.ProviderStub(channel).GetMetadata(tfplugin6_pb2.GetMetadata.Request(), timeout=5)
        assert resp.resources[0].type_name == "vmdk_volume"


# A refusal is a TLS alert or the peer closing the connection, at once: never a timeout (a hung TLS front
# would time out, and must not pass as "refused").
REFUSED = (ssl.SSLError, ConnectionResetError, BrokenPipeError, AssertionError)


def refused(plugin: Plugin, cert: ClientCert | None) -> BaseException:
    started = time.monotonic()
    with pytest.raises(REFUSED) as err:
        python_tls_handshake(plugin, cert).close()
    assert not isinstance(err.value, (TimeoutError, socket.timeout)) and time.monotonic() - started < 4
    return err.value


def test_client_without_certificate_is_refused(mtls_plugin: Plugin) -> None:
    refused(mtls_plugin, None)
    with grpc_mtls_channel(mtls_plugin, None) as channel:
        with pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_with_wrong_certificate_is_refused(mtls_plugin: Plugin) -> None:
    refused(mtls_plugin, make_client_cert())
    stranger256 = make_client_cert(ec.SECP256R1(), hashes.SHA256())
    with grpc_mtls_channel(mtls_plugin, stranger256) as channel:
        with pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_cannot_bypass_tls(mtls_plugin: Plugin) -> None:
    with grpc.insecure_channel(mtls_plugin.target) as channel:
        with pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)


def test_tls_disabled_serves_plain_grpc() -> None:
    cert = make_client_cert()
    plugin = start_plugin(base_env(PLUGIN_CLIENT_CERT=cert.cert_pem.decode(), TF_DISABLE_PLUGIN_TLS="1"))
    try:
        assert plugin.line.endswith("|grpc|")
        with grpc.insecure_channel(plugin.target) as channel:
            resp = tfplugin6_pb2_grpc.ProviderStub(channel).GetMetadata(tfplugin6_pb2.GetMetadata.Request(),
                                                                         timeout=5)
            assert resp.resources[0].type_name == "vmdk_volume"
    finally:
        plugin.stop()


def test_tcp_transport_with_mtls(client_cert: ClientCert) -> None:
    p256 = make_client_cert(ec.SECP256R1(), hashes.SHA256())
    plugin = start_plugin(base_env(PLUGIN_CLIENT_CERT=p256.cert_pem.decode(), TF_VMDK_PLUGIN_TRANSPORT="tcp",
                                   PLUGIN_MIN_PORT="20000", PLUGIN_MAX_PORT="25000"))
    try:
        assert plugin.network == "tcp"
        host, port = tuple_addr(plugin.address)
        assert host == "127.0.0.1" and 20000 <= port <= 25000
        with grpc_mtls_channel(plugin, p256) as channel:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="plugin"),
                                                            timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        plugin.stop()


def test_shutdown_exits_within_two_seconds_and_cleans_up(plain_plugin: Plugin) -> None:
    with grpc.insecure_channel(plain_plugin.target) as channel:
        # go-plugin opens these streams first; they must not hold up the exit
        stdio = grpc_stdio_pb2_grpc.GRPCStdioStub(channel).StreamStdio(
            __import__("google.protobuf.empty_pb2", fromlist=["Empty"]).Empty())
        assert list(stdio) == []
        start = time.monotonic()
        grpc_controller_pb2_grpc.GRPCControllerStub(channel).Shutdown(grpc_controller_pb2.Empty(), timeout=2)
    code = plain_plugin.proc.wait(timeout=2)
    elapsed = time.monotonic() - start
    assert code == 0
    assert elapsed < 2.0
    stdout_rest = plain_plugin.proc.stdout.read()
    assert stdout_rest == b"", "nothing but the handshake line may reach stdout"
    assert b"ON_SHUTDOWN_CALLED" in plain_plugin.proc.stderr.read()
    assert not Path(plain_plugin.address).parent.exists()


def test_shutdown_with_open_broker_stream_exits_promptly(mtls_plugin: Plugin) -> None:
    """Like go-plugin: broker stream open for the whole session, then Shutdown."""
    from terraform_provider_vmdk.plugin._generated import grpc_broker_pb2_grpc

    p256 = make_client_cert(ec.SECP256R1(), hashes.SHA256())
    plugin = start_plugin(base_env(PLUGIN_CLIENT_CERT=p256.cert_pem.decode()))
    try:
        with grpc_mtls_channel(plugin, p256) as channel:
            broker = grpc_broker_pb2_grpc.GRPCBrokerStub(channel).StartStream(iter(lambda: time.sleep(30), 1))
            time.sleep(0.2)
            start = time.monotonic()
            grpc_controller_pb2_grpc.GRPCControllerStub(channel).Shutdown(grpc_controller_pb2.Empty(), timeout=2)
            assert plugin.proc.wait(timeout=2) == 0
            assert time.monotonic() - start < 2.0
            broker.cancel()
    finally:
        plugin.stop()


def test_sigint_is_ignored_and_sigterm_stops(plain_plugin: Plugin) -> None:
    os.kill(plain_plugin.proc.pid, signal.SIGINT)
    time.sleep(0.3)
    assert plain_plugin.proc.poll() is None
    with grpc.insecure_channel(plain_plugin.target) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    os.kill(plain_plugin.proc.pid, signal.SIGTERM)
    assert plain_plugin.proc.wait(timeout=2) == 0


def test_debug_mode_prints_reattach_and_stops_on_sigint() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGIN_", "TF_"))}
    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, "--debug"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "TF_REATTACH_PROVIDERS=" in line:
                break
        reattach = next(line for line in lines if "TF_REATTACH_PROVIDERS=" in line)
        value = reattach.strip().split("=", 1)[1].strip("'")
        import json

        parsed = json.loads(value)
        entry = parsed["registry.terraform.io/pyvmdk/vmdk"]
        assert entry["Protocol"] == "grpc" and entry["ProtocolVersion"] == 6
        assert entry["Pid"] == proc.pid and entry["Test"] is True
        assert entry["Addr"]["Network"] == "unix"
        assert value == json.dumps(parsed, separators=(",", ":"))
        with grpc.insecure_channel(f"unix:{entry['Addr']['String']}") as channel:
            tfplugin6_pb2_grpc.ProviderStub(channel).GetMetadata(tfplugin6_pb2.GetMetadata.Request(), timeout=5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=3) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_shutdown_exits_promptly_even_with_a_stuck_handler(plain_plugin: Plugin) -> None:
    with grpc.insecure_channel(plain_plugin.target) as channel:
        stuck = tfplugin6_pb2_grpc.ProviderStub(channel).GetProviderSchema.future(
            tfplugin6_pb2.GetProviderSchema.Request())
        time.sleep(0.2)
        start = time.monotonic()
        grpc_controller_pb2_grpc.GRPCControllerStub(channel).Shutdown(grpc_controller_pb2.Empty(), timeout=2)
        assert plain_plugin.proc.wait(timeout=2) == 0
        assert time.monotonic() - start < 1.8
        stuck.cancel()
