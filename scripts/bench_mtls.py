#!/usr/bin/env python3
"""Per-call latency: plain gRPC on the unix socket vs through the mutual-TLS front.

Starts the provider transport twice (serve() with a minimal servicer, as a
subprocess like Terraform does): once without TLS, once with a Terraform-like
client certificate (ECDSA P-521, SHA-512, self-signed, CN localhost). Then
times N sequential unary GetMetadata calls on one channel each and prints the
medians and their ratio.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import ssl
import statistics
import subprocess
import sys
import time

SERVER = (
    "import sys\n"
    "from terraform_provider_vmdk.plugin.server import serve\n"
    "from terraform_provider_vmdk.plugin._generated import tfplugin6_pb2 as pb, tfplugin6_pb2_grpc as pbg\n"
    "class S(pbg.ProviderServicer):\n"
    "    def GetMetadata(self, request, context):\n"
    "        return pb.GetMetadata.Response(resources=[pb.GetMetadata.ResourceMetadata(type_name='vmdk_volume')])\n"
    "sys.exit(serve(S()))\n"
)
COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"


def terraform_like_client_cert() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(seconds=30))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA512()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def start(env_extra: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PLUGIN_"))}
    env.update(TF_PLUGIN_MAGIC_COOKIE=COOKIE, PLUGIN_PROTOCOL_VERSIONS="6", **env_extra)
    proc = subprocess.Popen([sys.executable, "-c", SERVER], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    return proc, proc.stdout.readline().decode().strip().split("|")


def measure(channel, calls: int) -> float:
    from terraform_provider_vmdk.plugin._generated import tfplugin6_pb2 as pb
    from terraform_provider_vmdk.plugin._generated import tfplugin6_pb2_grpc as pbg

    stub = pbg.ProviderStub(channel)
    request = pb.GetMetadata.Request()
    for _ in range(200):  # warm up: connection, TLS handshake, HTTP/2 windows
        stub.GetMetadata(request, timeout=5)
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        stub.GetMetadata(request, timeout=5)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> int:
    import grpc

    parser = argparse.ArgumentParser(description="mTLS front latency benchmark")
    parser.add_argument("-n", "--calls", type=int, default=3000)
    opts = parser.parse_args()

    proc, parts = start({})
    try:
        with grpc.insecure_channel(f"unix:{parts[3]}") as channel:
            plain = measure(channel, opts.calls)
    finally:
        proc.terminate()
        proc.wait()

    cert_pem, key_pem = terraform_like_client_cert()
    proc, parts = start({"PLUGIN_CLIENT_CERT": cert_pem.decode()})
    try:
        der = base64.b64decode(parts[5] + "=" * (-len(parts[5]) % 4))
        creds = grpc.ssl_channel_credentials(root_certificates=ssl.DER_cert_to_PEM_cert(der).encode(),
                                             private_key=key_pem, certificate_chain=cert_pem)
        with grpc.secure_channel(f"unix:{parts[3]}", creds,
                                 options=[("grpc.default_authority", "localhost")]) as channel:
            mtls = measure(channel, opts.calls)
    finally:
        proc.terminate()
        proc.wait()

    print(f"calls per mode: {opts.calls} sequential unary GetMetadata, one channel")
    print(f"plain gRPC (unix socket):          median {plain * 1e6:7.1f} us")
    print(f"mTLS front (P-521 client cert):    median {mtls * 1e6:7.1f} us")
    print(f"ratio mTLS/plain: {mtls / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
