"""The volume policy: what to do with a volume, decided in one place — as Cinder's ``vmdk.py`` does.

Plan and apply ask the same pure functions. Plan asks them with the facts the last refresh kept in
private state (no vSphere call) and writes the decision into the planned private state; apply carries
that decision out with fresh facts, and may only do what the plan promised (a volume planned to grow in
place is never moved; one planned to move may stay if it turns out to have room).

Where each change is decided and where it is done:
  extend   ``decide_extend``   → ``Executor.extend``        (in place, or move to a datastore with room first)
  retype   ``decide_retype``   → ``Executor.retype``        (relocate / copy on the same datastore / adapter /
                                                              policy, in Cinder's order)
  clone    ``decide_clone``    → ``Executor.clone``         (a linked clone cannot be bigger than its source)
  repair   ``Facts.repairs``   → ``Executor.repair``        (an interrupted retype, duplicates, leftover
                                                              temporary snapshots)
  in use   ``refuse_in_use``   (extend, retype, snapshot and delete of an attached volume are refused)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..framework.diagnostics import DiagnosticError

if TYPE_CHECKING:  # pragma: no cover
    from ..vsphere.volumes.backing import Backing
    from ..vsphere.volumes.lookup import BackingIndex, Choice
    from .backend import VolumeBackend

LOG = logging.getLogger("terraform_provider_vmdk.resources")

__all__ = ["Facts", "Refusal", "ExtendDecision", "RetypeDecision", "CloneDecision", "Executor", "decide_extend",
           "decide_retype", "decide_clone", "refuse_in_use", "refuse_parent", "parent_refusal", "GiB", "CLONE_TYPES",
           "DISK_THIN", "EXTEND_NONE", "EXTEND_IN_PLACE", "EXTEND_MAY_MOVE"]

GiB = 1024**3
CLONE_TYPES = ("full", "linked")
DISK_THIN = "thin"

# Extend modes
EXTEND_NONE = "none"
EXTEND_IN_PLACE = "in-place"
EXTEND_MAY_MOVE = "may-move"  # the datastore lacks room: move to one that has it, then grow


_LISTS = ("in_use_by", "repairs", "linked_children", "copies")


@dataclass(frozen=True)
class Facts:
    """What a read of the volume saw; plan decides from these without calling vSphere."""

    size_bytes: int
    disk_type: str | None = None
    adapter_type: str | None = None
    profile_id: str | None = None
    datastore: str | None = None
    datastore_free: int | None = None
    cow_snapshots: int = 0  # a user's COW snapshots (not a linked clone's leftover snapshot point)
    linked_clone: bool = False
    in_use_by: tuple[str, ...] = ()
    repairs: tuple[str, ...] = ()
    linked_children: tuple[str, ...] = ()  # linked clones whose disks build on this volume's disk
    copies: tuple[str, ...] = ()  # VMs carrying this volume's marks that are copies made outside Terraform
    disk_missing: bool = False  # the VMDK is gone (destroyed with a VM it was attached to)

    @classmethod
    def of(cls, backing: Backing, datastore_free: int | None, in_use_by: list[str] | tuple[str, ...] = (),
           choice: Choice | None = None, children: list[str] | tuple[str, ...] = ()) -> Facts:
        return cls(size_bytes=backing.size_bytes, disk_type=backing.disk_type, adapter_type=backing.adapter_type,
                   profile_id=backing.profile_id, datastore=backing.datastore_name, datastore_free=datastore_free,
                   cow_snapshots=len(backing.user_snapshots), linked_clone=backing.is_linked_clone,
                   in_use_by=tuple(in_use_by), repairs=tuple(choice.repairs()) if choice is not None else (),
                   linked_children=tuple(children), copies=tuple(choice.outside()) if choice is not None else ())

    def to_private(self) -> dict[str, Any]:
        data = asdict(self)
        for key in _LISTS:
            data[key] = list(data[key])
        return data

    @classmethod
    def from_private(cls, data: Any) -> Facts | None:
        """Facts kept by an earlier read; None when missing or from an older version (then plan is cautious)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("size_bytes"), int):
            return None
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in _LISTS:
            known[key] = tuple(known.get(key) or ())
        try:
            return cls(**known)
        except TypeError:
            return None


@dataclass(frozen=True)
class Refusal:
    """A change that cannot be made: an error on ``attribute`` that says what to do instead."""

    attribute: str
    summary: str
    detail: str

    def error(self) -> DiagnosticError:
        return DiagnosticError(self.summary, self.detail, self.attribute)


# ---------------------------------------------------------------------------------------------- extend
@dataclass(frozen=True)
class ExtendDecision:
    mode: str  # EXTEND_NONE | EXTEND_IN_PLACE | EXTEND_MAY_MOVE
    new_size_bytes: int = 0
    refusal: Refusal | None = None
    warning: str | None = None


def decide_extend(facts: Facts, new_size_bytes: int, disk_type: str | None, *, pinned: bool) -> ExtendDecision:
    """Grow in place; without room move first (unless the datastore is pinned); refuse what vSphere cannot.

    ``pinned``: the configuration names the volume's current datastore, so moving is not allowed."""
    old = facts.size_bytes
    if new_size_bytes == old:
        return ExtendDecision(EXTEND_NONE)
    if new_size_bytes < old:
        return ExtendDecision(EXTEND_NONE, refusal=Refusal(
            "size_gb", "Volumes cannot shrink",
            f"size_gb is {_gib(old)} GiB; it can grow but not shrink to {_gib(new_size_bytes)} GiB (vSphere cannot "
            "shrink a virtual disk, and a smaller replacement would lose data). To get a smaller volume, create a "
            "new one and copy the data."))
    if facts.cow_snapshots:
        return ExtendDecision(EXTEND_NONE, refusal=Refusal(
            "size_gb", "Volume cannot be extended while it has snapshots",
            f"The volume has {facts.cow_snapshots} COW snapshot(s); vSphere cannot extend a disk with snapshots. "
            "Delete the COW snapshots (or use template-format snapshots) and apply again."))
    if facts.linked_children:
        return ExtendDecision(EXTEND_NONE, refusal=parent_refusal(facts, "extend it", "size_gb"))
    if facts.linked_clone:
        return ExtendDecision(EXTEND_NONE, refusal=Refusal(
            "size_gb", "Linked clone cannot be extended",
            "This volume's disk builds on files that are not its own (a linked clone: a child disk of another "
            "volume's snapshot); vSphere cannot extend such a disk. Recreate it with clone_type = \"full\" to get "
            "a volume that can grow."))
    growth = new_size_bytes - old
    needed = 0 if (disk_type or facts.disk_type) == DISK_THIN else growth
    free = facts.datastore_free
    if not needed or free is None or free >= needed:
        return ExtendDecision(EXTEND_IN_PLACE, new_size_bytes)
    if pinned:
        return ExtendDecision(EXTEND_NONE, refusal=Refusal(
            "size_gb", "Datastore lacks room to extend",
            f"Datastore {facts.datastore} has {free / GiB:.1f} GiB free; growing by {_gib(growth)} GiB needs more. "
            "Unset datastore to let the volume move, or name a datastore with room."))
    return ExtendDecision(EXTEND_MAY_MOVE, new_size_bytes, warning=(
        f"Datastore {facts.datastore} has {free / GiB:.1f} GiB free, less than the {_gib(growth)} GiB this extend "
        f"needs: apply relocates the volume ({_gib(old)} GiB of data) to a datastore with room, then extends it."))


def _gib(n: int) -> int:
    return -(-n // GiB)


# ---------------------------------------------------------------------------------------------- retype
@dataclass(frozen=True)
class RetypeDecision:
    """Cinder's retype path, from facts alone (for plan warnings) or with compliance known (apply)."""

    disk_type_change: bool
    adapter_change: bool
    profile_change: bool
    relocate: bool | None  # None: depends on whether the current datastore complies with the new policy
    path: str  # "none" | "clone" | "relocate" | "policy" | "adapter" | "relocate-or-policy"
    steps: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    exclude_current_datastore: bool = False

    @property
    def noop(self) -> bool:
        return self.path == "none"

    @property
    def copies_data(self) -> bool:
        return self.path in ("clone", "relocate", "relocate-or-policy")

    @property
    def may_move(self) -> bool:
        return self.path in ("relocate", "relocate-or-policy")


def decide_retype(facts: Facts, disk_type: str, adapter_type: str, *, profile_change: bool, new_profile: bool,
                  current_compliant: bool | None = None) -> RetypeDecision:
    """Decide Cinder's retype path.

    Order as Cinder: a disk type change with snapshots can only be done by relocating (a copy would drop
    the snapshots), so the current datastore is excluded; a new policy keeps a compliant datastore, else
    relocates (clearing a policy never moves); a type change on the same datastore is a full copy; an
    adapter change re-attaches the disk; the policy is set last. ``current_compliant`` None (unknown at
    plan) makes ``relocate`` None for a new policy."""
    type_change = facts.disk_type is not None and facts.disk_type != disk_type
    adapter_change = facts.adapter_type is not None and facts.adapter_type != adapter_type
    steps: list[str] = []
    warnings: list[str] = []
    relocate: bool | None = False
    exclude_current = False
    if type_change and facts.cow_snapshots:
        relocate, exclude_current = True, True
        warnings.append(f"disk type {facts.disk_type} -> {disk_type} with {facts.cow_snapshots} snapshot(s): the "
                        "volume will be moved to another datastore (a copy would drop the snapshots)")
    elif profile_change and new_profile:
        if current_compliant is False:
            relocate = True
        elif current_compliant is None:
            relocate = None
            warnings.append("the volume moves to another datastore if its datastore does not comply with the new "
                            "policy")
    if relocate:
        steps.append("relocate" + (f" converting to {disk_type}" if type_change else ""))
        path = "relocate"
    elif type_change:
        steps.append(f"full copy on the same datastore converting {facts.disk_type} -> {disk_type}")
        warnings.append("the disk is copied in full to convert its type; this takes time and space")
        path = "clone"
    else:
        path = "none"
    if adapter_change:
        steps.append(f"re-attach the disk on a {adapter_type} controller")
        path = "adapter" if path == "none" else path
    if profile_change:
        steps.append("set storage policy" if new_profile else "clear storage policy")
        if path == "none":
            path = "relocate-or-policy" if relocate is None else "policy"
    return RetypeDecision(type_change, adapter_change, profile_change, relocate, path, tuple(steps), tuple(warnings),
                          exclude_current)


# ---------------------------------------------------------------------------------------------- clone
@dataclass(frozen=True)
class CloneDecision:
    linked: bool
    extend_to: int | None = None  # grow after cloning (the new volume is bigger than its source)
    note: str | None = None
    refusal: Refusal | None = field(default=None)


def decide_clone(clone_type: str, size_bytes: int, source_size: int, source_is_template: bool) -> CloneDecision:
    """Cinder: a linked clone becomes full when the new volume is bigger (a child disk cannot grow) or the
    source is a template snapshot (no snapshot point to link to); a clone is never smaller than its source."""
    if source_size and size_bytes < source_size:
        return CloneDecision(False, refusal=Refusal(
            "size_gb", "Volume smaller than its source",
            f"size_gb must be at least the source's size ({_gib(source_size)} GiB)."))
    linked = clone_type == "linked"
    note = None
    if linked and (size_bytes > source_size or source_is_template):
        linked = False
        note = "a linked clone becomes a full clone (bigger than its source, or a template source)"
    return CloneDecision(linked, size_bytes if size_bytes > source_size else None, note)


# ---------------------------------------------------------------------------------------------- in use
def parent_refusal(facts: Facts, action: str, attribute: str | None) -> Refusal:
    """A volume that linked clones build on cannot grow, move, be copied away or go: their disks would break."""
    return Refusal(attribute or "", f"Volume is the source of linked clones: cannot {action}",
                   f"The linked clone(s) {', '.join(facts.linked_children)} build on this volume's disk. Delete them, "
                   "or recreate them with clone_type = \"full\", first.")


def refuse_parent(children: list[str] | tuple[str, ...], action: str, attribute: str | None = None) -> None:
    if children:
        refusal = parent_refusal(Facts(0, linked_children=tuple(children)), action, attribute)
        raise DiagnosticError(refusal.summary, refusal.detail, attribute)


def refuse_in_use(users: list[str] | tuple[str, ...], action: str, attribute: str | None = None) -> None:
    """Cinder refuses to extend, retype, snapshot or delete a volume attached to an instance."""
    if users:
        raise DiagnosticError(
            f"Volume is in use: cannot {action}",
            f"The volume's disk is attached to {', '.join(users)}. Detach it from the virtual machine(s) first.",
            attribute)


# ---------------------------------------------------------------------------------------------- apply
def sdrs_pod(backend: VolumeBackend, name: str) -> Any:
    """The datastore cluster a volume goes to in sdrs mode; an error on datastore_cluster when it is gone or has
    Storage DRS disabled (both checked at plan too: this is the apply's fresh look)."""
    pod = backend.inventory.pod(name)
    if pod is None:
        raise DiagnosticError("Datastore cluster not found", f"No datastore cluster {name!r} exists.",
                              "datastore_cluster")
    if not pod.sdrs_enabled:
        raise DiagnosticError("Storage DRS is disabled", f"Datastore cluster {name!r} has Storage DRS disabled; set "
                              "datastore_cluster_mode = \"members\" to place on its members.", "datastore_cluster")
    return pod


class Executor:
    """Carries the policy's decisions out through VolumeOps, re-deciding with fresh facts at apply.

    ``resolve`` reads every VM once, now: who holds the volume's files (an instance, which may run on a delta
    of it after a snapshot; a linked clone) is decided on that read, never on a batched one."""

    def __init__(self, backend: VolumeBackend, pod: str | None = None) -> None:
        self.backend = backend
        self.ops = backend.ops
        self.index: BackingIndex | None = None
        self.pod = pod  # the datastore cluster the volume must stay in: every move goes to one of its members
        self.pod_mode = "members"  # "sdrs": Storage DRS recommends the member (move_in_pod)

    def resolve(self, volume_id: str) -> Backing | None:
        """The volume's backing, brought back to one clean VM first: an interrupted retype finished,
        duplicates and leftover copies of ours removed, a linked clone's leftover snapshot point removed.
        Copies of the volume made outside Terraform are left alone."""
        choice, self.index = self.backend.decide_on(volume_id)
        primary = choice.primary
        if primary is None:
            return None
        for copy in choice.copies:
            LOG.warning("volume %s: VM %s (%s) carries this volume's marks but is a copy made outside Terraform; "
                        "leaving it alone", volume_id, copy.name, copy.moref_value)
        primary = self._remove_leftovers(volume_id, primary, list(choice.leftovers))
        if primary.foreign:  # imported from OpenStack Cinder: the first write makes it ours
            primary = self.ops.take_over(primary)
        if primary.is_retype_copy:
            primary = self.ops.promote_retype_copy(primary)
        if primary.temporary_snapshots:
            users = self.index.users_of(primary)
            if users:  # removing them merges deltas an instance may be writing to
                LOG.warning("volume %s: keeping leftover temporary snapshots while %s hold the disk", volume_id,
                            ", ".join(users))
            else:
                primary = self.ops.remove_temporary_snapshots(primary)
        self.backend.remember(primary)
        return primary

    def _remove_leftovers(self, volume_id: str, primary: Backing, leftovers: list[Backing]) -> Backing:
        """Remove our other VMs for this volume — only while the chosen backing provably holds its whole disk
        (at every moment one complete copy of the data exists). When it provably lost its disk (a swap whose
        destroy of the original failed half-way), a complete copy of ours becomes the volume instead."""
        if not leftovers:
            return primary
        assert self.index is not None
        present = self.ops.disk_present(primary)
        if present is False and not primary.is_retype_copy:
            complete = [e for e in leftovers if e.is_retype_copy and self.ops.disk_present(e) is True]
            if complete:
                LOG.warning("volume %s: backing %s lost its disk (an interrupted retype or restore); its complete "
                            "copy %s becomes the volume", volume_id, primary.name, complete[0].name)
                self.ops.delete_backing(primary)
                self.backend.forget(primary)
                primary, leftovers = complete[0], [e for e in leftovers if e is not complete[0]]
                present = True
        if present is not True:
            LOG.warning("volume %s: %s could not be proven to hold its disk; keeping %s", volume_id, primary.name,
                        ", ".join(e.name for e in leftovers))
            return primary
        for extra in leftovers:
            held = self.index.users_of(extra) + self.index.children_of(extra)
            if held:
                LOG.warning("volume %s: leftover VM %s is held by %s; not removing it", volume_id, extra.name,
                            ", ".join(held))
                continue
            LOG.warning("volume %s: removing leftover VM %s (%s)", volume_id, extra.name, extra.moref_value)
            self.ops.delete_backing(extra)
            self.backend.forget(extra)
        return primary

    def holders(self, backing: Backing) -> tuple[list[str], list[str]]:
        """(instances, linked clones) holding the volume's files, from the read ``resolve`` made."""
        index = self.index if self.index is not None else self.backend.fresh_index()
        return index.users_of(backing), index.children_of(backing)

    def refuse_held(self, backing: Backing, action: str, attribute: str | None = None) -> None:
        """An error when an instance or a linked clone holds the volume's files (the read ``resolve`` made)."""
        users, children = self.holders(backing)
        refuse_in_use(users, action, attribute)
        refuse_parent(children, action, attribute)

    def facts(self, backing: Backing) -> Facts:
        users, children = self.holders(backing)
        return Facts.of(backing, self.ops.free_space(backing.datastore), users, children=children)

    # -- extend ----------------------------------------------------------------------------------------
    def extend(self, backing: Backing, new_size_bytes: int, planned: str, policy_name: str | None) -> Backing:
        """Grow to ``new_size_bytes``: in place, or (when the plan allowed it) moved to a datastore with room
        first. A plan for in place is held to: no room now is an error that says to plan again."""
        fresh = decide_extend(self.facts(backing), new_size_bytes, backing.disk_type, pinned=False)
        if fresh.refusal is not None:
            raise fresh.refusal.error()
        if fresh.mode == EXTEND_NONE:
            return backing
        moved = False
        if fresh.mode == EXTEND_MAY_MOVE and planned == EXTEND_MAY_MOVE:
            backing, moved = self._move_for_room(backing, new_size_bytes, policy_name), True
        try:
            return self.ops.grow(backing, new_size_bytes)
        except Exception as error:
            if not _is_no_space(error):
                raise
            if planned != EXTEND_MAY_MOVE or moved:
                raise DiagnosticError(
                    "Datastore lacks room to extend",
                    f"Datastore {backing.datastore_name} has no room to grow the volume to {_gib(new_size_bytes)} GiB "
                    "now (the plan expected to grow it in place). Run terraform apply again: the new plan moves the "
                    "volume to a datastore with room first.", "size_gb") from None
            backing = self._move_for_room(backing, new_size_bytes, policy_name)
            return self.ops.grow(backing, new_size_bytes)

    def _move_for_room(self, backing: Backing, size_bytes: int, policy_name: str | None) -> Backing:
        from ..vsphere.placement.datastore import Requirements

        LOG.info("moving %s to a datastore with room for %d GiB", backing.name, _gib(size_bytes))
        if self.pod and self.pod_mode == "sdrs":
            return self.move_in_pod(backing, size_bytes, policy_name, exclude_current=True)
        placement = self.backend.selector.select(Requirements(
            size_bytes=size_bytes, profile_name=policy_name,
            excluded_datastores=frozenset({backing.datastore} if backing.datastore is not None else ()),
            pod=self.pod), reserve=True)
        try:
            return self.ops.relocate_backing(backing, placement, profile_id=backing.profile_id)
        finally:
            placement.release()

    def move_in_pod(self, backing: Backing, size_bytes: int, policy_name: str | None, *,
                    exclude_current: bool = False) -> Backing:
        """Move to the member of ``self.pod`` Storage DRS recommends among those our rules accept for
        ``size_bytes`` (SDRS judges the volume's current size, so the room for a larger one is ours to check)."""
        from ..vsphere.placement.datastore import Requirements

        pod = sdrs_pod(self.backend, self.pod or "")
        excluded = frozenset({backing.datastore} if exclude_current and backing.datastore is not None else ())
        choice = self.backend.selector.in_pod(Requirements(size_bytes=size_bytes, profile_name=policy_name,
                                                           excluded_datastores=excluded, pod=pod.name))
        return self.ops.relocate_in_pod(backing, pod, choice, self.backend.selector.reserve)

    def _recommended(self, backing: Backing, requirements: Any, profile_id: str | None) -> Any:
        """The member of ``self.pod`` Storage DRS recommends for moving ``backing`` (with the policy), among those
        ``requirements`` accept; its space counted until released."""
        from dataclasses import replace as _replace

        pod = sdrs_pod(self.backend, self.pod or "")
        selector = self.backend.selector
        choice = selector.in_pod(_replace(requirements, pod=pod.name))
        key = self.ops.recommend_relocate_target(backing, pod, choice, profile_id)
        return _replace(choice.placements[key], release=selector.reserve(key, backing.size_bytes))

    # -- retype ----------------------------------------------------------------------------------------
    def retype(self, backing: Backing, disk_type: str, adapter_type: str, policy_name: str | None,
               may_move: bool) -> Backing:
        """Cinder's retype with fresh facts; a move the plan did not announce is refused."""
        from ..vsphere.placement.datastore import Requirements

        selector = self.backend.selector
        profile_id = selector.profile_id(policy_name) if policy_name else None
        facts = self.facts(backing)
        compliant = None
        if (facts.profile_id or None) != (profile_id or None) and profile_id:
            compliant = selector.is_usable(backing.datastore, Requirements(size_bytes=0, profile_name=policy_name))
        change = (facts.profile_id or None) != (profile_id or None)
        decision = decide_retype(facts, disk_type, adapter_type, profile_change=change, new_profile=bool(profile_id),
                                 current_compliant=compliant)
        if decision.copies_data and facts.linked_children:
            raise parent_refusal(facts, "retype it", "disk_type").error()
        if decision.relocate and not may_move:
            raise DiagnosticError(
                "Retype needs a move the plan did not include",
                "Since the plan was made the volume got COW snapshots (or its datastore stopped complying with the "
                "policy), so converting it now means moving it. Run terraform apply again to plan that move.",
                "disk_type")
        if decision.relocate:
            excluded = frozenset({backing.datastore}) if decision.exclude_current_datastore else frozenset()
            requirements = Requirements(size_bytes=backing.size_bytes, profile_name=policy_name,
                                        excluded_datastores=excluded, pod=self.pod)
            if self.pod and self.pod_mode == "sdrs":
                placement = self._recommended(backing, requirements, profile_id)
            else:
                placement = selector.select(requirements, reserve=True)
            try:
                if placement.datastore_name != backing.datastore_name:
                    backing = self.ops.relocate_backing(backing, placement,
                                                        disk_type if decision.disk_type_change else None,
                                                        profile_id=profile_id)
                elif decision.disk_type_change:
                    backing = self.ops.convert_by_clone(backing, disk_type)
            finally:
                placement.release()
        elif decision.disk_type_change:
            backing = self.ops.convert_by_clone(backing, disk_type)
        if decision.adapter_change:
            backing = self.ops.change_adapter(backing, adapter_type)
        if decision.profile_change:
            backing = self.ops.set_profile(backing, profile_id)
        self.backend.remember(backing)
        return backing

    # -- clone -----------------------------------------------------------------------------------------
    def clone(self, source: Any, new_id: str, *, name: str, description: str | None, clone_type: str,
              disk_type: str, placement: Any, size_bytes: int) -> Backing:
        src, _ = self.ops.clone_source(source)
        decision = decide_clone(clone_type, size_bytes, src.size_bytes, src.is_template)
        if decision.refusal is not None:
            raise decision.refusal.error()
        if decision.linked and src.disk_type and disk_type != src.disk_type:
            raise DiagnosticError(
                "A linked clone has its source's disk type",
                f"A linked clone is a child disk of its source, whose disk type is {src.disk_type}; it cannot be "
                f"{disk_type}. Set disk_type = \"{src.disk_type}\", or clone_type = \"full\" for an independent "
                "copy of another type.", "disk_type")
        if decision.linked and self.pod and self.backend.pod_of(src.datastore_name) != self.pod:
            raise DiagnosticError(
                "A linked clone stays on its source's datastore",
                f"A linked clone is a child disk on its source's datastore ({src.datastore_name}), which is not a "
                f"member of datastore cluster {self.pod!r}. Set clone_type = \"full\" to copy the volume into the "
                "cluster, or clone a source that is in it.", "clone_type")
        if decision.note:
            LOG.info("clone of %s: %s", src.name, decision.note)
        backing = self.ops.clone_backing(source, new_id, name, linked=decision.linked, disk_type=disk_type,
                                         placement=placement, description=description,
                                         profile_id=placement.profile_id)
        if decision.extend_to:
            backing = self.ops.grow(backing, decision.extend_to)
        self.backend.remember(backing)
        return backing


def _is_no_space(error: BaseException) -> bool:
    from ..vsphere.connection.tasks import means
    from ..vsphere.exceptions import NoDiskSpace

    return means(error, NoDiskSpace)
