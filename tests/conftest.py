"""Shared fixtures.

``vcsim``: one simulator per test session (tests/vcsim), started on first use only, so a run of unit
tests alone never builds or starts it.  With ``VMDK_TEST_VSPHERE_URL=https://user:password@host:port``
(and optionally ``VMDK_TEST_VSPHERE_CA_FILE``, ``VMDK_TEST_VSPHERE_DATACENTER``,
``VMDK_TEST_VSPHERE_INSECURE=1``) the tests use that endpoint instead and start nothing.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for ``tests.vcsim.harness``


@dataclass
class ExternalVsphere:
    """An endpoint given by VMDK_TEST_VSPHERE_URL; same attributes as harness.Vcsim, stop() does nothing."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    ca_file: str | None = None
    datacenter: str | None = None
    insecure: bool = False

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.server}/sdk"

    def connection_config(self, **overrides):
        from terraform_provider_vmdk.vsphere.connection.config import ConnectionConfig

        kw = {"server": self.server, "user": self.user, "password": self.password, "ca_file": self.ca_file,
              "allow_unverified_ssl": self.insecure}
        kw.update(overrides)
        return ConnectionConfig(**kw)

    def stop(self) -> None:
        pass

    @classmethod
    def from_env(cls) -> ExternalVsphere | None:
        raw = os.environ.get("VMDK_TEST_VSPHERE_URL")
        if not raw:
            return None
        u = urllib.parse.urlsplit(raw)
        if not (u.hostname and u.username and u.password is not None):
            raise pytest.UsageError("VMDK_TEST_VSPHERE_URL must look like https://user:password@host:port")
        return cls(host=u.hostname, port=u.port or 443, user=urllib.parse.unquote(u.username),
                   password=urllib.parse.unquote(u.password),
                   ca_file=os.environ.get("VMDK_TEST_VSPHERE_CA_FILE") or None,
                   datacenter=os.environ.get("VMDK_TEST_VSPHERE_DATACENTER") or None,
                   insecure=os.environ.get("VMDK_TEST_VSPHERE_INSECURE", "") in ("1", "true", "yes"))


@pytest.fixture(scope="session")
def vcsim():
    """The vSphere endpoint of this test session: our vcsim (HTTPS, own CA) or VMDK_TEST_VSPHERE_URL."""
    external = ExternalVsphere.from_env()
    if external is not None:
        yield external
        return
    from tests.vcsim.harness import start_vcsim

    sim = start_vcsim()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def is_vcsim(vcsim) -> bool:
    return not isinstance(vcsim, ExternalVsphere)


@pytest.fixture(scope="session")
def vsphere_config(vcsim):
    return vcsim.connection_config()


@pytest.fixture(scope="session")
def vsphere_session(vsphere_config):
    """A connected Session shared by the test session (reconnects lazily if a test logs it out)."""
    from terraform_provider_vmdk.vsphere.connection.session import Session

    session = Session(vsphere_config)
    session.connect()
    try:
        yield session
    finally:
        session.logout()


@pytest.fixture
def fault_proxy(vcsim, is_vcsim):
    """A fault-injecting TLS proxy in front of the test vCenter (tests/faultproxy.py), fresh per test."""
    if not is_vcsim:
        pytest.skip("the fault proxy fronts our vcsim (it presents its certificate)")
    from tests.faultproxy import FaultProxy

    with FaultProxy(vcsim) as proxy:
        yield proxy
