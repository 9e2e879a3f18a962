"""Datastore selection for volume backings: ``DatastoreSelector`` loads the inventory (one PropertyCollector
round trip each for hosts and datastores), asks PBM about policy compliance, and runs the pure placement rules
of ``placement`` (where the rules, their order and the ranking are described).

Parallel creates in one process must not over-commit a datastore: ``select(..., reserve=True)`` counts the
space of the creates still in flight (``Placement.release`` gives it back once vSphere reports it).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .. import exceptions
from . import pbm as pbm_util
from .rules import (
    SUPPORTED_TYPES,
    DatastoreState,
    Evaluation,
    GiB,
    HostState,
    MountState,
    Placement,
    Requirements,
    Rules,
    VolumeStats,
    _ref_text,
    apply_policy,
    choose_host,
    evaluate,
    explain,
    format_size,
    rank,
)

RESERVATION_GRACE = 600.0  # seconds a finished create's space stays counted (see _release)

__all__ = [
    "GiB", "SUPPORTED_TYPES", "MountState", "HostState", "DatastoreState", "Rules", "Evaluation", "Requirements",
    "Placement", "PodChoice", "VolumeStats", "DatastoreSelector", "evaluate", "apply_policy", "rank", "choose_host",
    "explain", "format_size", "volume_stats", "host_state", "datastore_state",
]

# ---------------------------------------------------------------------------------------------
# Adapters from the inventory module's records


def _first(obj: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if isinstance(obj, Mapping):
            if n in obj:
                return obj[n]
        elif hasattr(obj, n):
            return getattr(obj, n)
    return default


def _mount_state(m: Any) -> MountState:
    """From inventory mount records or raw vim.host.DatastoreHostMount."""
    info = _first(m, "mountInfo", "mount_info")
    src = info if info is not None else m
    host = _first(m, "host", "key", "host_moref", "moref")
    access = _first(src, "access_mode", "accessMode", default="readWrite")
    read_write = _first(src, "read_write", default=None)
    if read_write is None:
        read_write = (access or "readWrite") == "readWrite"
    mounted = _first(src, "mounted", default=True)
    accessible = _first(src, "accessible", default=True)
    return MountState(host=_ref_text(host),
                      read_write=bool(read_write),
                      mounted=True if mounted is None else bool(mounted),
                      accessible=True if accessible is None else bool(accessible))


def _cluster_name(c: Any) -> str | None:
    if c is None or isinstance(c, str):
        return c
    return _first(c, "name", default=None) or _ref_text(c)


def host_state(h: Any) -> HostState:
    moref = _first(h, "moref", "ref")
    return HostState(key=_ref_text(moref), name=_first(h, "name"),
                     connected=bool(_first(h, "connected", default=True)),
                     maintenance=bool(_first(h, "maintenance", "in_maintenance", default=False)),
                     cluster=_cluster_name(_first(h, "cluster", "cluster_name")),
                     resource_pool=_first(h, "resource_pool", "resourcePool"), moref=moref)


def datastore_state(d: Any) -> DatastoreState:
    moref = _first(d, "moref", "ref")
    mounts = _first(d, "host_mounts", "mounts", "hosts", "host", default=()) or ()
    return DatastoreState(key=_ref_text(moref), name=_first(d, "name"), type=_first(d, "type") or "",
                          capacity=int(_first(d, "capacity", default=0) or 0),
                          free_space=int(_first(d, "free_space", "freeSpace", default=0) or 0),
                          accessible=bool(_first(d, "accessible", default=False)),
                          maintenance_mode=_first(d, "maintenance_mode", "maintenanceMode",
                                                  default="normal"),
                          mounts=tuple(_mount_state(m) for m in mounts), moref=moref,
                          pod=_first(d, "pod", default=None))


# ---------------------------------------------------------------------------------------------
# The selector


@dataclass(frozen=True)
class PodChoice:
    """A datastore cluster's members judged by our rules: ``ranked`` the eligible ones best first, each with its
    ``placements`` entry (host and resource pool) keyed by moref value."""

    members: tuple[Evaluation, ...]
    ranked: tuple[Evaluation, ...]
    placements: Mapping[str, Placement]
    profile_id: str | None = None

    def verdict(self, key: str) -> Evaluation | None:
        return next((ev for ev in self.members if ev.datastore.key == key), None)


class DatastoreSelector:
    """Chooses a datastore, host and resource pool for a volume backing.

    ``allowed_types`` defaults to Cinder's supported types; only tests against vcsim (whose local
    datastores are type OTHER) should widen it.
    """

    def __init__(self, session: Any, inventory: Any, *, name_regex: re.Pattern[str] | str | None = None,
                 cluster_names: Sequence[str] | None = None,
                 allowed_types: Iterable[str] = SUPPORTED_TYPES,
                 rng: random.Random | None = None) -> None:
        self.session = session
        self.inventory = inventory
        self.name_regex = re.compile(name_regex) if isinstance(name_regex, str) else name_regex
        self.cluster_names = list(cluster_names) if cluster_names else None
        self.allowed_types = frozenset(t.lower() for t in allowed_types)
        self.rng = rng
        self._reserved: dict[str, int] = {}  # datastore moref value -> bytes of creates in flight
        self._released: list[tuple[float, str, int]] = []  # (expiry, key, bytes) of finished creates
        self._reserve_lock = threading.Lock()  # guards the two above only (never held across a call)

    # -- loading ---------------------------------------------------------------------------

    def _datastores(self) -> list[DatastoreState]:
        """The datastores as vSphere reports them, less the space this process's creates have reserved."""
        with self._reserve_lock:
            self._expire(time.monotonic())
            reserved = dict(self._reserved)
        states = [datastore_state(d) for d in self.inventory.datastores()]
        return [replace(ds, free_space=ds.free_space - reserved[ds.key], reserved=reserved[ds.key])
                if reserved.get(ds.key) else ds for ds in states]

    def _release(self, key: str, size: int) -> None:
        """A create finished: vCenter reports a datastore's new free space only after its next refresh
        (minutes, not seconds), so the reservation stays counted for RESERVATION_GRACE seconds more."""
        with self._reserve_lock:
            self._released.append((time.monotonic() + RESERVATION_GRACE, key, size))

    def _expire(self, now: float) -> None:
        while self._released and self._released[0][0] <= now:
            _, key, size = self._released.pop(0)
            left = self._reserved.get(key, 0) - size
            if left > 0:
                self._reserved[key] = left
            else:
                self._reserved.pop(key, None)

    def _scope_hosts(self, requirements: Requirements) -> tuple[dict[str, HostState], str]:
        """Valid hosts keyed by moref value, and a phrase describing the scope for messages.

        Raises ClusterNotFound for an unknown configured cluster and NoValidHost when no host in
        scope is connected and out of maintenance.
        """
        if self.cluster_names:
            # Inventory.hosts raises ClusterNotFound naming unknown clusters.
            hosts = [host_state(h) for h in self.inventory.hosts(self.cluster_names)]
            scope = "a usable host in cluster(s) " + ", ".join(repr(c) for c in self.cluster_names)
        else:
            hosts = [host_state(h) for h in self.inventory.hosts()]
            scope = "a connected host not in maintenance"
        if requirements.hosts is not None:
            hosts = [h for h in hosts if h.key in requirements.hosts or h.name in requirements.hosts]
            scope = "requested host(s) " + ", ".join(sorted(requirements.hosts))
        valid = {h.key: h for h in hosts if h.usable}
        if not valid:
            detail = ", ".join(f"{h.name} ({h.why_unusable()})" for h in sorted(hosts, key=lambda h: h.name))
            where = scope.replace("a usable host in ", "").replace("a connected host not in maintenance",
                                                                   "the datacenter")
            raise exceptions.NoValidHost(
                f"no connected host out of maintenance mode in {where}"
                + (f": {detail}" if detail else ": no hosts found"))
        return valid, scope

    def _rules(self, requirements: Requirements, valid_hosts: Mapping[str, HostState], scope: str) -> Rules:
        return Rules(size_bytes=requirements.size_bytes, name_regex=self.name_regex,
                     excluded=frozenset(requirements.excluded_datastores), valid_hosts=valid_hosts,
                     allowed_types=self.allowed_types, host_scope=scope, only=requirements.datastore,
                     pod=requirements.pod)

    def _policy(self, evaluations: list[Evaluation], profile_name: str | None,
                profile_id: str | None) -> list[Evaluation]:
        if profile_id is None:
            return evaluations
        survivors = [ev.datastore for ev in evaluations if ev.eligible]
        compliant = pbm_util.filter_compliant_datastores(self.session, profile_id, survivors) \
            if survivors else []
        return apply_policy(evaluations, {d.key for d in compliant}, profile_name)

    # -- public API --------------------------------------------------------------------------

    def profile_id(self, profile_name: str | None) -> str | None:
        """PBM id for a policy name (None passes through); ProfileNotFound if unknown."""
        return pbm_util.find_profile_id(self.session, profile_name) if profile_name else None

    def _evaluate_all(self, requirements: Requirements) -> tuple[list[Evaluation], str, str | None]:
        profile_id = self.profile_id(requirements.profile_name)
        valid, scope = self._scope_hosts(requirements)
        rules = self._rules(requirements, valid, scope)
        evaluations = [evaluate(ds, rules) for ds in self._datastores()]
        return self._policy(evaluations, requirements.profile_name, profile_id), scope, profile_id

    def candidates(self, requirements: Requirements) -> list[Evaluation]:
        """Every datastore with its verdict, the one ``select`` would pick marked ``selected``.

        Sorted best first (eligible in rank order, then rejected ones by name).
        """
        evaluations, _, _ = self._evaluate_all(requirements)
        ranked = rank(evaluations)
        if ranked:
            best = ranked[0]
            ranked[0] = replace(best, selected=True)
        rejected = sorted((ev for ev in evaluations if not ev.eligible), key=lambda e: e.datastore.name)
        return ranked + rejected

    def select(self, requirements: Requirements, *, reserve: bool = False) -> Placement:
        """Best datastore plus a host and resource pool to create the backing on.

        ``reserve``: count ``requirements.size_bytes`` against the datastore until ``Placement.release``,
        so parallel creates of this process spread over datastores instead of over-committing one.
        Raises NoValidDatastore with every datastore's rejection reason, ProfileNotFound,
        ClusterNotFound or NoValidHost.
        """
        evaluations, scope, profile_id = self._evaluate_all(requirements)
        ranked = rank(evaluations)
        best = self._claim(ranked, requirements.size_bytes) if reserve else (ranked[0] if ranked else None)
        if best is None:
            raise exceptions.NoValidDatastore(
                explain(evaluations, requirements.size_bytes, requirements.profile_name,
                        scope if (self.cluster_names or requirements.hosts is not None) else None))
        if not reserve:
            return self._placement(best, requirements, profile_id)
        key, size = best.datastore.key, requirements.size_bytes
        try:
            placement = self._placement(best, requirements, profile_id)
        except BaseException:
            self._release(key, size)
            raise
        return replace(placement, release=lambda: self._release(key, size))

    def in_pod(self, requirements: Requirements) -> PodChoice:
        """Every member of ``requirements.pod`` with its verdict under our rules (Storage DRS recommends, these
        veto), the eligible ones ranked, and where each would go. NoValidDatastore when none is eligible."""
        evaluations, scope, profile_id = self._evaluate_all(requirements)
        members = [ev for ev in evaluations if ev.rule != "pod"]
        ranked = rank(members)
        if not ranked:
            raise exceptions.NoValidDatastore(
                explain(evaluations, requirements.size_bytes, requirements.profile_name,
                        scope if (self.cluster_names or requirements.hosts is not None) else None))
        return PodChoice(members=tuple(members), ranked=tuple(ranked),
                         placements={ev.datastore.key: self._placement(ev, requirements, profile_id) for ev in ranked},
                         profile_id=profile_id)

    def reserve(self, key: str, size: int) -> Callable[[], None]:
        """Count ``size`` bytes against datastore ``key`` (a create in flight); the result gives them back."""
        with self._reserve_lock:
            self._reserved[key] = self._reserved.get(key, 0) + size
        return lambda: self._release(key, size)

    def _claim(self, ranked: list[Evaluation], size: int) -> Evaluation | None:
        """The best candidate that still has room once the reservations made meanwhile are counted."""
        with self._reserve_lock:
            for ev in ranked:
                now = ev.datastore.free_space + ev.datastore.reserved - self._reserved.get(ev.datastore.key, 0)
                if now >= size:
                    self._reserved[ev.datastore.key] = self._reserved.get(ev.datastore.key, 0) + size
                    return ev
        return None

    def _placement(self, best: Evaluation, requirements: Requirements, profile_id: str | None) -> Placement:
        preferred = sorted(requirements.hosts) if requirements.hosts else ()
        host = choose_host(best, preferred, self.rng)
        pool = host.resource_pool
        if pool is None:
            pool = self._resource_pool_for(host)
        ds = best.datastore
        return Placement(host=host.moref, host_name=host.name, resource_pool=pool, datastore=ds.moref,
                         datastore_name=ds.name, summary=ds, profile_id=profile_id)

    def _resource_pool_for(self, host: HostState) -> Any:
        getter = getattr(self.inventory, "resource_pool_for_host", None)
        return getter(host.moref) if getter is not None else None

    def evaluate_one(self, datastore: Any, requirements: Requirements) -> Evaluation:
        """Verdict for one datastore (moref, moref value or name)."""
        want = _ref_text(datastore)
        profile_id = self.profile_id(requirements.profile_name)
        valid, scope = self._scope_hosts(requirements)
        rules = self._rules(requirements, valid, scope)
        matches = [ds for ds in self._datastores() if want in (ds.key, ds.name)]
        if not matches:
            return Evaluation(DatastoreState(key=want, name=want, type="", capacity=0, free_space=0,
                                             accessible=False), "datastore not found")
        return self._policy([evaluate(matches[0], rules)], requirements.profile_name, profile_id)[0]

    def is_usable(self, datastore: Any, requirements: Requirements) -> bool:
        """Whether the datastore a backing is on can stay (retype/extend keep a compliant one).

        Note: NoValidHost/ClusterNotFound/ProfileNotFound propagate, they are configuration errors.
        """
        return self.evaluate_one(datastore, requirements).eligible


def volume_stats(selector: DatastoreSelector, profile_names: Sequence[str] | None = None) -> VolumeStats:
    """Total/free capacity over datastores that could take a volume (Cinder's get_volume_stats).

    Eligible: matches the regex, capacity > 0, usable mount on a valid host of the configured
    clusters, supported type, accessible and not in maintenance; with ``profile_names``, also
    compliant with at least one of those policies. Datastores are counted once.
    """
    req = Requirements(size_bytes=0)
    valid, scope = selector._scope_hosts(req)
    rules = selector._rules(req, valid, scope)
    evaluations = [evaluate(ds, rules) for ds in selector._datastores()]
    eligible = [ev.datastore for ev in evaluations if ev.eligible]
    if profile_names:
        keep: dict[str, DatastoreState] = {}
        for name in profile_names:
            pid = pbm_util.find_profile_id(selector.session, name)
            for ds in pbm_util.filter_compliant_datastores(selector.session, pid, eligible):
                keep[ds.key] = ds
        eligible = [ds for ds in eligible if ds.key in keep]
    return VolumeStats(total_bytes=sum(d.capacity for d in eligible),
                       free_bytes=sum(d.free_space for d in eligible),
                       datastores=tuple(sorted(d.name for d in eligible)))
