"""The tfplugin6 Provider service: protobuf in, framework server call, protobuf out.

Each RPC is wrapped so that any failure becomes a diagnostic — ``DiagnosticError`` as itself, anything
unexpected as an error naming the RPC (and logged with its traceback on stderr) — and never a gRPC
error or a Python traceback in front of the user.

Start-up matters (Terraform starts the provider several times per command): this module is loaded after
the handshake line (``lazy_service``), and the framework and the provider are built on first use.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..framework.diagnostics import DiagnosticError, Diagnostics
from ._generated import tfplugin6_pb2 as pb
from ._generated import tfplugin6_pb2_grpc as pb_grpc
from .convert import diagnostics_to_proto, path_to_proto, schema_to_proto

if TYPE_CHECKING:  # pragma: no cover
    from ..framework.server import FrameworkServer

__all__ = ["ProviderServicer"]

log = logging.getLogger("terraform_provider_vmdk.plugin")

R = TypeVar("R")


_first_answer = threading.Event()


def _process_age() -> float | None:
    """Seconds since this process started (Linux /proc), None elsewhere."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _log_first_answer(name: str) -> None:
    """Once per process: how long the launch took until its first RPC was answered (bench_overhead)."""
    if _first_answer.is_set():
        return
    _first_answer.set()
    age = _process_age()
    if age is not None:
        log.debug("first rpc answered (%s): %.3f s after the process started", name, age)


def _dv(data: bytes | None) -> pb.DynamicValue:
    return pb.DynamicValue(msgpack=data or b"")


def _raw(dv: pb.DynamicValue) -> bytes:
    if dv.msgpack:
        return dv.msgpack
    if dv.json:
        raise DiagnosticError("Unsupported value encoding", "Terraform sent JSON where msgpack was expected.")
    return b""


def rpc(name: str, response: Callable[..., Any]) -> Callable[[Callable[..., R]], Callable[..., Any]]:
    """Wrap an RPC body: its Result's diagnostics, or any exception, land in the response's diagnostics."""

    def decorate(body: Callable[..., R]) -> Callable[..., Any]:
        @functools.wraps(body)
        def handler(self: ProviderServicer, request: Any, context: Any) -> Any:
            log.debug("rpc %s", name)
            try:
                return body(self, request, context)
            except DiagnosticError as exc:
                diags = exc.diagnostics
            except Exception:
                log.exception("unexpected error in %s", name)
                subject = getattr(request, "type_name", "") or "the provider"
                diags = Diagnostics()
                diags.error(
                    f"Unexpected error in {name} ({subject})",
                    f"The provider failed unexpectedly in {name} for {subject}. The provider log "
                    "(TF_LOG_PROVIDER=DEBUG) has the details. This is a bug in terraform-provider-vmdk; please "
                    "report it.",
                )
            return response(diagnostics=diagnostics_to_proto(diags))

        @functools.wraps(body)
        def timed(self: ProviderServicer, request: Any, context: Any) -> Any:
            started = time.monotonic()
            try:
                return handler(self, request, context)
            finally:
                log.debug("rpc %s answered in %.3f s", name, time.monotonic() - started)
                _log_first_answer(name)

        return timed

    return decorate


class ProviderServicer(pb_grpc.ProviderServicer):
    def __init__(self, server_factory: Callable[[], FrameworkServer]) -> None:
        self._factory = server_factory
        self._fw: FrameworkServer | None = None
        self._fw_lock = threading.Lock()
        self._schema_cache: pb.GetProviderSchema.Response | None = None

    @property
    def fw(self) -> FrameworkServer:
        if self._fw is None:
            with self._fw_lock:
                if self._fw is None:
                    self._fw = self._factory()
        return self._fw

    def on_shutdown(self) -> None:
        if self._fw is not None:
            self._fw.stop()
            self._fw.provider.shutdown()

    # -- discovery ---------------------------------------------------------------------------------
    def _capabilities(self) -> pb.ServerCapabilities:
        # get_provider_schema_optional: Terraform (1.6+) may reuse the schema it already holds for this
        # provider instead of asking every one of the 3-5 processes it starts per command.
        return pb.ServerCapabilities(plan_destroy=True, get_provider_schema_optional=True)

    @rpc("GetMetadata", pb.GetMetadata.Response)
    def GetMetadata(self, request: Any, context: Any) -> Any:
        return pb.GetMetadata.Response(
            server_capabilities=self._capabilities(),
            resources=[pb.GetMetadata.ResourceMetadata(type_name=n) for n in sorted(self.fw.resources)],
            data_sources=[pb.GetMetadata.DataSourceMetadata(type_name=n) for n in sorted(self.fw.data_sources)],
        )

    @rpc("GetProviderSchema", pb.GetProviderSchema.Response)
    def GetProviderSchema(self, request: Any, context: Any) -> Any:
        if self._schema_cache is None:
            resp = pb.GetProviderSchema.Response(
                provider=schema_to_proto(self.fw.schema_of("provider")),
                server_capabilities=self._capabilities(),
                provider_meta=pb.Schema(block=pb.Schema.Block()),
            )
            for name in self.fw.resources:
                resp.resource_schemas[name].CopyFrom(schema_to_proto(self.fw.schema_of("resource", name)))
            for name in self.fw.data_sources:
                resp.data_source_schemas[name].CopyFrom(schema_to_proto(self.fw.schema_of("data", name)))
            self._schema_cache = resp
        return self._schema_cache

    # -- provider ------------------------------------------------------------------------------------
    @rpc("ValidateProviderConfig", pb.ValidateProviderConfig.Response)
    def ValidateProviderConfig(self, request: Any, context: Any) -> Any:
        res = self.fw.validate_provider_config(_raw(request.config))
        return pb.ValidateProviderConfig.Response(diagnostics=diagnostics_to_proto(res.diagnostics))

    @rpc("ConfigureProvider", pb.ConfigureProvider.Response)
    def ConfigureProvider(self, request: Any, context: Any) -> Any:
        log.info("configuring provider", extra={"terraform_version": request.terraform_version})
        res = self.fw.configure_provider(_raw(request.config))
        return pb.ConfigureProvider.Response(diagnostics=diagnostics_to_proto(res.diagnostics))

    @rpc("StopProvider", pb.StopProvider.Response)
    def StopProvider(self, request: Any, context: Any) -> Any:
        self.fw.stop()
        return pb.StopProvider.Response()

    # -- validation ----------------------------------------------------------------------------------
    @rpc("ValidateResourceConfig", pb.ValidateResourceConfig.Response)
    def ValidateResourceConfig(self, request: Any, context: Any) -> Any:
        res = self.fw.validate_resource_config(request.type_name, _raw(request.config))
        return pb.ValidateResourceConfig.Response(diagnostics=diagnostics_to_proto(res.diagnostics))

    @rpc("ValidateDataResourceConfig", pb.ValidateDataResourceConfig.Response)
    def ValidateDataResourceConfig(self, request: Any, context: Any) -> Any:
        res = self.fw.validate_data_source_config(request.type_name, _raw(request.config))
        return pb.ValidateDataResourceConfig.Response(diagnostics=diagnostics_to_proto(res.diagnostics))

    @rpc("UpgradeResourceState", pb.UpgradeResourceState.Response)
    def UpgradeResourceState(self, request: Any, context: Any) -> Any:
        res = self.fw.upgrade_resource_state(
            request.type_name, request.version, request.raw_state.json, dict(request.raw_state.flatmap)
        )
        return pb.UpgradeResourceState.Response(
            upgraded_state=_dv(res.value), diagnostics=diagnostics_to_proto(res.diagnostics)
        )

    # -- managed resources ---------------------------------------------------------------------------
    @rpc("ReadResource", pb.ReadResource.Response)
    def ReadResource(self, request: Any, context: Any) -> Any:
        res = self.fw.read_resource(request.type_name, _raw(request.current_state), request.private)
        return pb.ReadResource.Response(
            new_state=_dv(res.value), private=res.private, diagnostics=diagnostics_to_proto(res.diagnostics)
        )

    @rpc("PlanResourceChange", pb.PlanResourceChange.Response)
    def PlanResourceChange(self, request: Any, context: Any) -> Any:
        res = self.fw.plan_resource_change(
            request.type_name,
            _raw(request.prior_state),
            _raw(request.proposed_new_state),
            _raw(request.config),
            request.prior_private,
        )
        return pb.PlanResourceChange.Response(
            planned_state=_dv(res.value),
            requires_replace=[path_to_proto(p) for p in res.requires_replace],
            planned_private=res.private,
            diagnostics=diagnostics_to_proto(res.diagnostics),
        )

    @rpc("ApplyResourceChange", pb.ApplyResourceChange.Response)
    def ApplyResourceChange(self, request: Any, context: Any) -> Any:
        res = self.fw.apply_resource_change(
            request.type_name,
            _raw(request.prior_state),
            _raw(request.planned_state),
            _raw(request.config),
            request.planned_private,
        )
        return pb.ApplyResourceChange.Response(
            new_state=_dv(res.value), private=res.private, diagnostics=diagnostics_to_proto(res.diagnostics)
        )

    @rpc("ImportResourceState", pb.ImportResourceState.Response)
    def ImportResourceState(self, request: Any, context: Any) -> Any:
        res = self.fw.import_resource_state(request.type_name, request.id)
        return pb.ImportResourceState.Response(
            imported_resources=[
                pb.ImportResourceState.ImportedResource(type_name=t, state=_dv(s), private=p)
                for t, s, p in res.imported
            ],
            diagnostics=diagnostics_to_proto(res.diagnostics),
        )

    @rpc("ReadDataSource", pb.ReadDataSource.Response)
    def ReadDataSource(self, request: Any, context: Any) -> Any:
        res = self.fw.read_data_source(request.type_name, _raw(request.config))
        return pb.ReadDataSource.Response(state=_dv(res.value), diagnostics=diagnostics_to_proto(res.diagnostics))
