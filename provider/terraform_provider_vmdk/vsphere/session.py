"""One authenticated vSphere API session: TLS, login, retries, re-login, tasks, property retrieval, PBM.

TLS is decided only by the ``ssl.SSLContext`` built here (system CAs, or ``ca_file``; ``CERT_NONE`` only with
``allow_unverified_ssl``) and handed to every HTTPS connection we open (SOAP, PBM, datastore HTTP).  pyVim's
``SmartConnect`` swaps in an unverified context for localhost/127.0.0.1 when it is given none, and
``requests`` honours ``REQUESTS_CA_BUNDLE``; we use neither: the SOAP stub is a ``SoapStubAdapter`` created
with our context, and the API version is read from ``/sdk/vimServiceVersions.xml`` over that same context.

The password is held by the config only; it never enters a log line or an exception message.
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from http.cookies import SimpleCookie
from typing import Any

from pyVmomi import SoapStubAdapter, VmomiSupport, pbm, vim, vmodl

from . import exceptions as exc
from . import tasks as _tasks
from .config import ConnectionConfig
from .properties import ObjectContent, objects_filter_spec, retrieve_all, type_of, view_filter_spec

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")

SOAP_PATH = "/sdk"
PBM_PATHS = ("/pbm/sdk", "/pbm")  # vCenter, then vcsim
PBM_VERSION = "pbm.version.version11"
HTTP_TIMEOUT = 300.0  # seconds per HTTP request on the SOAP connection
BACKOFF_BASE = 0.1
BACKOFF_MAX = 10.0
MAX_CACHED_VIEWS = 32


def _classes(holder: Any, *names: str) -> tuple[type, ...]:
    return tuple(t for t in (getattr(holder, n, None) for n in names) if t is not None)


TRANSIENT_FAULTS = _classes(vmodl.fault, "HostCommunication", "HostNotConnected", "HostNotReachable") + _classes(
    vim.fault, "HostCommunication", "TaskInProgress")
NOT_AUTHENTICATED = vim.fault.NotAuthenticated


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, ssl.SSLCertVerificationError):
        return False
    if isinstance(error, (ConnectionError, TimeoutError, socket.timeout, ssl.SSLEOFError,
                          ssl.SSLZeroReturnError, http.client.IncompleteRead,
                          http.client.BadStatusLine, http.client.CannotSendRequest,
                          http.client.ResponseNotReady)):
        return True
    if isinstance(error, http.client.HTTPException):  # pyVmomi: HTTPException("503 Service Unavailable")
        return str(error)[:3] in ("502", "503", "504")
    return isinstance(error, TRANSIENT_FAULTS)


class _Stub(SoapStubAdapter):
    """SoapStubAdapter that counts requests (``Session.round_trips``)."""

    def __init__(self, *args: Any, on_request: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_request = on_request

    def InvokeMethod(self, mo: Any, info: Any, args: Any, outerStub: Any = None) -> Any:  # noqa: N802
        self._on_request()
        return super().InvokeMethod(mo, info, args, outerStub)


class Session:
    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config
        self._lock = threading.RLock()  # connect / relogin / logout
        self._count_lock = threading.Lock()
        self._round_trips = 0
        self._stub: _Stub | None = None
        self._si: Any = None
        self._content: Any = None
        self._generation = 0  # bumped at every (re)login
        self._pbm_stub: _Stub | None = None
        self._pbm_content: Any = None
        self._views: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._views_lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        state = "connected" if self._content is not None else "not connected"
        return f"<Session {self.config.user}@{self.config.netloc} {state}>"

    # ------------------------------------------------------------------ TLS
    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The context every HTTPS connection of this session uses."""
        if self._ssl_context is None:
            if self.config.allow_unverified_ssl:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                try:
                    ctx = ssl.create_default_context(cafile=self.config.ca_file)
                except (OSError, ssl.SSLError) as error:
                    raise exc.ConnectionFailed(self.config.netloc, f"cannot read ca_file {self.config.ca_file!r}: "
                                               f"{error}") from None
                ctx.check_hostname = True
                ctx.verify_mode = ssl.CERT_REQUIRED
            self._ssl_context = ctx
        return self._ssl_context

    def http_url(self, path: str) -> str:
        """``https://host:port`` + path, for datastore file transfer with the same TLS settings."""
        return f"https://{self.config.netloc}{path if path.startswith('/') else '/' + path}"

    # ------------------------------------------------------------------ connect
    def _count(self) -> None:
        with self._count_lock:
            self._round_trips += 1

    @property
    def round_trips(self) -> int:
        """SOAP requests sent by this session (vim and PBM), including logins."""
        return self._round_trips

    def _scrub(self, text: str) -> str:
        pw = self.config.password
        return text.replace(pw, "***") if pw and len(pw) >= 3 else text

    def _fail(self, cause: str, error: BaseException | None = None) -> exc.ConnectionFailed:
        return exc.ConnectionFailed(self.config.netloc, self._scrub(cause))

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, ssl.SSLCertVerificationError):
            hint = ("set ca_file to the CA certificate that signed the server's certificate"
                    if not self.config.ca_file else
                    f"the certificate is not signed by the CA in ca_file {self.config.ca_file!r}")
            return (f"TLS certificate verification failed ({error.verify_message or error.reason}); {hint}, "
                    "or set allow_unverified_ssl = true (insecure)")
        if isinstance(error, ssl.SSLError):
            return f"TLS handshake failed ({error.reason or error})"
        if isinstance(error, vim.fault.InvalidLogin):
            return f"login failed for user {self.config.user!r}: incorrect user name or password"
        if isinstance(error, vmodl.MethodFault):
            return f"{type(error).__name__}: {getattr(error, 'msg', '') or ''}".rstrip(": ")
        if isinstance(error, socket.gaierror):
            return f"cannot resolve host {self.config.host!r} ({error.strerror})"
        if isinstance(error, ConnectionRefusedError):
            return "connection refused (is the server running and the port right?)"
        if isinstance(error, (TimeoutError, socket.timeout)):
            return "connection timed out"
        if isinstance(error, OSError):
            return f"server unreachable ({error.strerror or error})"
        return f"{type(error).__name__}: {error}"

    def _api_version(self) -> str:
        """The newest vim API version both pyVmomi and the server know (GET /sdk/vimServiceVersions.xml)."""
        conn = http.client.HTTPSConnection(self.config.host, self.config.port, timeout=60,
                                           context=self.ssl_context)
        try:
            conn.request("GET", SOAP_PATH + "/vimServiceVersions.xml")
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        known = VmomiSupport.GetServiceVersions("vim25")
        if resp.status != 200:
            return known[0]
        root = ET.fromstring(body)
        offered = {v.text for ns in root.iter("namespace") if (ns.findtext("name") or "") == "urn:vim25"
                   for v in ns.iter("version")}
        for version in known:
            if VmomiSupport.versionIdMap.get(version) in offered:
                return version
        raise exc.ConnectionFailed(self.config.netloc, f"no common API version (server offers {sorted(offered)})")

    def connect(self) -> None:
        """Log in (once; later calls return at once).  ConnectionFailed on TLS, login or network failure."""
        if self._content is not None:
            return
        with self._lock:
            if self._content is not None:
                return
            started = time.monotonic()
            try:
                version = self._api_version()
                stub = _Stub(host=self.config.host, port=self.config.port, path=SOAP_PATH, version=version,
                             sslContext=self.ssl_context, httpConnectionTimeout=HTTP_TIMEOUT,
                             poolSize=20, on_request=self._count)
                si = vim.ServiceInstance("ServiceInstance", stub)
                content = si.RetrieveContent()
                content.sessionManager.Login(self.config.user, self.config.password, None)
            except exc.ConnectionFailed:
                raise
            except Exception as error:
                raise self._fail(self._describe(error)) from None
            self._stub, self._si, self._content = stub, si, content
            self._generation += 1
            LOG.debug("connected to %s as %s (API %s) in %.3f s", self.config.netloc, self.config.user,
                      version, time.monotonic() - started)

    def _relogin(self, generation: int) -> None:
        """Log in again on the same stub, unless another thread already did since ``generation``."""
        with self._lock:
            if self._generation != generation or self._content is None:
                return
            LOG.warning("vSphere session on %s is no longer authenticated; logging in again", self.config.netloc)
            try:
                self._content.sessionManager.Login(self.config.user, self.config.password, None)
            except Exception as error:
                raise self._fail(self._describe(error)) from None
            self._generation += 1
            with self._views_lock:
                self._views.clear()  # the old session's views are gone
            if self._pbm_stub is not None:  # PBM rides on the vim session: hand it the new one
                self._pbm_stub.cookie = self._stub.cookie if self._stub else ""
                self._pbm_stub.requestContext = {"vcSessionCookie": self._session_id()}

    @property
    def si(self) -> Any:
        self.connect()
        return self._si

    @property
    def content(self) -> Any:
        self.connect()
        return self._content

    @property
    def connected(self) -> bool:
        return self._content is not None

    # ------------------------------------------------------------------ calls
    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with up to ``api_retry_count`` retries (exponential backoff) on transient
        faults and one re-login on NotAuthenticated.  Other faults propagate unchanged; exhausted retries
        on connection errors raise ConnectionFailed."""
        self.connect()
        attempt = 0
        relogged = False
        while True:
            generation = self._generation
            try:
                return fn(*args, **kwargs)
            except NOT_AUTHENTICATED:
                if relogged:
                    raise
                relogged = True
                self._relogin(generation)
            except Exception as error:
                if not _is_transient(error):
                    raise
                attempt += 1
                what = getattr(fn, "__name__", None) or getattr(getattr(fn, "info", None), "name", "call")
                if attempt > self.config.api_retry_count:
                    if isinstance(error, vmodl.MethodFault):
                        raise
                    raise self._fail(f"{what}: {self._describe(error)} (gave up after {attempt} attempts)") from error
                delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                LOG.warning("transient error in %s (attempt %d of %d): %s; retrying in %.2f s", what, attempt,
                            self.config.api_retry_count + 1, self._scrub(self._describe(error)), delay)
                time.sleep(delay)

    def wait_for_task(self, task: Any, timeout: float | None = None) -> Any:
        """Poll ``task``: success → ``info.result``; error → TaskFailed (or a mapped subclass such as
        TaskNoDiskSpace); past ``timeout`` (default ``config.task_timeout``) → TaskTimeout after CancelTask."""
        return _tasks.wait_for_task(self, task, timeout)

    def run_task(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``call(fn, ...)`` (which returns a Task) then ``wait_for_task``."""
        task = self.call(fn, *args, **kwargs)
        return self.wait_for_task(task, timeout=timeout)

    # ------------------------------------------------------------------ properties
    def _view(self, container: Any, obj_types: Sequence[Any]) -> Any:
        key = (container._GetMoId(), ",".join(sorted(t._wsdlName for t in obj_types)))
        with self._views_lock:
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
                return view
        view = self.call(self.content.viewManager.CreateContainerView, container, list(obj_types), True)
        evicted = None
        with self._views_lock:
            if key in self._views:  # another thread made one meanwhile
                evicted, view = view, self._views[key]
            else:
                self._views[key] = view
                if len(self._views) > MAX_CACHED_VIEWS:
                    _, evicted = self._views.popitem(last=False)
        if evicted is not None:
            try:
                self.call(evicted.DestroyView)
            except Exception as error:
                LOG.debug("DestroyView failed: %s", error)
        return view

    def _drop_view(self, container: Any, obj_types: Sequence[Any]) -> None:
        key = (container._GetMoId(), ",".join(sorted(t._wsdlName for t in obj_types)))
        with self._views_lock:
            self._views.pop(key, None)

    def retrieve(self, obj_type: Any, properties: Sequence[str], *, container: Any = None,
                 objects: Iterable[Any] | None = None) -> list[ObjectContent]:
        """Properties of every ``obj_type`` below ``container`` (default rootFolder, recursive), or of the
        given ``objects``, in one RetrievePropertiesEx (+ continuation pages).  Container views are created
        once per (container, types) and reused, so repeated retrieves cost one round trip."""
        obj_type = type_of(obj_type)
        if objects is not None:
            objects = list(objects)
            if not objects:
                return []
            return retrieve_all(self.call, self.content.propertyCollector,
                                objects_filter_spec(objects, properties, obj_type))
        return self.retrieve_types({obj_type: properties}, container=container)

    def retrieve_types(self, wanted: dict[Any, Sequence[str]], *, container: Any = None) -> list[ObjectContent]:
        """Like ``retrieve`` for several types at once (one view, one RetrievePropertiesEx):
        ``{vim.HostSystem: ["name"], vim.ComputeResource: ["name", "resourcePool"]}``.  A type's
        properties apply to its subtypes too (ClusterComputeResource is a ComputeResource)."""
        wanted = {type_of(t): list(p) for t, p in wanted.items()}
        container = container if container is not None else self.content.rootFolder
        collector = self.content.propertyCollector
        types = list(wanted)
        for attempt in range(2):
            view = self._view(container, types)
            try:
                return retrieve_all(self.call, collector, view_filter_spec(view, wanted))
            except vmodl.fault.ManagedObjectNotFound:
                self._drop_view(container, types)  # view or container gone: make a fresh view once
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get_properties(self, obj: Any, properties: Sequence[str]) -> dict[str, Any]:
        """Properties of one object (missing ones absent).  NotFound when the object no longer exists."""
        try:
            found = retrieve_all(self.call, self.content.propertyCollector,
                                 objects_filter_spec([obj], properties, report_missing=False))
        except vmodl.fault.ManagedObjectNotFound as error:
            raise exc.NotFound(f"{type(obj).__name__} {obj._GetMoId()} not found") from error
        if found and any(isinstance(f, vmodl.fault.ManagedObjectNotFound) for f in found[0].missing.values()):
            raise exc.NotFound(f"{type(obj).__name__} {obj._GetMoId()} not found")
        return found[0].props if found else {}

    # ------------------------------------------------------------------ PBM, cookies
    def session_cookie(self) -> str:
        """``vmware_soap_session="..."`` for a ``Cookie`` header (datastore HTTP transfer)."""
        self.connect()
        raw = self._stub.cookie if self._stub else ""
        if not raw:
            return ""
        jar = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:
            return raw.split(";", 1)[0]
        return "; ".join(f"{m.key}={m.coded_value}" for m in jar.values())

    def _session_id(self) -> str:
        jar = SimpleCookie()
        jar.load(self._stub.cookie or "")
        morsel = jar.get("vmware_soap_session")
        return morsel.value if morsel else ""

    def pbm_content(self) -> Any:
        """PBM ServiceInstanceContent; the PBM stub shares the vim session (cookie)."""
        if self._pbm_content is not None:
            return self._pbm_content
        self.connect()
        with self._lock:
            if self._pbm_content is not None:
                return self._pbm_content
            last: BaseException | None = None
            for path in PBM_PATHS:
                stub = _Stub(host=self.config.host, port=self.config.port, path=path, version=PBM_VERSION,
                             sslContext=self.ssl_context, httpConnectionTimeout=HTTP_TIMEOUT,
                             requestContext={"vcSessionCookie": self._session_id()}, on_request=self._count)
                stub.cookie = self._stub.cookie
                try:
                    content = self.call(pbm.ServiceInstance("ServiceInstance", stub).RetrieveContent)
                except http.client.HTTPException as error:  # 404: not this path
                    last = error
                    continue
                self._pbm_stub, self._pbm_content = stub, content
                LOG.debug("PBM endpoint %s%s", self.config.netloc, path)
                return content
            raise exc.ConnectionFailed(self.config.netloc, f"no PBM endpoint ({last})")

    # ------------------------------------------------------------------ logout
    def logout(self) -> None:
        """Destroy our views, log out, drop connections.  Idempotent; ``connect()`` may follow."""
        with self._lock:
            stub, content = self._stub, self._content
            if content is None:
                return
            with self._views_lock:
                views = list(self._views.values())
                self._views.clear()
            for view in views:
                try:
                    view.DestroyView()
                except Exception:
                    pass
            try:
                content.sessionManager.Logout()
            except Exception as error:
                LOG.debug("logout from %s: %s", self.config.netloc, self._scrub(str(error)))
            for s in (stub, self._pbm_stub):
                if s is not None:
                    try:
                        s.DropConnections()
                    except Exception:
                        pass
            self._stub = self._si = self._content = None
            self._pbm_stub = self._pbm_content = None

    def __enter__(self) -> Session:
        self.connect()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.logout()
