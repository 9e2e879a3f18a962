"""go-plugin handshake: environment checks and the handshake line."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from terraform_provider_vmdk.plugin import handshake as hs

COOKIE = {"TF_PLUGIN_MAGIC_COOKIE": hs.MAGIC_COOKIE_VALUE}
SCRIPT = (
    "import sys\n"
    "from terraform_provider_vmdk.plugin.server import serve\n"
    "from terraform_provider_vmdk.plugin._generated.tfplugin6_pb2_grpc import ProviderServicer\n"
    "print('stray print before serve')\n"
    "sys.exit(serve(ProviderServicer()))\n"
)


def run_plugin(env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PLUGIN_"))}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", SCRIPT.replace("print('stray print before serve')\n", "")],
                          env=env, capture_output=True, text=True, timeout=30)


def test_cookie_required() -> None:
    with pytest.raises(hs.HandshakeError, match="This binary is a plugin"):
        hs.check_magic_cookie({})
    with pytest.raises(hs.HandshakeError):
        hs.check_magic_cookie({"TF_PLUGIN_MAGIC_COOKIE": "nope"})
    hs.check_magic_cookie(COOKIE)


@pytest.mark.parametrize("offered", [None, "", "6", "5,6", "6,5", " 5 , 6 ", "4,5,6,7"])
def test_protocol_6_negotiated(offered: str | None) -> None:
    env = {} if offered is None else {"PLUGIN_PROTOCOL_VERSIONS": offered}
    assert hs.negotiate_protocol(env) == 6


@pytest.mark.parametrize("offered", ["5", "4,5", "7", "x"])
def test_protocol_6_not_offered(offered: str) -> None:
    with pytest.raises(hs.HandshakeError, match="protocol 6"):
        hs.negotiate_protocol({"PLUGIN_PROTOCOL_VERSIONS": offered})


def test_handshake_line_format() -> None:
    der = bytes(range(1, 35))  # 34 bytes: standard base64 would end in '='
    line = hs.handshake_line("unix", "/tmp/x/plugin.sock", der)
    core, app, network, addr, proto, cert = line.split("|")
    assert (core, app, network, addr, proto) == ("1", "6", "unix", "/tmp/x/plugin.sock", "grpc")
    assert not cert.endswith("=")
    assert base64.b64decode(cert + "=" * (-len(cert) % 4)) == der
    assert hs.handshake_line("tcp", "127.0.0.1:10001") == "1|6|tcp|127.0.0.1:10001|grpc|"


def test_tls_client_cert_env() -> None:
    assert hs.tls_client_cert({}) is None
    assert hs.tls_client_cert({"PLUGIN_CLIENT_CERT": "PEM"}) == "PEM"
    assert hs.tls_client_cert({"PLUGIN_CLIENT_CERT": "PEM", "TF_DISABLE_PLUGIN_TLS": "1"}) is None


def test_unix_endpoint_in_private_dir() -> None:
    ep = hs.plan_endpoint({})
    try:
        assert ep.network == "unix" and ep.address.startswith(ep.socket_dir)
        assert os.stat(ep.socket_dir).st_mode & 0o777 == 0o700
    finally:
        ep.cleanup()
    assert not os.path.exists(ep.socket_dir)


def test_tcp_endpoint_within_port_range() -> None:
    ep = hs.plan_endpoint({hs.TRANSPORT_ENV: "tcp", "PLUGIN_MIN_PORT": "21000", "PLUGIN_MAX_PORT": "21999"})
    try:
        host, port = ep.address.rsplit(":", 1)
        assert ep.network == "tcp" and host == "127.0.0.1" and 21000 <= int(port) <= 21999
    finally:
        ep.cleanup()
    with pytest.raises(hs.HandshakeError):
        hs.plan_endpoint({hs.TRANSPORT_ENV: "carrier-pigeon"})


def test_process_without_cookie_exits_1_with_message() -> None:
    proc = run_plugin({})
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "This binary is a plugin. These are not meant to be executed directly." in proc.stderr
    assert "Run terraform" in proc.stderr


def test_process_without_protocol_6_exits_1() -> None:
    proc = run_plugin({**COOKIE, "PLUGIN_PROTOCOL_VERSIONS": "4,5"})
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "protocol 6" in proc.stderr and "'4,5'" in proc.stderr


def test_stdout_carries_exactly_the_handshake_line() -> None:
    """A print() while serving (after the handshake) must land on stderr, not stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PLUGIN_"))}
    env.update(COOKIE, PLUGIN_PROTOCOL_VERSIONS="6", TF_LOG="TRACE")
    code = SCRIPT.replace("print('stray print before serve')\n",
                          "import threading, os, signal\n"
                          "threading.Timer(1.0, lambda: (print('late print'),"
                          " os.kill(os.getpid(), signal.SIGTERM))).start()\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines(keepends=True)
    assert len(lines) == 1 and lines[0].startswith("1|6|unix|") and lines[0].endswith("|grpc|\n")
    assert "late print" in proc.stderr
