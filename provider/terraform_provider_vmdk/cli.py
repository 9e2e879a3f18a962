"""Command line: ``terraform-provider-vmdk`` [``--debug`` | ``install`` | ``--version``].

Without arguments it is what Terraform launches: the go-plugin handshake, then gRPC. Imports stay
minimal on that path (Terraform starts the provider several times per command); pyvmomi is imported
only when a resource first needs vSphere.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .framework.resource import Provider
    from .framework.server import FrameworkServer
    from .resources.provider import VmdkProvider

__all__ = ["main", "build_provider"]

USAGE = """usage: terraform-provider-vmdk [--debug | install | orphans --state FILE... | --version]

  (no arguments)  serve as a Terraform provider plugin (Terraform starts it; not for direct use)
  --debug         serve for debugging and print a TF_REATTACH_PROVIDERS value to export
  install         place the provider into Terraform's implied local mirror so that
                  `terraform init` finds source "pyvmdk/vmdk" (from a venv: a launcher for
                  its python; the packaged provider: a copy of itself and its _internal/)
  orphans         list (--delete: remove) shadow VMs of this provider that none of the given
                  states holds; `orphans --help` for the options
  --version       print the version
"""


def build_provider() -> VmdkProvider:
    from .resources.provider import VmdkProvider

    return VmdkProvider()


def main(argv: list[str] | None = None, provider_factory: Callable[[], Provider] | None = None) -> int:
    """The command line. ``provider_factory`` (default ``build_provider``) lets a test entry point serve a
    provider with extra test-only resources; the shipped command never takes them from the environment."""
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

    factory = provider_factory or build_provider

    def load() -> FrameworkServer:
        from .framework.server import FrameworkServer

        return FrameworkServer(factory())

    debug = args == ["--debug"]
    code = serve(LazyProviderService(load), debug=debug)
    if not debug:  # Terraform waits for the process to end: skip the interpreter's teardown
        from .plugin.server import exit_now

        exit_now(code)
    return code
