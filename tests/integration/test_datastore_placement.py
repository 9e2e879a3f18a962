"""DatastoreSelector against the vcsim harness inventory (tests/vcsim/main.go).

Harness datastores (datacenter DC0; clusters DC0_C0, DC0_C1 with 3 hosts each, standalone DC0_H0):
  LocalDS_0 OTHER on all 7 hosts | ds-big VMFS C0+C1, 4 TiB / 3 TiB free | ds-c0 VMFS C0, 1 TiB / 300 GiB
  ds-c1 VMFS C1, 2 TiB / 1.5 TiB | ds-small VMFS C0_H0, 100 / 20 GiB | ds-maint inMaintenance |
  ds-gone inaccessible. The members of its datastore clusters (tests/vcsim/harness.py POD_MEMBERS, on DC0_C0_H1
  and DC0_C0_H2) are datastores of DC0 too: vCenter lists a pod's members wherever it lists datastores (a
  recursive container view enters datastore clusters), and placement that knows nothing of pods takes them
  as ordinary datastores, as Cinder does; test_vcsim_sdrs.py tests the pods themselves.
Free space is read live where it matters, because other tests in the session consume space and vcsim
never gives it back. vcsim has no vSphere API for datastore maintenance or accessibility; the harness's
test endpoint (``vcsim.set_datastore``) changes them, and those tests restore the original state.
"""

from __future__ import annotations

import re

import pytest
from pyVmomi import vim

from terraform_provider_vmdk.vsphere import exceptions
from terraform_provider_vmdk.vsphere.placement.datastore import (
    SUPPORTED_TYPES,
    DatastoreSelector,
    GiB,
    Requirements,
    volume_stats,
)
from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
from tests.vcsim.harness import POD_MEMBERS, PODS

pytestmark = pytest.mark.integration

TiB = 1 << 40
C0 = {"DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"}
C1 = {"DC0_C1_H0", "DC0_C1_H1", "DC0_C1_H2"}
NAMED = {"ds-big", "ds-c0", "ds-c1", "ds-small"}
ELIGIBLE = NAMED | POD_MEMBERS


@pytest.fixture(autouse=True)
def _harness_only(is_vcsim):
    if not is_vcsim:
        pytest.skip("expects the tests/vcsim harness inventory")


@pytest.fixture
def inventory(vsphere_session):
    return Inventory(vsphere_session)


@pytest.fixture
def selector(vsphere_session, inventory):
    return DatastoreSelector(vsphere_session, inventory)


@pytest.fixture
def live(inventory):
    """Current DatastoreInfo by name."""
    return lambda: {d.name: d for d in inventory.datastores()}


@pytest.fixture
def datastore_state(vcsim, live):
    """Change datastores through the harness endpoint; restore what they were afterwards."""
    saved: dict[str, object] = {}

    def change(name: str, **kw) -> None:
        if name not in saved:
            saved[name] = live()[name]
        vcsim.set_datastore(name, **kw)

    yield change
    for name, d in saved.items():
        vcsim.set_datastore(name, accessible=d.accessible, maintenance=d.maintenance_mode,
                            capacity=d.capacity, free=d.free_space)


@pytest.fixture
def host_maintenance(vsphere_session, inventory):
    """Put hosts (by name) in maintenance mode; take them out again afterwards."""
    entered: list = []

    def enter(*names: str) -> None:
        for h in inventory.hosts():
            if h.name in names:
                vsphere_session.run_task(h.moref.EnterMaintenanceMode_Task, 0)
                entered.append(h.moref)

    yield enter
    for moref in entered:
        vsphere_session.run_task(moref.ExitMaintenanceMode_Task, 0)


def _cluster_pool(session, host):
    parent = session.get_properties(host, ["parent"])["parent"]
    return parent, session.get_properties(parent, ["resourcePool"])["resourcePool"]


# --- default selection ------------------------------------------------------------------------

def test_selects_most_mounted_datastore_with_host_and_its_cluster_pool(vsphere_session, selector):
    p = selector.select(Requirements(10 * GiB))
    assert p.datastore_name == "ds-big"
    assert isinstance(p.datastore, vim.Datastore) and isinstance(p.host, vim.HostSystem)
    assert p.host_name in C0 | C1
    compute, pool = _cluster_pool(vsphere_session, p.host)
    assert isinstance(compute, vim.ClusterComputeResource)
    assert p.resource_pool == pool
    assert vsphere_session.get_properties(p.datastore, ["name"])["name"] == "ds-big"


def test_host_choice_is_deterministic(selector):
    assert len({selector.select(Requirements(GiB)).host_name for _ in range(3)}) == 1


def test_candidates_give_each_datastore_a_verdict(selector):
    cands = {c.name: c for c in selector.candidates(Requirements(10 * GiB))}
    assert {n for n, c in cands.items() if c.eligible} == ELIGIBLE
    assert [c.name for c in cands.values() if c.selected] == ["ds-big"]
    assert cands["LocalDS_0"].reason == "type OTHER is not in datastore_types (nfs, nfs41, vmfs, vsan, vvol)"
    assert cands["ds-maint"].reason == "in maintenance mode"
    assert cands["ds-gone"].reason == "not accessible"
    assert {n: cands[n].host_count for n in NAMED} == {"ds-big": 6, "ds-c0": 3, "ds-c1": 3, "ds-small": 1}
    assert {n: cands[n].host_count for n in PODS["pod-gold"]} == {"gold-1": 2, "gold-2": 2, "gold-3": 1}
    assert cands["ds-big"].type == "VMFS" and cands["ds-big"].capacity_gb == 4096
    assert all(c.compliant is None for c in cands.values())


def test_lower_utilisation_wins_between_equal_host_counts(selector, live):
    # ds-c0 (3 hosts, ~70 % used) vs ds-c1 (3 hosts, ~25 % used) once ds-big is out.
    ds = live()
    assert ds["ds-c1"].free_space / ds["ds-c1"].capacity > ds["ds-c0"].free_space / ds["ds-c0"].capacity
    p = selector.select(Requirements(GiB, excluded_datastores=frozenset({"ds-big"})))
    assert p.datastore_name == "ds-c1" and p.host_name in C1


def test_utilisation_change_flips_the_choice(selector, datastore_state):
    datastore_state("ds-c1", free=10 * GiB)  # ds-c1 now ~99.5 % used
    p = selector.select(Requirements(GiB, excluded_datastores=frozenset({"ds-big"})))
    assert p.datastore_name == "ds-c0"


def test_vcsim_type_other_datastore_usable_only_when_types_widened(vsphere_session, inventory):
    wide = DatastoreSelector(vsphere_session, inventory, allowed_types=SUPPORTED_TYPES | {"other"})
    p = wide.select(Requirements(GiB))
    assert p.datastore_name == "LocalDS_0"  # mounted on all 7 hosts: outranks ds-big once allowed


# --- size -------------------------------------------------------------------------------------

def test_too_big_lists_why_each_datastore_was_rejected(selector):
    with pytest.raises(exceptions.NoValidDatastore) as e:
        selector.select(Requirements(64 * TiB))
    msg = e.value.message
    assert msg.startswith("No datastore can hold a 65536 GiB volume: ")
    # Size is checked before state (Cinder's order), so even ds-maint / ds-gone fail on size here.
    for name in ELIGIBLE | {"LocalDS_0", "ds-maint", "ds-gone"}:
        assert re.search(rf"{name}: free [0-9.]+ GiB < 65536 GiB needed", msg), name


def test_size_filter_drops_small_datastores(selector, live):
    free_c0 = live()["ds-c0"].free_space
    cands = {c.name: c for c in selector.candidates(Requirements(free_c0 + GiB))}
    assert not cands["ds-c0"].eligible and "needed" in cands["ds-c0"].reason
    assert not cands["ds-small"].eligible
    assert cands["ds-big"].eligible and cands["ds-c1"].eligible


def test_free_space_equal_to_size_is_enough(selector, live):
    free = live()["ds-small"].free_space
    p = DatastoreSelector(selector.session, selector.inventory, name_regex=re.compile("ds-small$")).select(
        Requirements(free))
    assert p.datastore_name == "ds-small" and p.host_name == "DC0_C0_H0"


# --- regex, exclusions ------------------------------------------------------------------------

def test_regex_restricts_candidates(vsphere_session, inventory):
    sel = DatastoreSelector(vsphere_session, inventory, name_regex=re.compile(r"ds-(c0|small)$"))
    assert sel.select(Requirements(GiB)).datastore_name == "ds-c0"
    with pytest.raises(exceptions.NoValidDatastore) as e:
        DatastoreSelector(vsphere_session, inventory, name_regex="nfs-").select(Requirements(GiB))
    assert "ds-big: name does not match datastore_regex 'nfs-'" in e.value.message


def test_exclusion_by_name_and_by_moref(selector, live):
    big = live()["ds-big"].moref
    assert selector.select(Requirements(GiB, excluded_datastores=frozenset({"ds-big"}))).datastore_name == "ds-c1"
    assert selector.select(Requirements(GiB, excluded_datastores=frozenset({big}))).datastore_name == "ds-c1"
    assert selector.select(Requirements(GiB, excluded_datastores=frozenset({big._moId}))).datastore_name == "ds-c1"
    cands = {c.name: c for c in selector.candidates(Requirements(GiB, excluded_datastores=frozenset({big})))}
    assert cands["ds-big"].reason == "excluded by the request"


# --- clusters, hosts --------------------------------------------------------------------------

@pytest.mark.parametrize("cluster,hosts", [("DC0_C0", C0), ("DC0_C1", C1)])
def test_cluster_restriction_places_in_that_cluster(vsphere_session, inventory, cluster, hosts):
    sel = DatastoreSelector(vsphere_session, inventory, cluster_names=[cluster])
    p = sel.select(Requirements(GiB, excluded_datastores=frozenset({"ds-big"})))
    assert p.datastore_name == {"DC0_C0": "ds-c0", "DC0_C1": "ds-c1"}[cluster]
    assert p.host_name in hosts
    compute, pool = _cluster_pool(vsphere_session, p.host)
    assert compute.name == cluster and p.resource_pool == pool
    cands = {c.name: c for c in sel.candidates(Requirements(GiB))}
    assert cands["ds-big"].host_count == 3  # only mounts in the configured cluster count
    other = "ds-c1" if cluster == "DC0_C0" else "ds-c0"
    assert cands[other].reason == f"not mounted on a usable host in cluster(s) {cluster!r}"


def test_unknown_cluster(vsphere_session, inventory):
    with pytest.raises(exceptions.ClusterNotFound) as e:
        DatastoreSelector(vsphere_session, inventory, cluster_names=["DC0_C0", "nope"]).select(Requirements(GiB))
    assert "'nope'" in str(e.value)


def test_standalone_host_gets_its_compute_resource_pool(vsphere_session, inventory):
    sel = DatastoreSelector(vsphere_session, inventory, allowed_types=SUPPORTED_TYPES | {"other"})
    p = sel.select(Requirements(GiB, hosts=frozenset({"DC0_H0"})))
    assert (p.datastore_name, p.host_name) == ("LocalDS_0", "DC0_H0")
    compute, pool = _cluster_pool(vsphere_session, p.host)
    assert not isinstance(compute, vim.ClusterComputeResource) and p.resource_pool == pool
    # With the production type set, the standalone host has nothing to offer.
    with pytest.raises(exceptions.NoValidDatastore) as e:
        DatastoreSelector(vsphere_session, inventory).select(Requirements(GiB, hosts=frozenset({"DC0_H0"})))
    assert "LocalDS_0: type OTHER is not in datastore_types" in e.value.message
    assert "ds-big: not mounted on requested host(s) DC0_H0" in e.value.message


def test_requested_host_is_used(selector):
    p = selector.select(Requirements(GiB, hosts=frozenset({"DC0_C1_H2"})))
    # ds-big and ds-c1 tie on mounts (one valid host) and start at equal utilisation; which wins depends
    # on what earlier tests wrote to them (vcsim never gives space back), so only the host is fixed here.
    assert p.host_name == "DC0_C1_H2" and p.datastore_name in ("ds-big", "ds-c1")


def test_hosts_in_maintenance_are_not_valid(vsphere_session, inventory, host_maintenance):
    host_maintenance("DC0_C0_H0")
    small_only = DatastoreSelector(vsphere_session, inventory, name_regex="ds-small$")
    with pytest.raises(exceptions.NoValidDatastore) as e:
        small_only.select(Requirements(GiB))
    assert "ds-small: not mounted on a connected host not in maintenance" in e.value.message
    p = DatastoreSelector(vsphere_session, inventory, cluster_names=["DC0_C0"]).select(Requirements(GiB))
    assert p.host_name in C0 - {"DC0_C0_H0"}


def test_no_valid_host_in_cluster(vsphere_session, inventory, host_maintenance):
    host_maintenance(*sorted(C1))
    with pytest.raises(exceptions.NoValidHost) as e:
        DatastoreSelector(vsphere_session, inventory, cluster_names=["DC0_C1"]).select(Requirements(GiB))
    assert "DC0_C1_H0 (in maintenance mode)" in e.value.message


# --- datastore state --------------------------------------------------------------------------

def test_entering_maintenance_and_inaccessible_rejected(selector, datastore_state):
    datastore_state("ds-big", maintenance="enteringMaintenance")
    datastore_state("ds-c1", accessible=False)
    cands = {c.name: c for c in selector.candidates(Requirements(GiB))}
    assert cands["ds-big"].reason == "entering maintenance mode"
    assert cands["ds-c1"].reason == "not accessible"
    assert selector.select(Requirements(GiB)).datastore_name == "ds-c0"


def test_back_to_normal_is_eligible_again(selector, datastore_state):
    datastore_state("ds-maint", maintenance="normal")
    # ds-maint: 6 hosts and empty, so it beats ds-big on utilisation.
    assert selector.select(Requirements(GiB)).datastore_name == "ds-maint"


def test_zero_capacity_rejected(selector, datastore_state):
    datastore_state("ds-big", capacity=0, free=0)
    cands = {c.name: c for c in selector.candidates(Requirements(0))}
    assert cands["ds-big"].reason == "capacity is 0"


# --- keep-current check, stats, cost ----------------------------------------------------------

def test_is_usable(selector, live):
    c0 = live()["ds-c0"]
    assert selector.is_usable("ds-c0", Requirements(10 * GiB))
    assert selector.is_usable(c0.moref, Requirements(10 * GiB))
    assert not selector.is_usable(c0.moref, Requirements(c0.free_space + 1))
    assert not selector.is_usable("ds-maint", Requirements(GiB))
    assert not selector.is_usable("ds-big", Requirements(GiB, excluded_datastores=frozenset({"ds-big"})))
    assert not selector.is_usable("no-such-ds", Requirements(GiB))


def test_volume_stats_sum_eligible_datastores(vsphere_session, inventory, live):
    ds = live()
    st = volume_stats(DatastoreSelector(vsphere_session, inventory))
    assert set(st.datastores) == ELIGIBLE
    assert st.total_bytes == sum(ds[n].capacity for n in ELIGIBLE)
    assert st.free_bytes == sum(ds[n].free_space for n in ELIGIBLE)
    st1 = volume_stats(DatastoreSelector(vsphere_session, inventory, cluster_names=["DC0_C1"]))
    assert set(st1.datastores) == {"ds-big", "ds-c1"}


def test_selection_round_trips_are_bounded(vsphere_session, selector):
    selector.select(Requirements(GiB))  # warm: datacenter lookup, container views
    before = vsphere_session.round_trips
    selector.select(Requirements(GiB))
    # hosts + compute resources (one retrieve), datastores (one retrieve); no per-datastore calls.
    assert vsphere_session.round_trips - before <= 4
