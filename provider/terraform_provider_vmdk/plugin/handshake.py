"""go-plugin handshake: environment checks, protocol negotiation, listener setup.

Terraform starts the provider with the go-plugin environment and reads exactly
one line from our stdout to learn where to connect. Everything here is plain
stdlib so that failing fast (wrong cookie, no protocol 6) costs no gRPC import.

Transport switch: unix sockets by default (what Go plugins use on Linux). Set
``TF_VMDK_PLUGIN_TRANSPORT=tcp`` to listen on 127.0.0.1 within
``PLUGIN_MIN_PORT``..``PLUGIN_MAX_PORT`` instead (a project-specific name, so
we never collide with go-plugin's own ``PLUGIN_*`` variables). go-plugin's
``PLUGIN_UNIX_SOCKET_DIR`` is honoured as the parent of our socket directory.
"""

from __future__ import annotations

import base64
import os
import socket
import sys
from collections.abc import Mapping

MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
CORE_PROTOCOL_VERSION = 1  # go-plugin's own handshake version
APP_PROTOCOL_VERSION = 6  # tfplugin6; the only one we serve
TRANSPORT_ENV = "TF_VMDK_PLUGIN_TRANSPORT"

NOT_A_COMMAND_MESSAGE = (
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Run terraform (with this provider configured in a .tf file) instead; it starts\n"
    "the provider itself. To debug the provider, run it with --debug and use the\n"
    "TF_REATTACH_PROVIDERS value it prints."
)


class HandshakeError(Exception):
    """The environment does not allow us to serve; the message is for humans."""


def check_magic_cookie(env: Mapping[str, str]) -> None:
    """Refuse to run unless started by Terraform (go-plugin's magic cookie)."""
    if env.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        raise HandshakeError(NOT_A_COMMAND_MESSAGE)


def negotiate_protocol(env: Mapping[str, str]) -> int:
    """Pick the app protocol from ``PLUGIN_PROTOCOL_VERSIONS``; we serve 6 only.

    An absent variable means an old go-plugin host that does not negotiate; such
    hosts expect the plugin's single version, so we assume 6.
    """
    raw = env.get("PLUGIN_PROTOCOL_VERSIONS")
    if raw is None or not raw.strip():
        return APP_PROTOCOL_VERSION
    offered: set[int] = set()
    for part in raw.split(","):
        part = part.strip()
        if part.isdigit():
            offered.add(int(part))
    if APP_PROTOCOL_VERSION not in offered:
        raise HandshakeError(
            f"This provider speaks Terraform plugin protocol {APP_PROTOCOL_VERSION} only, but this "
            f"Terraform offered protocol version(s) {raw!r}. Use Terraform v1.0 or later."
        )
    return APP_PROTOCOL_VERSION


def handshake_line(network: str, address: str, server_cert_der: bytes | None = None) -> str:
    """The single stdout line go-plugin parses: core|app|network|addr|grpc|cert.

    The certificate is standard base64 of the DER bytes with '=' padding removed
    (go-plugin decodes with RawStdEncoding); empty when we serve without TLS.
    """
    cert = base64.b64encode(server_cert_der).decode("ascii").rstrip("=") if server_cert_der else ""
    return f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|{network}|{address}|grpc|{cert}"


def tls_client_cert(env: Mapping[str, str]) -> str | None:
    """Terraform's client certificate (PEM) when mutual TLS is expected, else None."""
    if env.get("TF_DISABLE_PLUGIN_TLS"):
        return None
    pem = env.get("PLUGIN_CLIENT_CERT")
    return pem if pem and pem.strip() else None


class Endpoint:
    """Where we listen. ``address`` is what goes into the handshake line.

    (A plain class rather than a dataclass: importing dataclasses costs ~5 ms
    of start-up, which Terraform pays several times per command.)
    """

    def __init__(self, network: str, address: str, socket_dir: str, sock: socket.socket | None = None) -> None:
        self.network = network  # "unix" or "tcp"
        self.address = address  # socket path, or "127.0.0.1:port"
        self.socket_dir = socket_dir  # private 0700 directory; also holds the backend socket
        self.sock = sock  # pre-bound TCP socket, if any

    def private_path(self, name: str) -> str:
        """A path for a socket only we (and our user) can reach."""
        return os.path.join(self.socket_dir, name)

    def cleanup(self) -> None:
        """Remove the socket directory; safe to call twice."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        remove_socket_dir(self.socket_dir)


def make_socket_dir(env: Mapping[str, str]) -> str:
    """A fresh directory with mode 0700 so no other user can reach our sockets.

    Same guarantees as tempfile.mkdtemp (random name, mode 0700, fails rather
    than reuse an existing path) without importing tempfile/shutil/random at
    every start.
    """
    parent = env.get("PLUGIN_UNIX_SOCKET_DIR") or os.environ.get("TMPDIR") or "/tmp"
    for _ in range(100):
        path = os.path.join(parent, "tfvmdk-" + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise OSError(f"could not create a private socket directory in {parent}")


def remove_socket_dir(path: str) -> None:
    """Remove the socket directory and the sockets in it; never raises."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass
        os.rmdir(path)
    except OSError:
        pass


def wants_tcp(env: Mapping[str, str]) -> bool:
    value = env.get(TRANSPORT_ENV, "unix").strip().lower()
    if value not in ("", "unix", "tcp"):
        raise HandshakeError(f"{TRANSPORT_ENV} must be 'unix' or 'tcp', not {value!r}")
    return value == "tcp"


def bind_tcp(env: Mapping[str, str]) -> socket.socket:
    """Bind 127.0.0.1 on the first free port in PLUGIN_MIN_PORT..PLUGIN_MAX_PORT."""
    try:
        low = int(env.get("PLUGIN_MIN_PORT") or 0)
        high = int(env.get("PLUGIN_MAX_PORT") or 0)
    except ValueError as exc:
        raise HandshakeError(f"PLUGIN_MIN_PORT/PLUGIN_MAX_PORT must be integers: {exc}") from None
    candidates = range(low, high + 1) if 0 < low <= high else [0]  # 0: let the kernel choose
    for port in candidates:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(64)
        return sock
    raise HandshakeError(f"no free TCP port on 127.0.0.1 in {low}..{high}")


def plan_endpoint(env: Mapping[str, str]) -> Endpoint:
    """Create the private socket directory and decide the advertised address.

    For unix the socket file is created later by whoever listens on it (gRPC or
    the TLS front); for tcp we bind here so the port is ours before we advertise it.
    """
    tcp = wants_tcp(env)
    socket_dir = make_socket_dir(env)
    if not tcp:
        return Endpoint("unix", os.path.join(socket_dir, "plugin.sock"), socket_dir)
    try:
        sock = bind_tcp(env)
    except BaseException:
        remove_socket_dir(socket_dir)
        raise
    host, port = sock.getsockname()[:2]
    return Endpoint("tcp", f"{host}:{port}", socket_dir, sock)


def fail(message: str) -> int:
    """Report a handshake failure on stderr (Terraform shows it) and give exit code 1."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
    return 1
