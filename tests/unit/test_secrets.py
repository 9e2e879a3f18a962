"""Redaction never mangles a message, whatever the password's length, and holds only today's secrets."""

from __future__ import annotations

import socket

import pytest

from terraform_provider_vmdk.framework import secrets
from terraform_provider_vmdk.framework.diagnostics import DiagnosticError
from terraform_provider_vmdk.framework.msgpack_codec import encode
from terraform_provider_vmdk.framework.server import FrameworkServer
from terraform_provider_vmdk.plugin.convert import diagnostics_to_proto
from terraform_provider_vmdk.resources.provider import VmdkProvider

MESSAGE = ("Cannot connect to vSphere server vc.example.com:443: login failed. Check the provider settings "
           "vsphere_server, user, password, ca_file and allow_unverified_ssl")


@pytest.fixture(autouse=True)
def clean_registry():
    yield
    secrets.set_secrets([])


@pytest.mark.parametrize("password", ["p", "pw1", "s"])
def test_a_short_password_never_mangles_a_message_but_is_hidden_where_it_stands_whole(password: str) -> None:
    secrets.set_secrets([password])
    assert secrets.redact(MESSAGE) == MESSAGE
    assert secrets.redact(f"GET https://admin:{password}@vc.example.com/sdk") == "GET https://admin:***@vc.example.com/sdk"
    assert secrets.redact(f'password = "{password}"') == 'password = "***"'
    assert secrets.redact(f"password: {password}") == "password: ***"
    assert secrets.redact(f"Authorization: Basic {password}") == "Authorization: Basic ***"


def test_a_long_password_is_hidden_everywhere() -> None:
    secrets.set_secrets(["Sup3r-Secr3t-Passw0rd"])
    text = secrets.redact("login with Sup3r-Secr3t-Passw0rd failed; token=xSup3r-Secr3t-Passw0rdx")
    assert "Sup3r" not in text and text.count("***") == 2


def test_the_registry_holds_only_the_configuration_in_force() -> None:
    secrets.set_secrets(["first-password"])
    secrets.set_secrets(["second-password"])
    assert secrets.redact("first-password second-password") == "first-password ***"
    secrets.register_secret("third-password")
    assert secrets.redact("second-password third-password") == "*** ***"


@pytest.mark.parametrize("password", ["p", "abc", "a-long-passw0rd-for-vsphere"])
def test_the_provider_sets_its_password_and_diagnostics_stay_readable(password: str) -> None:
    """ConfigureProvider with the password, then a connection failure: the diagnostic Terraform shows reads
    as written, and the password is not in it."""
    fw = FrameworkServer(VmdkProvider())
    schema = fw.schema_of("provider").object_type()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = dict.fromkeys(schema.attributes)
    config.update(vsphere_server=f"127.0.0.1:{port}", user="admin", password=password, api_retry_count=0)
    assert not fw.configure_provider(encode(config, schema)).diagnostics.has_errors
    data = fw.data_sources["vmdk_datastores"]
    dschema = fw.schema_of("data", "vmdk_datastores").object_type()
    with pytest.raises(DiagnosticError) as failed:  # the servicer turns it into the RPC's diagnostics
        fw.read_data_source("vmdk_datastores", encode(dict.fromkeys(dschema.attributes), dschema))
    assert data is not None and failed.value.diagnostics.has_errors
    shown = diagnostics_to_proto(failed.value.diagnostics)
    text = " ".join(d.summary + " " + d.detail for d in shown)
    assert "Cannot connect to vSphere" in text and "provider settings" in text and "vsphere_server" in text
    if len(password) >= secrets.MIN_SUBSTRING:
        assert password not in text
    assert "***" not in text or len(password) >= secrets.MIN_SUBSTRING
