"""The go-plugin side services every plugin must answer: controller, stdio, broker."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterator

from ._generated import (
    grpc_broker_pb2_grpc,
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2_grpc,
)

log = logging.getLogger(__name__)


class ControllerServicer(grpc_controller_pb2_grpc.GRPCControllerServicer):
    """Shutdown: answer first, then let the serve loop stop the server.

    ``request_stop`` only sets an event; the main thread does the actual stop,
    so this handler returns (and its response is sent) before gRPC shuts down.
    """

    def __init__(self, request_stop: Callable[[str], None]) -> None:
        self._request_stop = request_stop

    def Shutdown(self, request, context):  # noqa: N802 (gRPC method name)
        self._request_stop("GRPCController.Shutdown")
        return grpc_controller_pb2.Empty()


class StdioServicer(grpc_stdio_pb2_grpc.GRPCStdioServicer):
    """StreamStdio ends the stream at once.

    We never write to stdout after the handshake and our stderr already goes
    straight to Terraform, so there is nothing to mirror. go-plugin's client
    treats the end of this stream as EOF and logs it at debug level; ending it
    means no worker thread is parked on it for the life of the process.
    """

    def StreamStdio(self, request, context) -> Iterator:  # noqa: N802
        return iter(())


class BrokerServicer(grpc_broker_pb2_grpc.GRPCBrokerServicer):
    """StartStream: accept the host's broker stream, never offer connections.

    Terraform providers do not use the broker, but go-plugin opens the stream;
    we drain it until the host closes it (or the server stops) and send nothing.
    """

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping

    def StartStream(self, request_iterator, context) -> Iterator:  # noqa: N802
        try:
            for _ in request_iterator:
                if self._stopping.is_set():
                    break
        except Exception as exc:  # stream cancelled on shutdown
            log.debug("broker stream ended", extra={"reason": repr(exc)})
        return
        yield  # pragma: no cover  (makes this a generator)
