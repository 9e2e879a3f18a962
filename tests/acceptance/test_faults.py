"""Real Terraform through a fault-injecting proxy: applies under faults never leak, duplicate or wedge.

Each test aims faults at kinds of writes, then checks what a user would: the apply either succeeds or fails
with a diagnostic naming the resource (no traceback, no "inconsistent result"), a fault-free apply converges,
the inventory holds exactly what the state holds, and destroy leaves nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run

pytestmark = pytest.mark.acceptance

BAD = ("Traceback", "inconsistent result", "This is a bug in the provider", "Required field")


@pytest.fixture
def proxy(fault_proxy):
    return fault_proxy


@pytest.fixture
def proxied_provider(vsphere_provider_block, vcsim, proxy) -> str:
    block = vsphere_provider_block.replace(vcsim.server, proxy.server)
    return block.rstrip().rstrip("}") + "  api_retry_count = 4\n}\n"


def config(provider: str, volumes: int, snapshots: bool = True, clone: bool = True) -> str:
    body = [provider]
    for i in range(volumes):
        body.append(f'resource "vmdk_volume" "v{i}" {{\n  name = "f{i}"\n  size_gb = 1\n}}\n')
        if snapshots:
            fmt = "COW" if i % 2 else "template"
            body.append(f'resource "vmdk_snapshot" "s{i}" {{\n  volume_id = vmdk_volume.v{i}.id\n  name = "s{i}"\n'
                        f'  format = "{fmt}"\n}}\n')
    if clone:
        body.append('resource "vmdk_volume" "full" {\n  name = "full"\n  size_gb = 1\n'
                    '  source_volume_id = vmdk_volume.v0.id\n}\n')
        body.append('resource "vmdk_volume" "linked" {\n  name = "linked"\n  size_gb = 1\n  clone_type = "linked"\n'
                    '  source_volume_id = vmdk_volume.v1.id\n}\n')
    return "\n".join(body)


def state_ids(tf) -> tuple[set[str], set[str]]:
    state = json.loads(run(tf, "state", "pull").stdout or "{}")
    volumes, snaps = set(), set()
    for res in state.get("resources", []):
        for inst in res.get("instances", []):
            ident = inst["attributes"].get("id")
            (volumes if res["type"] == "vmdk_volume" else snaps).add(ident)
    return volumes, snaps


def inventory(vsphere_session) -> tuple[list[str], list[str]]:
    """Volume ids (one entry per backing VM: duplicates show) and template snapshot ids of ours."""
    from pyVmomi import vim

    from terraform_provider_vmdk.vsphere.volumes import specs

    volumes, snaps = [], []
    for item in vsphere_session.retrieve(vim.VirtualMachine, ["config.extraConfig"]):
        marks = {o.key: o.value for o in item.props.get("config.extraConfig") or []}
        if marks.get(specs.KEY_MANAGED_BY) != specs.MANAGED_BY:
            continue
        if marks.get(specs.KEY_KIND) == specs.KIND_SNAPSHOT:
            snaps.append(marks[specs.KEY_SNAPSHOT_ID])
        else:
            volumes.append(marks[specs.KEY_VOLUME_ID])
    return volumes, snaps


def converge_and_check(tf, vsphere_session, proxy, before: tuple[list[str], list[str]]) -> None:
    proxy.clear()
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes" in run(tf, "plan").stdout
    volumes, snaps = state_ids(tf)
    now_volumes, now_snaps = inventory(vsphere_session)
    mine = [v for v in now_volumes if v not in before[0]]
    assert sorted(mine) == sorted(volumes), "one backing per volume in state, nothing else"
    assert {s for s in now_snaps if s not in before[1]} <= snaps
    destroyed = run(tf, "destroy", "-auto-approve")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    after_volumes, after_snaps = inventory(vsphere_session)
    assert sorted(after_volumes) == sorted(before[0]) and sorted(after_snaps) == sorted(before[1])


@pytest.mark.parametrize("fault", ["lost_response", "reset", "session_end", "http503"])
def test_apply_under_faults_on_every_kind_of_write(make_tf, proxied_provider, proxy, vsphere_session, fault) -> None:
    before = inventory(vsphere_session)
    tf = make_tf(config(proxied_provider, 3))
    for method in ("CreateVM_Task", "CloneVM_Task", "CreateSnapshot_Task", "ReconfigVM_Task", "MarkAsTemplate"):
        proxy.inject(fault, method, times=2)
    result = run(tf, "apply", "-auto-approve", "-parallelism=10")
    output = result.stdout + result.stderr
    assert not any(b in output for b in BAD), output
    assert result.returncode == 0, output  # every one of these faults is retried or reconciled
    assert proxy.counts[fault] >= 5
    converge_and_check(tf, vsphere_session, proxy, before)


def test_a_create_vsphere_never_gets_is_reported_and_then_converges(make_tf, proxied_provider, proxy,
                                                                    vsphere_session) -> None:
    before = inventory(vsphere_session)
    tf = make_tf(config(proxied_provider, 2, snapshots=False, clone=False))
    proxy.inject("reset", "CreateVM_Task", times=None)
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 1 and "vmdk_volume.v" in result.stderr and "Cannot create the volume" in result.stderr
    assert not any(b in result.stdout + result.stderr for b in BAD), result.stderr
    volumes, _ = state_ids(tf)
    assert volumes and None not in volumes  # the ids were saved (tainted), nothing vSphere holds is unknown
    converge_and_check(tf, vsphere_session, proxy, before)


def test_a_lost_create_answer_never_duplicates(make_tf, proxied_provider, proxy, vsphere_session) -> None:
    before = inventory(vsphere_session)
    tf = make_tf(config(proxied_provider, 4, snapshots=False, clone=False))
    proxy.inject("lost_response", "CreateVM_Task", times=None)  # every create acts, no answer ever comes
    result = run(tf, "apply", "-auto-approve", "-parallelism=4")
    assert result.returncode == 0, result.stdout + result.stderr
    volumes, _ = state_ids(tf)
    mine = [v for v in inventory(vsphere_session)[0] if v not in before[0]]
    assert sorted(mine) == sorted(volumes) and len(volumes) == 4
    converge_and_check(tf, vsphere_session, proxy, before)


def test_a_wedged_state_from_an_older_version_is_read_planned_and_destroyed(make_tf, proxied_provider, proxy,
                                                                          vsphere_session) -> None:
    """A state saved without an id (what an older version left after a failed create) blocks nothing."""
    before = inventory(vsphere_session)
    tf = make_tf(config(proxied_provider, 1, snapshots=False, clone=False))
    assert run(tf, "apply", "-auto-approve").returncode == 0
    state = json.loads(run(tf, "state", "pull").stdout)
    attributes = state["resources"][0]["instances"][0]["attributes"]
    for key in ("id", "size_gb", "disk_uuid", "backing_moref"):
        attributes[key] = None
    state["serial"] += 1
    Path(tf.tfdir, "wedged.tfstate").write_text(json.dumps(state))
    assert run(tf, "state", "push", "wedged.tfstate").returncode == 0
    plan = run(tf, "plan")
    assert plan.returncode == 0 and not any(b in plan.stdout + plan.stderr for b in BAD), plan.stderr
    converge_and_check(tf, vsphere_session, proxy, before)
