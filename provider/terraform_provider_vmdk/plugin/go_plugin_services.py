"""The go-plugin side services every plugin must answer: controller, stdio, broker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._generated import (
    grpc_broker_pb2_grpc,
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2_grpc,
)

if TYPE_CHECKING:  # pragma: no cover
    import grpc
    from google.protobuf import empty_pb2

    from ._generated import grpc_broker_pb2, grpc_stdio_pb2

log = logging.getLogger(__name__)


class ControllerServicer(grpc_controller_pb2_grpc.GRPCControllerServicer):
    """Shutdown: answer first, then let the serve loop stop the server.

    ``request_stop`` only sets an event; the main thread does the actual stop,
    so this handler returns (and its response is sent) before gRPC shuts down.
    """

    def __init__(self, request_stop: Callable[[str], None]) -> None:
        self._request_stop = request_stop

    def Shutdown(  # noqa: N802 (gRPC method name)
        self, request: grpc_controller_pb2.Empty, context: grpc.ServicerContext
    ) -> grpc_controller_pb2.Empty:
        self._request_stop("GRPCController.Shutdown")
        return grpc_controller_pb2.Empty()


class StdioServicer(grpc_stdio_pb2_grpc.GRPCStdioServicer):
    """StreamStdio ends the stream at once.

    We never write to stdout after the handshake and our stderr already goes
    straight to Terraform, so there is nothing to mirror. go-plugin's client
    treats the end of this stream as EOF and logs it at debug level; ending it
    means no worker thread is parked on it for the life of the process.
    """

    def StreamStdio(  # noqa: N802
        self, request: empty_pb2.Empty, context: grpc.ServicerContext
    ) -> Iterator[grpc_stdio_pb2.StdioData]:
        return iter(())


class BrokerServicer(grpc_broker_pb2_grpc.GRPCBrokerServicer):
    """StartStream: accept the host's broker stream, never offer connections.

    Terraform providers do not use the broker, but go-plugin opens the stream;
    we drain it until the host closes it (or the server stops) and send nothing.
    """

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping

    def StartStream(  # noqa: N802
        self, request_iterator: Iterator[grpc_broker_pb2.ConnInfo], context: grpc.ServicerContext
    ) -> Iterator[grpc_broker_pb2.ConnInfo]:
        try:
            for _ in request_iterator:
                if self._stopping.is_set():
                    break
        except Exception as exc:  # noqa: BLE001 - stream cancelled on shutdown
            log.debug("broker stream ended", extra={"reason": repr(exc)})
        return
        yield  # pragma: no cover  (makes this a generator)
