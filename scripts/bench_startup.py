#!/usr/bin/env python3
"""Start-up cost of the provider versus a bare ``python -c "import grpc"``.

Terraform starts the provider 2-5 times per command, so time-to-handshake is
paid over and over. Measures the median over N runs of:
  (a) spawn ``python -m terraform_provider_vmdk`` with the go-plugin environment
      (magic cookie, PLUGIN_PROTOCOL_VERSIONS=6, a Terraform-like P-521
      PLUGIN_CLIENT_CERT) until its handshake line arrives on stdout;
  (b) spawn ``python -c "import grpc"`` until it exits.
Target: (a) <= 1.5 x (b).

With --stand-in (or until terraform_provider_vmdk/__main__.py exists), (a) runs
plugin.server.serve() with the empty base servicer: the transport's own cost,
without the framework and resources the CLI imports.

With --binary PATH, (a) runs that executable instead: the packaged provider
(scripts/release.py; the file terraform-provider-vmdk_v<ver> in the release
zip, unpacked with its _internal/ folder), which needs no Python. (b) is still
this interpreter importing grpc.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import statistics
import subprocess
import sys
import time

STAND_IN = (
    "import sys\n"
    "from terraform_provider_vmdk.plugin.server import serve\n"
    "from terraform_provider_vmdk.plugin._generated.tfplugin6_pb2_grpc import ProviderServicer\n"
    "sys.exit(serve(ProviderServicer()))\n"
)
COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"


def terraform_like_client_cert() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA512()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def provider_command(stand_in: bool, binary: str | None = None) -> tuple[list[str], str]:
    if binary is not None:
        return [os.path.abspath(binary)], f"packaged provider {binary}"
    if not stand_in and importlib.util.find_spec("terraform_provider_vmdk.__main__") is not None:
        return [sys.executable, "-m", "terraform_provider_vmdk"], "python -m terraform_provider_vmdk"
    why = "--stand-in" if stand_in else "no terraform_provider_vmdk.__main__ yet"
    return [sys.executable, "-c", STAND_IN], f"transport only: serve() with the empty base servicer ({why})"


def time_to_handshake(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.terminate()
    proc.wait()
    if not line.startswith(b"1|6|"):
        raise SystemExit(f"no handshake line from {cmd}: {line!r}")
    return elapsed


def time_to_exit(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description="provider start-up benchmark")
    parser.add_argument("-n", "--runs", type=int, default=15)
    parser.add_argument("--stand-in", action="store_true",
                        help="measure the transport alone (serve() with an empty servicer), not the CLI")
    parser.add_argument("--binary", metavar="PATH",
                        help="measure this provider executable (e.g. the packaged one) rather than python -m")
    opts = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PLUGIN_"))}
    env = dict(base, TF_PLUGIN_MAGIC_COOKIE=COOKIE, PLUGIN_PROTOCOL_VERSIONS="6",
               PLUGIN_MIN_PORT="10000", PLUGIN_MAX_PORT="25000", PLUGIN_CLIENT_CERT=terraform_like_client_cert())
    cmd, label = provider_command(opts.stand_in, opts.binary)
    grpc_cmd = [sys.executable, "-c", "import grpc"]
    time_to_handshake(cmd, env), time_to_exit(grpc_cmd, base)  # warm the page cache
    provider, grpc_only = [], []
    for _ in range(max(opts.runs, 10)):  # interleave so drift hits both equally
        provider.append(time_to_handshake(cmd, env))
        grpc_only.append(time_to_exit(grpc_cmd, base))
    a, b = statistics.median(provider), statistics.median(grpc_only)
    print(f"runs: {len(provider)}  ({label})")
    print(f"(a) provider start -> handshake line (mTLS): median {a * 1000:7.1f} ms")
    print(f"(b) python -c 'import grpc':                 median {b * 1000:7.1f} ms")
    print(f"ratio a/b: {a / b:.2f}  (target <= 1.50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
