"""Storage policy helpers against the test vCenter's PBM endpoint.

Our simulator (tests/vcsim) evaluates policies as vCenter does: a tag rule matches the datastores carrying
that tag (ds-big and ds-c1 have tier=gold, which the vmdk-gold policy requires), vSAN rules match vSAN
datastores (none here), a policy without rules matches every datastore, and each answer covers exactly the
hubs asked about. A stock govmomi 0.24.2 vcsim instead returns every datastore for any policy; the
request-level assertions below (captured with tests/integration/soap_capture.py) hold either way.
"""

from __future__ import annotations

import pytest
from pyVmomi import pbm, vim
from soap_capture import SoapCapture

from terraform_provider_vmdk.vsphere import exceptions
from terraform_provider_vmdk.vsphere.placement import pbm as pbm_util
from terraform_provider_vmdk.vsphere.placement.datastore import (
    SUPPORTED_TYPES,
    DatastoreSelector,
    Requirements,
    volume_stats,
)
from terraform_provider_vmdk.vsphere.placement.inventory import Inventory
from terraform_provider_vmdk.vsphere.volumes import specs

pytestmark = pytest.mark.integration

# Built into vcsim's PBM simulator (pbm/simulator/profiles.go).
VSAN_DEFAULT = ("vSAN Default Storage Policy", "aa6d5a82-1c88-45da-85d3-3d74b91a5bad")
VVOL_NO_REQ = ("VVol No Requirements Policy", "f4e5bade-15a2-4805-bf8e-52318c4ce443")
GOLD = "vmdk-gold"  # created by tests/vcsim/main.go (random id)


@pytest.fixture
def pbm_requests(vsphere_session):
    """Every PBM SOAP request sent (method, args, serialized XML), via soap_capture on the PBM stub."""
    solver = vsphere_session.pbm_content().placementSolver  # all PBM objects share this stub
    with SoapCapture(solver) as cap:
        yield cap


@pytest.fixture
def selector(vsphere_session):
    # vcsim's local datastores are type OTHER; widen the allowed types for tests only.
    return DatastoreSelector(vsphere_session, Inventory(vsphere_session),
                             allowed_types=SUPPORTED_TYPES | {"other"})


def test_find_profile_id_known_policies(vsphere_session):
    pbm_util.clear_profile_cache(vsphere_session)
    assert pbm_util.find_profile_id(vsphere_session, VSAN_DEFAULT[0]) == VSAN_DEFAULT[1]
    assert pbm_util.find_profile_id(vsphere_session, VVOL_NO_REQ[0]) == VVOL_NO_REQ[1]


def test_profile_lookup_is_cached_per_session(vsphere_session, pbm_requests):
    pbm_util.clear_profile_cache(vsphere_session)
    pbm_util.find_profile_id(vsphere_session, VSAN_DEFAULT[0])
    pbm_util.find_profile_id(vsphere_session, VVOL_NO_REQ[0])
    assert pbm_requests.methods() == ["PbmQueryProfile", "PbmRetrieveContent"]
    assert pbm_requests.last("PbmQueryProfile").args["resourceType"].resourceType == "STORAGE"


def test_profile_not_found_names_policy_and_lists_available(vsphere_session):
    with pytest.raises(exceptions.ProfileNotFound) as e:
        pbm_util.find_profile_id(vsphere_session, "gold")
    msg = str(e.value)
    assert "'gold'" in msg and repr(VSAN_DEFAULT[0]) in msg and repr(VVOL_NO_REQ[0]) in msg


def test_selector_profile_not_found(selector):
    with pytest.raises(exceptions.ProfileNotFound):
        selector.select(Requirements(1 << 30, profile_name="no-such-policy"))


def test_check_requirements_request_names_profile_and_candidate_hubs(vsphere_session, selector, pbm_requests):
    """The request names the profile id and the datastores that passed rules 1-6, as hubs."""
    gold_id = pbm_util.find_profile_id(vsphere_session, GOLD)
    excluded = "ds-c0"
    placement = selector.select(Requirements(1 << 30, profile_name=GOLD, excluded_datastores=frozenset({excluded})))
    assert placement.profile_id == gold_id and placement.datastore_name in ("ds-big", "ds-c1")
    assert pbm_requests.count("PbmCheckRequirements") == 1
    call = pbm_requests.last("PbmCheckRequirements")
    [req] = call.args["placementSubjectRequirement"]
    assert isinstance(req, pbm.placement.CapabilityProfileRequirement) and req.profileId.uniqueId == gold_id
    survivors = {ev.datastore.key for ev in selector.candidates(Requirements(1 << 30,
                 excluded_datastores=frozenset({excluded}))) if ev.eligible}
    assert {(h.hubType, h.hubId) for h in call.args["hubsToSearch"]} == {("Datastore", k) for k in survivors}
    assert f"<uniqueId>{gold_id}</uniqueId>" in call.xml
    for k in survivors:
        assert f"<hubId>{k}</hubId>" in call.xml


def test_compliance_follows_the_datastores_tags(vsphere_session):
    by_name = {d.name: d.moref for d in Inventory(vsphere_session).datastores()}
    everything = list(by_name.values())
    gold_id = pbm_util.find_profile_id(vsphere_session, GOLD)
    raw = pbm_util.check_requirements(vsphere_session, gold_id, everything[:2])
    assert len(raw) == 2  # one answer per hub asked
    gold = pbm_util.filter_compliant_datastores(vsphere_session, gold_id, everything)
    assert sorted(d._moId for d in gold) == sorted(by_name[n]._moId for n in ("ds-big", "ds-c1"))
    assert pbm_util.filter_compliant_datastores(vsphere_session, VSAN_DEFAULT[1], everything) == []
    assert pbm_util.filter_compliant_datastores(vsphere_session, VVOL_NO_REQ[1], everything) == everything


def test_a_datastore_tagged_later_complies(vcsim, vsphere_session, is_vcsim):
    if not is_vcsim:
        pytest.skip("tags datastores through the test vCenter's control endpoint")
    by_name = {d.name: d.moref for d in Inventory(vsphere_session).datastores()}
    gold_id = pbm_util.find_profile_id(vsphere_session, GOLD)
    assert pbm_util.filter_compliant_datastores(vsphere_session, gold_id, [by_name["ds-c0"]]) == []
    vcsim.set_datastore_tag("ds-c0", "tier", "gold")
    try:
        assert pbm_util.filter_compliant_datastores(vsphere_session, gold_id, [by_name["ds-c0"]]) == [by_name["ds-c0"]]
    finally:
        vcsim.set_datastore_tag("ds-c0", "tier", None)


def test_placement_with_a_policy_uses_only_compliant_datastores(selector):
    cands = selector.candidates(Requirements(1 << 30, profile_name=GOLD))
    compliant = sorted(c.name for c in cands if c.eligible)
    assert compliant == ["ds-big", "ds-c1"]
    assert all("does not comply with storage policy 'vmdk-gold'" in c.reason for c in cands
               if c.name in ("ds-c0", "ds-small", "LocalDS_0"))


def test_volume_stats_with_policy_requests_each_policy(vsphere_session, selector, pbm_requests):
    plain = volume_stats(selector)
    with_policies = volume_stats(selector, [VSAN_DEFAULT[0], VVOL_NO_REQ[0]])
    assert with_policies == plain  # the VVol policy has no rules: every eligible datastore complies
    ids = [c.args["placementSubjectRequirement"][0].profileId.uniqueId
           for c in pbm_requests.named("PbmCheckRequirements")]
    assert ids == [VSAN_DEFAULT[1], VVOL_NO_REQ[1]]
    assert volume_stats(selector, [GOLD]).datastores == ("ds-big", "ds-c1")


def test_profile_specs_on_create_vm(vsphere_session, selector):
    """vcsim accepts and ignores vmProfile / disk profile (QueryAssociatedProfile stays empty), so we
    check that the request carries them and that vcsim takes the request."""
    p = selector.select(Requirements(1 << 30, profile_name=GOLD))
    disk = vim.vm.device.VirtualDeviceSpec(
        operation="add", fileOperation="create", profile=specs.profile_specs(p.profile_id),
        device=vim.vm.device.VirtualDisk(
            key=-101, unitNumber=0, controllerKey=-100, capacityInKB=1024,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=True)))
    ctrl = vim.vm.device.VirtualDeviceSpec(
        operation="add", device=vim.vm.device.VirtualLsiLogicController(key=-100, busNumber=0, sharedBus="noSharing"))
    spec = vim.vm.ConfigSpec(name="pbm-spec-test", guestId="otherGuest", numCPUs=1, memoryMB=128,
                             files=vim.vm.FileInfo(vmPathName=f"[{p.datastore_name}]"),
                             vmProfile=specs.profile_specs(p.profile_id), deviceChange=[ctrl, disk])
    folder = Inventory(vsphere_session).vm_folder
    with SoapCapture(vsphere_session.si) as cap:
        vm = vsphere_session.run_task(folder.CreateVM_Task, spec, p.resource_pool, p.host)
    try:
        xml = cap.last("CreateVM_Task").xml
        assert xml.count(f"<profileId>{p.profile_id}</profileId>") == 2  # VM and disk
        assert 'VirtualMachineDefinedProfileSpec' in xml
    finally:
        vsphere_session.run_task(vm.Destroy_Task)
