"""The system's CA certificates, where the OpenSSL in use does not know where they are.

``ssl.create_default_context()`` loads the CAs from the places the OpenSSL that Python links was built to
look in (its OPENSSLDIR: ``/usr/lib/ssl`` on Debian, ``/etc/pki/tls`` on Fedora and RHEL, ...) or from
``SSL_CERT_FILE`` / ``SSL_CERT_DIR``. In a virtualenv that is the distribution's own OpenSSL, so it is right.
The packaged provider (scripts/release.py) carries the libssl of the machine that built it: on another
distribution its OPENSSLDIR may not exist, and every ``vsphere_server`` would then fail verification. So when
neither default location exists, the CAs are read from where Linux distributions keep them — the list Go's
crypto/x509 reads, so the provider trusts what Terraform itself trusts on that machine.
"""

from __future__ import annotations

import os
import ssl

__all__ = ["SYSTEM_CA_FILES", "SYSTEM_CA_DIRS", "load_system_cas"]

SYSTEM_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Gentoo, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/pki/tls/cacert.pem",  # OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # CentOS, RHEL 7
    "/etc/ssl/cert.pem",  # Alpine, macOS, BSDs
)
SYSTEM_CA_DIRS = ("/etc/ssl/certs", "/etc/pki/tls/certs", "/system/etc/security/cacerts")


def load_system_cas(ctx: ssl.SSLContext, files: tuple[str, ...] = SYSTEM_CA_FILES,
                    dirs: tuple[str, ...] = SYSTEM_CA_DIRS) -> str | None:
    """When OpenSSL's default CA file and directory both do not exist (``ssl.get_default_verify_paths()``
    names only what exists, after ``SSL_CERT_FILE``/``SSL_CERT_DIR``), load the first system CA file or
    directory found into ``ctx`` and return its path; else change nothing and return None."""
    defaults = ssl.get_default_verify_paths()
    if defaults.cafile or defaults.capath:
        return None
    for path in files:
        if os.path.isfile(path):
            ctx.load_verify_locations(cafile=path)
            return path
    for path in dirs:
        if os.path.isdir(path):
            ctx.load_verify_locations(capath=path)
            return path
    return None
