"""PropertyCollector helpers: one RetrievePropertiesEx (plus ContinueRetrievePropertiesEx pages)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim, vmodl


@dataclass
class ObjectContent:
    """One object of a retrieve: its moref and the properties that came back (missing ones are absent)."""

    obj: Any
    props: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, Any] = field(default_factory=dict)  # property path -> fault, when the server says why

    def get(self, name: str, default: Any = None) -> Any:
        return self.props.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self.props[name]

    def __contains__(self, name: str) -> bool:
        return name in self.props


def type_of(obj_type: Any) -> Any:
    """``vim.VirtualMachine`` or ``"VirtualMachine"`` / ``"vim.VirtualMachine"`` → the pyVmomi type."""
    if isinstance(obj_type, str):
        name = obj_type.split(".")[-1]
        found = getattr(vim, name, None)
        if found is None:
            raise ValueError(f"unknown managed object type {obj_type!r}")
        return found
    return obj_type


def view_filter_spec(view: Any, wanted: Mapping[Any, Sequence[str]]) -> vmodl.query.PropertyCollector.FilterSpec:
    """Every object in a ContainerView, with ``wanted[type]`` properties per type."""
    traversal = vmodl.query.PropertyCollector.TraversalSpec(
        name="view", path="view", skip=False, type=vim.view.ContainerView)
    return vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=t, all=False, pathSet=list(p))
                 for t, p in wanted.items()],
        reportMissingObjectsInResults=False,  # a vanished view raises ManagedObjectNotFound
    )


def objects_filter_spec(objects: Iterable[Any], properties: Sequence[str], obj_type: Any = None, *,
                        report_missing: bool = True) -> vmodl.query.PropertyCollector.FilterSpec:
    """The given objects (one PropertySpec per type present, or ``obj_type`` if given).  With
    ``report_missing`` a deleted object is left out (vCenter lists it in missingSet, vcsim drops it);
    without, the whole retrieve fails with ManagedObjectNotFound."""
    objects = list(objects)
    types = [obj_type] if obj_type is not None else list({type(o): None for o in objects})
    return vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=o, skip=False) for o in objects],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=t, all=False, pathSet=list(properties))
                 for t in types],
        reportMissingObjectsInResults=report_missing,
    )


def to_contents(objects: Iterable[Any]) -> list[ObjectContent]:
    out = []
    for oc in objects or ():
        props = {p.name: p.val for p in (oc.propSet or ())}
        missing = {m.path: m.fault for m in (oc.missingSet or ())}
        out.append(ObjectContent(oc.obj, props, missing))
    return out


def retrieve_all(call: Callable[..., Any], collector: Any,
                 spec: vmodl.query.PropertyCollector.FilterSpec) -> list[ObjectContent]:
    """RetrievePropertiesEx and every ContinueRetrievePropertiesEx page, each through ``call``."""
    result = call(collector.RetrievePropertiesEx, [spec], vmodl.query.PropertyCollector.RetrieveOptions())
    out: list[ObjectContent] = []
    seen: set[str] = set()
    while result is not None:
        for content in to_contents(result.objects):
            key = content.obj._GetMoId()
            if key not in seen:  # a traversal may reach an object twice
                seen.add(key)
                out.append(content)
        token = result.token
        if not token:
            break
        result = call(collector.ContinueRetrievePropertiesEx, token)
    return out
