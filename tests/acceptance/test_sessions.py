"""One vSphere login per Terraform command, and across commands (persist_session), through real Terraform.

Logins are counted where they happen: at the server, by the proxy in front of vcsim (every request of
every provider process Terraform starts).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from terraform_provider_vmdk.vsphere.session_store import SessionStore

from .conftest import run, write_config

pytestmark = pytest.mark.acceptance


def config(provider: str, sessions: Path | None, persist: bool = True) -> str:
    extra = f'  session_path = "{sessions}"\n' if sessions is not None else ""
    extra += "" if persist else "  persist_session = false\n"
    block = provider.rstrip().rstrip("}") + extra + "}\n"
    return block + "".join(f'resource "vmdk_volume" "v{i}" {{\n  name = "s{i}"\n  size_gb = 1\n}}\n' for i in range(3))


@pytest.fixture
def proxied(vsphere_provider_block, vcsim, fault_proxy) -> str:
    return vsphere_provider_block.replace(vcsim.server, fault_proxy.server)


def logins(proxy) -> int:
    return proxy.requests.get("Login", 0)


def store_of(sessions: Path, proxy, vcsim) -> SessionStore:
    from terraform_provider_vmdk.vsphere.config import ConnectionConfig

    netloc = ConnectionConfig(server=proxy.server, user=vcsim.user, password="x").netloc
    return SessionStore(sessions, netloc, vcsim.user)


def test_one_login_per_command_and_none_after(make_tf, proxied, fault_proxy, vcsim, tmp_path, scan_backings) -> None:
    before = set(scan_backings())
    sessions = tmp_path / "sessions"
    tf = make_tf(config(proxied, sessions))
    fault_proxy.reset_records()
    tf.apply()  # several provider launches, one login
    assert logins(fault_proxy) == 1
    store = store_of(sessions, fault_proxy, vcsim)
    assert stat.S_IMODE(sessions.stat().st_mode) == 0o700 and stat.S_IMODE(store.path.stat().st_mode) == 0o600
    text = store.path.read_text()
    assert vcsim.password not in text and json.loads(text)["cookie"]
    assert not list(Path(tf.tfdir).glob("*session*"))  # never in the working directory
    fault_proxy.reset_records()
    assert "No changes" in run(tf, "plan").stdout
    assert logins(fault_proxy) == 0 and fault_proxy.requests.get("Logout", 0) == 0, fault_proxy.requests  # resumed

    # the saved session ended on the server (expired, or terminated by an admin): one new login replaces it
    from http.cookies import SimpleCookie

    from terraform_provider_vmdk.vsphere.session import Session

    cookie = json.loads(store.path.read_text())["cookie"]
    jar: SimpleCookie = SimpleCookie()
    jar.load(cookie)
    with Session(vcsim.connection_config()) as admin:  # vcsim's session key is the cookie's value
        admin.content.sessionManager.TerminateSession([jar["vmware_soap_session"].value])
    fault_proxy.reset_records()
    assert "No changes" in run(tf, "plan").stdout
    assert logins(fault_proxy) == 1
    assert json.loads(store.path.read_text())["cookie"] != cookie

    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def test_an_untrusted_or_foreign_session_file_is_replaced(make_tf, proxied, fault_proxy, vcsim, tmp_path) -> None:
    sessions = tmp_path / "sessions"
    tf = make_tf(config(proxied, sessions) + 'data "vmdk_datastores" "all" {}\n')  # a plan that reads vSphere
    store = store_of(sessions, fault_proxy, vcsim)
    sessions.mkdir(mode=0o700)
    for content, mode in (
            ({"format": "vmdk-session-1", "server": "elsewhere:443", "user": vcsim.user,
              "cookie": 'vmware_soap_session="forged"'}, 0o600),  # another server's
            ({"format": "vmdk-session-1", "server": store.netloc, "user": vcsim.user,
              "cookie": 'vmware_soap_session="forged"'}, 0o644),  # readable by others: not trusted
            ("not json", 0o600)):
        store.path.write_text(content if isinstance(content, str) else json.dumps(content))
        os.chmod(store.path, mode)
        fault_proxy.reset_records()
        result = run(tf, "plan")
        assert result.returncode == 0, result.stderr
        assert logins(fault_proxy) == 1
        saved = json.loads(store.path.read_text())
        assert saved["server"] == store.netloc and "forged" not in saved["cookie"]
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600

    # a directory others can read is not used at all: every launch logs in, nothing is written
    os.chmod(sessions, 0o755)
    store.path.unlink()
    fault_proxy.reset_records()
    assert run(tf, "plan").returncode == 0
    assert logins(fault_proxy) >= 1 and not store.path.exists()


def test_persist_session_false_logs_in_and_out_and_saves_nothing(make_tf, proxied, fault_proxy, tmp_path) -> None:
    sessions = tmp_path / "sessions"
    tf = make_tf(config(proxied, sessions, persist=False) + 'data "vmdk_datastores" "all" {}\n')
    fault_proxy.reset_records()
    assert run(tf, "plan").returncode == 0
    assert logins(fault_proxy) >= 1 and fault_proxy.requests.get("Logout", 0) == logins(fault_proxy)
    assert not sessions.exists()


def test_a_refused_login_is_tried_once_per_process_not_once_per_volume(make_tf, proxied, fault_proxy, vcsim,
                                                                       tmp_path) -> None:
    """A wrong password fails once per provider process: vCenter locks an account after a few failed logins,
    and a plan of many volumes must not be what locks it."""
    sessions = tmp_path / "sessions"
    good = config(proxied, sessions, persist=False)
    tf = make_tf(good)
    tf.apply()
    try:
        write_config(Path(tf.tfdir), good.replace(f'"{vcsim.password}"', '"not-the-password"'))
        fault_proxy.reset_records()
        result = run(tf, "plan", "-parallelism=10")
        assert result.returncode == 1
        assert "incorrect user name or password" in result.stderr and "not-the-password" not in result.stderr
        assert logins(fault_proxy) == 1, fault_proxy.requests  # one plan process, three volumes
    finally:
        write_config(Path(tf.tfdir), good)
        tf.destroy(auto_approve=True)
