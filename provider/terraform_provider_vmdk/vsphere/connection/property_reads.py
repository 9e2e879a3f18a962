"""Property reads of a Session: one PropertyCollector retrieve, container views kept per session generation.

Split from ``session`` (which logs in, retries and re-logs in): every read here is a thunk that
``Session.read`` retries as a whole, so a re-login in the middle rebuilds the views it uses.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from pyVmomi import vim, vmodl

from .. import exceptions as exc
from .properties import ObjectContent, objects_filter_spec, retrieve_all, type_of, view_filter_spec

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")
MAX_CACHED_VIEWS = 32
NOT_AUTHENTICATED = vim.fault.NotAuthenticated
T = TypeVar("T")


def _direct(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A call without retries: inside a thunk that ``Session.read`` retries as a whole."""
    return fn(*args, **kwargs)


class PropertyReads:
    """The read half of Session (mixed into it); relies on its ``read``, ``content`` and generation."""

    _content: Any
    _generation: int
    _views: OrderedDict[tuple[str, str], tuple[int, Any]]
    _views_lock: threading.Lock

    def read(self, thunk: Callable[[], T], what: str = "read") -> T:
        raise NotImplementedError

    @property
    def content(self) -> Any:
        raise NotImplementedError

    def connect(self) -> None:
        raise NotImplementedError

    def _retrieve(self, spec: Any) -> list[ObjectContent]:
        """One retrieve (raw calls, inside a retried thunk) that notices an ended session.

        vCenter answers a retrieve on an ended session with NotAuthenticated; vcsim answers it with every
        property missing for NoPermission. A NoPermission is checked against the session itself: if the
        session is gone, NotAuthenticated is raised (the caller logs in again and retries), else it is a
        real permission problem and the properties stay missing."""
        found = retrieve_all(_direct, self._content.propertyCollector, spec)
        faults = [f for c in found for f in c.missing.values()]
        if any(isinstance(f, NOT_AUTHENTICATED) for f in faults):
            raise NOT_AUTHENTICATED()
        if any(isinstance(f, vim.fault.NoPermission) for f in faults):
            self._content.sessionManager.currentSession  # noqa: B018 - raises NotAuthenticated if ended
        return found

    @staticmethod
    def _view_key(container: Any, obj_types: Sequence[Any]) -> tuple[str, str]:
        return container._GetMoId(), ",".join(sorted(t._wsdlName for t in obj_types))

    def _view(self, container: Any, obj_types: Sequence[Any]) -> Any:
        """A container view of this session generation (raw calls: used inside a retried thunk)."""
        key = self._view_key(container, obj_types)
        generation = self._generation
        with self._views_lock:
            cached = self._views.get(key)
            if cached is not None and cached[0] == generation:
                self._views.move_to_end(key)
                return cached[1]
        view = self._content.viewManager.CreateContainerView(container, list(obj_types), True)
        evicted = None
        with self._views_lock:
            other = self._views.get(key)
            if other is not None and other[0] == generation:  # another thread made one meanwhile
                evicted, view = view, other[1]
            else:
                self._views[key] = (generation, view)
                if len(self._views) > MAX_CACHED_VIEWS:
                    _, (old_generation, evicted) = self._views.popitem(last=False)
                    if old_generation != generation:
                        evicted = None  # gone with its session
        if evicted is not None:
            try:
                evicted.DestroyView()
            except Exception as error:  # noqa: BLE001 - a leaked view dies with the session
                LOG.debug("DestroyView failed: %s", error)
        return view

    def _drop_view(self, container: Any, obj_types: Sequence[Any]) -> None:
        with self._views_lock:
            self._views.pop(self._view_key(container, obj_types), None)

    def retrieve(self, obj_type: Any, properties: Sequence[str], *, container: Any = None,
                 objects: Iterable[Any] | None = None) -> list[ObjectContent]:
        """Properties of every ``obj_type`` below ``container`` (default rootFolder, recursive), or of the
        given ``objects``, in one RetrievePropertiesEx (+ continuation pages).  Container views are created
        once per (container, types) and session, so repeated retrieves cost one round trip."""
        obj_type = type_of(obj_type)
        if objects is not None:
            objects = list(objects)
            if not objects:
                return []
            spec = objects_filter_spec(objects, properties, obj_type)
            return self.read(lambda: self._retrieve(spec), "RetrievePropertiesEx")
        return self.retrieve_types({obj_type: properties}, container=container)

    def retrieve_types(self, wanted: dict[Any, Sequence[str]], *, container: Any = None) -> list[ObjectContent]:
        """Like ``retrieve`` for several types at once (one view, one RetrievePropertiesEx):
        ``{vim.HostSystem: ["name"], vim.ComputeResource: ["name", "resourcePool"]}``.  A type's
        properties apply to its subtypes too (ClusterComputeResource is a ComputeResource)."""
        wanted = {type_of(t): list(p) for t, p in wanted.items()}
        root = container if container is not None else self.content.rootFolder
        types = list(wanted)

        def attempt() -> list[ObjectContent]:
            for retry in range(2):
                view = self._view(root, types)
                try:
                    return self._retrieve(view_filter_spec(view, wanted))
                except vmodl.fault.ManagedObjectNotFound:
                    self._drop_view(root, types)  # view (or container) gone: a fresh view, once
                    if retry:
                        raise
            raise AssertionError("unreachable")

        return self.read(attempt, "RetrievePropertiesEx")

    def get_properties(self, obj: Any, properties: Sequence[str]) -> dict[str, Any]:
        """Properties of one object (missing ones absent).  NotFound when the object no longer exists."""
        spec = objects_filter_spec([obj], properties, report_missing=False)
        try:
            self.connect()
            found = self.read(lambda: self._retrieve(spec), "RetrievePropertiesEx")
        except vmodl.fault.ManagedObjectNotFound as error:
            raise exc.NotFound(f"{type(obj).__name__} {obj._GetMoId()} not found") from error
        if found and any(isinstance(f, vmodl.fault.ManagedObjectNotFound) for f in found[0].missing.values()):
            raise exc.NotFound(f"{type(obj).__name__} {obj._GetMoId()} not found")
        return found[0].props if found else {}

