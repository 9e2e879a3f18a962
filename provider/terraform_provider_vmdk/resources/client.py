"""The provider's handle on vSphere: settings now, a session at the first call that needs one.

Terraform starts the provider several times per command and many configurations (validate, data
sources that list constants) need no vCenter at all, so nothing connects — or imports pyvmomi — until
a resource asks. A failed connection then becomes a diagnostic that points at the provider settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..framework.diagnostics import DiagnosticError
from ..vsphere.config import ConnectionConfig

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.once import Once
    from ..vsphere.session import Session

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
    datastore_regex: str | None = None
    snapshot_format: str = "template"
    datastore_types: tuple[str, ...] = DEFAULT_DATASTORE_TYPES


@dataclass
class VSphereClient:
    """Settings, the session (connected at first use) and per-process values built once (``cached``).

    Nothing here holds a lock while it connects or builds: each value is computed by one thread while the
    others wait for it (``Once``), so a factory may itself ask for the session or another cached value."""

    settings: ProviderSettings
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # guards the dicts only
    _session: Any = field(default=None, repr=False)
    _onces: dict[str, Once[Any]] = field(default_factory=dict, repr=False)  # a key's value type is its callers'

    def _once(self, key: str, factory: Callable[[], T]) -> Once[T]:
        from ..vsphere.once import Once

        with self._lock:
            once = self._onces.get(key)
            if once is None:
                once = self._onces[key] = Once(factory)
        return once

    def session(self) -> Session:
        """The shared, connected session; connection problems become a provider-configuration error."""
        session: Session = self._once("\0session", self._connect).get()
        return session

    def _connect(self) -> Session:
        from ..vsphere.exceptions import ConnectionFailed
        from ..vsphere.session import Session

        session = Session(self.settings.connection)
        try:
            session.connect()
        except ConnectionFailed as exc:
            raise DiagnosticError(
                "Cannot connect to vSphere",
                f"{exc}\n\nCheck the provider settings vsphere_server, user, password, ca_file and "
                "allow_unverified_ssl (or VSPHERE_SERVER, VSPHERE_USER, VSPHERE_PASSWORD, VSPHERE_CA_FILE, "
                "VSPHERE_ALLOW_UNVERIFIED_SSL).",
                "vsphere_server",
            ) from None
        self._session = session
        return session

    def cached(self, key: str, factory: Callable[[], T]) -> T:
        """``factory()`` once per process and key (a failure is retried by the next caller)."""
        return self._once(key, factory).get()

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.logout()
