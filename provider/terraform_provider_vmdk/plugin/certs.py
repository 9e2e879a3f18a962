"""Per-process TLS material: a fresh self-signed server certificate.

go-plugin's AutoMTLS has each side generate a throwaway certificate; ours goes
to Terraform base64-encoded in the handshake line and Terraform uses it as the
only trusted root for the connection. So the certificate must be its own CA
(BasicConstraints CA, keyCertSign), carry SAN DNS:localhost (Go verifies the
name "localhost"), and allow server and client auth like go-plugin's own.

ECDSA P-256 keeps generation to about a millisecond: this runs at every start.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

VALIDITY = datetime.timedelta(days=30)
BACKDATE = datetime.timedelta(seconds=30)  # tolerate small clock skew with the host


@dataclass(frozen=True)
class ServerCert:
    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes


def generate_server_cert(common_name: str = "localhost") -> ServerCert:
    """Generate an ECDSA P-256 key and a self-signed CA/server certificate."""
    # Imported here: only the mTLS path needs cryptography, and it is not cheap to import.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "terraform-provider-vmdk"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(os.urandom(16), "big") >> 1)  # positive, < 2**127
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return ServerCert(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert_der=cert.public_bytes(serialization.Encoding.DER),
    )
