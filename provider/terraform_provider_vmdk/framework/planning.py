"""The plan pipeline: from Terraform's proposed new state to the plan we promise to apply.

Order (as in terraform-plugin-framework, so behaviour is what module authors expect):
1. destroy (proposed null) → plan null;
2. defaults: optional+computed attributes with a default take it when the config leaves them null;
3. computed attributes left null by the config become unknown ("known after apply") on create, and on
   update only when something else in the resource changes;
4. attribute plan modifiers (UseStateForUnknown, RequiresReplace, ...);
5. the resource's own ``modify_plan``;
6. invariants Terraform enforces: a value set in config is planned as is.
Top-level attributes and attributes of single nested blocks take part; other nested blocks pass through.
"""

from __future__ import annotations

from typing import Any

from .diagnostics import Diagnostics
from .path import AttributePath
from .planmodifiers import AttributePlanRequest, AttributePlanResponse
from .resource import PlanRequest, Resource
from .schema import Block, Nesting
from .unknowns import UNKNOWN, is_unknown

__all__ = ["plan_resource_change", "PlanOutcome"]


class PlanOutcome:
    def __init__(self, plan: dict[str, Any] | None, requires_replace: list[AttributePath],
                 private: dict[str, Any]) -> None:
        self.plan = plan
        self.requires_replace = requires_replace
        self.private = private


def _apply_defaults_and_unknowns(block: Block, config: dict[str, Any], plan: dict[str, Any],
                                 mark_unknown: bool) -> None:
    for name, attr in block.attributes.items():
        cfg = config.get(name) if config else None
        if cfg is not None:
            continue  # set (or unknown) in config: the plan carries it as is
        if attr.default is not None:
            plan[name] = attr.default
        elif attr.computed and mark_unknown:
            plan[name] = UNKNOWN
    for name, nested in block.blocks.items():
        if nested.nesting is Nesting.SINGLE and isinstance(plan.get(name), dict):
            sub_cfg = config.get(name) if config else None
            _apply_defaults_and_unknowns(nested.block, sub_cfg if isinstance(sub_cfg, dict) else {},
                                         plan[name], mark_unknown)


def _run_modifiers(block: Block, req: PlanRequest, base: AttributePath,
                   config: dict[str, Any], prior: dict[str, Any] | None, plan: dict[str, Any],
                   replace: list[AttributePath], diags: Diagnostics) -> None:
    for name, attr in block.attributes.items():
        if not attr.plan_modifiers:
            continue
        path = base.attr(name)
        areq = AttributePlanRequest(
            path=path,
            config=config.get(name) if config else None,
            state=prior.get(name) if prior else None,
            plan=plan.get(name),
            config_object=req.config,
            state_object=req.prior,
            plan_object=req.plan,
        )
        aresp = AttributePlanResponse(plan=areq.plan)
        for modifier in attr.plan_modifiers:
            modifier.modify(areq, aresp)
            areq.plan = aresp.plan
        plan[name] = aresp.plan
        diags.extend(aresp.diagnostics)
        if aresp.requires_replace:
            replace.append(path)
    for name, nested in block.blocks.items():
        if nested.nesting is Nesting.SINGLE and isinstance(plan.get(name), dict):
            sub_cfg = config.get(name) if config else None
            sub_prior = prior.get(name) if prior else None
            _run_modifiers(nested.block, req, base.attr(name), sub_cfg if isinstance(sub_cfg, dict) else {},
                           sub_prior if isinstance(sub_prior, dict) else None, plan[name], replace, diags)


def plan_resource_change(resource: Resource, req: PlanRequest, proposed: dict[str, Any] | None) -> PlanOutcome:
    block = resource.schema().block
    diags = req.diagnostics
    if proposed is None:  # destroy
        req.plan = None
        resource.modify_plan(req)
        return PlanOutcome(None, [], req.private)

    plan = _deepcopy(proposed)
    creating = req.prior is None
    # Defaults first, then decide whether anything changes: an update only marks computed values
    # unknown when the resource really changes, else every refresh would show a diff.
    _apply_defaults_and_unknowns(block, req.config, plan, mark_unknown=False)
    changing = creating or plan != req.prior
    if changing:
        _apply_defaults_and_unknowns(block, req.config, plan, mark_unknown=True)
    req.plan = plan
    replace: list[AttributePath] = []
    _run_modifiers(block, req, AttributePath.empty(), req.config, req.prior, plan, replace, diags)
    resource.modify_plan(req)
    for name in sorted(req.requires_replace):
        path = AttributePath.root(name)
        if path not in replace:
            replace.append(path)
    if diags.has_errors:
        return PlanOutcome(req.plan, replace, req.private)
    _check_config_preserved(block, req.config, req.plan or {}, AttributePath.empty(), diags)
    return PlanOutcome(req.plan, [] if creating else replace, req.private)


def _check_config_preserved(block: Block, config: dict[str, Any], plan: dict[str, Any],
                            base: AttributePath, diags: Diagnostics) -> None:
    """Terraform rejects a plan that changes a configured value; say so here, with the attribute."""
    for name in block.attributes:
        cfg = config.get(name) if config else None
        if cfg is None or is_unknown(cfg):
            continue
        if plan.get(name) != cfg:
            diags.error(
                "Provider produced an invalid plan",
                f"{base.attr(name)} is set in the configuration but the plan changed it. This is a bug "
                "in terraform-provider-vmdk; please report it.",
                base.attr(name),
            )


def _deepcopy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _deepcopy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_deepcopy(x) for x in v]
    return v
