"""Framework values ↔ tfplugin6 protobuf messages: schemas, diagnostics, attribute paths."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..framework.diagnostics import Severity
from ..framework.path import AttributeName, AttributePath, ElementKeyInt, ElementKeyString
from ..framework.schema import Block, Nesting, Schema
from ..framework.secrets import redact
from ._generated import tfplugin6_pb2 as pb

__all__ = ["path_to_proto", "diagnostics_to_proto", "block_to_proto", "schema_to_proto"]

_NESTING = {
    Nesting.SINGLE: pb.Schema.NestedBlock.SINGLE,
    Nesting.LIST: pb.Schema.NestedBlock.LIST,
    Nesting.SET: pb.Schema.NestedBlock.SET,
    Nesting.MAP: pb.Schema.NestedBlock.MAP,
}


def path_to_proto(path: AttributePath) -> pb.AttributePath:
    steps = []
    for step in path.steps:
        if isinstance(step, AttributeName):
            steps.append(pb.AttributePath.Step(attribute_name=step.name))
        elif isinstance(step, ElementKeyString):
            steps.append(pb.AttributePath.Step(element_key_string=step.key))
        elif isinstance(step, ElementKeyInt):
            steps.append(pb.AttributePath.Step(element_key_int=step.key))
    return pb.AttributePath(steps=steps)


def diagnostics_to_proto(diags: Iterable[Any]) -> list[pb.Diagnostic]:
    out = []
    for d in diags:
        msg = pb.Diagnostic(
            severity=pb.Diagnostic.ERROR if d.severity is Severity.ERROR else pb.Diagnostic.WARNING,
            summary=redact(d.summary),
            detail=redact(d.detail),
        )
        if d.path is not None and d.path.steps:
            msg.attribute.CopyFrom(path_to_proto(d.path))
        out.append(msg)
    return out


def block_to_proto(block: Block, version: int = 0) -> pb.Schema.Block:
    msg = pb.Schema.Block(
        version=version,
        description=block.description,
        description_kind=pb.MARKDOWN,
        deprecated=bool(block.deprecation_message),
    )
    for name in sorted(block.attributes):
        a = block.attributes[name]
        msg.attributes.append(
            pb.Schema.Attribute(
                name=name,
                type=a.type.to_json_bytes(),
                description=a.description,
                description_kind=pb.MARKDOWN,
                required=a.required,
                optional=a.optional,
                computed=a.computed,
                sensitive=a.sensitive,
                deprecated=bool(a.deprecation_message),
            )
        )
    for name in sorted(block.blocks):
        nb = block.blocks[name]
        msg.block_types.append(
            pb.Schema.NestedBlock(
                type_name=name,
                block=block_to_proto(nb.block),
                nesting=_NESTING[nb.nesting],
                min_items=nb.min_items,
                max_items=nb.max_items,
            )
        )
    return msg


def schema_to_proto(schema: Schema) -> pb.Schema:
    return pb.Schema(version=schema.version, block=block_to_proto(schema.block, schema.version))
