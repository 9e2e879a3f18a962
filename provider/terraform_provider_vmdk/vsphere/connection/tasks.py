"""Task polling through the PropertyCollector.

pyVim's ``WaitForTask`` reads ``task.info`` whole, which fails against vcsim for snapshot, disk-manager and
file-manager tasks (their ``info.entity`` is not a ManagedEntity).  We read ``info.state``, ``info.error``
and ``info.result`` (and the task's name, for messages) with RetrievePropertiesEx instead, polling fast at
first (0.05 s, doubling) up to the configured interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from pyVmomi import vim, vmodl

from .. import exceptions as exc
from . import budget as _budget
from .caller import Caller
from .properties import ObjectContent, objects_filter_spec
from .task_watcher import TaskWatcher, Watch

T = TypeVar("T")


class TaskSession(Caller, Protocol):
    """What waiting for tasks needs of a session (``Session``): reads with its retry policy, and the
    process's task watcher."""

    def read(self, thunk: Callable[[], T], what: str = "read") -> T: ...

    def _retrieve(self, spec: Any) -> list[ObjectContent]: ...

    def get_properties(self, obj: Any, properties: Sequence[str]) -> dict[str, Any]: ...

    @property
    def task_watcher(self) -> TaskWatcher: ...


LOG = logging.getLogger("terraform_provider_vmdk.vsphere")

FIRST_POLL = 0.05
SAFETY_POLL = 5.0  # seconds between polls while the watcher waits (a missed update, a vanished task)
_PROPS = ["info.state", "info.error", "info.result", "info.descriptionId"]
_ACTIVE = (vim.TaskInfo.State.queued, vim.TaskInfo.State.running)
_ENDED = (vim.TaskInfo.State.success, vim.TaskInfo.State.error)


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


def means(error: BaseException, mapped: type[exc.VMwareDriverError]) -> bool:
    """Whether ``error`` — our exception, or a raw vSphere fault a call raised — is what ``mapped`` stands
    for (e.g. ``means(error, exc.NoDiskSpace)``): the one mapping of vSphere faults, FAULT_MAP."""
    if isinstance(error, mapped):
        return True
    fault = error if isinstance(error, vmodl.MethodFault) else getattr(error, "fault", None)
    return any(classes and isinstance(fault, classes) and issubclass(target, mapped)
               for classes, target in FAULT_MAP)


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


def _poll(session: TaskSession, spec: Any) -> dict[str, Any] | None:
    contents = session.read(lambda: session._retrieve(spec), "task poll")
    return contents[0].props if contents else None


def cancel_task(session: TaskSession, task: Any, name: str) -> None:
    """Ask vSphere to cancel a task (best effort: many tasks cannot be cancelled once running). Sent outside
    the operation's budget: it is what the operation does *because* its budget ran out."""
    try:
        with _budget.scoped(_budget.UNLIMITED):
            session.call(task.CancelTask)
        LOG.info("asked vSphere to cancel task %s (%s)", name, task._GetMoId())
    except Exception as error:  # noqa: BLE001 - not cancelable, already done, ...
        LOG.debug("could not cancel task %s (%s): %s", name, task._GetMoId(), error)


def wait_for_task(session: TaskSession, task: Any, timeout: float | None = None) -> Any:
    """Wait for ``task`` until it succeeds (→ ``info.result``), fails (→ TaskFailed) or times out (→ TaskTimeout).

    Woken by the session's TaskWatcher (one WaitForUpdatesEx for every task in flight) where it works;
    else polls fast at first, then every ``task_poll_interval``. The thread's budget (timeouts block,
    StopProvider) bounds the wait too: when it runs out the task is cancelled where vSphere allows it and
    Cancelled / OperationTimedOut is raised. A task that vanished raises TaskNotFound."""
    if timeout is None:
        timeout = session.config.task_timeout
    allowance = _budget.current()
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    spec = objects_filter_spec([task], _PROPS)
    first = _poll(session, spec)  # a quick task is over already: one read, nothing to watch
    if first is not None and first.get("info.state") in _ENDED:
        return _outcome(first, task._GetMoId(), start)
    watcher = session.task_watcher
    watch = watcher.watch(task) if watcher is not None else None
    try:
        return _wait(session, task, spec, watch, allowance, start, deadline, timeout)
    finally:
        if watch is not None and watcher is not None:
            watcher.forget(watch)


def _outcome(props: dict[str, Any], task_id: str, start: float) -> Any:
    """An ended task's result, or its error raised."""
    name = props.get("info.descriptionId") or task_id
    if props.get("info.state") == vim.TaskInfo.State.success:
        LOG.debug("task %s (%s) succeeded in %.3f s", name, task_id, time.monotonic() - start)
        return props.get("info.result")
    error = task_failed(props.get("info.error"), name)
    LOG.debug("task %s (%s) failed in %.3f s: %s", name, task_id, time.monotonic() - start, error)
    raise error


def _wait(session: TaskSession, task: Any, spec: Any, watch: Watch | None, allowance: _budget.Budget, start: float,
          deadline: float | None, timeout: float | None) -> Any:
    """The wait itself: on the watcher's word when it works (a poll only every SAFETY_POLL seconds, in case
    an update was missed or the task vanished), else by polling fast at first, then every interval."""
    interval = session.config.task_poll_interval
    delay = min(FIRST_POLL, interval)
    name = None
    task_id = task._GetMoId()
    while True:
        if watch is not None and not watch.broken:
            limit = SAFETY_POLL if deadline is None else min(SAFETY_POLL, max(0.0, deadline - time.monotonic()))
            try:
                ended = allowance.wait_for(watch.ended, limit)
            except (exc.Cancelled, exc.OperationTimedOut):
                cancel_task(session, task, name or task_id)
                raise
            props = dict(watch.props) if ended and not watch.broken else _poll(session, spec)
        else:
            props = _poll(session, spec)
        if props is None:
            raise exc.TaskNotFound("vmodl.fault.ManagedObjectNotFound", f"task {task_id} no longer exists",
                                   task=name)
        name = name or props.get("info.descriptionId") or task_id
        if props.get("info.state") in _ENDED:
            return _outcome(props, task_id, start)
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            cancel_task(session, task, name)
            LOG.debug("task %s (%s) timed out after %.3f s", name, task_id, now - start)
            raise exc.TaskTimeout(task=f"{name} ({task_id})", timeout=timeout)
        if watch is not None and not watch.broken:
            continue  # the watcher wakes us
        sleep = delay if deadline is None else min(delay, max(0.0, deadline - now))
        try:
            allowance.sleep(sleep)
        except (exc.Cancelled, exc.OperationTimedOut):
            cancel_task(session, task, name)
            raise
        delay = min(delay * 2, interval)




def active_tasks(session: TaskSession, entity: Any, description_ids: tuple[str, ...] = ()) -> list[Any]:
    """Tasks on ``entity`` (any client's) that are queued or running, from the TaskManager's recent tasks;
    only those whose descriptionId is in ``description_ids`` when given."""
    recent = session.get_properties(session.content.taskManager, ["recentTask"]).get("recentTask") or []
    if not recent:
        return []
    spec = objects_filter_spec(recent, ["info.entity", "info.state", "info.descriptionId"])
    contents = session.read(lambda: session._retrieve(spec), "recent tasks")
    want = entity._GetMoId()
    found = []
    for c in contents:
        target = c.props.get("info.entity")
        if target is None or target._GetMoId() != want or c.props.get("info.state") not in _ACTIVE:
            continue
        if description_ids and c.props.get("info.descriptionId") not in description_ids:
            continue
        found.append(c.obj)
    return found


def settle(session: TaskSession, entity: Any, description_ids: tuple[str, ...] = (), timeout: float | None = None
           ) -> None:
    """Wait until no task of ``description_ids`` runs on ``entity`` — before looking for the outcome of a
    request whose answer was lost, so a task still in flight is not taken for one that never started."""
    for task in active_tasks(session, entity, description_ids):
        try:
            wait_for_task(session, task, timeout)
        except exc.TaskFailed:
            pass  # its outcome is what the caller looks up next


def running(session: TaskSession, task_ids: list[str]) -> list[Any]:
    """The tasks among ``task_ids`` (moref values) that are still queued or running; vanished ones are done."""
    if not task_ids:
        return []
    tasks = [vim.Task(value, session.content.taskManager._stub) for value in task_ids]
    spec = objects_filter_spec(tasks, ["info.state"])
    try:
        contents = session.read(lambda: session._retrieve(spec), "task states")
    except vmodl.fault.ManagedObjectNotFound:
        return []
    return [c.obj for c in contents if c.props.get("info.state") in _ACTIVE]


def stop_and_wait(session: TaskSession, task_ids: list[str], timeout: float | None = None) -> None:
    """Cancel the tasks still running among ``task_ids`` and wait until they have ended (a create that an
    interrupted apply left running must end before its object is looked up, or it would appear later)."""
    for task in running(session, task_ids):
        cancel_task(session, task, task._GetMoId())
        try:
            wait_for_task(session, task, timeout)
        except exc.TaskFailed:
            pass  # cancelled, or failed: its outcome is what the caller looks up next
