"""serve(): run a tfplugin6 Provider servicer the way go-plugin expects.

Sequence: check the handshake environment (cheap, before importing gRPC),
create a private 0700 socket directory, start gRPC (Provider, health, and the
go-plugin controller/stdio/broker services), put the mutual-TLS front in front
of it when Terraform sent a client certificate, print the single handshake line,
and serve until GRPCController.Shutdown or SIGTERM.

stdout belongs to the handshake: after the line is printed, file descriptor 1
is pointed at stderr, so nothing (Python, C extensions, child processes) can
write to it again. SIGINT is ignored like Go plugins do: Ctrl-C in a terminal
reaches the whole process group, and Terraform cancels through StopProvider.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from . import handshake
from .handshake import Endpoint, HandshakeError

if TYPE_CHECKING:  # pragma: no cover
    from .tls_front import TLSFront

log = logging.getLogger(__name__)

MAX_WORKERS = 32
STOP_GRACE = 0.5  # seconds for in-flight RPCs (incl. Shutdown's own reply) to finish
EXIT_WATCHDOG = 0.8  # hard exit if interpreter shutdown hangs on a stuck handler (Terraform kills at 2 s)
HEALTH_SERVICE = "plugin"


class _StopSignal:
    """One-shot stop request shared by Shutdown, SIGTERM and (debug) SIGINT."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def __call__(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


def serve(
    provider_servicer: Any,
    *,
    debug: bool = False,
    env: Mapping[str, str] | None = None,
    hard_exit_after: float | None = EXIT_WATCHDOG,
) -> int:
    """Serve ``provider_servicer`` (a ``tfplugin6_pb2_grpc.ProviderServicer``, or an object with
    ``rpc_handlers()`` returning generic handlers, e.g. ``LazyProviderService``) until told to stop.

    Returns the process exit code: 0 after a clean stop, 1 when the handshake
    environment is wrong (a message has been written to stderr). If the servicer
    has an ``on_shutdown()`` method it is called once, before gRPC stops, so
    in-flight work can be cancelled. ``debug=True`` skips the magic cookie,
    serves without TLS and prints a TF_REATTACH_PROVIDERS value instead of the
    handshake line; it then serves until Ctrl-C/SIGTERM.

    ``env`` defaults to ``os.environ``. After a non-debug stop, a daemon timer
    calls ``os._exit`` ``hard_exit_after`` seconds later in case interpreter
    shutdown hangs on a stuck handler; pass None when calling serve() in-process
    (tests) rather than as the program's last act.
    """
    env = os.environ if env is None else env
    if not debug:
        try:
            handshake.check_magic_cookie(env)
            handshake.negotiate_protocol(env)
        except HandshakeError as exc:
            return handshake.fail(str(exc))

    from .logging_setup import configure_logging

    configure_logging(env)
    client_cert = None if debug else handshake.tls_client_cert(env)
    try:
        endpoint = handshake.plan_endpoint({} if debug else env)
    except (HandshakeError, OSError) as exc:
        return handshake.fail(f"terraform-provider-vmdk: cannot listen: {exc}")

    real_stdout = sys.stdout
    if not debug:
        sys.stdout = sys.stderr  # stray prints must never corrupt the handshake line
    stop = _StopSignal()
    previous = _install_signal_handlers(stop, debug)
    try:
        code = _serve(provider_servicer, endpoint, client_cert, stop, debug, real_stdout)
    except OSError as exc:
        code = handshake.fail(f"terraform-provider-vmdk: cannot serve: {exc}")
    finally:
        endpoint.cleanup()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if sys.stdout is sys.stderr:
            sys.stdout = real_stdout  # fd 1 itself stays pointed at stderr
    if not debug and hard_exit_after is not None:
        _arm_exit_watchdog(code, hard_exit_after)
    return code


def _install_signal_handlers(stop: _StopSignal, debug: bool) -> dict[int, Any]:
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous  # signals can only be handled on the main thread
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, lambda *_: stop("SIGTERM"))
    if debug:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda *_: stop("SIGINT"))
    else:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    return previous


def _serve(servicer: Any, endpoint: Endpoint, client_cert: str | None, stop: _StopSignal, debug: bool,
           real_stdout: Any) -> int:
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from . import go_plugin_services as gps
    from ._generated import grpc_broker_pb2_grpc, grpc_controller_pb2_grpc, grpc_stdio_pb2_grpc

    executor = futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="grpc")
    server = grpc.server(
        executor,
        options=[
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),  # schemas/state can be large
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    rpc_handlers = getattr(servicer, "rpc_handlers", None)
    if callable(rpc_handlers):  # a lazily loaded service (see lazy_service.py)
        server.add_generic_rpc_handlers(rpc_handlers())
    else:
        from ._generated import tfplugin6_pb2_grpc

        tfplugin6_pb2_grpc.add_ProviderServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_servicer.set(HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    controller_stop = (
        (lambda reason: log.info("ignoring %s in debug mode; stop with Ctrl-C", reason)) if debug else stop)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(gps.ControllerServicer(controller_stop), server)
    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(gps.StdioServicer(), server)
    grpc_broker_pb2_grpc.add_GRPCBrokerServicer_to_server(gps.BrokerServicer(stop.event), server)

    front = None
    cert_der: bytes | None = None
    if client_cert is not None:
        front, cert_der = _start_tls_front(server, endpoint, client_cert)
    else:
        _bind_plain(server, endpoint)
    server.start()
    if front is not None:
        front.start()

    if debug:
        _print_reattach(endpoint)
    else:
        _emit_stdout_line(real_stdout, handshake.handshake_line(endpoint.network, endpoint.address, cert_der))
    log.debug("serving", extra={"network": endpoint.network, "address": endpoint.address, "tls": front is not None})
    serving_hook = getattr(servicer, "on_serving", None)
    if callable(serving_hook):  # e.g. load the provider while Terraform connects
        serving_hook()

    while not stop.event.wait(1.0):
        pass
    log.debug("stopping", extra={"reason": stop.reason})

    hook = getattr(servicer, "on_shutdown", None)
    if callable(hook):
        try:
            hook()
        except Exception:
            log.exception("provider on_shutdown hook failed")
    health_servicer.enter_graceful_shutdown()
    done = server.stop(STOP_GRACE)
    done.wait(STOP_GRACE + 0.5)
    if front is not None:  # only now: replies already queued (Shutdown's own) must get through
        front.stop()
    executor.shutdown(wait=False, cancel_futures=True)
    return 0


def _bind_plain(server: Any, endpoint: Endpoint) -> None:
    if endpoint.network == "unix":
        target = f"unix:{endpoint.address}"
    else:  # give the pre-bound port to gRPC (it sets SO_REUSEADDR)
        if endpoint.sock is not None:
            endpoint.sock.close()
            endpoint.sock = None
        target = endpoint.address
    if server.add_insecure_port(target) == 0:
        raise OSError(f"gRPC could not listen on {target}")


def _start_tls_front(server: Any, endpoint: Endpoint, client_cert: str) -> tuple[TLSFront, bytes]:
    from .certs import generate_server_cert
    from .tls_front import TLSFront, make_server_context

    backend = endpoint.private_path("grpc.sock")
    if server.add_insecure_port(f"unix:{backend}") == 0:
        raise OSError(f"gRPC could not listen on {backend}")
    cert = generate_server_cert()
    context = make_server_context(cert.cert_pem, cert.key_pem, client_cert, endpoint.socket_dir)
    if endpoint.network == "unix":
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(endpoint.address)
        listener.listen(64)
    else:
        assert endpoint.sock is not None
        listener, endpoint.sock = endpoint.sock, None
    return TLSFront(listener, backend, context), cert.cert_der


def _emit_stdout_line(out: Any, line: str) -> None:
    """Write the handshake line, then point fd 1 at stderr for good."""
    out.write(line + "\n")
    out.flush()
    try:
        os.dup2(2, 1)
    except OSError:
        pass


def _print_reattach(endpoint: Endpoint) -> None:
    import json

    from .. import PROVIDER_ADDRESS

    value = json.dumps(
        {
            PROVIDER_ADDRESS: {
                "Protocol": "grpc",
                "ProtocolVersion": handshake.APP_PROTOCOL_VERSION,
                "Pid": os.getpid(),
                "Test": True,
                "Addr": {"Network": endpoint.network, "String": endpoint.address},
            }
        },
        separators=(",", ":"),
    )
    sys.stdout.write(
        "Provider started in debug mode. To attach Terraform, set this in the shell\n"
        "where you run terraform (no `terraform init` needed for this provider):\n\n"
        f"\tTF_REATTACH_PROVIDERS='{value}'\n\n"
        "Press Ctrl-C to stop the provider.\n"
    )
    sys.stdout.flush()


def exit_now(code: int) -> NoReturn:
    """End a served process without the interpreter's teardown.

    Terraform waits for every provider process to end before it goes on (3 to 5 launches per command), and
    the teardown (grpc, pyVmomi and our modules freed object by object) took 30 to 100 ms of each wait.
    What a normal exit does that matters happens here too: threads that are not daemons are joined (after
    serve, only gRPC's workers finishing their last reply; the exit watchdog still bounds a stuck one),
    atexit handlers run, log handlers and the standard streams are flushed. Then ``os._exit``."""
    try:
        main = threading.main_thread()
        for thread in threading.enumerate():
            if thread is not main and not thread.daemon:
                thread.join()
        import atexit

        atexit._run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    finally:
        os._exit(code)


def _arm_exit_watchdog(code: int, delay: float) -> None:
    """Exit hard if interpreter shutdown stalls (e.g. a handler stuck in vSphere I/O).

    Interpreter exit joins every ThreadPoolExecutor worker; one stuck handler
    would keep us alive until Terraform kills us after 2 s and reports an
    ungraceful exit. The watchdog is a daemon thread, so a normal exit beats it.
    """

    def _exit() -> None:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)

    timer = threading.Timer(delay, _exit)
    timer.daemon = True
    timer.start()
