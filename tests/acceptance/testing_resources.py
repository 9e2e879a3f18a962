"""Test-only resources that exercise the framework through real Terraform, without vSphere.

Served only by the acceptance tests' entry point (provider_for_tests.py), never by the shipped command.
``vmdk_test_item`` keeps its objects as JSON files in VMDK_TEST_STORE, so tests can check apply results and make
out-of-band changes the way a real backend would show drift.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, ClassVar

from terraform_provider_vmdk.framework.diagnostics import DiagnosticError, Diagnostics
from terraform_provider_vmdk.framework.planmodifiers import RequiresReplace, UseStateForUnknown
from terraform_provider_vmdk.framework.resource import ApplyRequest, ReadRequest, RequestContext, Resource
from terraform_provider_vmdk.framework.schema import Attribute, Schema, schema
from terraform_provider_vmdk.framework.timeouts import timeouts_block
from terraform_provider_vmdk.framework.types import Number, String
from terraform_provider_vmdk.framework.unknowns import is_unknown
from terraform_provider_vmdk.framework.validators import AtLeast, OneOf


def _store() -> Path:
    path = Path(os.environ["VMDK_TEST_STORE"])
    path.mkdir(parents=True, exist_ok=True)
    return path


class TestItem(Resource):
    type_name = "vmdk_test_item"

    def schema(self) -> Schema:
        return schema(
            {
                "id": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),)),
                "name": Attribute(String, required=True, description="In place."),
                "size": Attribute(Number, required=True, validators=(AtLeast(1),), description="In place."),
                "kind": Attribute(String, optional=True, default="plain",
                                  validators=(OneOf(("plain", "fancy")),), plan_modifiers=(RequiresReplace(),)),
                "secret": Attribute(String, optional=True, sensitive=True),
                "revision": Attribute(Number, computed=True, description="Bumped by every write."),
            },
            blocks={"timeouts": timeouts_block("create", "update", "delete")},
            version=1,
        )

    # version 0 called "size" "capacity"
    state_upgraders: ClassVar[dict[int, Any]] = {
        0: lambda s: {**{k: v for k, v in s.items() if k != "capacity"}, "size": s.get("capacity")}}

    def validate_config(self, config: dict[str, Any], diags: Diagnostics) -> None:
        name = config.get("name")
        if isinstance(name, str) and not is_unknown(name) and name.startswith("bad"):
            diags.error("Invalid name", "names must not start with 'bad'", "name")

    def _write(self, item_id: str, plan: dict[str, Any], revision: int) -> dict[str, Any]:
        state = {**plan, "id": item_id, "revision": revision}
        (_store() / f"{item_id}.json").write_text(json.dumps({k: v for k, v in state.items() if k != "timeouts"}))
        return state

    def create(self, req: ApplyRequest) -> dict[str, Any]:
        assert req.plan is not None
        return self._write(uuid.uuid4().hex, req.plan, 1)

    def update(self, req: ApplyRequest) -> dict[str, Any]:
        assert req.plan is not None and req.prior is not None
        return self._write(req.prior["id"], req.plan, int(req.prior["revision"]) + 1)

    def read(self, req: ReadRequest) -> dict[str, Any] | None:
        path = _store() / f"{req.state['id']}.json"
        if not path.exists():
            return None
        stored = json.loads(path.read_text())
        return {**req.state, **stored}

    def delete(self, req: ApplyRequest) -> None:
        assert req.prior is not None
        (_store() / f"{req.prior['id']}.json").unlink(missing_ok=True)

    def import_state(self, import_id: str, ctx: RequestContext) -> dict[str, Any]:
        if not (_store() / f"{import_id}.json").exists():
            raise DiagnosticError("Cannot import", f"No vmdk_test_item with id {import_id!r} exists.")
        return {"id": import_id}


def resources() -> list[Resource]:
    return [TestItem()]
