"""The framework server's plan pipeline and invariants, on a small in-memory resource."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from terraform_provider_vmdk.framework.diagnostics import DiagnosticError
from terraform_provider_vmdk.framework.msgpack_codec import decode, encode
from terraform_provider_vmdk.framework.planmodifiers import RequiresReplace, UseStateForUnknown
from terraform_provider_vmdk.framework.resource import ApplyRequest, PlanRequest, Provider, Resource
from terraform_provider_vmdk.framework.schema import Attribute, schema
from terraform_provider_vmdk.framework.server import FrameworkServer
from terraform_provider_vmdk.framework.timeouts import timeout_seconds, timeouts_block
from terraform_provider_vmdk.framework.types import Number, String
from terraform_provider_vmdk.framework.unknowns import UNKNOWN, is_unknown
from terraform_provider_vmdk.framework.validators import OneOf, parse_duration


class Thing(Resource):
    type_name = "t_thing"
    state_upgraders: ClassVar[dict[int, Any]] = {0: lambda s: {**s, "size": s.pop("capacity", None)}}

    def __init__(self) -> None:
        self.leave_unknown = False

    def schema(self):  # type: ignore[no-untyped-def]
        return schema(
            {
                "id": Attribute(String, computed=True, plan_modifiers=(UseStateForUnknown(),)),
                "name": Attribute(String, required=True),
                "size": Attribute(Number, required=True),
                "mode": Attribute(String, optional=True, default="a", validators=(OneOf(("a", "b")),),
                                  plan_modifiers=(RequiresReplace(),)),
                "rev": Attribute(Number, computed=True),
            },
            blocks={"timeouts": timeouts_block("create")},
            version=1,
        )

    def modify_plan(self, req: PlanRequest) -> None:
        if req.plan and req.prior and req.plan["size"] < req.prior["size"]:
            req.diagnostics.error("no shrink", "", "size")

    def create(self, req: ApplyRequest) -> dict[str, Any]:
        assert req.plan is not None
        return {**req.plan, "id": "x1", "rev": UNKNOWN if self.leave_unknown else 1}

    def update(self, req: ApplyRequest) -> dict[str, Any]:
        assert req.plan is not None and req.prior is not None
        return {**req.plan, "rev": req.prior["rev"] + 1}


class P(Provider):
    type_name = "t"

    def __init__(self) -> None:
        self.thing = Thing()

    def schema(self):  # type: ignore[no-untyped-def]
        return schema({})

    def resources(self) -> list[Resource]:
        return [self.thing]


@pytest.fixture
def fw() -> FrameworkServer:
    return FrameworkServer(P())


def obj(fw: FrameworkServer, value: dict[str, Any] | None) -> bytes:
    ty = fw.schema_of("resource", "t_thing").object_type()
    return encode(None if value is None else {k: value.get(k) for k in ty.attributes}, ty)


def dec(fw: FrameworkServer, data: bytes) -> Any:
    return decode(data, fw.schema_of("resource", "t_thing").object_type())


def test_create_plan_fills_defaults_and_unknowns(fw: FrameworkServer) -> None:
    config = {"name": "n", "size": 1}
    res = fw.plan_resource_change("t_thing", obj(fw, None), obj(fw, config), obj(fw, config), b"")
    plan = dec(fw, res.value)
    assert plan["mode"] == "a" and is_unknown(plan["id"]) and is_unknown(plan["rev"])
    assert res.requires_replace == [] and not res.diagnostics


def test_update_keeps_ids_marks_computed_and_replaces(fw: FrameworkServer) -> None:
    prior = {"id": "x1", "name": "n", "size": 1, "mode": "a", "rev": 1}
    config = {"name": "n", "size": 2, "mode": "b"}
    proposed = {**prior, **config}
    res = fw.plan_resource_change("t_thing", obj(fw, prior), obj(fw, proposed), obj(fw, config), b"")
    plan = dec(fw, res.value)
    assert plan["id"] == "x1" and is_unknown(plan["rev"])
    assert [str(p) for p in res.requires_replace] == ["mode"]


def test_no_change_no_unknowns(fw: FrameworkServer) -> None:
    prior = {"id": "x1", "name": "n", "size": 1, "mode": "a", "rev": 1}
    config = {"name": "n", "size": 1}
    res = fw.plan_resource_change("t_thing", obj(fw, prior), obj(fw, prior), obj(fw, config), b"")
    assert dec(fw, res.value) == {**prior, "timeouts": None}


def test_resource_plan_error_has_path(fw: FrameworkServer) -> None:
    prior = {"id": "x1", "name": "n", "size": 3, "mode": "a", "rev": 1}
    config = {"name": "n", "size": 2}
    res = fw.plan_resource_change("t_thing", obj(fw, prior), obj(fw, {**prior, **config}), obj(fw, config), b"")
    assert res.diagnostics.has_errors and str(res.diagnostics.errors[0].path) == "size"


def test_validator_error_names_attribute(fw: FrameworkServer) -> None:
    res = fw.validate_resource_config("t_thing", obj(fw, {"name": "n", "size": 1, "mode": "zzz"}))
    assert [str(d.path) for d in res.diagnostics] == ["mode"]


def test_unknown_after_apply_is_an_error(fw: FrameworkServer) -> None:
    fw.resources["t_thing"].leave_unknown = True  # type: ignore[attr-defined]
    planned = {"id": UNKNOWN, "name": "n", "size": 1, "mode": "a", "rev": UNKNOWN}
    res = fw.apply_resource_change("t_thing", obj(fw, None), obj(fw, planned), obj(fw, {"name": "n", "size": 1}), b"")
    assert res.diagnostics.has_errors and "rev" in str(res.diagnostics.errors[0].path)
    assert dec(fw, res.value)["rev"] is None  # partial state keeps no unknowns


def test_state_upgrade(fw: FrameworkServer) -> None:
    raw = json.dumps({"id": "x1", "name": "n", "capacity": 4, "mode": "a", "rev": 2}).encode()
    res = fw.upgrade_resource_state("t_thing", 0, raw)
    assert dec(fw, res.value)["size"] == 4
    with pytest.raises(DiagnosticError, match="newer provider"):
        fw.upgrade_resource_state("t_thing", 5, raw)


def test_durations_and_timeouts() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("2.5s") == 2.5
    with pytest.raises(ValueError):
        parse_duration("10 minutes")
    assert timeout_seconds({"timeouts": {"create": "2m"}}, "create", 1) == 120
    assert timeout_seconds({"timeouts": None}, "create", 7) == 7


class Failing(Thing):
    """A create that fixes its identity, then fails (or crashes) — as a vSphere create can."""

    def __init__(self, failure: BaseException, partial: bool = True) -> None:
        super().__init__()
        self.failure, self.partial = failure, partial

    def create(self, req: ApplyRequest) -> dict[str, Any]:
        assert req.plan is not None
        if self.partial:
            req.partial = {**req.plan, "id": "x9"}
        raise self.failure

    def read(self, req):  # type: ignore[no-untyped-def]
        raise KeyError("id")


PLANNED = {"id": UNKNOWN, "name": "n", "size": 1, "mode": "a", "rev": UNKNOWN}


@pytest.mark.parametrize("failure", [DiagnosticError("vSphere said no", "detail"), TypeError("Required field")])
def test_a_failed_create_returns_its_partial_state(fw: FrameworkServer, failure: BaseException) -> None:
    fw.resources["t_thing"] = Failing(failure)
    res = fw.apply_resource_change("t_thing", obj(fw, None), obj(fw, PLANNED), obj(fw, {"name": "n", "size": 1}), b"")
    state = dec(fw, res.value)
    assert state["id"] == "x9" and state["rev"] is None  # the id is saved (Terraform taints it); no unknowns
    assert res.diagnostics.has_errors


def test_an_unexpected_error_names_the_resource_and_operation_not_the_exception(fw: FrameworkServer) -> None:
    fw.resources["t_thing"] = Failing(TypeError('Required field "uuid" not provided'), partial=False)
    res = fw.apply_resource_change("t_thing", obj(fw, None), obj(fw, PLANNED), obj(fw, {"name": "n", "size": 1}), b"")
    (d,) = res.diagnostics.errors
    assert d.summary == "Unexpected error in t_thing (create)"
    assert "TypeError" not in d.detail and "uuid" not in d.detail
    assert dec(fw, res.value) is None  # nothing was made: no state
    prior = {"id": "x1", "name": "n", "size": 1, "mode": "a", "rev": 1}
    read = fw.read_resource("t_thing", obj(fw, prior), b"")
    (d,) = read.diagnostics.errors
    assert d.summary == "Unexpected error in t_thing (read)" and "KeyError" not in d.detail
    assert dec(fw, read.value)["id"] == "x1"  # a failed refresh keeps the state


def test_single_nested_block_refuses_item_limits_terraform_rejects() -> None:
    from terraform_provider_vmdk.framework.schema import Block, NestedBlock, Nesting

    NestedBlock(Block({}), Nesting.SINGLE)  # at most one, by its nesting
    NestedBlock(Block({}), Nesting.LIST, max_items=1)
    with pytest.raises(ValueError, match="SINGLE"):
        NestedBlock(Block({}), Nesting.SINGLE, max_items=1)
