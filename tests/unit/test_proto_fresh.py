"""The committed gRPC stubs must match a fresh protoc run over proto/*.proto."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_fresh() -> None:
    pytest.importorskip("grpc_tools")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"stale stubs; run scripts/gen_proto.py\n{proc.stdout}\n{proc.stderr}"


def test_stubs_import_inside_package() -> None:
    from terraform_provider_vmdk.plugin._generated import (
        grpc_broker_pb2_grpc,
        grpc_controller_pb2_grpc,
        grpc_stdio_pb2_grpc,
        tfplugin6_pb2,
        tfplugin6_pb2_grpc,
    )

    assert tfplugin6_pb2.DESCRIPTOR.package == "tfplugin6"
    assert hasattr(tfplugin6_pb2_grpc, "ProviderServicer")
    assert hasattr(grpc_controller_pb2_grpc, "GRPCControllerServicer")
    assert hasattr(grpc_stdio_pb2_grpc, "GRPCStdioServicer")
    assert hasattr(grpc_broker_pb2_grpc, "GRPCBrokerServicer")


def test_wire_numbers_of_protocol_6_9_fields() -> None:
    """Spot-check field numbers whose order differs from declaration order upstream."""
    from terraform_provider_vmdk.plugin._generated import tfplugin6_pb2 as pb

    attr = pb.Schema.Attribute.DESCRIPTOR.fields_by_name
    assert attr["nested_type"].number == 10 and attr["write_only"].number == 11
    resp = pb.GetProviderSchema.Response.DESCRIPTOR.fields_by_name
    assert resp["functions"].number == 7 and resp["ephemeral_resource_schemas"].number == 8
    assert resp["diagnostics"].number == 4 and resp["server_capabilities"].number == 6
    assert pb.ValidateProviderConfig.Response.DESCRIPTOR.fields_by_name["diagnostics"].number == 2
    assert pb.ReadResource.Request.DESCRIPTOR.fields_by_name["current_identity"].number == 6
    methods = [m.name for m in pb.DESCRIPTOR.services_by_name["Provider"].methods]
    assert len(methods) == 22 and "GetResourceIdentitySchemas" in methods
