"""Storage policy (SPBM) helpers over vCenter's PBM endpoint.

Policy names are what users write (Cinder's ``vmware:storage_profile``); vCenter works with profile ids,
so names are resolved once per session and cached. Datastore compliance is asked of the PBM placement
solver with ``PbmCheckRequirements`` rather than Cinder's ``PbmQueryMatchingHub`` because the vcsim we
test against implements only the former (``CheckCompatibility``/``QueryMatchingHub`` are MethodNotFound
there); both answer the same question on a real vCenter.

vcsim gap (see tests/integration/test_pbm*.py): its ``PbmCheckRequirements`` ignores the policy and
returns *every* datastore of the inventory, even ones we did not ask about. We therefore always
intersect the answer with the hubs we sent, and integration tests assert on the request we send.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from pyVmomi import pbm

from .. import exceptions

__all__ = [
    "STORAGE_RESOURCE_TYPE",
    "find_profile_id",
    "list_profiles",
    "filter_compliant_datastores",
    "profile_id_of",
    "clear_profile_cache",
]

STORAGE_RESOURCE_TYPE = "STORAGE"
NO_POLICIES = ("A standalone ESXi host has no storage policies (SPBM is a vCenter service): remove "
               "storage_policy, or manage the volume through the vCenter that manages the host.")


_T = TypeVar("_T")

# name -> unique id, per Session object; weak so a logged-out session takes its cache with it.
_cache: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _call(session: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Go through Session.call so PBM calls get the same retry/relogin policy as vim calls."""
    call = getattr(session, "call", None)
    return call(fn, *args, **kwargs) if call is not None else fn(*args, **kwargs)


def _content(session: Any) -> Any:
    return session.pbm_content()


def profile_id_of(profile_id: Any) -> pbm.profile.ProfileId:
    """Accept a unique-id string or a ProfileId and return a ProfileId data object."""
    if isinstance(profile_id, pbm.profile.ProfileId):
        return profile_id
    if not isinstance(profile_id, str) or not profile_id:
        raise TypeError(f"profile id must be a non-empty str or pbm.profile.ProfileId, got {profile_id!r}")
    return pbm.profile.ProfileId(uniqueId=profile_id)


def list_profiles(session: Any) -> list[Any]:
    """All storage (resource type STORAGE) profiles, as pbm.profile.Profile objects."""
    pm = _content(session).profileManager
    ids = _call(session, pm.PbmQueryProfile,
                resourceType=pbm.profile.ResourceType(resourceType=STORAGE_RESOURCE_TYPE))
    if not ids:
        return []
    return list(_call(session, pm.PbmRetrieveContent, profileIds=list(ids)) or [])


def find_profile_id(session: Any, name: str) -> str:
    if getattr(session, "is_host_agent", False):
        raise exceptions.ProfileNotFound(NO_POLICIES)
    return _find_profile_id(session, name)


def _find_profile_id(session: Any, name: str) -> str:
    """Resolve a storage policy name to its PBM unique id (cached per session).

    Raises ProfileNotFound naming the policy and the policies that do exist, because a typo in a
    policy name is the usual cause and the list makes it obvious.
    """
    with _cache_lock:
        cached = _cache.get(session, {}).get(name)
    if cached is not None:
        return cached
    profiles = list_profiles(session)
    found: dict[str, str] = {p.name: p.profileId.uniqueId for p in profiles}
    with _cache_lock:
        _cache.setdefault(session, {}).update(found)
    if name in found:
        return found[name]
    available = ", ".join(repr(n) for n in sorted(found)) or "none"
    raise exceptions.ProfileNotFound(
        f"storage policy {name!r} not found in vCenter (available policies: {available})")


def clear_profile_cache(session: Any | None = None) -> None:
    """Forget cached name -> id mappings (all sessions when session is None); for renamed policies."""
    with _cache_lock:
        if session is None:
            _cache.clear()
        else:
            _cache.pop(session, None)


def _moref_value(ds: Any) -> str:
    """moref value of a vim.Datastore, a moref string, or a record with ``moref``/``key``."""
    if isinstance(ds, str):
        return ds
    inner = getattr(ds, "moref", None)
    if inner is not None and inner is not ds:
        return _moref_value(inner)
    mo_id: str | None = getattr(ds, "_moId", None)
    if mo_id is None and isinstance(getattr(ds, "key", None), str):
        mo_id = ds.key  # datastore.DatastoreState without a live moref (unit tests)
    if mo_id is None:
        raise TypeError(f"cannot get a datastore moref from {ds!r}")
    return mo_id


def hubs_for(datastores: Iterable[Any]) -> list[Any]:
    """Datastores as PbmPlacementHub objects (hubType Datastore, hubId the moref value)."""
    return [pbm.placement.PlacementHub(hubType="Datastore", hubId=_moref_value(ds)) for ds in datastores]


def check_requirements(session: Any, profile_id: Any, datastores: Sequence[Any]) -> list[Any]:
    """Raw PbmCheckRequirements answer for these datastores against one policy."""
    solver = _content(session).placementSolver
    requirement = pbm.placement.CapabilityProfileRequirement(profileId=profile_id_of(profile_id))
    return list(_call(session, solver.PbmCheckRequirements,
                      hubsToSearch=hubs_for(datastores),
                      placementSubjectRequirement=[requirement]) or [])


def filter_compliant_datastores(session: Any, profile_id: Any, datastores: Sequence[_T]) -> list[_T]:
    """The subset of ``datastores`` (order kept) that satisfies the policy.

    A hub counts as compliant when the solver returns it without an ``error``; hubs the solver
    returns that we did not send are ignored (vcsim returns all datastores).
    """
    datastores = list(datastores)
    if not datastores:
        return []
    ok: set[str] = set()
    for result in check_requirements(session, profile_id, datastores):
        hub = getattr(result, "hub", None)
        if hub is None or (hub.hubType or "Datastore") != "Datastore":
            continue
        if not getattr(result, "error", None):
            ok.add(hub.hubId)
    return [ds for ds in datastores if _moref_value(ds) in ok]
