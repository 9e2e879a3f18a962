"""Command line: ``terraform-provider-vmdk`` [``--debug`` | ``install`` | ``--version``].

Without arguments it is what Terraform launches: the go-plugin handshake, then gRPC. Imports stay
minimal on that path (Terraform starts the provider several times per command); pyvmomi is imported
only when a resource first needs vSphere.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .framework.server import FrameworkServer
    from .resources.provider import VmdkProvider

__all__ = ["main", "build_provider"]

# Acceptance tests of the framework itself register test-only resources through this variable
# (a module exposing ``resources()`` and/or ``data_sources()``); Terraform passes the environment on.
TEST_MODULE_ENV = "VMDK_PROVIDER_TEST_MODULE"

USAGE = """usage: terraform-provider-vmdk [--debug | install | orphans --state FILE... | --version]

  (no arguments)  serve as a Terraform provider plugin (Terraform starts it; not for direct use)
  --debug         serve for debugging and print a TF_REATTACH_PROVIDERS value to export
  install         place a launcher into Terraform's implied local mirror so that
                  `terraform init` finds source "pyvmdk/vmdk"
  orphans         list (--delete: remove) shadow VMs of this provider that none of the given
                  states holds; `orphans --help` for the options
  --version       print the version
"""


def build_provider() -> VmdkProvider:
    from .resources.provider import VmdkProvider

    extra_resources, extra_data_sources = [], []
    module_name = os.environ.get(TEST_MODULE_ENV)
    if module_name:
        module = importlib.import_module(module_name)
        extra_resources = list(getattr(module, "resources", list)())
        extra_data_sources = list(getattr(module, "data_sources", list)())
    return VmdkProvider(extra_resources, extra_data_sources)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["version"]):
        print(f"terraform-provider-vmdk {__version__}")
        return 0
    if args in (["-h"], ["--help"], ["help"]):
        print(USAGE)
        return 0
    if args and args[0] == "orphans":
        from .orphans import main as orphans_main

        return orphans_main(args[1:])
    if args and args[0] == "install":
        from .plugin.install import main as install_main

        return install_main(args[1:])
    if args not in ([], ["--debug"]):
        sys.stderr.write(USAGE)
        return 2
    from .plugin.lazy_service import LazyProviderService
    from .plugin.server import serve

    def load() -> FrameworkServer:
        from .framework.server import FrameworkServer

        return FrameworkServer(build_provider())

    return serve(LazyProviderService(load), debug=args == ["--debug"])
