"""The provider's handle on vSphere: settings now, a session at the first call that needs one.

Terraform starts the provider several times per command and many configurations (validate, data
sources that list constants) need no vCenter at all, so nothing connects — or imports pyvmomi — until
a resource asks. A failed connection then becomes a diagnostic that points at the provider settings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..framework.diagnostics import DiagnosticError
from ..vsphere.config import ConnectionConfig

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.session import Session

__all__ = ["ProviderSettings", "VSphereClient"]


@dataclass(frozen=True)
class ProviderSettings:
    connection: ConnectionConfig
    datacenter: str | None = None
    cluster_names: tuple[str, ...] = ()
    volume_folder: str = "Volumes"
    datastore_regex: str | None = None
    snapshot_format: str = "template"


@dataclass
class VSphereClient:
    settings: ProviderSettings
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _session: "Session | None" = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def session(self) -> "Session":
        """The shared, connected session; connection problems become a provider-configuration error."""
        with self._lock:
            if self._session is None:
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
            return self._session

    def cached(self, key: str, factory: Any) -> Any:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = factory()
            return self._cache[key]

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                try:
                    self._session.logout()
                finally:
                    self._session = None
