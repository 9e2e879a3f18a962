"""The per-process server certificate Terraform pins from the handshake line."""

from __future__ import annotations

import datetime
import time

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from terraform_provider_vmdk.plugin.certs import generate_server_cert


def test_certificate_properties() -> None:
    bundle = generate_server_cert()
    cert = x509.load_der_x509_certificate(bundle.cert_der)
    assert x509.load_pem_x509_certificate(bundle.cert_pem) == cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    assert cert.issuer == cert.subject
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    cert.verify_directly_issued_by(cert)  # self-signed
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is True
    ku = ext.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment and ku.key_cert_sign
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert ext.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "localhost"]
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now - datetime.timedelta(seconds=25)
    assert datetime.timedelta(days=29) < cert.not_valid_after_utc - now <= datetime.timedelta(days=30)
    assert b"PRIVATE KEY" in bundle.key_pem


def test_certificates_are_fresh_and_fast() -> None:
    generate_server_cert()  # warm imports
    start = time.perf_counter()
    a, b = generate_server_cert(), generate_server_cert()
    assert (time.perf_counter() - start) / 2 < 0.05
    assert a.cert_der != b.cert_der
    assert x509.load_der_x509_certificate(a.cert_der).serial_number != x509.load_der_x509_certificate(
        b.cert_der).serial_number
