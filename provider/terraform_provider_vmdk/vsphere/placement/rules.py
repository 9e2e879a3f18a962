"""Placement rules for volume backings, after Cinder's VMware ``DatastoreSelector``: the pure core.

This module is the *pure core* (``evaluate``, ``apply_policy``, ``rank``, ``choose_host``, ``explain``) on
plain frozen dataclasses, so every rule is unit-testable without vSphere; ``datastore.DatastoreSelector``
loads the inventory (one PropertyCollector round trip each for hosts and datastores), asks PBM about policy
compliance, and runs it.

Rules (in Cinder's order; the first failing rule is the datastore's rejection reason):

1. name matches the configured regex (``re.match``, i.e. anchored at the start, as Cinder does);
2. not excluded by the request (by name or moref value);
3. capacity > 0 and free space >= requested size;
4. mounted on a *valid host*: connected, not in maintenance, and in the configured clusters (or in
   the request's ``hosts``) — no valid host at all is ``NoValidHost``, an unknown cluster name
   ``ClusterNotFound``;
5. type in {vmfs, nfs, nfs41, vsan, vvol}, case-insensitive. vcsim's own ``LocalDS_0`` reports
   ``OTHER`` and is rejected like on vCenter; ``allowed_types`` can widen the set explicitly;
6. accessible and not in / entering maintenance mode;
6b. at least one of those mounts usable (read-write, mounted, accessible) — Cinder only finds this
   out when picking the host; we check it here so the reason is reported;
7. complies with the storage policy (PBM), asked only for the datastores that passed 1–6b.

Ranking: most usable mounts on valid hosts first (Cinder counts all mounts; we count the ones we
could actually place on, which is the same when no clusters are configured), then lowest space
utilisation (1 - free/capacity), then name for a stable order.

Host choice: Cinder picks a random usable host. Shadow VMs are never powered on, so spreading compute
load buys nothing while determinism makes plans and tests reproducible: by default we take the
request's first preferred host that qualifies, else the first by name. Pass ``rng`` to get Cinder's
random choice. The resource pool is that host's cluster's (or standalone compute resource's) root pool.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "GiB",
    "SUPPORTED_TYPES",
    "MountState",
    "HostState",
    "DatastoreState",
    "Rules",
    "Evaluation",
    "Requirements",
    "Placement",
    "VolumeStats",
    "evaluate",
    "apply_policy",
    "rank",
    "choose_host",
    "explain",
    "format_size",
]

GiB = 1 << 30
MiB = 1 << 20

#: Datastore types Cinder places volumes on (DatastoreSummary.type, compared lower-cased).
SUPPORTED_TYPES: frozenset[str] = frozenset({"vmfs", "nfs", "nfs41", "vsan", "vvol"})

_MAINTENANCE_TEXT = {
    "inmaintenance": "in maintenance mode",
    "enteringmaintenance": "entering maintenance mode",
}


# ---------------------------------------------------------------------------------------------
# Plain data


@dataclass(frozen=True)
class MountState:
    """One DatastoreHostMount: which host, and whether the mount can take a new disk."""

    host: str  # host moref value
    read_write: bool = True
    mounted: bool = True
    accessible: bool = True

    @property
    def usable(self) -> bool:
        return self.read_write and self.mounted and self.accessible


@dataclass(frozen=True)
class HostState:
    """A host as far as placement cares; ``moref``/``resource_pool`` are opaque to the core."""

    key: str  # moref value
    name: str
    connected: bool = True
    maintenance: bool = False
    cluster: str | None = None  # cluster name; None for a standalone host
    resource_pool: Any = None
    moref: Any = None

    @property
    def usable(self) -> bool:
        return self.connected and not self.maintenance

    def why_unusable(self) -> str | None:
        if not self.connected:
            return "not connected"
        if self.maintenance:
            return "in maintenance mode"
        return None


@dataclass(frozen=True)
class DatastoreState:
    """A datastore's summary and host mounts (``moref`` is opaque to the core)."""

    key: str  # moref value
    name: str
    type: str
    capacity: int
    free_space: int
    accessible: bool = True
    maintenance_mode: str | None = "normal"
    mounts: tuple[MountState, ...] = ()
    moref: Any = None
    reserved: int = 0  # bytes of this process's creates in flight, already taken off free_space
    pod: str | None = None  # the datastore cluster it is a member of

    @property
    def utilisation(self) -> float:
        return 1.0 - (self.free_space / self.capacity) if self.capacity > 0 else 1.0

    @property
    def in_maintenance(self) -> bool:
        return (self.maintenance_mode or "normal").lower() != "normal"


@dataclass(frozen=True)
class Rules:
    """Everything ``evaluate`` needs besides the datastore; ``valid_hosts`` is keyed by moref value."""

    size_bytes: int = 0
    name_regex: re.Pattern[str] | None = None
    excluded: frozenset[str] = frozenset()
    valid_hosts: Mapping[str, HostState] = field(default_factory=dict)
    allowed_types: frozenset[str] = SUPPORTED_TYPES
    host_scope: str = "a connected host not in maintenance"  # for messages
    only: str | None = None  # the one datastore a volume names (by name or moref value)
    pod: str | None = None  # only members of this datastore cluster


@dataclass(frozen=True)
class Evaluation:
    """A datastore with its verdict: ``reason`` is None when it is eligible."""

    datastore: DatastoreState
    reason: str | None
    hosts: tuple[HostState, ...] = ()  # valid hosts with a usable mount
    compliant: bool | None = None  # None: no policy asked, or rejected before the policy check
    selected: bool = False
    rule: str | None = None  # which rule rejected it ("only", "type", ...), for messages

    @property
    def eligible(self) -> bool:
        return self.reason is None

    @property
    def host_count(self) -> int:
        return len(self.hosts)

    # Convenience for the vmdk_datastores data source.
    @property
    def name(self) -> str:
        return self.datastore.name

    @property
    def type(self) -> str:
        return self.datastore.type

    @property
    def capacity_gb(self) -> float:
        return self.datastore.capacity / GiB

    @property
    def free_gb(self) -> float:
        return self.datastore.free_space / GiB

    @property
    def accessible(self) -> bool:
        return self.datastore.accessible

    @property
    def maintenance(self) -> str:
        return self.datastore.maintenance_mode or "normal"


@dataclass(frozen=True)
class Requirements:
    """What a volume needs.

    ``excluded_datastores`` holds names or moref values (or vim.Datastore objects). ``hosts`` (names or
    moref values) replaces the configured clusters as the set of valid hosts, like Cinder's instance
    host on attach: the backing must be reachable from those hosts. ``datastore``: the one datastore
    the volume names (every rule still applies to it, the regex included). ``pod``: only members of this
    datastore cluster (every rule still applies to each member).
    """

    size_bytes: int
    profile_name: str | None = None
    excluded_datastores: frozenset[Any] = frozenset()
    hosts: frozenset[str] | None = None
    datastore: str | None = None
    pod: str | None = None

    def __post_init__(self) -> None:
        if self.size_bytes < 0:
            raise ValueError("size_bytes must be >= 0")
        object.__setattr__(self, "excluded_datastores",
                           frozenset(_ref_text(x) for x in self.excluded_datastores))
        if self.hosts is not None:
            object.__setattr__(self, "hosts", frozenset(_ref_text(x) for x in self.hosts))


@dataclass(frozen=True)
class Placement:
    """Where to create a backing."""

    host: Any  # vim.HostSystem
    host_name: str
    resource_pool: Any  # vim.ResourcePool
    datastore: Any  # vim.Datastore
    datastore_name: str
    summary: DatastoreState
    profile_id: str | None = None
    # Gives back the space ``select(reserve=True)`` counted for the create (a no-op otherwise).
    release: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)


@dataclass(frozen=True)
class VolumeStats:
    """Cinder's get_volume_stats: capacity summed over the eligible datastores."""

    total_bytes: int
    free_bytes: int
    datastores: tuple[str, ...]

    @property
    def total_gb(self) -> float:
        return self.total_bytes / GiB

    @property
    def free_gb(self) -> float:
        return self.free_bytes / GiB


# ---------------------------------------------------------------------------------------------
# Pure core


def format_size(n: int) -> str:
    """Human size for messages: '10 GiB', '2.5 GiB', '512.0 MiB'."""
    if n % GiB == 0:
        return f"{n // GiB} GiB"
    if n >= GiB // 10:
        return f"{n / GiB:.1f} GiB"
    return f"{n / MiB:.1f} MiB"


def _ref_text(x: Any) -> str:
    """Name/moref string for a str or a pyVmomi managed object."""
    if isinstance(x, str):
        return x
    mo: str | None = getattr(x, "_moId", None)
    if mo is not None:
        return mo
    raise TypeError(f"expected a name, moref value or managed object, got {x!r}")


def evaluate(ds: DatastoreState, rules: Rules) -> Evaluation:
    """Apply rules 1–6b in order; the first failing one becomes the reason."""

    def reject(reason: str, rule: str | None = None) -> Evaluation:
        return Evaluation(ds, reason, rule=rule)

    if rules.only is not None and rules.only not in (ds.name, ds.key):
        return reject("not the datastore the volume names", "only")
    if rules.pod is not None and ds.pod != rules.pod:
        return reject(f"not a member of datastore cluster {rules.pod!r}", "pod")
    if rules.name_regex is not None and not rules.name_regex.match(ds.name):
        return reject(f"name does not match datastore_regex {rules.name_regex.pattern!r}")
    if ds.name in rules.excluded or ds.key in rules.excluded:
        return reject("excluded by the request")
    if ds.capacity <= 0:
        return reject("capacity is 0")
    if ds.free_space < rules.size_bytes:
        return reject(f"free {format_size(ds.free_space)} < {format_size(rules.size_bytes)} needed")

    on_valid = [m for m in ds.mounts if m.host in rules.valid_hosts]
    if not on_valid:
        return reject(f"not mounted on {rules.host_scope}" if ds.mounts else "not mounted on any host")
    if (ds.type or "").lower() not in rules.allowed_types:
        allowed = ", ".join(sorted(rules.allowed_types))
        return reject(f"type {ds.type or 'unknown'} is not in datastore_types ({allowed})", "type")
    if not ds.accessible:
        return reject("not accessible")
    if ds.in_maintenance:
        return reject(_MAINTENANCE_TEXT.get((ds.maintenance_mode or "").lower(),
                                            f"maintenance mode {ds.maintenance_mode}"))
    # Cinder checks mount usability only when picking the host; same outcome, earlier and explained.
    usable = [rules.valid_hosts[m.host] for m in on_valid if m.usable]
    if not usable:
        return reject(f"its mounts on {rules.host_scope} are not usable "
                      "(read-only, unmounted or inaccessible)")
    return Evaluation(ds, None, hosts=tuple(sorted(usable, key=lambda h: (h.name, h.key))))


def apply_policy(evaluations: Sequence[Evaluation], compliant_keys: Iterable[str] | None,
                 policy_name: str | None) -> list[Evaluation]:
    """Rule 7: mark eligible datastores compliant or not; ``compliant_keys`` None means no policy."""
    if compliant_keys is None:
        return list(evaluations)
    ok = set(compliant_keys)
    out = []
    for ev in evaluations:
        if not ev.eligible:
            out.append(ev)
        elif ev.datastore.key in ok:
            out.append(replace(ev, compliant=True))
        else:
            out.append(replace(ev, compliant=False,
                               reason=f"does not comply with storage policy {policy_name!r}"))
    return out


def _rank_key(ev: Evaluation) -> tuple[int, float, str, str]:
    return (-ev.host_count, ev.datastore.utilisation, ev.datastore.name, ev.datastore.key)


def rank(evaluations: Iterable[Evaluation]) -> list[Evaluation]:
    """Eligible datastores, best first: most usable host mounts, then lowest utilisation."""
    return sorted((ev for ev in evaluations if ev.eligible), key=_rank_key)


def choose_host(ev: Evaluation, preferred: Sequence[str] = (),
                rng: random.Random | None = None) -> HostState:
    """A host to register the backing on: first preferred (name or moref) that qualifies, else the
    first by name, or a random one when ``rng`` is given (Cinder's behaviour)."""
    if not ev.hosts:
        raise ValueError(f"datastore {ev.datastore.name} has no usable host")
    for want in preferred:
        for h in ev.hosts:
            if want in (h.key, h.name):
                return h
    if rng is not None:
        return rng.choice(ev.hosts)
    return ev.hosts[0]


def explain(evaluations: Sequence[Evaluation], size_bytes: int, policy_name: str | None = None,
            scope: str | None = None) -> str:
    """The NoValidDatastore message: what was asked, then why each datastore was rejected."""
    wanted = f"a {format_size(size_bytes)} volume"
    if policy_name:
        wanted += f" with storage policy {policy_name!r}"
    if scope:
        wanted += f" on {scope}"
    named = [ev for ev in evaluations if ev.rule not in ("only", "pod")]
    pod = next((ev.reason.split(" ", 4)[-1] for ev in evaluations if ev.rule == "pod" and ev.reason), None)
    if not named:
        if pod is not None:
            return f"No datastore can hold {wanted}: {pod} has no member datastores"
        return (f"No datastore can hold {wanted}: the datastore the volume names does not exist"
                if evaluations else f"No datastore can hold {wanted}: no datastores found")
    if pod is not None:
        wanted += f" in {pod}"
    reasons = "; ".join(f"{ev.datastore.name}: {ev.reason}"
                        for ev in sorted(named, key=lambda e: e.datastore.name)
                        if ev.reason)
    message = f"No datastore can hold {wanted}: {reasons}"
    by_type = [ev for ev in named if ev.rule == "type"]
    if by_type and len(by_type) == len([ev for ev in named if ev.reason]):
        seen = ", ".join(sorted({ev.datastore.type or "unknown" for ev in by_type}))
        message += (f". Every datastore was rejected for its type (seen: {seen}); the provider setting "
                    f"datastore_types admits other types: add {seen} to datastore_types to use them "
                    "(a vCenter simulator reports OTHER)")
    return message
