"""The provider with the test-only resources of ``testing_resources``: what the acceptance tests' launcher runs.

The shipped command never loads test code; this entry point (``python -m tests.acceptance.provider_for_tests``,
with the repository on PYTHONPATH) hands ``cli.main`` a provider factory that adds them.
"""

from __future__ import annotations

import sys


def provider():  # type: ignore[no-untyped-def]
    from terraform_provider_vmdk.resources.provider import VmdkProvider

    from . import testing_resources

    return VmdkProvider(testing_resources.resources())


if __name__ == "__main__":
    from terraform_provider_vmdk.cli import main

    sys.exit(main(provider_factory=provider))
