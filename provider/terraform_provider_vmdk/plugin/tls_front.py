"""Mutual-TLS front: terminates TLS with Python's ``ssl`` and pipes bytes to gRPC.

Why not gRPC's own TLS: grpcio (BoringSSL) leaves ecdsa_secp521r1_sha512 out of
its CertificateRequest, so Terraform's P-521 client certificate is never sent
and ``require_client_auth`` fails every connection. OpenSSL (Python's ``ssl``)
offers it. So the gRPC server listens in plaintext on a socket inside our 0700
directory, and this front owns the advertised address: it completes the TLS
handshake (client certificate required and verified against the PEM Terraform
gave us, ALPN h2) and then pumps bytes both ways. A client without the right
certificate fails the handshake and never reaches gRPC.

Pump design: each connection gets two threads, one per direction, doing
blocking socket I/O with large buffers. TLS runs over memory BIOs
(``SSLContext.wrap_bio``), so encryption and decryption are short, lock-guarded
memory operations; a thread never holds a lock while waiting to *receive*, and
both directions share one OpenSSL object safely. Terraform opens one
connection per provider process, so two threads per connection is cheap.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

RECV_SIZE = 256 * 1024
HANDSHAKE_TIMEOUT = 10.0


def make_server_context(cert_pem: bytes, key_pem: bytes, client_ca_pem: str, scratch_dir: str) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client cert signed by ``client_ca_pem``.

    ``load_cert_chain`` only reads files, so the key is written to the private
    ``scratch_dir`` (mode 0700) and removed as soon as it is loaded.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=client_ca_pem)
    ctx.set_alpn_protocols(["h2"])
    ctx.num_tickets = 0  # Go's client never resumes; don't spend time on tickets
    path = os.path.join(scratch_dir, "server-chain.pem")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert_pem + b"\n" + key_pem)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
    return ctx


class _Connection:
    """One accepted TLS connection piped to one backend connection."""

    def __init__(self, raw: socket.socket, backend: socket.socket, tls: ssl.SSLObject,
                 incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, on_done: Callable[[_Connection], None]) -> None:
        self.raw, self.backend, self.tls = raw, backend, tls
        self.incoming, self.outgoing = incoming, outgoing
        self.ssl_lock = threading.Lock()  # guards the SSLObject and both BIOs
        self.send_lock = threading.Lock()  # keeps TLS records in order on the wire; taken before ssl_lock
        self._live = 2
        self._state_lock = threading.Lock()
        self._on_done = on_done

    def run(self) -> None:
        threading.Thread(target=self._guard, args=(self._downstream,), daemon=True,
                         name="tls-front-down").start()
        self._guard(self._upstream)

    def _guard(self, direction: Callable[[], None]) -> None:
        try:
            direction()
        except (BrokenPipeError, ConnectionResetError):
            self.abort()  # the peer hung up first: the normal end at shutdown
        except (OSError, ssl.SSLError) as exc:
            log.debug("tls front: connection ended: %s", exc)
            self.abort()
        finally:
            with self._state_lock:
                self._live -= 1
                last = self._live == 0
            if last:
                self._close()

    def _flush_tls_output(self) -> None:
        with self.send_lock:
            with self.ssl_lock:
                out = self.outgoing.read()
            if out:
                self.raw.sendall(out)

    def _upstream(self) -> None:
        """Terraform -> gRPC: decrypt and forward."""
        raw, backend, tls, incoming = self.raw, self.backend, self.tls, self.incoming
        data = b""  # the handshake may already have buffered application data
        while True:
            chunks = []
            eof = False
            with self.ssl_lock:
                if data:
                    incoming.write(data)
                try:
                    while True:
                        chunk = tls.read(RECV_SIZE)
                        if not chunk:
                            eof = True
                            break
                        chunks.append(chunk)
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:  # close_notify from the client
                    eof = True
                pending_out = self.outgoing.pending
            if pending_out:  # e.g. TLS 1.3 key update replies
                self._flush_tls_output()
            if chunks:
                backend.sendall(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            if eof:
                break
            data = raw.recv(RECV_SIZE)
            if not data:
                break
        try:
            backend.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _downstream(self) -> None:
        """gRPC -> Terraform: encrypt and forward."""
        raw, backend, tls, outgoing = self.raw, self.backend, self.tls, self.outgoing
        while True:
            data = backend.recv(RECV_SIZE)
            if not data:
                break
            with self.send_lock:
                with self.ssl_lock:
                    view = memoryview(data)
                    while view:
                        view = view[tls.write(view):]
                    out = outgoing.read()
                raw.sendall(out)
        with self.send_lock:
            with self.ssl_lock:
                try:
                    tls.unwrap()  # queue close_notify
                except (ssl.SSLError, ValueError):
                    pass
                out = outgoing.read()
            try:
                if out:
                    raw.sendall(out)
                raw.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def abort(self) -> None:
        """Wake both directions: whichever side failed, the connection is over."""
        for sock in (self.raw, self.backend):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close(self) -> None:
        self.raw.close()
        self.backend.close()
        self._on_done(self)


class TLSFront:
    """Accepts TLS connections on ``listener`` and pipes each to ``backend_path``."""

    def __init__(self, listener: socket.socket, backend_path: str, context: ssl.SSLContext) -> None:
        self._listener = listener
        self._backend_path = backend_path
        self._ctx = context
        self._tcp = listener.family in (socket.AF_INET, socket.AF_INET6)
        self._conns: set[_Connection] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="tls-front-accept")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and cut open connections (gRPC has stopped by then)."""
        self._stopped.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.abort()
        self._thread.join(timeout=1.0)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                if self._stopped.is_set():
                    return
                continue
            threading.Thread(target=self._handle, args=(raw,), daemon=True, name="tls-front-conn").start()

    def _handle(self, raw: socket.socket) -> None:
        if self._tcp:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self._ctx.wrap_bio(incoming, outgoing, server_side=True)
        try:
            raw.settimeout(HANDSHAKE_TIMEOUT)
            self._handshake(raw, tls, incoming, outgoing)
            raw.settimeout(None)
            backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                backend.connect(self._backend_path)
            except OSError:
                backend.close()
                raise
        except (OSError, ssl.SSLError) as exc:
            log.warning("tls front: refused connection: %s", exc)
            try:
                raw.sendall(outgoing.read())  # the TLS alert, if any
            except OSError:
                pass
            raw.close()
            return
        conn = _Connection(raw, backend, tls, incoming, outgoing, self._forget)
        with self._lock:
            if self._stopped.is_set():
                conn.abort()
            self._conns.add(conn)
        conn.run()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    @staticmethod
    def _handshake(raw: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO,
                   outgoing: ssl.MemoryBIO) -> None:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = outgoing.read()
                if out:
                    raw.sendall(out)
                data = raw.recv(RECV_SIZE)
                if not data:
                    raise ConnectionError("client closed the connection during the TLS handshake") from None
                incoming.write(data)
        out = outgoing.read()
        if out:
            raw.sendall(out)
