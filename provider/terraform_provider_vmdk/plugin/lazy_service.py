"""The Provider gRPC service, registered before its code is loaded.

Building the tfplugin6 protobuf descriptors and the framework costs more than everything else before
the handshake line, and Terraform waits for that line. So the server registers this generic handler;
the real service (``servicer.ProviderServicer``) is imported and built right after the handshake line,
in the background (``on_serving``), or by the first call that arrives before that finished.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

__all__ = ["LazyProviderService"]

SERVICE_PREFIX = "/tfplugin6.Provider/"


class _Capture:
    """Stands in for a grpc.Server to collect what the generated ``add_*_to_server`` registers."""

    def __init__(self) -> None:
        self.generic: list[Any] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        pass  # the generic handler above serves the same methods


class LazyProviderService(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc is untyped (Any)
    def __init__(self, load_framework: Callable[[], Any]) -> None:
        self._load_framework = load_framework
        self._lock = threading.Lock()
        self._servicer: Any = None
        self._handlers: list[Any] = []

    def _load(self) -> Any:
        with self._lock:
            if self._servicer is None:
                from ._generated import tfplugin6_pb2_grpc
                from .servicer import ProviderServicer

                servicer = ProviderServicer(self._load_framework)
                capture = _Capture()
                tfplugin6_pb2_grpc.add_ProviderServicer_to_server(servicer, capture)
                servicer.fw  # noqa: B018 - build the framework and provider now, not in the first RPC
                self._handlers = capture.generic
                self._servicer = servicer
            return self._servicer

    def service(self, handler_call_details: Any) -> Any:
        if not handler_call_details.method.startswith(SERVICE_PREFIX):
            return None
        self._load()
        for handler in self._handlers:
            found = handler.service(handler_call_details)
            if found is not None:
                return found
        return None

    def rpc_handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        return (self,)

    def on_serving(self) -> None:
        threading.Thread(target=self._load, name="provider-load", daemon=True).start()

    def on_shutdown(self) -> None:
        with self._lock:
            servicer = self._servicer
        if servicer is not None:
            servicer.on_shutdown()
