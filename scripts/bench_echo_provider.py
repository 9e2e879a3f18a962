"""The "no vSphere" floor of bench_overhead: our plugin server with ``vmdk_volume``'s and ``vmdk_snapshot``'s
schemas and plan logic, whose reads, creates and deletes do no vSphere work at all.

Terraform launches it exactly as it launches the provider (same interpreter, same package, same
handshake, mTLS and gRPC server), so the difference between it and the provider is the vSphere work
and nothing else, and the difference between it and ``terraform_data`` is what Terraform and the plugin
protocol cost for instances of this schema. Never shipped: bench_overhead writes a launcher for it
under the source address ``pyvmdk-bench/vmdk``.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "provider"))

from terraform_provider_vmdk.framework.resource import ApplyRequest, ReadRequest, Resource
from terraform_provider_vmdk.framework.types import Bool, CtyType, Number, String
from terraform_provider_vmdk.framework.unknowns import is_unknown
from terraform_provider_vmdk.framework.walk import transform
from terraform_provider_vmdk.resources.provider import VmdkProvider
from terraform_provider_vmdk.resources.snapshot import SnapshotResource
from terraform_provider_vmdk.resources.volume import VolumeResource

NAMESPACE = "pyvmdk-bench"


def _known(resource: Resource, plan: dict[str, Any]) -> dict[str, Any]:
    """The plan with every unknown replaced by a value of its type (an id-sized string for strings)."""

    def fill(_path: Any, value: Any, ty: CtyType) -> Any:
        if not is_unknown(value):
            return value
        if ty == String:
            return str(uuid.uuid4())
        if ty == Number:
            return 1
        if ty == Bool:
            return False
        return None

    filled = transform(plan, resource.schema().object_type(), fill)
    assert isinstance(filled, dict)
    return filled


class _Echo(Resource):
    """Writes and reads that hand Terraform back what it planned or holds, with no vSphere work."""

    created: ClassVar[dict[str, Any]] = {}  # values a create sets besides the id

    def create(self, req: ApplyRequest) -> dict[str, Any]:
        return _known(self, {**(req.plan or {}), "id": str(uuid.uuid4()), **self.created})

    def update(self, req: ApplyRequest) -> dict[str, Any]:
        return _known(self, req.plan or {})

    def read(self, req: ReadRequest) -> dict[str, Any] | None:
        return req.state

    def delete(self, req: ApplyRequest) -> None:
        return None


class EchoVolume(_Echo, VolumeResource):
    pass


class EchoSnapshot(_Echo, SnapshotResource):
    created: ClassVar[dict[str, Any]] = {"format": "COW"}


class EchoProvider(VmdkProvider):
    def resources(self) -> list[Resource]:
        return [EchoVolume(), EchoSnapshot()]


def launcher_text() -> str:
    return f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} "$@"\n'


def install(home: Path) -> None:
    """Write the launcher where Terraform's implied local mirror finds ``pyvmdk-bench/vmdk``."""
    from terraform_provider_vmdk import __version__
    from terraform_provider_vmdk.plugin.install import HOSTNAME, TYPE, go_platform

    path = (home / ".terraform.d" / "plugins" / HOSTNAME / NAMESPACE / TYPE / __version__ / go_platform()
            / f"terraform-provider-{TYPE}_v{__version__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(launcher_text())
    path.chmod(0o755)


if __name__ == "__main__":
    from terraform_provider_vmdk.cli import main

    sys.exit(main(provider_factory=EchoProvider))
