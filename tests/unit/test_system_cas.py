"""The system CAs are found where the OpenSSL in use does not know where they are (the packaged provider on
another distribution than the one that built it), and left to OpenSSL where its own locations exist."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from terraform_provider_vmdk.vsphere.connection import system_cas


class _Ctx:
    def __init__(self) -> None:
        self.loaded: list[dict[str, str]] = []

    def load_verify_locations(self, **kw: str) -> None:
        self.loaded.append(kw)


def _defaults(cafile: str | None, capath: str | None) -> ssl.DefaultVerifyPaths:
    return ssl.DefaultVerifyPaths(cafile, capath, "SSL_CERT_FILE", "/x/cert.pem", "SSL_CERT_DIR", "/x/certs")


def test_left_to_openssl_where_its_locations_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: _defaults(None, "/usr/lib/ssl/certs"))
    ctx = _Ctx()
    assert system_cas.load_system_cas(ctx, files=(str(bundle),)) is None  # type: ignore[arg-type]
    assert ctx.loaded == []


def test_first_system_location_when_openssl_has_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundle = tmp_path / "tls-ca-bundle.pem"
    bundle.write_text("")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: _defaults(None, None))
    ctx = _Ctx()
    found = system_cas.load_system_cas(ctx, files=(str(tmp_path / "missing.crt"), str(bundle)),  # type: ignore[arg-type]
                                       dirs=(str(tmp_path),))
    assert found == str(bundle) and ctx.loaded == [{"cafile": str(bundle)}]
    ctx = _Ctx()
    found = system_cas.load_system_cas(ctx, files=(), dirs=(str(tmp_path / "no"), str(tmp_path)))  # type: ignore[arg-type]
    assert found == str(tmp_path) and ctx.loaded == [{"capath": str(tmp_path)}]
    assert system_cas.load_system_cas(_Ctx(), files=(), dirs=()) is None  # type: ignore[arg-type]


def test_a_real_context_loads_a_real_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = next((f for f in system_cas.SYSTEM_CA_FILES if Path(f).is_file()), None)
    if bundle is None:
        pytest.skip("no system CA bundle on this machine")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: _defaults(None, None))
    ctx = ssl.create_default_context()
    before = len(ctx.get_ca_certs())
    assert system_cas.load_system_cas(ctx) == bundle
    assert len(ctx.get_ca_certs()) >= max(before, 1)
