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
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any, TypeVar

from pyVmomi import VmomiSupport, pbm, vim, vmodl

from .. import exceptions as exc
from . import budget as _budget
from . import tasks as _tasks
from .config import ConnectionConfig
from .property_reads import PropertyReads
from .session_store import SessionStore, same_user
from .system_cas import load_system_cas
from .task_watcher import TaskWatcher
from .transport import FATAL, NOT_SENT, UNKNOWN, Stub, classify, request_sent

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")

SOAP_PATH = "/sdk"
PBM_PATHS = ("/pbm/sdk", "/pbm")  # vCenter, then vcsim
PBM_VERSION = "pbm.version.version11"

T = TypeVar("T")
BACKOFF_BASE = 0.1
BACKOFF_MAX = 10.0
NOT_AUTHENTICATED = vim.fault.NotAuthenticated
# At the first login these mean a wrong server setting, not a passing fault: report at once.
_NO_SERVER = (ConnectionRefusedError, socket.gaierror)


def _name_of(fn: Any) -> str:
    """The vSphere method a bound pyVmomi method calls (``Rename_Task``), for log lines and errors."""
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            curry = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        info = (getattr(curry, "args", None) or (None,))[0]
        name = getattr(info, "wsdlName", None) or getattr(info, "name", None)
        if isinstance(name, str):
            return name
    return getattr(fn, "__name__", None) or "call"


class Session(PropertyReads):
    """One login, shared by every thread of the provider process.

    Calls go through ``read`` (idempotent: retried on any transport failure) or ``write`` (changes vSphere:
    retried only when vSphere provably never saw it, else ``OutcomeUnknown``). Both log in again when the
    server says the session ended: the cookie is dropped first, so Login opens a new session, and every
    session-bound object (container views, the PBM cookie) is rebuilt from the new one. Managed object
    references stay valid: they are bound to this session's stub, which lives as long as the Session.
    """

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config
        self._lock = threading.RLock()  # connect / relogin / logout
        self._count_lock = threading.Lock()
        self._round_trips = 0
        self._logins = 0
        self._resumed = 0
        self._watcher: TaskWatcher | None = None
        self._version_name: str | None = None  # the API version the stub speaks (saved with the session)
        self._stub: Stub | None = None
        self._si: Any = None
        self._content: Any = None
        self._generation = 0  # bumped at every (re)login
        self._pbm_stub: Stub | None = None
        self._pbm_content: Any = None
        self._views: OrderedDict[tuple[str, str], tuple[int, Any]] = OrderedDict()
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
                    if not self.config.ca_file:
                        load_system_cas(ctx)  # where this OpenSSL's own CA locations do not exist
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

    @property
    def logins(self) -> int:
        """Successful logins of this Session (the first one and every re-login)."""
        return self._logins

    @property
    def resumed(self) -> int:
        """Saved sessions this Session took over instead of logging in."""
        return self._resumed

    @property
    def generation(self) -> int:
        """Bumped at every (re)login: session-bound objects of an older generation are gone."""
        return self._generation

    def _scrub(self, text: str) -> str:
        pw = self.config.password
        return text.replace(pw, "***") if pw and len(pw) >= 4 else text

    def _fail(self, cause: str, refused: bool = False) -> exc.ConnectionFailed:
        return exc.ConnectionFailed(self.config.netloc, self._scrub(cause), refused=refused)

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
            return f"no answer within {self.config.api_timeout:g} s (api_timeout)"
        if isinstance(error, ConnectionResetError):
            return "connection reset by the server or a proxy"
        if isinstance(error, (http.client.IncompleteRead, http.client.BadStatusLine)):
            return "the answer was cut off"
        if isinstance(error, http.client.HTTPException):
            return f"the server answered HTTP {error}" if str(error)[:3].isdigit() else "a malformed HTTP answer"
        if isinstance(error, OSError):
            return f"server unreachable ({error.strerror or error})"
        return f"{type(error).__name__}: {error}"

    def _api_version(self) -> str:
        """The newest vim API version both pyVmomi and the server know (GET /sdk/vimServiceVersions.xml)."""
        conn = http.client.HTTPSConnection(self.config.host, self.config.port, timeout=self.config.api_timeout,
                                           context=self.ssl_context)
        try:
            conn.request("GET", SOAP_PATH + "/vimServiceVersions.xml")
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        known: list[str] = VmomiSupport.GetServiceVersions("vim25")
        if resp.status != 200:
            if resp.status == 503:
                raise http.client.HTTPException("503 Service Unavailable")
            return known[0]
        root = ET.fromstring(body)
        offered = {v.text for ns in root.iter("namespace") if (ns.findtext("name") or "") == "urn:vim25"
                   for v in ns.iter("version") if v.text is not None}
        for version in known:
            if VmomiSupport.versionIdMap.get(version) in offered:
                return version
        raise exc.ConnectionFailed(self.config.netloc, f"no common API version (server offers {sorted(offered)})")

    def _new_stub(self, path: str, version: str, **kwargs: Any) -> Stub:
        return Stub(host=self.config.host, port=self.config.port, path=path, version=version,
                    sslContext=self.ssl_context, httpConnectionTimeout=self.config.api_timeout,
                    on_request=self._count, **kwargs)

    def _login(self, content: Any) -> None:
        content.sessionManager.Login(self.config.user, self.config.password, None)
        self._logins += 1

    def connect(self) -> None:
        """Log in (once; later calls return at once).  ConnectionFailed on TLS, login or network failure;
        transport failures are retried like any read."""
        if self._content is not None:
            return
        with self._lock:
            if self._content is not None:
                return
            started = time.monotonic()
            store = self._store()
            saved = [store.load()] if store is not None else [None]

            def attempt() -> tuple[Stub, Any, Any]:
                resumable = saved[0]
                version = (resumable.api_version if resumable is not None else None) or self._api_version()
                stub = self._new_stub(SOAP_PATH, version, poolSize=20)
                self._version_name = version
                si = vim.ServiceInstance("ServiceInstance", stub)
                content = si.RetrieveContent()
                if resumable is not None and store is not None:
                    saved[0] = None  # tried once: a retry logs in
                    if self._resume(stub, content, resumable.cookie, store):
                        return stub, si, content
                    stub.forget_session()
                self._login(content)  # a lost answer only leaves an unused session behind
                if store is not None:
                    store.save(stub.cookie, version)
                return stub, si, content

            try:
                stub, si, content = self._retry(attempt, what="Login", idempotent=True, relogin=False,
                                                fail_fast=_NO_SERVER)
            except exc.VMwareDriverError:
                raise
            except Exception as error:  # noqa: BLE001 - any other failure is a ConnectionFailed
                refused = isinstance(error, (vim.fault.InvalidLogin, ssl.SSLCertVerificationError))
                raise self._fail(self._describe(error), refused) from None
            self._stub, self._si, self._content = stub, si, content
            self._generation += 1
            LOG.debug("connected to %s as %s (API %s) in %.3f s", self.config.netloc, self.config.user,
                      stub.versionId, time.monotonic() - started)

    def _store(self) -> SessionStore | None:
        if not self.config.persist_session:
            return None
        return SessionStore(self.config.session_path, self.config.netloc, self.config.user)

    def _resume(self, stub: Stub, content: Any, cookie: str, store: SessionStore) -> bool:
        """Whether the saved session (its cookie) is still logged in *as the configured user*: one property
        read. Transport failures propagate (the attempt is retried); any vSphere answer but a live session of
        this user means no.

        The file only says whose session it holds; the server says whose it is (``currentSession.userName``).
        A session of another user is forgotten, not logged out: it may be in use elsewhere, and ending it is
        not ours to decide; the caller logs in afresh and saves that session in its place."""
        stub.cookie = cookie
        try:
            current = content.sessionManager.currentSession
        except (vim.fault.NotAuthenticated, vmodl.fault.SecurityError, vmodl.MethodFault):
            return False
        if current is None:
            return False
        owner = getattr(current, "userName", None)
        if not isinstance(owner, str) or not same_user(owner, self.config.user):
            LOG.warning("the saved vSphere session on %s belongs to %r, not to user %r; it is not used (a new "
                        "login replaces it)", self.config.netloc, owner, self.config.user)
            store.forget()
            return False
        self._resumed += 1
        LOG.debug("resumed the saved vSphere session on %s", self.config.netloc)
        return True

    def _relogin(self, generation: int) -> None:
        """Open a new session on the same stub, unless another thread already did since ``generation``."""
        with self._lock:
            if self._generation != generation or self._content is None or self._stub is None:
                return
            LOG.warning("vSphere session on %s is no longer authenticated; logging in again", self.config.netloc)
            stub, content = self._stub, self._content

            def login() -> None:
                stub.forget_session()  # Login on a live session is refused: start a new one
                self._login(content)

            try:
                self._retry(login, what="Login", idempotent=True, relogin=False)
            except exc.VMwareDriverError:
                raise
            except Exception as error:  # noqa: BLE001 - any other failure is a ConnectionFailed
                raise self._fail(self._describe(error)) from None
            self._generation += 1
            store = self._store()
            if store is not None:
                store.save(stub.cookie, self._version_name)
            with self._views_lock:
                self._views.clear()  # the old session's views are gone
            if self._pbm_stub is not None:  # PBM rides on the vim session: hand it the new one
                self._pbm_stub.cookie = stub.cookie
                self._pbm_stub.requestContext = {"vcSessionCookie": self._session_id()}

    def renew_login(self, generation: int) -> None:
        """A new login when the session of ``generation`` has ended (an HTTP transfer saw 401/403)."""
        self._relogin(generation)

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

    @property
    def is_host_agent(self) -> bool:
        """The server is a standalone ESXi host, not a vCenter: ``about.apiType`` says so (a property of the
        API — "HostAgent" or "VirtualCenter" — not a guess from names)."""
        about = getattr(self.content, "about", None)
        return getattr(about, "apiType", None) == "HostAgent"

    # ------------------------------------------------------------------ calls
    def _retry(self, thunk: Callable[[], T], *, what: str, idempotent: bool, relogin: bool = True,
               fail_fast: tuple[type[BaseException], ...] = ()) -> T:
        """Run ``thunk`` (raw pyVmomi calls) with the retry and re-login policy of its kind.

        NotAuthenticated: the server refused the call, so after a new login it is sent again. Transport
        failures: NOT_SENT is sent again; UNKNOWN is sent again only when ``idempotent``, else it becomes
        OutcomeUnknown. Backoff sleeps honour the thread's budget (timeouts block, StopProvider)."""
        budget = _budget.current()
        attempt = 0
        while True:
            budget.check()
            generation = self._generation
            try:
                return thunk()
            except NOT_AUTHENTICATED:
                if not relogin or attempt >= self.config.api_retry_count:
                    raise
                attempt += 1
                self._relogin(generation)
                continue
            except Exception as error:
                kind = classify(error, request_sent())
                if kind == FATAL or isinstance(error, fail_fast):
                    raise
                if kind == UNKNOWN and not idempotent:
                    LOG.warning("no answer to %s (%s); its outcome is unknown", what, self._describe(error))
                    raise exc.OutcomeUnknown(f"{what}: {self._scrub(self._describe(error))}") from None
                attempt += 1
                if attempt > self.config.api_retry_count:
                    if isinstance(error, vmodl.MethodFault):
                        raise
                    raise self._fail(f"{what}: {self._describe(error)} (gave up after {attempt} attempts)") from None
                delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                LOG.warning("transient error in %s (attempt %d of %d, %s): %s; retrying in %.2f s", what, attempt,
                            self.config.api_retry_count + 1, "not sent" if kind == NOT_SENT else "outcome unknown",
                            self._scrub(self._describe(error)), delay)
                budget.sleep(delay)

    def read(self, thunk: Callable[[], T], what: str = "read") -> T:
        """An idempotent request (or several, as one unit): retried on any transport failure and re-login."""
        self.connect()
        return self._retry(thunk, what=what, idempotent=True)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` as a read (``read``).  Only for calls that change nothing, or that are
        safe to repeat (absolute settings); changes that must not happen twice go through ``write``."""
        self.connect()
        return self._retry(lambda: fn(*args, **kwargs), what=_name_of(fn), idempotent=True)

    def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` that changes vSphere: sent again only when vSphere provably never saw it
        (or refused it for an ended session); a lost answer raises OutcomeUnknown."""
        self.connect()
        return self._retry(lambda: fn(*args, **kwargs), what=_name_of(fn), idempotent=False)

    def send(self, thunk: Callable[[], T], *, what: str, idempotent: bool) -> T:
        """Run ``thunk`` (raw pyVmomi calls) under the read (``idempotent``) or write policy."""
        self.connect()
        return self._retry(thunk, what=what, idempotent=idempotent)

    def wait_for_task(self, task: Any, timeout: float | None = None) -> Any:
        """Poll ``task``: success → ``info.result``; error → TaskFailed (or a mapped subclass such as
        TaskNoDiskSpace); past ``timeout`` (default ``config.task_timeout``) → TaskTimeout after CancelTask;
        cancelled or out of budget → Cancelled / OperationTimedOut after CancelTask."""
        return _tasks.wait_for_task(self, task, timeout)

    def run_task(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None, idempotent: bool = False,
                 **kwargs: Any) -> Any:
        """Start a task and wait for it.  ``idempotent`` (a task that sets absolute values, or deletes): a
        lost answer sends it again; otherwise OutcomeUnknown, for the caller to reconcile."""
        self.connect()
        task = self._retry(lambda: fn(*args, **kwargs), what=_name_of(fn), idempotent=idempotent)
        _budget.current().note_task(task)
        return self.wait_for_task(task, timeout=timeout)

    # ------------------------------------------------------------------ PBM, cookies
    def session_cookie(self) -> str:
        """``vmware_soap_session="..."`` for a ``Cookie`` header (datastore HTTP transfer)."""
        self.connect()
        raw = self._stub.cookie if self._stub else ""
        if not raw:
            return ""
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:  # noqa: BLE001 - a cookie we cannot parse is passed on as is
            return raw.split(";", 1)[0]
        return "; ".join(f"{m.key}={m.coded_value}" for m in jar.values())

    def _session_id(self) -> str:
        jar: SimpleCookie = SimpleCookie()
        jar.load((self._stub.cookie if self._stub else "") or "")
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
                stub = self._new_stub(path, PBM_VERSION, requestContext={"vcSessionCookie": self._session_id()})
                stub.cookie = self._stub.cookie if self._stub else ""
                try:
                    content = self.call(pbm.ServiceInstance("ServiceInstance", stub).RetrieveContent)
                except http.client.HTTPException as error:  # 404: not this path
                    last = error
                    continue
                self._pbm_stub, self._pbm_content = stub, content
                LOG.debug("PBM endpoint %s%s", self.config.netloc, path)
                return content
            raise exc.ConnectionFailed(self.config.netloc, f"no PBM endpoint ({last})")

    @property
    def task_watcher(self) -> TaskWatcher:
        """The process's one watcher of tasks in flight (WaitForUpdatesEx), made on first use."""
        watcher = self._watcher
        if watcher is None:
            with self._lock:
                if self._watcher is None:
                    self._watcher = TaskWatcher(self)
                watcher = self._watcher
        return watcher

    # ------------------------------------------------------------------ logout
    def logout(self) -> None:
        """Destroy our views, log out, drop connections.  Idempotent; ``connect()`` may follow."""
        with self._lock:
            stub, content = self._stub, self._content
            if content is None:
                return
            watcher, self._watcher = self._watcher, None
            if watcher is not None:
                watcher.close()
            with self._views_lock:
                views = [view for generation, view in self._views.values() if generation == self._generation]
                self._views.clear()
            for view in views:
                try:
                    view.DestroyView()
                except Exception:  # noqa: BLE001, S110 - the session is going away anyway
                    pass
            if not self.config.persist_session:  # a saved session stays logged in for the next process
                try:
                    content.sessionManager.Logout()
                except Exception as error:  # noqa: BLE001
                    LOG.debug("logout from %s: %s", self.config.netloc, self._scrub(str(error)))
            for s in (stub, self._pbm_stub):
                if s is not None:
                    try:
                        s.DropConnections()
                    except Exception:  # noqa: BLE001, S110
                        pass
            self._stub = self._si = self._content = None
            self._pbm_stub = self._pbm_content = None

    def __enter__(self) -> Session:
        self.connect()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.logout()
