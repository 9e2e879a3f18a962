"""A fault-injecting TLS reverse proxy in front of vcsim (or any vSphere endpoint), for tests.

Why: the provider must survive what production networks and vCenters do to it — a connection reset
before the request arrives, a load balancer answering 503, a session that expires mid-run, a response
lost after vSphere already acted, a call that hangs.  vcsim does none of that, and faking it inside the
client (patching pyVmomi) would test our fakes, not our recovery.  The proxy breaks the *wire*: the
client sees a real RST, a real 503, a real NotAuthenticated answered by vcsim itself, and the server side
really did (or did not) act.  It only needs its address handed to the client, so it works the same for
Terraform's provider processes as for a pyVmomi stub in the test process.

    from tests.faultproxy import FaultProxy
    with FaultProxy(sim) as proxy:                        # TLS on 127.0.0.1:<ephemeral>, vcsim's certificate
        proxy.inject("lost_response", "CreateVM_Task")     # vSphere acts, the client never hears
        proxy.inject("reset", "write", skip=2, times=3)    # writes 3..5 never reach vSphere
        proxy.inject("delay", "RetrievePropertiesEx", seconds=5)
        proxy.randomize(42, read_rate=0.05, write_rate=0.2)
        ... run the client against proxy.server ...
        proxy.injected, proxy.counts, proxy.requests

Requests are identified by their SOAP method (``CreateVM_Task``) or, for everything else, by HTTP verb
and first path segment (``GET /folder``, ``PUT /nfc``), and classified read or write by the explicit sets
below (``classify``).  Session set-up (``PROTECTED_METHODS``: Login, Logout, RetrieveServiceContent, ...)
is never faulted unless a rule names the method exactly.

The proxy speaks HTTP/1.1 itself (no http.server): it needs to decide *when* bytes go out, and to drop a
connection with an RST rather than a FIN, which a framework hides.  Each client connection gets its own
thread and its own keep-alive connection upstream, so concurrency on the client side is mirrored 1:1.
Bodies are relayed with their original framing (Content-Length or chunked), streamed, except SOAP request
bodies, which are read whole to find the method name.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import select
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

LOG = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------- fault kinds

RESET: Final = "reset"  # TCP RST to the client before forwarding: vSphere never sees the request
HTTP503: Final = "http503"  # "503 Service Unavailable" without forwarding (a load balancer / a busy vpxd)
SESSION_END: Final = "session_end"  # end the caller's session for real (TerminateSession), then forward
LOST_RESPONSE: Final = "lost_response"  # forward, read the whole answer, then RST the client
DELAY: Final = "delay"  # forward, then hold the answer for ``seconds``
REFUSE: Final = "refuse"  # answer a SOAP fault (vim.fault.InvalidDeviceSpec) without forwarding: a definite "no"
KINDS: Final = (RESET, HTTP503, SESSION_END, LOST_RESPONSE, DELAY, REFUSE)
RANDOM_KINDS: Final = (RESET, HTTP503, SESSION_END, LOST_RESPONSE)

Kind = Literal["reset", "http503", "session_end", "lost_response", "delay", "refuse"]
Category = Literal["read", "write"]

# ------------------------------------------------------------------------------------ classification
# Edit these (or pass your own sets to FaultProxy) when the provider starts calling something new.

READ_ONLY_TASKS: Final[frozenset[str]] = frozenset({
    # *_Task methods that only look: a fault on them must not count as "vSphere changed".
    "SearchDatastore_Task", "SearchDatastoreSubFolders_Task",
    "CheckCompatibility_Task", "CheckMigrate_Task", "CheckRelocate_Task", "CheckClone_Task",
    "CheckInstantClone_Task", "CheckVmConfig_Task", "CheckPowerOn_Task", "CheckHostPatch_Task",
    "QueryVMotionCompatibilityEx_Task", "QueryHostPatch_Task", "ScanHostPatch_Task", "ScanHostPatchV2_Task",
    "QueryVirtualDiskFragmentation_Task", "EstimateStorageForConsolidateSnapshots_Task",
    "ValidateCredentialsInGuest_Task", "RetrieveHardwareUptime_Task",
})

READ_METHODS: Final[frozenset[str]] = READ_ONLY_TASKS | frozenset({
    # Not needed for the default (anything unlisted that is not a *_Task is a read) but spelled out
    # because some look like writes: views and filters are per-session bookkeeping, not inventory.
    "RetrieveProperties", "RetrievePropertiesEx", "ContinueRetrievePropertiesEx", "CancelRetrievePropertiesEx",
    "Fetch", "RetrieveContents", "WaitForUpdates", "WaitForUpdatesEx", "CheckForUpdates", "CancelWaitForUpdates",
    "CreateFilter", "DestroyPropertyFilter", "CreatePropertyCollector", "DestroyPropertyCollector",
    "CreateContainerView", "CreateListView", "CreateInventoryView", "DestroyView",
    "FindByUuid", "FindByInventoryPath", "FindByDatastorePath", "FindByIp", "FindByDnsName", "FindChild",
    "FindAllByUuid", "CurrentTime", "QueryVirtualDiskUuid", "QueryVirtualDiskGeometry",
    "QueryChangedDiskAreas", "RecommendDatastores", "SessionIsActive", "HttpNfcLeaseProgress",
    "HttpNfcLeaseGetManifest", "ExportVm", "AcquireCloneTicket", "AcquireGenericServiceTicket",
    "PbmQueryProfile", "PbmRetrieveContent", "PbmQueryAssociatedProfile", "PbmQueryAssociatedProfiles",
    "PbmQueryMatchingHub", "PbmCheckCompatibility", "PbmCheckRequirements", "PbmFetchCapabilityMetadata",
    "PbmFetchResourceType", "PbmQueryDefaultRequirementProfile", "PbmQueryComplianceStatus",
    "PbmFetchComplianceResult", "PbmQueryAssociatedEntity", "PbmQueryAssociatedEntities",
})

WRITE_METHODS: Final[frozenset[str]] = frozenset({
    # Non-task methods that change vSphere.  Every *_Task outside READ_ONLY_TASKS is a write too.
    "CreateFolder", "CreateDatacenter", "CreateClusterEx", "CreateCluster", "MarkAsTemplate",
    "MarkAsVirtualMachine", "RenameSnapshot", "SetCustomValue", "UnregisterVM", "AddCustomFieldDef",
    "RemoveCustomFieldDef", "RenameCustomFieldDef", "SetField", "MakeDirectory", "CreateDirectory",
    "DeleteDirectory", "SetVirtualDiskUuid", "ImportVApp", "HttpNfcLeaseComplete", "HttpNfcLeaseAbort",
    "UpdateOptions", "CancelTask", "RegisterExtension", "UnregisterExtension",
    "PbmCreate", "PbmUpdate", "PbmDelete", "PbmAssignDefaultRequirementProfile",
})

HTTP_WRITE_VERBS: Final[frozenset[str]] = frozenset({"PUT", "POST", "DELETE", "PATCH"})

PROTECTED_METHODS: Final[frozenset[str]] = frozenset({
    # Session set-up and tear-down: faulting these by accident turns every test into a login test.
    # A rule that names one of them exactly (inject("reset", "Login")) still applies.
    "Login", "LoginByToken", "LoginBySSPI", "LoginExtensionByCertificate", "LoginExtensionBySubjectName",
    "Logout", "RetrieveServiceContent", "PbmRetrieveServiceContent",
    "GET /sdk",  # /sdk/vimServiceVersions.xml: API version discovery before login
})


def classify(method: str, *, read_methods: Collection[str] = READ_METHODS,
             write_methods: Collection[str] = WRITE_METHODS) -> Category:
    """``"write"`` if the request can change vSphere, else ``"read"``.

    ``method`` is a SOAP method name or ``"VERB /segment"`` for plain HTTP.  Order: explicit writes,
    explicit reads, HTTP verbs (PUT/POST/DELETE transfers write), then every ``*_Task`` is a write.
    """
    if method in write_methods:
        return "write"
    if method in read_methods:
        return "read"
    verb, sep, _ = method.partition(" ")
    if sep:
        return "write" if verb in HTTP_WRITE_VERBS else "read"
    return "write" if method.endswith("_Task") else "read"


# ----------------------------------------------------------------------------------------- records

@dataclass(frozen=True)
class Request:
    """What the proxy knows about one request when it decides whether to fault it."""

    method: str  # "CreateFolder", "GET /folder"
    category: Category
    verb: str
    path: str
    session: str | None  # the vmware_soap_session cookie's value, if any
    protected: bool


@dataclass(frozen=True)
class Exchange:
    """One request as it went through: ``fault`` is None when it passed untouched."""

    method: str
    category: Category
    fault: str | None


Matcher = None | str | Callable[[str], bool] | Collection[str]


@dataclass
class Rule:
    """One ``inject`` call.  ``seen`` counts matching requests, ``fired`` the faults it caused."""

    kind: str
    method: Matcher
    times: int | None
    skip: int
    seconds: float | None
    seen: int = 0
    fired: int = 0

    @property
    def done(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, req: Request) -> bool:
        """Whether ``req`` is one this rule is about (before skip/times accounting)."""
        if self.kind == SESSION_END and not req.session:
            return False  # nothing to end: don't let a cookie-less request use up the rule
        m = self.method
        if isinstance(m, str):
            if m in ("read", "write"):
                return not req.protected and req.category == m
            return req.method == m  # an exact name may target a protected method
        if req.protected:
            return False
        if m is None:
            return True
        if callable(m):
            return bool(m(req.method))
        return req.method in m


@dataclass
class _RandomMode:
    seed: Any
    read_rate: float
    write_rate: float
    kinds: tuple[str, ...]
    delay_seconds: float
    occurrences: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Fault:
    kind: str
    seconds: float | None = None


# ------------------------------------------------------------------------------------ HTTP plumbing

_SOAP_METHOD = re.compile(rb"<(?:[\w.-]+:)?Body\b[^>]*>\s*<(?:[\w.-]+:)?([\w.-]+)")
_SESSION_COOKIE = re.compile(r'(?:^|[;,]\s*)vmware_soap_session="?([^";,\s]+)')
_MAX_LINE = 65536
_MAX_HEADERS = 200
_BLOCK = 256 * 1024


class _PeerClosed(Exception):
    """The peer closed (or reset) the connection where a message was expected to continue."""


class _BadMessage(Exception):
    """Malformed HTTP: answer 400 (client side) or 502 (upstream side) and drop the connection."""


class _ClientGone(Exception):
    """Writing to the client failed: it hung up (for instance after its own timeout)."""


class _Reader:
    """Buffered reads over a socket.

    Not ``socket.makefile``: a file object holds a reference that keeps the descriptor open after
    ``close()``, which would turn our SO_LINGER-0 reset into nothing until the file is collected.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(_BLOCK)
        if not data:
            return False
        self.buf += data
        return True

    def readline(self) -> bytes:
        """One line including its LF; what is left (maybe b"") at EOF."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > _MAX_LINE:
                raise _BadMessage("line too long")
            start = len(self.buf)
            if not self._fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes, at least one; b"" only at EOF."""
        if not self.buf and not self._fill():
            return b""
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            piece = self.read_some(n - len(out))
            if not piece:
                raise _PeerClosed(f"EOF after {len(out)} of {n} bytes")
            out += piece
        return bytes(out)


@dataclass
class _Head:
    """Start line and header fields of an HTTP message, kept as sent (order, case, duplicates)."""

    start: bytes
    fields: list[tuple[bytes, bytes]]

    def get(self, name: str) -> str | None:
        key = name.lower().encode()
        values = [v.decode("latin-1") for k, v in self.fields if k.lower() == key]
        return ", ".join(values) if values else None

    def has_token(self, name: str, token: str) -> bool:
        value = self.get(name)
        return value is not None and token in (t.strip().lower() for t in value.split(","))

    def encode(self, drop: Collection[str] = ()) -> bytes:
        dropped = {d.lower().encode() for d in drop}
        lines = [self.start] + [k + b": " + v for k, v in self.fields if k.lower() not in dropped]
        return b"\r\n".join(lines) + b"\r\n\r\n"


def _read_head(reader: _Reader) -> _Head | None:
    """The next message head; None on a clean EOF before it starts."""
    line = reader.readline()
    while line in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112 2.2)
        line = reader.readline()
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise _PeerClosed("EOF inside the start line")
    start = line.rstrip(b"\r\n")
    fields: list[tuple[bytes, bytes]] = []
    while True:
        line = reader.readline()
        if not line.endswith(b"\n"):
            raise _PeerClosed("EOF inside the header")
        line = line.rstrip(b"\r\n")
        if not line:
            return _Head(start, fields)
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise _BadMessage(f"bad header line {line[:80]!r}")
        fields.append((name, value.strip()))
        if len(fields) > _MAX_HEADERS:
            raise _BadMessage("too many header fields")


def _framing(head: _Head, *, response_to: str | None = None, status: int = 0) -> tuple[str, int]:
    """How the body is delimited: ("none"|"length"|"chunked"|"close", length).

    ``response_to``: the request's verb when ``head`` is a response (HEAD and 1xx/204/304 have no body).
    """
    if response_to is not None and (response_to == "HEAD" or 100 <= status < 200 or status in (204, 304)):
        return "none", 0
    te = head.get("transfer-encoding")
    if te is not None:
        if te.split(",")[-1].strip().lower() == "chunked":
            return "chunked", 0
        if response_to is None:
            raise _BadMessage(f"unsupported request Transfer-Encoding {te!r}")
        return "close", 0
    cl = head.get("content-length")
    if cl is not None:
        values = {v.strip() for v in cl.split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise _BadMessage(f"bad Content-Length {cl!r}")
        return "length", int(next(iter(values)))
    return ("close", 0) if response_to is not None else ("none", 0)


def _iter_body(reader: _Reader, framing: tuple[str, int]) -> Iterator[tuple[bytes, bytes]]:
    """(bytes as on the wire, payload bytes) pieces of a body, so it can be relayed with its own framing
    while the payload is inspected."""
    how, length = framing
    if how == "length":
        left = length
        while left:
            piece = reader.read_some(min(left, _BLOCK))
            if not piece:
                raise _PeerClosed(f"EOF with {left} body bytes missing")
            left -= len(piece)
            yield piece, piece
    elif how == "chunked":
        while True:
            line = reader.readline()
            if not line.endswith(b"\n"):
                raise _PeerClosed("EOF inside a chunk header")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadMessage(f"bad chunk size line {line[:40]!r}") from None
            yield line, b""
            if size == 0:
                while True:  # trailer section up to and including the empty line
                    line = reader.readline()
                    if not line.endswith(b"\n"):
                        raise _PeerClosed("EOF inside the chunked trailer")
                    yield line, b""
                    if line in (b"\r\n", b"\n"):
                        return
            left = size
            while left:
                piece = reader.read_some(min(left, _BLOCK))
                if not piece:
                    raise _PeerClosed("EOF inside a chunk")
                left -= len(piece)
                yield piece, piece
            crlf = reader.readline()
            if crlf not in (b"\r\n", b"\n"):
                raise _BadMessage("chunk not followed by CRLF")
            yield crlf, b""
    elif how == "close":
        while True:
            piece = reader.read_some(_BLOCK)
            if not piece:
                return
            yield piece, piece


def _status_of(head: _Head) -> int:
    parts = head.start.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise _BadMessage(f"bad status line {head.start[:80]!r}")
    return int(parts[1])


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER on, timeout 0), and without a TLS close_notify:
    what a crashed middlebox or a dropped NAT entry looks like to the client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _simple_response(status: int, reason: str, *, close: bool, head_only: bool = False) -> bytes:
    """A complete small response of our own (``head_only`` for HEAD requests, which get no body)."""
    body = f"{status} {reason}\n".encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}"]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (b"" if head_only else body)


_REFUSAL = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" '
    b'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
    b"<faultcode>ServerFaultCode</faultcode><faultstring>Invalid configuration for device '0'.</faultstring>"
    b'<detail><InvalidDeviceSpecFault xmlns="urn:vim25" xsi:type="InvalidDeviceSpec">'
    b"<property>virtualDeviceSpec.device.backing.uuid</property><deviceIndex>0</deviceIndex>"
    b"</InvalidDeviceSpecFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>")


def _refusal(*, close: bool) -> bytes:
    """vSphere's answer to a request it refuses: HTTP 500 with a SOAP fault (here InvalidDeviceSpec)."""
    head = ["HTTP/1.1 500 Internal Server Error", "Content-Type: text/xml; charset=utf-8",
            f"Content-Length: {len(_REFUSAL)}"]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + _REFUSAL


def _method_key(verb: str, target: str, payload: bytes | None) -> str:
    """SOAP method name from the body, else "VERB /first-path-segment"."""
    if payload:
        m = _SOAP_METHOD.search(payload)
        if m:
            return m.group(1).decode("ascii", "replace")
    path = target.split("?", 1)[0]
    if "://" in path:  # absolute-form target
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    segment = path.lstrip("/").split("/", 1)[0]
    return f"{verb} /{segment}"


# ----------------------------------------------------------------------------------------- the proxy

class FaultProxy:
    """TLS reverse proxy that forwards to a vSphere endpoint and breaks the requests it is told to.

    ``FaultProxy(sim)`` takes host, port, CA, credentials and the server certificate/key from a
    ``tests.vcsim.harness.Vcsim``; or pass ``upstream_host``/``upstream_port``/``ca_file``/``cert_file``/
    ``key_file``/``user``/``password`` (credentials are only needed for ``session_end``).  The proxy
    presents ``cert_file`` — the simulator's own certificate, valid for 127.0.0.1 — so clients verify it
    with the same CA file.  Every method is thread-safe.
    """

    def __init__(self, sim: Any = None, *, upstream_host: str | None = None, upstream_port: int | None = None,
                 ca_file: str | None = None, cert_file: str | Path | None = None,
                 key_file: str | Path | None = None, user: str | None = None, password: str | None = None,
                 listen_host: str = "127.0.0.1", listen_port: int = 0, upstream_timeout: float = 300.0,
                 read_methods: Collection[str] = READ_METHODS, write_methods: Collection[str] = WRITE_METHODS,
                 protected: Collection[str] = PROTECTED_METHODS) -> None:
        tls_dir = Path(sim.workdir) / "tls" if sim is not None and getattr(sim, "workdir", None) else None
        self.upstream_host = upstream_host or (sim.host if sim is not None else None)
        self.upstream_port = upstream_port or (sim.port if sim is not None else None)
        self.ca_file = ca_file or (getattr(sim, "ca_file", None) if sim is not None else None)
        cert_file = cert_file or (tls_dir / "server.pem" if tls_dir else None)
        key_file = key_file or (tls_dir / "server-key.pem" if tls_dir else None)
        self.user = user or (getattr(sim, "user", None) if sim is not None else None)
        self._password = password or (getattr(sim, "password", None) if sim is not None else None)
        if not (self.upstream_host and self.upstream_port and cert_file and key_file):
            raise ValueError("FaultProxy needs an upstream (sim or upstream_host/upstream_port) and a server "
                             "certificate (sim.workdir/tls or cert_file/key_file)")
        self.upstream_timeout = upstream_timeout
        self.read_methods = frozenset(read_methods)
        self.write_methods = frozenset(write_methods)
        self.protected = frozenset(protected)

        self._server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_ctx.load_cert_chain(str(cert_file), str(key_file))
        if self.ca_file:
            self._upstream_ctx = ssl.create_default_context(cafile=self.ca_file)
        else:  # an endpoint without a CA file of ours (VMDK_TEST_VSPHERE_INSECURE): don't verify
            self._upstream_ctx = ssl.create_default_context()
            self._upstream_ctx.check_hostname = False
            self._upstream_ctx.verify_mode = ssl.CERT_NONE

        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._random: _RandomMode | None = None
        self._paused = 0
        self._injected: list[tuple[str, str]] = []
        self._counts: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()
        self._log: list[Exchange] = []
        self._errors: list[str] = []

        self._admin_lock = threading.Lock()
        self._admin_si: Any = None
        self._ended: set[str] = set()  # session keys we terminated (a second NotFound for them is fine)

        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._listener = socket.create_server((listen_host, listen_port), backlog=256)
        self.host, self.port = self._listener.getsockname()[:2]
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"faultproxy-{self.port}",
                                               daemon=True)
        self._accept_thread.start()

    # ------------------------------------------------------------------------------ addresses
    @property
    def server(self) -> str:
        """``"127.0.0.1:PORT"``: what to hand to clients instead of the simulator's address."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.server}/sdk"

    # ------------------------------------------------------------------------------ configuration
    def inject(self, kind: Kind, method: Matcher = None, *, times: int | None = 1, skip: int = 0,
               seconds: float | None = None) -> Rule:
        """Fault the next ``times`` requests matching ``method``, after letting ``skip`` of them pass.

        ``method``: None (any request), ``"read"``/``"write"``, an exact name (``"CreateVM_Task"``,
        ``"GET /folder"``), a collection of names, or a predicate on the name.  Only an exact name can hit a
        protected method (Login, ...).  ``times=None``: every matching request from then on.  ``seconds``:
        required for ``delay``, refused otherwise.  Rules are tried in the order they were added; the first
        one that fires wins and later ones do not see the request.  A ``session_end`` rule only counts
        requests that carry a session cookie.  Returns the rule (``seen``, ``fired``, ``done``).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {KINDS}")
        if (kind == DELAY) != (seconds is not None):
            raise ValueError("seconds is required for 'delay' and only for it")
        if seconds is not None and seconds < 0:
            raise ValueError("seconds must be >= 0")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for no limit)")
        if skip < 0:
            raise ValueError("skip must be >= 0")
        if kind == SESSION_END and not (self.user and self._password):
            raise ValueError("session_end needs the upstream's user and password")
        rule = Rule(kind, method, times, skip, seconds)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule and stop random mode (the records stay: see ``reset_records``)."""
        with self._lock:
            self._rules.clear()
            self._random = None

    def randomize(self, seed: Any, read_rate: float = 0.05, write_rate: float = 0.2,
                  kinds: Collection[str] = RANDOM_KINDS, *, delay_seconds: float = 1.0) -> None:
        """Fault reads with probability ``read_rate`` and writes with ``write_rate``, kind drawn from
        ``kinds``; ``randomize(None)`` stops.

        Why per method: the n-th request *of each method* is faulted or not as a pure function of
        (seed, method, n), so the outcome does not depend on how requests of different methods — from
        several threads or provider processes — interleave, only on the order within each method.
        Calling ``randomize`` again restarts the counting.  Rules take precedence over random faults.
        """
        if seed is None:
            with self._lock:
                self._random = None
            return
        kinds = tuple(kinds)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, not {kinds}")
        if not (0.0 <= read_rate <= 1.0 and 0.0 <= write_rate <= 1.0):
            raise ValueError("rates must be within [0, 1]")
        if SESSION_END in kinds and not (self.user and self._password):
            raise ValueError("session_end needs the upstream's user and password")
        with self._lock:
            self._random = _RandomMode(seed, read_rate, write_rate, kinds, delay_seconds)

    def pause(self) -> None:
        """Let every request through untouched until ``resume``; paused requests advance no rule and no
        random counter (so setup and checks through the proxy don't shift what a test injects)."""
        with self._lock:
            self._paused += 1

    def resume(self) -> None:
        with self._lock:
            self._paused = max(0, self._paused - 1)

    @contextlib.contextmanager
    def paused(self) -> Iterator[FaultProxy]:
        """``with proxy.paused(): ...`` — nestable ``pause``/``resume``."""
        self.pause()
        try:
            yield self
        finally:
            self.resume()

    @property
    def is_paused(self) -> bool:
        with self._lock:
            return self._paused > 0

    # ------------------------------------------------------------------------------ records
    @property
    def injected(self) -> list[tuple[str, str]]:
        """(kind, method) of every fault, in the order decided (a copy)."""
        with self._lock:
            return list(self._injected)

    @property
    def counts(self) -> Counter[str]:
        """Faults by kind (a copy)."""
        with self._lock:
            return Counter(self._counts)

    @property
    def requests(self) -> Counter[str]:
        """Requests received by method, faulted or not, paused or not (a copy)."""
        with self._lock:
            return Counter(self._requests)

    @property
    def log(self) -> list[Exchange]:
        """Every request in arrival order with its category and fault (a copy)."""
        with self._lock:
            return list(self._log)

    @property
    def errors(self) -> list[str]:
        """The proxy's own failures (upstream unreachable, TerminateSession refused): a test that expects
        clean faults can assert this is empty."""
        with self._lock:
            return list(self._errors)

    @property
    def rules(self) -> list[Rule]:
        """Rules still pending (those with faults left to give)."""
        with self._lock:
            return [r for r in self._rules if not r.done]

    def reset_records(self) -> None:
        with self._lock:
            self._injected.clear()
            self._counts.clear()
            self._requests.clear()
            self._log.clear()
            self._errors.clear()

    def classify(self, method: str) -> Category:
        return classify(method, read_methods=self.read_methods, write_methods=self.write_methods)

    # ------------------------------------------------------------------------------ decisions
    def _decide(self, req: Request) -> _Fault | None:
        with self._lock:
            self._requests[req.method] += 1
            fault = None if self._paused else self._decide_locked(req)
            self._log.append(Exchange(req.method, req.category, fault.kind if fault else None))
            if fault is not None:
                self._injected.append((fault.kind, req.method))
                self._counts[fault.kind] += 1
            return fault

    def _decide_locked(self, req: Request) -> _Fault | None:
        fault: _Fault | None = None
        for rule in self._rules:
            if rule.done or not rule.matches(req):
                continue
            rule.seen += 1
            if rule.seen <= rule.skip:
                continue
            rule.fired += 1
            fault = _Fault(rule.kind, rule.seconds)
            break
        self._rules = [r for r in self._rules if not r.done]
        rnd = self._random
        if rnd is not None and not req.protected:
            n = rnd.occurrences[req.method]
            rnd.occurrences[req.method] += 1  # advances even when a rule fired: rules don't shift it
            if fault is None:
                rng = random.Random(f"{rnd.seed!r}\x00{req.method}\x00{n}")  # str seeds hash with SHA-512
                draw, pick = rng.random(), rng.random()
                rate = rnd.write_rate if req.category == "write" else rnd.read_rate
                eligible = [k for k in rnd.kinds if k != SESSION_END or req.session]
                if draw < rate and eligible:
                    kind = eligible[int(pick * len(eligible))]
                    fault = _Fault(kind, rnd.delay_seconds if kind == DELAY else None)
        return fault

    def _error(self, message: str) -> None:
        LOG.warning("faultproxy %s: %s", self.server, message)
        with self._lock:
            self._errors.append(message)

    # ------------------------------------------------------------------------------ session_end
    def _admin(self) -> Any:
        """A session of our own straight to the upstream (never through the proxy, so it is never
        faulted), from which TerminateSession ends someone else's session as an administrator would."""
        if self._admin_si is None:
            from pyVim.connect import SmartConnect

            self._admin_si = SmartConnect(host=self.upstream_host, port=int(self.upstream_port or 443),
                                          user=self.user, pwd=self._password, sslContext=self._upstream_ctx)
        return self._admin_si

    def _end_session(self, key: str) -> None:
        from pyVmomi import vim

        with self._admin_lock:
            for attempt in (1, 2):
                try:
                    self._admin().content.sessionManager.TerminateSession(sessionId=[key])
                    self._ended.add(key)
                    return
                except vim.fault.NotFound:
                    if key not in self._ended:  # not one we ended: is the cookie a session key here?
                        self._error(f"TerminateSession({key[:8]}...): NotFound; the session stays as it was")
                    return  # ended by an earlier fault (concurrent requests of one session): same effect
                except vim.fault.NotAuthenticated:
                    self._admin_si = None  # our own session expired: log in again once
                    if attempt == 2:
                        raise
                except Exception as error:  # noqa: BLE001 - reported through .errors
                    self._admin_si = None
                    self._error(f"TerminateSession({key[:8]}...) failed: {type(error).__name__}: {error}")
                    return

    def _close_admin(self) -> None:
        with self._admin_lock:
            si, self._admin_si = self._admin_si, None
        if si is not None:
            with contextlib.suppress(Exception):
                si.content.sessionManager.Logout()

    # ------------------------------------------------------------------------------ server
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                time.sleep(0.05)  # EMFILE and friends: don't spin
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve, args=(sock,), name=f"faultproxy-{self.port}-conn",
                                      daemon=True)
            with self._lock:
                if self._closed.is_set():
                    sock.close()
                    return
                self._conns.add(sock)
                self._threads.add(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        conn: _Connection | None = None
        try:
            raw.settimeout(30)
            try:
                client = self._server_ctx.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                return
            client.settimeout(None)  # keep-alive connections may idle for as long as the client likes
            with self._lock:
                self._conns.discard(raw)
                self._conns.add(client)
            conn = _Connection(self, client)
            conn.run()
        except Exception as error:  # noqa: BLE001 - a connection thread must never die loudly
            if not self._closed.is_set():
                self._error(f"connection handler: {type(error).__name__}: {error}")
        finally:
            if conn is not None:
                conn.close()
            with self._lock:
                self._conns.discard(raw)
                if conn is not None:
                    self._conns.discard(conn.client)
                self._threads.discard(threading.current_thread())

    def close(self) -> None:
        """Stop listening, cut every open connection, log the admin session out.  Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        with contextlib.suppress(OSError):
            self._listener.close()
        self._accept_thread.join(timeout=5)
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for sock in conns:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # raw shutdown: wakes a blocked TLS recv
        deadline = time.monotonic() + 5
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._close_admin()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaultProxy({self.server} -> {self.upstream_host}:{self.upstream_port})"


class _Connection:
    """One client connection (and its own keep-alive connection upstream), served request by request."""

    def __init__(self, proxy: FaultProxy, client: ssl.SSLSocket) -> None:
        self.proxy = proxy
        self.client = client
        self.reader = _Reader(client)
        self.up: ssl.SSLSocket | None = None
        self.up_reader: _Reader | None = None
        self.up_used = False
        self.closed = False

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self._drop_upstream()
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self.client.close()

    def _reset_client(self) -> None:
        self.closed = True
        _reset(self.client)

    def _send(self, data: bytes) -> None:
        try:
            self.client.sendall(data)
        except OSError as error:
            raise _ClientGone(str(error)) from None

    def _drop_upstream(self) -> None:
        if self.up is not None:
            with self.proxy._lock:
                self.proxy._conns.discard(self.up)
            with contextlib.suppress(OSError):
                self.up.close()
        self.up = self.up_reader = None
        self.up_used = False

    def _upstream(self) -> tuple[ssl.SSLSocket, _Reader]:
        """The keep-alive upstream connection, (re)opened when missing or closed by the server."""
        if self.up is not None:
            readable, _, _ = select.select([self.up], [], [], 0)
            if readable or self.up.pending():  # an idle keep-alive connection has nothing to say: EOF
                self._drop_upstream()
        if self.up is None:
            p = self.proxy
            raw = socket.create_connection((p.upstream_host, p.upstream_port), timeout=p.upstream_timeout)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.up = p._upstream_ctx.wrap_socket(raw, server_hostname=p.upstream_host)
            except BaseException:
                raw.close()
                raise
            self.up_reader = _Reader(self.up)
            self.up_used = False
            with p._lock:
                p._conns.add(self.up)
        assert self.up_reader is not None
        return self.up, self.up_reader

    # ------------------------------------------------------------------ request loop
    def run(self) -> None:
        while not self.closed and not self.proxy._closed.is_set():
            try:
                head = _read_head(self.reader)
            except (OSError, _PeerClosed):
                return
            except _BadMessage:
                with contextlib.suppress(_ClientGone):
                    self._send(_simple_response(400, "Bad Request", close=True))
                return
            if head is None:
                return
            try:
                keep = self._exchange(head)
            except _ClientGone:
                return
            except _BadMessage as error:
                with contextlib.suppress(_ClientGone):
                    self._send(_simple_response(400, "Bad Request", close=True))
                LOG.debug("bad request: %s", error)
                return
            except (OSError, _PeerClosed):
                return  # the client vanished mid-request
            if not keep:
                return

    def _exchange(self, head: _Head) -> bool:
        """Serve one request; True to keep the client connection for the next one."""
        parts = head.start.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadMessage(f"bad request line {head.start[:80]!r}")
        verb, target, version = parts
        framing = _framing(head)
        client_close = head.has_token("connection", "close") or (
            version == "HTTP/1.0" and not head.has_token("connection", "keep-alive"))
        expect = head.has_token("expect", "100-continue")
        drop = ("expect",) if expect else ()

        content_type = (head.get("content-type") or "").lower()
        soap = verb == "POST" and (head.get("soapaction") is not None or "xml" in content_type)
        wire: bytes | None = None
        if soap:  # small: read it whole, the method name is inside
            if expect:
                self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
                expect = False
            raw, payload = bytearray(), bytearray()
            for w, p in _iter_body(self.reader, framing):
                raw += w
                payload += p
            wire = bytes(raw)
            method = _method_key(verb, target, bytes(payload))
        else:
            method = _method_key(verb, target, None)

        cookie = head.get("cookie") or ""
        m = _SESSION_COOKIE.search(cookie)
        proxy = self.proxy
        req = Request(method=method, category=proxy.classify(method), verb=verb, path=target,
                      session=m.group(1) if m else None, protected=method in proxy.protected)
        fault = proxy._decide(req)
        kind = fault.kind if fault else None

        if kind == RESET:
            self._reset_client()
            return False
        if kind == HTTP503:
            if wire is None:  # consume the body so the connection stays usable, as a real LB would
                if expect:
                    self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
                for _ in _iter_body(self.reader, framing):
                    pass
            self._send(_simple_response(503, "Service Unavailable", close=client_close, head_only=verb == "HEAD"))
            return not client_close
        if kind == REFUSE and wire is not None:  # a SOAP call: vSphere answers with a fault and does nothing
            self._send(_refusal(close=client_close))
            return not client_close
        if kind == SESSION_END:
            assert req.session is not None
            proxy._end_session(req.session)

        try:
            resp, status, up_reader = self._forward(head, drop, wire, framing, expect,
                                                    relay_interim=kind != LOST_RESPONSE)
        except _ClientGone:
            raise
        except (OSError, _PeerClosed, _BadMessage) as error:
            self._drop_upstream()
            proxy._error(f"{method}: upstream failed before answering: {type(error).__name__}: {error}")
            self._send(_simple_response(502, "Bad Gateway", close=True, head_only=verb == "HEAD"))
            return False

        resp_framing = _framing(resp, response_to=verb, status=status)
        upstream_close = resp.has_token("connection", "close") or resp_framing[0] == "close"

        if kind == LOST_RESPONSE:
            try:
                for _ in _iter_body(up_reader, resp_framing):
                    pass  # vSphere answered in full; the client will never know
            except (OSError, _PeerClosed, _BadMessage):
                self._drop_upstream()
            if upstream_close:
                self._drop_upstream()
            self._reset_client()
            return False

        if kind == DELAY:
            assert fault is not None and fault.seconds is not None
            if proxy._closed.wait(fault.seconds):  # closing: cut the held response, don't deliver it
                self._drop_upstream()
                self._reset_client()
                return False

        out = bytearray(resp.encode())
        try:
            for w, _ in _iter_body(up_reader, resp_framing):
                out += w
                if len(out) >= _BLOCK:
                    self._send(bytes(out))
                    out.clear()
        except (OSError, _PeerClosed, _BadMessage):
            # Upstream broke mid-body: the client cannot get a whole message; cut it off too.
            self._drop_upstream()
            self._reset_client()
            return False
        except _ClientGone:
            self._drop_upstream()  # the rest of the body is still in flight upstream
            raise
        self._send(bytes(out))
        if upstream_close:
            self._drop_upstream()
        return not (client_close or upstream_close)

    def _forward(self, head: _Head, drop: Collection[str], wire: bytes | None, framing: tuple[str, int],
                 expect: bool, *, relay_interim: bool) -> tuple[_Head, int, _Reader]:
        """Send the request upstream and read the final response head (1xx are relayed or skipped).

        A keep-alive connection the server closed between requests fails on first use; a buffered request
        is then retried once on a fresh connection, as browsers and http.client users do.  A streamed body
        cannot be replayed, so it is not retried.  _ClientGone if the client breaks off its own body (the
        half-sent upstream connection is dropped with the client connection).
        """
        for attempt in (1, 2):
            up, up_reader = self._upstream()
            reused = self.up_used
            self.up_used = True
            started_body = False
            try:
                if wire is not None:
                    up.sendall(head.encode(drop) + wire)
                else:
                    up.sendall(head.encode(drop))
                    if expect:
                        self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
                    started_body = True
                    body = _iter_body(self.reader, framing)
                    while True:
                        try:
                            w, _ = next(body)
                        except StopIteration:
                            break
                        except (OSError, _PeerClosed) as error:  # the client's fault, not upstream's
                            raise _ClientGone(f"client stopped sending its body: {error}") from None
                        up.sendall(w)
                while True:
                    resp = _read_head(up_reader)
                    if resp is None:
                        raise _PeerClosed("upstream closed without answering")
                    status = _status_of(resp)
                    if 100 <= status < 200 and status != 101:
                        if relay_interim:
                            self._send(resp.encode())
                        continue
                    return resp, status, up_reader
            except (OSError, _PeerClosed):
                self._drop_upstream()
                if attempt == 2 or not reused or started_body:
                    raise
        raise AssertionError("unreachable")
