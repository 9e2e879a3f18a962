"""The saved-session store (vsphere/connection/session_store.py): one private file per (server, user), and the user
comparison a resumed session must pass (``same_user``: what the server says against what is configured)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from terraform_provider_vmdk.vsphere.connection.session_store import SessionStore, same_user


@pytest.mark.parametrize("server_says,configured", [
    ("vmdk", "vmdk"),
    ("VMDK", "vmdk"),
    ("VSPHERE.LOCAL\\Administrator", "administrator@vsphere.local"),
    ("administrator@VSPHERE.LOCAL", "VSPHERE.LOCAL\\administrator"),
    ("VSPHERE.LOCAL\\Administrator", "Administrator"),  # no domain configured: the server's default domain
    ("root", "root"),  # ESXi names no domain
    ("root", "root@localos"),
])
def test_same_user(server_says, configured):
    assert same_user(server_says, configured)


@pytest.mark.parametrize("server_says,configured", [
    ("alice", "vmdk"),
    ("VSPHERE.LOCAL\\alice", "administrator@vsphere.local"),
    ("CORP\\administrator", "administrator@vsphere.local"),  # same name, another domain
    ("administrator@corp.example.com", "VSPHERE.LOCAL\\Administrator"),
    ("vmdk-admin", "vmdk"),
    ("", "vmdk"),
    ("VSPHERE.LOCAL\\", "vmdk"),
])
def test_not_the_same_user(server_says, configured):
    assert not same_user(server_says, configured)


def test_one_private_file_per_server_and_user(tmp_path):
    directory = tmp_path / "cache" / "sessions"
    a = SessionStore(directory, "vc.example.com:443", "alice")
    b = SessionStore(directory, "vc.example.com:443", "bob")
    c = SessionStore(directory, "vc2.example.com:443", "alice")
    assert len({a.path, b.path, c.path}) == 3
    assert SessionStore(directory, "VC.example.com:443", "alice").path == a.path  # host names are case-blind
    old = os.umask(0o022)
    try:
        a.save('vmware_soap_session="a"', "vim.version.v7_0")
    finally:
        os.umask(old)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700 and stat.S_IMODE(a.path.stat().st_mode) == 0o600
    assert a.load() is not None and a.load().cookie == 'vmware_soap_session="a"'
    assert b.load() is None and c.load() is None
    # a file that names another user under this user's name is not used (and is replaced)
    b.path.write_text(json.dumps({**json.loads(a.path.read_text()), "user": "alice"}))
    b.path.chmod(0o600)
    assert b.load() is None and not b.path.exists()


def test_a_directory_others_can_read_is_not_read_from(tmp_path):
    """A saved session is trusted only from a directory private to this user, when saving and loading."""
    directory = tmp_path / "sessions"
    store = SessionStore(directory, "vc.example.com:443", "alice")
    store.save('vmware_soap_session="a"', None)
    assert store.load() is not None
    directory.chmod(0o755)
    assert store.load() is None
    directory.chmod(0o700)
    assert store.load() is not None


def test_load_never_creates_the_directory(tmp_path):
    store = SessionStore(tmp_path / "nowhere" / "sessions", "vc.example.com:443", "alice")
    assert store.load() is None and not (tmp_path / "nowhere").exists()
