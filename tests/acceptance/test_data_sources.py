"""Data sources vmdk_volume, vmdk_datastores and vmdk_volume_stats through real Terraform, checked against
the vcsim inventory that tests/vcsim/main.go builds:

  ds-big    4 TiB, 3 TiB free,     C0+C1 (6 hosts)      ds-c0    1 TiB, 300 GiB free, C0 (3 hosts)
  ds-c1     2 TiB, 1.5 TiB free,   C1 (3 hosts)         ds-small 100 GiB, 20 GiB free, DC0_C0_H0
  ds-maint  in maintenance mode                          ds-gone  not accessible
  LocalDS_0 vcsim's own, type OTHER (not a type Cinder places volumes on)
  gold-1..3, silver-1..2, off-1..2: members of the datastore clusters pod-gold, pod-silver, pod-off
            (tests/vcsim/harness.py PODS), on DC0_C0_H1 and DC0_C0_H2. vCenter lists a pod's members wherever it
            lists datastores, and placement that knows nothing of pods takes them as ordinary datastores
            (as Cinder does), so they are listed and eligible; these tests leave them aside.

The storage policy vmdk-gold requires the tag tier=gold, which ds-big and ds-c1 carry: the test vCenter's
PBM evaluates it as vCenter does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vcsim.harness import POD_MEMBER_TABLE, POD_MEMBERS

from .conftest import run, write_config

pytestmark = pytest.mark.acceptance

ELIGIBLE = ["ds-big", "ds-c0", "ds-c1", "ds-small"]
GOLD = ["ds-big", "ds-c1"]


def by_name(datastores: list[dict]) -> dict[str, dict]:
    return {d["name"]: d for d in datastores}


def test_datastores(make_tf, vsphere_provider_block, is_vcsim) -> None:
    if not is_vcsim:
        pytest.skip("checks the vcsim inventory")
    tf = make_tf(vsphere_provider_block + """
data "vmdk_datastores" "any" {}
data "vmdk_datastores" "big" { size_gb = 500 }
data "vmdk_datastores" "huge" { size_gb = 100000 }
data "vmdk_datastores" "gold" {
  storage_policy = "vmdk-gold"
  size_gb        = 1
}
output "any" { value = data.vmdk_datastores.any }
output "big" { value = data.vmdk_datastores.big }
output "huge" { value = data.vmdk_datastores.huge }
output "gold" { value = data.vmdk_datastores.gold }
""")
    tf.apply()
    out = tf.output()
    any_ = out["any"]
    assert any_["selected"] == "ds-big"
    listed = [d["name"] for d in any_["datastores"]]
    assert POD_MEMBERS <= {d["name"] for d in any_["datastores"] if d["eligible"]}
    names = [n for n in listed if n not in POD_MEMBERS]
    # eligible first in placement's order (most hosts, then lowest utilisation), then rejected by name
    assert names[:4] == ["ds-big", "ds-c1", "ds-c0", "ds-small"]
    assert sorted(names[4:]) == names[4:] and set(names[4:]) == {"LocalDS_0", "ds-gone", "ds-maint"}
    ds = by_name(any_["datastores"])
    # free space goes down as other tests make disks and back up as they remove them, never above the start
    assert 0 < ds["ds-big"].pop("free_gb") <= 3072
    assert ds["ds-big"] == {"name": "ds-big", "type": "VMFS", "capacity_gb": 4096,
                            "accessible": True, "maintenance": "normal", "host_count": 6, "compliant": None,
                            "eligible": True, "reason": None, "datastore_cluster": None}
    assert all(d["datastore_cluster"] == ("pod-" + d["name"].split("-")[0] if d["name"] in POD_MEMBERS else None)
               for d in any_["datastores"])
    assert (ds["ds-c0"]["host_count"], ds["ds-c1"]["host_count"], ds["ds-small"]["host_count"]) == (3, 3, 1)
    assert ds["ds-maint"]["maintenance"] == "inMaintenance" and not ds["ds-maint"]["eligible"]
    assert "maintenance" in ds["ds-maint"]["reason"]
    assert ds["ds-gone"]["accessible"] is False and ds["ds-gone"]["reason"] == "not accessible"
    assert ds["LocalDS_0"]["type"] == "OTHER" and "not in datastore_types" in ds["LocalDS_0"]["reason"]

    big = by_name(out["big"]["datastores"])
    assert out["big"]["selected"] == "ds-big"
    # ds-c0 has 300 GiB free at most (earlier tests may have used some): too small for 500 GiB
    assert not big["ds-c0"]["eligible"] and "< 500 GiB needed" in big["ds-c0"]["reason"]
    assert big["ds-c0"]["free_gb"] <= 300
    assert not big["ds-small"]["eligible"] and big["ds-c1"]["eligible"]

    assert out["huge"]["selected"] is None
    assert not any(d["eligible"] for d in out["huge"]["datastores"])

    gold = by_name(out["gold"]["datastores"])
    assert out["gold"]["selected"] == "ds-big"
    assert [n for n in ELIGIBLE if gold[n]["compliant"]] == GOLD
    assert gold["ds-c0"]["compliant"] is False and "does not comply with storage policy" in gold["ds-c0"]["reason"]
    assert gold["ds-maint"]["compliant"] is None  # rejected before the policy check

    # an unknown policy is an error on the attribute, naming the policies that exist
    write_config(Path(tf.tfdir), vsphere_provider_block + 'data "vmdk_datastores" "x" { storage_policy = "nope" }\n')
    result = run(tf, "plan")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "'nope' not found" in result.stderr and "vmdk-gold" in result.stderr


def test_datastores_follow_provider_scope(make_tf, vsphere_provider_block, is_vcsim) -> None:
    if not is_vcsim:
        pytest.skip("checks the vcsim inventory")
    body = """
data "vmdk_datastores" "d" {}
data "vmdk_volume_stats" "s" {}
output "d" { value = data.vmdk_datastores.d }
output "s" { value = data.vmdk_volume_stats.s }
"""
    regex = vsphere_provider_block.replace('provider "vmdk" {', 'provider "vmdk" {\n  datastore_regex = "ds-c"')
    tf = make_tf(regex + body, name="regex")
    tf.apply()
    out = tf.output()
    d = by_name(out["d"]["datastores"])
    assert out["d"]["selected"] == "ds-c1"  # ds-c1 is less full than ds-c0
    assert "does not match datastore_regex" in d["ds-big"]["reason"]
    assert out["s"]["datastores"] == ["ds-c0", "ds-c1"]
    assert out["s"]["total_capacity_gb"] == 1024 + 2048
    assert out["s"]["free_capacity_gb"] == pytest.approx(d["ds-c0"]["free_gb"] + d["ds-c1"]["free_gb"], abs=0.01)

    cluster = vsphere_provider_block.replace('provider "vmdk" {', 'provider "vmdk" {\n  cluster_names = ["DC0_C1"]')
    tf = make_tf(cluster + body, name="cluster")
    tf.apply()
    out = tf.output()
    d = by_name(out["d"]["datastores"])
    assert d["ds-big"]["host_count"] == 3 and d["ds-c1"]["host_count"] == 3
    assert not d["ds-c0"]["eligible"] and "DC0_C1" in d["ds-c0"]["reason"]
    # equal host counts: the less utilised wins; how full each is depends on what earlier tests wrote.
    # free_gb is rounded to the MB: two datastores that close are a tie as far as this output can tell, and
    # the provider, which sees the bytes, may pick either.
    used = {n: 1 - d[n]["free_gb"] / d[n]["capacity_gb"] for n in ("ds-big", "ds-c1")}
    precision = max(0.0005 / d[n]["capacity_gb"] for n in used)
    if abs(used["ds-big"] - used["ds-c1"]) > 2 * precision:
        assert out["d"]["selected"] == min(used, key=lambda n: used[n])
    else:
        assert out["d"]["selected"] in used
    assert out["s"]["datastores"] == ["ds-big", "ds-c1"]

    bad = vsphere_provider_block.replace('provider "vmdk" {', 'provider "vmdk" {\n  cluster_names = ["nope"]')
    tf = make_tf(bad + body, name="bad")
    result = run(tf, "plan")
    assert result.returncode == 1 and "nope" in result.stderr and "Traceback" not in result.stderr


def test_volume_stats(make_tf, vsphere_provider_block, vsphere_session, vcsim, is_vcsim, scan_backings) -> None:
    from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
    from terraform_provider_vmdk.vsphere.volumes.volumeops import VolumeOps

    before = set(scan_backings())
    volumes_before = len(VolumeOps(vsphere_session, Inventory(vsphere_session, getattr(vcsim, "datacenter", None)))
                         .list_backings())
    tf = make_tf(vsphere_provider_block + """
resource "vmdk_volume" "a" {
  name    = "counted"
  size_gb = 1
}
data "vmdk_volume_stats" "s" {
  depends_on = [vmdk_volume.a]
}
data "vmdk_datastores" "d" {
  depends_on = [vmdk_volume.a]
}
data "vmdk_volume_stats" "gold" {
  volume_backend_name = "vmdk-gold-backend"
  storage_policies    = ["vmdk-gold"]
}
output "s" { value = data.vmdk_volume_stats.s }
output "gold" { value = data.vmdk_volume_stats.gold }
output "d" { value = data.vmdk_datastores.d }
""")
    tf.apply()
    out = tf.output()
    s = out["s"]
    assert (s["vendor_name"], s["driver_version"], s["storage_protocol"]) == ("VMware", "1.5.0", "vmdk")
    assert s["volume_backend_name"] == "VMwareVcVmdkDriver" == s["id"]
    assert s["volume_count"] == volumes_before + 1
    assert out["gold"]["volume_backend_name"] == "vmdk-gold-backend"
    if is_vcsim:
        eligible = sorted([*ELIGIBLE, *POD_MEMBERS])
        assert s["datastores"] == eligible
        listed = by_name(out["d"]["datastores"])
        pods_capacity, pods_free = (sum(t[i] for t in POD_MEMBER_TABLE.values()) for i in (0, 1))
        assert s["total_capacity_gb"] == 4096 + 1024 + 2048 + 100 + pods_capacity
        assert s["free_capacity_gb"] == pytest.approx(sum(listed[n]["free_gb"] for n in eligible), abs=0.01)
        assert 0 < s["free_capacity_gb"] <= 3072 + 300 + 1536 + 20 + pods_free  # vcsim never gives space back
        assert out["gold"]["datastores"] == GOLD
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before


def test_volume_data_source(make_tf, vsphere_provider_block, scan_backings) -> None:
    before = set(scan_backings())
    tf = make_tf(vsphere_provider_block + """
resource "vmdk_volume" "v" {
  name           = "looked-up"
  description    = "found me"
  size_gb        = 2
  disk_type      = "thick"
  adapter_type   = "paraVirtual"
  storage_policy = "vmdk-gold"
}
resource "vmdk_volume" "twin1" {
  name    = "twin"
  size_gb = 1
}
resource "vmdk_volume" "twin2" {
  name    = "twin"
  size_gb = 1
}
data "vmdk_volume" "by_id" { id = vmdk_volume.v.id }
data "vmdk_volume" "by_name" {
  name       = "looked-up"
  depends_on = [vmdk_volume.v]
}
output "v" { value = vmdk_volume.v }
output "by_id" { value = data.vmdk_volume.by_id }
output "by_name" { value = data.vmdk_volume.by_name }
output "twins" { value = [vmdk_volume.twin1.id, vmdk_volume.twin2.id] }
""")
    tf.apply()
    out = tf.output()
    resource, by_id, by_name = out["v"], out["by_id"], out["by_name"]
    assert by_id == by_name
    for key, value in by_id.items():
        assert resource[key] == value, key  # every attribute as the resource has it
    assert by_id["connection_info"]["driver_volume_type"] == "vmdk"
    assert by_id["connection_info"]["volume_id"] == resource["id"]
    assert by_id["storage_policy"] == "vmdk-gold" and by_id["disk_type"] == "thick"
    assert by_id["adapter_type"] == "paraVirtual" and by_id["description"] == "found me"

    cases = {
        'name = "twin"': ["Ambiguous volume name", *out["twins"]],
        'name = "nobody"': ["Volume not found", "nobody"],
        'id = "00000000-0000-0000-0000-000000000000"': ["Volume not found"],
        'id = "x"\n  name = "y"': ["Set exactly one of id and name"],
        "": ["Set exactly one of id and name"],
    }
    for i, (args, expect) in enumerate(cases.items()):
        other = make_tf(vsphere_provider_block + f'data "vmdk_volume" "q" {{\n  {args}\n}}\n', name=f"q{i}")
        result = run(other, "plan")
        flat = " ".join(result.stderr.split())
        assert result.returncode == 1 and "Traceback" not in flat, args
        for text in expect:
            assert text in flat, (args, text, flat)
    tf.destroy(auto_approve=True)
    assert set(scan_backings()) == before
