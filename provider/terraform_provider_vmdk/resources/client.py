"""The provider's handle on vSphere: settings now, a session at the first call that needs one.

Terraform starts the provider several times per command, and most launches (schema, validate) are never
configured: nothing connects or imports pyvmomi there. A configured provider starts connecting in the
background at once (``connect_in_background``), and the first request that needs vSphere waits for it;
a failed connection becomes that request's diagnostic, pointing at the provider settings. A refused
login is remembered for the process, so it is tried once, not once per resource.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..framework.diagnostics import DiagnosticError
from ..vsphere.connection.config import ConnectionConfig

LOG = logging.getLogger(__name__)
CLOSE_WAIT = 0.5  # seconds close() waits for a background connect to finish (then logs it out)

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.connection.once import Once
    from ..vsphere.connection.session import Session

__all__ = ["ProviderSettings", "VSphereClient"]

T = TypeVar("T")


# Cinder's datastore types (DatastoreSummary.type, compared case-insensitively).
DEFAULT_DATASTORE_TYPES: tuple[str, ...] = ("vmfs", "nfs", "nfs41", "vsan", "vvol")


@dataclass(frozen=True)
class ProviderSettings:
    connection: ConnectionConfig
    datacenter: str | None = None
    cluster_names: tuple[str, ...] = ()
    volume_folder: str = "Volumes"
    volume_folder_set: bool = False  # set in the configuration (a standalone host has no folders: warned)
    datastore_regex: str | None = None
    snapshot_format: str = "template"
    datastore_types: tuple[str, ...] = DEFAULT_DATASTORE_TYPES
    datastore_cluster: str | None = None  # default datastore cluster of new volumes
    datastore_cluster_mode: str = "sdrs"


def _cannot_connect(reason: str) -> DiagnosticError:
    return DiagnosticError(
        "Cannot connect to vSphere",
        f"{reason}\n\nCheck the provider settings vsphere_server, user, password, ca_file and "
        "allow_unverified_ssl (or VSPHERE_SERVER, VSPHERE_USER, VSPHERE_PASSWORD, VSPHERE_CA_FILE, "
        "VSPHERE_ALLOW_UNVERIFIED_SSL).",
        "vsphere_server",
    )


@dataclass
class VSphereClient:
    """Settings, the session (connected at first use) and per-process values built once (``cached``).

    Nothing here holds a lock while it connects or builds: each value is computed by one thread while the
    others wait for it (``Once``), so a factory may itself ask for the session or another cached value."""

    settings: ProviderSettings
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # guards the dicts only
    _session: Any = field(default=None, repr=False)
    _onces: dict[str, Once[Any]] = field(default_factory=dict, repr=False)  # a key's value type is its callers'
    _refusal: str | None = field(default=None, repr=False)  # why the server refused to connect, for good
    _connecting: threading.Thread | None = field(default=None, repr=False)

    def _once(self, key: str, factory: Callable[[], T]) -> Once[T]:
        from ..vsphere.connection.once import Once

        with self._lock:
            once = self._onces.get(key)
            if once is None:
                once = self._onces[key] = Once(factory)
        return once

    def session(self) -> Session:
        """The shared, connected session; connection problems become a provider-configuration error."""
        session: Session = self._once("\0session", self._connect).get()
        return session

    def connect_in_background(self) -> None:
        """Start connecting now (import pyVmomi, resume or log in) while Terraform is still busy with other
        calls: the first request that needs vSphere finds the session ready or on its way. A failure here
        is reported by that first request (a refused login is remembered: it costs no second attempt)."""

        def connect() -> None:
            try:
                self.session()
            except Exception as error:  # noqa: BLE001 - reported where the session is needed
                LOG.debug("connecting ahead failed (the first request that needs vSphere reports it): %s", error)

        self._connecting = threading.Thread(target=connect, name="vmdk-connect", daemon=True)
        self._connecting.start()

    def _connect(self) -> Session:
        from ..vsphere.connection.session import Session
        from ..vsphere.exceptions import ConnectionFailed

        if self._refusal is not None:  # one refused login per process, not one per resource
            raise _cannot_connect(self._refusal)
        session = Session(self.settings.connection)
        try:
            session.connect()
        except ConnectionFailed as exc:
            if exc.refused:
                self._refusal = str(exc)
            raise _cannot_connect(str(exc)) from None
        self._session = session
        return session

    def cached(self, key: str, factory: Callable[[], T]) -> T:
        """``factory()`` once per process and key (a failure is retried by the next caller)."""
        return self._once(key, factory).get()

    def close(self) -> None:
        if self._connecting is not None:  # a login still under way must not outlive us unlogged-out
            self._connecting.join(CLOSE_WAIT)
        session, self._session = self._session, None
        if session is not None:
            session.logout()
