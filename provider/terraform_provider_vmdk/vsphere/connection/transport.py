"""The SOAP transport and what a failed request tells us about vSphere's state.

Every failure of a call falls in one of three classes, and the class decides what may be done next:

* ``NOT_SENT``: vSphere provably never acted — the connection was refused or failed before the whole
  request was written, or the server answered ``503 Service Unavailable`` (it turned the request away).
  Any call may be sent again.
* ``UNKNOWN``: the request was written but no answer came back (reset, EOF, timeout, a 502/504 from a
  proxy, a truncated answer). vSphere may or may not have acted. Reads are sent again; writes are not —
  the caller looks the object up by the identity it fixed before the call (``reconcile``).
* ``FATAL``: anything else (a vSphere fault, a TLS verification failure): raised as is.

To tell NOT_SENT from UNKNOWN the stub's connections record, per thread, whether the request was fully
written; pyVmomi's own adapter does not say.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any
from xml.parsers.expat import ExpatError

from pyVmomi import vim, vmodl
from pyVmomi.SoapAdapter import SoapStubAdapter

__all__ = ["NOT_SENT", "UNKNOWN", "FATAL", "Stub", "classify", "request_sent", "TRANSIENT_FAULTS"]

NOT_SENT = "not-sent"
UNKNOWN = "unknown"
FATAL = "fatal"


def _classes(holder: Any, *names: str) -> tuple[type, ...]:
    return tuple(t for t in (getattr(holder, n, None) for n in names) if t is not None)


# Faults vSphere raises before acting, which go away by themselves.
TRANSIENT_FAULTS = _classes(vmodl.fault, "HostCommunication", "HostNotConnected", "HostNotReachable") + _classes(
    vim.fault, "HostCommunication", "TaskInProgress")

_CONNECTION_ERRORS = (ConnectionError, TimeoutError, socket.timeout, ssl.SSLEOFError, ssl.SSLZeroReturnError,
                      http.client.IncompleteRead, http.client.BadStatusLine, http.client.CannotSendRequest,
                      http.client.ResponseNotReady, EOFError, ExpatError)

_state = threading.local()


def request_sent() -> bool:
    """Whether the current thread's last SOAP request was completely written to the server."""
    return bool(getattr(_state, "sent", False))


def _mark(sent: bool) -> None:
    _state.sent = sent


def classify(error: BaseException, sent: bool) -> str:
    """NOT_SENT, UNKNOWN or FATAL for an error raised by a call whose request was (not) ``sent``."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return FATAL
    if isinstance(error, TRANSIENT_FAULTS):
        return NOT_SENT
    if isinstance(error, http.client.HTTPException) and not isinstance(error, _CONNECTION_ERRORS):
        status = str(error)[:3]  # pyVmomi: HTTPException("503 Service Unavailable") for a non-SOAP answer
        if status == "503":
            return NOT_SENT  # the server (or its front proxy) turned the request away
        if status.startswith("4"):
            return FATAL
        return UNKNOWN if sent else NOT_SENT
    if isinstance(error, (*_CONNECTION_ERRORS, OSError)):
        return UNKNOWN if sent else NOT_SENT
    return FATAL


class _TrackedHTTPSConnection(http.client.HTTPSConnection):
    """Records when a request has been written in full (see ``request_sent``)."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        _mark(False)
        super().request(*args, **kwargs)
        _mark(True)


class Stub(SoapStubAdapter):
    """SoapStubAdapter that counts requests and records whether each was sent (``request_sent``)."""

    def __init__(self, *args: Any, on_request: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # pyVmomi's adapter is unannotated
        self._on_request = on_request
        scheme: type[http.client.HTTPConnection] = self.scheme
        if scheme is http.client.HTTPSConnection:
            # pyVmomi's untyped __init__ first assigns _UnixSocketConnection, so mypy pins the attribute
            # to that class; it holds any HTTPConnection class.
            self.scheme = _TrackedHTTPSConnection  # type: ignore[assignment]

    def InvokeMethod(self, mo: Any, info: Any, args: Any, outerStub: Any = None) -> Any:  # noqa: N802
        _mark(False)
        self._on_request()
        return super().InvokeMethod(mo, info, args, outerStub)  # type: ignore[no-untyped-call]  # as above

    def forget_session(self) -> None:
        """Drop the session cookie and pooled connections, so the next Login opens a new session
        (vCenter and vcsim refuse Login on a session that is still logged in)."""
        self.cookie = ""
        self.DropConnections()
