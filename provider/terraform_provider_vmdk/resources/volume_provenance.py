"""Where a volume's data came from is provenance: read once, when the volume is created.

A source (``source_volume_id``, ``source_snapshot_id``, ``image``, ``backup``, ``adopt``) decides what the
new disk holds; afterwards the data is the user's and lives in the volume. So:

* a *different* source (another volume, snapshot, image file, backup directory or VMDK) replaces the
  volume, as the configuration asks — and so does another ``clone_type`` for a clone;
* everything else about a recorded source changes nothing in vSphere (the state records it, the plan says
  so in a warning): ``adopt.vm`` after the old VM was decommissioned, ``adopt.vmdk_path`` corrected to where
  the adopted disk lives now, an image's ``sha256`` or ``disk_type``;
* a volume with no source recorded — imported, or made empty — keeps its data whatever source the
  configuration names: replacing it would destroy data the provider did not make from that source.
"""

from __future__ import annotations

from typing import Any

from ..framework.resource import PlanRequest
from ..framework.unknowns import is_unknown

__all__ = ["plan_provenance", "source_of"]

_UNKNOWN_SOURCE = ("unknown", None)


def _value(values: dict[str, Any], block: str, key: str) -> Any:
    nested = values.get(block)
    if nested is None:
        return None
    if is_unknown(nested):
        return nested
    return nested.get(key) if isinstance(nested, dict) else None


def source_of(values: dict[str, Any]) -> tuple[str, Any] | None:
    """(kind, what identifies it) of the source ``values`` name; None when none; ``("unknown", None)`` when
    the configuration's source is not known until apply."""
    for kind, found in (("volume", values.get("source_volume_id")), ("snapshot", values.get("source_snapshot_id")),
                        ("image", _value(values, "image", "source")), ("backup", _value(values, "backup", "path")),
                        ("adopt", _value(values, "adopt", "vmdk_path"))):
        if found is None:
            continue
        if is_unknown(found):
            return _UNKNOWN_SOURCE
        return kind, found.strip() if isinstance(found, str) else found
    return None


def _describe(source: tuple[str, Any]) -> str:
    kind, what = source
    return {"volume": f"volume {what}", "snapshot": f"snapshot {what}", "image": f"image {what}",
            "backup": f"backup {what}", "adopt": f"VMDK {what}"}.get(kind, "a source not known yet")


def _own_paths(prior: dict[str, Any]) -> set[str]:
    """Where the volume's disk lives now (an adopted VMDK moved into the shadow VM's folder)."""
    path = prior.get("vmdk_path")
    return {path} if isinstance(path, str) and path else set()


def plan_provenance(req: PlanRequest) -> None:
    """Replace the volume for another source; say so when a source edit changes nothing (an update of ``req``)."""
    plan, prior = req.plan or {}, req.prior or {}
    recorded, wanted = source_of(prior), source_of(plan)
    if wanted is None:
        return  # no source in the configuration (any longer): the data stays where it is
    if recorded is None:
        req.diagnostics.warning(
            "The source is not used: the volume exists",
            f"This volume has no source recorded (it was imported, or made empty), so the configuration's "
            f"{_describe(wanted)} only goes into the state: the volume keeps its data. To recreate the volume "
            "from the source, which destroys its current data, run terraform apply -replace=<address>.")
        return
    if wanted == _UNKNOWN_SOURCE or wanted[0] != recorded[0]:
        req.requires_replace.add(_attribute(wanted if wanted != _UNKNOWN_SOURCE else recorded))
        return
    settled: set[str] = set()
    if wanted != recorded:
        if wanted[0] == "adopt" and wanted[1] in _own_paths(prior):
            req.diagnostics.warning(
                "The adopted disk stays", f"adopt.vmdk_path now names where the adopted disk lives ({wanted[1]}): "
                "nothing changes in vSphere.", "adopt.vmdk_path")
            settled.add("adopt.vmdk_path")
        else:
            req.requires_replace.add(_attribute(wanted))
            return
    if wanted[0] in ("volume", "snapshot") and plan.get("clone_type") != prior.get("clone_type") \
            and prior.get("clone_type") is not None:
        req.requires_replace.add("clone_type")
        return
    changed = [name for name in _changed_fields(plan, prior, wanted[0]) if name not in settled]
    if changed:
        req.diagnostics.warning(
            "Source details do not change the volume",
            f"{', '.join(changed)} only mattered when the volume was created; apply records the new value and "
            "changes nothing in vSphere. To recreate the volume from its source, which destroys its current data, "
            "run terraform apply -replace=<address>.", changed[0])


def _attribute(source: tuple[str, Any]) -> str:
    return {"volume": "source_volume_id", "snapshot": "source_snapshot_id", "image": "image", "backup": "backup",
            "adopt": "adopt"}[source[0]]


def _changed_fields(plan: dict[str, Any], prior: dict[str, Any], kind: str) -> list[str]:
    if kind not in ("image", "adopt", "backup"):
        return []
    new, old = plan.get(kind) or {}, prior.get(kind) or {}
    if not isinstance(new, dict) or not isinstance(old, dict):
        return []
    return [f"{kind}.{key}" for key in sorted(set(new) | set(old)) if new.get(key) != old.get(key)]
