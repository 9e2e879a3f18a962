"""Storage policy helpers against vcsim's PBM endpoint.

vcsim gaps that shape these tests (govmomi 0.24.2, see /work/shared/reference/vcsim-facts.md):
- ``PbmCheckRequirements`` ignores the requirement and returns *every* datastore in the inventory,
  even hubs we did not send; so compliance answers carry no information, and we assert on the SOAP
  request we send instead (captured with tests/integration/soap_capture.py on the PBM stub).
- ``PbmCheckCompatibility`` / ``PbmQueryMatchingHub`` are not implemented (MethodNotFound), which is
  why pbm.py uses ``PbmCheckRequirements``.
"""

from __future__ import annotations

import pytest
from pyVmomi import pbm, vim
from soap_capture import SoapCapture

from terraform_provider_vmdk.vsphere import exceptions, specs
from terraform_provider_vmdk.vsphere import pbm as pbm_util
from terraform_provider_vmdk.vsphere.datastore import (
    SUPPORTED_TYPES,
    DatastoreSelector,
    Requirements,
    volume_stats,
)
from terraform_provider_vmdk.vsphere.inventory import Inventory

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
    """The request we send is what a real vCenter would judge: right profile id, survivors as hubs."""
    excluded = sorted(d.name for d in Inventory(vsphere_session).datastores())[0]
    placement = selector.select(Requirements(1 << 30, profile_name=VSAN_DEFAULT[0],
                                             excluded_datastores=frozenset({excluded})))
    assert placement.profile_id == VSAN_DEFAULT[1]
    assert pbm_requests.count("PbmCheckRequirements") == 1
    call = pbm_requests.last("PbmCheckRequirements")
    args = call.args
    [req] = args["placementSubjectRequirement"]
    assert isinstance(req, pbm.placement.CapabilityProfileRequirement)
    assert req.profileId.uniqueId == VSAN_DEFAULT[1]
    # Hubs are exactly the datastores that passed rules 1-6, i.e. not the excluded one.
    survivors = {ev.datastore.key for ev in selector.candidates(Requirements(1 << 30,
                 excluded_datastores=frozenset({excluded}))) if ev.eligible}
    assert {(h.hubType, h.hubId) for h in args["hubsToSearch"]} == {("Datastore", k) for k in survivors}
    assert placement.datastore._moId in survivors
    # And on the wire: the XML names the profile id and each hub.
    assert f"<uniqueId>{VSAN_DEFAULT[1]}</uniqueId>" in call.xml
    for k in survivors:
        assert f"<hubId>{k}</hubId>" in call.xml
    assert "<hubId>" + next(d.moref._moId for d in Inventory(vsphere_session).datastores()
                            if d.name == excluded) + "</hubId>" not in call.xml


def test_answer_limited_to_hubs_we_sent(vsphere_session):
    """vcsim answers with every datastore; only the ones asked about may come back."""
    all_ds = [d.moref for d in Inventory(vsphere_session).datastores()]
    assert len(all_ds) >= 2
    one = all_ds[:1]
    raw = pbm_util.check_requirements(vsphere_session, VSAN_DEFAULT[1], one)
    assert len(raw) == len(all_ds)  # the vcsim gap itself: policy and hub list ignored
    assert pbm_util.filter_compliant_datastores(vsphere_session, VSAN_DEFAULT[1], one) == one
    assert pbm_util.filter_compliant_datastores(vsphere_session, VSAN_DEFAULT[1], one) == one


def test_non_compliant_hub_is_filtered(vsphere_session, monkeypatch):
    """Simulate vCenter's answer for a non-matching hub (an ``error`` entry) on top of vcsim's reply."""
    all_ds = [d.moref for d in Inventory(vsphere_session).datastores()]
    real = pbm_util.check_requirements

    def with_error(session, profile_id, datastores):
        results = real(session, profile_id, datastores)
        for r in results:
            if r.hub.hubId == all_ds[0]._moId:
                r.error = [vim.fault.NotFound()]
        return results

    monkeypatch.setattr(pbm_util, "check_requirements", with_error)
    assert pbm_util.filter_compliant_datastores(vsphere_session, VSAN_DEFAULT[1], all_ds) == all_ds[1:]


def test_volume_stats_with_policy_requests_each_policy(vsphere_session, selector, pbm_requests):
    plain = volume_stats(selector)
    with_policies = volume_stats(selector, [VSAN_DEFAULT[0], VVOL_NO_REQ[0]])
    assert with_policies == plain  # vcsim: every datastore "complies"
    ids = [c.args["placementSubjectRequirement"][0].profileId.uniqueId
           for c in pbm_requests.named("PbmCheckRequirements")]
    assert ids == [VSAN_DEFAULT[1], VVOL_NO_REQ[1]]


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
