"""Volumes in datastore clusters (StoragePods) through real Terraform against our simulator's pods.

main.go's pods: pod-gold (Storage DRS on, automated; gold-1 400 GiB free, gold-2 300, gold-3 180), pod-silver
(on, manual; silver-1, silver-2) and pod-off (Storage DRS disabled; off-1, off-2). The simulator's Storage DRS
ranks members by space utilisation after the placement (FIDELITY.md): pod-gold recommends gold-1 (61 %), then
gold-3 (65 %), then gold-2 (71 %). Tests that change a pod put it
back; each makes and destroys its own volumes.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from .conftest import run, write_config

pytestmark = pytest.mark.acceptance

BAD = ("Traceback", "inconsistent result", "This is a bug in the provider", "Unexpected error")
GOLD = ("gold-1", "gold-2", "gold-3")


def _volume(body: str = "", name: str | None = None) -> str:
    return f"""
resource "vmdk_volume" "v" {{
  name    = "{name or 'pod-' + uuid.uuid4().hex[:8]}"
  size_gb = 1
{body}}}
output "v" {{ value = vmdk_volume.v }}
"""


def _unchanged(tf) -> bool:
    """A plan with no resource action (outputs that show new datastore figures do not count)."""
    plan = run(tf, "plan")
    assert plan.returncode == 0, plan.stderr
    return re.search(r"will be (created|updated|destroyed|replaced)|must be replaced", plan.stdout) is None


def _log_env(tf) -> dict[str, str]:
    return {"TF_LOG_PROVIDER": "INFO", "TF_LOG_PATH": str(Path(tf.tfdir) / "provider.log")}


def _log(tf) -> str:
    path = Path(tf.tfdir) / "provider.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_volume_goes_where_storage_drs_recommends_and_stays_in_its_cluster(
        make_tf, vsphere_provider_block, vcsim, scan_backings) -> None:
    before = set(scan_backings())
    tf = make_tf(vsphere_provider_block + _volume('  datastore_cluster = "pod-gold"\n'))
    planned = run(tf, "plan", "-no-color")
    assert planned.returncode == 0, planned.stderr
    assert re.search(r'datastore_cluster\s+= "pod-gold"', planned.stdout), planned.stdout
    assert re.search(r"datastore\s+= \(known after apply\)", planned.stdout), planned.stdout
    applied = run(tf, "apply", "-auto-approve", env=_log_env(tf))
    assert applied.returncode == 0 and not any(b in applied.stdout + applied.stderr for b in BAD), applied.stderr
    v = tf.output()["v"]
    # Storage DRS's first recommendation (the member with the most free space) was applied, not a CreateVM
    assert v["datastore"] == "gold-1" and v["datastore_cluster"] == "pod-gold"
    assert "Storage DRS recommendation" in _log(tf) and "no ApplyStorageDrsRecommendation_Task" not in _log(tf)
    assert _unchanged(tf)
    # Storage DRS (automated) moves it to another member: the state follows, no change planned
    vcsim.svmotion(v["backing_name"], "gold-2")
    assert _unchanged(tf)
    tf.apply()  # a refresh
    assert tf.output()["v"]["datastore"] == "gold-2"
    # an administrator moves it out of the cluster: the plan moves it back into a member
    vcsim.svmotion(v["backing_name"], "ds-big")
    plan = run(tf, "plan", "-detailed-exitcode")
    assert plan.returncode == 2, plan.stderr
    assert "Volume will be relocated into the datastore cluster" in plan.stdout + plan.stderr
    assert run(tf, "apply", "-auto-approve").returncode == 0
    back = tf.output()["v"]
    assert back["datastore"] in GOLD and back["datastore_cluster"] == "pod-gold" and back["id"] == v["id"]
    assert _unchanged(tf)
    assert run(tf, "destroy", "-auto-approve").returncode == 0
    assert set(scan_backings()) == before


def test_our_rules_veto_recommendations_and_members_mode_ranks_itself(
        make_tf, vsphere_provider_block, vcsim) -> None:
    # datastore_regex vetoes gold-1 (the first recommendation): the next acceptable one is applied
    block = vsphere_provider_block.replace("\n}\n", '\n  datastore_regex = "^(gold-[23]|silver|ds-)"\n}\n')
    tf = make_tf(block + _volume('  datastore_cluster = "pod-gold"\n'))
    applied = run(tf, "apply", "-auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert tf.output()["v"]["datastore"] == "gold-3"
    assert run(tf, "destroy", "-auto-approve").returncode == 0
    # every member vetoed by the rules: a plan error naming each member and why
    none = make_tf(vsphere_provider_block.replace("\n}\n", '\n  datastore_regex = "^silver"\n}\n')
                   + _volume('  datastore_cluster = "pod-gold"\n'), name="none")
    refused = run(none, "plan")
    assert refused.returncode == 1 and "No usable datastore in the datastore cluster" in refused.stderr
    assert all(m in refused.stderr for m in GOLD) and "datastore_regex" in refused.stderr
    assert not any(b in refused.stderr for b in BAD)
    # members mode on a cluster whose Storage DRS is off: our ranking picks among its members
    off = make_tf(vsphere_provider_block + _volume('  datastore_cluster      = "pod-off"\n'
                                                   '  datastore_cluster_mode = "members"\n'), name="off")
    applied = run(off, "apply", "-auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert off.output()["v"]["datastore"] in ("off-1", "off-2")
    assert off.output()["v"]["datastore_cluster"] == "pod-off"
    assert _unchanged(off)
    assert run(off, "destroy", "-auto-approve").returncode == 0


def test_plan_time_errors_name_datastore_cluster(make_tf, vsphere_provider_block, scan_backings) -> None:
    before = set(scan_backings())
    cases = {
        "disabled": ('  datastore_cluster = "pod-off"\n', "Storage DRS is disabled"),
        "unknown": ('  datastore_cluster = "pod-nowhere"\n', "Datastore cluster not found"),
        "both": ('  datastore_cluster = "pod-gold"\n  datastore = "gold-1"\n', "Conflicting placement"),
        "room": ('  datastore_cluster = "pod-silver"\n', "Not enough room in the datastore cluster"),
    }
    for name, (body, summary) in cases.items():
        tf = make_tf(vsphere_provider_block + _volume(body).replace("size_gb = 1", "size_gb = 5000"
                                                                     if name == "room" else "size_gb = 1"),
                     name=name)
        planned = run(tf, "plan")
        assert planned.returncode == 1 and summary in planned.stderr, (name, planned.stderr)
        assert "datastore_cluster" in planned.stderr and not any(b in planned.stderr for b in BAD)
    assert set(scan_backings()) == before  # nothing was written


def test_provider_default_cluster_and_the_data_sources(make_tf, vsphere_provider_block, vcsim) -> None:
    block = vsphere_provider_block.replace("\n}\n", '\n  datastore_cluster = "pod-silver"\n}\n')
    tf = make_tf(block + _volume() + """
resource "vmdk_volume" "w" {
  name      = "pinned"
  size_gb   = 1
  datastore = "ds-big"
}
output "w" { value = vmdk_volume.w }
data "vmdk_datastore_cluster" "silver" {
  name = "pod-silver"
}
data "vmdk_datastores" "silver" {
  datastore_cluster = "pod-silver"
}
data "vmdk_datastores" "all" {}
output "silver" { value = data.vmdk_datastore_cluster.silver }
output "members" { value = data.vmdk_datastores.silver }
output "all" { value = data.vmdk_datastores.all }
""")
    applied = run(tf, "apply", "-auto-approve")
    assert applied.returncode == 0, applied.stderr
    out = tf.output()
    assert out["v"]["datastore_cluster"] == "pod-silver" and out["v"]["datastore"] in ("silver-1", "silver-2")
    silver = out["silver"]
    assert silver["members"] == ["silver-1", "silver-2"] and silver["sdrs_enabled"] is True
    assert silver["default_vm_behavior"] == "manual" and silver["capacity_gb"] == 1200 + 600
    by_name = {d["name"]: d for d in out["all"]["datastores"]}
    assert silver["free_gb"] == pytest.approx(by_name["silver-1"]["free_gb"] + by_name["silver-2"]["free_gb"],
                                              abs=0.01)
    assert by_name["gold-3"]["datastore_cluster"] == "pod-gold" and by_name["ds-big"]["datastore_cluster"] is None
    assert sorted(d["name"] for d in out["members"]["datastores"]) == ["silver-1", "silver-2"]
    # a volume that names a datastore is not put into the default cluster
    assert out["w"]["datastore"] == "ds-big" and out["w"]["datastore_cluster"] is None
    assert _unchanged(tf)
    # the default is held like the volume's own setting: moved out, it is planned back in
    vcsim.svmotion(out["v"]["backing_name"], "ds-c0")
    plan = run(tf, "plan")
    assert "Volume will be relocated into the datastore cluster" in plan.stdout + plan.stderr, plan.stdout
    assert run(tf, "apply", "-auto-approve").returncode == 0
    back = tf.output()["v"]
    assert back["datastore"] in ("silver-1", "silver-2") and tf.output()["w"]["datastore"] == "ds-big"
    # imported: its cluster is read from its datastore
    assert run(tf, "state", "rm", "vmdk_volume.v").returncode == 0
    imported = run(tf, "import", "vmdk_volume.v", out["v"]["id"])
    assert imported.returncode == 0, imported.stderr
    shown = run(tf, "state", "show", "vmdk_volume.v")
    assert re.search(r'datastore_cluster\s+= "pod-silver"', shown.stdout), shown.stdout
    assert _unchanged(tf)
    assert run(tf, "destroy", "-auto-approve").returncode == 0


def test_stock_vcsim_without_apply_creates_on_the_recommended_member(make_tf, tmp_path) -> None:
    """govmomi's simulator has a stub RecommendDatastores and no ApplyStorageDrsRecommendation_Task
    (MethodNotFound): the volume is made by CreateVM on the recommended member, once."""
    from pyVmomi import vim

    from terraform_provider_vmdk.vsphere.connection.session import Session
    from tests.vcsim.harness import start_vcsim

    sim = start_vcsim(mode="stock")
    try:
        session = Session(sim.connection_config())
        session.connect()
        dc = session.content.rootFolder.childEntity[0]
        pod = dc.datastoreFolder.CreateStoragePod(name="pod-stock")
        stores = [d for d in dc.datastoreFolder.childEntity if isinstance(d, vim.Datastore)]
        member = stores[0]
        session.run_task(pod.MoveIntoFolder_Task, list=[member])  # one call: vcsim duplicates children otherwise
        block = (f'provider "vmdk" {{\n  vsphere_server = "{sim.server}"\n  user = "{sim.user}"\n'
                 f'  password = "{sim.password}"\n  ca_file = "{sim.ca_file}"\n  datastore_types = ["OTHER"]\n}}\n')
        tf = make_tf(block + _volume('  datastore_cluster = "pod-stock"\n'))
        applied = run(tf, "apply", "-auto-approve", env=_log_env(tf))
        assert applied.returncode == 0 and not any(b in applied.stdout + applied.stderr for b in BAD), applied.stderr
        v = tf.output()["v"]
        assert v["datastore"] == member.name and v["datastore_cluster"] == "pod-stock"
        assert "no ApplyStorageDrsRecommendation_Task" in _log(tf)
        named = [i for i in session.retrieve(vim.VirtualMachine, ["name"]) if i.props["name"] == v["backing_name"]]
        assert len(named) == 1  # no duplicate
        assert _unchanged(tf)
        assert run(tf, "destroy", "-auto-approve").returncode == 0
        session.logout()
    finally:
        sim.stop()


def test_clones_extends_and_a_changed_cluster_stay_in_a_cluster(make_tf, vsphere_provider_block, vcsim) -> None:
    body = """
resource "vmdk_volume" "v" {{
  name              = "moving"
  size_gb           = {size}
  disk_type         = "thick"
  datastore_cluster = "{pod}"
}}
resource "vmdk_volume" "copy" {{
  name              = "copy"
  size_gb           = 1
  source_volume_id  = vmdk_volume.v.id
  datastore_cluster = "pod-gold"
}}
output "v" {{ value = vmdk_volume.v }}
output "copy" {{ value = vmdk_volume.copy }}
"""
    tf = make_tf(vsphere_provider_block + body.format(size=1, pod="pod-silver"))
    applied = run(tf, "apply", "-auto-approve")
    assert applied.returncode == 0, applied.stderr
    v, copy = tf.output()["v"], tf.output()["copy"]
    assert v["datastore"] in ("silver-1", "silver-2") and copy["datastore"] in GOLD
    assert copy["datastore_cluster"] == "pod-gold"
    # the member it is on has no room to grow: it moves to the other member of its cluster, never out of it
    here = v["datastore"]
    other = "silver-2" if here == "silver-1" else "silver-1"
    free = {d.name: d.free_space for d in _datastores(vcsim)}
    vcsim.set_datastore(here, free=1 << 30)
    try:
        write_config(Path(tf.tfdir), vsphere_provider_block + body.format(size=3, pod="pod-silver"))
        plan = run(tf, "plan")
        assert plan.returncode == 0 and "Volume will move before it grows" in plan.stdout + plan.stderr, plan.stderr
        applied = run(tf, "apply", "-auto-approve")
        assert applied.returncode == 0, applied.stderr
        grown = tf.output()["v"]
        assert grown["size_gb"] == 3 and grown["datastore"] == other and grown["datastore_cluster"] == "pod-silver"
    finally:
        vcsim.set_datastore(here, free=free[here])
    # another cluster: relocated into it in place, same volume
    write_config(Path(tf.tfdir), vsphere_provider_block + body.format(size=3, pod="pod-gold"))
    plan = run(tf, "plan")
    assert "Volume will be relocated into the datastore cluster" in plan.stdout + plan.stderr, plan.stderr
    assert "must be replaced" not in plan.stdout
    applied = run(tf, "apply", "-auto-approve")
    assert applied.returncode == 0, applied.stderr
    moved = tf.output()["v"]
    assert moved["id"] == v["id"] and moved["datastore"] in GOLD and moved["datastore_cluster"] == "pod-gold"
    assert _unchanged(tf)
    assert run(tf, "destroy", "-auto-approve").returncode == 0


def _datastores(vcsim) -> list:
    from terraform_provider_vmdk.vsphere.connection.session import Session
    from terraform_provider_vmdk.vsphere.placement.inventory import Inventory

    session = Session(vcsim.connection_config())
    try:
        return Inventory(session).datastores()
    finally:
        session.logout()


def test_ctrl_c_during_an_apply_keeps_the_id_and_leaks_nothing(make_tf, vsphere_provider_block, vsphere_session,
                                                               vcsim, scan_backings) -> None:
    import json
    import os
    import signal
    import subprocess
    import time

    before = set(scan_backings())
    tf = make_tf(vsphere_provider_block + _volume('  datastore_cluster = "pod-silver"\n', name="interrupted"))
    vcsim.set_delay("ApplyStorageDrsRecommendation_Task", 10)
    try:
        proc = subprocess.Popen([tf.binary, "apply", "-auto-approve", "-no-color"], cwd=tf.tfdir, env=tf.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        time.sleep(4)  # the apply is running in vSphere now
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        vcsim.set_delay("ApplyStorageDrsRecommendation_Task", 0)
    assert proc.returncode != 0 and not any(b in out + err for b in BAD), out + err
    state = json.loads(run(tf, "state", "pull").stdout)
    saved = [inst for res in state["resources"] for inst in res["instances"]]
    assert len(saved) == 1 and saved[0]["attributes"]["id"]  # the identity fixed before the call is kept
    applied = run(tf, "apply", "-auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert tf.output()["v"]["datastore_cluster"] == "pod-silver" and _unchanged(tf)
    assert run(tf, "destroy", "-auto-approve").returncode == 0
    assert set(scan_backings()) == before


def test_parallel_creates_into_a_cluster_do_not_over_commit_a_member(make_tf, vsphere_provider_block, vcsim) -> None:
    limits = {"gold-1": 20, "gold-2": 30, "gold-3": 40}  # GiB free: room for 2, 3 and 4 volumes of 10 GiB
    free = {d.name: d.free_space for d in _datastores(vcsim) if d.name in limits}
    for name, gib in limits.items():
        vcsim.set_datastore(name, free=gib << 30)
    try:
        tf = make_tf(vsphere_provider_block + """
resource "vmdk_volume" "v" {
  count             = 8
  name              = "parallel-${count.index}"
  size_gb           = 10
  datastore_cluster = "pod-gold"
}
output "where" { value = vmdk_volume.v[*].datastore }
""")
        applied = run(tf, "apply", "-auto-approve", "-parallelism=8")
        assert applied.returncode == 0 and not any(b in applied.stdout + applied.stderr for b in BAD), applied.stderr
        where = tf.output()["where"]
        assert len(where) == 8 and all(w in limits for w in where)
        assert all(where.count(name) * 10 <= gib for name, gib in limits.items()), where
        assert run(tf, "destroy", "-auto-approve", "-parallelism=8").returncode == 0
    finally:
        for name, value in free.items():
            vcsim.set_datastore(name, free=value)


def test_an_esxi_host_has_no_datastore_clusters(make_tf) -> None:
    from tests.vcsim.harness import start_vcsim

    sim = start_vcsim(mode="esx")
    try:
        block = (f'provider "vmdk" {{\n  vsphere_server = "{sim.server}"\n  user = "{sim.user}"\n'
                 f'  password = "{sim.password}"\n  ca_file = "{sim.ca_file}"\n}}\n')
        tf = make_tf(block + _volume('  datastore_cluster = "pod-gold"\n') + """
data "vmdk_datastores" "all" {}
output "clusters" { value = [for d in data.vmdk_datastores.all.datastores : d.datastore_cluster] }
""")
        planned = run(tf, "plan")
        assert planned.returncode == 1 and "No datastore clusters on an ESXi host" in planned.stderr
        assert "datastore_cluster" in planned.stderr and not any(b in planned.stderr for b in BAD)
    finally:
        sim.stop()


def test_images_policies_and_linked_clones_in_a_cluster(make_tf, vsphere_provider_block, vcsim, tmp_path) -> None:
    from .test_data_io import convert, make_raw

    image = convert(make_raw(tmp_path / "disk.raw", 4, 7), "streamOptimized")
    body = """
resource "vmdk_volume" "img" {{
  name              = "from-image"
  size_gb           = 1
  datastore_cluster = "pod-gold"
{policy}
  image {{
    source    = "file://{image}"
    disk_type = "streamOptimized"
  }}
}}
resource "vmdk_volume" "linked" {{
  count             = {linked}
  name              = "linked"
  size_gb           = 1
  source_volume_id  = vmdk_volume.img.id
  clone_type        = "linked"
  datastore_cluster = "pod-silver"
}}
output "img" {{ value = vmdk_volume.img }}
"""
    tf = make_tf(vsphere_provider_block + body.format(policy="", image=image, linked=0))
    applied = run(tf, "apply", "-auto-approve", env=_log_env(tf))
    assert applied.returncode == 0, applied.stderr
    img = tf.output()["img"]
    assert img["datastore"] in GOLD and img["datastore_cluster"] == "pod-gold"
    # a storage policy only another member complies with: Storage DRS recommends the move (policy in the
    # disk's locator), the volume stays in its cluster
    target = next(m for m in GOLD if m != img["datastore"])
    vcsim.set_datastore_tag(target, "tier", "gold")
    try:
        write_config(Path(tf.tfdir), vsphere_provider_block + body.format(
            policy='  storage_policy = "vmdk-gold"', image=image, linked=0))
        applied = run(tf, "apply", "-auto-approve")
        assert applied.returncode == 0, applied.stderr
        moved = tf.output()["img"]
        assert moved["datastore"] == target and moved["datastore_cluster"] == "pod-gold" and moved["id"] == img["id"]
        assert moved["storage_policy"] == "vmdk-gold"
    finally:
        vcsim.set_datastore_tag(target, "tier", None)
    # a linked clone stays on its source's datastore: into another cluster it is refused, naming clone_type
    write_config(Path(tf.tfdir), vsphere_provider_block + body.format(
        policy='  storage_policy = "vmdk-gold"', image=image, linked=1))
    refused = run(tf, "apply", "-auto-approve")
    assert refused.returncode == 1 and "A linked clone stays on its source's datastore" in refused.stderr
    assert "clone_type" in refused.stderr and not any(b in refused.stderr for b in BAD)
    write_config(Path(tf.tfdir), vsphere_provider_block + body.format(policy="", image=image, linked=0))
    assert run(tf, "destroy", "-auto-approve").returncode == 0


def test_no_room_since_the_plan_fails_the_apply_and_leaves_nothing(make_tf, vsphere_provider_block, vcsim,
                                                                   scan_backings) -> None:
    import json

    before = set(scan_backings())
    tf = make_tf(vsphere_provider_block + _volume('  datastore_cluster = "pod-silver"\n'))
    assert run(tf, "plan", "-out=tfplan").returncode == 0
    free = {d.name: d.free_space for d in _datastores(vcsim) if d.name in ("silver-1", "silver-2")}
    for name in free:
        vcsim.set_datastore(name, free=0)
    try:
        applied = run(tf, "apply", "tfplan")
    finally:
        for name, value in free.items():
            vcsim.set_datastore(name, free=value)
    assert applied.returncode == 1 and "datastore_cluster" in applied.stderr, applied.stderr
    assert "silver-1" in applied.stderr and not any(b in applied.stderr for b in BAD)
    state = json.loads(run(tf, "state", "pull").stdout or "{}")
    assert not [i for r in state.get("resources", []) for i in r["instances"]]
    assert set(scan_backings()) == before
