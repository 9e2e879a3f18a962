"""Ctrl-C during a long apply: Terraform's StopProvider ends the provider's waits at once, the state keeps what
was asked of vSphere (tainted), nothing is leaked, and the next apply converges."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from .conftest import run

pytestmark = pytest.mark.acceptance


def slow_config(provider: str, count: int) -> str:
    return provider + "".join(f'resource "vmdk_volume" "v{i}" {{\n  name = "slow{i}"\n  size_gb = 1\n}}\n'
                              for i in range(count))


def ours(vsphere_session) -> set[str]:
    from pyVmomi import vim

    from terraform_provider_vmdk.vsphere.volumes import specs

    found = set()
    for item in vsphere_session.retrieve(vim.VirtualMachine, ["config.extraConfig"]):
        marks = {o.key: o.value for o in item.props.get("config.extraConfig") or []}
        if marks.get(specs.KEY_MANAGED_BY) == specs.MANAGED_BY:
            found.add(marks.get(specs.KEY_VOLUME_ID, ""))
    return found


def test_ctrl_c_during_slow_creates(make_tf, vsphere_provider_block, vsphere_session, vcsim, is_vcsim) -> None:
    if not is_vcsim:
        pytest.skip("needs the test vCenter's slow tasks")
    before = ours(vsphere_session)
    tf = make_tf(slow_config(vsphere_provider_block, 3))
    vcsim.set_delay("CreateVM_Task", 12)  # like a big eager-zeroed disk on a real vCenter
    started = time.monotonic()
    try:
        # a session of its own: Ctrl-C in a terminal signals the whole process group (Terraform 1.0 runs
        # itself under a wrapper that ignores SIGINT and relies on that)
        proc = subprocess.Popen([tf.binary, "apply", "-auto-approve", "-no-color"], cwd=tf.tfdir, env=tf.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        time.sleep(4)  # the three creates are running in vSphere now
        assert proc.poll() is None, proc.communicate()
        interrupted = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - interrupted
    finally:
        vcsim.set_delay("CreateVM_Task", 0)
    assert took < 5, f"terraform took {took:.1f} s to stop after Ctrl-C"
    assert proc.returncode != 0 and "Traceback" not in out + err
    assert "Cancelled" in out + err or "cancelled" in out + err, out + err
    state = json.loads(run(tf, "state", "pull").stdout)
    saved = [inst for res in state["resources"] for inst in res["instances"]]
    assert len(saved) == 3 and all(inst["attributes"]["id"] for inst in saved)  # partial state: the ids
    assert all(inst.get("status") == "tainted" for inst in saved)
    # the cancelled tasks made nothing; the next apply converges, destroy leaves nothing
    result = run(tf, "apply", "-auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes" in run(tf, "plan").stdout
    assert len(ours(vsphere_session) - before) == 3
    tf.destroy(auto_approve=True)
    assert ours(vsphere_session) == before
    # and the interrupted creates never complete later (they were cancelled, not abandoned)
    time.sleep(max(0.0, started + 14 - time.monotonic()))
    assert ours(vsphere_session) == before
