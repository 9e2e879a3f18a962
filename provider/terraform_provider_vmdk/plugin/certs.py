"""Per-process TLS material: a fresh self-signed server certificate.

go-plugin's AutoMTLS has each side generate a throwaway certificate; ours goes
to Terraform base64-encoded in the handshake line and Terraform uses it as the
only trusted root for the connection. So the certificate must be its own CA
(BasicConstraints CA, keyCertSign), carry SAN DNS:localhost (Go verifies the
name "localhost"), and allow server and client auth like go-plugin's own.

Speed matters: this runs at every provider start, and Terraform starts the
provider several times per command. ``cryptography`` generates the ECDSA P-256
key and makes the signature, but importing ``cryptography.x509`` alone costs
~25 ms, more than a third of ``import grpc``. The certificate has a fixed
shape, so we encode its DER here (a few dozen lines of ASN.1) and only import
cryptography's EC primitives. tests/unit/test_handshake_certs.py parses the
result with cryptography.x509 and checks every property.
"""

from __future__ import annotations

import base64
import os
import time
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    from cryptography.hazmat.primitives.asymmetric.ec import ECDSA

VALIDITY = 30 * 86400  # seconds
BACKDATE = 30  # seconds; tolerates small clock skew with the host


class ServerCert(NamedTuple):
    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes


# ------------------------------------------------------------ minimal DER writer
def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _bits(data: bytes, unused: int = 0) -> bytes:
    return _tlv(0x03, bytes((unused,)) + data)


def _time(epoch: int) -> bytes:
    moment = time.gmtime(epoch)
    if moment.tm_year < 2050:  # RFC 5280: UTCTime through 2049, GeneralizedTime after
        return _tlv(0x17, time.strftime("%y%m%d%H%M%SZ", moment).encode())
    return _tlv(0x18, time.strftime("%Y%m%d%H%M%SZ", moment).encode())


def _name(organization: str, common_name: str) -> bytes:
    def rdn(oid: str, value: str) -> bytes:
        return _tlv(0x31, _seq(_oid(oid), _tlv(0x0C, value.encode())))

    return _seq(rdn("2.5.4.10", organization), rdn("2.5.4.3", common_name))


def _ext(oid: str, value: bytes, critical: bool = False) -> bytes:
    flag = _tlv(0x01, b"\xff") if critical else b""
    return _seq(_oid(oid), flag, _tlv(0x04, value))


OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_P256 = "1.2.840.10045.3.1.7"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
# KeyUsage bits 0 digitalSignature, 2 keyEncipherment, 5 keyCertSign: 1010 0100, 2 unused bits
KEY_USAGE = _bits(b"\xa4", unused=2)
EKU_SERVER_CLIENT = _seq(_oid("1.3.6.1.5.5.7.3.1"), _oid("1.3.6.1.5.5.7.3.2"))


def _pem(label: str, der: bytes) -> bytes:
    b64 = base64.encodebytes(der).replace(b"\n", b"")
    lines = b"\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return b"-----BEGIN " + label.encode() + b"-----\n" + lines + b"\n-----END " + label.encode() + b"-----\n"


def _ecdsa_sha256() -> ECDSA:
    """An ``ec.ECDSA(hashes.SHA256())`` without its constructor's 5 ms import.

    ``ECDSA.__init__`` imports cryptography's whole OpenSSL backend module (RSA,
    ciphers, ...) only to check RFC 6979 support, which we do not use. The
    subclass sets the two attributes the public properties read; if a future
    cryptography release renames them, the properties fail and we fall back to
    the real constructor.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    class _FastECDSA(ec.ECDSA):
        def __init__(self) -> None:  # noqa: D107 (deliberately skips super().__init__)
            self._algorithm = hashes.SHA256()
            self._deterministic_signing = False

    try:
        fast = _FastECDSA()
        if isinstance(fast.algorithm, hashes.SHA256) and fast.deterministic_signing is False:
            return fast
    except Exception:  # noqa: BLE001  # pragma: no cover - depends on cryptography internals
        pass
    return ec.ECDSA(hashes.SHA256())  # pragma: no cover


def generate_server_cert(common_name: str = "localhost") -> ServerCert:
    """Generate an ECDSA P-256 key and a self-signed CA/server certificate for it."""
    # Imported here: only the mTLS path needs cryptography.
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.private_numbers()
    point = b"\x04" + numbers.public_numbers.x.to_bytes(32, "big") + numbers.public_numbers.y.to_bytes(32, "big")
    algorithm = _seq(_oid(OID_ECDSA_SHA256))
    name = _name("terraform-provider-vmdk", common_name)
    now = int(time.time())
    serial = int.from_bytes(os.urandom(16), "big") >> 1 | 1  # positive, non-zero, < 2**127
    extensions = _seq(
        _ext("2.5.29.19", _seq(_tlv(0x01, b"\xff")), critical=True),  # BasicConstraints: CA
        _ext("2.5.29.15", KEY_USAGE, critical=True),
        _ext("2.5.29.37", EKU_SERVER_CLIENT),
        _ext("2.5.29.17", _seq(_tlv(0x82, b"localhost"))),  # SAN dNSName
    )
    tbs = _seq(
        _tlv(0xA0, _int(2)),  # v3
        _int(serial),
        algorithm,
        name,
        _seq(_time(now - BACKDATE), _time(now + VALIDITY)),
        name,
        _seq(_seq(_oid(OID_EC_PUBLIC_KEY), _oid(OID_P256)), _bits(point)),
        _tlv(0xA3, extensions),
    )
    signature = key.sign(tbs, _ecdsa_sha256())  # DER Ecdsa-Sig-Value
    cert_der = _seq(tbs, algorithm, _bits(signature))
    key_der = _seq(  # SEC1 ECPrivateKey, which OpenSSL (ssl.load_cert_chain) reads
        _int(1),
        _tlv(0x04, numbers.private_value.to_bytes(32, "big")),
        _tlv(0xA0, _oid(OID_P256)),
        _tlv(0xA1, _bits(point)),
    )
    return ServerCert(_pem("CERTIFICATE", cert_der), _pem("EC PRIVATE KEY", key_der), cert_der)
