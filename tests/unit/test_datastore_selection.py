"""Datastore selection rules on plain dataclasses (no vSphere)."""

from __future__ import annotations

import random
import re

import pytest

from terraform_provider_vmdk.vsphere import exceptions
from terraform_provider_vmdk.vsphere.placement.datastore import (
    SUPPORTED_TYPES,
    DatastoreSelector,
    DatastoreState,
    Evaluation,
    GiB,
    HostState,
    MountState,
    Requirements,
    Rules,
    apply_policy,
    choose_host,
    evaluate,
    explain,
    format_size,
    rank,
    volume_stats,
)

H1 = HostState("host-1", "esx1", cluster="C1", resource_pool="rp-c1", moref="H1")
H2 = HostState("host-2", "esx2", cluster="C1", resource_pool="rp-c1", moref="H2")
H3 = HostState("host-3", "esx3", cluster="C2", resource_pool="rp-c2", moref="H3")
HOSTS = {h.key: h for h in (H1, H2, H3)}


def ds(name: str, *, free: float = 50, cap: float = 100, type: str = "VMFS", hosts=("host-1",),
       accessible: bool = True, maint: str = "normal", mounts=None) -> DatastoreState:
    return DatastoreState(key=f"ds-{name}", name=name, type=type, capacity=int(cap * GiB),
                          free_space=int(free * GiB), accessible=accessible, maintenance_mode=maint,
                          mounts=tuple(mounts) if mounts is not None else tuple(MountState(h) for h in hosts),
                          moref=f"M-{name}")


def rules(**kw) -> Rules:
    kw.setdefault("valid_hosts", HOSTS)
    kw.setdefault("size_bytes", 10 * GiB)
    return Rules(**kw)


# --- each filter ---------------------------------------------------------------------------

def test_a_named_datastore_follows_the_same_regex_rule_as_placement():
    """One rule (Cinder's re.match) whether placement picks the datastore or the volume names it."""
    gold = re.compile("gold")
    assert not evaluate(ds("ds-gold"), rules(name_regex=gold)).eligible
    named = evaluate(ds("ds-gold"), rules(name_regex=gold, only="ds-gold"))
    assert not named.eligible and "datastore_regex" in named.reason
    assert evaluate(ds("gold-1"), rules(name_regex=gold, only="gold-1")).eligible
    other = evaluate(ds("gold-2"), rules(name_regex=gold, only="gold-1"))
    assert other.rule == "only" and explain([other], GiB).endswith("does not exist")


def test_explain_names_datastore_types_when_every_datastore_has_the_wrong_type():
    evs = [evaluate(ds("LocalDS_0", type="OTHER"), rules()), evaluate(ds("x", type="OTHER"), rules())]
    msg = explain(evs, GiB)
    assert "LocalDS_0: type OTHER is not in datastore_types" in msg
    assert "datastore_types" in msg.split("). ")[-1] and "seen: OTHER" in msg

def test_eligible_datastore_has_no_reason_and_lists_usable_hosts():
    ev = evaluate(ds("a", hosts=("host-2", "host-1")), rules())
    assert ev.eligible and ev.reason is None
    assert [h.name for h in ev.hosts] == ["esx1", "esx2"]
    assert ev.host_count == 2


def test_regex_is_anchored_at_start_like_cinder():
    r = rules(name_regex=re.compile("gold-"))
    assert evaluate(ds("gold-1"), r).eligible
    ev = evaluate(ds("old-gold-1"), r)
    assert ev.reason == "name does not match datastore_regex 'gold-'"


@pytest.mark.parametrize("excluded", [{"a"}, {"ds-a"}])
def test_excluded_by_name_or_moref(excluded):
    ev = evaluate(ds("a"), rules(excluded=frozenset(excluded)))
    assert ev.reason == "excluded by the request"


def test_zero_capacity_rejected():
    assert evaluate(ds("a", cap=0, free=0), rules(size_bytes=0)).reason == "capacity is 0"


def test_free_space_must_cover_size():
    assert evaluate(ds("a", free=10), rules(size_bytes=10 * GiB)).eligible  # >= is enough
    ev = evaluate(ds("a", free=2), rules(size_bytes=10 * GiB))
    assert ev.reason == "free 2 GiB < 10 GiB needed"
    ev = evaluate(ds("a", free=2.5), rules(size_bytes=10 * GiB))
    assert ev.reason == "free 2.5 GiB < 10 GiB needed"


def test_must_be_mounted_on_a_valid_host():
    r = rules(valid_hosts={"host-1": H1}, host_scope="a usable host in cluster(s) 'C1'")
    ev = evaluate(ds("a", hosts=("host-3",)), r)
    assert ev.reason == "not mounted on a usable host in cluster(s) 'C1'"
    assert evaluate(ds("a", hosts=()), r).reason == "not mounted on any host"


@pytest.mark.parametrize("mount", [MountState("host-1", read_write=False),
                                   MountState("host-1", mounted=False),
                                   MountState("host-1", accessible=False)])
def test_unusable_mount_on_valid_host_rejected(mount):
    ev = evaluate(ds("a", mounts=[mount]), rules())
    assert "are not usable" in ev.reason


def test_only_usable_mounts_count_as_hosts():
    ev = evaluate(ds("a", mounts=[MountState("host-1"), MountState("host-2", read_write=False)]), rules())
    assert [h.key for h in ev.hosts] == ["host-1"]


@pytest.mark.parametrize("t", ["VMFS", "vmfs", "NFS", "NFS41", "vsan", "VVOL"])
def test_supported_types_case_insensitive(t):
    assert evaluate(ds("a", type=t), rules()).eligible


@pytest.mark.parametrize("t", ["OTHER", "cifs", "PMEM", ""])
def test_unsupported_types_rejected(t):
    ev = evaluate(ds("a", type=t), rules())
    assert ev.reason.startswith(f"type {t or 'unknown'} is not in datastore_types (") and ev.rule == "type"


def test_allowed_types_can_be_widened_explicitly():
    assert evaluate(ds("a", type="OTHER"), rules(allowed_types=SUPPORTED_TYPES | {"other"})).eligible


def test_inaccessible_rejected():
    assert evaluate(ds("a", accessible=False), rules()).reason == "not accessible"


@pytest.mark.parametrize("mode,text", [("inMaintenance", "in maintenance mode"),
                                       ("enteringMaintenance", "entering maintenance mode")])
def test_maintenance_rejected(mode, text):
    assert evaluate(ds("a", maint=mode), rules()).reason == text


def test_first_failing_rule_wins_in_cinder_order():
    bad = ds("x", free=1, type="OTHER", accessible=False, maint="inMaintenance", hosts=())
    assert evaluate(bad, rules(name_regex=re.compile("y"))).reason.startswith("name does not match")
    assert evaluate(bad, rules(excluded=frozenset({"x"}))).reason == "excluded by the request"
    assert evaluate(bad, rules()).reason.startswith("free ")
    assert evaluate(bad, rules(size_bytes=0)).reason == "not mounted on any host"
    bad2 = ds("x", type="OTHER", accessible=False, maint="inMaintenance")
    assert evaluate(bad2, rules()).reason.startswith("type OTHER")
    assert evaluate(ds("x", accessible=False, maint="inMaintenance"), rules()).reason == "not accessible"


# --- policy --------------------------------------------------------------------------------

def test_apply_policy_marks_compliance_only_for_survivors():
    evs = [evaluate(ds("a"), rules()), evaluate(ds("b"), rules()), evaluate(ds("c", free=1), rules())]
    out = apply_policy(evs, {"ds-a", "ds-c"}, "gold")
    assert [e.compliant for e in out] == [True, False, None]
    assert out[0].eligible
    assert out[1].reason == "does not comply with storage policy 'gold'"
    assert out[2].reason.startswith("free ")


def test_apply_policy_none_means_no_policy():
    evs = [evaluate(ds("a"), rules())]
    assert apply_policy(evs, None, None) == evs
    assert evs[0].compliant is None


# --- ranking -------------------------------------------------------------------------------

def test_rank_most_host_mounts_first_then_lowest_utilisation():
    evs = [evaluate(d, rules(size_bytes=0)) for d in (
        ds("one-host-empty", free=99, hosts=("host-1",)),
        ds("two-hosts-full", free=10, hosts=("host-1", "host-2")),
        ds("two-hosts-half", free=50, hosts=("host-1", "host-2")),
        ds("rejected", accessible=False, hosts=("host-1", "host-2", "host-3")),
    )]
    assert [e.name for e in rank(evs)] == ["two-hosts-half", "two-hosts-full", "one-host-empty"]


def test_rank_utilisation_is_relative_not_absolute():
    # 40/100 free (60% used) beats 100/1000 free (90% used) despite less absolute free space.
    evs = [evaluate(ds("big", free=100, cap=1000), rules()), evaluate(ds("small", free=40, cap=100), rules())]
    assert [e.name for e in rank(evs)] == ["small", "big"]


def test_rank_ties_broken_by_name_for_stability():
    evs = [evaluate(ds(n), rules()) for n in ("b", "a", "c")]
    assert [e.name for e in rank(evs)] == ["a", "b", "c"]


def test_host_count_ignores_hosts_outside_scope():
    r = rules(valid_hosts={"host-3": H3}, size_bytes=0)
    evs = [evaluate(ds("c1-wide", hosts=("host-1", "host-2", "host-3"), free=10), r),
           evaluate(ds("c2-only", hosts=("host-3",), free=90), r)]
    # Both have one mount in scope, so utilisation decides.
    assert [e.name for e in rank(evs)] == ["c2-only", "c1-wide"]


# --- host choice ---------------------------------------------------------------------------

def test_choose_host_deterministic_preferred_and_random():
    ev = evaluate(ds("a", hosts=("host-2", "host-1")), rules())
    assert choose_host(ev).name == "esx1"
    assert choose_host(ev, preferred=["esx2"]).name == "esx2"
    assert choose_host(ev, preferred=["host-2"]).name == "esx2"
    assert choose_host(ev, preferred=["nope"]).name == "esx1"
    picked = {choose_host(ev, rng=random.Random(seed)).name for seed in range(30)}
    assert picked == {"esx1", "esx2"}


def test_choose_host_without_hosts_is_an_error():
    with pytest.raises(ValueError):
        choose_host(Evaluation(ds("a"), None))


# --- messages ------------------------------------------------------------------------------

def test_explain_lists_each_rejection_with_reason():
    evs = [evaluate(ds("ds-small", free=2), rules()),
           evaluate(ds("ds-maint", maint="inMaintenance"), rules()),
           evaluate(ds("ds3"), rules(name_regex=re.compile("^ds-")))]
    msg = explain(evs, 10 * GiB, "gold")
    assert msg.startswith("No datastore can hold a 10 GiB volume with storage policy 'gold': ")
    assert "ds-small: free 2 GiB < 10 GiB needed" in msg
    assert "ds-maint: in maintenance mode" in msg
    assert "ds3: name does not match datastore_regex '^ds-'" in msg


def test_explain_without_datastores():
    assert explain([], GiB).endswith("no datastores found")


def test_format_size():
    assert format_size(10 * GiB) == "10 GiB"
    assert format_size(int(2.5 * GiB)) == "2.5 GiB"
    assert format_size(512 * 1024 * 1024) == "0.5 GiB"
    assert format_size(1024 * 1024) == "1.0 MiB"


def test_requirements_normalise_and_validate():
    class FakeMo:
        _moId = "datastore-9"

    r = Requirements(GiB, excluded_datastores=frozenset({"a", FakeMo()}), hosts=frozenset({"esx1"}))
    assert r.excluded_datastores == frozenset({"a", "datastore-9"})
    with pytest.raises(ValueError):
        Requirements(-1)


# --- the selector on a fake inventory (still no vSphere) -----------------------------------

class FakeInventory:
    """Records in the shape of vsphere/placement/inventory.py (HostInfo / DatastoreInfo)."""

    def __init__(self, hosts, datastores, clusters=("C1", "C2")):
        self._hosts, self._ds, self._clusters = hosts, datastores, clusters

    def hosts(self, cluster_names=None):
        missing = [n for n in cluster_names or () if n not in self._clusters]
        if missing:
            raise exceptions.ClusterNotFound(f"cluster not found: {missing}")
        return [h for h in self._hosts if cluster_names is None or h["cluster"] in cluster_names]

    def datastores(self):
        return self._ds


def host(key, name, cluster, *, connected=True, maintenance=False):
    return {"moref": key, "name": name, "connected": connected, "maintenance": maintenance,
            "cluster": cluster, "resource_pool": f"rp-{cluster}"}


def dsi(name, free, hosts, *, type="VMFS", cap=100, accessible=True, maint="normal"):
    return {"moref": f"ds-{name}", "name": name, "type": type, "capacity": cap * GiB,
            "free_space": free * GiB, "accessible": accessible, "maintenance_mode": maint,
            "host_mounts": [{"host": h, "access_mode": "readWrite", "mounted": True, "accessible": True}
                            for h in hosts]}


@pytest.fixture
def inv():
    return FakeInventory(
        [host("h1", "esx1", "C1"), host("h2", "esx2", "C1"), host("h3", "esx3", "C2"),
         host("h4", "esx4", "C2", maintenance=True)],
        [dsi("shared", 30, ["h1", "h2", "h3"]), dsi("local1", 90, ["h1"]),
         dsi("c2", 80, ["h3", "h4"]), dsi("tiny", 1, ["h1", "h2", "h3"])])


def test_selector_picks_most_mounted_then_host_and_pool(inv):
    p = DatastoreSelector(None, inv).select(Requirements(5 * GiB))
    assert (p.datastore_name, p.datastore, p.host, p.host_name, p.resource_pool) == \
        ("shared", "ds-shared", "h1", "esx1", "rp-C1")


def test_selector_cluster_restriction_changes_ranking(inv):
    p = DatastoreSelector(None, inv, cluster_names=["C2"]).select(Requirements(5 * GiB))
    # In C2 only esx3 is usable: shared (70% used) and c2 (20% used) both have one usable mount there.
    assert (p.datastore_name, p.host_name, p.resource_pool) == ("c2", "esx3", "rp-C2")


def test_selector_unknown_cluster(inv):
    with pytest.raises(exceptions.ClusterNotFound):
        DatastoreSelector(None, inv, cluster_names=["nope"]).select(Requirements(GiB))


def test_selector_no_valid_host(inv):
    inv._hosts = [host("h1", "esx1", "C1", connected=False), host("h2", "esx2", "C1", maintenance=True)]
    with pytest.raises(exceptions.NoValidHost) as e:
        DatastoreSelector(None, inv, cluster_names=["C1"]).select(Requirements(GiB))
    assert "esx1 (not connected)" in str(e.value) and "esx2 (in maintenance mode)" in str(e.value)


def test_selector_requested_hosts_replace_cluster_scope(inv):
    p = DatastoreSelector(None, inv).select(Requirements(GiB, hosts=frozenset({"esx3"})))
    assert p.host_name == "esx3" and p.datastore_name == "c2"


def test_selector_no_valid_datastore_message(inv):
    with pytest.raises(exceptions.NoValidDatastore) as e:
        DatastoreSelector(None, inv, name_regex="^(shared|tiny|c2)$").select(Requirements(85 * GiB))
    msg = str(e.value)
    assert "shared: free 30 GiB < 85 GiB needed" in msg
    assert "local1: name does not match datastore_regex '^(shared|tiny|c2)$'" in msg
    assert "tiny: free 1 GiB < 85 GiB needed" in msg


def test_candidates_marks_selected_and_keeps_rejects(inv):
    cands = DatastoreSelector(None, inv).candidates(Requirements(5 * GiB, excluded_datastores=frozenset({"shared"})))
    assert [(c.name, c.selected, c.eligible) for c in cands] == [
        ("local1", True, True), ("c2", False, True), ("shared", False, False), ("tiny", False, False)]
    # c2 is mounted on esx3 and esx4, but esx4 is in maintenance: one usable host, like local1, and
    # local1 is less used (10% vs 20%).
    assert cands[1].host_count == 1 and cands[2].reason == "excluded by the request"


def test_is_usable(inv):
    sel = DatastoreSelector(None, inv)
    assert sel.is_usable("shared", Requirements(5 * GiB))
    assert sel.is_usable("ds-shared", Requirements(5 * GiB))
    assert not sel.is_usable("tiny", Requirements(5 * GiB))
    assert not sel.is_usable("missing", Requirements(5 * GiB))


def test_volume_stats_sums_eligible(inv):
    inv._ds.append(dsi("maint", 50, ["h1"], maint="inMaintenance"))
    inv._ds.append(dsi("other", 50, ["h1"], type="OTHER"))
    st = volume_stats(DatastoreSelector(None, inv))
    assert st.datastores == ("c2", "local1", "shared", "tiny")
    assert st.total_bytes == 400 * GiB and st.free_bytes == (30 + 90 + 80 + 1) * GiB
    st = volume_stats(DatastoreSelector(None, inv, cluster_names=["C2"]))
    assert st.datastores == ("c2", "shared", "tiny")


def test_selector_policy_filter_uses_pbm(inv, monkeypatch):
    from terraform_provider_vmdk.vsphere.placement import pbm as pbm_util

    seen = {}
    monkeypatch.setattr(pbm_util, "find_profile_id", lambda s, n: {"gold": "pid-gold"}[n])

    def fake_filter(session, pid, datastores):
        seen["pid"], seen["keys"] = pid, [d.key for d in datastores]
        return [d for d in datastores if d.name == "local1"]

    monkeypatch.setattr(pbm_util, "filter_compliant_datastores", fake_filter)
    sel = DatastoreSelector(None, inv)
    p = sel.select(Requirements(5 * GiB, profile_name="gold"))
    assert p.datastore_name == "local1" and p.profile_id == "pid-gold"
    assert seen == {"pid": "pid-gold", "keys": ["ds-shared", "ds-local1", "ds-c2"]}  # only survivors
    cands = {c.name: c for c in sel.candidates(Requirements(5 * GiB, profile_name="gold"))}
    assert cands["shared"].compliant is False
    assert cands["shared"].reason == "does not comply with storage policy 'gold'"
    assert cands["tiny"].compliant is None


def test_inaccessible_datastore_with_inaccessible_mounts_reports_not_accessible():
    # Like vCenter's (and the harness's ds-gone): summary.accessible false and every mount inaccessible.
    gone = ds("gone", accessible=False, mounts=[MountState("host-1", accessible=False)])
    assert evaluate(gone, rules()).reason == "not accessible"
    # Type is checked before mount usability, as in Cinder (usability only at host choice).
    other = ds("o", type="OTHER", mounts=[MountState("host-1", read_write=False)])
    assert evaluate(other, rules()).reason.startswith("type OTHER")


def test_parallel_creates_count_the_space_of_creates_in_flight(inv, monkeypatch):
    """shared has 30 GiB free: two 12 GiB creates in flight fit, the third goes to the next datastore,
    and a released create's space stays counted for the grace period (vCenter reports it late)."""
    from concurrent.futures import ThreadPoolExecutor

    from terraform_provider_vmdk.vsphere.placement import datastore as ds_mod

    sel = DatastoreSelector(None, inv)
    with ThreadPoolExecutor(3) as pool:
        picks = list(pool.map(lambda _: sel.select(Requirements(12 * GiB), reserve=True), range(3)))
    assert sorted(p.datastore_name for p in picks) == ["local1", "shared", "shared"]
    assert sel.select(Requirements(12 * GiB)).datastore_name != "shared"  # shared has 6 GiB left for us
    for p in picks:
        p.release()
    assert sel.select(Requirements(12 * GiB)).datastore_name != "shared"  # still counted (grace)
    now = [0.0]
    monkeypatch.setattr(ds_mod.time, "monotonic", lambda: now[0] + 1e9)
    assert sel.select(Requirements(12 * GiB)).datastore_name == "shared"  # grace over: vSphere's figure rules
    DatastoreSelector(None, inv).select(Requirements(5 * GiB)).release()  # no reservation: a no-op


def test_a_datastore_cluster_narrows_the_candidates_and_every_rule_still_applies_to_its_members():
    from dataclasses import replace

    member = replace(ds("gold-1"), pod="pod-gold")
    full = replace(ds("gold-2", free=1), pod="pod-gold")
    outside = ds("ds-big", free=90)
    results = [evaluate(d, rules(pod="pod-gold")) for d in (member, full, outside)]
    assert [r.eligible for r in results] == [True, False, False]
    assert results[2].rule == "pod" and "pod-gold" in results[2].reason
    assert "free" in results[1].reason
    text = explain(results[1:], 10 * GiB)
    assert "in datastore cluster 'pod-gold'" in text and "gold-2" in text and "ds-big" not in text
    empty = explain([results[2]], 10 * GiB)
    assert empty.endswith("datastore cluster 'pod-gold' has no member datastores")
