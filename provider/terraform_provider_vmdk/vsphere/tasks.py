"""Task polling through the PropertyCollector.

pyVim's ``WaitForTask`` reads ``task.info`` whole, which fails against vcsim for snapshot, disk-manager and
file-manager tasks (their ``info.entity`` is not a ManagedEntity).  We read ``info.state``, ``info.error``
and ``info.result`` (and the task's name, for messages) with RetrievePropertiesEx instead, polling fast at
first (0.05 s, doubling) up to the configured interval.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from . import exceptions as exc
from .properties import objects_filter_spec, retrieve_all

if TYPE_CHECKING:
    from .session import Session

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")

FIRST_POLL = 0.05
_PROPS = ["info.state", "info.error", "info.result", "info.descriptionId"]


def _fault_classes(*names: str) -> tuple[type, ...]:
    found = []
    for name in names:
        module, _, cls = name.rpartition(".")
        holder = {"vim.fault": vim.fault, "vmodl.fault": vmodl.fault}[module]
        t = getattr(holder, cls, None)
        if t is not None:
            found.append(t)
    return tuple(found)


# fault classes → our exception (a TaskFailed subclass that is also the matching driver error)
FAULT_MAP: list[tuple[tuple[type, ...], type[exc.TaskFailed]]] = [
    (_fault_classes("vim.fault.NoDiskSpace", "vim.fault.InsufficientStorageSpace",
                    "vim.fault.InsufficientDisks", "vim.fault.OutOfSpace"), exc.TaskNoDiskSpace),
    (_fault_classes("vim.fault.FileAlreadyExists"), exc.FileAlreadyExists),
    (_fault_classes("vim.fault.FileNotFound"), exc.FileNotFound),
    (_fault_classes("vmodl.fault.ManagedObjectNotFound", "vim.fault.NotFound"), exc.TaskNotFound),
]


def fault_name(fault: Any) -> str:
    """The dotted vmodl name of a pyVmomi fault, e.g. ``vim.fault.NoDiskSpace``."""
    return type(fault).__name__


def task_failed(fault: Any, task_name: str | None) -> exc.TaskFailed:
    """Our exception for a task's ``info.error`` (a LocalizedMethodFault) or a raw MethodFault."""
    inner = getattr(fault, "fault", None) if isinstance(fault, vmodl.LocalizedMethodFault) else fault
    message = getattr(fault, "localizedMessage", None) or getattr(inner, "msg", None) or ""
    ftype = fault_name(inner) if inner is not None else "vmodl.MethodFault"
    cls: type[exc.TaskFailed] = exc.TaskFailed
    for classes, mapped in FAULT_MAP:
        if classes and isinstance(inner, classes):
            cls = mapped
            break
    return cls(ftype, message or None, task=task_name, fault=inner)


def wait_for_task(session: Session, task: Any, timeout: float | None = None) -> Any:
    """Poll ``task`` until it succeeds (→ ``info.result``), fails (→ TaskFailed) or times out (→ TaskTimeout)."""
    if timeout is None:
        timeout = session.config.task_timeout
    interval = session.config.task_poll_interval
    delay = min(FIRST_POLL, interval)
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    name = None
    task_id = task._GetMoId()
    spec = objects_filter_spec([task], _PROPS)
    while True:
        contents = retrieve_all(session.call, session.content.propertyCollector, spec)
        props = contents[0].props if contents else {}
        if not contents:
            raise exc.TaskNotFound("vmodl.fault.ManagedObjectNotFound", f"task {task_id} no longer exists",
                                   task=name)
        name = name or props.get("info.descriptionId") or task_id
        state = props.get("info.state")
        if state == vim.TaskInfo.State.success:
            LOG.debug("task %s (%s) succeeded in %.3f s", name, task_id, time.monotonic() - start)
            return props.get("info.result")
        if state == vim.TaskInfo.State.error:
            error = task_failed(props.get("info.error"), name)
            LOG.debug("task %s (%s) failed in %.3f s: %s", name, task_id, time.monotonic() - start, error)
            raise error
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            try:
                session.call(task.CancelTask)
            except Exception as error:  # not cancelable, already done, ...
                LOG.debug("could not cancel task %s (%s): %s", name, task_id, error)
            LOG.debug("task %s (%s) timed out after %.3f s", name, task_id, now - start)
            raise exc.TaskTimeout(task=f"{name} ({task_id})", timeout=timeout)
        sleep = delay if deadline is None else min(delay, max(0.0, deadline - now))
        time.sleep(sleep)
        delay = min(delay * 2, interval)
