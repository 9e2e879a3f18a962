"""pbm.py helpers against a fake PBM service content (no vSphere)."""

from __future__ import annotations

import pytest
from pyVmomi import pbm, vim

from terraform_provider_vmdk.vsphere import exceptions
from terraform_provider_vmdk.vsphere.placement import pbm as pbm_util


def _profile(name, uid):
    return pbm.profile.CapabilityBasedProfile(name=name, profileId=pbm.profile.ProfileId(uniqueId=uid))


class FakeProfileManager:
    def __init__(self, profiles):
        self.profiles, self.calls = profiles, 0

    def PbmQueryProfile(self, resourceType):
        assert resourceType.resourceType == "STORAGE"
        self.calls += 1
        return [p.profileId for p in self.profiles]

    def PbmRetrieveContent(self, profileIds):
        ids = {i.uniqueId for i in profileIds}
        return [p for p in self.profiles if p.profileId.uniqueId in ids]


class FakeSolver:
    def __init__(self, answer):
        self.answer, self.requests = answer, []

    def PbmCheckRequirements(self, hubsToSearch, placementSubjectRequirement, placementSubjectRef=None):
        self.requests.append((hubsToSearch, placementSubjectRequirement))
        return self.answer(hubsToSearch)


class FakeSession:
    def __init__(self, profiles=(), answer=lambda hubs: []):
        self.content = type("C", (), {})()
        self.content.profileManager = FakeProfileManager(list(profiles))
        self.content.placementSolver = FakeSolver(answer)
        self.calls = []

    def pbm_content(self):
        return self.content

    def call(self, fn, *a, **kw):
        self.calls.append(fn.__name__)
        return fn(*a, **kw)


def _result(hub_id, error=None):
    return pbm.placement.CompatibilityResult(
        hub=pbm.placement.PlacementHub(hubType="Datastore", hubId=hub_id), error=error or [])


def test_find_profile_id_and_cache():
    s = FakeSession([_profile("gold", "u-gold"), _profile("silver", "u-silver")])
    assert pbm_util.find_profile_id(s, "gold") == "u-gold"
    assert pbm_util.find_profile_id(s, "silver") == "u-silver"
    assert s.content.profileManager.calls == 1  # second lookup served from the per-session cache
    assert "PbmQueryProfile" in s.calls  # goes through Session.call (retries)
    pbm_util.clear_profile_cache(s)
    pbm_util.find_profile_id(s, "gold")
    assert s.content.profileManager.calls == 2


def test_profile_not_found_lists_available():
    s = FakeSession([_profile("gold", "u1"), _profile("bronze", "u2")])
    with pytest.raises(exceptions.ProfileNotFound) as e:
        pbm_util.find_profile_id(s, "Gold")  # names are case-sensitive, as in vCenter
    assert e.value.message == "storage policy 'Gold' not found in vCenter (available policies: 'bronze', 'gold')"


def test_profile_not_found_with_no_profiles():
    with pytest.raises(exceptions.ProfileNotFound, match=r"available policies: none"):
        pbm_util.find_profile_id(FakeSession([]), "gold")


def test_filter_request_and_answer_handling():
    # Answer like vcsim (every datastore, including ones not asked for) plus an error result.
    def answer(hubs):
        return [_result("datastore-1"), _result("datastore-2", [vim.fault.NotFound()]), _result("datastore-99")]

    s = FakeSession(answer=answer)
    ds = [vim.Datastore("datastore-1"), vim.Datastore("datastore-2"), vim.Datastore("datastore-3")]
    assert pbm_util.filter_compliant_datastores(s, "u-gold", ds) == [ds[0]]
    hubs, reqs = s.content.placementSolver.requests[0]
    assert [(h.hubType, h.hubId) for h in hubs] == [("Datastore", f"datastore-{i}") for i in (1, 2, 3)]
    assert len(reqs) == 1 and isinstance(reqs[0], pbm.placement.CapabilityProfileRequirement)
    assert reqs[0].profileId.uniqueId == "u-gold"


def test_filter_empty_makes_no_call():
    s = FakeSession(answer=lambda hubs: [_result(h.hubId) for h in hubs])
    assert pbm_util.filter_compliant_datastores(s, "u", []) == []
    assert s.content.placementSolver.requests == []
    assert pbm_util.filter_compliant_datastores(s, "u", [vim.Datastore("datastore-7")])


def test_profile_id_of():
    assert pbm_util.profile_id_of("u-x").uniqueId == "u-x"
    with pytest.raises(TypeError):
        pbm_util.profile_id_of("")
