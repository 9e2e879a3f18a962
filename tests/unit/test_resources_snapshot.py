"""vmdk_snapshot and the data sources without vSphere: planning, import ids, helpers, config checks."""

from __future__ import annotations

import datetime as dt

import pytest

from terraform_provider_vmdk.framework.diagnostics import DiagnosticError, Diagnostics
from terraform_provider_vmdk.framework.planning import plan_resource_change
from terraform_provider_vmdk.framework.resource import PlanRequest, RequestContext
from terraform_provider_vmdk.framework.unknowns import UNKNOWN
from terraform_provider_vmdk.resources.backend import driver_errors, run_bounded
from terraform_provider_vmdk.resources.client import ProviderSettings, VSphereClient
from terraform_provider_vmdk.resources.data_volume import VolumeDataSource
from terraform_provider_vmdk.resources.snapshot import SnapshotResource, gib, rfc3339
from terraform_provider_vmdk.vsphere.connection.config import ConnectionConfig


def resource(fmt: str | None = "template") -> SnapshotResource:
    r = SnapshotResource()
    if fmt is None:
        r.configure(None)
    else:
        conn = ConnectionConfig(server="vc.invalid", user="u", password="p")
        r.configure(VSphereClient(ProviderSettings(connection=conn, snapshot_format=fmt)))
    return r


def config(**kw):
    base = {"id": None, "volume_id": "vol-1", "name": "s", "description": None, "format": None, "size_gb": None,
            "created_at": None, "timeouts": None}
    base.update(kw)
    return base


def plan(r: SnapshotResource, cfg: dict, prior: dict | None = None):
    proposed = dict(cfg)
    if prior is not None:  # Terraform proposes prior values for computed attributes left null in config
        for k in ("id", "size_gb", "created_at", "format"):
            if cfg.get(k) is None:
                proposed[k] = prior[k]
    req = PlanRequest(config=cfg, prior=prior)
    return plan_resource_change(r, req, proposed), req


STATE = config(id="snap-1", format="COW", size_gb=1, created_at="2026-01-01T00:00:00Z")


@pytest.mark.parametrize("default", ["COW", "template"])
def test_format_defaults_to_the_provider_setting_at_plan_time(default: str) -> None:
    outcome, req = plan(resource(default), config())
    assert outcome.plan["format"] == default
    assert outcome.plan["id"] is UNKNOWN or outcome.plan["id"] == UNKNOWN
    assert not req.diagnostics.has_errors


def test_format_unknown_when_the_provider_is_not_configured() -> None:
    outcome, _ = plan(resource(None), config())
    assert outcome.plan["format"] == UNKNOWN


def test_provider_default_change_keeps_existing_snapshots() -> None:
    outcome, _ = plan(resource("template"), config(), prior=STATE)
    assert outcome.plan["format"] == "COW" and outcome.requires_replace == []


def test_rename_is_in_place_and_keeps_computed_values() -> None:
    outcome, _ = plan(resource(), config(name="renamed", description="d"), prior=STATE)
    assert outcome.requires_replace == []
    kept = (outcome.plan["id"], outcome.plan["size_gb"], outcome.plan["created_at"])
    assert kept == ("snap-1", 1, STATE["created_at"])


def test_format_and_volume_changes_replace() -> None:
    outcome, _ = plan(resource(), config(format="template"), prior=STATE)
    assert [str(p) for p in outcome.requires_replace] == ["format"]
    outcome, _ = plan(resource(), config(volume_id="vol-2"), prior=STATE)
    assert [str(p) for p in outcome.requires_replace] == ["volume_id"]


@pytest.mark.parametrize("bad", ["no-slash", "/name", "vol/", ""])
def test_import_id_must_be_volume_slash_name(bad: str) -> None:
    with pytest.raises(DiagnosticError, match="Invalid import id"):
        resource().import_state(bad, RequestContext())


def test_helpers() -> None:
    assert gib(1024**3) == 1 and gib(3 * 1024**3) == 3 and gib(1024**3 // 2) == 0.5 and gib(None) is None
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert rfc3339(dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=plus_two)) == "2026-01-02T01:04:05Z"
    assert rfc3339(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z" and rfc3339(None) is None


def test_driver_errors_turn_driver_errors_and_raw_faults_into_diagnostics() -> None:
    from pyVmomi import vmodl

    from terraform_provider_vmdk.vsphere.exceptions import NoValidDatastore

    def in_use():
        raise NoValidDatastore("no datastore for vm-a")

    def no_method():
        raise vmodl.fault.MethodNotFound(msg="Snapshot does not implement: RenameSnapshot")

    with pytest.raises(DiagnosticError) as err:
        driver_errors("snapshot", in_use, "volume_id")
    (d,) = list(err.value.diagnostics)
    assert d.summary == "Cannot snapshot" and "vm-a" in d.detail and str(d.path) == "volume_id"
    with pytest.raises(DiagnosticError) as err:
        driver_errors("rename", no_method)
    (d,) = list(err.value.diagnostics)
    assert "MethodNotFound" in d.detail and "RenameSnapshot" in d.detail


def test_run_bounded_returns_at_once_when_time_runs_out_and_the_work_sees_it() -> None:
    import threading
    import time

    from terraform_provider_vmdk.vsphere import exceptions as vexc
    from terraform_provider_vmdk.vsphere.connection import budget

    seen: list[str] = []
    finished = threading.Event()

    def slow():
        try:
            budget.current().sleep(5)  # a task poll's wait: wakes when the budget ends
        except vexc.OperationTimedOut:
            seen.append("timed out")
        finally:
            finished.set()
        return "made"

    started = time.monotonic()
    with pytest.raises(DiagnosticError, match="Timed out"):
        run_bounded("slow thing", 0.05, threading.Event(), slow)
    assert time.monotonic() - started < 3
    assert finished.wait(5) and seen == ["timed out"]
    assert run_bounded("quick", 5, threading.Event(), lambda: 42) == 42
    with pytest.raises(ValueError):
        run_bounded("failing", 5, threading.Event(), lambda: (_ for _ in ()).throw(ValueError("x")))


def test_run_bounded_stops_on_stop_provider() -> None:
    import threading
    import time

    from terraform_provider_vmdk.vsphere.connection import budget

    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(DiagnosticError, match="Cancelled"):
        run_bounded("long thing", None, stop, lambda: budget.current().sleep(30))
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("cfg, ok", [({"id": "a", "name": None}, True), ({"id": None, "name": "n"}, True),
                                     ({"id": "a", "name": "n"}, False), ({"id": None, "name": None}, False),
                                     ({"id": UNKNOWN, "name": None}, True)])
def test_volume_data_source_needs_exactly_one_of_id_and_name(cfg: dict, ok: bool) -> None:
    diags = Diagnostics()
    VolumeDataSource().validate_config(cfg, diags)
    assert diags.has_errors is not ok
